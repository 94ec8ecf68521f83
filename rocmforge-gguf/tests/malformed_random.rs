//! Random corruption of a valid file never panics; whatever parses is self-consistent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use rocmforge_gguf::{
    GgmlType, GgufFile, GgufWriter, MetadataArray, MetadataValue, MetadataValueType,
};

fn valid_file() -> Vec<u8> {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetadataValue::String("llama".into()),
    );
    w.add_metadata("n", MetadataValue::U64(7));
    w.add_metadata(
        "ids",
        MetadataValue::Array(MetadataArray::new(
            MetadataValueType::I32,
            vec![MetadataValue::I32(-1), MetadataValue::I32(5)],
        )),
    );
    w.add_tensor("a", &[4, 2], GgmlType::F32, vec![0; 32])
        .unwrap();
    w.add_tensor("b", &[32], GgmlType::Q4_1, vec![0; 20])
        .unwrap();
    w.to_bytes().unwrap()
}

/// Touches everything a parsed file exposes, checking tensor data stays in bounds.
fn walk(file: &GgufFile) {
    for (key, value) in file.metadata().iter() {
        let _ = value.to_string();
        let _ = file.metadata().get_u32(key);
        let _ = file.metadata().get_str_array(key);
    }
    for t in file.tensors() {
        let data = file.tensor_data(t);
        assert_eq!(data.len() as u64, t.size);
        assert!(file.data_offset() + t.offset + t.size <= file.file_size());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn corrupted_bytes_never_panic(
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = valid_file();
        for (at, value) in edits {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            let len = cut.index(bytes.len());
            bytes.truncate(len);
        }
        if let Ok(file) = GgufFile::from_bytes("fuzz.gguf", bytes) {
            walk(&file);
        }
    }
}
