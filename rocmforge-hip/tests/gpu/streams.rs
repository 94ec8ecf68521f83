//! Events and concurrent streams, measured with the spin kernel.

use std::time::Instant;

use rocmforge_hip::{DeviceBuffer, HipFunction, HipStream, LaunchConfig};

use crate::support::{Ctx, Step, ensure};

fn spin(
    stream: &HipStream,
    f: &HipFunction,
    out: &mut DeviceBuffer<u64>,
    ticks: u64,
) -> Result<(), String> {
    let cfg = LaunchConfig {
        grid_dim: (1, 1, 1),
        block_dim: (64, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: spin_u64(u64* out, u64 ticks) writes out[0] only.
    unsafe { stream.launch_builder(f).arg(out).arg(&ticks).launch(cfg) }.step("launch spin_u64")
}

/// Device clock ticks that take about `ms` milliseconds on this device.
fn calibrate(ctx: &Ctx, f: &HipFunction, ms: f32) -> Result<u64, String> {
    let stream = ctx.backend.new_stream().step("stream")?;
    let mut out = ctx.backend.alloc_zeros::<u64>(1).step("alloc")?;
    let (a, b) = (
        ctx.backend.new_event().step("event")?,
        ctx.backend.new_event().step("event")?,
    );
    let probe = 1_000_000u64;
    spin(&stream, f, &mut out, probe)?; // warm-up
    a.record(&stream).step("record")?;
    spin(&stream, f, &mut out, probe)?;
    b.record(&stream).step("record")?;
    let took = a.elapsed_ms(&b).step("elapsed")?;
    ensure!(took > 0.0, "spin of {probe} ticks took {took} ms");
    Ok(((probe as f64) * f64::from(ms / took)) as u64)
}

pub fn event_timing(ctx: &Ctx) -> Result<String, String> {
    let f = ctx.module.function("spin_u64").step("function")?;
    let ticks = calibrate(ctx, &f, 10.0)?;
    let stream = ctx.backend.new_stream().step("stream")?;
    let mut out = ctx.backend.alloc::<u64>(1).step("alloc")?;
    out.memset_bytes(0).step("memset")?;
    let events: Vec<_> = (0..3)
        .map(|_| ctx.backend.new_event())
        .collect::<Result<_, _>>()
        .step("events")?;
    events[0].record(&stream).step("record")?;
    spin(&stream, &f, &mut out, ticks)?;
    events[1].record(&stream).step("record")?;
    spin(&stream, &f, &mut out, 2 * ticks)?;
    events[2].record(&stream).step("record")?;
    let short = events[0].elapsed_ms(&events[1]).step("elapsed")?;
    let long = events[1].elapsed_ms(&events[2]).step("elapsed")?;
    let seen = out.to_vec().step("dtoh")?[0];
    ensure!(
        seen >= 2 * ticks,
        "spin kernel reports {seen} ticks, asked {}",
        2 * ticks
    );
    ensure!(
        (5.0..40.0).contains(&short),
        "10 ms spin timed at {short} ms"
    );
    ensure!(
        long > 1.5 * short && long < 3.0 * short,
        "double spin took {long} ms vs {short} ms"
    );
    Ok(format!("[{short:.2} ms and {long:.2} ms]"))
}

pub fn two_streams_overlap(ctx: &Ctx) -> Result<String, String> {
    let f = ctx.module.function("spin_u64").step("function")?;
    let ticks = calibrate(ctx, &f, 50.0)?;
    let (s1, s2) = (
        ctx.backend.new_stream().step("stream")?,
        ctx.backend.new_stream().step("stream")?,
    );
    let mut o1 = ctx.backend.alloc_zeros::<u64>(1).step("alloc")?;
    let mut o2 = ctx.backend.alloc_zeros::<u64>(1).step("alloc")?;
    let t = Instant::now();
    spin(&s1, &f, &mut o1, ticks)?;
    s1.synchronize().step("sync")?;
    let alone = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    spin(&s1, &f, &mut o1, ticks)?;
    spin(&s2, &f, &mut o2, ticks)?;
    s1.synchronize().step("sync")?;
    s2.synchronize().step("sync")?;
    let both = t.elapsed().as_secs_f64() * 1e3;
    ensure!(
        both < 1.5 * alone,
        "two streams took {both:.1} ms, one alone {alone:.1} ms: no overlap"
    );
    // Ordering across streams: s2 waits for an event recorded on s1.
    let ev = ctx.backend.new_event().step("event")?;
    let t = Instant::now();
    spin(&s1, &f, &mut o1, ticks)?;
    ev.record(&s1).step("record")?;
    s2.wait_event(&ev).step("wait_event")?;
    spin(&s2, &f, &mut o2, ticks)?;
    s2.synchronize().step("sync")?;
    let chained = t.elapsed().as_secs_f64() * 1e3;
    ensure!(
        chained > 1.7 * alone,
        "s2 did not wait for s1's event: {chained:.1} ms vs {alone:.1} ms"
    );
    Ok(format!(
        "[one {alone:.1} ms, two at once {both:.1} ms, chained {chained:.1} ms]"
    ))
}
