//! Prefill matmul time per type on the CPU (not a test: prints a table).
//!
//! For each type, one `matmul_with` of 128 tokens (`RF_BENCH_TOKENS`) against a
//! 0.5B-model `ffn_down`-shaped weight (896 rows x 4864 columns) at the AVX2 token tiles
//! (`Avx2`) and at the panel GEMM (`Avx2Gemm`, or `Avx512Vnni` where the CPU has it; the
//! K-quants below `K_GEMM_MIN_TOKENS` and the legacy types below the AVX2 GEMM floors in
//! `cpu/matmul.rs` stay on the tiles), the fastest and median of 15
//! calls after 2 warm-up calls, and the two paths' ratio. `RF_BENCH_ROWS` / `RF_BENCH_COLS`
//! change the shape (`RF_BENCH_TOKENS=1` with a weight larger than the caches times the decode
//! rows as a decode step streams them). Run with `RAYON_NUM_THREADS=1`
//! for one core's speed: `cargo run --release -p rocmforge-tensor --example
//! bench_cpu_prefill`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use rocmforge_gguf::GgmlType;
use rocmforge_tensor::cpu::{CpuKernels, WeightView, matmul_with};

fn time(kernels: CpuKernels, w: &WeightView, x: &[f32], n: usize, out: &mut [f32]) -> (f64, f64) {
    for _ in 0..2 {
        matmul_with(kernels, w, x, n, out).unwrap();
    }
    let mut ts: Vec<f64> = (0..15)
        .map(|_| {
            let t = Instant::now();
            matmul_with(kernels, w, x, n, out).unwrap();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ts.sort_by(f64::total_cmp);
    (ts[0], ts[ts.len() / 2])
}

fn main() {
    let n: usize = std::env::var("RF_BENCH_TOKENS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(128);
    let dim = |key: &str, default: usize| {
        std::env::var(key)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (rows, cols) = (dim("RF_BENCH_ROWS", 896), dim("RF_BENCH_COLS", 4864));
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let x: Vec<f32> = (0..n * cols)
        .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
        .collect();
    println!("| type | tiles ms (min / med) | GEMM ms (min / med) | tiles / GEMM |");
    println!("| --- | ---: | ---: | ---: |");
    for ty in [
        GgmlType::Q4_K,
        GgmlType::Q5_K,
        GgmlType::Q6_K,
        GgmlType::Q5_0,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::MXFP4,
    ] {
        if cols % ty.block_size() != 0 {
            continue;
        }
        let bytes = rows * cols / ty.block_size() * ty.type_size();
        let values: Vec<f32> = (0..rows * cols)
            .map(|_| (next() % 2001) as f32 / 1000.0 - 1.0)
            .collect();
        let data = rocmforge_gguf::quants::quantize(ty, &values).unwrap();
        assert_eq!(data.len(), bytes);
        let w = WeightView {
            ty,
            data: &data,
            rows,
            cols,
        };
        let mut out = vec![0.0f32; n * rows];
        let tiles = time(CpuKernels::Avx2, &w, &x, n, &mut out);
        let gemm = time(CpuKernels::Avx512Vnni, &w, &x, n, &mut out);
        println!(
            "| {ty} | {:.2} / {:.2} | {:.2} / {:.2} | {:.2} |",
            tiles.0,
            tiles.1,
            gemm.0,
            gemm.1,
            tiles.0 / gemm.0
        );
    }
}
