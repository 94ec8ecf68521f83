//! One-token CPU matvec (decode) per weight type, on a machine that others share: each shape
//! is called many times and the *fastest* call is reported beside the median (the fastest
//! is what the kernel costs when nothing else runs; the median shows the noise). Not a test:
//! prints a table.
//!
//! Shapes are Qwen2.5-0.5B's: q/o (896 x 896), gate/up (4864 x 896), down (896 x 4864).
//! Weights are random bytes with finite f16 scales; the smallest shapes stay in the L2 cache,
//! so they time the kernel's arithmetic rather than memory.
//!
//! Run: `RAYON_NUM_THREADS=1 cargo run --release -p rocmforge-tensor --example bench_cpu_decode`
//! (`RF_BENCH_TYPES=Q4_K,Q6_K` picks types; `ROCMFORGE_CPU_SCALAR=1` times the portable path).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use half::f16;
use rocmforge_gguf::GgmlType;
use rocmforge_tensor::cpu::{WeightView, matmul};

/// Byte offsets of the f16 `d` (and min / dmin) fields inside one block of `ty`.
fn scale_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q6_K => &[208],
        _ => &[0],
    }
}

/// Random bytes (xorshift) with small finite f16 scales.
fn weight(ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1du64;
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

fn main() {
    let picked = std::env::var("RF_BENCH_TYPES").ok();
    let types = [
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q4_0,
        GgmlType::Q8_0,
    ];
    println!("rayon threads: {}", rayon::current_num_threads());
    println!(
        "{:<6} {:>10} {:>10} {:>10} {:>12}",
        "type", "rows x cols", "best us", "median us", "GB/s (best)"
    );
    for ty in types {
        if picked
            .as_deref()
            .is_some_and(|p| !p.split(',').any(|t| t == ty.name()))
        {
            continue;
        }
        for (rows, cols) in [(896usize, 896usize), (4864, 896), (896, 4864)] {
            if cols % ty.block_size() != 0 {
                continue;
            }
            let data = weight(ty, rows, cols);
            let w = WeightView {
                ty,
                data: &data,
                rows,
                cols,
            };
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
}
