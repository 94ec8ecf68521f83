//! On the CPU a prompt gives the same logits, bit for bit, however its tokens are batched:
//! prefilled in one piece, in chunks, or decoded one token at a time. A cached prefix
//! (prefix reuse, chunked prefill) must not change the greedy text, so the batched matmuls
//! (the AVX-512 VNNI panel GEMM where the CPU has it, the AVX2 token tiles elsewhere) and
//! the one-token matmuls must sum in the same order. Checked on tiny random llama models
//! whose every matrix (the tied embedding / output included) is of one type, for each type
//! the GEMM covers (twice as wide for the 256-element K-quants), with the matmuls `Model`
//! picks by default.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue};
use rocmforge_model::rng::SeededRng;
use rocmforge_model::{LogitsFor, Model};
use rocmforge_tensor::Backend;
use rocmforge_tensor::cpu::PANEL_GEMM_TYPES;

const HEADS: usize = 4;
const KV_HEADS: usize = 2;
const VOCAB: usize = 96;
const LAYERS: usize = 2;

/// A tiny llama whose matrices are all of type `ty` (norms F32), as a parsed file: width 128,
/// feed-forward 256, heads of 32 (twice that for the 256-element formats).
fn tiny_llama(ty: GgmlType) -> Arc<GgufFile> {
    let wide = if ty.block_size() > 128 { 2 } else { 1 };
    let (embd, ff, head_dim) = (128 * wide, 256 * wide, 32 * wide);
    let (qd, kd) = (HEADS * head_dim, KV_HEADS * head_dim);
    // (name, GGUF dims, scale of the random values, offset): norms near 1, matrices near 0.
    let mut tensors = vec![
        ("token_embd.weight".to_string(), vec![embd, VOCAB], 1.0, 0.0),
        ("output_norm.weight".to_string(), vec![embd], 0.2, 1.0),
    ];
    let per_layer = [
        ("attn_norm", vec![embd]),
        ("ffn_norm", vec![embd]),
        ("attn_q", vec![embd, qd]),
        ("attn_k", vec![embd, kd]),
        ("attn_v", vec![embd, kd]),
        ("attn_output", vec![qd, embd]),
        ("ffn_gate", vec![embd, ff]),
        ("ffn_up", vec![embd, ff]),
        ("ffn_down", vec![ff, embd]),
    ];
    for l in 0..LAYERS {
        for (name, dims) in &per_layer {
            let (scale, offset) = if dims.len() == 1 {
                (0.2, 1.0)
            } else {
                (0.3, 0.0)
            };
            tensors.push((
                format!("blk.{l}.{name}.weight"),
                dims.clone(),
                scale,
                offset,
            ));
        }
    }
    let mut rng = SeededRng::new(2024);
    let mut w = GgufWriter::new();
    for (name, dims, scale, offset) in tensors {
        let values: Vec<f32> = (0..dims.iter().product::<usize>())
            .map(|_| ((rng.next_f64() * 2.0 - 1.0) as f32) * scale + offset)
            .collect();
        let t = if dims.len() == 2 { ty } else { GgmlType::F32 };
        let bytes = rocmforge_gguf::quants::quantize(t, &values).unwrap();
        let dims: Vec<u64> = dims.iter().map(|&d| d as u64).collect();
        w.add_tensor(&name, &dims, t, bytes).unwrap();
    }
    let u = |v: usize| MetadataValue::U32(v as u32);
    for (key, value) in [
        ("block_count", LAYERS),
        ("embedding_length", embd),
        ("feed_forward_length", ff),
        ("attention.head_count", HEADS),
        ("attention.head_count_kv", KV_HEADS),
        ("rope.dimension_count", head_dim),
        ("context_length", 64),
    ] {
        w.add_metadata(&format!("llama.{key}"), u(value));
    }
    w.add_metadata(
        "general.architecture",
        MetadataValue::String("llama".into()),
    );
    w.add_metadata(
        "llama.attention.layer_norm_rms_epsilon",
        MetadataValue::F32(1e-5),
    );
    Arc::new(GgufFile::from_bytes("tiny.gguf", w.to_bytes().unwrap()).unwrap())
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Prompt lengths that cut the GEMM's 8-token tiles and the AVX2 4-token tiles unevenly.
const PROMPT: [u32; 13] = [5, 17, 3, 90, 41, 41, 8, 0, 77, 12, 63, 29, 54];

#[test]
fn prefill_chunks_and_decode_give_the_same_logits_bit_for_bit() {
    for ty in PANEL_GEMM_TYPES {
        let model = Model::from_file(tiny_llama(ty), Backend::Cpu).unwrap();
        let n = PROMPT.len();
        // One piece, logits of every position (the output matmul batched too).
        let mut cache = model.new_cache(n).unwrap();
        let all = model
            .forward(&mut cache, &PROMPT, 0, LogitsFor::All)
            .unwrap();
        assert_eq!(all.len(), n * VOCAB, "{ty}");
        assert!(all.iter().all(|x| x.is_finite()), "{ty}: non-finite logits");
        let spread = all.iter().fold(0.0f32, |m, x| m.max(x.abs()));
        assert!(spread > 1e-3, "{ty}: logits all near zero ({spread})");
        // Token by token: each step's logits are the batched row of its position.
        let mut cache = model.new_cache(n).unwrap();
        for (p, &tok) in PROMPT.iter().enumerate() {
            let row = model
                .forward(&mut cache, &[tok], p, LogitsFor::Last)
                .unwrap();
            assert_eq!(
                bits(&row),
                bits(&all[p * VOCAB..(p + 1) * VOCAB]),
                "{ty}: decode at position {p} vs the one-piece prefill"
            );
        }
        // A cached prefix of 5 tokens, then the rest as one chunk (last logits only).
        for split in [1, 5, 9] {
            let mut cache = model.new_cache(n).unwrap();
            model
                .forward(&mut cache, &PROMPT[..split], 0, LogitsFor::Last)
                .unwrap();
            let last = model
                .forward(&mut cache, &PROMPT[split..], split, LogitsFor::Last)
                .unwrap();
            assert_eq!(
                bits(&last),
                bits(&all[(n - 1) * VOCAB..]),
                "{ty}: prefix of {split} + chunk vs the one-piece prefill"
            );
        }
    }
}
