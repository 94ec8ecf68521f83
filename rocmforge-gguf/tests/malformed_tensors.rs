//! Broken tensor indexes: each gives its specific error, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod malformed_support;

use malformed_support::{RawGguf, assert_malformed, parse_err};
use rocmforge_gguf::GgufError;

const F32: u32 = 0;
const Q4_0: u32 = 2;

/// Header for `n` tensors and no metadata; the first tensor info starts at byte 24.
fn with_tensors(n: u64) -> RawGguf {
    RawGguf::header(3, n, 0)
}

#[test]
fn a_valid_two_tensor_file_parses() {
    let mut raw = with_tensors(2);
    raw.tensor("a", &[4], F32, 0)
        .tensor("b", &[32, 2], Q4_0, 32)
        .pad(32)
        .data(32 + 36);
    let file = raw.parse().unwrap();
    assert_eq!(file.tensors().len(), 2);
    let b = file.tensor("b").unwrap();
    assert_eq!(b.size, 36);
    assert_eq!(file.tensor_data(b).len(), 36);
    assert_eq!(file.tensor_data(b)[0], 32);
}

#[test]
fn tensor_offset_out_of_range() {
    let mut raw = with_tensors(1);
    raw.tensor("w", &[8], F32, 64).pad(32).data(32);
    assert_malformed(&parse_err(&raw.bytes), 24, "lie past the end of the file");
    let mut raw = with_tensors(1);
    raw.tensor("w", &[8], F32, u64::MAX - 31).pad(32).data(32);
    assert_malformed(&parse_err(&raw.bytes), 24, "tensor 'w'");
}

#[test]
fn tensor_data_cut_short() {
    let mut raw = with_tensors(1);
    raw.tensor("w", &[8], F32, 0).pad(32).data(31);
    assert_malformed(&parse_err(&raw.bytes), 24, "its 32 bytes at data offset 0");
}

#[test]
fn misaligned_tensor_offset() {
    let mut raw = with_tensors(1);
    raw.tensor("w", &[4], F32, 4).pad(32).data(64);
    assert_malformed(
        &parse_err(&raw.bytes),
        24,
        "not a multiple of the alignment 32",
    );
}

#[test]
fn overlapping_tensors() {
    let mut raw = with_tensors(2);
    raw.tensor("a", &[16], F32, 0)
        .tensor("b", &[8], F32, 32)
        .pad(32)
        .data(128);
    // a: [0, 64), b: [32, 64) — b's record starts after a's: 24 + (8+1+4+8+4+8).
    assert_malformed(
        &parse_err(&raw.bytes),
        57,
        "tensor 'b' (data offset 32) overlaps tensor 'a'",
    );
}

#[test]
fn empty_tensors_do_not_overlap_anything() {
    let mut raw = with_tensors(2);
    raw.tensor("a", &[16], F32, 0)
        .tensor("e", &[0, 3], F32, 32)
        .pad(32)
        .data(64);
    let file = raw.parse().unwrap();
    assert_eq!(file.tensor("e").unwrap().size, 0);
    assert!(file.tensor_data(file.tensor("e").unwrap()).is_empty());
}

#[test]
fn dimension_product_overflow() {
    let mut raw = with_tensors(1);
    raw.tensor("w", &[1 << 32, 1 << 32], F32, 0)
        .pad(32)
        .data(32);
    assert_malformed(
        &parse_err(&raw.bytes),
        45,
        "product of its dimensions overflows",
    );
    let mut raw = with_tensors(1);
    raw.tensor("w", &[u64::MAX], F32, 0).pad(32);
    assert_malformed(
        &parse_err(&raw.bytes),
        37,
        "dimension 0 is 18446744073709551615",
    );
}

#[test]
fn too_many_dimensions() {
    let mut raw = with_tensors(1);
    raw.tensor("w", &[1, 1, 1, 1, 1], F32, 0).pad(32).data(32);
    assert_malformed(&parse_err(&raw.bytes), 33, "has 5 dimensions; at most 4");
    let mut raw = with_tensors(1);
    raw.string("w").u32(u32::MAX).data(64);
    assert_malformed(&parse_err(&raw.bytes), 33, "has 4294967295 dimensions");
}

#[test]
fn unknown_tensor_type_names_tensor_and_id() {
    let mut raw = with_tensors(1);
    raw.tensor("blk.0.ffn_up.weight", &[32], 99, 0)
        .pad(32)
        .data(128);
    let err = parse_err(&raw.bytes);
    match &err {
        GgufError::UnknownTensorType {
            tensor,
            type_id,
            offset,
            ..
        } => {
            assert_eq!(tensor, "blk.0.ffn_up.weight");
            assert_eq!(*type_id, 99);
            assert_eq!(*offset, 24 + 8 + 19 + 4 + 8);
        }
        other => panic!("expected UnknownTensorType, got {other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("test.gguf") && msg.contains("99"), "{msg}");
    // Ids of removed ggml types (Q4_2 = 4) are unknown too.
    let mut raw = with_tensors(1);
    raw.tensor("w", &[32], 4, 0).pad(32).data(128);
    assert!(matches!(
        parse_err(&raw.bytes),
        GgufError::UnknownTensorType { type_id: 4, .. }
    ));
}

#[test]
fn row_not_a_whole_number_of_blocks() {
    let mut raw = with_tensors(1);
    raw.tensor("w", &[16, 2], Q4_0, 0).pad(32).data(64);
    assert_malformed(
        &parse_err(&raw.bytes),
        33,
        "row length 16 is not a multiple of the Q4_0 block size 32",
    );
}

#[test]
fn duplicate_tensor_name() {
    let mut raw = with_tensors(2);
    raw.tensor("w", &[4], F32, 0)
        .tensor("w", &[4], F32, 32)
        .pad(32)
        .data(64);
    assert_malformed(&parse_err(&raw.bytes), 57, "tensor name 'w' appears twice");
}

#[test]
fn tensor_name_length_past_end() {
    let mut raw = with_tensors(1);
    raw.u64(1 << 50).data(40);
    assert_malformed(&parse_err(&raw.bytes), 24, "name of tensor #0 has length");
}

#[test]
fn custom_alignment_is_enforced() {
    let mut raw = RawGguf::header(3, 1, 1);
    raw.kv_u32("general.alignment", 64)
        .tensor("w", &[8], F32, 32)
        .pad(64)
        .data(128);
    assert_malformed(
        &parse_err(&raw.bytes),
        57,
        "not a multiple of the alignment 64",
    );
    let mut raw = RawGguf::header(3, 1, 1);
    raw.kv_u32("general.alignment", 64)
        .tensor("w", &[8], F32, 64)
        .pad(64)
        .data(128);
    let file = raw.parse().unwrap();
    assert_eq!(file.alignment(), 64);
    assert_eq!(file.data_offset() % 64, 0);
}
