//! Tiny shapes for CI: each supported architecture in a few hundred kilobytes, with a tiny
//! GPT-2-style byte-level BPE vocabulary ([`super::vocab::tiny_byte_bpe`]) and weights scaled so
//! the next-token distributions are far from uniform. CI synthesizes them (bit-deterministic:
//! seeded, no file read) and compares our logits with a committed llama.cpp reference
//! (`rocmforge-cli/tests/data/kld/<name>.kld`, `llama-perplexity --kl-divergence-base`).
//!
//! A new architecture adds one entry to [`TINY`].

use std::path::PathBuf;

use anyhow::{Result, bail};

use super::mix::FileType;
use super::shape::{
    Llama3RopeShape, LongRopeShape, MoeShape, Shape, SwaShape, VocabSource, YarnShape,
};
use crate::models::sha256_of;
use crate::paths;

/// Seed of the CI files.
const TINY_SEED: u64 = 42;

/// One tiny shape: the architecture and what differs between architectures.
pub struct Tiny {
    /// `--shape` name (also the reference file's name).
    pub name: &'static str,
    /// `general.architecture`.
    pub arch: &'static str,
    /// Q/K/V biases (qwen2).
    pub qkv_bias: bool,
    /// Per-head RMS norms of q and k (qwen3).
    pub qk_norm: bool,
    /// Experts instead of the MLP (qwen3moe).
    pub moe: Option<MoeShape>,
    /// Blocks (2 unless an architecture needs more to show its layer pattern).
    pub n_layers: usize,
    /// The sliding window (gemma3), its layer pattern and the global layers' RoPE (base and
    /// linear scaling factor).
    pub swa: Option<TinySwa>,
    /// YaRN and the attention temperature (mistral3).
    pub yarn: Option<YarnShape>,
    /// LongRoPE (phi3).
    pub long_rope: Option<LongRopeShape>,
    /// Llama 3.1's RoPE scaling (`rope_freqs.weight`), with Llama 3's base 500 000.
    pub llama3_rope: Option<Llama3RopeShape>,
    /// The file type (Q8_0; gpt-oss: MXFP4 experts as ggml-org's files store them).
    pub ftype: FileType,
    /// sha256 of the Q8_0 file with seed 42: synthesis must stay bit-identical, since the
    /// committed llama.cpp reference was computed on exactly this file.
    pub sha256: &'static str,
}

/// Every tiny shape CI checks.
pub const TINY: &[Tiny] = &[
    TINY_LLAMA,
    Tiny {
        name: "tiny-qwen3",
        arch: "qwen3",
        qkv_bias: false,
        qk_norm: true,
        moe: None,
        n_layers: 2,
        swa: None,
        yarn: None,
        long_rope: None,
        llama3_rope: None,
        ftype: FileType::Q8_0,
        sha256: "be8f290de9d946f264d120204980d771d9c3ab61ab42652c46a2dd8ed3ee80a3",
    },
    Tiny {
        name: "tiny-qwen3moe-kl",
        arch: "qwen3moe",
        qkv_bias: false,
        qk_norm: true,
        moe: Some(MoeShape {
            n_expert: 8,
            n_expert_used: 2,
            ffn_exp: 64,
        }),
        n_layers: 2,
        swa: None,
        yarn: None,
        long_rope: None,
        llama3_rope: None,
        ftype: FileType::Q8_0,
        sha256: "a143d9d62101cdf328ef4d1be02ec789663924fe8d34d909ff965a470f221d89",
    },
    Tiny {
        name: "tiny-gemma3",
        arch: "gemma3",
        qkv_bias: false,
        qk_norm: true,
        moe: None,
        // Local, local, global: a window of 8 keys (so an off-by-one changes an eighth of each
        // local attention), base 10 000 on the local layers, 1e6 and linear scaling 8 on the
        // global one.
        n_layers: 3,
        swa: Some(TinySwa {
            window: 8,
            pattern: Some(3),
            global_rope_base: 1_000_000.0,
            global_rope_linear: Some(8.0),
        }),
        yarn: None,
        long_rope: None,
        llama3_rope: None,
        ftype: FileType::Q8_0,
        sha256: "6aeb4abe2cfd3cc8db162c91281dd6025c016a5c7eed8a813ef075f20be14009",
    },
    Tiny {
        name: "tiny-mistral3",
        arch: "mistral3",
        qkv_bias: false,
        qk_norm: false,
        moe: None,
        n_layers: 2,
        swa: None,
        // YaRN 4x over an original context of 32 (the 128-token chunks run past it), betas and
        // log multiplier off their defaults, and a temperature that grows every 32 positions.
        yarn: Some(YarnShape {
            factor: 4.0,
            original_context: 32,
            beta_fast: 16.0,
            beta_slow: 2.0,
            log_mul: 1.0,
            temperature_scale: 0.5,
        }),
        long_rope: None,
        llama3_rope: None,
        ftype: FileType::Q8_0,
        sha256: "162859202a254599f023905b6a0b096c7dcc0913638762afdfc04e72ad51c8f0",
    },
    Tiny {
        name: "tiny-llama3",
        // Llama 3.1's scaling (factor 8, low 1, high 4) over an original context of 64, base
        // 500 000: the 8 pairs of a 16-wide head get the divisors 1, 2.44, then 8 (one pair
        // unscaled, one blended, six at the full factor), all inside the 128-token chunks.
        llama3_rope: Some(Llama3RopeShape {
            original_context: 64,
            ..Llama3RopeShape::LLAMA_31
        }),
        sha256: "7923531c2639d49f21eadc2256e5fd0fb3d96307478c80f7109b2f9bd9efb748",
        ..TINY_LLAMA
    },
    TINY_GPT_OSS,
    Tiny {
        name: "tiny-phi3",
        arch: "phi3",
        qkv_bias: false,
        qk_norm: false,
        moe: None,
        // Fused attn_qkv and gate+up (the architecture's layout, `Shape::fused`). A sliding
        // window of 8 keys in the file, which llama.cpp ignores for phi3.
        n_layers: 2,
        swa: Some(TinySwa {
            window: 8,
            pattern: None,
            global_rope_base: 10_000.0,
            global_rope_linear: None,
        }),
        yarn: None,
        // LongRoPE over an original context of 32: the 128-token chunks take the long factors
        // (1 to 9); attention factor sqrt(1 + ln(512 / 32) / ln 32) = 1.34.
        long_rope: Some(LongRopeShape {
            original_context: 32,
            long_max: 8.0,
            short_max: 0.5,
        }),
        llama3_rope: None,
        ftype: FileType::Q8_0,
        sha256: "54e1176bd8cafb0e056dd334d95677b6b453c9a73723443dcfbc60db6823f4de",
    },
    Tiny {
        name: "tiny-phi3-short",
        arch: "phi3",
        qkv_bias: false,
        qk_norm: false,
        moe: None,
        n_layers: 2,
        swa: None,
        yarn: None,
        // The same with an original context of 256: 128-token chunks take the short factors
        // (1 to 3 here, so that taking the long ones instead shows); attention factor
        // sqrt(1 + ln 2 / ln 256) = 1.06.
        long_rope: Some(LongRopeShape {
            original_context: 256,
            long_max: 8.0,
            short_max: 2.0,
        }),
        llama3_rope: None,
        ftype: FileType::Q8_0,
        sha256: "4829cc12eddfcbd5db07ddeb1b3e56828a1ec9089b56a2d4b4f062943aff2827",
    },
    // F16: the input of the MXFP4_MOE quantize test (rocmforge-cli/tests), not a KL oracle.
    Tiny {
        name: "tiny-gpt-oss-f16",
        ftype: FileType::F16,
        sha256: "54c5d138735b0696cc20e2112827fe331c3710b44940a0487e54fe36d84843c5",
        ..TINY_GPT_OSS
    },
];

/// tiny-llama (also the base of tiny-llama3).
const TINY_LLAMA: Tiny = Tiny {
    name: "tiny-llama",
    arch: "llama",
    qkv_bias: false,
    qk_norm: false,
    moe: None,
    n_layers: 2,
    swa: None,
    yarn: None,
    long_rope: None,
    llama3_rope: None,
    ftype: FileType::Q8_0,
    sha256: "ac75923961b721945ed8ebd4d9c5a1f823674a6785e52e459db66c2ea30175c0",
};

/// tiny-gpt-oss (also the F16 input of the MXFP4_MOE quantize test).
const TINY_GPT_OSS: Tiny = Tiny {
    name: "tiny-gpt-oss",
    arch: "gpt-oss",
    qkv_bias: true,
    qk_norm: false,
    moe: Some(MoeShape {
        n_expert: 8,
        n_expert_used: 4,
        ffn_exp: 64,
    }),
    // Local, global, local (llama.cpp's default pattern for gpt-oss: even layers local),
    // a window of 8 keys; YaRN 4x over 32 on every layer with the default betas.
    n_layers: 3,
    swa: Some(TinySwa {
        window: 8,
        pattern: None,
        global_rope_base: 10_000.0,
        global_rope_linear: None,
    }),
    yarn: Some(YarnShape {
        factor: 4.0,
        original_context: 32,
        beta_fast: 32.0,
        beta_slow: 1.0,
        log_mul: 0.0,
        temperature_scale: 0.0,
    }),
    long_rope: None,
    llama3_rope: None,
    ftype: FileType::Mxfp4Moe,
    sha256: "7350704d6f608aaee9099d79bde06a54d1e20d982b2c8c93c0c764bc1d124b75",
};

/// The sliding-window part of a tiny shape.
pub struct TinySwa {
    pub window: usize,
    /// `attention.sliding_window_pattern` (absent: the architecture's default).
    pub pattern: Option<usize>,
    pub global_rope_base: f32,
    /// Linear RoPE scaling of the global layers.
    pub global_rope_linear: Option<f32>,
}

/// Standard deviation of the tiny shapes' weight matrices (about 1/sqrt(64), so activations keep
/// their size through the blocks).
pub const TINY_WEIGHT_SD: f32 = 0.15;
/// Standard deviation of their output layer: logits of spread ~4 on unit-RMS hidden states.
pub const TINY_OUTPUT_SD: f32 = 0.5;

impl Tiny {
    /// The shape: `n_layers` blocks of width 64, 4 heads (2 KV heads) of 16, FFN 128.
    pub fn shape(&self) -> Shape {
        Shape {
            // llama.cpp gives special tokens Phi-3's attributes when `general.name` contains
            // "phi3" or "phi-3", and then needs `<s>`, `</s>` and `<unk>` in the vocabulary,
            // which the tiny one lacks: the tiny phi3 files are named around it.
            name: match self.name {
                "tiny-phi3" => "tiny-phi_3",
                "tiny-phi3-short" => "tiny-phi_3-short",
                n => n,
            },
            arch: self.arch,
            vocab: super::vocab::TINY_VOCAB,
            n_layers: self.n_layers,
            dim: 64,
            ffn: 128,
            n_heads: 4,
            n_kv_heads: 2,
            qkv_bias: self.qkv_bias,
            qk_norm: self.qk_norm,
            // (Gemma ties its output to the token embedding; the tiny one does not: a tied
            // embedding of the output's scale, times sqrt(n_embd), would swamp the residual
            // stream and the model would mostly predict the token it was given.)
            tied_output: false,
            rope_base: match (&self.swa, self.llama3_rope) {
                (Some(s), _) => s.global_rope_base,
                (None, Some(_)) => 500_000.0,
                (None, None) => 10_000.0,
            },
            rms_eps: 1e-5,
            context: 512,
            tokenizer: Some(VocabSource::TinyByteBpe),
            head_dim_override: None,
            moe: self.moe,
            weight_sd: TINY_WEIGHT_SD,
            output_sd: TINY_OUTPUT_SD,
            router_sd: None,
            swa: self.swa.as_ref().map(|s| SwaShape {
                window: s.window,
                pattern: s.pattern,
            }),
            rope_scale_linear: self.swa.as_ref().and_then(|s| s.global_rope_linear),
            yarn: self.yarn,
            long_rope: self.long_rope,
            llama3_rope: self.llama3_rope,
        }
    }

    /// The tiny shape named `name`.
    pub fn by_name(name: &str) -> Option<Shape> {
        TINY.iter().find(|t| t.name == name).map(Tiny::shape)
    }
}

/// Where CI keeps the tiny models (`models/tiny/`, git-ignored).
pub fn dir() -> PathBuf {
    paths::models_dir().join("tiny")
}

/// Synthesizes every tiny shape (Q8_0, gpt-oss MXFP4_MOE) into [`dir`] (unless present with the right hash) and
/// checks each file's sha256. Returns their paths.
pub fn write_all() -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir())?;
    let mut out = Vec::new();
    for t in TINY {
        let path = dir().join(format!("{}.gguf", t.name));
        if !(path.exists() && sha256_of(&path)? == t.sha256) {
            super::synthesize(&t.shape(), t.ftype, TINY_SEED, &path)?;
        }
        let got = sha256_of(&path)?;
        if got != t.sha256 {
            bail!(
                "{} has sha256 {got}, expected {}: synthesis changed, so the committed llama.cpp \
                 reference no longer matches; regenerate it (see rocmforge-model/tests/data/kld/README.md)",
                path.display(),
                t.sha256
            );
        }
        out.push(path);
    }
    // The server tests' harmony copy of the gpt-oss one (small: rewritten every time).
    let harmony = dir().join(super::harmony::FILE);
    super::harmony::write_copy(&dir().join("tiny-gpt-oss.gguf"), &harmony)?;
    out.push(harmony);
    eprintln!("xtask: tiny CI models ready in {}", dir().display());
    Ok(out)
}
