//! Graph capture and replay; one backend used from eight threads at once.

use std::sync::Arc;

use rocmforge_hip::LaunchConfig;

use crate::support::{Ctx, Rng, Step, ensure};

pub fn graph_replays(ctx: &Ctx) -> Result<String, String> {
    let f = ctx.module.function("add_f32").step("function")?;
    let n = 4096usize;
    let n32 = n as u32;
    let mut rng = Rng::new(20);
    let step: Vec<f32> = (0..n).map(|_| (rng.next_u32() % 8) as f32).collect(); // small integers: exact sums
    let dstep = ctx.backend.htod(&step).step("htod")?;
    let mut acc = ctx.backend.alloc_zeros::<f32>(n).step("alloc")?;
    let stream = ctx.backend.new_stream().step("stream")?;
    stream.begin_capture().step("begin_capture")?;
    // acc += step, captured once; the kernel reads and writes acc in place (same element per thread).
    let acc_ptr = acc.device_ptr();
    // SAFETY: add_f32(a, b, out, n) with a = out = acc (elementwise, same index), b = step.
    let launched = unsafe {
        stream
            .launch_builder(&f)
            .arg(&acc_ptr)
            .arg(&dstep)
            .arg(&acc_ptr)
            .arg(&n32)
            .launch(LaunchConfig::for_num_elems(n32))
    };
    let graph = stream.end_capture().step("end_capture")?;
    launched.step("launch during capture")?;
    let exec = graph.instantiate().step("instantiate")?;
    let replays = 1000;
    let (a, b) = (
        ctx.backend.new_event().step("event")?,
        ctx.backend.new_event().step("event")?,
    );
    a.record(&stream).step("record")?;
    for _ in 0..replays {
        exec.launch(&stream).step("graph launch")?;
    }
    b.record(&stream).step("record")?;
    stream.synchronize().step("sync")?;
    let ms = a.elapsed_ms(&b).step("elapsed")?;
    let got = acc.to_vec().step("dtoh")?;
    let bad = got
        .iter()
        .zip(&step)
        .filter(|(g, s)| **g != **s * replays as f32)
        .count();
    ensure!(
        bad == 0,
        "{bad} of {n} elements differ after {replays} replays (first: {} vs {})",
        got[0],
        step[0] * replays as f32
    );
    acc.memset_zero().step("memset")?;
    Ok(format!(
        "[{replays} replays in {ms:.2} ms, {:.1} µs each]",
        ms * 1e3 / replays as f32
    ))
}

pub fn eight_threads(ctx: &Ctx) -> Result<String, String> {
    let f = ctx.module.function("add_f32").step("function")?;
    let backend = Arc::clone(&ctx.backend);
    let results: Vec<Result<(), String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u64)
            .map(|t| {
                let (backend, f) = (Arc::clone(&backend), f.clone());
                scope.spawn(move || -> Result<(), String> {
                    let mut rng = Rng::new(100 + t);
                    let stream = backend.new_stream().step("stream")?;
                    for round in 0..40 {
                        let n = 1000 + (rng.next_u32() % 100_000) as usize;
                        let (a, b) = (rng.f32s(n), rng.f32s(n));
                        let (da, db) = (
                            backend.htod(&a).step("htod")?,
                            backend.htod(&b).step("htod")?,
                        );
                        let mut out = backend.alloc::<f32>(n).step("alloc")?;
                        out.memset_bytes(0xFF).step("poison")?;
                        let n32 = n as u32;
                        // SAFETY: add_f32 over [0..n) of three n-element buffers.
                        unsafe {
                            stream
                                .launch_builder(&f)
                                .arg(&da)
                                .arg(&db)
                                .arg(&mut out)
                                .arg(&n32)
                                .launch(LaunchConfig::for_num_elems(n32))
                        }
                        .step("launch")?;
                        stream.synchronize().step("sync")?;
                        let got = out.to_vec().step("dtoh")?;
                        let ok = got
                            .iter()
                            .zip(a.iter().zip(&b))
                            .all(|(g, (x, y))| *g == x + y);
                        ensure!(ok, "thread {t} round {round}: wrong sums");
                    }
                    Ok(())
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|p| {
                    Err(format!(
                        "thread panicked: {}",
                        crate::support::panic_text(&p)
                    ))
                })
            })
            .collect()
    });
    let errors: Vec<String> = results.into_iter().filter_map(Result::err).collect();
    ensure!(errors.is_empty(), "{}", errors.join("; "));
    Ok("[8 threads × 40 rounds]".to_string())
}
