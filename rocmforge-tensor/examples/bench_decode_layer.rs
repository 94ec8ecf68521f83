//! One Llama-3-8B decode layer (dim 4096, ffn 14336, 32 heads / 8 KV heads of 128, Q4_K
//! weights, KV depth 4096) as the captured decode step runs it (not a test: prints a table).
//!
//! The layer's launches are those of rocmforge-model's `gpu/decode_graph.rs`: fused residual
//! add + RMS norm + q8_1, q/k/v matvecs on the q8_1 activations, RoPE of q and k + KV append in
//! one launch, split-K decode attention, output projection, fused norm, gate/up, fused
//! silu·mul + q8_1, down projection. Timed with device events, median of 50:
//! - "graph": the layer captured once and replayed;
//! - "eager": the same launches queued one by one.
//!
//! Then decode attention alone at depths 512 and 4096: the split-K kernel against the general
//! attention op (one block per head). Floor: bytes read / 3.0 TB/s (the H100's copy rate).
//! Weights are random values quantized to Q4_K (a few rows, tiled): never zeros.
//!
//! Run: `cargo run --release -p rocmforge-tensor --example bench_decode_layer` (needs a GPU).
//!
//! Results (H100 80GB HBM3, 2026-11-27; run 1 nvcc cubins, run 2 clang PTX; 5 warm-up runs then):
//! layer graph replay 0.224 / 0.217 ms, eager 0.243 / 0.237 ms (floor 0.047 ms: 4.7x);
//! split-K attention 0.059 / 0.057 ms at depth 512 and 0.065 / 0.063 ms at depth 4096, the
//! general attention op 0.114 / 0.094 and 0.860 / 0.690 ms. The split-K time hardly moves with
//! depth (per-block latency: each thread computes whole dot products of 128 values for all
//! heads of its group, then a sequential V loop), and loading V 8 keys deep (run 2) gained 3%:
//! the next step is warp-cooperative scores and V split over warps. Warm-up is now 100 runs.
//!
//! Run 3 (same card type, ncu 2025.3 on this example, SM clock 1.59 GHz under ncu): with that
//! next step done (lanes split head_dim, each warp a run of 32 keys with an online softmax, no
//! block barriers, combine over 512 threads) the partial kernel still takes 89.7k cycles per
//! block (56.5 us) at depth 512, where only 32 of its 272 blocks have keys, and 91.4k (57.5 us)
//! at depth 4096; 255 registers (theoretical occupancy 12.5%), DRAM throughput 1.2% / 8.8%;
//! combine 5.2 / 10.3 us. The cost does not move with the work a block does, so it is not the
//! per-thread serial chain. Suspects left: code size (every loop unrolled over 8 query heads
//! per KV head with run-time guards; the layer's weights evict L2 between launches, so the
//! code is fetched cold) and the register count. In the same profile (an eager layer, depth
//! 4096, ncu flushing caches between kernels) add_rms_norm_q8_1 (one block) takes 22.5 us, the
//! down projection (mmvq_q4_k_n1) 26 us, q/o/gate/up (mmvqa_q4_k_n1) 9-17 us, k/v 5.8 us.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use half::f16;
use rocmforge_gguf::{GgmlType, quants};
use rocmforge_hip::{DeviceBuffer, HipBackend};
use rocmforge_tensor::cpu::{AttentionParams, RopeMode, RopeParams};
use rocmforge_tensor::hip::attention_decode::{self, DecodeAttentionShape};
use rocmforge_tensor::hip::q8_1_act::Q8_1Act;
use rocmforge_tensor::hip::rope::{QkvShape, rope_qk_kv_append};
use rocmforge_tensor::hip::{HipOps, elementwise, matmul, norm};
use rocmforge_tensor::{Backend, DeviceTensor, Tensor, ops};

const DIM: usize = 4096;
const FFN: usize = 14336;
const HEADS: usize = 32;
const KV_HEADS: usize = 8;
const HEAD_DIM: usize = 128;
const CTX: usize = 4352;
const COPY_BYTES_PER_S: f64 = 3.0e12;

struct Rng(u64);
impl Rng {
    fn uniform(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.uniform()).collect()
    }
}

/// A `rows x cols` Q4_K weight: 16 random rows quantized, tiled over all rows.
fn q4k(dev: &Arc<HipBackend>, rng: &mut Rng, rows: usize, cols: usize) -> DeviceTensor {
    let seed_rows = 16;
    let block = quants::quantize(GgmlType::Q4_K, &rng.vec(seed_rows * cols)).unwrap();
    let mut bytes = Vec::with_capacity(block.len() * rows / seed_rows);
    while bytes.len() < block.len() * rows / seed_rows {
        bytes.extend_from_slice(&block);
    }
    DeviceTensor::from_raw_bytes(dev, GgmlType::Q4_K, vec![rows, cols], &bytes).unwrap()
}

fn f32s(dev: &Arc<HipBackend>, rng: &mut Rng, n: usize) -> DeviceTensor {
    DeviceTensor::from_f32(dev, vec![1, n], &rng.vec(n)).unwrap()
}

struct Layer {
    norm1: DeviceTensor,
    norm2: DeviceTensor,
    q: DeviceTensor,
    k: DeviceTensor,
    v: DeviceTensor,
    o: DeviceTensor,
    gate: DeviceTensor,
    up: DeviceTensor,
    down: DeviceTensor,
}

struct Acts {
    x: DeviceTensor,
    normed: DeviceTensor,
    normed_q8: Q8_1Act,
    q: DeviceTensor,
    k: DeviceTensor,
    v: DeviceTensor,
    attn: DeviceTensor,
    attn_q8: Q8_1Act,
    proj: DeviceTensor,
    gate: DeviceTensor,
    up: DeviceTensor,
    hidden: DeviceTensor,
    hidden_q8: Q8_1Act,
    kc: DeviceTensor,
    vc: DeviceTensor,
    pos: DeviceBuffer<u32>,
    row: DeviceBuffer<u32>,
    len: DeviceBuffer<u32>,
    ws: DeviceBuffer<f32>,
}

fn proj(ops: &HipOps, w: &DeviceTensor, x: &Q8_1Act, out: &mut DeviceTensor) {
    let wb = w.bytes_buffer().unwrap();
    let ob = out.f32_buffer_mut("bench").unwrap();
    ops.with_matmul(|ctx, s| {
        matmul::matmul_q8_1(ctx, wb, w.dtype(), w.rows(), w.cols(), x.buffer(), 1, ob, s)
    })
    .unwrap();
}

fn shape() -> DecodeAttentionShape {
    DecodeAttentionShape {
        n_heads: HEADS,
        n_kv_heads: KV_HEADS,
        head_dim: HEAD_DIM,
        capacity: CTX,
    }
}

fn record(ops: &HipOps, l: &Layer, a: &mut Acts, rope: &RopeParams) {
    let qkv = QkvShape {
        n_tokens: 1,
        n_heads: HEADS,
        n_kv_heads: KV_HEADS,
        head_dim: HEAD_DIM,
    };
    let eps = 1e-5;
    norm::add_rms_norm_q8_1(
        ops,
        &mut a.x,
        Some(&a.proj),
        &l.norm1,
        eps,
        &mut a.normed,
        &mut a.normed_q8,
    )
    .unwrap();
    proj(ops, &l.q, &a.normed_q8, &mut a.q);
    proj(ops, &l.k, &a.normed_q8, &mut a.k);
    proj(ops, &l.v, &a.normed_q8, &mut a.v);
    rope_qk_kv_append(
        ops, &mut a.q, &a.k, &a.v, &mut a.kc, &mut a.vc, &a.pos, &a.row, &qkv, rope,
    )
    .unwrap();
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    attention_decode::attention_decode(
        ops,
        &a.q,
        &a.kc,
        &a.vc,
        &a.len,
        &shape(),
        scale,
        &mut a.ws,
        &mut a.attn,
    )
    .unwrap();
    a.attn_q8.quantize(ops, &a.attn).unwrap();
    proj(ops, &l.o, &a.attn_q8, &mut a.proj);
    norm::add_rms_norm_q8_1(
        ops,
        &mut a.x,
        Some(&a.proj),
        &l.norm2,
        eps,
        &mut a.normed,
        &mut a.normed_q8,
    )
    .unwrap();
    proj(ops, &l.gate, &a.normed_q8, &mut a.gate);
    proj(ops, &l.up, &a.normed_q8, &mut a.up);
    elementwise::silu_mul_q8_1(ops, &a.gate, &a.up, &mut a.hidden, &mut a.hidden_q8).unwrap();
    proj(ops, &l.down, &a.hidden_q8, &mut a.proj);
}

/// Median milliseconds of `f` over 50 runs, each between two events.
fn time(ops: &HipOps, mut f: impl FnMut()) -> f64 {
    let dev = ops.backend();
    for _ in 0..100 {
        f();
    }
    let (e0, e1) = (dev.new_event().unwrap(), dev.new_event().unwrap());
    let mut ms = Vec::new();
    for _ in 0..50 {
        e0.record(ops.stream()).unwrap();
        f();
        e1.record(ops.stream()).unwrap();
        e1.synchronize().unwrap();
        ms.push(f64::from(e0.elapsed_ms(&e1).unwrap()));
    }
    ms.sort_by(f64::total_cmp);
    ms[ms.len() / 2]
}

fn main() {
    let be = Backend::hip(0).expect("GPU 0");
    let Backend::Hip(ops) = &be else {
        panic!("not HIP")
    };
    let ops: &HipOps = ops;
    let dev = ops.backend().clone();
    println!("device: {}", dev.info().name);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let kv = KV_HEADS * HEAD_DIM;
    let l = Layer {
        norm1: f32s(&dev, &mut rng, DIM),
        norm2: f32s(&dev, &mut rng, DIM),
        q: q4k(&dev, &mut rng, DIM, DIM),
        k: q4k(&dev, &mut rng, kv, DIM),
        v: q4k(&dev, &mut rng, kv, DIM),
        o: q4k(&dev, &mut rng, DIM, DIM),
        gate: q4k(&dev, &mut rng, FFN, DIM),
        up: q4k(&dev, &mut rng, FFN, DIM),
        down: q4k(&dev, &mut rng, DIM, FFN),
    };
    let weight_bytes: usize = [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
        .iter()
        .map(|t| t.size_bytes())
        .sum();
    let cache: Vec<f16> = rng
        .vec(CTX * kv)
        .iter()
        .map(|&v| f16::from_f32(v))
        .collect();
    let depth = 4096u32;
    let mut a = Acts {
        x: f32s(&dev, &mut rng, DIM),
        normed: f32s(&dev, &mut rng, DIM),
        normed_q8: Q8_1Act::new(&dev, 1, DIM).unwrap(),
        q: f32s(&dev, &mut rng, DIM),
        k: f32s(&dev, &mut rng, kv),
        v: f32s(&dev, &mut rng, kv),
        attn: f32s(&dev, &mut rng, DIM),
        attn_q8: Q8_1Act::new(&dev, 1, DIM).unwrap(),
        proj: f32s(&dev, &mut rng, DIM),
        gate: f32s(&dev, &mut rng, FFN),
        up: f32s(&dev, &mut rng, FFN),
        hidden: f32s(&dev, &mut rng, FFN),
        hidden_q8: Q8_1Act::new(&dev, 1, FFN).unwrap(),
        kc: DeviceTensor::from_f16(&dev, vec![CTX, kv], &cache).unwrap(),
        vc: DeviceTensor::from_f16(&dev, vec![CTX, kv], &cache).unwrap(),
        pos: dev.htod(&[depth]).unwrap(),
        row: dev.htod(&[depth]).unwrap(),
        len: dev.htod(&[depth + 1]).unwrap(),
        ws: dev
            .alloc_zeros::<f32>(attention_decode::workspace_len(&shape()))
            .unwrap(),
    };
    let rope = RopeParams {
        n_rot: HEAD_DIM,
        freq_base: 500_000.0,
        freq_scale: 1.0,
        mode: RopeMode::Normal,
        yarn: None,
    };
    let x0 = rng.vec(DIM);
    let eager = time(ops, || record(ops, &l, &mut a, &rope));
    ops.synchronize().unwrap();
    a.x.copy_from_f32(&x0).unwrap();
    ops.stream().begin_capture().unwrap();
    record(ops, &l, &mut a, &rope);
    let exec = ops.stream().end_capture().unwrap().instantiate().unwrap();
    let graph = time(ops, || exec.launch(ops.stream()).unwrap());
    let kv_bytes = 2 * (depth as usize + 1) * kv * 2;
    let floor = (weight_bytes + kv_bytes) as f64 / COPY_BYTES_PER_S * 1e3;
    println!();
    println!(
        "| Llama-3-8B layer, Q4_K, depth {depth} | ms | x floor | 32 layers -> tok/s (no head) |"
    );
    println!("|---|---|---|---|");
    for (name, ms) in [("graph replay", graph), ("eager launches", eager)] {
        println!(
            "| {name} | {ms:.4} | {:.2} | {:.0} |",
            ms / floor,
            1e3 / (32.0 * ms)
        );
    }
    println!("floor {floor:.4} ms = ({weight_bytes} weight + {kv_bytes} KV bytes) / 3.0 TB/s");

    println!();
    println!("| attention h32/8 d128 | split-K ms | general op ms | KV floor ms |");
    println!("|---|---|---|---|");
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    for d in [512u32, 4096] {
        a.len.copy_from_host(&[d]).unwrap();
        let split = time(ops, || {
            attention_decode::attention_decode(
                ops,
                &a.q,
                &a.kc,
                &a.vc,
                &a.len,
                &shape(),
                scale,
                &mut a.ws,
                &mut a.attn,
            )
            .unwrap();
        });
        let p = AttentionParams {
            n_q_tokens: 1,
            n_kv_tokens: d as usize,
            n_heads: HEADS,
            n_kv_heads: KV_HEADS,
            head_dim: HEAD_DIM,
            scale,
        };
        let q = Tensor::Hip(DeviceTensor::from_f32(&dev, vec![1, DIM], &rng.vec(DIM)).unwrap());
        let kt = Tensor::Hip(DeviceTensor::from_f16(&dev, vec![CTX, kv], &cache).unwrap());
        let vt = Tensor::Hip(DeviceTensor::from_f16(&dev, vec![CTX, kv], &cache).unwrap());
        let mut o = Tensor::Hip(DeviceTensor::from_f32(&dev, vec![1, DIM], &x0).unwrap());
        let general = time(ops, || {
            ops::attention(&be, &q, &kt, &vt, &p, &mut o).unwrap()
        });
        let floor = (2 * d as usize * kv * 2) as f64 / COPY_BYTES_PER_S * 1e3;
        println!("| depth {d} | {split:.4} | {general:.4} | {floor:.4} |");
    }
}
