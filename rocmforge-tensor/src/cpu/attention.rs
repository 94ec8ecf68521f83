//! Causal multi-head attention over an f16 KV cache (GQA/MQA, prefill and decode).

use half::f16;
use rayon::prelude::*;

use super::dot::float::{axpy_f16, dot_f32_f16};
use super::softmax::softmax_with_sink;

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
    /// Sliding window: a query at position `p` sees only the keys at `p - window + 1 ..= p`
    /// (llama.cpp's standard SWA: key `k` is masked when `p - k >= window`); `None` sees all.
    pub window: Option<usize>,
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

    /// The first key a query that sees keys `0..visible` attends to (its window's start).
    pub fn first_key(&self, visible: usize) -> usize {
        match self.window {
            Some(w) => visible.saturating_sub(w),
            None => 0,
        }
    }
}

/// Where attention reads a sequence's keys and values: token `t`'s row of every KV head
/// (`n_kv_heads * head_dim` values). A contiguous cache is one implementation, the paged cache
/// of [`crate::kv_pool::KvPool`] another.
pub trait KvRows: Sync {
    /// The keys of token `t`.
    fn key(&self, t: usize) -> &[f16];
    /// The values of token `t`.
    fn value(&self, t: usize) -> &[f16];
}

/// Token-major contiguous K and V caches with rows of `width` values.
struct Contiguous<'a> {
    k: &'a [f16],
    v: &'a [f16],
    width: usize,
}

impl KvRows for Contiguous<'_> {
    fn key(&self, t: usize) -> &[f16] {
        &self.k[t * self.width..(t + 1) * self.width]
    }
    fn value(&self, t: usize) -> &[f16] {
        &self.v[t * self.width..(t + 1) * self.width]
    }
}

/// Scratch of one attention row: the f16-rounded query and the scores.
struct RowScratch {
    q16: Vec<f32>,
    scores: Vec<f32>,
}

/// One query head at query index `i`: `out = softmax(scale * q K^T) V` over the visible
/// positions of kv head `kvh`, read in place from the f16 caches.
#[allow(clippy::too_many_arguments)]
fn attend_row(
    qh: &[f32],
    kv: &dyn KvRows,
    kvh: usize,
    p: &AttentionParams,
    i: usize,
    sink: Option<f32>,
    s: &mut RowScratch,
    out: &mut [f32],
) {
    let hd = p.head_dim;
    out.iter_mut().for_each(|o| *o = 0.0);
    // Query i sits at position n_kv - n_q + i and sees kv positions up to its own.
    let visible = (p.n_kv_tokens + i + 1).saturating_sub(p.n_q_tokens);
    if visible == 0 {
        return;
    }
    // ggml multiplies K (f16) by Q converted to f16.
    for (d, &x) in s.q16.iter_mut().zip(qh) {
        *d = f16::from_f32(x).to_f32();
    }
    let first = p.first_key(visible);
    // Kv head `kvh` of a token's row.
    let head = kvh * hd..(kvh + 1) * hd;
    let sc = &mut s.scores[..visible - first];
    for (t, score) in (first..visible).zip(sc.iter_mut()) {
        *score = dot_f32_f16(&s.q16, &kv.key(t)[head.clone()]) * p.scale;
    }
    softmax_with_sink(sc, sink);
    // ggml converts the probabilities to f16 for the product with V (f16).
    for (t, &prob) in (first..visible).zip(sc.iter()) {
        let w = f16::from_f32(prob).to_f32();
        axpy_f16(out, w, &kv.value(t)[head.clone()]);
    }
}

/// Causal attention: `out = softmax(scale * Q K^T + causal mask) V` per head.
///
/// - `q`, `out`: `[n_q_tokens][n_heads][head_dim]`;
/// - `k_cache`, `v_cache`: `[n_kv_tokens][n_kv_heads][head_dim]`, token-major, f16;
/// - query token `i` sits at position `n_kv_tokens - n_q_tokens + i` and sees the kv
///   positions up to its own (with a `window`, only the last `window` of them); query head `h`
///   reads kv head `h / (n_heads / n_kv_heads)`.
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
    attention_with_sinks(q, k_cache, v_cache, p, None, out);
}

/// [`attention`] with one learned sink logit per query head (`sinks[h]`, gpt-oss's
/// `attn_sinks`): it joins each softmax's maximum and denominator, unscaled, and contributes no
/// value (ggml's `soft_max_ext` + `soft_max_add_sinks`). `sinks` shorter than `n_heads` leaves
/// `out` unchanged, as a shape mismatch does.
pub fn attention_with_sinks(
    q: &[f32],
    k_cache: &[f16],
    v_cache: &[f16],
    p: &AttentionParams,
    sinks: Option<&[f32]>,
    out: &mut [f32],
) {
    if !p.fits(q.len(), k_cache.len(), v_cache.len(), out.len()) {
        return;
    }
    let kv = Contiguous {
        k: k_cache,
        v: v_cache,
        width: p.n_kv_heads * p.head_dim,
    };
    attention_over(q, &kv, p, sinks, out);
}

/// [`attention_with_sinks`] over keys and values read through `kv` (a paged cache), which must
/// hold the first `p.n_kv_tokens` tokens with rows of `n_kv_heads * head_dim` values. `q`
/// or `out` shorter than `p` describes, a row of another width, or a bad head ratio leaves `out`
/// unchanged.
pub fn attention_over(
    q: &[f32],
    kv: &dyn KvRows,
    p: &AttentionParams,
    sinks: Option<&[f32]>,
    out: &mut [f32],
) {
    let width = p.n_kv_heads * p.head_dim;
    let rows_ok = p.n_kv_tokens == 0
        || (kv.key(p.n_kv_tokens - 1).len() == width && kv.value(p.n_kv_tokens - 1).len() == width);
    let kv_len = p.n_kv_tokens * width;
    if !p.fits(q.len(), kv_len, kv_len, out.len())
        || !rows_ok
        || sinks.is_some_and(|s| s.len() < p.n_heads)
    {
        return;
    }
    let hd = p.head_dim;
    let group = p.n_heads / p.n_kv_heads;
    let rows = p.n_q_tokens * p.n_heads;
    let init = || RowScratch {
        q16: vec![0.0; hd],
        scores: vec![0.0; p.n_kv_tokens],
    };
    out[..rows * hd]
        .par_chunks_exact_mut(hd)
        .enumerate()
        .for_each_init(init, |s, (row, o)| {
            let (i, head) = (row / p.n_heads, row % p.n_heads);
            let sink = sinks.map(|s| s[head]);
            let qh = &q[row * hd..(row + 1) * hd];
            attend_row(qh, kv, head / group, p, i, sink, s, o);
        });
}
