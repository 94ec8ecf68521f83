//! The mixture-of-experts ops on the CPU against naive references written here: `matmul_id`
//! against f64 dots of each slot's expert rows dequantized by `rocmforge-gguf` (bounded by the
//! 8-bit activation rounding), `moe_route` against a sort of the softmax, and a whole
//! feed-forward (route → gate/up → SwiGLU → down → weighted sum) through the public ops against
//! a dense f64 one. Odd sizes, prefill and decode batches, outputs poisoned first.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::{Rng, random_weight};
use rocmforge_gguf::GgmlType;
use rocmforge_gguf::quants::dequantize_to_vec;
use rocmforge_tensor::cpu::{MatmulIdShape, WeightView, matmul_id, moe_route, moe_weighted_sum};
use rocmforge_tensor::{Backend, Ids, Weight, ops};

/// Softmax in f64, the `k` largest (index order on ties), renormalised.
fn route_ref(logits: &[f32], k: usize) -> (Vec<usize>, Vec<f64>) {
    let mx = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f64> = logits.iter().map(|&l| f64::from(l - mx).exp()).collect();
    let sum: f64 = e.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| e[b].total_cmp(&e[a]).then(a.cmp(&b)));
    order.truncate(k);
    let chosen: f64 = order.iter().map(|&i| e[i] / sum).sum();
    let w = order.iter().map(|&i| e[i] / sum / chosen).collect();
    (order, w)
}

#[test]
fn route_picks_the_most_probable_experts_and_normalises_their_weights() {
    let mut rng = Rng::new(7);
    let (n_tokens, n_expert, k) = (9, 13, 3);
    let logits = rng.vec(n_tokens * n_expert, -3.0, 3.0);
    let mut ids = vec![u32::MAX; n_tokens * k];
    let mut w = vec![f32::NAN; n_tokens * k];
    moe_route(&logits, n_expert, k, true, &mut ids, &mut w).unwrap();
    for t in 0..n_tokens {
        let (want_ids, want_w) = route_ref(&logits[t * n_expert..(t + 1) * n_expert], k);
        for j in 0..k {
            assert_eq!(ids[t * k + j] as usize, want_ids[j], "token {t} slot {j}");
            let err = (f64::from(w[t * k + j]) - want_w[j]).abs();
            assert!(err < 1e-6, "token {t} slot {j}: weight err {err}");
        }
        let sum: f32 = w[t * k..(t + 1) * k].iter().sum();
        assert!((sum - 1.0).abs() < 1e-5, "token {t}: weights sum to {sum}");
    }
    // Without normalisation the weights are the plain probabilities (summing below one).
    moe_route(&logits, n_expert, k, false, &mut ids, &mut w).unwrap();
    assert!(w[..k].iter().sum::<f32>() < 1.0);
    assert!(moe_route(&logits, n_expert, n_expert + 1, true, &mut ids, &mut w).is_err());
}

/// Checks `matmul_id` for one weight type; returns the largest error relative to each dot's
/// magnitude.
fn check_matmul_id(ty: GgmlType, s: MatmulIdShape, rows: usize, cols: usize, seed: u64) -> f64 {
    let mut rng = Rng::new(seed);
    let data = random_weight(&mut rng, ty, s.n_expert * rows, cols);
    let w = WeightView {
        ty,
        data: &data,
        rows: s.n_expert * rows,
        cols,
    };
    let x = rng.vec(s.x_rows() * cols, -2.0, 2.0);
    let ids: Vec<u32> = (0..s.n_tokens * s.k)
        .map(|_| (rng.next_u64() % s.n_expert as u64) as u32)
        .collect();
    let mut out = vec![f32::NAN; s.n_tokens * s.k * rows];
    matmul_id(&w, &s, &x, &ids, &mut out).unwrap();
    let wd = dequantize_to_vec(ty, &data).unwrap();
    let mut worst = 0.0f64;
    for slot in 0..s.n_tokens * s.k {
        let xr = if s.x_per_slot { slot } else { slot / s.k };
        let xs = &x[xr * cols..(xr + 1) * cols];
        let e = ids[slot] as usize;
        for r in 0..rows {
            let wr = &wd[(e * rows + r) * cols..(e * rows + r + 1) * cols];
            let dot: f64 = wr
                .iter()
                .zip(xs)
                .map(|(&a, &b)| f64::from(a) * f64::from(b))
                .sum();
            let mag: f64 = wr
                .iter()
                .zip(xs)
                .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                .sum();
            let got = out[slot * rows + r];
            assert!(got.is_finite(), "{ty} slot {slot} row {r}: {got}");
            worst = worst.max((f64::from(got) - dot).abs() / mag.max(1e-30));
        }
    }
    worst
}

#[test]
fn matmul_id_multiplies_each_slot_by_its_expert_only() {
    let types = [
        GgmlType::Q4_0,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::F16,
        GgmlType::F32,
    ];
    for (i, ty) in types.into_iter().enumerate() {
        let cols = if ty.block_size() == 256 { 512 } else { 96 };
        for (n_tokens, x_per_slot) in [(1, false), (1, true), (7, false), (7, true)] {
            let s = MatmulIdShape {
                n_expert: 5,
                n_tokens,
                k: 3,
                x_per_slot,
            };
            let err = check_matmul_id(ty, s, 11, cols, 40 + i as u64);
            eprintln!("{ty:>5} tokens {n_tokens} per-slot {x_per_slot}: rel err {err:.2e}");
            assert!(err < 5e-3, "{ty} {s:?}: error {err}");
        }
    }
}

#[test]
fn matmul_id_refuses_bad_ids_and_shapes() {
    let mut rng = Rng::new(3);
    let data = random_weight(&mut rng, GgmlType::Q8_0, 4 * 3, 32);
    let w = WeightView {
        ty: GgmlType::Q8_0,
        data: &data,
        rows: 12,
        cols: 32,
    };
    let s = MatmulIdShape {
        n_expert: 4,
        n_tokens: 1,
        k: 2,
        x_per_slot: false,
    };
    let x = vec![0.5; 32];
    let mut out = vec![0.0; 6];
    assert!(
        matmul_id(&w, &s, &x, &[0, 4], &mut out).is_err(),
        "id 4 of 4"
    );
    assert!(
        matmul_id(&w, &s, &x, &[0], &mut out).is_err(),
        "one id for two slots"
    );
    let five = MatmulIdShape { n_expert: 5, ..s };
    assert!(
        matmul_id(&w, &five, &x, &[0, 1], &mut out).is_err(),
        "12 rows in 5 slabs"
    );
    assert!(moe_weighted_sum(&[0.0; 6], &[1.0; 3], 2, &mut [0.0; 3]).is_err());
}

/// A SwiGLU feed-forward of every token's chosen experts in f64, from dequantized weights.
#[allow(clippy::too_many_arguments)]
fn moe_ffn_ref(
    router: &[f32],
    gate: &[f32],
    up: &[f32],
    down: &[f32],
    x: &[f32],
    n_expert: usize,
    k: usize,
    d: usize,
    ff: usize,
) -> Vec<f64> {
    let dot =
        |a: &[f32], b: &[f64]| -> f64 { a.iter().zip(b).map(|(&p, &q)| f64::from(p) * q).sum() };
    let mut out = Vec::new();
    for xt in x.chunks_exact(d) {
        let x64: Vec<f64> = xt.iter().map(|&v| f64::from(v)).collect();
        let logits: Vec<f32> = (0..n_expert)
            .map(|e| dot(&router[e * d..(e + 1) * d], &x64) as f32)
            .collect();
        let (ids, w) = route_ref(&logits, k);
        let mut acc = vec![0.0f64; d];
        for (&e, &we) in ids.iter().zip(&w) {
            let h: Vec<f64> = (0..ff)
                .map(|r| {
                    let row = (e * ff + r) * d;
                    let g = dot(&gate[row..row + d], &x64);
                    let u = dot(&up[row..row + d], &x64);
                    g / (1.0 + (-g).exp()) * u
                })
                .collect();
            for (c, a) in acc.iter_mut().enumerate() {
                let row = (e * d + c) * ff;
                *a += we * dot(&down[row..row + ff], &h);
            }
        }
        out.extend(acc);
    }
    out
}

#[test]
fn the_ops_chain_into_a_mixture_of_experts_feed_forward() {
    let (n_expert, k, d, ff) = (6, 2, 64, 96);
    let be = Backend::Cpu;
    let mut rng = Rng::new(11);
    let router = rng.vec(n_expert * d, -0.5, 0.5);
    let (ty, n_tokens) = (GgmlType::Q8_0, 5);
    let gate = random_weight(&mut rng, ty, n_expert * ff, d);
    let up = random_weight(&mut rng, ty, n_expert * ff, d);
    let down = random_weight(&mut rng, ty, n_expert * d, ff);
    let x = rng.vec(n_tokens * d, -1.0, 1.0);
    let view = |data: &'static [u8], rows, cols| {
        Weight::Cpu(WeightView {
            ty,
            data,
            rows,
            cols,
        })
    };
    let (gate, up, down): (&'static [u8], &'static [u8], &'static [u8]) = (
        Box::leak(gate.into_boxed_slice()),
        Box::leak(up.into_boxed_slice()),
        Box::leak(down.into_boxed_slice()),
    );
    let tx = be.from_f32(vec![n_tokens, d], &x).unwrap();
    let poisoned = |rows: usize, cols: usize| {
        be.from_f32(vec![rows, cols], &vec![f32::NAN; rows * cols])
            .unwrap()
    };
    let mut logits = poisoned(n_tokens, n_expert);
    let rw = Weight::CpuF32 {
        data: &router,
        rows: n_expert,
        cols: d,
    };
    ops::matmul(&be, &rw, &tx, n_tokens, &mut logits).unwrap();
    let mut ids = be.ids(&vec![u32::MAX; n_tokens * k]).unwrap();
    let mut weights = poisoned(n_tokens, k);
    ops::moe_route(&be, &logits, n_expert, k, true, &mut ids, &mut weights).unwrap();
    let s = MatmulIdShape {
        n_expert,
        n_tokens,
        k,
        x_per_slot: false,
    };
    let (mut g, mut u, mut h) = (
        poisoned(n_tokens * k, ff),
        poisoned(n_tokens * k, ff),
        poisoned(n_tokens * k, ff),
    );
    ops::matmul_id(&be, &view(gate, n_expert * ff, d), &s, &tx, &ids, &mut g).unwrap();
    ops::matmul_id(&be, &view(up, n_expert * ff, d), &s, &tx, &ids, &mut u).unwrap();
    ops::silu_mul(&be, &g, &u, &mut h).unwrap();
    let mut y = poisoned(n_tokens * k, d);
    let per_slot = MatmulIdShape {
        x_per_slot: true,
        ..s
    };
    ops::matmul_id(
        &be,
        &view(down, n_expert * d, ff),
        &per_slot,
        &h,
        &ids,
        &mut y,
    )
    .unwrap();
    let mut out = poisoned(n_tokens, d);
    ops::moe_weighted_sum(&be, &y, &weights, k, &mut out).unwrap();
    let got = out.to_f32_vec().unwrap();
    let deq = |b: &[u8]| dequantize_to_vec(ty, b).unwrap();
    let want = moe_ffn_ref(
        &router,
        &deq(gate),
        &deq(up),
        &deq(down),
        &x,
        n_expert,
        k,
        d,
        ff,
    );
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let err = got
        .iter()
        .zip(&want)
        .map(|(&a, &b)| (f64::from(a) - b).abs())
        .fold(0.0f64, f64::max)
        / scale;
    eprintln!("MoE feed-forward: max error {err:.2e} of the largest output {scale:.3}");
    assert!(got.iter().all(|v| v.is_finite()));
    assert!(scale > 1e-3, "degenerate reference");
    // Two 8-bit activation roundings in a row (the input, then the SwiGLU hidden of the down
    // projection) measure about 1% of the largest output here; a wrong expert or weight is O(1).
    assert!(err < 3e-2, "error {err}");
    assert!(matches!(ids, Ids::Cpu(_)));
}
