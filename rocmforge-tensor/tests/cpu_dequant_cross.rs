//! The CPU matmul's own row decoding against `rocmforge_gguf::quants::dequantize` (an
//! independent implementation, itself checked against the `gguf` Python package), on
//! random bits of every weight type; and matmul on weights quantized by rocmforge-gguf.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::{MATMUL_TYPES, Rng, random_weight};
use rocmforge_gguf::quants;
use rocmforge_tensor::cpu::{WeightView, dequantize_row, matmul};

#[test]
fn row_decoding_matches_rocmforge_gguf() {
    let mut rng = Rng::new(50);
    for ty in MATMUL_TYPES {
        let (rows, cols) = (5, ty.block_size().max(32) * 3);
        let data = random_weight(&mut rng, ty, rows, cols);
        let mut theirs = vec![0.0f32; rows * cols];
        quants::dequantize(ty, &data, &mut theirs).unwrap();
        let row_bytes = data.len() / rows;
        let mut ours = vec![0.0f32; rows * cols];
        for (r, o) in ours.chunks_exact_mut(cols).enumerate() {
            dequantize_row(ty, &data[r * row_bytes..(r + 1) * row_bytes], o).unwrap();
        }
        for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
            let tol = 1e-6 * b.abs().max(1e-3);
            assert!(
                (a - b).abs() <= tol,
                "{ty} element {i}: ours {a}, rocmforge-gguf {b}"
            );
        }
    }
}

#[test]
fn matmul_on_gguf_quantized_weights() {
    let mut rng = Rng::new(51);
    for ty in MATMUL_TYPES
        .into_iter()
        .filter(|t| quants::can_quantize(*t))
    {
        let (rows, cols) = (9, ty.block_size().max(32) * 2);
        let orig = rng.vec(rows * cols, -1.0, 1.0);
        let data = quants::quantize(ty, &orig).unwrap();
        let w = WeightView {
            ty,
            data: &data,
            rows,
            cols,
        };
        let x = rng.vec(2 * cols, -1.0, 1.0);
        let mut out = vec![f32::NAN; 2 * rows];
        matmul(&w, &x, 2, &mut out).unwrap();
        let deq = quants::dequantize_to_vec(ty, &data).unwrap();
        for t in 0..2 {
            for r in 0..rows {
                let (wr, xt) = (&deq[r * cols..(r + 1) * cols], &x[t * cols..(t + 1) * cols]);
                let want: f64 = wr
                    .iter()
                    .zip(xt)
                    .map(|(&a, &b)| f64::from(a) * f64::from(b))
                    .sum();
                let mag: f64 = wr
                    .iter()
                    .zip(xt)
                    .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                    .sum();
                let err = (f64::from(out[t * rows + r]) - want).abs() / mag;
                assert!(err < 5e-3, "{ty} token {t} row {r}: rel err {err}");
            }
        }
    }
}
