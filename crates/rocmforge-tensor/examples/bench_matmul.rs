//! Decode matvec bandwidth of `rocmforge_tensor::hip::matmul` (not a test: prints a table).
//!
//! For each weight type and shape (SmolLM2-135M and Llama-3-8B projections), one token, one
//! `matmul` call = q8_1 activation quantization + matvec kernel. Two timings, both with device
//! events after warm-up: "graph" — a graph of back-to-back calls captured once and replayed
//! (as the decode loop runs), median over 30 replays divided by the calls per graph; "call" —
//! the median of 100 single calls each between two events (includes launch gaps). Weights are
//! random bytes, rotated among enough copies that they cannot stay in the L2 cache. Achieved
//! bandwidth = weight bytes / time, compared with this device's measured device-to-device copy
//! rate (bytes read + written) and with 3.35 TB/s (the H100 SXM's peak read rate; an H200
//! reads faster, so compare with the copy rate there).
//! Then a few prefill shapes (512 tokens, tiled kernels) in TFLOP/s.
//!
//! Run: `cargo run --release -p rocmforge-tensor --example bench_matmul` (needs a GPU and the
//! kernel images; `cargo xtask gpu-bundle` packages it).
//!
//! ## Results (NVIDIA H200, 2026-11-27, copy rate measured 4.24 TB/s read + write)
//!
//! Decode, 1 token, graph replay, % of the copy rate: Llama-3-8B lm_head 128256x4096: Q8_0 101%,
//! F16 102%, Q4_1 88%, Q4_0 86%, Q4_K 68%, Q6_K 42%; ffn 14336x4096: Q8_0 73%, F16 84%, Q4_0
//! 55%, Q4_K 43%, Q6_K 32%; 4096x4096: 24-65%. SmolLM2 shapes (<= 1.8 MB) take 3.6-4.3 us per
//! call, i.e. two dependent launches (quantize + matvec) in a graph: launch-bound, not
//! bandwidth-bound. Prefill 512 tokens (tiled, dp4a, no tensor cores): ~23 TFLOP/s quantized,
//! ~13-15 TFLOP/s F16.
//!
//! History: v1 (one kernel for 1..8 tokens, a full 8-token reduction, one chunk per thread):
//! 15-50% of copy on large shapes. v2 (kernels per token count, ~4 chunks per thread with
//! their loads batched, branch-free loads from 2-byte aligned blocks, F16 activations rounded
//! once): the numbers above, 2-4x faster. Tried and reverted: 16-byte activation scale records
//! carrying the half-block sums (no dp4a for the K-quant mins) plus exactly one load batch per
//! thread: Q4_K 20% slower (decode and prefill), others unchanged.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use rocmforge_gguf::GgmlType;
use rocmforge_hip::{DeviceBuffer, HipBackend, HipStream};
use rocmforge_tensor::hip::matmul::{MatmulContext, matmul};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

const PEAK_READ: f64 = 3.35e12;

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        v.extend_from_slice(&s.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Random weights that keep float fields finite: every 16-bit word's exponent bits cleared
/// to a small range (so f16 scales are normal numbers, f16/bf16 weights finite).
fn random_weights(ty: GgmlType, n: usize, seed: u64) -> Vec<u8> {
    let mut v = random_bytes(n, seed);
    if matches!(ty, GgmlType::F32) {
        for w in v.chunks_exact_mut(4) {
            w[3] = (w[3] & 0x80) | 0x3c; // |x| in [2^-7, 2^-6)·mantissa
        }
    } else {
        for w in v.chunks_exact_mut(2) {
            w[1] = (w[1] & 0x83) | 0x18; // f16 exponent 6 (~2^-9); bf16 tiny but finite
        }
    }
    v
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

struct Bench {
    backend: Arc<HipBackend>,
    stream: HipStream,
    ctx: MatmulContext,
}

impl Bench {
    /// Median milliseconds of `matmul` for `n_tokens` over rotating weight copies:
    /// (per call in a replayed graph, per single call).
    fn time(
        &mut self,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        n_tokens: usize,
    ) -> BenchResult<(f32, f32)> {
        let bytes = rows * cols / ty.block_size() * ty.type_size();
        let copies = (256usize << 20).div_ceil(bytes).clamp(1, 512);
        let host = random_weights(ty, bytes, (rows * 31 + cols) as u64);
        let mut ws: Vec<DeviceBuffer<u8>> = Vec::with_capacity(copies);
        for _ in 0..copies {
            ws.push(self.backend.htod(&host)?);
        }
        let xh: Vec<f32> = random_bytes(n_tokens * cols * 4, 7)
            .chunks_exact(4)
            .map(|b| (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / u32::MAX as f32) - 0.5)
            .collect();
        let x = self.backend.htod(&xh)?;
        let mut out = self.backend.alloc::<f32>(n_tokens * rows)?;
        self.ctx.reserve(n_tokens, cols)?;
        let (start, end) = (self.backend.new_event()?, self.backend.new_event()?);
        for i in 0..10 {
            let w = &ws[i % copies];
            matmul(
                &mut self.ctx,
                w,
                ty,
                rows,
                cols,
                &x,
                n_tokens,
                &mut out,
                &self.stream,
            )?;
        }
        let mut times = Vec::with_capacity(100);
        for i in 0..100 {
            let w = &ws[(i + 10) % copies];
            start.record(&self.stream)?;
            matmul(
                &mut self.ctx,
                w,
                ty,
                rows,
                cols,
                &x,
                n_tokens,
                &mut out,
                &self.stream,
            )?;
            end.record(&self.stream)?;
            end.synchronize()?;
            times.push(start.elapsed_ms(&end)?);
        }
        let single = median(times);
        // A graph of back-to-back calls over the rotating copies.
        let per_graph = copies.max(8);
        self.stream.begin_capture()?;
        for i in 0..per_graph {
            let w = &ws[i % copies];
            matmul(
                &mut self.ctx,
                w,
                ty,
                rows,
                cols,
                &x,
                n_tokens,
                &mut out,
                &self.stream,
            )?;
        }
        let exec = self.stream.end_capture()?.instantiate()?;
        exec.launch(&self.stream)?;
        self.stream.synchronize()?;
        let mut graph_times = Vec::with_capacity(30);
        for _ in 0..30 {
            start.record(&self.stream)?;
            exec.launch(&self.stream)?;
            end.record(&self.stream)?;
            end.synchronize()?;
            graph_times.push(start.elapsed_ms(&end)? / per_graph as f32);
        }
        let got = out.to_vec()?;
        if got.iter().any(|v| !v.is_finite()) {
            return Err(format!("{ty} {rows}x{cols}: non-finite output").into());
        }
        Ok((median(graph_times), single))
    }

    /// Device-to-device copy rate (bytes read + written per second), median of 20.
    fn copy_rate(&self) -> BenchResult<f64> {
        let n = 256usize << 20; // 1 GiB of f32
        let src = self.backend.alloc_zeros::<f32>(n)?;
        let mut dst = self.backend.alloc_zeros::<f32>(n)?;
        let (start, end) = (self.backend.new_event()?, self.backend.new_event()?);
        let mut times = Vec::new();
        for i in 0..23 {
            start.record(&self.stream)?;
            self.stream.memcpy_dtod_async(&src, &mut dst)?;
            end.record(&self.stream)?;
            end.synchronize()?;
            if i >= 3 {
                times.push(start.elapsed_ms(&end)?);
            }
        }
        Ok(2.0 * (n * 4) as f64 / (f64::from(median(times)) * 1e-3))
    }
}

fn main() -> BenchResult<()> {
    let backend = HipBackend::new(0)?;
    let stream = backend.new_stream()?;
    let ctx = MatmulContext::new(&backend)?;
    let mut b = Bench {
        backend: Arc::clone(&backend),
        stream,
        ctx,
    };
    let copy = b.copy_rate()?;
    println!(
        "device: {} ({}); device-to-device copy: {:.0} GB/s (read + write)",
        backend.info().name,
        backend.arch(),
        copy / 1e9
    );
    let shapes: [(&str, usize, usize); 8] = [
        ("smollm2 qkvo", 576, 576),
        ("smollm2 gate/up", 1536, 576),
        ("smollm2 down", 576, 1536),
        ("smollm2 lm_head", 49152, 576),
        ("llama3 qo", 4096, 4096),
        ("llama3 gate/up", 14336, 4096),
        ("llama3 down", 4096, 14336),
        ("llama3 lm_head", 128256, 4096),
    ];
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q4_1,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q8_0,
        GgmlType::F16,
    ];
    println!(
        "\n| shape | rows x cols | type | MB | us (graph) | GB/s | % of copy | % of 3.35 TB/s | us (call) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (name, rows, cols) in shapes {
        for ty in types {
            if cols % ty.block_size() != 0 {
                println!(
                    "| {name} | {rows}x{cols} | {ty} | - | - | - | - | (cols not a multiple of {}) |",
                    ty.block_size()
                );
                continue;
            }
            let bytes = (rows * cols / ty.block_size() * ty.type_size()) as f64;
            let (ms, single) = b.time(ty, rows, cols, 1)?;
            let bw = bytes / (f64::from(ms) * 1e-3);
            println!(
                "| {name} | {rows}x{cols} | {ty} | {:.2} | {:.1} | {:.0} | {:.0}% | {:.0}% | {:.1} |",
                bytes / 1e6,
                ms * 1e3,
                bw / 1e9,
                100.0 * bw / copy,
                100.0 * bw / PEAK_READ,
                single * 1e3
            );
        }
    }
    println!(
        "\n| prefill | rows x cols | type | tokens | ms | TFLOP/s |\n|---|---|---|---|---|---|"
    );
    for (rows, cols) in [(4096usize, 4096usize), (14336, 4096)] {
        for ty in [
            GgmlType::Q4_0,
            GgmlType::Q4_K,
            GgmlType::Q8_0,
            GgmlType::F16,
        ] {
            let n = 512;
            let (ms, _) = b.time(ty, rows, cols, n)?;
            let flops = 2.0 * (rows * cols * n) as f64 / (f64::from(ms) * 1e-3);
            println!(
                "| prefill | {rows}x{cols} | {ty} | {n} | {ms:.3} | {:.1} |",
                flops / 1e12
            );
        }
    }
    Ok(())
}
