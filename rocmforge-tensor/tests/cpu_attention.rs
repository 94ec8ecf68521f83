//! Causal GQA attention against a naive f64 softmax(QK^T)V, prefill and decode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::{Rng, max_rel_err};
use half::f16;
use rocmforge_tensor::cpu::{AttentionParams, attention, attention_flash_f16};

fn attn_ref(q: &[f32], k: &[f16], v: &[f16], p: &AttentionParams) -> Vec<f64> {
    let hd = p.head_dim;
    let group = p.n_heads / p.n_kv_heads;
    let mut out = vec![0.0f64; p.n_q_tokens * p.n_heads * hd];
    for i in 0..p.n_q_tokens {
        let pos = p.n_kv_tokens - p.n_q_tokens + i;
        for h in 0..p.n_heads {
            let kvh = h / group;
            let qv = &q[(i * p.n_heads + h) * hd..][..hd];
            // A sliding window of w keys: key j is masked when pos - j >= w.
            let first = p.window.map_or(0, |w| (pos + 1).saturating_sub(w));
            let scores: Vec<f64> = (first..=pos)
                .map(|j| {
                    let kr = &k[(j * p.n_kv_heads + kvh) * hd..][..hd];
                    qv.iter()
                        .zip(kr)
                        .map(|(&a, &b)| f64::from(a) * b.to_f64())
                        .sum::<f64>()
                        * f64::from(p.scale)
                })
                .collect();
            let m = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = scores.iter().map(|s| (s - m).exp()).sum();
            let o = &mut out[(i * p.n_heads + h) * hd..][..hd];
            for (j, s) in (first..).zip(&scores) {
                let w = (s - m).exp() / sum;
                let vr = &v[(j * p.n_kv_heads + kvh) * hd..][..hd];
                for (a, b) in o.iter_mut().zip(vr) {
                    *a += w * b.to_f64();
                }
            }
        }
    }
    out
}

fn random_case(rng: &mut Rng, p: &AttentionParams) -> (Vec<f32>, Vec<f16>, Vec<f16>) {
    let q = rng.vec(p.n_q_tokens * p.n_heads * p.head_dim, -1.5, 1.5);
    let kv_len = p.n_kv_tokens * p.n_kv_heads * p.head_dim;
    let k = (0..kv_len)
        .map(|_| f16::from_f32(rng.range(-1.5, 1.5)))
        .collect();
    let v = (0..kv_len)
        .map(|_| f16::from_f32(rng.range(-1.0, 1.0)))
        .collect();
    (q, k, v)
}

fn params(
    n_q: usize,
    n_kv: usize,
    n_heads: usize,
    n_kv_heads: usize,
    hd: usize,
) -> AttentionParams {
    AttentionParams {
        n_q_tokens: n_q,
        n_kv_tokens: n_kv,
        n_heads,
        n_kv_heads,
        head_dim: hd,
        scale: 1.0 / (hd as f32).sqrt(),
        window: None,
    }
}

/// f16 rounding of Q and of the probabilities (llama.cpp's numerics) bounds the error.
const TOL: f64 = 3e-3;

#[test]
fn prefill_matches_reference_gqa_mqa_mha() {
    let mut rng = Rng::new(30);
    for p in [
        params(5, 5, 9, 3, 64),
        params(7, 7, 4, 1, 32),
        params(3, 3, 2, 2, 48),
        params(1, 1, 3, 3, 16),
        params(4, 9, 6, 2, 64), // continuation: 5 cached tokens, 4 new
    ] {
        let (q, k, v) = random_case(&mut rng, &p);
        let mut out = vec![f32::NAN; q.len()];
        attention(&q, &k, &v, &p, &mut out);
        let err = max_rel_err(&out, &attn_ref(&q, &k, &v, &p), 1e-3);
        assert!(err < TOL, "{p:?}: rel err {err}");
    }
}

#[test]
fn sliding_window_sees_only_the_last_window_keys() {
    let mut rng = Rng::new(33);
    for (mut p, w) in [
        (params(9, 9, 4, 2, 32), 1),
        (params(9, 9, 4, 2, 32), 4),
        (params(3, 40, 6, 3, 64), 8), // continuation: 37 cached, 3 new
        (params(1, 100, 2, 1, 16), 33),
        (params(5, 5, 2, 2, 16), 64), // a window longer than the sequence: no mask
    ] {
        p.window = Some(w);
        let (q, k, v) = random_case(&mut rng, &p);
        let want = attn_ref(&q, &k, &v, &p);
        type Attn = fn(&[f32], &[f16], &[f16], &AttentionParams, &mut [f32]);
        // The flash variant accumulates in f16: its bound is the flash test's.
        for (name, f, tol) in [
            ("plain", attention as Attn, TOL),
            ("flash", attention_flash_f16 as Attn, 1e-2),
        ] {
            let mut out = vec![f32::NAN; q.len()];
            f(&q, &k, &v, &p, &mut out);
            let err = max_rel_err(&out, &want, 1e-3);
            assert!(err < tol, "{name} {p:?}: rel err {err}");
        }
        // The window matters: without it the answer is another one (unless nothing is masked).
        if w < p.n_kv_tokens {
            let mut full = vec![f32::NAN; q.len()];
            attention(
                &q,
                &k,
                &v,
                &AttentionParams { window: None, ..p },
                &mut full,
            );
            assert!(max_rel_err(&full, &want, 1e-3) > 10.0 * TOL, "{p:?}");
        }
    }
}

#[test]
fn long_context_has_no_cap() {
    let mut rng = Rng::new(31);
    let p = params(2, 700, 4, 2, 64);
    let (q, k, v) = random_case(&mut rng, &p);
    let mut out = vec![f32::NAN; q.len()];
    attention(&q, &k, &v, &p, &mut out);
    let err = max_rel_err(&out, &attn_ref(&q, &k, &v, &p), 1e-3);
    assert!(err < TOL, "rel err {err}");
}

#[test]
fn decode_after_prefill_matches_prefill_rows() {
    let mut rng = Rng::new(32);
    // GQA (3 query heads a kv head: one set), 7 a kv head (sets of 4 and 3; MQA, so a decode
    // step may attend head by head where the prefill attends in sets), MHA: bit for bit.
    for (heads, kv_heads) in [(6, 2), (7, 1), (4, 4)] {
        let full = params(6, 6, heads, kv_heads, 32);
        let (q, k, v) = random_case(&mut rng, &full);
        let mut prefill = vec![f32::NAN; q.len()];
        attention(&q, &k, &v, &full, &mut prefill);
        let tok = full.n_heads * full.head_dim;
        for n_kv in 1..=6 {
            let p = params(1, n_kv, heads, kv_heads, 32);
            let kv = n_kv * p.n_kv_heads * p.head_dim;
            let mut out = vec![f32::NAN; tok];
            attention(
                &q[(n_kv - 1) * tok..n_kv * tok],
                &k[..kv],
                &v[..kv],
                &p,
                &mut out,
            );
            assert_eq!(
                out,
                prefill[(n_kv - 1) * tok..n_kv * tok].to_vec(),
                "{heads} heads / {kv_heads}: decode at {n_kv}"
            );
        }
    }
}

#[test]
fn first_token_attends_only_to_itself() {
    let mut rng = Rng::new(33);
    let p = params(3, 3, 2, 1, 8);
    let (q, k, v) = random_case(&mut rng, &p);
    let mut out = vec![f32::NAN; q.len()];
    attention(&q, &k, &v, &p, &mut out);
    for h in 0..2 {
        for d in 0..8 {
            assert_eq!(out[h * 8 + d], v[d].to_f32());
        }
    }
}

#[test]
fn flash_f16_variant_matches_reference() {
    let mut rng = Rng::new(34);
    for (p, tol) in [
        (params(5, 5, 9, 3, 64), 3e-3),
        (params(4, 9, 6, 2, 64), 3e-3),
        (params(1, 1, 3, 3, 16), 1e-3),
        (params(2, 300, 4, 1, 64), 1e-2),
    ] {
        let (q, k, v) = random_case(&mut rng, &p);
        let mut out = vec![f32::NAN; q.len()];
        attention_flash_f16(&q, &k, &v, &p, &mut out);
        let err = max_rel_err(&out, &attn_ref(&q, &k, &v, &p), 1e-3);
        eprintln!("flash f16 {p:?}: rel err {err:.2e}");
        assert!(err < tol, "{p:?}: rel err {err}");
    }
}

#[test]
fn flash_f16_decode_matches_its_prefill() {
    let mut rng = Rng::new(35);
    let full = params(5, 5, 4, 2, 32);
    let (q, k, v) = random_case(&mut rng, &full);
    let mut prefill = vec![f32::NAN; q.len()];
    attention_flash_f16(&q, &k, &v, &full, &mut prefill);
    let tok = full.n_heads * full.head_dim;
    let p = params(1, 3, 4, 2, 32);
    let kv = 3 * p.n_kv_heads * p.head_dim;
    let mut out = vec![f32::NAN; tok];
    attention_flash_f16(&q[2 * tok..3 * tok], &k[..kv], &v[..kv], &p, &mut out);
    assert_eq!(out, prefill[2 * tok..3 * tok].to_vec());
}
