//! Device attributes, allocation, copies, pinned memory, out-of-memory.

use rocmforge_hip::{HipError, Platform};

use crate::support::{Ctx, Rng, Step, ensure};

pub fn device_attributes(ctx: &Ctx) -> Result<String, String> {
    let info = ctx.backend.info();
    ensure!(!info.name.is_empty(), "empty device name");
    let arch_ok = match info.platform {
        Platform::Amd => info.arch.starts_with("gfx"),
        Platform::Nvidia => info.arch.starts_with("sm_"),
    };
    ensure!(
        arch_ok,
        "arch {} does not fit platform {}",
        info.arch,
        info.platform
    );
    ensure!(
        info.warp_size == 32 || info.warp_size == 64,
        "warp size {}",
        info.warp_size
    );
    ensure!(
        info.compute_units > 0 && info.max_threads_per_block >= 256,
        "{info:?}"
    );
    ensure!(
        info.max_shared_mem_per_block >= 32 * 1024,
        "shared memory {}",
        info.max_shared_mem_per_block
    );
    let (free, total) = ctx.backend.mem_info().step("mem_info")?;
    ensure!(total == info.total_memory || total > 0, "total {total}");
    ensure!(free > 0 && free <= total, "free {free} of {total}");
    let listed = rocmforge_hip::list_devices().step("list_devices")?;
    ensure!(
        listed.first().map(|d| &d.name) == Some(&info.name),
        "list_devices disagrees: {listed:?}"
    );
    Ok(format!(
        "[{} {} CUs, {} KiB shared/block, L2 {} MiB, peak {:.0} GB/s]",
        info.arch,
        info.compute_units,
        info.max_shared_mem_per_block / 1024,
        info.l2_cache_bytes >> 20,
        info.peak_bandwidth_bytes_per_s() / 1e9
    ))
}

pub fn alloc_free(ctx: &Ctx) -> Result<String, String> {
    let b = &ctx.backend;
    let bytes = 512usize << 20;
    let (free_before, _) = b.mem_info().step("mem_info")?;
    let mut buf = b.alloc::<u8>(bytes).step("alloc 512 MiB")?;
    let (free_during, _) = b.mem_info().step("mem_info")?;
    ensure!(
        free_before - free_during >= bytes,
        "free fell by {} for a {bytes}-byte buffer",
        free_before - free_during
    );
    buf.memset_bytes(0xA5).step("memset")?;
    let probe = b.alloc::<u8>(4096).step("alloc probe")?;
    drop(probe);
    drop(buf);
    let (free_after, _) = b.mem_info().step("mem_info")?;
    ensure!(
        free_after + (64 << 20) >= free_before,
        "memory not returned: before {free_before}, after {free_after}"
    );
    // Many small allocations of different types and sizes, including zero.
    for i in 0..200usize {
        let f = b.alloc_zeros::<f32>(i * 37).step("alloc_zeros f32")?;
        ensure!(
            f.to_vec().step("dtoh")?.iter().all(|x| *x == 0.0),
            "alloc_zeros not zero at size {i}"
        );
        let _h = b.alloc::<half::f16>(i * 3 + 1).step("alloc f16")?;
    }
    Ok(String::new())
}

fn checksum(data: &[u32]) -> (u64, u64) {
    data.iter()
        .enumerate()
        .fold((0u64, 0u64), |(s, x), (i, v)| {
            (
                s.wrapping_add(u64::from(*v)),
                x ^ (u64::from(*v)).rotate_left((i % 64) as u32),
            )
        })
}

pub fn round_trip_1gib(ctx: &Ctx) -> Result<String, String> {
    let b = &ctx.backend;
    let n = (1usize << 30) / 4;
    let mut rng = Rng::new(1);
    let host: Vec<u32> = (0..n).map(|_| rng.next_u32()).collect();
    let want = checksum(&host);
    let t0 = std::time::Instant::now();
    let src = b.htod(&host).step("htod 1 GiB")?;
    let t1 = std::time::Instant::now();
    let mut dst = b.alloc::<u32>(n).step("alloc 1 GiB")?;
    dst.memset_bytes(0xFF).step("poison")?;
    dst.copy_from_device(&src).step("dtod 1 GiB")?;
    drop(src);
    let t2 = std::time::Instant::now();
    let back = dst.to_vec().step("dtoh 1 GiB")?;
    let t3 = std::time::Instant::now();
    ensure!(
        checksum(&back) == want,
        "checksum differs after H2D → D2D → D2H"
    );
    ensure!(back == host, "contents differ");
    let gib = |d: std::time::Duration| 1.0 / d.as_secs_f64();
    Ok(format!(
        "[H2D {:.1} GiB/s, D2D+sync {:.0} GiB/s, D2H {:.1} GiB/s, pageable]",
        gib(t1 - t0),
        gib(t2 - t1),
        gib(t3 - t2)
    ))
}

pub fn pinned_async_copies(ctx: &Ctx) -> Result<String, String> {
    let b = &ctx.backend;
    let n = 16 << 20;
    let mut rng = Rng::new(2);
    let mut pinned = b.alloc_pinned::<f32>(n).step("alloc_pinned")?;
    for x in pinned.iter_mut() {
        *x = rng.next_f32();
    }
    let want: Vec<f32> = pinned.to_vec();
    let mut dev = b.alloc::<f32>(n).step("alloc")?;
    let mut copy = b.alloc::<f32>(n).step("alloc")?;
    let mut back = b.alloc_pinned::<f32>(n).step("alloc_pinned")?;
    let stream = b.new_stream().step("new_stream")?;
    let (start, end) = (b.new_event().step("event")?, b.new_event().step("event")?);
    start.record(&stream).step("record")?;
    // SAFETY: `pinned`, `dev` and `back` live until the stream is synchronised below.
    unsafe { stream.memcpy_htod_async(&pinned, &mut dev) }.step("htod async")?;
    stream
        .memcpy_dtod_async(&dev, &mut copy)
        .step("dtod async")?;
    // SAFETY: as above.
    unsafe { stream.memcpy_dtoh_async(&copy, &mut back) }.step("dtoh async")?;
    end.record(&stream).step("record")?;
    stream.synchronize().step("synchronize")?;
    let ms = start.elapsed_ms(&end).step("elapsed")?;
    ensure!(back[..] == want[..], "async round trip differs");
    let mb = (n * 4) as f64 / 1e6;
    Ok(format!(
        "[64 MiB pinned H2D+D2D+D2H in {ms:.2} ms, ~{:.1} GB/s host link]",
        2.0 * mb / ms as f64
    ))
}

pub fn out_of_memory(ctx: &Ctx) -> Result<String, String> {
    let b = &ctx.backend;
    let (_, total) = b.mem_info().step("mem_info")?;
    let requested = total * 2;
    match b.alloc::<u8>(requested) {
        Err(HipError::OutOfMemory { requested: r, free }) => {
            ensure!(
                r == requested,
                "error reports {r} bytes requested, asked {requested}"
            );
            ensure!(
                free > 0 && free <= total,
                "error reports {free} bytes free of {total}"
            );
            let still = b.htod(&[1u32, 2, 3]).step("alloc after OOM")?;
            ensure!(
                still.to_vec().step("dtoh")? == [1, 2, 3],
                "device unusable after OOM"
            );
            Ok(format!(
                "[{}]",
                HipError::OutOfMemory { requested: r, free }
            ))
        }
        Err(other) => Err(format!("expected OutOfMemory, got {other}")),
        Ok(_) => Err(format!(
            "allocating {requested} bytes on a {total}-byte device succeeded"
        )),
    }
}
