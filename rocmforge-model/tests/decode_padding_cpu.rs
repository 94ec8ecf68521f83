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
