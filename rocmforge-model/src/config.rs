//! `ModelConfig`: the hyperparameters of a model, read from GGUF metadata.

use rocmforge_gguf::{GgufFile, Metadata, MetadataValue};

use crate::arch::Architecture;
use crate::error::{ModelError, ModelResult};

/// How RoPE frequencies are rescaled for contexts longer than the training one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum RopeScaling {
    /// Plain RoPE.
    None,
    /// Positions divided by `factor` (frequency scale `1/factor`).
    Linear {
        /// The context extension factor.
        factor: f32,
    },
    /// YaRN interpolation.
    Yarn {
        /// The context extension factor.
        factor: f32,
        /// The context length the model was trained with.
        original_context: u32,
        /// Rotations where the ramp starts (`rope.scaling.yarn_beta_fast`, default 32).
        beta_fast: f32,
        /// Rotations where it ends (`rope.scaling.yarn_beta_slow`, default 1).
        beta_slow: f32,
        /// `rope.scaling.yarn_log_multiplier` (`mscale_all_dim`; 0: none).
        log_mul: f32,
    },
}

/// The mixture-of-experts feed-forward of an architecture that has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MoeConfig {
    /// Experts per block (`{arch}.expert_count`).
    pub n_expert: usize,
    /// Experts each token uses (`{arch}.expert_used_count`).
    pub n_expert_used: usize,
    /// Hidden width of one expert (`{arch}.expert_feed_forward_length`).
    pub n_ff_exp: usize,
    /// Whether the chosen experts' probabilities are divided by their sum (qwen3moe: yes).
    pub normalize_weights: bool,
}

/// Sliding-window (local) attention on some layers, as llama.cpp's standard SWA: a query at
/// position `p` of a local layer sees the keys at positions `p - window + 1 ..= p`.
#[derive(Debug, Clone, PartialEq)]
pub struct SlidingWindow {
    /// Keys a local layer's query sees, itself included (`{arch}.attention.sliding_window`).
    pub window: usize,
    /// Per layer: whether it is local (windowed) rather than global.
    pub local: Vec<bool>,
    /// RoPE base of the local layers (`{arch}.rope.freq_base_swa`, else 10 000 — gpt-oss: else
    /// the global base).
    pub rope_freq_base: f32,
    /// Whether the local layers' RoPE keeps the file's scaling (gpt-oss's YaRN); otherwise it is
    /// never rescaled (gemma3: the file's scaling applies to the global layers only).
    pub rope_scaled: bool,
}

/// Llama 4's attention temperature (mistral3): queries at position `p` scaled by
/// `ln(floor(p / floor) + 1) * scale + 1`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttnTemperature {
    /// `{arch}.attention.temperature_scale`.
    pub scale: f32,
    /// Positions per step of the temperature: the YaRN original context
    /// (`rope.scaling.original_context_length`, else the training context).
    pub floor: u32,
}

/// Phi-3's LongRoPE ("su" scaling): per-pair frequency divisors, `rope_factors_long.weight`
/// when a sequence's context is longer than `original_context`, else
/// `rope_factors_short.weight` (llama.cpp's `get_rope_factors`, by the context of each
/// sequence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LongRope {
    /// `{arch}.rope.scaling.original_context_length`, else the training context.
    pub original_context: usize,
}

/// The tensors of Phi-3's LongRoPE factors.
pub const ROPE_FACTORS_LONG: &str = "rope_factors_long.weight";
/// See [`ROPE_FACTORS_LONG`].
pub const ROPE_FACTORS_SHORT: &str = "rope_factors_short.weight";

/// The tensor of Llama 3's RoPE frequency factors: `n_rot / 2` F32 divisors of the pairs'
/// angles, the same on every layer and at every context (llama.cpp's `LLM_TENSOR_ROPE_FREQS`,
/// passed as `freq_factors` to every layer's `ggml_rope_ext`). Llama 3.1 / 3.2 converters write
/// it in place of a `rope.scaling.type`.
pub const ROPE_FREQS: &str = "rope_freqs.weight";

/// Largest expert count accepted (the device router's limit; real models have at most 256).
pub const MAX_EXPERTS: usize = 1024;

/// Hyperparameters of a decoder-only transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    /// The architecture family.
    pub arch: Architecture,
    /// Number of transformer blocks.
    pub n_layers: usize,
    /// Width of the residual stream.
    pub n_embd: usize,
    /// Hidden width of the MLP.
    pub n_ff: usize,
    /// Query heads.
    pub n_heads: usize,
    /// Key/value heads (GQA when fewer than `n_heads`).
    pub n_kv_heads: usize,
    /// Dimension of one query/key head.
    pub head_dim: usize,
    /// Dimension of one value head.
    pub head_dim_v: usize,
    /// Dimensions of each head that RoPE rotates (partial rotary when < `head_dim`).
    pub n_rot: usize,
    /// RoPE base frequency.
    pub rope_freq_base: f32,
    /// RoPE context scaling.
    pub rope_scaling: RopeScaling,
    /// Epsilon of the RMS norms.
    pub rms_eps: f32,
    /// Context length the model was trained for.
    pub context_length: usize,
    /// Number of tokens in the vocabulary (rows of the output layer).
    pub vocab_size: usize,
    /// The mixture of experts, for MoE architectures.
    pub moe: Option<MoeConfig>,
    /// Sliding-window attention of the local layers (gemma3).
    pub swa: Option<SlidingWindow>,
    /// Attention score scale (`1 / sqrt(head_dim)` unless the architecture says otherwise).
    pub attn_scale: f32,
    /// Factor applied to the token embeddings (gemma3: `sqrt(n_embd)`).
    pub embd_scale: Option<f32>,
    /// Final logit soft-capping `cap * tanh(logit / cap)` (`{arch}.final_logit_softcapping`).
    pub final_logit_softcap: Option<f32>,
    /// Attention temperature (mistral3 files with `attention.temperature_scale`).
    pub attn_temperature: Option<AttnTemperature>,
    /// LongRoPE frequency factors (phi3 files with `rope_factors_long` / `_short`).
    pub long_rope: Option<LongRope>,
    /// Whether [`ROPE_FREQS`] divides every layer's RoPE angles (llama and mistral3 files that
    /// have it).
    pub rope_freqs: bool,
    /// `{arch}.rope.scaling.attn_factor` (1 when absent): RoPE's cos and sin are scaled by it
    /// on every layer (llama.cpp's `rope_attn_factor`; Phi-3's LongRoPE magnitude).
    pub rope_attn_factor: f32,
}

fn key(arch: Architecture, suffix: &str) -> String {
    format!("{}.{suffix}", arch.name())
}

fn required_usize(md: &Metadata, key: &str) -> ModelResult<usize> {
    let v = md.get_u64(key)?;
    usize::try_from(v).map_err(|_| invalid(key, format!("{v} does not fit in usize")))
}

fn optional_usize(md: &Metadata, key: &str) -> ModelResult<Option<usize>> {
    if md.get(key).is_none() {
        return Ok(None);
    }
    required_usize(md, key).map(Some)
}

fn invalid(key: &str, reason: impl Into<String>) -> ModelError {
    ModelError::InvalidConfig {
        key: key.to_string(),
        reason: reason.into(),
    }
}

fn positive(key: &str, v: usize) -> ModelResult<usize> {
    if v == 0 {
        Err(invalid(key, "must be greater than zero"))
    } else {
        Ok(v)
    }
}

/// Rows of the output layer: the token list, else `token_embd.weight`, else `{arch}.vocab_size`.
fn vocab_size(file: &GgufFile, arch: Architecture) -> ModelResult<usize> {
    if let Some(MetadataValue::Array(tokens)) = file.metadata().get("tokenizer.ggml.tokens") {
        return Ok(tokens.values.len());
    }
    if let Some(info) = file.tensor("token_embd.weight") {
        if let Some(&rows) = info.dims.get(1) {
            return usize::try_from(rows)
                .map_err(|_| invalid("token_embd.weight", "row count does not fit in usize"));
        }
    }
    required_usize(file.metadata(), &key(arch, "vocab_size"))
}

fn rope_scaling(md: &Metadata, arch: Architecture) -> ModelResult<RopeScaling> {
    let type_key = key(arch, "rope.scaling.type");
    let factor_key = key(arch, "rope.scaling.factor");
    let factor = match md.opt_f32(&factor_key)? {
        Some(f) => Some(f),
        None => md.opt_f32(&key(arch, "rope.scale_linear"))?,
    };
    let kind = md.opt_str(&type_key)?;
    let kind = match (kind, factor) {
        (Some(k), _) => k.to_string(),
        (None, Some(_)) => "linear".to_string(),
        (None, None) => "none".to_string(),
    };
    let factor = factor.unwrap_or(1.0);
    let checked_factor = || {
        if factor.is_finite() && factor > 0.0 {
            Ok(factor)
        } else {
            Err(invalid(
                &factor_key,
                format!("{factor} is not a positive number"),
            ))
        }
    };
    match kind.as_str() {
        "none" => Ok(RopeScaling::None),
        "linear" => {
            let factor = checked_factor()?;
            Ok(if factor == 1.0 {
                RopeScaling::None
            } else {
                RopeScaling::Linear { factor }
            })
        }
        "yarn" => {
            let orig_key = key(arch, "rope.scaling.original_context_length");
            let tuning = |suffix: &str, default: f32| -> ModelResult<f32> {
                if !arch.reads_yarn_tuning() {
                    return Ok(default);
                }
                let k = key(arch, suffix);
                match md.opt_f32(&k)? {
                    None => Ok(default),
                    Some(v) if v.is_finite() => Ok(v),
                    Some(v) => Err(invalid(&k, format!("{v} is not a number"))),
                }
            };
            Ok(RopeScaling::Yarn {
                factor: checked_factor()?,
                original_context: md.get_u32(&orig_key)?,
                beta_fast: tuning("rope.scaling.yarn_beta_fast", 32.0)?,
                beta_slow: tuning("rope.scaling.yarn_beta_slow", 1.0)?,
                log_mul: tuning("rope.scaling.yarn_log_multiplier", 0.0)?,
            })
        }
        // llama.cpp stops on this name too: Llama 3's converter writes no type, and the factors
        // as the `rope_freqs.weight` tensor.
        "llama3" => Err(invalid(
            &type_key,
            format!(
                "'llama3' is not a GGUF scaling type (llama.cpp refuses it too): Llama 3.1 files \
                 carry their scaling as the {ROPE_FREQS} tensor and no {type_key}"
            ),
        )),
        other => Err(invalid(
            &type_key,
            format!("unknown scaling '{other}' (supported: none, linear, yarn)"),
        )),
    }
}

/// The experts of a MoE architecture, each count checked against the others and the limits.
fn moe_config(md: &Metadata, arch: Architecture, n_ff: usize) -> ModelResult<Option<MoeConfig>> {
    if !arch.is_moe() {
        return Ok(None);
    }
    let k = |s: &str| key(arch, s);
    let n_expert = positive(&k("expert_count"), required_usize(md, &k("expert_count"))?)?;
    if n_expert > MAX_EXPERTS {
        return Err(invalid(
            &k("expert_count"),
            format!("{n_expert} experts (at most {MAX_EXPERTS} are supported)"),
        ));
    }
    let used_key = k("expert_used_count");
    let n_expert_used = positive(&used_key, required_usize(md, &used_key)?)?;
    if n_expert_used > n_expert {
        return Err(invalid(
            &used_key,
            format!("{n_expert_used} experts used of {n_expert}"),
        ));
    }
    // As llama.cpp: without the key, the dense width split over the used experts.
    let n_ff_exp = match optional_usize(md, &k("expert_feed_forward_length"))? {
        Some(v) => v,
        None => n_ff / n_expert_used,
    };
    let n_ff_exp = positive(&k("expert_feed_forward_length"), n_ff_exp)?;
    Ok(Some(MoeConfig {
        n_expert,
        n_expert_used,
        n_ff_exp,
        normalize_weights: true,
    }))
}

/// Layers of the default gemma3 pattern: every `n_pattern`-th layer (the last of each group)
/// is global, the others local (llama.cpp's `set_swa_pattern`; 0 makes every layer local).
fn swa_pattern(n_layers: usize, n_pattern: usize) -> Vec<bool> {
    (0..n_layers)
        .map(|il| n_pattern == 0 || il % n_pattern < n_pattern - 1)
        .collect()
}

/// The sliding window of an architecture that has one, read as llama.cpp reads it: a window of
/// `{arch}.attention.sliding_window` keys (absent or 0: none) on the layers that
/// `{arch}.attention.sliding_window_pattern` marks (an array of per-layer flags, or a period
/// whose last layer is global; default 6, gpt-oss 2).
fn sliding_window(
    md: &Metadata,
    arch: Architecture,
    n_layers: usize,
    rope_freq_base: f32,
) -> ModelResult<Option<SlidingWindow>> {
    if !arch.has_sliding_window() {
        return Ok(None);
    }
    let k = |s: &str| key(arch, s);
    let window = match optional_usize(md, &k("attention.sliding_window"))? {
        None | Some(0) => return Ok(None),
        Some(w) => w,
    };
    let pattern_key = k("attention.sliding_window_pattern");
    let local = match md.get(&pattern_key) {
        None => swa_pattern(n_layers, arch.default_swa_period()),
        Some(MetadataValue::Array(a)) => {
            if a.values.len() > MAX_LAYER_FLAGS {
                return Err(invalid(
                    &pattern_key,
                    format!("{} flags for {n_layers} layers", a.values.len()),
                ));
            }
            let mut local = vec![false; n_layers];
            for (il, v) in a.values.iter().enumerate().take(n_layers) {
                local[il] = match v {
                    MetadataValue::Bool(b) => *b,
                    other => match other.as_integer() {
                        Some(i) => i != 0,
                        None => {
                            return Err(invalid(
                                &pattern_key,
                                format!(
                                    "an array of {} (expected bool or integer flags)",
                                    a.elem_type
                                ),
                            ));
                        }
                    },
                };
            }
            local
        }
        Some(_) => swa_pattern(n_layers, required_usize(md, &pattern_key)?),
    };
    let base_key = k("rope.freq_base_swa");
    let rope_scaled = arch.local_rope_scaled();
    let default_base = if rope_scaled {
        rope_freq_base
    } else {
        10_000.0
    };
    let rope_freq_base = md.opt_f32(&base_key)?.unwrap_or(default_base);
    if !(rope_freq_base.is_finite() && rope_freq_base > 0.0) {
        return Err(invalid(
            &base_key,
            format!("{rope_freq_base} is not positive"),
        ));
    }
    Ok(Some(SlidingWindow {
        window,
        local,
        rope_freq_base,
        rope_scaled,
    }))
}

/// The attention temperature of an architecture that reads it, when the file sets a non-zero
/// scale (llama.cpp: the floor is `n_ctx_orig_yarn`, which must not be 0).
fn attn_temperature(
    md: &Metadata,
    arch: Architecture,
    context_length: usize,
) -> ModelResult<Option<AttnTemperature>> {
    if !arch.reads_yarn_tuning() {
        return Ok(None);
    }
    let scale_key = key(arch, "attention.temperature_scale");
    let scale = match md.opt_f32(&scale_key)? {
        None | Some(0.0) => return Ok(None),
        Some(s) if s.is_finite() => s,
        Some(s) => return Err(invalid(&scale_key, format!("{s} is not a number"))),
    };
    let orig_key = key(arch, "rope.scaling.original_context_length");
    let floor = match optional_usize(md, &orig_key)? {
        Some(v) => v,
        None => context_length,
    };
    let floor = u32::try_from(positive(&orig_key, floor)?)
        .map_err(|_| invalid(&orig_key, format!("{floor} does not fit in 32 bits")))?;
    Ok(Some(AttnTemperature { scale, floor }))
}

/// LongRoPE when the architecture reads it and the file has its factors (both tensors, or
/// neither).
fn long_rope(
    file: &GgufFile,
    arch: Architecture,
    context_length: usize,
) -> ModelResult<Option<LongRope>> {
    if !arch.reads_long_rope() {
        return Ok(None);
    }
    let long = file.tensor(ROPE_FACTORS_LONG).is_some();
    let short = file.tensor(ROPE_FACTORS_SHORT).is_some();
    match (long, short) {
        (false, false) => Ok(None),
        (true, true) => {
            let orig_key = key(arch, "rope.scaling.original_context_length");
            let original_context = match optional_usize(file.metadata(), &orig_key)? {
                Some(v) => positive(&orig_key, v)?,
                None => context_length,
            };
            Ok(Some(LongRope { original_context }))
        }
        (true, false) | (false, true) => Err(ModelError::MissingTensor {
            name: format!(
                "{} (the file has {}: LongRoPE needs both)",
                if long {
                    ROPE_FACTORS_SHORT
                } else {
                    ROPE_FACTORS_LONG
                },
                if long {
                    ROPE_FACTORS_LONG
                } else {
                    ROPE_FACTORS_SHORT
                }
            ),
        }),
    }
}

/// Whether the file's [`ROPE_FREQS`] applies: for the architectures llama.cpp loads it for. A
/// file of another architecture that holds it is refused, as llama.cpp refuses a tensor it does
/// not use (rather than running without the factors and giving other logits).
fn rope_freqs(file: &GgufFile, arch: Architecture) -> ModelResult<bool> {
    if file.tensor(ROPE_FREQS).is_none() {
        return Ok(false);
    }
    if arch.reads_rope_freqs() {
        return Ok(true);
    }
    Err(invalid(
        ROPE_FREQS,
        format!(
            "RoPE frequency factors in a {} file: llama.cpp uses them for llama and mistral3 only",
            arch.name()
        ),
    ))
}

/// `{arch}.rope.scaling.attn_factor`, 1 when absent.
fn rope_attn_factor(md: &Metadata, arch: Architecture) -> ModelResult<f32> {
    let k = key(arch, "rope.scaling.attn_factor");
    match md.opt_f32(&k)? {
        None => Ok(1.0),
        Some(f) if f.is_finite() && f > 0.0 => Ok(f),
        Some(f) => Err(invalid(&k, format!("{f} is not a positive number"))),
    }
}

/// Largest array of per-layer flags accepted (llama.cpp's `LLAMA_MAX_LAYERS`).
pub const MAX_LAYER_FLAGS: usize = 512;

impl ModelConfig {
    /// Reads the configuration of the model in `file`.
    pub fn from_gguf(file: &GgufFile) -> ModelResult<Self> {
        let arch = Architecture::from_name(file.architecture()?)?;
        let md = file.metadata();
        let k = |s: &str| key(arch, s);

        let n_layers = required_usize(md, &k("block_count"))?;
        if n_layers > file.tensors().len() {
            return Err(invalid(
                &k("block_count"),
                format!(
                    "{n_layers} blocks but the file holds only {} tensors",
                    file.tensors().len()
                ),
            ));
        }
        let n_embd = positive(
            &k("embedding_length"),
            required_usize(md, &k("embedding_length"))?,
        )?;
        let n_ff = positive(
            &k("feed_forward_length"),
            required_usize(md, &k("feed_forward_length"))?,
        )?;
        let n_heads = positive(
            &k("attention.head_count"),
            required_usize(md, &k("attention.head_count"))?,
        )?;
        let n_kv_heads = optional_usize(md, &k("attention.head_count_kv"))?.unwrap_or(n_heads);
        let n_kv_heads = positive(&k("attention.head_count_kv"), n_kv_heads)?;
        if n_heads % n_kv_heads != 0 {
            return Err(invalid(
                &k("attention.head_count_kv"),
                format!("{n_kv_heads} does not divide head_count {n_heads}"),
            ));
        }
        let head_dim = match optional_usize(md, &k("attention.key_length"))? {
            Some(d) => d,
            None if n_embd % n_heads == 0 => n_embd / n_heads,
            None => {
                return Err(invalid(
                    &k("attention.head_count"),
                    format!("{n_heads} does not divide embedding_length {n_embd}"),
                ));
            }
        };
        let head_dim = positive(&k("attention.key_length"), head_dim)?;
        let head_dim_v = optional_usize(md, &k("attention.value_length"))?.unwrap_or(head_dim);
        let head_dim_v = positive(&k("attention.value_length"), head_dim_v)?;
        let n_rot = optional_usize(md, &k("rope.dimension_count"))?.unwrap_or(head_dim);
        if n_rot > head_dim || n_rot % 2 != 0 {
            return Err(invalid(
                &k("rope.dimension_count"),
                format!("{n_rot} must be even and at most the head dimension {head_dim}"),
            ));
        }
        let rope_freq_base = md.opt_f32(&k("rope.freq_base"))?.unwrap_or(10_000.0);
        if !(rope_freq_base.is_finite() && rope_freq_base > 0.0) {
            return Err(invalid(
                &k("rope.freq_base"),
                format!("{rope_freq_base} is not positive"),
            ));
        }
        let rms_eps = md
            .opt_f32(&k("attention.layer_norm_rms_epsilon"))?
            .unwrap_or(1e-5);
        if !(rms_eps.is_finite() && rms_eps >= 0.0) {
            return Err(invalid(
                &k("attention.layer_norm_rms_epsilon"),
                format!("{rms_eps} is not a non-negative number"),
            ));
        }
        let context_length = positive(
            &k("context_length"),
            optional_usize(md, &k("context_length"))?.unwrap_or(2048),
        )?;
        let vocab_size = positive("vocabulary size", vocab_size(file, arch)?)?;
        let softcap_key = k("final_logit_softcapping");
        let final_logit_softcap = match md.opt_f32(&softcap_key)? {
            // 0 means none, as in llama.cpp.
            None | Some(0.0) => None,
            Some(c) if c.is_finite() && c > 0.0 => Some(c),
            Some(c) => return Err(invalid(&softcap_key, format!("{c} is not positive"))),
        };
        let attn_temperature = attn_temperature(md, arch, context_length)?;
        let long_rope = long_rope(file, arch, context_length)?;
        let rope_freqs = rope_freqs(file, arch)?;
        Ok(Self {
            arch,
            n_layers,
            n_embd,
            n_ff,
            n_heads,
            n_kv_heads,
            head_dim,
            head_dim_v,
            n_rot,
            rope_freq_base,
            rope_scaling: rope_scaling(md, arch)?,
            rms_eps,
            context_length,
            vocab_size,
            moe: moe_config(md, arch, n_ff)?,
            swa: sliding_window(md, arch, n_layers, rope_freq_base)?,
            attn_scale: arch.attention_scale(n_layers, n_embd, n_heads, head_dim),
            embd_scale: arch.scales_embedding().then(|| (n_embd as f32).sqrt()),
            final_logit_softcap,
            attn_temperature,
            long_rope,
            rope_freqs,
            rope_attn_factor: rope_attn_factor(md, arch)?,
        })
    }

    /// The sliding window of layer `il`, if it is a local layer.
    pub fn layer_window(&self, il: usize) -> Option<usize> {
        self.swa
            .as_ref()
            .filter(|s| s.local.get(il).copied().unwrap_or(false))
            .map(|s| s.window)
    }

    /// Width of all query heads together.
    pub fn q_dim(&self) -> usize {
        self.n_heads * self.head_dim
    }

    /// Width of all key heads together (one token's row of the K cache).
    pub fn k_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim
    }

    /// Width of all value heads together (one token's row of the V cache).
    pub fn v_dim(&self) -> usize {
        self.n_kv_heads * self.head_dim_v
    }
}
