//! Lists the devices of the chosen platform: `cargo run -p rocmforge-hip --example list_devices`.

fn main() {
    match rocmforge_hip::list_devices() {
        Ok(devices) => {
            for d in devices {
                println!(
                    "{} {}: {} ({}), {} CUs, warp {}, {:.1} GiB",
                    d.platform,
                    d.index,
                    d.name,
                    d.arch,
                    d.compute_units,
                    d.warp_size,
                    d.total_memory as f64 / (1u64 << 30) as f64
                );
            }
        }
        Err(e) => {
            eprintln!("no device: {e}");
            std::process::exit(1);
        }
    }
}
