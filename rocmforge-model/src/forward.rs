//! What a forward call returns ([`LogitsFor`]) and the RoPE parameters of a configuration; the
//! forward itself is [`crate::Model::forward`] (`model/forward.rs`).

use rocmforge_tensor::cpu::{RopeMode, RopeParams, YarnParams};

use crate::arch::RopeStyle;
use crate::config::{ModelConfig, RopeScaling};

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

pub(crate) fn rope_params(c: &ModelConfig) -> RopeParams {
    // The file's `rope.scaling.attn_factor` (Phi-3's LongRoPE magnitude) scales cos and sin as
    // ggml's attn_factor does: without YaRN, through a ramp-less YaRN (ext_factor 0).
    let magnitude = |attn_factor: f32| {
        (attn_factor != 1.0).then_some(YarnParams {
            ext_factor: 0.0,
            attn_factor,
            beta_fast: 32.0,
            beta_slow: 1.0,
            n_ctx_orig: u32::try_from(c.context_length).unwrap_or(u32::MAX),
        })
    };
    let (freq_scale, yarn) = match c.rope_scaling {
        RopeScaling::None => (1.0, magnitude(c.rope_attn_factor)),
        RopeScaling::Linear { factor } => (1.0 / factor, magnitude(c.rope_attn_factor)),
        // llama.cpp's YaRN: full ramp, betas from the file (32 / 1 by default); its attention
        // factor cancels the 0.1·ln(factor) magnitude correction ggml adds itself, and with a
        // log multiplier m becomes mscale(f, 1) / mscale(f, m) / (1 + 0.1·ln f).
        RopeScaling::Yarn {
            factor,
            original_context,
            beta_fast,
            beta_slow,
            log_mul,
        } => (
            1.0 / factor,
            Some(YarnParams {
                ext_factor: 1.0,
                attn_factor: yarn_attn_factor(factor, log_mul) * c.rope_attn_factor,
                beta_fast,
                beta_slow,
                n_ctx_orig: original_context,
            }),
        ),
    };
    RopeParams {
        n_rot: c.n_rot,
        freq_base: c.rope_freq_base,
        freq_scale,
        mode: rope_mode(c),
        yarn,
    }
}

/// llama.cpp's `yarn_attn_factor` (llama-context.cpp) for a YaRN factor and log multiplier.
fn yarn_attn_factor(factor: f32, log_mul: f32) -> f32 {
    let mscale = |m: f32| {
        if factor <= 1.0 {
            1.0
        } else {
            0.1 * m * factor.ln() + 1.0
        }
    };
    let f = if log_mul != 0.0 {
        mscale(1.0) / mscale(log_mul)
    } else {
        mscale(1.0)
    };
    f * (1.0 / (1.0 + 0.1 * factor.ln()))
}

fn rope_mode(c: &ModelConfig) -> RopeMode {
    match c.arch.rope_style() {
        RopeStyle::Adjacent => RopeMode::Normal,
        RopeStyle::HalfSplit => RopeMode::Neox,
    }
}

/// The RoPE of the sliding-window (local) layers, when the model has some: their own base, never
/// rescaled (as llama.cpp's `rope_freq_base_train_swa` / `rope_freq_scale_train_swa` for gemma3),
/// or with `rope_scaled` the global RoPE on that base (gpt-oss: the same YaRN on every layer).
pub(crate) fn rope_params_local(c: &ModelConfig) -> Option<RopeParams> {
    c.swa.as_ref().map(|s| {
        if s.rope_scaled {
            RopeParams {
                freq_base: s.rope_freq_base,
                ..rope_params(c)
            }
        } else {
            RopeParams {
                n_rot: c.n_rot,
                freq_base: s.rope_freq_base,
                freq_scale: 1.0,
                mode: rope_mode(c),
                yarn: None,
            }
        }
    })
}
