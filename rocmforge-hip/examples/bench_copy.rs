//! Device-to-device copy bandwidth through rocmforge-hip (a benchmark, not a test).
//!
//! `cargo run --release -p rocmforge-hip --example bench_copy [MiB]` (default 1024 MiB per buffer),
//! or `gpu-bundle/bin/bench_copy` on the GPU machine. Bandwidth counts bytes read plus bytes
//! written. Two ways are timed: the runtime's copy (`memcpy_dtod_async`) and the `copy_u32x4`
//! kernel at several grid sizes; each figure is the median of 30 timed runs after 3 warm-ups,
//! alternating between two source/destination pairs so no run starts from a warm cache.

use rocmforge_hip::{HipBackend, HipEvent, HipResult, HipStream, LaunchConfig};

/// The card's copy rate counting read + write, as PyTorch's copy measured it on the team's
/// machines (H100 80GB HBM3: about 3.0 TB/s; H200: about 4.3 TB/s). The target is 90% of it.
/// Other cards are compared with the peak computed from their memory clock and bus width.
fn reference_gbps(name: &str, attribute_peak: f64) -> (f64, &'static str) {
    if name.contains("H100") {
        (3000.0, "H100 copy rate")
    } else if name.contains("H200") {
        (4300.0, "H200 copy rate")
    } else {
        (attribute_peak, "attribute peak")
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn time_runs(
    stream: &HipStream,
    start: &HipEvent,
    end: &HipEvent,
    mut run: impl FnMut(usize) -> HipResult<()>,
) -> HipResult<f64> {
    for i in 0..3 {
        run(i)?;
    }
    let mut ms = Vec::new();
    for i in 0..30 {
        start.record(stream)?;
        run(i)?;
        end.record(stream)?;
        ms.push(f64::from(start.elapsed_ms(end)?));
    }
    Ok(median(ms))
}

fn main() {
    if let Err(e) = bench() {
        eprintln!("bench_copy: {e}");
        std::process::exit(1);
    }
}

fn bench() -> HipResult<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let backend = HipBackend::new(0)?;
    let info = backend.info().clone();
    let bytes = mib << 20;
    let n = bytes / 4;
    let mut src = [backend.alloc::<u32>(n)?, backend.alloc::<u32>(n)?];
    let mut dst = [backend.alloc::<u32>(n)?, backend.alloc::<u32>(n)?];
    for (i, b) in src.iter_mut().chain(dst.iter_mut()).enumerate() {
        b.memset_bytes(0x11 * (i as u8 + 1))?;
    }
    let stream = backend.new_stream()?;
    let (start, end) = (backend.new_event()?, backend.new_event()?);
    let gbps = |ms: f64| 2.0 * bytes as f64 / (ms * 1e-3) / 1e9;
    println!(
        "device: {} ({}), buffers: {mib} MiB each",
        info.name, info.arch
    );

    let (s_ref, d_ref) = (&src, &mut dst);
    let ms = time_runs(&stream, &start, &end, |i| {
        stream.memcpy_dtod_async(&s_ref[i % 2], &mut d_ref[i % 2])
    })?;
    let mut best = ("memcpy_dtod_async".to_string(), gbps(ms));
    println!(
        "memcpy_dtod_async          {ms:8.3} ms  {:7.0} GB/s",
        gbps(ms)
    );

    let module = backend.load_kernels("test_kernels")?;
    let f = module.function("copy_u32x4")?;
    let vecs = (n / 4) as u64;
    let cus = info.compute_units.max(1);
    let full = u32::try_from(vecs.div_ceil(256))
        .unwrap_or(u32::MAX)
        .min(1 << 30);
    for blocks in [cus * 4, cus * 8, cus * 16, cus * 32, full] {
        let cfg = LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let ms = time_runs(&stream, &start, &end, |i| {
            // SAFETY: copy_u32x4(const uint4*, uint4*, u64) over `vecs` 16-byte vectors of two
            // buffers of n u32 each (n is a multiple of 4).
            unsafe {
                stream
                    .launch_builder(&f)
                    .arg(&src[i % 2])
                    .arg(&dst[i % 2])
                    .arg(&vecs)
                    .launch(cfg)
            }
        })?;
        let label = format!("copy_u32x4 grid {blocks}");
        println!("{label:26} {ms:8.3} ms  {:7.0} GB/s", gbps(ms));
        if gbps(ms) > best.1 {
            best = (label, gbps(ms));
        }
    }
    // The copy must have copied.
    let sample = dst[0].to_vec()?;
    if sample.iter().any(|v| *v != 0x1111_1111) {
        eprintln!("bench_copy: destination does not hold the source's bytes");
        std::process::exit(1);
    }
    let peak = info.peak_bandwidth_bytes_per_s() / 1e9;
    let (reference, what) = reference_gbps(&info.name, peak);
    println!(
        "copy bandwidth: {:.0} GB/s (read + write, {}) = {:.1}% of the {reference:.0} GB/s {what}; attribute peak {peak:.0} GB/s",
        best.1,
        best.0,
        100.0 * best.1 / reference
    );
    Ok(())
}
