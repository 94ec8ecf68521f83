//! Files cut short at any offset give an error (or, past the last tensor byte, still parse):
//! never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rocmforge_gguf::{
    GgmlType, GgufFile, GgufWriter, MetadataArray, MetadataValue, MetadataValueType,
};

/// A small valid file with metadata of several types (nested arrays too) and three tensors.
fn small_valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetadataValue::String("llama".into()),
    );
    w.add_metadata("llama.block_count", MetadataValue::U32(2));
    w.add_metadata("f", MetadataValue::F64(0.5));
    w.add_metadata("flag", MetadataValue::Bool(true));
    let inner = |n: u8| {
        MetadataValue::Array(MetadataArray::new(
            MetadataValueType::U8,
            (0..n).map(MetadataValue::U8).collect(),
        ))
    };
    w.add_metadata(
        "nested",
        MetadataValue::Array(MetadataArray::new(
            MetadataValueType::Array,
            vec![inner(2), inner(3)],
        )),
    );
    w.add_metadata(
        "words",
        MetadataValue::Array(MetadataArray::new(
            MetadataValueType::String,
            vec![
                MetadataValue::String("a".into()),
                MetadataValue::String("bc".into()),
            ],
        )),
    );
    w.add_tensor("t.f32", &[3, 2], GgmlType::F32, vec![1; 24])
        .unwrap();
    w.add_tensor("t.q8", &[32], GgmlType::Q8_0, vec![2; 34])
        .unwrap();
    w.add_tensor("t.f16", &[5], GgmlType::F16, vec![3; 10])
        .unwrap();
    w.to_bytes().unwrap()
}

/// Offset one past the last tensor byte.
fn end_of_tensor_data(file: &GgufFile) -> u64 {
    file.tensors()
        .iter()
        .map(|t| file.data_offset() + t.offset + t.size)
        .max()
        .unwrap_or(0)
}

#[test]
fn every_truncation_of_a_small_file() {
    let bytes = small_valid_file();
    let full = GgufFile::from_bytes("small.gguf", bytes.clone()).unwrap();
    let needed = end_of_tensor_data(&full);
    assert!(needed > 200);
    for len in 0..bytes.len() {
        let result = GgufFile::from_bytes("small.gguf", bytes[..len].to_vec());
        if (len as u64) < needed {
            let err = result
                .err()
                .unwrap_or_else(|| panic!("prefix of {len} bytes parsed"));
            let msg = err.to_string();
            assert!(msg.starts_with("small.gguf: at byte "), "{len}: {msg}");
        } else {
            let file = result.unwrap_or_else(|e| panic!("prefix of {len} bytes: {e}"));
            assert_eq!(file.tensors().len(), 3);
        }
    }
}

fn shared_path(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata")
        .join(rel)
}

#[test]
fn sampled_truncations_of_a_vocab_file() {
    let path = shared_path("vocab/ggml-vocab-llama-spm.gguf");
    let bytes = std::fs::read(&path).unwrap();
    let full = GgufFile::from_bytes("vocab.gguf", bytes.clone()).unwrap();
    // The metadata ends somewhere in the last alignment window before the data section.
    let metadata_surely_incomplete = full.data_offset() - full.alignment();
    let step = (metadata_surely_incomplete / 400).max(1);
    let mut checked = 0;
    let mut len = 0;
    while len < metadata_surely_incomplete {
        let err = GgufFile::from_bytes("vocab.gguf", bytes[..len as usize].to_vec())
            .err()
            .unwrap_or_else(|| panic!("prefix of {len} bytes parsed"));
        assert!(err.to_string().starts_with("vocab.gguf: at byte "), "{err}");
        len += step;
        checked += 1;
    }
    assert!(checked >= 400);
}

#[test]
fn sampled_truncations_of_the_test_model() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models` to fetch the test model",
        path.display()
    );
    let bytes = std::fs::read(&path).unwrap();
    let full = GgufFile::from_bytes("model.gguf", bytes.clone()).unwrap();
    let needed = end_of_tensor_data(&full) as usize;
    let index_end = full.data_offset() as usize;
    // 60 cuts inside the header and index, 8 inside the tensor data.
    let cuts = (0..60)
        .map(|i| i * index_end / 60)
        .chain((0..8).map(|i| index_end + i * (needed - index_end) / 8 + 1));
    for len in cuts {
        let err = GgufFile::from_bytes("model.gguf", bytes[..len].to_vec())
            .err()
            .unwrap_or_else(|| panic!("prefix of {len} bytes parsed"));
        assert!(err.to_string().starts_with("model.gguf: at byte "), "{err}");
    }
}
