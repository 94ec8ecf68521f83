//! Causal multi-head attention over an f16 KV cache (GQA/MQA, prefill and decode).

use half::f16;
use rayon::prelude::*;

use super::dot::float::{axpy_f16, dot_f32_f16, round_through_f16};
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

/// Query heads of one token attended together (those sharing a kv head): each key and value
/// row is looked up and widened once for all of them, and their dot products run side by side.
const SET: usize = 4;

/// Scratch of one set of attention rows: the f16-rounded queries and their scores.
struct SetScratch {
    q16: Vec<f32>,
    scores: Vec<f32>,
}

/// The first `N` runs of `len` values of `x` (fewer values than that: empty slices).
fn runs<const N: usize>(x: &mut [f32], len: usize) -> [&mut [f32]; N] {
    let mut it = x.chunks_exact_mut(len.max(1));
    std::array::from_fn(|_| it.next().unwrap_or_default())
}

/// `N` query heads of query index `i` that read kv head `kvh` (rows `qs`, results `outs`):
/// for each, `out = softmax(scale * q K^T) V` over the visible positions, read in place from
/// the f16 caches. Each head's results are those of attending it alone (the same operations
/// in the same order).
#[allow(clippy::too_many_arguments)]
fn attend_set<const N: usize>(
    qs: [&[f32]; N],
    kv: &dyn KvRows,
    kvh: usize,
    p: &AttentionParams,
    i: usize,
    sinks: [Option<f32>; N],
    s: &mut SetScratch,
    mut outs: [&mut [f32]; N],
) {
    let hd = p.head_dim;
    for o in outs.iter_mut() {
        o.iter_mut().for_each(|o| *o = 0.0);
    }
    // Query i sits at position n_kv - n_q + i and sees kv positions up to its own.
    let visible = (p.n_kv_tokens + i + 1).saturating_sub(p.n_q_tokens);
    if visible == 0 {
        return;
    }
    // ggml multiplies K (f16) by Q converted to f16.
    let mut q16 = runs::<N>(&mut s.q16, hd);
    for (d, q) in q16.iter_mut().zip(qs) {
        for (d, &x) in d.iter_mut().zip(q) {
            *d = f16::from_f32(x).to_f32();
        }
    }
    let q16 = q16.map(|q| &*q);
    let first = p.first_key(visible);
    // Kv head `kvh` of a token's row.
    let head = kvh * hd..(kvh + 1) * hd;
    let n = visible - first;
    let mut sc = runs::<N>(&mut s.scores, p.n_kv_tokens);
    for (t, at) in (first..visible).zip(0..n) {
        let d = dot_f32_f16(q16, &kv.key(t)[head.clone()]);
        for (sc, d) in sc.iter_mut().zip(d) {
            sc[at] = d * p.scale;
        }
    }
    // ggml converts the probabilities to f16 for the product with V (f16).
    for (sc, sink) in sc.iter_mut().zip(sinks) {
        softmax_with_sink(&mut sc[..n], sink);
        round_through_f16(&mut sc[..n]);
    }
    for (t, at) in (first..visible).zip(0..n) {
        let mut w = [0.0f32; N];
        for (w, sc) in w.iter_mut().zip(&sc) {
            *w = sc[at];
        }
        axpy_f16(
            outs.each_mut().map(|o| &mut **o),
            w,
            &kv.value(t)[head.clone()],
        );
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
    // A task per (query token, kv head): its query heads in sets of up to `SET`. When that
    // gives fewer tasks than threads (decode of a model with few kv heads), a task per head.
    let per = if p.n_q_tokens * p.n_kv_heads >= rayon::current_num_threads() {
        group
    } else {
        1
    };
    let init = || SetScratch {
        q16: vec![0.0; SET * hd],
        scores: vec![0.0; SET * p.n_kv_tokens],
    };
    out[..rows * hd]
        .par_chunks_exact_mut(per * hd)
        .enumerate()
        .for_each_init(init, |s, (c, task)| {
            let row0 = c * per;
            let (i, head0) = (row0 / p.n_heads, row0 % p.n_heads);
            for (k, set) in task.chunks_mut(SET * hd).enumerate() {
                let h = head0 + k * SET;
                let q_of = |j: usize| &q[(row0 + k * SET + j) * hd..][..hd];
                let sink = |j: usize| sinks.map(|s| s[h + j]);
                let kvh = h / group;
                match set.len() / hd {
                    1 => attend_set::<1>([q_of(0)], kv, kvh, p, i, [sink(0)], s, runs(set, hd)),
                    2 => {
                        let qs = [q_of(0), q_of(1)];
                        attend_set::<2>(qs, kv, kvh, p, i, [sink(0), sink(1)], s, runs(set, hd))
                    }
                    3 => {
                        let qs = [q_of(0), q_of(1), q_of(2)];
                        let sk = [sink(0), sink(1), sink(2)];
                        attend_set::<3>(qs, kv, kvh, p, i, sk, s, runs(set, hd))
                    }
                    _ => {
                        let qs = [q_of(0), q_of(1), q_of(2), q_of(3)];
                        let sk = [sink(0), sink(1), sink(2), sink(3)];
                        attend_set::<4>(qs, kv, kvh, p, i, sk, s, runs(set, hd))
                    }
                }
            }
        });
}
