//! Sampling speed for a batch of logit rows of Qwen2.5's vocabulary (151,936): `sample_rows` on
//! the GPU (only ids come back) against what the engine did before — read the rows' logits
//! back and run the chain on the host — for 1, 8 and 32 rows (not a test: a table).
//!
//! Settings: greedy (`argmax_rows`, the floor), the server's default (temperature 0.7 over the
//! whole vocabulary), llama.cpp's default chain (top-k 40, top-p 0.95, min-p 0.05, T 0.8),
//! top-p 0.9 without top-k, and the server default with 64 penalised tokens. GPU: mean of 20
//! back-to-back runs between device events (upload of the step's inputs + kernel). Host: wall time of the
//! logits read-back plus `cpu::sample_row` on every row.
//!
//! Run: `cargo run --release -p rocmforge-tensor --example bench_sample` (or `bin/bench_sample`
//! of the GPU bundle).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Instant;

use rocmforge_hip::HipBackend;
use rocmforge_tensor::cpu::{self, SampleParams, SampleRow};
use rocmforge_tensor::device_tensor::DeviceTensor;
use rocmforge_tensor::hip::HipOps;
use rocmforge_tensor::hip::argmax::argmax_rows;
use rocmforge_tensor::hip::sample::sample_rows_queued;

/// Mean milliseconds of one call of `f` over 20 back-to-back calls between two device events,
/// after one warm-up call.
fn mean_ms(backend: &Arc<HipBackend>, ops: &HipOps, mut f: impl FnMut()) -> f64 {
    f();
    ops.synchronize().unwrap();
    let (a, b) = (backend.new_event().unwrap(), backend.new_event().unwrap());
    a.record(ops.stream()).unwrap();
    for _ in 0..20 {
        f();
    }
    b.record(ops.stream()).unwrap();
    b.synchronize().unwrap();
    f64::from(a.elapsed_ms(&b).unwrap()) / 20.0
}

/// A 64-bit linear congruential generator (Knuth's MMIX constants): the logits (uniform in
/// [-4, 4) with a few tokens 10 higher, as a model's peaked distribution) and the uniforms.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 11
    }
    fn unit(&mut self) -> f64 {
        self.next() as f64 / (1u64 << 53) as f64
    }
}

fn main() {
    let backend = HipBackend::new(0).expect("GPU");
    let ops = HipOps::new(&backend).unwrap();
    println!("device: {} ({})", backend.info().name, backend.arch());
    let vocab = 151_936usize;
    let server = SampleParams {
        temperature: 0.7,
        ..SampleParams::GREEDY
    };
    let settings: [(&str, SampleParams, usize); 5] = [
        ("greedy (argmax_rows)", SampleParams::GREEDY, 0),
        ("T 0.7, full vocabulary", server, 0),
        (
            "top-k 40, top-p 0.95, min-p 0.05, T 0.8",
            SampleParams {
                temperature: 0.8,
                top_k: 40,
                top_p: 0.95,
                min_p: 0.05,
                ..SampleParams::GREEDY
            },
            0,
        ),
        (
            "top-p 0.9, T 0.7",
            SampleParams {
                top_p: 0.9,
                ..server
            },
            0,
        ),
        (
            "T 0.7 + 64 penalised tokens",
            SampleParams {
                repeat_penalty: 1.1,
                presence_penalty: 0.2,
                ..server
            },
            64,
        ),
    ];
    println!("| setting | rows | GPU sample_rows ms | host (read back + chain) ms | speed-up |");
    println!("|---|---:|---:|---:|---:|");
    let mut rng = Lcg(0x1234_5678_9abc_def1);
    for (name, params, n_pen) in settings {
        for rows in [1usize, 8, 32] {
            let mut logits: Vec<f32> = (0..rows * vocab)
                .map(|_| (rng.unit() * 8.0 - 4.0) as f32)
                .collect();
            for _ in 0..rows * 20 {
                let i = (rng.next() % logits.len() as u64) as usize;
                logits[i] += 10.0;
            }
            let x = DeviceTensor::from_f32(&backend, vec![rows, vocab], &logits).unwrap();
            let penalties: Vec<(u32, u32)> = (0..n_pen as u32).map(|t| (t * 997, 1)).collect();
            let spec: Vec<SampleRow<'_>> = (0..rows)
                .map(|_| SampleRow {
                    params,
                    penalties: &penalties,
                    allowed: None,
                    bias: &[],
                    u: rng.unit(),
                })
                .collect();
            let mut out = backend.alloc_zeros::<u32>(rows).unwrap();
            let gpu = if params.temperature <= 0.0 {
                mean_ms(&backend, &ops, || {
                    argmax_rows(&ops, &x, vocab, rows, &mut out).unwrap()
                })
            } else {
                mean_ms(&backend, &ops, || {
                    sample_rows_queued(&ops, &x, vocab, &spec, &mut out).unwrap()
                })
            };
            let raw = out.to_vec().unwrap();
            let flagged = raw.iter().filter(|&&id| id == u32::MAX).count();
            let start = Instant::now();
            let host = x.to_f32_vec().unwrap();
            for (row, l) in spec.iter().zip(host.chunks_exact(vocab)) {
                std::hint::black_box(cpu::sample_row(l, row));
            }
            let host_ms = start.elapsed().as_secs_f64() * 1e3;
            let note = if flagged > 0 {
                format!(" ({flagged} rows left to the host)")
            } else {
                String::new()
            };
            println!(
                "| {name}{note} | {rows} | {gpu:.3} | {host_ms:.3} | {:.1}x |",
                host_ms / gpu
            );
        }
    }
}
