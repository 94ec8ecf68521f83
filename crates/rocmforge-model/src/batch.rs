//! The batched forward pass of continuous batching: several sequences, each with its own
//! KV cache and its own number of new tokens, run through the model together.
//!
//! Every matrix multiplication runs once over the concatenated tokens of all sequences
//! (`n_tokens` = the batch's total), so the weights are read once per step whatever the
//! number of sequences; attention runs per sequence over that sequence's cache. A decode
//! step is a batch of one-token segments; a chunk of a prompt being prefilled is a segment
//! of several tokens riding in the same step.

use rocmforge_tensor::cpu::{self, AttentionParams, WeightView};

use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};
use crate::forward::CpuModel;
use crate::generate::SequenceCache;
use crate::kv_cache::KvCache;
use crate::weights::{GateUpWeights, LayerWeights, QkvWeights};

/// One sequence's part of a batch; `C` is its KV cache (the CPU [`KvCache`] or the
/// GPU's [`crate::GpuKvCache`], whose [`crate::GpuModel::forward_batch`] has this contract).
#[derive(Debug)]
pub struct Segment<'c, C = KvCache> {
    /// The sequence's cache; the tokens run at positions `cache.len()..`.
    pub cache: &'c mut C,
    /// The new tokens (at least one).
    pub tokens: &'c [u32],
    /// Whether the logits of the segment's last token are wanted.
    pub want_logits: bool,
}

/// A model that runs a batch of [`Segment`]s in one step: [`CpuModel`] or
/// [`crate::GpuModel`]. The engine's scheduler drives either through this.
pub trait BatchModel {
    /// The per-sequence KV cache.
    type Cache: SequenceCache;
    /// The model's hyperparameters.
    fn config(&self) -> &ModelConfig;
    /// A fresh cache for `ctx` tokens.
    fn new_cache(&self, ctx: usize) -> ModelResult<Self::Cache>;
    /// One batched step (the contract of [`forward_batch`]).
    fn forward_segments(
        &self,
        segments: &mut [Segment<'_, Self::Cache>],
    ) -> ModelResult<Vec<Option<Vec<f32>>>>;
}

impl BatchModel for CpuModel<'_> {
    type Cache = KvCache;
    fn config(&self) -> &ModelConfig {
        CpuModel::config(self)
    }
    fn new_cache(&self, ctx: usize) -> ModelResult<KvCache> {
        CpuModel::new_cache(self, ctx)
    }
    fn forward_segments(
        &self,
        segments: &mut [Segment<'_, KvCache>],
    ) -> ModelResult<Vec<Option<Vec<f32>>>> {
        forward_batch(self, segments)
    }
}

/// Scratch buffers of one batched step.
#[derive(Default)]
struct Scratch {
    normed: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    fused: Vec<f32>,
    attn: Vec<f32>,
    proj: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    hidden: Vec<f32>,
    tmp: Vec<f32>,
}

fn matmul_into(w: &WeightView, x: &[f32], n: usize, out: &mut Vec<f32>) -> ModelResult<()> {
    out.clear();
    out.resize(n * w.rows, 0.0);
    cpu::matmul(w, x, n, out)?;
    Ok(())
}

fn add_bias(x: &mut [f32], bias: Option<&Vec<f32>>) {
    if let Some(b) = bias {
        for row in x.chunks_exact_mut(b.len()) {
            cpu::add(row, b);
        }
    }
}

fn split_columns(x: &[f32], stride: usize, from: usize, width: usize, out: &mut Vec<f32>) {
    out.clear();
    for row in x.chunks_exact(stride) {
        out.extend_from_slice(&row[from..from + width]);
    }
}

/// RMS-normalises `x` in place (through `tmp`).
fn norm_in_place(x: &mut [f32], weight: &[f32], eps: f32, tmp: &mut Vec<f32>) {
    tmp.clear();
    tmp.extend_from_slice(x);
    cpu::rms_norm(tmp, weight, eps, x);
}

/// Runs every segment's tokens, appends their keys and values to the segment's cache, and
/// returns, for each segment in order, the logits `[vocab]` of its last token when
/// `want_logits` is set (`None` otherwise).
///
/// The result for each sequence is the same as running it alone through
/// [`CpuModel::forward`]: the operations are row-independent.
pub fn forward_batch(
    model: &CpuModel<'_>,
    segments: &mut [Segment<'_>],
) -> ModelResult<Vec<Option<Vec<f32>>>> {
    if segments.is_empty() {
        return Ok(Vec::new());
    }
    let mut tokens = Vec::new();
    let mut positions = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        if s.tokens.is_empty() {
            return Err(ModelError::InvalidInput(format!(
                "segment {i} of the batch has no tokens"
            )));
        }
        s.cache.check_room(s.tokens.len())?;
        tokens.extend_from_slice(s.tokens);
        let start = s.cache.len();
        positions
            .extend((start..start + s.tokens.len()).map(|p| u32::try_from(p).unwrap_or(u32::MAX)));
    }
    let n = tokens.len();
    let _span = tracing::debug_span!("batch", sequences = segments.len(), tokens = n).entered();
    let c = model.config();
    let weights = model.weights();
    let mut x = vec![0.0f32; n * c.n_embd];
    cpu::embedding(&weights.token_embd, &tokens, &mut x)?;
    let mut s = Scratch::default();
    for (il, lw) in weights.layers.iter().enumerate() {
        attention_block(model, il, lw, &mut x, &positions, segments, &mut s)?;
        mlp_block(model, lw, &mut x, n, &mut s)?;
    }
    for seg in segments.iter_mut() {
        seg.cache.commit(seg.tokens.len())?;
    }

    // Final norm and LM head only over the rows whose logits are wanted.
    let mut rows = Vec::new();
    let mut end = 0;
    for seg in segments.iter() {
        end += seg.tokens.len();
        if seg.want_logits {
            rows.extend_from_slice(&x[(end - 1) * c.n_embd..end * c.n_embd]);
        }
    }
    let n_out = rows.len() / c.n_embd.max(1);
    let mut logits = Vec::new();
    if n_out > 0 {
        let mut normed = vec![0.0f32; rows.len()];
        cpu::rms_norm(&rows, &weights.output_norm, c.rms_eps, &mut normed);
        matmul_into(&weights.output, &normed, n_out, &mut logits)?;
    }
    let vocab = weights.output.rows;
    let mut chunks = logits.chunks_exact(vocab.max(1));
    Ok(segments
        .iter()
        .map(|seg| {
            if seg.want_logits {
                chunks.next().map(<[f32]>::to_vec)
            } else {
                None
            }
        })
        .collect())
}

fn attention_block(
    model: &CpuModel<'_>,
    il: usize,
    lw: &LayerWeights<'_>,
    x: &mut [f32],
    positions: &[u32],
    segments: &mut [Segment<'_>],
    s: &mut Scratch,
) -> ModelResult<()> {
    let c = model.config();
    let n = positions.len();
    s.normed.resize(x.len(), 0.0);
    cpu::rms_norm(x, &lw.attn_norm, c.rms_eps, &mut s.normed);
    match &lw.qkv {
        QkvWeights::Separate {
            q,
            k,
            v,
            q_bias,
            k_bias,
            v_bias,
        } => {
            matmul_into(q, &s.normed, n, &mut s.q)?;
            matmul_into(k, &s.normed, n, &mut s.k)?;
            matmul_into(v, &s.normed, n, &mut s.v)?;
            add_bias(&mut s.q, q_bias.as_ref());
            add_bias(&mut s.k, k_bias.as_ref());
            add_bias(&mut s.v, v_bias.as_ref());
        }
        QkvWeights::Fused { qkv, bias } => {
            matmul_into(qkv, &s.normed, n, &mut s.fused)?;
            add_bias(&mut s.fused, bias.as_ref());
            let stride = c.q_dim() + c.k_dim() + c.v_dim();
            split_columns(&s.fused, stride, 0, c.q_dim(), &mut s.q);
            split_columns(&s.fused, stride, c.q_dim(), c.k_dim(), &mut s.k);
            split_columns(&s.fused, stride, c.q_dim() + c.k_dim(), c.v_dim(), &mut s.v);
        }
    }
    if let (Some(qn), Some(kn)) = (&lw.q_norm, &lw.k_norm) {
        norm_in_place(&mut s.q, qn, c.rms_eps, &mut s.tmp);
        norm_in_place(&mut s.k, kn, c.rms_eps, &mut s.tmp);
    }
    cpu::rope(&mut s.q, n, c.n_heads, c.head_dim, positions, model.rope());
    cpu::rope(
        &mut s.k,
        n,
        c.n_kv_heads,
        c.head_dim,
        positions,
        model.rope(),
    );

    let (q_w, k_w, v_w) = (c.n_heads * c.head_dim, c.k_dim(), c.v_dim());
    let out_w = c.n_heads * c.head_dim_v;
    s.attn.clear();
    s.attn.resize(n * out_w, 0.0);
    let mut t0 = 0;
    for seg in segments.iter_mut() {
        let m = seg.tokens.len();
        let t1 = t0 + m;
        seg.cache
            .write(il, &s.k[t0 * k_w..t1 * k_w], &s.v[t0 * v_w..t1 * v_w])?;
        let n_kv = seg.cache.len() + m;
        let (kc, vc) = seg.cache.layer(il, n_kv).ok_or_else(|| {
            ModelError::InvalidInput(format!("KV cache has no layer {il} with {n_kv} tokens"))
        })?;
        let params = AttentionParams {
            n_q_tokens: m,
            n_kv_tokens: n_kv,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
        };
        cpu::attention(
            &s.q[t0 * q_w..t1 * q_w],
            kc,
            vc,
            &params,
            &mut s.attn[t0 * out_w..t1 * out_w],
        );
        t0 = t1;
    }
    matmul_into(&lw.attn_output, &s.attn, n, &mut s.proj)?;
    if let Some(post) = &lw.post_attn_norm {
        norm_in_place(&mut s.proj, post, c.rms_eps, &mut s.tmp);
    }
    cpu::add(x, &s.proj);
    Ok(())
}

fn mlp_block(
    model: &CpuModel<'_>,
    lw: &LayerWeights<'_>,
    x: &mut [f32],
    n: usize,
    s: &mut Scratch,
) -> ModelResult<()> {
    let c = model.config();
    s.normed.resize(x.len(), 0.0);
    cpu::rms_norm(x, &lw.ffn_norm, c.rms_eps, &mut s.normed);
    match &lw.gate_up {
        GateUpWeights::Separate { gate, up } => {
            matmul_into(gate, &s.normed, n, &mut s.gate)?;
            matmul_into(up, &s.normed, n, &mut s.up)?;
        }
        GateUpWeights::Fused(w) => {
            matmul_into(w, &s.normed, n, &mut s.fused)?;
            split_columns(&s.fused, 2 * c.n_ff, 0, c.n_ff, &mut s.gate);
            split_columns(&s.fused, 2 * c.n_ff, c.n_ff, c.n_ff, &mut s.up);
        }
    }
    s.hidden.clear();
    s.hidden.resize(n * c.n_ff, 0.0);
    cpu::silu_mul(&s.gate, &s.up, &mut s.hidden);
    matmul_into(&lw.ffn_down, &s.hidden, n, &mut s.proj)?;
    if let Some(post) = &lw.post_ffn_norm {
        norm_in_place(&mut s.proj, post, c.rms_eps, &mut s.tmp);
    }
    cpu::add(x, &s.proj);
    Ok(())
}
