//! The CPU forward pass: embedding → blocks → final norm → LM head.
//!
//! Each step is one call of a `rocmforge_tensor::cpu` op on the layer's weight views,
//! so that a GPU backend can run the same sequence with its own ops.

use rocmforge_gguf::GgufFile;
use rocmforge_tensor::cpu::{self, AttentionParams, RopeMode, RopeParams, WeightView, YarnParams};

use crate::arch::RopeStyle;
use crate::config::{ModelConfig, RopeScaling};
use crate::error::{ModelError, ModelResult};
use crate::kv_cache::KvCache;
use crate::weights::{GateUpWeights, LayerWeights, ModelWeights, QkvWeights};

/// Which positions of a batch the forward pass returns logits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogitsFor {
    /// Only the last token (generation).
    Last,
    /// Every token (teacher forcing).
    All,
    /// Tokens `i..` of the batch (perplexity scores only the second half of a chunk).
    From(usize),
}

/// A model whose weights are read in place from a GGUF file, run on the CPU.
#[derive(Debug)]
pub struct CpuModel<'a> {
    config: ModelConfig,
    weights: ModelWeights<'a>,
    rope: RopeParams,
}

pub(crate) fn rope_params(c: &ModelConfig) -> RopeParams {
    let (freq_scale, yarn) = match c.rope_scaling {
        RopeScaling::None => (1.0, None),
        RopeScaling::Linear { factor } => (1.0 / factor, None),
        // llama.cpp's defaults for YaRN: full ramp, beta 32 / 1, attention factor 1
        // (ggml adds the 0.1·ln(factor) magnitude correction itself).
        RopeScaling::Yarn {
            factor,
            original_context,
        } => (
            1.0 / factor,
            Some(YarnParams {
                ext_factor: 1.0,
                attn_factor: 1.0,
                beta_fast: 32.0,
                beta_slow: 1.0,
                n_ctx_orig: original_context,
            }),
        ),
    };
    RopeParams {
        n_rot: c.n_rot,
        freq_base: c.rope_freq_base,
        freq_scale,
        mode: match c.arch.rope_style() {
            RopeStyle::Adjacent => RopeMode::Normal,
            RopeStyle::HalfSplit => RopeMode::Neox,
        },
        yarn,
    }
}

/// Adds `bias` (one row) to every row of `x`.
fn add_bias(x: &mut [f32], bias: Option<&Vec<f32>>) {
    if let Some(b) = bias {
        for row in x.chunks_exact_mut(b.len()) {
            cpu::add(row, b);
        }
    }
}

/// `out[t] = x[t][from..from+width]` for each of the `n` rows of width `stride`.
fn split_columns(x: &[f32], stride: usize, from: usize, width: usize, out: &mut Vec<f32>) {
    out.clear();
    for row in x.chunks_exact(stride) {
        out.extend_from_slice(&row[from..from + width]);
    }
}

fn matmul_into(w: &WeightView, x: &[f32], n: usize, out: &mut Vec<f32>) -> ModelResult<()> {
    out.clear();
    out.resize(n * w.rows, 0.0);
    cpu::matmul(w, x, n, out)?;
    Ok(())
}

/// Scratch buffers of one forward call.
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
}

impl<'a> CpuModel<'a> {
    /// Reads the configuration and weight views of the model in `file`.
    pub fn from_gguf(file: &'a GgufFile) -> ModelResult<Self> {
        let config = ModelConfig::from_gguf(file)?;
        let weights = ModelWeights::from_gguf(file, &config)?;
        let rope = rope_params(&config);
        Ok(Self {
            config,
            weights,
            rope,
        })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The weight views (read by the batched forward in `batch.rs`).
    pub(crate) fn weights(&self) -> &ModelWeights<'a> {
        &self.weights
    }

    /// The RoPE parameters (read by the batched forward in `batch.rs`).
    pub(crate) fn rope(&self) -> &RopeParams {
        &self.rope
    }

    /// A fresh KV cache for `ctx` tokens.
    pub fn new_cache(&self, ctx: usize) -> ModelResult<KvCache> {
        KvCache::new(&self.config, ctx)
    }

    /// Runs `tokens` at positions `start_pos..` (which must equal `cache.len()`),
    /// appends their keys and values to `cache`, and returns `[n][vocab]` logits
    /// for the positions `which` selects.
    pub fn forward(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        start_pos: usize,
        which: LogitsFor,
    ) -> ModelResult<Vec<f32>> {
        let n = tokens.len();
        if n == 0 {
            return Err(ModelError::InvalidInput("no tokens to run".to_string()));
        }
        if start_pos != cache.len() {
            return Err(ModelError::InvalidInput(format!(
                "start position {start_pos} but the KV cache holds {} tokens",
                cache.len()
            )));
        }
        cache.check_room(n)?;
        let first_out = match which {
            LogitsFor::Last => n - 1,
            LogitsFor::All => 0,
            LogitsFor::From(i) if i < n => i,
            LogitsFor::From(i) => {
                return Err(ModelError::InvalidInput(format!(
                    "logits asked from batch index {i} of a {n}-token batch"
                )));
            }
        };
        let span = if n == 1 {
            tracing::debug_span!("decode", tokens = n, pos = start_pos)
        } else {
            tracing::debug_span!("prefill", tokens = n, pos = start_pos)
        };
        let _entered = span.enter();

        let c = &self.config;
        let positions: Vec<u32> = (start_pos..start_pos + n)
            .map(|p| u32::try_from(p).unwrap_or(u32::MAX))
            .collect();
        let mut x = vec![0.0f32; n * c.n_embd];
        cpu::embedding(&self.weights.token_embd, tokens, &mut x)?;
        let mut s = Scratch::default();
        for (il, lw) in self.weights.layers.iter().enumerate() {
            self.attention_block(il, lw, &mut x, &positions, cache, &mut s)?;
            self.mlp_block(lw, &mut x, n, &mut s)?;
        }
        cache.commit(n)?;

        let rows = &x[first_out * c.n_embd..];
        let n_out = n - first_out;
        let mut normed = vec![0.0f32; rows.len()];
        cpu::rms_norm(rows, &self.weights.output_norm, c.rms_eps, &mut normed);
        let mut logits = Vec::new();
        matmul_into(&self.weights.output, &normed, n_out, &mut logits)?;
        Ok(logits)
    }

    fn attention_block(
        &self,
        il: usize,
        lw: &LayerWeights<'_>,
        x: &mut [f32],
        positions: &[u32],
        cache: &mut KvCache,
        s: &mut Scratch,
    ) -> ModelResult<()> {
        let c = &self.config;
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
            let q_in = s.q.clone();
            cpu::rms_norm(&q_in, qn, c.rms_eps, &mut s.q);
            let k_in = s.k.clone();
            cpu::rms_norm(&k_in, kn, c.rms_eps, &mut s.k);
        }
        cpu::rope(&mut s.q, n, c.n_heads, c.head_dim, positions, &self.rope);
        cpu::rope(&mut s.k, n, c.n_kv_heads, c.head_dim, positions, &self.rope);
        cache.write(il, &s.k, &s.v)?;
        let n_kv = cache.len() + n;
        let (kc, vc) = cache.layer(il, n_kv).ok_or_else(|| {
            ModelError::InvalidInput(format!("KV cache has no layer {il} with {n_kv} tokens"))
        })?;
        let params = AttentionParams {
            n_q_tokens: n,
            n_kv_tokens: n_kv,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
        };
        s.attn.clear();
        s.attn.resize(n * c.n_heads * c.head_dim_v, 0.0);
        cpu::attention(&s.q, kc, vc, &params, &mut s.attn);
        matmul_into(&lw.attn_output, &s.attn, n, &mut s.proj)?;
        if let Some(post) = &lw.post_attn_norm {
            let p_in = s.proj.clone();
            cpu::rms_norm(&p_in, post, c.rms_eps, &mut s.proj);
        }
        cpu::add(x, &s.proj);
        Ok(())
    }

    fn mlp_block(
        &self,
        lw: &LayerWeights<'_>,
        x: &mut [f32],
        n: usize,
        s: &mut Scratch,
    ) -> ModelResult<()> {
        let c = &self.config;
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
            let p_in = s.proj.clone();
            cpu::rms_norm(&p_in, post, c.rms_eps, &mut s.proj);
        }
        cpu::add(x, &s.proj);
        Ok(())
    }
}
