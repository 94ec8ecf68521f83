//! The writer refuses what it cannot write validly, and lays files out as GGUF expects.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rocmforge_gguf::{
    GgmlType, GgufError, GgufFile, GgufWriter, MetadataArray, MetadataValue, MetadataValueType,
};

fn invalid_write(err: GgufError, needle: &str) {
    let msg = err.to_string();
    assert!(matches!(err, GgufError::InvalidWrite { .. }), "{err:?}");
    assert!(msg.contains(needle), "'{needle}' not in: {msg}");
}

#[test]
fn refuses_bad_tensors() {
    let mut w = GgufWriter::new();
    w.add_tensor("a", &[4], GgmlType::F32, vec![0; 16]).unwrap();
    invalid_write(
        w.add_tensor("a", &[4], GgmlType::F32, vec![0; 16])
            .unwrap_err(),
        "tensor 'a' added twice",
    );
    invalid_write(
        w.add_tensor("b", &[4], GgmlType::F32, vec![0; 15])
            .unwrap_err(),
        "takes 16 bytes, 15 given",
    );
    invalid_write(
        w.add_tensor("c", &[1, 1, 1, 1, 1], GgmlType::F32, vec![0; 4])
            .unwrap_err(),
        "at most 4",
    );
    invalid_write(
        w.add_tensor("d", &[16], GgmlType::Q4_0, vec![0; 9])
            .unwrap_err(),
        "not a multiple of the Q4_0 block size 32",
    );
    invalid_write(
        w.add_tensor("e", &[u64::MAX, 2], GgmlType::F32, vec![])
            .unwrap_err(),
        "element count overflows",
    );
}

#[test]
fn refuses_bad_alignment_and_mixed_arrays() {
    let mut w = GgufWriter::new();
    w.set_alignment(24);
    invalid_write(w.to_bytes().unwrap_err(), "not a nonzero power of two");
    w.set_alignment(0);
    invalid_write(w.to_bytes().unwrap_err(), "not a nonzero power of two");
    w.set_alignment(1 << 40);
    invalid_write(w.to_bytes().unwrap_err(), "larger than the writer's limit");

    let mut w = GgufWriter::new();
    w.add_metadata(
        "mixed",
        MetadataValue::Array(MetadataArray::new(
            MetadataValueType::U8,
            vec![MetadataValue::U8(1), MetadataValue::U16(2)],
        )),
    );
    invalid_write(
        w.to_bytes().unwrap_err(),
        "metadata key 'mixed': element 1 is u16",
    );
}

#[test]
fn layout_is_aligned_and_written_file_maps() {
    let mut w = GgufWriter::new();
    w.add_metadata("general.architecture", MetadataValue::String("test".into()));
    w.add_tensor("x", &[3], GgmlType::F32, vec![1; 12]).unwrap();
    w.add_tensor("y", &[32], GgmlType::Q8_0, vec![2; 34])
        .unwrap();
    let bytes = w.to_bytes().unwrap();
    assert_eq!(&bytes[..4], b"GGUF");
    assert_eq!(u32::from_le_bytes(bytes[4..8].try_into().unwrap()), 3);
    assert_eq!(bytes.len() % 32, 0);

    let dir = std::env::temp_dir().join(format!("rocmforge-writer-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("layout.gguf");
    w.write_to(&path).unwrap();
    let file = GgufFile::open(&path).unwrap();
    assert_eq!(file.path(), path.as_path());
    assert_eq!(file.data_offset() % 32, 0);
    assert_eq!(file.tensor("x").unwrap().offset, 0);
    assert_eq!(file.tensor("y").unwrap().offset, 32);
    assert_eq!(file.tensor_bytes("y").unwrap(), &[2u8; 34][..]);
    assert!(matches!(
        file.tensor_bytes("z"),
        Err(GgufError::MissingTensor { .. })
    ));
    assert_eq!(file.file_size(), bytes.len() as u64);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn open_reports_missing_file_with_its_path() {
    let err = GgufFile::open("/nonexistent/dir/model.gguf").unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, GgufError::Io { .. }));
    assert!(msg.contains("/nonexistent/dir/model.gguf"), "{msg}");
}

#[test]
fn typed_getters_convert_and_refuse() {
    let mut w = GgufWriter::new();
    w.add_metadata("small", MetadataValue::U64(7));
    w.add_metadata("big", MetadataValue::U64(1 << 40));
    w.add_metadata("neg", MetadataValue::I8(-3));
    w.add_metadata("eps", MetadataValue::F64(1e-5));
    w.add_metadata("on", MetadataValue::Bool(true));
    w.add_metadata(
        "ints",
        MetadataValue::Array(MetadataArray::new(
            MetadataValueType::U8,
            vec![MetadataValue::U8(1), MetadataValue::U8(200)],
        )),
    );
    let file = GgufFile::from_bytes("g.gguf", w.to_bytes().unwrap()).unwrap();
    let md = file.metadata();
    assert_eq!(md.get_u32("small").unwrap(), 7);
    assert_eq!(md.get_i32("neg").unwrap(), -3);
    assert_eq!(md.get_u64("big").unwrap(), 1 << 40);
    let err = md.get_u32("big").unwrap_err().to_string();
    assert!(
        err.contains("'big'") && err.contains("1099511627776") && err.contains("u32"),
        "{err}"
    );
    assert!(md.get_u32("neg").is_err());
    assert_eq!(md.get_f32("eps").unwrap(), 1e-5f32);
    assert!(md.get_bool("on").unwrap());
    assert_eq!(md.opt_bool("on").unwrap(), Some(true));
    assert!(md.opt_str("on").is_err());
    assert_eq!(md.get_i32_array("ints").unwrap(), vec![1, 200]);
    let err = md.get_str_array("ints").unwrap_err().to_string();
    assert!(err.contains("ints[0]"), "{err}");
    assert_eq!(md.get_array("ints").unwrap().len(), 2);
}

#[test]
fn huge_alignment_parses_but_is_not_rewritten() {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&0u64.to_le_bytes());
    bytes.extend_from_slice(&1u64.to_le_bytes());
    let key = "general.alignment";
    bytes.extend_from_slice(&(key.len() as u64).to_le_bytes());
    bytes.extend_from_slice(key.as_bytes());
    bytes.extend_from_slice(&4u32.to_le_bytes());
    bytes.extend_from_slice(&(1u32 << 31).to_le_bytes());
    let file = GgufFile::from_bytes("huge.gguf", bytes).unwrap();
    assert_eq!(file.alignment(), 1 << 31);
    assert_eq!(file.data_offset(), 1 << 31);
    let mut w = GgufWriter::new();
    for (k, v) in file.metadata().iter() {
        w.add_metadata(k, v.clone());
    }
    invalid_write(w.to_bytes().unwrap_err(), "larger than the writer's limit");
}
