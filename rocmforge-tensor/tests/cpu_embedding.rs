//! Embedding lookup from float and quantized tables.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::{MATMUL_TYPES, Rng, random_weight};
use rocmforge_tensor::TensorError;
use rocmforge_tensor::cpu::{WeightView, dequantize_row, embedding};

#[test]
fn rows_are_the_dequantized_table_rows() {
    let mut rng = Rng::new(40);
    for ty in MATMUL_TYPES {
        let (vocab, dim) = (11, ty.block_size().max(32) * 2);
        let data = random_weight(&mut rng, ty, vocab, dim);
        let table = WeightView {
            ty,
            data: &data,
            rows: vocab,
            cols: dim,
        };
        let ids = [3u32, 0, 10, 3];
        let mut out = vec![f32::NAN; ids.len() * dim];
        embedding(&table, &ids, &mut out).unwrap();
        let row_bytes = data.len() / vocab;
        for (i, &id) in ids.iter().enumerate() {
            let mut want = vec![0.0f32; dim];
            let r = id as usize;
            dequantize_row(ty, &data[r * row_bytes..(r + 1) * row_bytes], &mut want).unwrap();
            assert_eq!(&out[i * dim..(i + 1) * dim], &want[..], "{ty} id {id}");
            assert!(want.iter().all(|v| v.is_finite()));
        }
    }
}

#[test]
fn f32_table_is_copied_exactly() {
    let vals: Vec<f32> = (0..12).map(|v| v as f32 * 0.5).collect();
    let data: Vec<u8> = vals.iter().flat_map(|v| v.to_le_bytes()).collect();
    let table = WeightView {
        ty: rocmforge_gguf::GgmlType::F32,
        data: &data,
        rows: 3,
        cols: 4,
    };
    let mut out = vec![0.0f32; 8];
    embedding(&table, &[2, 1], &mut out).unwrap();
    assert_eq!(out, [4.0, 4.5, 5.0, 5.5, 2.0, 2.5, 3.0, 3.5]);
}

#[test]
fn bad_id_is_an_error_naming_id_and_vocab() {
    let data = vec![0u8; 5 * 34];
    let table = WeightView {
        ty: rocmforge_gguf::GgmlType::Q8_0,
        data: &data,
        rows: 5,
        cols: 32,
    };
    let mut out = vec![0.0f32; 64];
    let e = embedding(&table, &[1, 5], &mut out).unwrap_err();
    assert!(
        matches!(
            e,
            TensorError::TokenOutOfRange {
                id: 5,
                index: 1,
                vocab: 5,
                ..
            }
        ),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains('5') && msg.contains("vocabulary"), "{msg}");
    assert!(
        embedding(&table, &[1], &mut out).is_err(),
        "output size mismatch must fail"
    );
}
