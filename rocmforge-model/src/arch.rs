//! The model architectures this crate can run, and what differs between them.

use crate::error::{ModelError, ModelResult};

/// A decoder-only transformer family, named as in `general.architecture`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// Llama 2/3, Mistral, SmolLM2: RMS norm, SwiGLU, RoPE on adjacent pairs.
    Llama,
    /// Qwen2 / Qwen2.5: like llama plus q/k/v biases and NeoX RoPE.
    Qwen2,
    /// Qwen3: like llama with per-head RMS norms on q and k, NeoX RoPE.
    Qwen3,
    /// GLM-4 (0414): partial rotary, norms after attention and after the MLP,
    /// fused gate/up projection, optionally a fused qkv projection.
    Glm4,
    /// Qwen3 mixture of experts (Qwen3-30B-A3B): Qwen3's attention, and a feed-forward of
    /// `expert_count` experts of which a softmax router picks `expert_used_count` per token,
    /// their weights renormalised to sum to one.
    Qwen3Moe,
    /// Gemma 3 (text): interleaved sliding-window (local) and global layers with their own RoPE
    /// bases, q/k norms, norms after attention and after the MLP, embeddings scaled by
    /// `sqrt(n_embd)`, GeGLU (tanh GELU) MLP, tied output, NeoX RoPE.
    Gemma3,
    /// Mistral 3 (Ministral 3, text): llama's blocks with YaRN RoPE (its beta and log-multiplier
    /// keys read) and, when the file has `attention.temperature_scale`, queries scaled per
    /// position (llama 4's attention temperature).
    Mistral3,
    /// gpt-oss (OpenAI's open-weight MoE): attention with q/k/v/output biases and a learned sink
    /// logit per head, sliding-window (128) and full layers alternating (even layers local), YaRN,
    /// NeoX RoPE; a mixture of experts whose router has a bias and whose weights are the softmax
    /// of the chosen experts' logits, experts with biases and a clamped SwiGLU (`swiglu_oai`).
    GptOss,
    /// Phi-3 / Phi-4 (dense): llama's blocks with a fused `attn_qkv` and a fused gate+up
    /// `ffn_up` (gate the first half), NeoX RoPE, and LongRoPE ("su"): per-pair frequency
    /// divisors `rope_factors_long` / `rope_factors_short` chosen by the context, with the
    /// file's `rope.scaling.attn_factor`. A sliding window in the file is ignored, as llama.cpp
    /// 0.5.0 ignores it for phi3.
    Phi3,
}

/// How RoPE pairs up the dimensions of a head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RopeStyle {
    /// Dimension `2i` rotates with `2i+1` (llama GGUF files, GLM-4).
    Adjacent,
    /// Dimension `i` rotates with `i + n_rot/2` (GPT-NeoX, Qwen).
    HalfSplit,
}

impl Architecture {
    /// Every architecture name accepted in `general.architecture`.
    pub const SUPPORTED: [&'static str; 9] = [
        "llama", "qwen2", "qwen3", "glm4", "qwen3moe", "gemma3", "mistral3", "gpt-oss", "phi3",
    ];

    /// Parses `general.architecture`; an unknown name is an error listing the supported ones.
    pub fn from_name(name: &str) -> ModelResult<Self> {
        match name {
            "llama" => Ok(Self::Llama),
            "qwen2" => Ok(Self::Qwen2),
            "qwen3" => Ok(Self::Qwen3),
            "glm4" => Ok(Self::Glm4),
            "qwen3moe" => Ok(Self::Qwen3Moe),
            "gemma3" => Ok(Self::Gemma3),
            "mistral3" => Ok(Self::Mistral3),
            "gpt-oss" => Ok(Self::GptOss),
            "phi3" => Ok(Self::Phi3),
            other => Err(ModelError::UnsupportedArchitecture {
                name: other.to_string(),
                supported: Self::SUPPORTED.join(", "),
            }),
        }
    }

    /// The GGUF metadata prefix (`llama.block_count`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
            Self::Qwen3 => "qwen3",
            Self::Glm4 => "glm4",
            Self::Qwen3Moe => "qwen3moe",
            Self::Gemma3 => "gemma3",
            Self::Mistral3 => "mistral3",
            Self::GptOss => "gpt-oss",
            Self::Phi3 => "phi3",
        }
    }

    /// The RoPE pairing this architecture uses (as llama.cpp's `llama_model_rope_type`).
    pub fn rope_style(self) -> RopeStyle {
        match self {
            Self::Llama | Self::Glm4 | Self::Mistral3 => RopeStyle::Adjacent,
            Self::Qwen2
            | Self::Qwen3
            | Self::Qwen3Moe
            | Self::Gemma3
            | Self::GptOss
            | Self::Phi3 => RopeStyle::HalfSplit,
        }
    }

    /// Whether q/k get a per-head RMS norm before RoPE.
    pub fn has_qk_norm(self) -> bool {
        matches!(self, Self::Qwen3 | Self::Qwen3Moe | Self::Gemma3)
    }

    /// Whether the feed-forward is a mixture of experts (`ffn_*_exps` and a router).
    pub fn is_moe(self) -> bool {
        matches!(self, Self::Qwen3Moe | Self::GptOss)
    }

    /// Whether this is gpt-oss's block: attention sinks, output bias, router and expert biases,
    /// clamped SwiGLU experts, and `post_attention_norm` as the norm before the experts.
    pub fn is_gpt_oss(self) -> bool {
        matches!(self, Self::GptOss)
    }

    /// Whether the attention and MLP outputs are RMS-normed before the residual add.
    pub fn has_post_norms(self) -> bool {
        matches!(self, Self::Glm4 | Self::Gemma3)
    }

    /// Whether the file may hold LongRoPE factors (`rope_factors_long.weight` and
    /// `rope_factors_short.weight`), as llama.cpp loads them for phi3.
    pub fn reads_long_rope(self) -> bool {
        matches!(self, Self::Phi3)
    }

    /// Whether the file may hold Llama 3's RoPE frequency factors (`rope_freqs.weight`, one
    /// divisor per rotated pair for every layer), as llama.cpp loads them for llama and
    /// mistral3.
    pub fn reads_rope_freqs(self) -> bool {
        matches!(self, Self::Llama | Self::Mistral3)
    }

    /// Whether the MLP's gate goes through GELU (tanh approximation) instead of SiLU.
    pub fn gelu_gate(self) -> bool {
        matches!(self, Self::Gemma3)
    }

    /// Whether the file's YaRN tuning keys (`rope.scaling.yarn_beta_fast`, `yarn_beta_slow`,
    /// `yarn_log_multiplier`) and attention temperature are read (llama.cpp reads them per
    /// architecture).
    pub fn reads_yarn_tuning(self) -> bool {
        matches!(self, Self::Mistral3)
    }

    /// Whether some layers may attend over a sliding window (`attention.sliding_window`).
    pub fn has_sliding_window(self) -> bool {
        matches!(self, Self::Gemma3 | Self::GptOss)
    }

    /// The default period of local/global layers when the file has no
    /// `attention.sliding_window_pattern` (llama.cpp: gemma3 6, gpt-oss 2: even layers local).
    pub fn default_swa_period(self) -> usize {
        match self {
            Self::GptOss => 2,
            _ => 6,
        }
    }

    /// Whether the local layers' RoPE keeps the file's scaling (gpt-oss: YaRN on every layer,
    /// base `rope.freq_base_swa` else the global base) rather than running unscaled on base
    /// `rope.freq_base_swa` else 10 000 (gemma3).
    pub fn local_rope_scaled(self) -> bool {
        matches!(self, Self::GptOss)
    }

    /// Whether the token embeddings are multiplied by `sqrt(n_embd)`.
    pub fn scales_embedding(self) -> bool {
        matches!(self, Self::Gemma3)
    }

    /// The attention score scale. Gemma 3 follows llama.cpp (after gemma_pytorch): its 62-block
    /// model (27B) scales by `1 / sqrt(n_embd / n_head)`, the others by `1 / sqrt(head_dim)`
    /// (`query_pre_attn_scalar`); every other architecture by `1 / sqrt(head_dim)`.
    pub fn attention_scale(
        self,
        n_layers: usize,
        n_embd: usize,
        n_heads: usize,
        head_dim: usize,
    ) -> f32 {
        let d = match self {
            Self::Gemma3 if n_layers == 62 => n_embd / n_heads.max(1),
            _ => head_dim,
        };
        1.0 / (d as f32).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_names_and_lists_supported_on_error() {
        for name in Architecture::SUPPORTED {
            let arch = Architecture::from_name(name).map(Architecture::name);
            assert_eq!(arch.ok(), Some(name));
        }
        let err = Architecture::from_name("gpt2").err().map(|e| e.to_string());
        let text = err.unwrap_or_default();
        assert!(text.contains("gpt2"), "{text}");
        assert!(text.contains("llama, qwen2, qwen3, glm4"), "{text}");
    }

    #[test]
    fn rope_styles_follow_llama_cpp() {
        assert_eq!(Architecture::Llama.rope_style(), RopeStyle::Adjacent);
        assert_eq!(Architecture::Qwen2.rope_style(), RopeStyle::HalfSplit);
        assert_eq!(Architecture::Qwen3.rope_style(), RopeStyle::HalfSplit);
        assert_eq!(Architecture::Glm4.rope_style(), RopeStyle::Adjacent);
        assert_eq!(Architecture::Qwen3Moe.rope_style(), RopeStyle::HalfSplit);
        assert_eq!(Architecture::Gemma3.rope_style(), RopeStyle::HalfSplit);
        assert_eq!(Architecture::Mistral3.rope_style(), RopeStyle::Adjacent);
        assert_eq!(Architecture::GptOss.rope_style(), RopeStyle::HalfSplit);
        assert_eq!(Architecture::Phi3.rope_style(), RopeStyle::HalfSplit);
    }
}
