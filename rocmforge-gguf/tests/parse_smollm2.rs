//! The real test model (SmolLM2-135M-Instruct, Q4_1) parses with the expected index.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use rocmforge_gguf::{GgmlType, GgufFile};

fn model_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf")
}

fn open_model() -> GgufFile {
    let path = model_path();
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models` to fetch the test model",
        path.display()
    );
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn smollm2_index_matches_expectations() {
    let file = open_model();
    assert_eq!(file.tensors().len(), 272);
    assert_eq!(file.architecture().unwrap(), "llama");
    assert_eq!(file.metadata().get_u32("llama.block_count").unwrap(), 30);
    assert_eq!(file.metadata().get_arch_u32("block_count").unwrap(), 30);
    let types: BTreeSet<GgmlType> = file.tensors().iter().map(|t| t.ty).collect();
    let expected: BTreeSet<GgmlType> = [GgmlType::Q4_1, GgmlType::Q8_0, GgmlType::F32]
        .into_iter()
        .collect();
    assert_eq!(types, expected);
}

#[test]
fn smollm2_tensor_data_is_inside_the_file_and_sized_by_type() {
    let file = open_model();
    let mut total = 0u64;
    for t in file.tensors() {
        let data = file.tensor_data(t);
        assert_eq!(data.len() as u64, t.size, "{}", t.name);
        assert_eq!(Some(t.size), t.ty.bytes_for(t.n_elements()), "{}", t.name);
        assert_eq!(t.offset % file.alignment(), 0);
        total += t.size;
    }
    assert!(total <= file.file_size() - file.data_offset());
    let emb = file.tensor("token_embd.weight").unwrap();
    assert_eq!(emb.dims, vec![576, 49152]);
    let norm = file.tensor_bytes("output_norm.weight").unwrap();
    assert_eq!(norm.len(), 576 * 4);
    let first = f32::from_le_bytes(norm[..4].try_into().unwrap());
    assert!(first.is_finite() && first != 0.0);
}
