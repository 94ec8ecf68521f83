//! Broken headers and metadata: each gives its specific error, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod malformed_support;

use malformed_support::{RawGguf, assert_malformed, parse_err};
use rocmforge_gguf::GgufError;

#[test]
fn empty_and_tiny_inputs() {
    assert_malformed(&parse_err(&[]), 0, "magic");
    assert_malformed(&parse_err(b"GGU"), 0, "magic");
    assert_malformed(&parse_err(b"GGUF\x03\x00"), 4, "version");
}

#[test]
fn bad_magic() {
    let mut raw = RawGguf::header(3, 0, 0);
    raw.bytes[..4].copy_from_slice(b"GGML");
    assert_malformed(&parse_err(&raw.bytes), 0, "bad magic");
}

fn assert_unsupported_version(bytes: &[u8], needle: &str) {
    let err = parse_err(bytes);
    let msg = err.to_string();
    assert!(
        matches!(err, GgufError::UnsupportedVersion { offset: 4, .. }),
        "{err:?}"
    );
    assert!(msg.contains(needle), "'{needle}' not in: {msg}");
    assert!(msg.contains("test.gguf"), "{msg}");
}

#[test]
fn unsupported_versions() {
    assert_unsupported_version(
        &RawGguf::header(1, 0, 0).bytes,
        "version 1 is not supported",
    );
    assert_unsupported_version(
        &RawGguf::header(4, 0, 0).bytes,
        "version 4 is not supported",
    );
    assert_unsupported_version(
        &RawGguf::header(0, 0, 0).bytes,
        "version 0 is not supported",
    );
}

#[test]
fn big_endian_files_are_refused_clearly() {
    let mut bytes = b"GGUF".to_vec();
    bytes.extend_from_slice(&3u32.to_be_bytes());
    bytes.extend_from_slice(&0u64.to_be_bytes());
    bytes.extend_from_slice(&0u64.to_be_bytes());
    assert_unsupported_version(&bytes, "big-endian GGUF is not supported");
    bytes[..4].copy_from_slice(b"FUGG");
    assert_malformed(&parse_err(&bytes), 0, "big-endian GGUF is not supported");
}

#[test]
fn huge_counts_are_refused_before_allocating() {
    let raw = RawGguf::header(3, 1 << 63, 0);
    assert_malformed(
        &parse_err(&raw.bytes),
        8,
        "tensor count is 9223372036854775808",
    );
    let raw = RawGguf::header(3, 0, 1 << 63);
    assert_malformed(&parse_err(&raw.bytes), 16, "metadata key/value count");
    let raw = RawGguf::header(2, u64::MAX, u64::MAX);
    assert_malformed(&parse_err(&raw.bytes), 8, "tensor count");
}

#[test]
fn kv_count_larger_than_the_pairs_present() {
    let mut raw = RawGguf::header(3, 0, 2);
    raw.kv_u32("a.b", 1).data(20);
    // The second pair starts at byte 39 with a key length built from the filler bytes.
    let err = parse_err(&raw.bytes);
    assert!(matches!(err, GgufError::Malformed { .. }), "{err:?}");
}

#[test]
fn string_length_past_end_of_file() {
    let mut raw = RawGguf::header(3, 0, 1);
    raw.u64(1 << 40).data(16);
    assert_malformed(
        &parse_err(&raw.bytes),
        24,
        "metadata key #0 has length 1099511627776",
    );
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("k").u32(8).u64(u64::MAX);
    assert_malformed(
        &parse_err(&raw.bytes),
        37,
        "value of metadata key 'k' has length",
    );
}

#[test]
fn array_length_past_end_of_file() {
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("arr").u32(9).u32(4).u64(1 << 62).u32(7);
    assert_malformed(
        &parse_err(&raw.bytes),
        43,
        "length of array 'arr' is 4611686018427387904",
    );
}

#[test]
fn unknown_metadata_value_type() {
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("k").u32(13).u32(0);
    assert_malformed(
        &parse_err(&raw.bytes),
        33,
        "unknown metadata value type id 13",
    );
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("k").u32(9).u32(77).u64(0);
    assert_malformed(
        &parse_err(&raw.bytes),
        37,
        "unknown metadata value type id 77",
    );
}

#[test]
fn bad_bool_and_bad_utf8() {
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("flag").u32(7);
    raw.bytes.push(2);
    assert_malformed(&parse_err(&raw.bytes), 40, "bool byte is 2");
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("s").u32(8).u64(2);
    raw.bytes.extend_from_slice(&[0xff, 0xfe]);
    assert_malformed(&parse_err(&raw.bytes), 37, "not valid UTF-8");
}

#[test]
fn duplicate_key() {
    let mut raw = RawGguf::header(3, 0, 2);
    raw.kv_u32("dup", 1).kv_u32("dup", 2);
    assert_malformed(
        &parse_err(&raw.bytes),
        43,
        "metadata key 'dup' appears twice",
    );
}

#[test]
fn bad_alignment_values() {
    for bad in [0u32, 3, 48] {
        let mut raw = RawGguf::header(3, 0, 1);
        raw.kv_u32("general.alignment", bad);
        assert_malformed(&parse_err(&raw.bytes), 24, "not a nonzero power of two");
    }
    let mut raw = RawGguf::header(3, 0, 1);
    raw.kv_str("general.alignment", "32");
    assert_malformed(
        &parse_err(&raw.bytes),
        24,
        "general.alignment must be an integer",
    );
}

#[test]
fn arrays_nested_too_deep() {
    let mut raw = RawGguf::header(3, 0, 1);
    raw.string("deep").u32(9);
    for _ in 0..40 {
        raw.u32(9).u64(1);
    }
    raw.u32(0).u64(0);
    let err = parse_err(&raw.bytes);
    assert!(err.to_string().contains("nested deeper than"), "{err}");
}

#[test]
fn valid_v2_header_with_nothing_parses() {
    let raw = RawGguf::header(2, 0, 0);
    let file = raw.parse().unwrap();
    assert_eq!(file.version(), 2);
    assert_eq!(file.metadata().len(), 0);
    assert_eq!(file.data_offset(), 32);
}
