//! `truncate_layers` / `cycle_layers` on the real SmolLM2 file: the written models parse, plan
//! and run on the CPU, with the kept tensors byte for byte the original ones.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use rocmforge_gguf::{GgmlType, GgufFile};
use rocmforge_model::Model;
use rocmforge_model::plan::truncate::{cycle_layers, truncate_layers};
use rocmforge_model::{ExecutionPlan, LogitsFor};
use rocmforge_tensor::{GgufLoader, TensorResult, Uploader};

struct Len;

impl Uploader for Len {
    type Output = usize;
    fn upload(&self, _: &str, _: GgmlType, _: Vec<usize>, b: &[u8]) -> TensorResult<usize> {
        Ok(b.len())
    }
}

fn smollm2() -> GgufFile {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models`",
        path.display()
    );
    GgufFile::open(&path).unwrap()
}

fn bytes_of<'a>(f: &'a GgufFile, name: &str) -> &'a [u8] {
    f.tensor_bytes(name).unwrap()
}

#[test]
fn truncated_and_cycled_models_keep_the_original_bytes_and_run() {
    let full = smollm2();
    let cut = GgufFile::from_bytes("cut.gguf", truncate_layers(&full, 2).unwrap()).unwrap();
    assert_eq!(cut.metadata().get_u64("llama.block_count").unwrap(), 2);
    assert_eq!(cut.tensors().len(), 2 * 9 + 2);
    for name in [
        "token_embd.weight",
        "blk.1.ffn_down.weight",
        "output_norm.weight",
    ] {
        assert_eq!(bytes_of(&cut, name), bytes_of(&full, name), "{name}");
    }
    assert!(cut.tensor("blk.2.attn_q.weight").is_none());
    assert!(
        truncate_layers(&full, 31).is_err(),
        "more blocks than the model has"
    );

    let model = Model::from_file(
        std::sync::Arc::new(cut.clone()),
        rocmforge_tensor::Backend::Cpu,
    )
    .unwrap();
    assert_eq!(model.config().n_layers, 2);
    let mut cache = model.new_cache(8).unwrap();
    let logits = model
        .forward(&mut cache, &[1, 504, 3458], 0, LogitsFor::Last)
        .unwrap();
    assert_eq!(logits.len(), 49152);
    assert!(logits.iter().all(|v| v.is_finite()));

    let cut = Arc::new(cut);
    let cycled = GgufFile::from_bytes("cyc.gguf", cycle_layers(&cut, 5).unwrap()).unwrap();
    assert_eq!(cycled.metadata().get_u64("llama.block_count").unwrap(), 5);
    assert_eq!(
        bytes_of(&cycled, "blk.4.attn_q.weight"),
        bytes_of(&full, "blk.0.attn_q.weight")
    );
    assert_eq!(
        bytes_of(&cycled, "blk.3.ffn_up.weight"),
        bytes_of(&full, "blk.1.ffn_up.weight")
    );
    let plan =
        ExecutionPlan::new(Arc::new(GgufLoader::with_uploader(Arc::new(cycled), Len))).unwrap();
    assert_eq!(plan.num_layers(), 5);
    assert_eq!(plan.loading_stats().total_tensors, 5 * 9 + 2);
}
