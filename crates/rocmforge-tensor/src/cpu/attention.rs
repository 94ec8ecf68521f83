//! Causal multi-head attention over an f16 KV cache (GQA/MQA, prefill and decode).

use half::f16;
use half::slice::HalfFloatSliceExt;
use rayon::prelude::*;

use super::dot::float::dot_f32;
use super::softmax::softmax;

/// Sizes of one attention call.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionParams {
    /// Query tokens in this call (1 for decode).
    pub n_q_tokens: usize,
    /// Tokens in the KV cache, the query tokens' own included.
    pub n_kv_tokens: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (`n_heads` must be a multiple of it).
    pub n_kv_heads: usize,
    /// Elements per head.
    pub head_dim: usize,
    /// Score scale, usually `1 / sqrt(head_dim)`.
    pub scale: f32,
}

impl AttentionParams {
    /// Whether the slices are long enough and the head counts fit together.
    pub(crate) fn fits(&self, q: usize, k: usize, v: usize, out: usize) -> bool {
        let q_len = self.n_q_tokens * self.n_heads * self.head_dim;
        let kv_len = self.n_kv_tokens * self.n_kv_heads * self.head_dim;
        self.n_kv_heads > 0
            && self.head_dim > 0
            && self.n_heads % self.n_kv_heads == 0
            && q >= q_len
            && out >= q_len
            && k >= kv_len
            && v >= kv_len
    }
}

/// The K or V rows of one KV head, converted to f32: `[n_kv][head_dim]`.
fn gather_head(cache: &[f16], p: &AttentionParams, kv_head: usize) -> Vec<f32> {
    let hd = p.head_dim;
    let mut rows = vec![0.0f32; p.n_kv_tokens * hd];
    for (t, dst) in rows.chunks_exact_mut(hd).enumerate() {
        let start = (t * p.n_kv_heads + kv_head) * hd;
        cache[start..start + hd].convert_to_f32_slice(dst);
    }
    rows
}

/// Attention of every query head that reads `kv_head`; returns `[n_q][group][head_dim]`.
fn attend_kv_head(
    q: &[f32],
    k: &[f16],
    v: &[f16],
    p: &AttentionParams,
    kv_head: usize,
) -> Vec<f32> {
    let hd = p.head_dim;
    let group = p.n_heads / p.n_kv_heads;
    let keys = gather_head(k, p, kv_head);
    let values = gather_head(v, p, kv_head);
    let mut result = vec![0.0f32; p.n_q_tokens * group * hd];
    let mut q16 = vec![0.0f32; hd];
    let mut scores = vec![0.0f32; p.n_kv_tokens];
    for (i, res_tok) in result.chunks_exact_mut(group * hd).enumerate() {
        // Query i sits at position n_kv - n_q + i and sees kv positions up to its own.
        let visible = (p.n_kv_tokens + i + 1).saturating_sub(p.n_q_tokens);
        if visible == 0 {
            continue;
        }
        for (g, acc) in res_tok.chunks_exact_mut(hd).enumerate() {
            let head = kv_head * group + g;
            let q_start = (i * p.n_heads + head) * hd;
            // ggml multiplies K (f16) by Q converted to f16.
            for (d, &x) in q16.iter_mut().zip(&q[q_start..q_start + hd]) {
                *d = f16::from_f32(x).to_f32();
            }
            let sc = &mut scores[..visible];
            for (s, key) in sc.iter_mut().zip(keys.chunks_exact(hd)) {
                *s = dot_f32(&q16, key) * p.scale;
            }
            softmax(sc);
            // ggml converts the probabilities to f16 for the product with V (f16).
            for (&prob, value) in sc.iter().zip(values.chunks_exact(hd)) {
                let w = f16::from_f32(prob).to_f32();
                for (a, &x) in acc.iter_mut().zip(value) {
                    *a += w * x;
                }
            }
        }
    }
    result
}

/// Causal attention: `out = softmax(scale * Q K^T + causal mask) V` per head.
///
/// - `q`, `out`: `[n_q_tokens][n_heads][head_dim]`;
/// - `k_cache`, `v_cache`: `[n_kv_tokens][n_kv_heads][head_dim]`, token-major, f16;
/// - query token `i` sits at position `n_kv_tokens - n_q_tokens + i` and sees the kv
///   positions up to its own; query head `h` reads kv head `h / (n_heads / n_kv_heads)`.
///
/// Numerics follow llama.cpp's CPU path without flash attention: Q is rounded to f16
/// before the dot with K, scores and softmax are f32, the probabilities are rounded to f16
/// before the product with V, accumulation is f32. No length cap: any `n_kv_tokens`.
/// If the slices are shorter than `p` describes, or `n_heads` is not a multiple of
/// `n_kv_heads`, `out` is left unchanged.
pub fn attention(
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
    let per_kv_head: Vec<Vec<f32>> = (0..p.n_kv_heads)
        .into_par_iter()
        .map(|kvh| attend_kv_head(q, k_cache, v_cache, p, kvh))
        .collect();
    for (kvh, res) in per_kv_head.iter().enumerate() {
        for (i, res_tok) in res.chunks_exact(group * hd).enumerate() {
            let start = (i * p.n_heads + kvh * group) * hd;
            out[start..start + group * hd].copy_from_slice(res_tok);
        }
    }
}
