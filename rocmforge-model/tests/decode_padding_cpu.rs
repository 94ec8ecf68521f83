//! Decode batches padded to their bucket size on the CPU backend with the real test model:
//! the padding rows leave every real row's logits bit for bit as without them (the check the
//! GPU suite runs with the captured steps, `gpu_common/decode_padding.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "gpu_common/decode_padding.rs"]
mod decode_padding;

use rocmforge_model::Model;
use rocmforge_model::tokenizer::Tokenizer;

/// The test model (`cargo xtask models` fetches it).
const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/SmolLM2-135M-Instruct.Q4_1.gguf"
);

#[test]
fn padded_decode_rows_change_nothing() {
    let model = Model::open(MODEL, rocmforge_tensor::Backend::Cpu)
        .unwrap_or_else(|e| panic!("{MODEL}: {e} (run `cargo xtask models`)"));
    let tok = Tokenizer::from_gguf(model.plan().loader().file()).unwrap();
    let prompts: Vec<Vec<u32>> = decode_padding::PROMPTS
        .iter()
        .map(|p| tok.encode(p, true, true).unwrap())
        .collect();
    let report = decode_padding::padded_decode_checks(&model, &prompts, 0.0, false).unwrap();
    println!("{report}");
}

/// The same on tiny synthetic models of the architectures with per-row quirks: gemma3's sliding
/// window and logit softcap, qwen3moe's routed experts, gpt-oss's attention sinks and MXFP4
/// experts (`cargo xtask models` writes them).
#[test]
fn padded_decode_rows_change_nothing_on_tiny_architectures() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/tiny");
    let prompts: Vec<Vec<u32>> = (0..5u32)
        .map(|i| (0..3 + i).map(|j| 1 + (i * 37 + j * 11) % 90).collect())
        .collect();
    for name in ["tiny-gemma3", "tiny-qwen3moe-kl", "tiny-gpt-oss"] {
        let path = format!("{dir}/{name}.gguf");
        let model = Model::open(&path, rocmforge_tensor::Backend::Cpu)
            .unwrap_or_else(|e| panic!("{path}: {e} (run `cargo xtask models`)"));
        let report = decode_padding::padded_decode_checks(&model, &prompts, 0.0, false)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        println!("{name}: {report}");
    }
}
