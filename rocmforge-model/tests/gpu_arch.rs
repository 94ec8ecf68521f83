//! GPU suite of the architectures (harness-free; needs a GPU and the compiled kernels):
//! tiny random F32 models of llama (tied output, Llama 3's `rope_freqs` factors), qwen2 (q/k/v biases, NeoX RoPE), qwen3
//! (q/k norms), glm4 (fused qkv with bias, fused gate/up, partial rotary, post norms) and
//! qwen3moe (a router and 8 Q8_0 experts, 2 used per token: routing and the expert matvec on
//! the device) and gemma3 (a local layer with a 3-key sliding window and its own RoPE base, a
//! global layer with linear RoPE scaling, q/k and post norms, scaled embeddings, GeGLU, tied
//! output, final logit soft-capping) and mistral3 (YaRN with its beta and log-multiplier keys,
//! the attention temperature growing every 4 positions) and gpt-oss (MXFP4 experts with biases,
//! a router bias, 4 of 8 experts used, clamped SwiGLU, attention sinks, q/k/v/output biases,
//! a 3-key sliding window on the even layer, YaRN on both) and phi3 (fused qkv without bias,
//! fused gate/up, LongRoPE frequency factors with an attention factor)
//! run by [`Model`] on the GPU — prefill, decode and a ragged batch — against the same `Model`
//! on the CPU backend; and the device-memory limits: a model that cannot fit fails before any
//! upload, and the KV cache is capped to the free memory instead of failing.
//!
//! Last line: "N passed, M failed"; exit status 0 only when M = 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::ExitCode;
use std::sync::Arc;

use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue};
use rocmforge_model::batch::Segment;
use rocmforge_model::rng::SeededRng;
use rocmforge_model::{ExecutionPlan, LogitsFor, Model};
use rocmforge_tensor::{Backend, GgufLoader};

#[path = "gpu_common/decode_padding.rs"]
mod decode_padding;

type Check = Result<String, String>;

const EMBD: usize = 64;
const FF: usize = 128;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const HEAD_DIM: usize = 16;
const VOCAB: usize = 96;
const LAYERS: usize = 2;
const EXPERTS: usize = 8;
const EXPERTS_USED: usize = 2;
const FF_EXP: usize = 64;

/// A tiny random model of `arch` as GGUF bytes.
fn tiny(arch: &str) -> Vec<u8> {
    let mut rng = SeededRng::new(99);
    let (qd, kd) = (HEADS * HEAD_DIM, KV_HEADS * HEAD_DIM);
    let mut w = GgufWriter::new();
    // Expert tensors are Q8_0 (the GPU's expert matvec takes quantized weights), the rest F32.
    let mut add = |w: &mut GgufWriter, name: String, dims: Vec<usize>, scale: f32, offset: f32| {
        let n: usize = dims.iter().product();
        let values: Vec<f32> = (0..n)
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) as f32) * scale + offset)
            .collect();
        let ty = if name.contains("_exps.weight") && arch == "gpt-oss" {
            GgmlType::MXFP4
        } else if name.contains("_exps.weight") {
            GgmlType::Q8_0
        } else {
            GgmlType::F32
        };
        let bytes = rocmforge_gguf::quants::quantize(ty, &values).unwrap();
        let dims: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        w.add_tensor(&name, &dims, ty, bytes).unwrap();
    };
    add(
        &mut w,
        "token_embd.weight".into(),
        vec![EMBD, VOCAB],
        1.0,
        0.0,
    );
    add(&mut w, "output_norm.weight".into(), vec![EMBD], 0.2, 1.0);
    if arch == "llama" {
        // Llama 3's RoPE frequency factors (1 to 7), the same on both layers.
        add(
            &mut w,
            "rope_freqs.weight".into(),
            vec![HEAD_DIM / 2],
            3.0,
            4.0,
        );
    }
    if arch == "phi3" {
        let pairs = HEAD_DIM / 2;
        add(
            &mut w,
            "rope_factors_long.weight".into(),
            vec![pairs],
            4.0,
            5.0,
        );
        add(
            &mut w,
            "rope_factors_short.weight".into(),
            vec![pairs],
            0.2,
            1.2,
        );
    }
    if arch != "llama" && arch != "gemma3" {
        add(&mut w, "output.weight".into(), vec![EMBD, VOCAB], 0.5, 0.0);
    }
    for l in 0..LAYERS {
        let n = |s: &str| format!("blk.{l}.{s}");
        add(&mut w, n("attn_norm.weight"), vec![EMBD], 0.2, 1.0);
        let norm2 = if arch == "gpt-oss" {
            "post_attention_norm.weight"
        } else {
            "ffn_norm.weight"
        };
        add(&mut w, n(norm2), vec![EMBD], 0.2, 1.0);
        add(&mut w, n("attn_output.weight"), vec![qd, EMBD], 0.3, 0.0);
        let moe = arch == "qwen3moe" || arch == "gpt-oss";
        if !moe {
            add(&mut w, n("ffn_down.weight"), vec![FF, EMBD], 0.3, 0.0);
        }
        if arch == "phi3" {
            let qkv = vec![EMBD, qd + 2 * kd];
            add(&mut w, n("attn_qkv.weight"), qkv, 0.3, 0.0);
            add(&mut w, n("ffn_up.weight"), vec![EMBD, 2 * FF], 0.3, 0.0);
        } else if arch == "glm4" {
            add(
                &mut w,
                n("attn_qkv.weight"),
                vec![EMBD, qd + 2 * kd],
                0.3,
                0.0,
            );
            add(&mut w, n("attn_qkv.bias"), vec![qd + 2 * kd], 0.1, 0.0);
            add(&mut w, n("ffn_up.weight"), vec![EMBD, 2 * FF], 0.3, 0.0);
            add(
                &mut w,
                n("post_attention_norm.weight"),
                vec![EMBD],
                0.2,
                1.0,
            );
            add(&mut w, n("post_ffw_norm.weight"), vec![EMBD], 0.2, 1.0);
        } else {
            add(&mut w, n("attn_q.weight"), vec![EMBD, qd], 0.3, 0.0);
            add(&mut w, n("attn_k.weight"), vec![EMBD, kd], 0.3, 0.0);
            add(&mut w, n("attn_v.weight"), vec![EMBD, kd], 0.3, 0.0);
        }
        if moe {
            add(
                &mut w,
                n("ffn_gate_inp.weight"),
                vec![EMBD, EXPERTS],
                0.5,
                0.0,
            );
            let (gate, up) = (n("ffn_gate_exps.weight"), n("ffn_up_exps.weight"));
            add(&mut w, gate, vec![EMBD, FF_EXP, EXPERTS], 0.3, 0.0);
            add(&mut w, up, vec![EMBD, FF_EXP, EXPERTS], 0.3, 0.0);
            let down = n("ffn_down_exps.weight");
            add(&mut w, down, vec![FF_EXP, EMBD, EXPERTS], 0.3, 0.0);
        } else if arch != "glm4" && arch != "phi3" {
            add(&mut w, n("ffn_gate.weight"), vec![EMBD, FF], 0.3, 0.0);
            add(&mut w, n("ffn_up.weight"), vec![EMBD, FF], 0.3, 0.0);
        }
        if arch == "gpt-oss" {
            add(&mut w, n("attn_output.bias"), vec![EMBD], 0.1, 0.0);
            add(&mut w, n("attn_sinks.weight"), vec![HEADS], 2.0, 0.0);
            add(&mut w, n("ffn_gate_inp.bias"), vec![EXPERTS], 0.5, 0.0);
            // Expert biases large enough that the clamp of 7 binds on some values.
            add(
                &mut w,
                n("ffn_gate_exps.bias"),
                vec![FF_EXP, EXPERTS],
                4.0,
                0.0,
            );
            add(
                &mut w,
                n("ffn_up_exps.bias"),
                vec![FF_EXP, EXPERTS],
                4.0,
                0.0,
            );
            add(
                &mut w,
                n("ffn_down_exps.bias"),
                vec![EMBD, EXPERTS],
                0.3,
                0.0,
            );
        }
        if arch == "qwen2" || arch == "gpt-oss" {
            add(&mut w, n("attn_q.bias"), vec![qd], 0.1, 0.0);
            add(&mut w, n("attn_k.bias"), vec![kd], 0.1, 0.0);
            add(&mut w, n("attn_v.bias"), vec![kd], 0.1, 0.0);
        }
        if arch == "qwen3" || arch == "qwen3moe" || arch == "gemma3" {
            add(&mut w, n("attn_q_norm.weight"), vec![HEAD_DIM], 0.2, 1.0);
            add(&mut w, n("attn_k_norm.weight"), vec![HEAD_DIM], 0.2, 1.0);
        }
        if arch == "gemma3" {
            let (pa, pf) = (n("post_attention_norm.weight"), n("post_ffw_norm.weight"));
            add(&mut w, pa, vec![EMBD], 0.2, 1.0);
            add(&mut w, pf, vec![EMBD], 0.2, 1.0);
        }
    }
    let u = |v: usize| MetadataValue::U32(v as u32);
    w.add_metadata("general.architecture", MetadataValue::String(arch.into()));
    w.add_metadata(&format!("{arch}.block_count"), u(LAYERS));
    w.add_metadata(&format!("{arch}.embedding_length"), u(EMBD));
    w.add_metadata(&format!("{arch}.feed_forward_length"), u(FF));
    w.add_metadata(&format!("{arch}.attention.head_count"), u(HEADS));
    w.add_metadata(&format!("{arch}.attention.head_count_kv"), u(KV_HEADS));
    w.add_metadata(&format!("{arch}.attention.key_length"), u(HEAD_DIM));
    let n_rot = if arch == "glm4" {
        HEAD_DIM / 2
    } else {
        HEAD_DIM
    };
    w.add_metadata(&format!("{arch}.rope.dimension_count"), u(n_rot));
    w.add_metadata(&format!("{arch}.context_length"), u(64));
    if arch == "qwen3moe" || arch == "gpt-oss" {
        let used = if arch == "gpt-oss" { 4 } else { EXPERTS_USED };
        w.add_metadata(&format!("{arch}.expert_count"), u(EXPERTS));
        w.add_metadata(&format!("{arch}.expert_used_count"), u(used));
        w.add_metadata(&format!("{arch}.expert_feed_forward_length"), u(FF_EXP));
    }
    if arch == "mistral3" || arch == "gpt-oss" {
        // YaRN 4x over 4 positions (gpt-oss: on both layers, layer 0 local with 3 keys).
        let f = MetadataValue::F32;
        w.add_metadata(
            &format!("{arch}.rope.scaling.type"),
            MetadataValue::String("yarn".into()),
        );
        w.add_metadata(&format!("{arch}.rope.scaling.factor"), f(4.0));
        w.add_metadata(
            &format!("{arch}.rope.scaling.original_context_length"),
            u(4),
        );
    }
    if arch == "mistral3" {
        let f = MetadataValue::F32;
        w.add_metadata(&format!("{arch}.rope.scaling.yarn_beta_fast"), f(16.0));
        w.add_metadata(&format!("{arch}.rope.scaling.yarn_log_multiplier"), f(1.0));
        w.add_metadata(&format!("{arch}.attention.temperature_scale"), f(0.5));
    }
    if arch == "gpt-oss" {
        w.add_metadata(&format!("{arch}.attention.sliding_window"), u(3));
    }
    if arch == "phi3" {
        // LongRoPE over an original context of 4: caches longer than that take the long
        // factors (1 to 9), the attention factor scales cos and sin.
        w.add_metadata(
            &format!("{arch}.rope.scaling.original_context_length"),
            u(4),
        );
        w.add_metadata(
            &format!("{arch}.rope.scaling.attn_factor"),
            MetadataValue::F32(1.3),
        );
    }
    if arch == "gemma3" {
        // Layer 0 local (3 keys, base 20 000), layer 1 global (base 1e6, linear scaling 4);
        // logits soft-capped at 3 (about their spread, so the cap is not a no-op).
        w.add_metadata(&format!("{arch}.attention.sliding_window"), u(3));
        w.add_metadata(&format!("{arch}.attention.sliding_window_pattern"), u(2));
        let f = MetadataValue::F32;
        w.add_metadata(&format!("{arch}.rope.freq_base_swa"), f(20_000.0));
        w.add_metadata(&format!("{arch}.rope.freq_base"), f(1e6));
        w.add_metadata(
            &format!("{arch}.rope.scaling.type"),
            MetadataValue::String("linear".into()),
        );
        w.add_metadata(&format!("{arch}.rope.scaling.factor"), f(4.0));
        w.add_metadata(&format!("{arch}.final_logit_softcapping"), f(3.0));
    }
    w.add_metadata(
        &format!("{arch}.attention.layer_norm_rms_epsilon"),
        MetadataValue::F32(1e-5),
    );
    w.to_bytes().unwrap()
}

fn rel_err(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        if !g.is_finite() {
            return f64::INFINITY;
        }
        num += f64::from(g - w).powi(2);
        den += f64::from(w).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

fn gpu_model(file: Arc<GgufFile>) -> Result<(Model, Arc<GgufLoader>), String> {
    let backend = Backend::hip(0).map_err(|e| e.to_string())?;
    let loader = Arc::new(GgufLoader::new(file, backend.device().cloned()));
    let plan = ExecutionPlan::new(Arc::clone(&loader)).map_err(|e| e.to_string())?;
    let model = Model::new(plan, backend).map_err(|e| e.to_string())?;
    Ok((model, loader))
}

fn e<E: std::fmt::Display>(x: E) -> String {
    x.to_string()
}

/// GPU vs CPU on `arch`: a 7-token prefill (all logits), two decode steps, and a ragged batch.
fn arch_matches_cpu(arch: &str) -> Check {
    let file = Arc::new(GgufFile::from_bytes("tiny.gguf", tiny(arch)).map_err(e)?);
    let cpu = Model::from_file(Arc::clone(&file), rocmforge_tensor::Backend::Cpu).map_err(e)?;
    let (gpu, _) = gpu_model(Arc::clone(&file))?;
    let ids: Vec<u32> = vec![1, 17, 42, 5, 88, 3, 60];
    let mut cc = cpu.new_cache(16).map_err(e)?;
    let mut gc = gpu.new_cache(16).map_err(e)?;
    let want = cpu.forward(&mut cc, &ids, 0, LogitsFor::All).map_err(e)?;
    let got = gpu.forward(&mut gc, &ids, 0, LogitsFor::All).map_err(e)?;
    let mut worst = rel_err(&got, &want);
    for (step, t) in [7u32, 91].into_iter().enumerate() {
        let pos = ids.len() + step;
        let w = cpu
            .forward(&mut cc, &[t], pos, LogitsFor::Last)
            .map_err(e)?;
        let g = gpu
            .forward(&mut gc, &[t], pos, LogitsFor::Last)
            .map_err(e)?;
        worst = worst.max(rel_err(&g, &w));
    }
    // Ragged batch: 3 tokens of a fresh sequence with 1 token of one 7 tokens in.
    let mut b1 = gpu.new_cache(16).map_err(e)?;
    let mut b2 = gpu.new_cache(16).map_err(e)?;
    gpu.forward(&mut b2, &ids, 0, LogitsFor::Last).map_err(e)?;
    let out = gpu
        .forward_batch(&mut [
            Segment {
                cache: &mut b1,
                tokens: &ids[..3],
                want_logits: true,
            },
            Segment {
                cache: &mut b2,
                tokens: &[7],
                want_logits: true,
            },
        ])
        .map_err(e)?;
    let mut c1 = cpu.new_cache(16).map_err(e)?;
    let w1 = cpu
        .forward(&mut c1, &ids[..3], 0, LogitsFor::Last)
        .map_err(e)?;
    let w2 = &want_decode_after(&cpu, &ids, 7)?;
    let (Some(g1), Some(g2)) = (&out[0], &out[1]) else {
        return Err("batched logits missing".to_string());
    };
    let batch_err = rel_err(g1, &w1).max(rel_err(g2, w2));
    let msg = format!("prefill+decode rel err {worst:.2e}, ragged batch rel err {batch_err:.2e}");
    // Q8_0 (qwen3moe) and MXFP4 (gpt-oss) experts: the CPU multiplies them with q8_0
    // activations, as ggml's CPU backend, the GPU with q8_1 (H100, 2026-12-07: gpt-oss 6.8e-3,
    // qwen3moe 9.3e-3). GeGLU: the CPU rounds the GELU to f16 as ggml's CPU backend does, the GPU
    // keeps f32 as ggml's CUDA.
    let bound = match arch {
        "qwen3moe" | "gpt-oss" => 2e-2,
        "gemma3" => 5e-3,
        _ => 2e-3,
    };
    if worst < bound && batch_err < bound {
        Ok(msg)
    } else {
        Err(msg)
    }
}

fn want_decode_after(cpu: &Model, ids: &[u32], t: u32) -> Result<Vec<f32>, String> {
    let mut c = cpu.new_cache(16).map_err(e)?;
    cpu.forward(&mut c, ids, 0, LogitsFor::Last).map_err(e)?;
    cpu.forward(&mut c, &[t], ids.len(), LogitsFor::Last)
        .map_err(e)
}

/// With the device memory taken but 16 MiB, loading fails before any upload (needed vs free
/// in the message), and `fit_ctx` caps a huge context instead of failing.
fn memory_limits() -> Check {
    let file = Arc::new(GgufFile::from_bytes("tiny.gguf", tiny("qwen2")).map_err(e)?);
    let (model, _) = gpu_model(Arc::clone(&file))?;
    let wanted = 1usize << 40;
    let capped = model.fit_ctx(wanted, 4, 64).map_err(e)?;
    if capped == 0 || capped >= wanted {
        return Err(format!("fit_ctx gave {capped} for {wanted}"));
    }
    let backend = Backend::hip(0).map_err(e)?;
    let device = backend.device().cloned().ok_or("no device")?;
    let (free, _) = device.mem_info().map_err(e)?;
    let hog = device
        .alloc::<u8>(free.saturating_sub(16 << 20))
        .map_err(|x| {
            format!(
                "allocating {} bytes to fill the device: {x}",
                free - (16 << 20)
            )
        })?;
    let loader = Arc::new(GgufLoader::new(file, Some(device)));
    let plan = ExecutionPlan::new(Arc::clone(&loader)).map_err(e)?;
    let refused = match Model::new(plan, backend) {
        Ok(_) => return Err("a model larger than the free memory loaded".to_string()),
        Err(err) => err.to_string(),
    };
    drop(hog);
    let uploads = loader.stats().uploads;
    let ok = uploads == 0 && refused.contains("needs") && refused.contains("free");
    let msg = format!("refused with {uploads} uploads: {refused}; fit_ctx capped 2^40 to {capped}");
    if ok { Ok(msg) } else { Err(msg) }
}

/// Decode batches padded to their bucket on the GPU (captured steps): the padding rows leave
/// the real rows' tokens and logits as without them (`arch`'s tiny model, token-id prompts).
fn padded_decode_matches_unpadded(arch: &str) -> Check {
    let file = Arc::new(GgufFile::from_bytes("tiny.gguf", tiny(arch)).map_err(e)?);
    let (gpu, _) = gpu_model(file)?;
    let prompts: Vec<Vec<u32>> = (0..5u32)
        .map(|i| (0..3 + i).map(|j| 1 + (i * 37 + j * 11) % 90).collect())
        .collect();
    decode_padding::padded_decode_checks(&gpu, &prompts, 1e-6, true)
}

fn main() -> ExitCode {
    type Test = fn() -> Check;
    let tests: [(&str, Test); 12] = [
        ("llama_tied_output_rope_freqs_match_cpu", || {
            arch_matches_cpu("llama")
        }),
        ("qwen2_biases_neox_match_cpu", || arch_matches_cpu("qwen2")),
        ("qwen3_qk_norms_match_cpu", || arch_matches_cpu("qwen3")),
        ("glm4_fused_partial_rotary_match_cpu", || {
            arch_matches_cpu("glm4")
        }),
        ("qwen3moe_experts_match_cpu", || {
            arch_matches_cpu("qwen3moe")
        }),
        ("gemma3_sliding_window_geglu_softcap_match_cpu", || {
            arch_matches_cpu("gemma3")
        }),
        ("mistral3_yarn_temperature_match_cpu", || {
            arch_matches_cpu("mistral3")
        }),
        ("gpt_oss_mxfp4_sinks_swiglu_oai_match_cpu", || {
            arch_matches_cpu("gpt-oss")
        }),
        ("phi3_fused_longrope_match_cpu", || arch_matches_cpu("phi3")),
        ("memory_limits", memory_limits),
        ("llama_padded_decode_matches_unpadded", || {
            padded_decode_matches_unpadded("llama")
        }),
        ("qwen3moe_padded_decode_matches_unpadded", || {
            padded_decode_matches_unpadded("qwen3moe")
        }),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, t) in tests {
        let r = std::panic::catch_unwind(t).unwrap_or_else(|_| Err("panicked".to_string()));
        match r {
            Ok(msg) => {
                passed += 1;
                println!("PASS {name}: {msg}");
            }
            Err(msg) => {
                failed += 1;
                println!("FAIL {name}: {msg}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
