//! CPU matmul throughput (weight bytes read per second) for SmolLM2-135M and Qwen2.5-0.5B
//! shapes, one decode token and a 64-token prefill, through `matmul` (the SIMD kernels
//! where the CPU has them) and `matmul_portable` (the scalar path), with the speedup.
//!
//! Run: `cargo bench -p rocmforge-tensor --bench cpu_matvec` (set `RAYON_NUM_THREADS` to
//! pin the thread count; `RF_BENCH_DECODE=1`: the one-token table only, fastest call and
//! median, see [`decode_best`]). Per-core figures use the CPU time of this process, so they mean
//! something on a shared machine; wall times do not.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use half::f16;
use rocmforge_gguf::GgmlType;
use rocmforge_tensor::cpu::{WeightView, matmul, matmul_portable};

/// Byte offsets of the f16 `d` (and min / dmin) fields inside one block of `ty`.
fn scale_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[0],
    }
}

/// Random bytes with small finite f16 scales.
fn weight(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let mut state = 0x1234_5678_9abc_def0u64;
    let n = rows * cols / ty.block_size() * ty.type_size();
    let mut data: Vec<u8> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 32) as u8
        })
        .collect();
    for blk in data.chunks_exact_mut(ty.type_size()) {
        for &at in scale_fields(ty) {
            blk[at..at + 2].copy_from_slice(&f16::from_f32(0.01).to_le_bytes());
        }
    }
    data
}

/// One weight of a benchmark table: type, shape and random bytes.
struct Case {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
}

impl Case {
    fn view(&self) -> WeightView<'_> {
        WeightView {
            ty: self.ty,
            data: &self.data,
            rows: self.rows,
            cols: self.cols,
        }
    }
}

/// Every type with every shape whose columns are whole blocks of it.
fn cases(types: &[GgmlType], shapes: &[(usize, usize)]) -> Vec<Case> {
    let mut out = Vec::new();
    for &ty in types {
        for &(rows, cols) in shapes {
            if cols % ty.block_size() == 0 {
                let data = weight(ty, rows, cols);
                out.push(Case {
                    ty,
                    rows,
                    cols,
                    data,
                });
            }
        }
    }
    out
}

/// CPU time (ns) all threads of this process have run, from `/proc/self/task/*/schedstat`
/// (Linux); `None` elsewhere. Lets the benchmark report per-core throughput on a busy
/// machine, where wall time mostly measures the other processes.
fn cpu_ns() -> Option<u64> {
    let mut total = 0u64;
    for task in std::fs::read_dir("/proc/self/task").ok()? {
        let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
        total += stat.split_whitespace().next()?.parse::<u64>().ok()?;
    }
    Some(total)
}

/// Runs `f` repeatedly for about `budget`; returns the mean wall time and the mean CPU
/// time (all threads) per call.
fn time_it(budget: Duration, mut f: impl FnMut()) -> (Duration, Option<Duration>) {
    f();
    let cpu0 = cpu_ns();
    let start = Instant::now();
    let mut iters = 0u32;
    while start.elapsed() < budget {
        f();
        iters += 1;
    }
    let wall = start.elapsed() / iters.max(1);
    let cpu = cpu0
        .zip(cpu_ns())
        .map(|(a, b)| Duration::from_nanos(b.saturating_sub(a)) / iters.max(1));
    (wall, cpu)
}

/// `RF_BENCH_DECODE=1`: one token only, each shape called many times, the *fastest* call
/// beside the median. On a machine that others share the fastest call is what the kernel
/// costs when nothing else runs (the median shows the noise); with `RAYON_NUM_THREADS=1`
/// and the weight in the L2 cache it times the kernel's arithmetic.
fn decode_best() {
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>12}",
        "type", "rows x cols", "best us", "median us", "GB/s (best)"
    );
    let types = [
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q4_0,
        GgmlType::Q8_0,
    ];
    for case in cases(&types, &[(896, 896), (4864, 896), (896, 4864)]) {
        let (w, data) = (case.view(), &case.data);
        let (ty, rows, cols) = (w.ty, w.rows, w.cols);
        let x: Vec<f32> = (0..cols).map(|i| ((i % 17) as f32 - 8.0) * 0.1).collect();
        let mut out = vec![0.0f32; rows];
        let mut times: Vec<Duration> = Vec::new();
        let start = Instant::now();
        while times.len() < 20 || start.elapsed() < Duration::from_millis(600) {
            let t = Instant::now();
            matmul(&w, &x, 1, &mut out).unwrap();
            times.push(t.elapsed());
        }
        times.sort();
        let (best, median) = (times[0], times[times.len() / 2]);
        println!(
            "{:<6} {:>10} {:>10.1} {:>10.1} {:>12.2}",
            ty.name(),
            format!("{rows}x{cols}"),
            best.as_secs_f64() * 1e6,
            median.as_secs_f64() * 1e6,
            data.len() as f64 / best.as_secs_f64() / 1e9
        );
    }
}

fn main() {
    let threads = rayon::current_num_threads();
    println!("rayon threads: {threads}");
    if std::env::var("RF_BENCH_DECODE").is_ok_and(|v| v == "1") {
        decode_best();
        return;
    }
    println!(
        "{:<6} {:>10} {:>6} {:>12} {:>14} {:>12} {:>8}",
        "type", "rows x cols", "tokens", "wall (simd)", "GB/s per core", "portable", "speedup"
    );
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::F16,
    ];
    let shapes = [(576usize, 1536usize), (1536, 576), (4864, 896), (896, 4864)];
    for case in cases(&types, &shapes) {
        let (w, data) = (case.view(), &case.data);
        let (ty, rows, cols) = (w.ty, w.rows, w.cols);
        for n_tokens in [1usize, 64] {
            let x: Vec<f32> = (0..n_tokens * cols)
                .map(|i| ((i % 17) as f32 - 8.0) * 0.1)
                .collect();
            let mut out = vec![0.0f32; n_tokens * rows];
            let budget = Duration::from_millis(400);
            let (wall, cpu) = time_it(budget, || matmul(&w, &x, n_tokens, &mut out).unwrap());
            let (_, cpu_p) = time_it(budget, || {
                matmul_portable(&w, &x, n_tokens, &mut out).unwrap()
            });
            let per_core = |c: Option<Duration>| {
                c.map_or(f64::NAN, |c| data.len() as f64 / c.as_secs_f64() / 1e9)
            };
            let (simd, portable) = (per_core(cpu), per_core(cpu_p));
            println!(
                "{:<6} {:>10} {:>6} {:>10.1}us {:>14.2} {:>12.2} {:>7.2}x",
                ty.name(),
                format!("{rows}x{cols}"),
                n_tokens,
                wall.as_secs_f64() * 1e6,
                simd,
                portable,
                simd / portable
            );
        }
    }
}
