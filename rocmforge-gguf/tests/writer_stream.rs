//! The streaming writer (`GgufWriter::into_stream`) writes the same file as `to_bytes`, and
//! refuses tensors out of order, of the wrong size, or never written.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rocmforge_gguf::{GgmlType, GgufError, GgufFile, GgufWriter, MetadataValue};

fn tensors() -> Vec<(&'static str, Vec<u64>, GgmlType, Vec<u8>)> {
    vec![
        ("a", vec![4], GgmlType::F32, (0..16).collect()),
        (
            "b",
            vec![32, 2],
            GgmlType::Q8_0,
            (0..68).map(|i| i as u8 ^ 0x5a).collect(),
        ),
        ("c", vec![3], GgmlType::F16, vec![1, 2, 3, 4, 5, 6]),
        ("d", vec![2, 2], GgmlType::F32, (100..116).collect()),
    ]
}

fn temp(name: &str) -> std::path::PathBuf {
    std::env::temp_dir().join(format!(
        "rocmforge-writer-stream-{}-{name}.gguf",
        std::process::id()
    ))
}

fn with_metadata(alignment: u64) -> GgufWriter {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetadataValue::String("llama".into()),
    );
    w.set_alignment(alignment);
    w
}

#[test]
fn streamed_file_equals_in_memory_file() {
    for alignment in [32, 64, 8192] {
        let mut whole = with_metadata(alignment);
        let mut streamed = with_metadata(alignment);
        for (i, (name, dims, ty, data)) in tensors().into_iter().enumerate() {
            whole.add_tensor(name, &dims, ty, data.clone()).unwrap();
            // Mix: "b" and "d" are streamed, "a" and "c" are in memory.
            if i % 2 == 1 {
                streamed.add_tensor_info(name, &dims, ty).unwrap();
            } else {
                streamed.add_tensor(name, &dims, ty, data).unwrap();
            }
        }
        let path = temp(&format!("equal-{alignment}"));
        let mut stream = streamed.into_stream(&path).unwrap();
        assert_eq!(stream.next_tensor(), Some("b"));
        for (i, (name, _, _, data)) in tensors().into_iter().enumerate() {
            if i % 2 == 1 {
                stream.write_tensor(name, &data).unwrap();
            }
        }
        assert_eq!(stream.next_tensor(), None);
        stream.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(bytes, whole.to_bytes().unwrap());
        let file = GgufFile::from_bytes("streamed", bytes).unwrap();
        assert_eq!(
            file.tensor_bytes("d").unwrap(),
            &(100..116).collect::<Vec<u8>>()[..]
        );
    }
}

fn declared_only() -> GgufWriter {
    let mut w = with_metadata(32);
    for (name, dims, ty, _) in tensors() {
        w.add_tensor_info(name, &dims, ty).unwrap();
    }
    w
}

fn invalid_write_message(e: GgufError) -> String {
    match e {
        GgufError::InvalidWrite { what } => what,
        other => panic!("expected InvalidWrite, got {other:?}"),
    }
}

#[test]
fn to_bytes_refuses_declared_tensors() {
    let msg = invalid_write_message(declared_only().to_bytes().unwrap_err());
    assert!(msg.contains("'a'") && msg.contains("into_stream"), "{msg}");
}

#[test]
fn stream_refuses_wrong_order_size_and_missing_tensors() {
    let path = temp("errors");
    let mut stream = declared_only().into_stream(&path).unwrap();
    let msg = invalid_write_message(stream.write_tensor("b", &[0; 68]).unwrap_err());
    assert!(msg.contains("out of order") && msg.contains("'a'"), "{msg}");
    let msg = invalid_write_message(stream.write_tensor("a", &[0; 15]).unwrap_err());
    assert!(msg.contains("16 bytes, 15 given"), "{msg}");
    stream.write_tensor("a", &[0; 16]).unwrap();
    let msg = invalid_write_message(stream.finish().unwrap_err());
    assert!(
        msg.contains("'b'") && msg.contains("never written"),
        "{msg}"
    );
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn declared_tensor_shapes_are_checked() {
    let mut w = GgufWriter::new();
    let msg = invalid_write_message(w.add_tensor_info("q", &[33], GgmlType::Q8_0).unwrap_err());
    assert!(msg.contains("block size 32"), "{msg}");
    w.add_tensor_info("q", &[32], GgmlType::Q8_0).unwrap();
    let msg = invalid_write_message(w.add_tensor_info("q", &[32], GgmlType::Q8_0).unwrap_err());
    assert!(msg.contains("added twice"), "{msg}");
}
