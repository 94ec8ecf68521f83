//! matmul for every weight type: (a) against an f64 dot of dequantized weights and the
//! original activations (bounded by 8-bit activation quantization), and (b) against an
//! f64 dot of dequantized weights and the *dequantized* 8-bit activations (~exact: proves
//! the integer path). Tokens 1 and 5, odd row counts.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::{MATMUL_TYPES, Rng, random_weight};
use half::{bf16, f16};
use rocmforge_gguf::GgmlType;
use rocmforge_tensor::TensorError;
use rocmforge_tensor::cpu::quantize_act::{quantize_q8_0, quantize_q8_1, quantize_q8_k};
use rocmforge_tensor::cpu::{
    CpuKernels, PANEL_GEMM_TYPES, WeightView, dequantize_row, matmul, matmul_f32_reference,
    matmul_with,
};

fn dequantize_all(w: &WeightView) -> Vec<f32> {
    let row_bytes = w.data.len() / w.rows;
    let mut out = vec![0.0f32; w.rows * w.cols];
    for (r, o) in out.chunks_exact_mut(w.cols).enumerate() {
        dequantize_row(w.ty, &w.data[r * row_bytes..(r + 1) * row_bytes], o).unwrap();
    }
    assert!(
        out.iter().all(|v| v.is_finite()),
        "{}: non-finite dequantized weight",
        w.ty
    );
    out
}

/// Q8_1's stored `s` per block and the exact `d * sum(q)` it rounds.
type Q8_1Sums = (Vec<f32>, Vec<f32>);

/// The activations the fast path really multiplies with, and for Q8_1 a per-block
/// correction `m_w * (s - d * sum(q))` (Q8_1 stores `s` as f16).
fn effective_activations(ty: GgmlType, x: &[f32]) -> (Vec<f32>, Option<Q8_1Sums>) {
    use GgmlType::*;
    match ty {
        F32 => (x.to_vec(), None),
        F16 => (x.iter().map(|&v| f16::from_f32(v).to_f32()).collect(), None),
        BF16 => (
            x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect(),
            None,
        ),
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL | MXFP4 => (quantize_q8_0(x).dequantize(), None),
        Q4_1 | Q5_1 => {
            let a = quantize_q8_1(x);
            let exact_s: Vec<f32> =
                a.qs.chunks_exact(32)
                    .zip(&a.d)
                    .map(|(q, &d)| d * q.iter().map(|&v| f32::from(v)).sum::<f32>())
                    .collect();
            (a.dequantize(), Some((a.s.clone(), exact_s)))
        }
        _ => (quantize_q8_k(x).dequantize(), None),
    }
}

/// Per-block `m` of a Q4_1 / Q5_1 weight (f16 at byte 2 of each block).
fn block_mins(ty: GgmlType, data: &[u8]) -> Vec<f64> {
    data.chunks_exact(ty.type_size())
        .map(|b| f16::from_le_bytes([b[2], b[3]]).to_f64())
        .collect()
}

/// `|got - want| / sum |w_i a_i|`, the error relative to the dot's magnitude.
fn dot_refs(w: &[f32], a: &[f32]) -> (f64, f64) {
    let s = w
        .iter()
        .zip(a)
        .map(|(&p, &q)| f64::from(p) * f64::from(q))
        .sum();
    let m = w
        .iter()
        .zip(a)
        .map(|(&p, &q)| (f64::from(p) * f64::from(q)).abs())
        .sum::<f64>();
    (s, m.max(1e-30))
}

fn check_type(ty: GgmlType, rows: usize, cols: usize, n_tokens: usize, seed: u64) -> (f64, f64) {
    let mut rng = Rng::new(seed);
    let data = random_weight(&mut rng, ty, rows, cols);
    let w = WeightView {
        ty,
        data: &data,
        rows,
        cols,
    };
    let x = rng.vec(n_tokens * cols, -2.0, 2.0);
    let mut out = vec![f32::NAN; n_tokens * rows];
    matmul(&w, &x, n_tokens, &mut out).unwrap();
    assert!(out.iter().all(|v| v.is_finite()), "{ty}: non-finite output");
    let wd = dequantize_all(&w);
    let (mut err_a, mut err_b) = (0.0f64, 0.0f64);
    for t in 0..n_tokens {
        let xt = &x[t * cols..(t + 1) * cols];
        let (at, q8_1) = effective_activations(ty, xt);
        for r in 0..rows {
            let wr = &wd[r * cols..(r + 1) * cols];
            let got = f64::from(out[t * rows + r]);
            let (ref_a, mag_a) = dot_refs(wr, xt);
            let (mut ref_b, mag_b) = dot_refs(wr, &at);
            if let Some((s, exact_s)) = &q8_1 {
                let row_bytes = data.len() / rows;
                let mins = block_mins(ty, &data[r * row_bytes..(r + 1) * row_bytes]);
                for (b, m) in mins.iter().enumerate() {
                    ref_b += m * (f64::from(s[b]) - f64::from(exact_s[b]));
                }
            }
            err_a = err_a.max((got - ref_a).abs() / mag_a);
            err_b = err_b.max((got - ref_b).abs() / mag_b);
        }
    }
    (err_a, err_b)
}

#[test]
fn every_type_matches_dequantized_reference() {
    for (i, ty) in MATMUL_TYPES.into_iter().enumerate() {
        let cols = if ty.block_size() == 256 { 512 } else { 96 };
        for n_tokens in [1usize, 5] {
            let (a, b) = check_type(ty, 7, cols, n_tokens, 100 + i as u64 * 7 + n_tokens as u64);
            eprintln!(
                "{ty:>6} tokens {n_tokens}: vs f32 activations {a:.2e}, vs q8 activations {b:.2e}"
            );
            assert!(
                a < 5e-3,
                "{ty} tokens {n_tokens}: error vs f32 activations {a}"
            );
            assert!(
                b < 1e-5,
                "{ty} tokens {n_tokens}: error vs dequantized activations {b}"
            );
        }
    }
}

#[test]
fn many_rows_and_tokens_match_single_token_calls() {
    // Exercises the row chunks and token groups of the parallel driver.
    let mut rng = Rng::new(7);
    for ty in PANEL_GEMM_TYPES.into_iter().chain([GgmlType::F16]) {
        let (rows, cols, n_tokens) = (77, 256, 37);
        let data = random_weight(&mut rng, ty, rows, cols);
        let w = WeightView {
            ty,
            data: &data,
            rows,
            cols,
        };
        let x = rng.vec(n_tokens * cols, -1.0, 1.0);
        // Every level of kernels (the VNNI panel GEMM for 2+ tokens where the CPU has it,
        // the AVX2 panel GEMM, the AVX2 tiles and 8-row decode kernel, the portable rows)
        // gives each token the same bits whatever the number of tokens, and so does each
        // level against the others (F16 aside: its AVX2 rows sum in another order than the
        // portable ones).
        let levels = [
            CpuKernels::Avx512Vnni,
            CpuKernels::Avx2Gemm,
            CpuKernels::Avx2,
            CpuKernels::Portable,
        ];
        let mut first: Option<Vec<f32>> = None;
        for kernels in levels {
            let mut out = vec![f32::NAN; n_tokens * rows];
            matmul_with(kernels, &w, &x, n_tokens, &mut out).unwrap();
            for t in 0..n_tokens {
                let mut one = vec![f32::NAN; rows];
                matmul_with(kernels, &w, &x[t * cols..(t + 1) * cols], 1, &mut one).unwrap();
                assert_eq!(
                    one,
                    out[t * rows..(t + 1) * rows].to_vec(),
                    "{ty} {kernels:?} token {t}"
                );
            }
            if ty == GgmlType::F16 {
                continue;
            }
            match &first {
                Some(f) => assert_eq!(&out, f, "{ty} {kernels:?} vs {:?}", levels[0]),
                None => first = Some(out),
            }
        }
    }
}

#[test]
fn reference_path_agrees_with_fast_path() {
    let mut rng = Rng::new(8);
    for ty in MATMUL_TYPES {
        let cols = ty.block_size().max(32) * 2;
        let data = random_weight(&mut rng, ty, 5, cols);
        let w = WeightView {
            ty,
            data: &data,
            rows: 5,
            cols,
        };
        let x = rng.vec(3 * cols, -1.0, 1.0);
        let (mut fast, mut slow) = (vec![0.0f32; 15], vec![0.0f32; 15]);
        matmul(&w, &x, 3, &mut fast).unwrap();
        matmul_f32_reference(&w, &x, 3, &mut slow).unwrap();
        let scale = slow.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
        for (f, s) in fast.iter().zip(&slow) {
            assert!((f - s).abs() / scale < 2e-2, "{ty}: fast {f} reference {s}");
        }
    }
}

#[test]
fn shape_errors_name_op_and_sizes() {
    let data = vec![0u8; 3 * 20];
    let w = WeightView {
        ty: GgmlType::Q4_1,
        data: &data,
        rows: 3,
        cols: 32,
    };
    let mut out = vec![0.0f32; 3];
    let e = matmul(&w, &[0.0; 31], 1, &mut out).unwrap_err();
    assert!(matches!(e, TensorError::Shape { op: "matmul", .. }), "{e}");
    assert!(e.to_string().contains("31"), "{e}");
    let e = matmul(&w, &[0.0; 32], 1, &mut [0.0; 2]).unwrap_err();
    assert!(e.to_string().contains("output"), "{e}");
    let short = WeightView {
        ty: GgmlType::Q4_1,
        data: &data[..50],
        rows: 3,
        cols: 32,
    };
    let e = matmul(&short, &[0.0; 32], 1, &mut out).unwrap_err();
    assert!(
        e.to_string().contains("60") && e.to_string().contains("50"),
        "{e}"
    );
    let odd = WeightView {
        ty: GgmlType::Q4_K,
        data: &data,
        rows: 3,
        cols: 32,
    };
    assert!(matmul(&odd, &[0.0; 32], 1, &mut out).is_err());
    let i32w = WeightView {
        ty: GgmlType::I32,
        data: &data[..12],
        rows: 3,
        cols: 1,
    };
    let e = matmul(&i32w, &[0.0; 1], 1, &mut out).unwrap_err();
    assert!(matches!(e, TensorError::UnsupportedType { .. }), "{e}");
}

#[test]
fn empty_shapes_are_fine() {
    let data: Vec<u8> = Vec::new();
    for ty in MATMUL_TYPES {
        let no_rows = WeightView {
            ty,
            data: &data,
            rows: 0,
            cols: ty.block_size(),
        };
        let x = vec![1.0f32; 3 * ty.block_size()];
        matmul(&no_rows, &x, 3, &mut []).unwrap();
        let no_cols = WeightView {
            ty,
            data: &data,
            rows: 4,
            cols: 0,
        };
        let mut out = vec![f32::NAN; 8];
        matmul(&no_cols, &[], 2, &mut out).unwrap();
        assert!(
            out.iter().all(|&v| v == 0.0),
            "{ty}: empty dot products are 0"
        );
        matmul(&no_cols, &[], 0, &mut []).unwrap();
    }
}
