//! Prefill matmul speed: the vendor-BLAS path of `hip::matmul` (weights decoded to f16, then a
//! cuBLAS / rocBLAS GEMM) against the mmq kernels, on Llama-3-8B's shapes (not a test: tables).
//!
//! 1. Per projection at n = 512 and 2048: decode time (`dequant_f16`), GEMM time (on weights
//!    already in f16) and the GEMM's TFLOP/s.
//! 2. One layer's 7 matmuls (q, k, v, o, gate, up, down) and the LM head, through `matmul`
//!    with the BLAS path and with the mmq kernels; the matmul-only prefill rate of the 32-layer
//!    model, n / (32 * layer + head), for Q4_K (head Q6_K, as Q4_K_M), Q4_0, Q8_0 and F16.
//! 3. The token count from which the BLAS path wins (one layer, Q4_K), for the threshold.
//!
//! Weights: 64 random rows quantized on the CPU and repeated (quantizing 8B of weights on the
//! CPU would take minutes); every layer weight is its own buffer, so a layer's weights exceed the
//! L2 cache. Timed with device events: median of repeated calls after warm-up.
//!
//! Run: `cargo run --release -p rocmforge-tensor --example bench_prefill_blas` (GPU, kernel
//! images and the BLAS library needed; `ROCMFORGE_BLAS_LIB` may point at libcublas.so).
//!
//! ## Results: H100 80GB HBM3, 2026-11-27, cuBLAS 13 (pip's nvidia-cublas), nvcc sm_90 cubins
//!
//! Two numbers first: the 8B's matmuls are 15.0 GFLOP per token (32 layers + LM head); Q4_K
//! weights decode to 2 bytes per value written + 0.56 read. Prediction (v1): GEMM at ~550
//! TFLOP/s and decode at ~2.5 TB/s give ~0.6 ms per Q4_K layer at n = 512 and ~26k t/s
//! (matmuls only).
//!
//! v1 (one thread writes its own 64-256 contiguous bytes): decode at 575-760 GB/s, a quarter of
//! the prediction; it was 70% of the layer time. Q4_K layer 1.311 ms, head (Q6_K) 3.540 ms:
//! 11,255 t/s at n = 512. Prediction for v2 (decoded chunks staged in shared memory, each block
//! writing one coalesced run): decode ~3x faster, layer ~0.75 ms, ~20k t/s.
//!
//! v2 (the code now): decode 2.1-2.6 TB/s on the large weights (1.0-1.2 on the 1024-row k/v);
//! GEMM 460-720 TFLOP/s at n = 512, 700-860 at n = 2048 (k/v: 200 / 500).
//!
//! | weights | n | path | layer ms | head ms | model ms | t/s (matmuls only) | TFLOP/s |
//! |---|---|---|---|---|---|---|---|
//! | Q4_K (head Q6_K) | 512 | BLAS | 0.628 | 1.342 | 21.4 | 23897 | 359 |
//! | Q4_K (head Q6_K) | 512 | mmq | 9.860 | 26.331 | 341.9 | 1498 | 22 |
//! | Q4_K (head Q6_K) | 2048 | BLAS | 1.634 | 3.595 | 55.9 | 36644 | 550 |
//! | Q4_0 | 512 | BLAS | 0.625 | 1.268 | 21.3 | 24080 | 361 |
//! | Q4_0 | 2048 | BLAS | 1.620 | 3.390 | 55.2 | 37083 | 557 |
//! | Q8_0 | 512 | BLAS | 0.663 | 1.354 | 22.6 | 22696 | 341 |
//! | Q8_0 | 2048 | BLAS | 1.668 | 3.522 | 56.9 | 36004 | 540 |
//! | F16 | 512 | BLAS | 0.413 | 0.843 | 14.1 | 36381 | 546 |
//! | F16 | 2048 | BLAS | 1.419 | 2.997 | 48.4 | 42317 | 635 |
//!
//! Threshold (one Q4_K layer, ms, BLAS / kernels): n=8 0.426 / 0.375 (matvec), n=9 0.445 /
//! 1.243, 32 0.471 / 1.256, 128 0.440 / 2.688: the BLAS takes every count the tiled mmq took.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use half::f16;
use rocmforge_gguf::GgmlType;
use rocmforge_gguf::quants::quantize;
use rocmforge_hip::{DeviceBuffer, HipBackend, HipStream};
use rocmforge_tensor::hip::dequant_f16::dequantize_f16;
use rocmforge_tensor::hip::matmul::{MatmulContext, matmul};

/// (name, rows, cols) of one Llama-3-8B layer.
const LAYER: [(&str, usize, usize); 7] = [
    ("q", 4096, 4096),
    ("k", 1024, 4096),
    ("v", 1024, 4096),
    ("o", 4096, 4096),
    ("gate", 14336, 4096),
    ("up", 14336, 4096),
    ("down", 4096, 14336),
];
const HEAD: (usize, usize) = (128_256, 4096);
const N_LAYERS: usize = 32;

fn weight_bytes(
    backend: &Arc<HipBackend>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    seed: u64,
) -> DeviceBuffer<u8> {
    let mut s = seed | 1;
    let block_rows = 64.min(rows);
    let vals: Vec<f32> = (0..block_rows * cols)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect();
    let q = quantize(ty, &vals).unwrap();
    let mut all = Vec::with_capacity(q.len() * rows.div_ceil(block_rows));
    while all.len() < q.len() / block_rows * rows {
        all.extend_from_slice(&q);
    }
    all.truncate(q.len() / block_rows * rows);
    backend.htod(&all).unwrap()
}

fn activations(backend: &Arc<HipBackend>, n: usize) -> DeviceBuffer<f32> {
    let v: Vec<f32> = (0..n)
        .map(|i| ((i * 7919 % 1000) as f32 / 500.0 - 1.0) * 0.5)
        .collect();
    backend.htod(&v).unwrap()
}

/// Median milliseconds of `f` (queued on `stream`), after 3 warm-up runs.
fn time_ms(backend: &Arc<HipBackend>, stream: &HipStream, reps: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..3 {
        f();
    }
    stream.synchronize().unwrap();
    let (a, b) = (backend.new_event().unwrap(), backend.new_event().unwrap());
    let mut ms = Vec::with_capacity(reps);
    for _ in 0..reps {
        a.record(stream).unwrap();
        f();
        b.record(stream).unwrap();
        b.synchronize().unwrap();
        ms.push(f64::from(a.elapsed_ms(&b).unwrap()));
    }
    ms.sort_by(f64::total_cmp);
    ms[reps / 2]
}

struct Layer {
    ty: GgmlType,
    weights: Vec<(DeviceBuffer<u8>, usize, usize)>,
}

fn layer(backend: &Arc<HipBackend>, ty: GgmlType) -> Layer {
    let weights = LAYER
        .iter()
        .enumerate()
        .map(|(i, &(_, r, c))| (weight_bytes(backend, ty, r, c, 11 + i as u64), r, c))
        .collect();
    Layer { ty, weights }
}

/// Milliseconds of one layer's 7 matmuls at `n` tokens through `matmul` as configured.
fn layer_ms(
    backend: &Arc<HipBackend>,
    stream: &HipStream,
    ctx: &mut MatmulContext,
    l: &Layer,
    n: usize,
    reps: usize,
) -> f64 {
    let x = activations(backend, n * 14336);
    let mut out = backend.alloc::<f32>(n * 14336).unwrap();
    time_ms(backend, stream, reps, || {
        for (w, r, c) in &l.weights {
            matmul(ctx, w, l.ty, *r, *c, &x, n, &mut out, stream).unwrap();
        }
    })
}

fn head_ms(
    backend: &Arc<HipBackend>,
    stream: &HipStream,
    ctx: &mut MatmulContext,
    w: &DeviceBuffer<u8>,
    ty: GgmlType,
    n: usize,
    reps: usize,
) -> f64 {
    let x = activations(backend, n * HEAD.1);
    let mut out = backend.alloc::<f32>(n * HEAD.0).unwrap();
    time_ms(backend, stream, reps, || {
        matmul(ctx, w, ty, HEAD.0, HEAD.1, &x, n, &mut out, stream).unwrap();
    })
}

fn main() {
    let backend = HipBackend::new(0).expect("GPU");
    let stream = backend.new_stream().unwrap();
    let mut ctx = MatmulContext::new(&backend).unwrap();
    // BLAS against the mmq kernels: the batched-decode tile kernels (mmqt) stay out of it
    // (bench_matmul compares those with the BLAS).
    ctx.set_mmqt(rocmforge_tensor::hip::matmul_mmqt::MmqtMode::Never);
    let lib = ctx.blas().expect("vendor BLAS").library().to_string();
    println!(
        "device: {} ({}), BLAS: {lib}",
        backend.info().name,
        backend.arch()
    );
    let flops_per_token = 2.0
        * (N_LAYERS * LAYER.iter().map(|(_, r, c)| r * c).sum::<usize>() + HEAD.0 * HEAD.1) as f64;
    println!(
        "matmul FLOPs per token (32 layers + head): {:.2} GFLOP",
        flops_per_token / 1e9
    );

    // 1. Decode and GEMM apart, Q4_K weights.
    println!("\n## Q4_K per projection: decode to f16, GEMM (f16 weights), n = 512 / 2048");
    println!(
        "| proj | rows x cols | decode ms | decode GB/s (f16 written + read) | GEMM ms n=512 | TFLOP/s | GEMM ms n=2048 | TFLOP/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let q4k = layer(&backend, GgmlType::Q4_K);
    for (i, &(name, r, c)) in LAYER.iter().enumerate() {
        let w = &q4k.weights[i].0;
        let mut w16 = backend.alloc::<f16>(r * c).unwrap();
        let blas = ctx.blas().unwrap();
        let dec = time_ms(&backend, &stream, 20, || {
            dequantize_f16(blas.kernels(), w, GgmlType::Q4_K, r, c, &mut w16, &stream).unwrap();
        });
        let gbs = (r * c * 2 + w.len()) as f64 / (dec * 1e-3) / 1e9;
        let mut row = format!("| {name} | {r} x {c} | {dec:.3} | {gbs:.0} |");
        for n in [512usize, 2048] {
            let x16 = backend.alloc::<f16>(n * c).unwrap();
            let mut out = backend.alloc::<f32>(n * r).unwrap();
            let mut handle = rocmforge_hip::blas::BlasHandle::new(&backend).unwrap();
            let g = time_ms(&backend, &stream, 20, || {
                handle
                    .matmul_f16_f32(&stream, &w16, &x16, &mut out, r, c, n)
                    .unwrap();
            });
            let tf = 2.0 * (r * c * n) as f64 / (g * 1e-3) / 1e12;
            row += &format!(" {g:.3} | {tf:.0} |");
        }
        println!("{row}");
    }
    drop(q4k);

    // 2. Layer + head through matmul: BLAS vs mmq.
    println!(
        "\n## One layer (7 matmuls) + LM head through hip::matmul; matmul-only prefill rate of the 8B"
    );
    println!(
        "| weights | n | path | layer ms | head ms | model ms | t/s (matmuls only) | TFLOP/s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for (ty, head_ty) in [
        (GgmlType::Q4_K, GgmlType::Q6_K),
        (GgmlType::Q4_0, GgmlType::Q4_0),
        (GgmlType::Q8_0, GgmlType::Q8_0),
        (GgmlType::F16, GgmlType::F16),
    ] {
        let l = layer(&backend, ty);
        let head = weight_bytes(&backend, head_ty, HEAD.0, HEAD.1, 5);
        for n in [512usize, 2048] {
            for (path, min) in [("BLAS", Some(1)), ("mmq", None)] {
                if path == "mmq" && (n == 2048 || ty == GgmlType::F16) {
                    continue; // the slow path once per type is enough
                }
                ctx.set_blas_min_tokens(min);
                let reps = if path == "mmq" { 3 } else { 10 };
                let lm = layer_ms(&backend, &stream, &mut ctx, &l, n, reps);
                let hm = head_ms(&backend, &stream, &mut ctx, &head, head_ty, n, reps);
                let model = N_LAYERS as f64 * lm + hm;
                let tps = n as f64 / (model * 1e-3);
                let tf = tps * flops_per_token / 1e12;
                println!(
                    "| {ty} (head {head_ty}) | {n} | {path} | {lm:.3} | {hm:.3} | {model:.1} | {tps:.0} | {tf:.0} |"
                );
            }
        }
    }

    // 3. Threshold: one Q4_K layer, BLAS vs the mmq/mmvq kernels.
    println!("\n## Threshold: one Q4_K layer (7 matmuls), ms");
    println!("| n | BLAS | kernels |");
    println!("|---|---|---|");
    let l = layer(&backend, GgmlType::Q4_K);
    for n in [8usize, 9, 16, 24, 32, 48, 64, 128] {
        ctx.set_blas_min_tokens(Some(1));
        let b = layer_ms(&backend, &stream, &mut ctx, &l, n, 10);
        ctx.set_blas_min_tokens(None);
        let k = layer_ms(&backend, &stream, &mut ctx, &l, n, 10);
        println!("| {n} | {b:.3} | {k:.3} |");
    }
}
