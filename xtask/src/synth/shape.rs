//! The model shapes `synth-model` writes: the hyperparameters and the tensor list of each.

use std::path::PathBuf;

use crate::paths;

/// Where a synthetic model's tokenizer comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum VocabSource {
    /// A `ggml-vocab-*.gguf` file whose `tokenizer.*` keys are copied.
    File(PathBuf),
    /// The generated tiny byte-level BPE of the CI shapes ([`super::vocab::tiny_byte_bpe`]).
    TinyByteBpe,
}

/// A decoder-only transformer shape (the llama and qwen2 tensor layout).
#[derive(Debug, Clone, PartialEq)]
pub struct Shape {
    /// `general.name` of the file.
    pub name: &'static str,
    /// `general.architecture`: "llama" or "qwen2".
    pub arch: &'static str,
    pub vocab: usize,
    pub n_layers: usize,
    pub dim: usize,
    pub ffn: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    /// Q/K/V biases (qwen2).
    pub qkv_bias: bool,
    /// `attn_q_norm` / `attn_k_norm` (qwen3).
    pub qk_norm: bool,
    /// No `output.weight`: the token embedding is the LM head.
    pub tied_output: bool,
    pub rope_base: f32,
    pub rms_eps: f32,
    pub context: usize,
    /// The tokenizer (padded to `vocab` tokens); `None` writes no tokenizer keys.
    pub tokenizer: Option<VocabSource>,
    /// Width of one attention head when it is not `dim / n_heads` (written as
    /// `attention.key_length` / `value_length`).
    pub head_dim_override: Option<usize>,
    /// A mixture-of-experts feed-forward instead of the MLP.
    pub moe: Option<MoeShape>,
    /// Standard deviation of the random weight matrices.
    pub weight_sd: f32,
    /// Standard deviation of the output layer (and of a tied embedding).
    pub output_sd: f32,
    /// Standard deviation of the mixture-of-experts routers (`None`: `weight_sd`).
    pub router_sd: Option<f32>,
    /// Sliding-window attention keys (gemma3).
    pub swa: Option<SwaShape>,
    /// `rope.scaling.type = linear` with this factor.
    pub rope_scale_linear: Option<f32>,
    /// `rope.scaling.type = yarn` with its keys, and the attention temperature (mistral3).
    pub yarn: Option<YarnShape>,
    /// Phi-3's LongRoPE: `rope_factors_long` / `rope_factors_short` and their keys.
    pub long_rope: Option<LongRopeShape>,
    /// Llama 3.1's RoPE scaling: the `rope_freqs.weight` tensor.
    pub llama3_rope: Option<Llama3RopeShape>,
}

/// Llama 3.1's RoPE scaling (HF `rope_type: llama3`) as its converter writes it: no scaling keys,
/// one tensor `rope_freqs.weight` of `head_dim / 2` F32 divisors of the pairs' angles — 1 for
/// wavelengths under `original_context / high_freq_factor`, `factor` for those over
/// `original_context / low_freq_factor`, a smooth blend between.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Llama3RopeShape {
    pub factor: f32,
    pub low_freq_factor: f32,
    pub high_freq_factor: f32,
    pub original_context: usize,
}

impl Llama3RopeShape {
    /// Llama 3.1's own values (factor 8, low 1, high 4, original context 8192).
    pub const LLAMA_31: Llama3RopeShape = Llama3RopeShape {
        factor: 8.0,
        low_freq_factor: 1.0,
        high_freq_factor: 4.0,
        original_context: 8192,
    };

    /// The divisors of the `head_dim / 2` pairs for RoPE base `base`.
    pub fn factors(&self, base: f32, head_dim: usize) -> Vec<f32> {
        let ctx = self.original_context as f64;
        let (low, high) = (
            f64::from(self.low_freq_factor),
            f64::from(self.high_freq_factor),
        );
        let (low_wavelen, high_wavelen) = (ctx / low, ctx / high);
        let factor = f64::from(self.factor);
        (0..head_dim / 2)
            .map(|i| {
                let freq = f64::from(base).powf(-((2 * i) as f64) / head_dim as f64);
                let wavelen = 2.0 * std::f64::consts::PI / freq;
                let f = if wavelen < high_wavelen {
                    1.0
                } else if wavelen > low_wavelen {
                    factor
                } else {
                    let smooth = (ctx / wavelen - low) / (high - low);
                    1.0 / ((1.0 - smooth) / factor + smooth)
                };
                f as f32
            })
            .collect()
    }
}

/// Phi-3's LongRoPE ("su") as its converter writes it: `rope.scaling.original_context_length`,
/// `rope.scaling.attn_factor = sqrt(1 + ln(context / original) / ln(original))` and per-pair
/// frequency divisors (long: growing from 1 to `1 + long_max` over the pairs, as Phi-3's long
/// factors grow; short: from 1 to `1 + short_max`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LongRopeShape {
    pub original_context: usize,
    pub long_max: f32,
    pub short_max: f32,
}

impl LongRopeShape {
    /// The converter's attention factor for a model of `context` positions.
    pub fn attn_factor(&self, context: usize) -> f32 {
        let scale = context as f64 / self.original_context as f64;
        if scale <= 1.0 {
            return 1.0;
        }
        (1.0 + scale.ln() / (self.original_context as f64).ln()).sqrt() as f32
    }

    /// The `pairs` divisors of the long (or short) factors.
    pub fn factors(&self, long: bool, pairs: usize) -> Vec<f32> {
        let max = if long { self.long_max } else { self.short_max };
        (0..pairs)
            .map(|i| 1.0 + max * (i as f32 / pairs.max(2).saturating_sub(1) as f32).powi(2))
            .collect()
    }
}

/// YaRN keys of a shape (and mistral3's `attention.temperature_scale`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct YarnShape {
    pub factor: f32,
    pub original_context: usize,
    pub beta_fast: f32,
    pub beta_slow: f32,
    pub log_mul: f32,
    pub temperature_scale: f32,
}

/// The sliding window of a shape: `attention.sliding_window` and, when set,
/// `attention.sliding_window_pattern` (llama.cpp's default for gemma3 is 6: every sixth layer
/// global).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SwaShape {
    pub window: usize,
    pub pattern: Option<usize>,
}

/// The experts of a mixture-of-experts shape (`ffn_gate_inp` + `ffn_{gate,up,down}_exps`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MoeShape {
    pub n_expert: usize,
    pub n_expert_used: usize,
    /// Hidden width of one expert.
    pub ffn_exp: usize,
}

fn vocab_file(name: &str) -> PathBuf {
    paths::repo_root()
        .join("..")
        .join("shared")
        .join("testdata")
        .join("vocab")
        .join(name)
}

impl Shape {
    /// Llama-3-8B.
    pub fn llama3_8b() -> Shape {
        Shape {
            name: "synthetic llama3-8b",
            arch: "llama",
            vocab: 128_256,
            n_layers: 32,
            dim: 4096,
            ffn: 14_336,
            n_heads: 32,
            n_kv_heads: 8,
            qkv_bias: false,
            qk_norm: false,
            tied_output: false,
            rope_base: 500_000.0,
            rms_eps: 1e-5,
            context: 8192,
            tokenizer: Some(VocabSource::File(vocab_file("ggml-vocab-llama-bpe.gguf"))),
            head_dim_override: None,
            moe: None,
            weight_sd: super::WEIGHT_SD,
            output_sd: super::WEIGHT_SD,
            router_sd: None,
            swa: None,
            rope_scale_linear: None,
            yarn: None,
            long_rope: None,
            llama3_rope: None,
        }
    }

    /// Llama-3.1-8B: Llama-3-8B with Llama 3.1's RoPE scaling (`rope_freqs.weight`) and context.
    pub fn llama31_8b() -> Shape {
        Shape {
            name: "synthetic llama3.1-8b",
            context: 131_072,
            llama3_rope: Some(Llama3RopeShape::LLAMA_31),
            ..Shape::llama3_8b()
        }
    }

    /// Qwen2.5-0.5B.
    pub fn qwen25_05b() -> Shape {
        Shape {
            name: "synthetic qwen2.5-0.5b",
            arch: "qwen2",
            vocab: 151_936,
            n_layers: 24,
            dim: 896,
            ffn: 4864,
            n_heads: 14,
            n_kv_heads: 2,
            qkv_bias: true,
            qk_norm: false,
            tied_output: true,
            rope_base: 1_000_000.0,
            rms_eps: 1e-6,
            context: 32_768,
            tokenizer: Some(VocabSource::File(vocab_file("ggml-vocab-gpt-2.gguf"))),
            head_dim_override: None,
            moe: None,
            weight_sd: super::WEIGHT_SD,
            output_sd: super::WEIGHT_SD,
            router_sd: None,
            swa: None,
            rope_scale_linear: None,
            yarn: None,
            long_rope: None,
            llama3_rope: None,
        }
    }

    /// Qwen3-30B-A3B (qwen3moe): 128 experts, 8 used per token.
    pub fn qwen3_30b_a3b() -> Shape {
        Shape {
            name: "synthetic qwen3-30b-a3b",
            arch: "qwen3moe",
            vocab: 151_936,
            n_layers: 48,
            dim: 2048,
            ffn: 6144,
            n_heads: 32,
            n_kv_heads: 4,
            qkv_bias: false,
            tied_output: false,
            rope_base: 1_000_000.0,
            rms_eps: 1e-6,
            context: 40_960,
            tokenizer: Some(VocabSource::File(vocab_file("ggml-vocab-gpt-2.gguf"))),
            head_dim_override: Some(128),
            qk_norm: true,
            moe: Some(MoeShape {
                n_expert: 128,
                n_expert_used: 8,
                ffn_exp: 768,
            }),
            weight_sd: super::WEIGHT_SD,
            output_sd: super::WEIGHT_SD,
            router_sd: None,
            swa: None,
            rope_scale_linear: None,
            yarn: None,
            long_rope: None,
            llama3_rope: None,
        }
    }

    /// A tiny qwen3moe for CI: 2 blocks of 8 experts (2 used), K-quant-sized rows.
    pub fn tiny_qwen3moe() -> Shape {
        Shape {
            name: "synthetic tiny qwen3moe",
            n_layers: 2,
            dim: 256,
            ffn: 512,
            n_heads: 4,
            n_kv_heads: 2,
            context: 4096,
            head_dim_override: Some(64),
            moe: Some(MoeShape {
                n_expert: 8,
                n_expert_used: 2,
                ffn_exp: 256,
            }),
            ..Shape::qwen3_30b_a3b()
        }
    }

    /// Gemma-3-4B (text): 34 blocks, 5 local (window 1024) then 1 global, head dim 256, linear
    /// RoPE scaling 8 on the global layers, tied output. The GPT-2 vocabulary padded to Gemma's
    /// 262,208 rows (the shape's cost; its tokenizer is not Gemma's).
    pub fn gemma3_4b() -> Shape {
        Shape {
            name: "synthetic gemma3-4b",
            arch: "gemma3",
            vocab: 262_208,
            n_layers: 34,
            dim: 2560,
            ffn: 10_240,
            n_heads: 8,
            n_kv_heads: 4,
            qkv_bias: false,
            qk_norm: true,
            tied_output: true,
            rope_base: 1_000_000.0,
            rms_eps: 1e-6,
            context: 131_072,
            tokenizer: Some(VocabSource::File(vocab_file("ggml-vocab-gpt-2.gguf"))),
            head_dim_override: Some(256),
            moe: None,
            weight_sd: super::WEIGHT_SD,
            output_sd: super::WEIGHT_SD,
            router_sd: None,
            swa: Some(SwaShape {
                window: 1024,
                pattern: None,
            }),
            rope_scale_linear: Some(8.0),
            yarn: None,
            long_rope: None,
            llama3_rope: None,
        }
    }

    /// Gemma-3-1B (text): 26 blocks, window 512, head dim 256, one KV head, no RoPE scaling.
    pub fn gemma3_1b() -> Shape {
        Shape {
            name: "synthetic gemma3-1b",
            vocab: 262_144,
            n_layers: 26,
            dim: 1152,
            ffn: 6912,
            n_heads: 4,
            n_kv_heads: 1,
            context: 32_768,
            swa: Some(SwaShape {
                window: 512,
                pattern: None,
            }),
            rope_scale_linear: None,
            ..Shape::gemma3_4b()
        }
    }

    /// gpt-oss-20b (ggml-org's GGUF: 24 blocks of 2880, 64 query / 8 KV heads of 64, 32
    /// experts of 2880 with 4 used, sliding window 128 on the even blocks, YaRN 32x over 4096,
    /// o200k vocabulary size; write it as MXFP4_MOE). The tokenizer is the GPT-2 test vocabulary
    /// padded to the size (as qwen3-30b-a3b's).
    pub fn gpt_oss_20b() -> Shape {
        Shape {
            name: "synthetic gpt-oss-20b",
            arch: "gpt-oss",
            vocab: 201_088,
            n_layers: 24,
            dim: 2880,
            ffn: 2880,
            n_heads: 64,
            n_kv_heads: 8,
            qkv_bias: true,
            qk_norm: false,
            tied_output: false,
            rope_base: 150_000.0,
            rms_eps: 1e-5,
            context: 131_072,
            tokenizer: Some(VocabSource::File(vocab_file("ggml-vocab-gpt-2.gguf"))),
            head_dim_override: Some(64),
            moe: Some(MoeShape {
                n_expert: 32,
                n_expert_used: 4,
                ffn_exp: 2880,
            }),
            weight_sd: super::WEIGHT_SD,
            output_sd: super::WEIGHT_SD,
            router_sd: None,
            swa: Some(SwaShape {
                window: 128,
                pattern: None,
            }),
            rope_scale_linear: None,
            yarn: Some(YarnShape {
                factor: 32.0,
                original_context: 4096,
                beta_fast: 32.0,
                beta_slow: 1.0,
                log_mul: 0.0,
                temperature_scale: 0.0,
            }),
            long_rope: None,
            llama3_rope: None,
        }
    }

    /// Phi-3-mini-128k (3.8B): 32 blocks of 3072, 32 heads of 96 (no GQA), FFN 8192 (gate and
    /// up fused), fused qkv, LongRoPE over an original context of 4096, the Phi-3 vocabulary
    /// padded to 32,064 rows, untied output.
    pub fn phi3_mini() -> Shape {
        Shape {
            name: "synthetic phi3-mini",
            arch: "phi3",
            vocab: 32_064,
            n_layers: 32,
            dim: 3072,
            ffn: 8192,
            n_heads: 32,
            n_kv_heads: 32,
            qkv_bias: false,
            qk_norm: false,
            tied_output: false,
            rope_base: 10_000.0,
            rms_eps: 1e-5,
            context: 131_072,
            tokenizer: Some(VocabSource::File(vocab_file("ggml-vocab-phi-3.gguf"))),
            head_dim_override: None,
            moe: None,
            weight_sd: super::WEIGHT_SD,
            output_sd: super::WEIGHT_SD,
            router_sd: None,
            // (Phi-3-mini-128k's config says 262,144; llama.cpp ignores phi3's window.)
            swa: Some(SwaShape {
                window: 262_144,
                pattern: None,
            }),
            rope_scale_linear: None,
            yarn: None,
            long_rope: Some(LongRopeShape {
                original_context: 4096,
                long_max: 40.0,
                short_max: 0.5,
            }),
            llama3_rope: None,
        }
    }

    /// The shape named on the command line.
    pub fn by_name(name: &str) -> Option<Shape> {
        match name {
            "llama3-8b" => Some(Shape::llama3_8b()),
            "llama3.1-8b" => Some(Shape::llama31_8b()),
            "qwen2.5-0.5b" => Some(Shape::qwen25_05b()),
            "qwen3-30b-a3b" => Some(Shape::qwen3_30b_a3b()),
            "tiny-qwen3moe" => Some(Shape::tiny_qwen3moe()),
            "gemma3-4b" => Some(Shape::gemma3_4b()),
            "gemma3-1b" => Some(Shape::gemma3_1b()),
            "gpt-oss-20b" => Some(Shape::gpt_oss_20b()),
            "phi3-mini" => Some(Shape::phi3_mini()),
            _ => super::tiny::Tiny::by_name(name),
        }
    }

    /// Norms after attention and after the MLP (gemma3).
    pub fn post_norms(&self) -> bool {
        self.arch == "gemma3"
    }

    /// gpt-oss's block: output bias, attention sinks, `post_attention_norm` before the experts,
    /// router and expert biases.
    pub fn gpt_oss(&self) -> bool {
        self.arch == "gpt-oss"
    }

    /// Phi-3's block: one `attn_qkv` and one `ffn_up` holding gate and up (gate first).
    pub fn fused(&self) -> bool {
        self.arch == "phi3"
    }

    pub fn head_dim(&self) -> usize {
        self.head_dim_override.unwrap_or(self.dim / self.n_heads)
    }

    /// Every tensor in file order.
    pub fn tensors(&self) -> Vec<TensorSpec> {
        let (d, hd) = (self.dim, self.head_dim());
        let (qd, kd) = (self.n_heads * hd, self.n_kv_heads * hd);
        let mut out = Vec::new();
        if self.llama3_rope.is_some() {
            // (First, as the converter writes its generated tensors.)
            out.push(TensorSpec::new(
                "rope_freqs.weight".into(),
                Kind::RopeFreqs,
                None,
                &[hd / 2],
            ));
        }
        if self.long_rope.is_some() {
            let pairs = self.head_dim() / 2;
            for (name, long) in [
                ("rope_factors_long.weight", true),
                ("rope_factors_short.weight", false),
            ] {
                out.push(TensorSpec::new(
                    name.into(),
                    Kind::RopeFactors { long },
                    None,
                    &[pairs],
                ));
            }
        }
        out.push(TensorSpec::new(
            "token_embd.weight".into(),
            Kind::TokenEmbd,
            None,
            &[d, self.vocab],
        ));
        for l in 0..self.n_layers {
            let t = |s: &str, kind: Kind, dims: &[usize]| {
                TensorSpec::new(format!("blk.{l}.{s}"), kind, Some(l), dims)
            };
            out.push(t("attn_norm.weight", Kind::Norm, &[d]));
            if self.fused() {
                out.push(t("attn_qkv.weight", Kind::AttnQkv, &[d, qd + 2 * kd]));
            } else {
                out.push(t("attn_q.weight", Kind::AttnQ, &[d, qd]));
                out.push(t("attn_k.weight", Kind::AttnK, &[d, kd]));
                out.push(t("attn_v.weight", Kind::AttnV, &[d, kd]));
            }
            if self.qkv_bias {
                out.push(t("attn_q.bias", Kind::Bias, &[qd]));
                out.push(t("attn_k.bias", Kind::Bias, &[kd]));
                out.push(t("attn_v.bias", Kind::Bias, &[kd]));
            }
            if self.qk_norm {
                out.push(t("attn_q_norm.weight", Kind::Norm, &[hd]));
                out.push(t("attn_k_norm.weight", Kind::Norm, &[hd]));
            }
            out.push(t("attn_output.weight", Kind::AttnOutput, &[qd, d]));
            if self.gpt_oss() {
                out.push(t("attn_output.bias", Kind::Bias, &[d]));
                out.push(t("attn_sinks.weight", Kind::Sink, &[self.n_heads]));
                out.push(t("post_attention_norm.weight", Kind::Norm, &[d]));
            } else {
                if self.post_norms() {
                    out.push(t("post_attention_norm.weight", Kind::Norm, &[d]));
                }
                out.push(t("ffn_norm.weight", Kind::Norm, &[d]));
            }
            match self.moe {
                Some(m) => {
                    let (e, f) = (m.n_expert, m.ffn_exp);
                    out.push(t("ffn_gate_inp.weight", Kind::Router, &[d, e]));
                    out.push(t("ffn_gate_exps.weight", Kind::FfnGate, &[d, f, e]));
                    out.push(t("ffn_up_exps.weight", Kind::FfnUp, &[d, f, e]));
                    out.push(t("ffn_down_exps.weight", Kind::FfnDown, &[f, d, e]));
                    if self.gpt_oss() {
                        out.push(t("ffn_gate_inp.bias", Kind::Bias, &[e]));
                        out.push(t("ffn_gate_exps.bias", Kind::Bias, &[f, e]));
                        out.push(t("ffn_up_exps.bias", Kind::Bias, &[f, e]));
                        out.push(t("ffn_down_exps.bias", Kind::Bias, &[d, e]));
                    }
                }
                None if self.fused() => {
                    out.push(t("ffn_up.weight", Kind::FfnUp, &[d, 2 * self.ffn]));
                    out.push(t("ffn_down.weight", Kind::FfnDown, &[self.ffn, d]));
                }
                None => {
                    out.push(t("ffn_gate.weight", Kind::FfnGate, &[d, self.ffn]));
                    out.push(t("ffn_up.weight", Kind::FfnUp, &[d, self.ffn]));
                    out.push(t("ffn_down.weight", Kind::FfnDown, &[self.ffn, d]));
                }
            }
            if self.post_norms() {
                out.push(t("post_ffw_norm.weight", Kind::Norm, &[d]));
            }
        }
        out.push(TensorSpec::new(
            "output_norm.weight".into(),
            Kind::Norm,
            None,
            &[d],
        ));
        if !self.tied_output {
            out.push(TensorSpec::new(
                "output.weight".into(),
                Kind::Output,
                None,
                &[d, self.vocab],
            ));
        }
        out
    }
}

/// What a tensor is (its quantization type and its random values depend on it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    TokenEmbd,
    Output,
    AttnQ,
    AttnK,
    AttnV,
    /// A fused q/k/v projection (phi3).
    AttnQkv,
    AttnOutput,
    FfnGate,
    FfnUp,
    FfnDown,
    Norm,
    Bias,
    /// A mixture-of-experts router (`ffn_gate_inp`, kept F32 as llama-quantize keeps it).
    Router,
    /// gpt-oss's attention sinks (one logit per head, F32, standard deviation 1).
    Sink,
    /// Phi-3's LongRoPE frequency divisors (F32, [`LongRopeShape::factors`]).
    RopeFactors {
        long: bool,
    },
    /// Llama 3.1's RoPE frequency divisors (F32, [`Llama3RopeShape::factors`]).
    RopeFreqs,
}

/// One tensor of a shape.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorSpec {
    pub name: String,
    pub kind: Kind,
    /// The block index, for per-layer tensors.
    pub layer: Option<usize>,
    /// `ne0` (the row length) first.
    pub dims: Vec<u64>,
}

impl TensorSpec {
    fn new(name: String, kind: Kind, layer: Option<usize>, dims: &[usize]) -> TensorSpec {
        TensorSpec {
            name,
            kind,
            layer,
            dims: dims.iter().map(|&d| d as u64).collect(),
        }
    }

    /// The row length (`ne0`).
    pub fn row_len(&self) -> usize {
        self.dims.first().copied().unwrap_or(1) as usize
    }

    /// The number of elements.
    pub fn n_elements(&self) -> usize {
        self.dims.iter().product::<u64>() as usize
    }
}
