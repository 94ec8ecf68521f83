//! Causal attention computed the way llama.cpp's CPU flash-attention path does it (the
//! path its "auto" flash-attention setting picks on the CPU): one pass over the KV
//! positions with a running maximum, the value accumulator kept in f16.

use half::f16;
use rayon::prelude::*;

use super::attention::AttentionParams;
use super::dot::float::dot_f32;

/// One query head: online softmax over `visible` positions of kv head `kvh`.
fn one_head(
    qh: &[f32],
    k: &[f16],
    v: &[f16],
    p: &AttentionParams,
    kvh: usize,
    visible: usize,
    out: &mut [f32],
) {
    let hd = p.head_dim;
    // Q is converted to K's type (f16) for the dot products.
    let q16: Vec<f32> = qh.iter().map(|&x| f16::from_f32(x).to_f32()).collect();
    let mut key = vec![0.0f32; hd];
    let mut acc = vec![f16::ZERO; hd];
    let (mut sum, mut max) = (0.0f32, f32::NEG_INFINITY);
    for j in p.first_key(visible)..visible {
        let start = (j * p.n_kv_heads + kvh) * hd;
        for (d, s) in key.iter_mut().zip(&k[start..start + hd]) {
            *d = s.to_f32();
        }
        let s = dot_f32(&key, &q16) * p.scale;
        let (mut ms, mut vs) = (1.0f32, 1.0f32);
        if s > max {
            let old = max;
            max = s;
            ms = (old - max).exp();
            for a in acc.iter_mut() {
                *a = f16::from_f32(a.to_f32() * ms);
            }
        } else {
            vs = (s - max).exp();
        }
        for (a, x) in acc.iter_mut().zip(&v[start..start + hd]) {
            *a = f16::from_f32(x.to_f32().mul_add(vs, a.to_f32()));
        }
        sum = sum * ms + vs;
    }
    let inv = if sum == 0.0 { 0.0 } else { 1.0 / sum };
    for (o, a) in out.iter_mut().zip(&acc) {
        *o = a.to_f32() * inv;
    }
}

/// Causal GQA attention with the numerics of llama.cpp's CPU flash attention
/// (`ggml_compute_forward_flash_attn_ext_f16`): Q rounded to f16 for the K dot, an online
/// softmax (running max `M` and sum `S` in f32), and the weighted sum of V accumulated in
/// **f16** (`acc = f16(acc * exp(M_old - M))` on a new maximum, `acc = f16(acc + v * exp(s - M))`
/// otherwise), divided by `S` at the end.
///
/// Same layouts, causality and GQA mapping as [`attention`](super::attention), which
/// follows llama.cpp without flash attention; use whichever matches the reference run.
/// If the slices are shorter than `p` describes, `out` is left unchanged.
pub fn attention_flash_f16(
    q: &[f32],
    k_cache: &[f16],
    v_cache: &[f16],
    p: &AttentionParams,
    out: &mut [f32],
) {
    if !p.fits(q.len(), k_cache.len(), v_cache.len(), out.len()) {
        return;
    }
    let hd = p.head_dim;
    let group = p.n_heads / p.n_kv_heads;
    let rows = p.n_q_tokens * p.n_heads;
    out[..rows * hd]
        .par_chunks_exact_mut(hd)
        .enumerate()
        .for_each(|(row, o)| {
            let (i, h) = (row / p.n_heads, row % p.n_heads);
            let visible = (p.n_kv_tokens + i + 1).saturating_sub(p.n_q_tokens);
            one_head(
                &q[row * hd..(row + 1) * hd],
                k_cache,
                v_cache,
                p,
                h / group,
                visible,
                o,
            );
        });
}
