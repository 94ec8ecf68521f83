//! The sampled batched step (`Model::forward_batch_sampled`) on the CPU backend with the real
//! test model: the checks the GPU suite runs (`gpu_common/sampled_step.rs`) — each sequence's
//! id is the chain over its own row's logits (a row mixed up between sequences fails), a grammar
//! mask holds, the same seeds give the same ids.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "gpu_common/sampled_step.rs"]
mod sampled_step;

use rocmforge_model::Model;
use rocmforge_model::tokenizer::Tokenizer;

/// The test model (`cargo xtask models` fetches it).
const MODEL: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../models/SmolLM2-135M-Instruct.Q4_1.gguf"
);

#[test]
fn sampled_steps_follow_each_rows_chain() {
    let model = Model::open(MODEL, rocmforge_tensor::Backend::Cpu)
        .unwrap_or_else(|e| panic!("{MODEL}: {e} (run `cargo xtask models`)"));
    let tok = Tokenizer::from_gguf(model.plan().loader().file()).unwrap();
    let prompts: Vec<Vec<u32>> = [
        "The capital of France is",
        "Write a JSON object:",
        "1, 2, 3,",
        "Hello",
        "def f(x):",
    ]
    .iter()
    .map(|p| tok.encode(p, true, true).unwrap())
    .collect();
    let report = sampled_step::sampled_step_checks(&model, &prompts).unwrap();
    println!("{report}");
}
