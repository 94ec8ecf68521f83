//! `ModelConfig::from_gguf` on small files written with `GgufWriter`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue};
use rocmforge_model::{Architecture, LongRope, ModelConfig, ModelError, RopeScaling};

fn file_with(arch: &str, extra: &[(&str, MetadataValue)]) -> GgufFile {
    file_with_factors(arch, extra, None)
}

/// [`file_with`] plus, when given, a RoPE factor tensor of that name (`[8]`, F32: one per pair
/// of the 16-wide heads).
fn file_with_factors(
    arch: &str,
    extra: &[(&str, MetadataValue)],
    factors: Option<&str>,
) -> GgufFile {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetadataValue::String(arch.into()));
    let k = |s: &str| format!("{arch}.{s}");
    w.add_metadata(&k("block_count"), MetadataValue::U32(1));
    w.add_metadata(&k("embedding_length"), MetadataValue::U32(64));
    w.add_metadata(&k("feed_forward_length"), MetadataValue::U32(128));
    w.add_metadata(&k("attention.head_count"), MetadataValue::U32(4));
    w.add_metadata(&k("context_length"), MetadataValue::U64(256));
    for (key, v) in extra {
        w.add_metadata(key, v.clone());
    }
    let embd: Vec<u8> = vec![0u8; 64 * 10 * 4];
    w.add_tensor("token_embd.weight", &[64, 10], GgmlType::F32, embd)
        .unwrap();
    if let Some(name) = factors {
        w.add_tensor(name, &[8], GgmlType::F32, vec![0u8; 8 * 4])
            .unwrap();
    }
    GgufFile::from_bytes("config-test.gguf", w.to_bytes().unwrap()).unwrap()
}

#[test]
fn defaults_are_filled_in() {
    let c = ModelConfig::from_gguf(&file_with("llama", &[])).unwrap();
    assert_eq!(c.arch, Architecture::Llama);
    assert_eq!((c.n_layers, c.n_embd, c.n_ff), (1, 64, 128));
    assert_eq!(
        (c.n_heads, c.n_kv_heads, c.head_dim, c.head_dim_v),
        (4, 4, 16, 16)
    );
    assert_eq!(c.n_rot, 16);
    assert_eq!(c.rope_freq_base, 10_000.0);
    assert_eq!(c.rope_scaling, RopeScaling::None);
    assert_eq!(c.context_length, 256);
    // vocabulary from token_embd rows when there is no token list
    assert_eq!(c.vocab_size, 10);
}

#[test]
fn explicit_values_win() {
    let c = ModelConfig::from_gguf(&file_with(
        "qwen3",
        &[
            ("qwen3.attention.head_count_kv", MetadataValue::U32(2)),
            ("qwen3.attention.key_length", MetadataValue::U32(32)),
            ("qwen3.attention.value_length", MetadataValue::U32(32)),
            ("qwen3.rope.freq_base", MetadataValue::F32(1e6)),
            ("qwen3.rope.dimension_count", MetadataValue::U32(16)),
            (
                "qwen3.attention.layer_norm_rms_epsilon",
                MetadataValue::F32(1e-6),
            ),
            (
                "qwen3.rope.scaling.type",
                MetadataValue::String("linear".into()),
            ),
            ("qwen3.rope.scaling.factor", MetadataValue::F32(4.0)),
        ],
    ))
    .unwrap();
    assert_eq!(c.arch, Architecture::Qwen3);
    assert_eq!((c.n_kv_heads, c.head_dim, c.n_rot), (2, 32, 16));
    assert_eq!(c.q_dim(), 128);
    assert_eq!(c.k_dim(), 64);
    assert_eq!(c.rope_freq_base, 1e6);
    assert_eq!(c.rms_eps, 1e-6);
    assert_eq!(c.rope_scaling, RopeScaling::Linear { factor: 4.0 });
}

#[test]
fn unknown_architecture_lists_the_supported_ones() {
    let err = ModelConfig::from_gguf(&file_with("mamba", &[])).unwrap_err();
    assert!(matches!(err, ModelError::UnsupportedArchitecture { .. }));
    let text = err.to_string();
    assert!(
        text.contains("mamba") && text.contains("llama, qwen2, qwen3, glm4"),
        "{text}"
    );
}

#[test]
fn inconsistent_heads_are_errors_naming_the_key() {
    let err = ModelConfig::from_gguf(&file_with(
        "llama",
        &[("llama.attention.head_count_kv", MetadataValue::U32(3))],
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("llama.attention.head_count_kv"),
        "{err}"
    );
    let err = ModelConfig::from_gguf(&file_with(
        "llama",
        &[("llama.rope.dimension_count", MetadataValue::U32(17))],
    ))
    .unwrap_err();
    assert!(
        err.to_string().contains("llama.rope.dimension_count"),
        "{err}"
    );
    let err = ModelConfig::from_gguf(&file_with(
        "llama",
        &[("llama.block_count", MetadataValue::U32(1_000_000))],
    ))
    .unwrap_err();
    assert!(err.to_string().contains("llama.block_count"), "{err}");
}

#[test]
fn missing_key_is_an_error() {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetadataValue::String("llama".into()),
    );
    let file = GgufFile::from_bytes("empty.gguf", w.to_bytes().unwrap()).unwrap();
    let err = ModelConfig::from_gguf(&file).unwrap_err();
    assert!(err.to_string().contains("llama.block_count"), "{err}");
}

#[test]
fn qwen3moe_reads_its_experts_and_checks_their_counts() {
    let u = MetadataValue::U32;
    let c = ModelConfig::from_gguf(&file_with(
        "qwen3moe",
        &[
            ("qwen3moe.expert_count", u(128)),
            ("qwen3moe.expert_used_count", u(8)),
            ("qwen3moe.expert_feed_forward_length", u(768)),
        ],
    ))
    .unwrap();
    assert_eq!(c.arch, Architecture::Qwen3Moe);
    let moe = c.moe.unwrap();
    assert_eq!(
        (moe.n_expert, moe.n_expert_used, moe.n_ff_exp),
        (128, 8, 768)
    );
    assert!(
        moe.normalize_weights,
        "qwen3moe renormalises the top-k weights"
    );
    // Without the expert width, llama.cpp's default: the dense width over the used experts.
    let c = ModelConfig::from_gguf(&file_with(
        "qwen3moe",
        &[
            ("qwen3moe.expert_count", u(8)),
            ("qwen3moe.expert_used_count", u(2)),
        ],
    ))
    .unwrap();
    assert_eq!(c.moe.map(|m| m.n_ff_exp), Some(64));
    let err = |extra: &[(&str, MetadataValue)]| {
        ModelConfig::from_gguf(&file_with("qwen3moe", extra))
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default()
    };
    let text = err(&[("qwen3moe.expert_used_count", u(2))]);
    assert!(text.contains("qwen3moe.expert_count"), "{text}");
    let text = err(&[
        ("qwen3moe.expert_count", u(4)),
        ("qwen3moe.expert_used_count", u(5)),
    ]);
    assert!(
        text.contains("expert_used_count") && text.contains("5"),
        "{text}"
    );
    let text = err(&[
        ("qwen3moe.expert_count", u(1 << 30)),
        ("qwen3moe.expert_used_count", u(2)),
    ]);
    assert!(text.contains("expert_count"), "{text}");
    let text = err(&[
        ("qwen3moe.expert_count", u(8)),
        ("qwen3moe.expert_used_count", u(0)),
    ]);
    assert!(text.contains("expert_used_count"), "{text}");
    // Dense architectures have no expert configuration.
    assert_eq!(
        ModelConfig::from_gguf(&file_with("qwen3", &[]))
            .unwrap()
            .moe,
        None
    );
}

/// A gemma3 file of `layers` blocks (one dummy tensor per block, so the count is believable).
fn gemma3_file(layers: u32, extra: &[(&str, MetadataValue)]) -> GgufFile {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetadataValue::String("gemma3".into()),
    );
    let k = |s: &str| format!("gemma3.{s}");
    w.add_metadata(&k("block_count"), MetadataValue::U32(layers));
    w.add_metadata(&k("embedding_length"), MetadataValue::U32(64));
    w.add_metadata(&k("feed_forward_length"), MetadataValue::U32(128));
    w.add_metadata(&k("attention.head_count"), MetadataValue::U32(4));
    w.add_metadata(&k("attention.key_length"), MetadataValue::U32(32));
    for (key, v) in extra {
        w.add_metadata(key, v.clone());
    }
    with_layers(w, layers)
}

/// `w` with a token embedding and one tensor per layer (a block count is checked against the
/// tensors), as a file.
fn with_layers(mut w: GgufWriter, layers: u32) -> GgufFile {
    w.add_tensor(
        "token_embd.weight",
        &[64, 10],
        GgmlType::F32,
        vec![0u8; 64 * 10 * 4],
    )
    .unwrap();
    for il in 0..layers {
        let name = format!("blk.{il}.attn_norm.weight");
        w.add_tensor(&name, &[64], GgmlType::F32, vec![0u8; 64 * 4])
            .unwrap();
    }
    GgufFile::from_bytes("layers-config.gguf", w.to_bytes().unwrap()).unwrap()
}

#[test]
fn gemma3_reads_its_sliding_window_as_llama_cpp() {
    // No window key: every layer global (llama.cpp: LLAMA_SWA_TYPE_NONE).
    let c = ModelConfig::from_gguf(&gemma3_file(8, &[])).unwrap();
    assert_eq!(c.arch, Architecture::Gemma3);
    assert!(c.swa.is_none());
    assert!((0..8).all(|il| c.layer_window(il).is_none()));
    // head_dim 32 (not 64 / 4): the score scale follows key_length; embeddings scaled by 8.
    assert_eq!(c.attn_scale, 1.0 / 32f32.sqrt());
    assert_eq!(c.embd_scale, Some(8.0));
    assert_eq!(c.final_logit_softcap, None);

    // A window with the default pattern: layers 5 and 11 of 12 are global; local base 10 000.
    let c = ModelConfig::from_gguf(&gemma3_file(
        12,
        &[
            ("gemma3.attention.sliding_window", MetadataValue::U32(512)),
            ("gemma3.rope.freq_base", MetadataValue::F32(1e6)),
        ],
    ))
    .unwrap();
    let windows: Vec<Option<usize>> = (0..12).map(|il| c.layer_window(il)).collect();
    let mut expected = vec![Some(512); 12];
    expected[5] = None;
    expected[11] = None;
    assert_eq!(windows, expected);
    let swa = c.swa.as_ref().unwrap();
    assert_eq!((swa.rope_freq_base, c.rope_freq_base), (10_000.0, 1e6));

    // An explicit period and local base; soft-capping read when present.
    let c = ModelConfig::from_gguf(&gemma3_file(
        4,
        &[
            ("gemma3.attention.sliding_window", MetadataValue::U32(4)),
            (
                "gemma3.attention.sliding_window_pattern",
                MetadataValue::U32(2),
            ),
            ("gemma3.rope.freq_base_swa", MetadataValue::F32(20_000.0)),
            ("gemma3.final_logit_softcapping", MetadataValue::F32(30.0)),
        ],
    ))
    .unwrap();
    let windows: Vec<Option<usize>> = (0..4).map(|il| c.layer_window(il)).collect();
    assert_eq!(windows, [Some(4), None, Some(4), None]);
    assert_eq!(c.swa.as_ref().unwrap().rope_freq_base, 20_000.0);
    assert_eq!(c.final_logit_softcap, Some(30.0));

    // Per-layer flags.
    let flags = rocmforge_gguf::MetadataArray::new(
        rocmforge_gguf::MetadataValueType::Bool,
        [true, false, false]
            .into_iter()
            .map(MetadataValue::Bool)
            .collect(),
    );
    let c = ModelConfig::from_gguf(&gemma3_file(
        3,
        &[
            ("gemma3.attention.sliding_window", MetadataValue::U32(16)),
            (
                "gemma3.attention.sliding_window_pattern",
                MetadataValue::Array(flags),
            ),
        ],
    ))
    .unwrap();
    let windows: Vec<Option<usize>> = (0..3).map(|il| c.layer_window(il)).collect();
    assert_eq!(windows, [Some(16), None, None]);
}

#[test]
fn gemma3_62_blocks_scale_scores_by_the_embedding_per_head() {
    // llama.cpp's 27B rule: 1 / sqrt(n_embd / n_head) = 1 / sqrt(16), not 1 / sqrt(32).
    let c = ModelConfig::from_gguf(&gemma3_file(62, &[])).unwrap();
    assert_eq!(c.attn_scale, 0.25);
}

#[test]
fn mistral3_reads_yarn_tuning_and_attention_temperature() {
    let f = MetadataValue::F32;
    let c = ModelConfig::from_gguf(&file_with(
        "mistral3",
        &[
            (
                "mistral3.rope.scaling.type",
                MetadataValue::String("yarn".into()),
            ),
            ("mistral3.rope.scaling.factor", f(16.0)),
            (
                "mistral3.rope.scaling.original_context_length",
                MetadataValue::U32(16_384),
            ),
            ("mistral3.rope.scaling.yarn_beta_fast", f(32.0)),
            ("mistral3.rope.scaling.yarn_beta_slow", f(1.0)),
            ("mistral3.rope.scaling.yarn_log_multiplier", f(1.0)),
            ("mistral3.attention.temperature_scale", f(0.1)),
        ],
    ))
    .unwrap();
    assert_eq!(c.arch, Architecture::Mistral3);
    assert_eq!(
        c.rope_scaling,
        RopeScaling::Yarn {
            factor: 16.0,
            original_context: 16_384,
            beta_fast: 32.0,
            beta_slow: 1.0,
            log_mul: 1.0,
        }
    );
    let t = c.attn_temperature.unwrap();
    assert_eq!((t.scale, t.floor), (0.1, 16_384));
    // Without the scale key: no temperature; llama's YaRN keeps the defaults (its keys unread).
    let c = ModelConfig::from_gguf(&file_with("mistral3", &[])).unwrap();
    assert!(c.attn_temperature.is_none());
    let c = ModelConfig::from_gguf(&file_with(
        "llama",
        &[
            (
                "llama.rope.scaling.type",
                MetadataValue::String("yarn".into()),
            ),
            ("llama.rope.scaling.factor", f(4.0)),
            (
                "llama.rope.scaling.original_context_length",
                MetadataValue::U32(64),
            ),
            ("llama.rope.scaling.yarn_beta_fast", f(8.0)),
        ],
    ))
    .unwrap();
    assert!(matches!(
        c.rope_scaling,
        RopeScaling::Yarn {
            beta_fast: 32.0,
            log_mul: 0.0,
            ..
        }
    ));
}

#[test]
fn gpt_oss_alternates_local_and_global_layers_with_yarn_on_both() {
    let u = MetadataValue::U32;
    let f = MetadataValue::F32;
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetadataValue::String("gpt-oss".into()),
    );
    let k = |s: &str| format!("gpt-oss.{s}");
    for (key, v) in [
        ("block_count", u(4)),
        ("embedding_length", u(2880)),
        ("feed_forward_length", u(2880)),
        ("attention.head_count", u(64)),
        ("attention.head_count_kv", u(8)),
        ("attention.key_length", u(64)),
        ("attention.value_length", u(64)),
        ("attention.sliding_window", u(128)),
        ("expert_count", u(32)),
        ("expert_used_count", u(4)),
        ("expert_feed_forward_length", u(2880)),
        ("rope.freq_base", f(150_000.0)),
        ("rope.scaling.factor", f(32.0)),
        ("rope.scaling.original_context_length", u(4096)),
        // Read by mistral3 only: gpt-oss keeps llama.cpp's defaults (32, 1, none).
        ("rope.scaling.yarn_beta_fast", f(8.0)),
    ] {
        w.add_metadata(&k(key), v);
    }
    w.add_metadata(
        &k("rope.scaling.type"),
        MetadataValue::String("yarn".into()),
    );
    let c = ModelConfig::from_gguf(&with_layers(w, 4)).unwrap();
    assert_eq!(c.arch, Architecture::GptOss);
    assert_eq!((c.n_heads, c.n_kv_heads, c.head_dim), (64, 8, 64));
    assert_eq!(c.attn_scale, 1.0 / 8.0);
    let moe = c.moe.unwrap();
    assert_eq!(
        (moe.n_expert, moe.n_expert_used, moe.n_ff_exp),
        (32, 4, 2880)
    );
    assert!(moe.normalize_weights);
    // llama.cpp's default pattern for gpt-oss is 2: the even layers are local.
    let swa = c.swa.clone().unwrap();
    assert_eq!(swa.window, 128);
    assert_eq!(swa.local, vec![true, false, true, false]);
    assert_eq!(
        (0..4).map(|il| c.layer_window(il)).collect::<Vec<_>>(),
        vec![Some(128), None, Some(128), None]
    );
    // The local layers keep the YaRN scaling and (without freq_base_swa) the global base.
    assert!(swa.rope_scaled);
    assert_eq!(swa.rope_freq_base, 150_000.0);
    assert_eq!(
        c.rope_scaling,
        RopeScaling::Yarn {
            factor: 32.0,
            original_context: 4096,
            beta_fast: 32.0,
            beta_slow: 1.0,
            log_mul: 0.0,
        }
    );
}

/// A phi3 file with LongRoPE factor tensors (`long`, `short` present or not) and `extra` keys.
fn phi3_file(long: bool, short: bool, extra: &[(&str, MetadataValue)]) -> GgufFile {
    let u = MetadataValue::U32;
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetadataValue::String("phi3".into()));
    for (key, v) in [
        ("block_count", u(1)),
        ("embedding_length", u(64)),
        ("feed_forward_length", u(128)),
        ("attention.head_count", u(4)),
        ("context_length", u(131_072)),
        // Ignored, as llama.cpp 0.5.0 ignores phi3's window.
        ("attention.sliding_window", u(262_144)),
    ] {
        w.add_metadata(&format!("phi3.{key}"), v);
    }
    for (key, v) in extra {
        w.add_metadata(key, v.clone());
    }
    for (name, present) in [
        ("rope_factors_long.weight", long),
        ("rope_factors_short.weight", short),
    ] {
        if present {
            w.add_tensor(name, &[8], GgmlType::F32, vec![0u8; 8 * 4])
                .unwrap();
        }
    }
    with_layers(w, 1)
}

#[test]
fn phi3_reads_long_rope_and_its_attention_factor_and_ignores_the_window() {
    let c = ModelConfig::from_gguf(&phi3_file(
        true,
        true,
        &[
            (
                "phi3.rope.scaling.original_context_length",
                MetadataValue::U32(4096),
            ),
            ("phi3.rope.scaling.attn_factor", MetadataValue::F32(1.19)),
        ],
    ))
    .unwrap();
    assert_eq!(c.arch, Architecture::Phi3);
    assert_eq!(
        c.long_rope,
        Some(LongRope {
            original_context: 4096
        })
    );
    assert_eq!(c.rope_attn_factor, 1.19);
    assert_eq!(c.rope_scaling, RopeScaling::None);
    assert_eq!(c.swa, None);
    assert_eq!(c.layer_window(0), None);

    // Without the original context key: the training context; without factors: no LongRoPE.
    let c = ModelConfig::from_gguf(&phi3_file(true, true, &[])).unwrap();
    assert_eq!(c.long_rope.map(|l| l.original_context), Some(131_072));
    assert_eq!(c.rope_attn_factor, 1.0);
    let c = ModelConfig::from_gguf(&phi3_file(false, false, &[])).unwrap();
    assert_eq!(c.long_rope, None);

    // One set of factors without the other is refused, naming the missing tensor.
    let err = ModelConfig::from_gguf(&phi3_file(true, false, &[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rope_factors_short.weight"), "{err}");
    let bad = [("phi3.rope.scaling.attn_factor", MetadataValue::F32(-1.0))];
    let err = ModelConfig::from_gguf(&phi3_file(true, true, &bad))
        .unwrap_err()
        .to_string();
    assert!(err.contains("rope.scaling.attn_factor"), "{err}");
}

/// A file of `arch` as Llama 3.1's converter writes one: `rope.freq_base` 500 000, no scaling
/// keys (plus `extra`), and `rope_freqs.weight` when `freqs`.
fn llama31_file(arch: &str, freqs: bool, extra: &[(&str, MetadataValue)]) -> GgufFile {
    let base = format!("{arch}.rope.freq_base");
    let mut keys = vec![(base.as_str(), MetadataValue::F32(500_000.0))];
    keys.extend_from_slice(extra);
    file_with_factors(arch, &keys, freqs.then_some("rope_freqs.weight"))
}

#[test]
fn llama31_reads_its_rope_base_and_rope_freqs() {
    for arch in ["llama", "mistral3"] {
        let c = ModelConfig::from_gguf(&llama31_file(arch, true, &[])).unwrap();
        assert_eq!(c.rope_freq_base, 500_000.0, "{arch}");
        assert!(c.rope_freqs, "{arch}");
        assert_eq!(c.rope_scaling, RopeScaling::None, "{arch}");
        assert_eq!(c.long_rope, None, "{arch}");
        let c = ModelConfig::from_gguf(&llama31_file(arch, false, &[])).unwrap();
        assert!(!c.rope_freqs, "{arch}");
    }
    // Architectures llama.cpp loads no rope_freqs for refuse a file that has it.
    for arch in ["qwen2", "qwen3", "phi3"] {
        let err = ModelConfig::from_gguf(&llama31_file(arch, true, &[]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rope_freqs.weight") && err.contains(arch),
            "{err}"
        );
    }
    // A 'llama3' scaling type (llama.cpp stops on it too) says where the scaling belongs.
    let t = [(
        "llama.rope.scaling.type",
        MetadataValue::String("llama3".into()),
    )];
    let err = ModelConfig::from_gguf(&llama31_file("llama", true, &t))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("llama.rope.scaling.type") && err.contains("rope_freqs.weight"),
        "{err}"
    );
}
