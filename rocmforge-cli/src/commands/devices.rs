//! `rocmforge devices [--json]`: the GPU platform in use and each device with its attributes.
//!
//! No runtime library or no device is not an error here: the command says so and exits 0, so
//! scripts can ask "is there a GPU?" without parsing error output.
//!
//! It also says which GPU kernel images this binary carries (`embedded kernels: gfx90a, ...,
//! ptx sm_80`, printed with or without a GPU) and where each device's kernels come from
//! (`$ROCMFORGE_KERNEL_DIR`, embedded, a file, or compiled by hiprtc for an AMD target without an
//! embedded image), in the order `HipBackend::load_kernels` uses.

use clap::Args;
use rocmforge_tensor::devices::kernel_images::{self, embedded};
use rocmforge_tensor::devices::{self, DeviceInfo, HipResult};
use serde_json::json;

/// Arguments of `rocmforge devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
}

/// What was found: the platform and its library, or why there is none, and the devices.
struct Inventory {
    platform: Option<(String, String)>,
    devices: HipResult<Vec<DeviceInfo>>,
}

fn inventory() -> Inventory {
    let platform = match (devices::platform(), devices::library_name()) {
        (Ok(p), Ok(lib)) => Some((p.to_string(), lib.to_string())),
        _ => None,
    };
    Inventory {
        platform,
        devices: devices::list_devices(),
    }
}

fn gib(bytes: usize) -> f64 {
    bytes as f64 / f64::from(1u32 << 30)
}

/// `embedded kernels: gfx90a, ..., ptx sm_80 (N MB)` and, when set, the override folder.
fn kernels_text() -> String {
    let mut out = String::new();
    let targets = embedded::targets();
    if targets.is_empty() {
        out.push_str(&format!("embedded kernels: {}\n", embedded::summary()));
    } else {
        let (packed, unpacked) = embedded::total_bytes();
        out.push_str(&format!(
            "embedded kernels: {} ({:.1} MB, {:.1} MB compressed)\n",
            embedded::summary(),
            unpacked as f64 / 1e6,
            packed as f64 / 1e6
        ));
    }
    for note in embedded::build_notes()
        .iter()
        .skip(usize::from(targets.is_empty()))
    {
        let first = note.lines().next().unwrap_or_default();
        out.push_str(&format!("  not embedded: {first}\n"));
    }
    out.push_str(&format!(
        "other AMD targets: compiled at first use by {}\n",
        kernel_images::runtime::summary()
    ));
    if let Some(dir) = std::env::var_os(kernel_images::KERNEL_DIR_ENV).filter(|d| !d.is_empty()) {
        out.push_str(&format!(
            "{} = {} (searched before the embedded kernels)\n",
            kernel_images::KERNEL_DIR_ENV,
            std::path::Path::new(&dir).display()
        ));
    }
    out
}

fn text(inv: &Inventory) -> String {
    let mut out = kernels_text();
    if let Some((platform, lib)) = &inv.platform {
        out.push_str(&format!("platform: {platform} ({lib})\n"));
    }
    match &inv.devices {
        Err(e) => out.push_str(&format!("no GPU device: {e}\n")),
        Ok(devices) => {
            for d in devices {
                out.push_str(&format!("device {}: {}\n", d.index, d.name));
                out.push_str(&format!(
                    "  arch {}, {} compute units, warp size {}, up to {} threads per block\n",
                    d.arch, d.compute_units, d.warp_size, d.max_threads_per_block
                ));
                out.push_str(&format!(
                    "  memory {:.1} GiB total, {:.1} GiB free, bus {} bits, peak {:.0} GB/s\n",
                    gib(d.total_memory),
                    gib(d.free_memory),
                    d.memory_bus_width,
                    d.peak_bandwidth_bytes_per_s() / 1e9
                ));
                out.push_str(&format!(
                    "  shared memory {} KiB per block ({} KiB opt-in), L2 {} MiB\n",
                    d.max_shared_mem_per_block / 1024,
                    d.max_shared_mem_per_block_optin / 1024,
                    d.l2_cache_bytes >> 20
                ));
                out.push_str(&format!(
                    "  kernels: {}\n",
                    kernel_images::describe(d.platform, &d.arch)
                ));
            }
        }
    }
    out
}

fn json_value(inv: &Inventory) -> serde_json::Value {
    let devices: Vec<serde_json::Value> = match &inv.devices {
        Ok(list) => list
            .iter()
            .map(|d| {
                json!({
                    "index": d.index, "name": d.name, "arch": d.arch, "platform": d.platform.name(),
                    "total_memory": d.total_memory, "free_memory": d.free_memory,
                    "compute_units": d.compute_units, "warp_size": d.warp_size,
                    "max_threads_per_block": d.max_threads_per_block,
                    "max_shared_mem_per_block": d.max_shared_mem_per_block,
                    "max_shared_mem_per_block_optin": d.max_shared_mem_per_block_optin,
                    "l2_cache_bytes": d.l2_cache_bytes, "memory_bus_width": d.memory_bus_width,
                    "memory_clock_khz": d.memory_clock_khz,
                    "kernels": kernel_images::describe(d.platform, &d.arch),
                })
            })
            .collect(),
        Err(_) => Vec::new(),
    };
    json!({
        "platform": inv.platform.as_ref().map(|(p, _)| p),
        "library": inv.platform.as_ref().map(|(_, l)| l),
        "devices": devices,
        "error": inv.devices.as_ref().err().map(ToString::to_string),
        "runtime_compile": kernel_images::runtime::summary(),
        "embedded_kernels": embedded::targets()
            .iter()
            .map(|(p, a)| json!({"platform": p.name(), "arch": a}))
            .collect::<Vec<_>>(),
        "embedded_kernels_bytes": embedded::total_bytes().1,
        "embedded_kernels_compressed_bytes": embedded::total_bytes().0,
        "embedded_kernels_notes": embedded::build_notes(),
    })
}

/// Runs `rocmforge devices`.
pub fn run(args: &DevicesArgs) -> anyhow::Result<()> {
    let inv = inventory();
    if args.json {
        println!("{}", serde_json::to_string_pretty(&json_value(&inv))?);
    } else {
        print!("{}", text(&inv));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_json_agree_on_what_was_found() {
        let inv = inventory();
        let t = text(&inv);
        let j = json_value(&inv);
        assert!(t.starts_with("embedded kernels: "), "{t}");
        let rtc = j["runtime_compile"].as_str().unwrap_or("(missing)");
        assert!(
            t.contains(&format!("compiled at first use by {rtc}")),
            "{t}"
        );
        let listed = j["embedded_kernels"].as_array().map_or(0, Vec::len);
        assert_eq!(listed, embedded::targets().len());
        for (_, arch) in embedded::targets() {
            assert!(t.lines().next().is_some_and(|l| l.contains(arch)), "{t}");
        }
        match &inv.devices {
            Ok(devices) => {
                assert!(t.contains("device 0: "), "{t}");
                assert_eq!(j["devices"].as_array().map(Vec::len), Some(devices.len()));
                assert!(j["error"].is_null());
            }
            Err(e) => {
                assert!(t.contains("no GPU device: "), "{t}");
                assert_eq!(j["devices"].as_array().map(Vec::len), Some(0));
                assert_eq!(j["error"].as_str(), Some(e.to_string().as_str()));
            }
        }
    }
}
