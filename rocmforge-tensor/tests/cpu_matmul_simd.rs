//! The SIMD kernels (what `matmul` runs on a CPU that has them) against the portable
//! scalar path (`matmul_portable`) and the f32 reference, for every type, odd row counts,
//! several block counts and token counts that cut the token tiles and groups unevenly.
//! The integer sums are the same and every quantized kernel adds its f32 block terms in the
//! scalar path's order, so they must agree bit for bit; only F16 (AVX2 rows in eight f32
//! lanes with fused multiply-adds) may differ, by summation order.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::{MATMUL_TYPES, Rng, random_weight};
use rocmforge_gguf::GgmlType;
use rocmforge_tensor::cpu::{
    CpuKernels, WeightView, dequantize_row, matmul, matmul_f32_reference, matmul_portable,
    matmul_with,
};

/// `sum_i |w_i x_i|` per (token, row): the scale of the float rounding of a dot product.
fn magnitudes(w: &WeightView, x: &[f32], n_tokens: usize) -> Vec<f64> {
    let row_bytes = w.data.len() / w.rows;
    let mut row = vec![0.0f32; w.cols];
    let mut mag = vec![0.0f64; n_tokens * w.rows];
    for r in 0..w.rows {
        dequantize_row(w.ty, &w.data[r * row_bytes..(r + 1) * row_bytes], &mut row).unwrap();
        for t in 0..n_tokens {
            let xs = &x[t * w.cols..(t + 1) * w.cols];
            mag[t * w.rows + r] = row
                .iter()
                .zip(xs)
                .map(|(&a, &b)| (f64::from(a) * f64::from(b)).abs())
                .sum::<f64>()
                .max(1e-30);
        }
    }
    mag
}

fn check(ty: GgmlType, rows: usize, blocks: usize, n_tokens: usize, rng: &mut Rng) {
    let cols = blocks * ty.block_size().max(32);
    let data = random_weight(rng, ty, rows, cols);
    let w = WeightView {
        ty,
        data: &data,
        rows,
        cols,
    };
    let x = rng.vec(n_tokens * cols, -2.0, 2.0);
    check_levels(&w, &x, n_tokens, &format!("{ty} rows {rows} cols {cols}"));
}

/// Each level of kernels this CPU has (the AVX2 rows and tiles, the AVX2 panels, the
/// AVX-512 VNNI panels), and what `matmul` picks, against the portable path (bits) and the
/// f32 reference.
fn check_levels(w: &WeightView, x: &[f32], n_tokens: usize, what: &str) {
    let n = n_tokens * w.rows;
    let (mut portable, mut reference) = (vec![0.0; n], vec![0.0; n]);
    matmul_portable(w, x, n_tokens, &mut portable).unwrap();
    matmul_f32_reference(w, x, n_tokens, &mut reference).unwrap();
    let mag = magnitudes(w, x, n_tokens);
    for kernels in [
        CpuKernels::Avx2,
        CpuKernels::Avx2Gemm,
        CpuKernels::Avx512Vnni,
        CpuKernels::Portable,
    ] {
        let mut simd = vec![f32::NAN; n];
        if kernels == CpuKernels::Portable {
            matmul(w, x, n_tokens, &mut simd).unwrap();
        } else {
            matmul_with(kernels, w, x, n_tokens, &mut simd).unwrap();
        }
        let what = format!("{what} tokens {n_tokens} {kernels:?}");
        compare(w.ty, &what, &simd, &portable, &reference, &mag);
    }
}

fn compare(
    ty: GgmlType,
    what: &str,
    simd: &[f32],
    portable: &[f32],
    reference: &[f32],
    mag: &[f64],
) {
    let exact = ty != GgmlType::F16;
    for i in 0..simd.len() {
        let (s, p, r) = (simd[i], portable[i], reference[i]);
        assert!(s.is_finite(), "{what}: non-finite output at {i}");
        if exact {
            assert_eq!(
                s.to_bits(),
                p.to_bits(),
                "{what} at {i}: simd {s} portable {p}"
            );
        }
        let order = (f64::from(s) - f64::from(p)).abs() / mag[i];
        assert!(
            order < 1e-5,
            "{what} at {i}: simd {s} portable {p} ({order:.2e})"
        );
        let quant = (f64::from(s) - f64::from(r)).abs() / mag[i];
        assert!(
            quant < 5e-3,
            "{what} at {i}: simd {s} reference {r} ({quant:.2e})"
        );
    }
}

#[test]
fn simd_matches_portable_and_reference_for_every_type() {
    let mut rng = Rng::new(0x5eed);
    for ty in MATMUL_TYPES {
        let shapes = [
            (1, 1, 1),
            (7, 2, 1),
            // One token over several batches of eight rows and tasks (the decode rows ask
            // for the next batch's bytes while they compute one), the last batch short.
            (45, 3, 1),
            (16, 1, 1),
            (33, 3, 5),
            (5, 5, 9),
            (3, 1, 17),
            // Panels of 16 rows and tiles of 8 tokens (the VNNI GEMM from 8 tokens on) or 4
            // (the AVX2 GEMM), cut unevenly and evenly.
            (37, 3, 21),
            (16, 2, 8),
            (49, 1, 16),
            (37, 5, 2),
            (17, 2, 3),
            (15, 4, 6),
            (1, 2, 7),
            (32, 9, 4),
            // A last panel of exactly 8 rows (the K-quant panels are built 8 rows at a time).
            (24, 1, 5),
            // The AVX2 GEMM of Q8_0 (from 24 tokens; fewer stay on the tiles).
            (19, 2, 27),
            (16, 1, 24),
        ];
        for (rows, blocks, n_tokens) in shapes {
            check(ty, rows, blocks, n_tokens, &mut rng);
        }
    }
}

#[test]
fn f16_rows_with_a_tail_of_odd_columns() {
    // F16 has no blocks: columns that are not a multiple of the vector width.
    let mut rng = Rng::new(11);
    for cols in [1usize, 7, 17, 45] {
        let (rows, n_tokens) = (3, 6);
        let data = random_weight(&mut rng, GgmlType::F16, rows, cols);
        let w = WeightView {
            ty: GgmlType::F16,
            data: &data,
            rows,
            cols,
        };
        let x = rng.vec(n_tokens * cols, -1.0, 1.0);
        let (mut simd, mut portable) = (vec![0.0; rows * n_tokens], vec![0.0; rows * n_tokens]);
        matmul(&w, &x, n_tokens, &mut simd).unwrap();
        matmul_portable(&w, &x, n_tokens, &mut portable).unwrap();
        let mag = magnitudes(&w, &x, n_tokens);
        for i in 0..simd.len() {
            let d = (f64::from(simd[i]) - f64::from(portable[i])).abs() / mag[i];
            assert!(
                d < 1e-5,
                "cols {cols} at {i}: {} vs {}",
                simd[i],
                portable[i]
            );
        }
    }
}

#[test]
fn decode_rows_in_batches_of_eight_cut_unevenly() {
    // One token takes the 8-row decode kernels (rows transposed in registers); row counts
    // below, at and above multiples of 8 and of the 32-row tasks, each type's block counts.
    let mut rng = Rng::new(0xdec0de);
    for ty in MATMUL_TYPES {
        for (rows, blocks) in [(8, 1), (9, 2), (15, 3), (31, 4), (32, 1), (41, 5), (67, 2)] {
            check(ty, rows, blocks, 1, &mut rng);
        }
    }
}

/// Every quant byte at one value (`None`: random bytes).
const FILLS: [Option<u8>; 5] = [Some(0xff), Some(0x00), Some(0x80), Some(0x7f), None];

/// `values` elements of `ty` whose bytes are all `fill` (or random), each block's f16 `d`
/// (at byte `d_at`) 0.5 and its f16 min (at `m_at`, where the type has one) -0.25.
fn extreme_weight(
    rng: &mut Rng,
    ty: GgmlType,
    values: usize,
    fill: Option<u8>,
    d_at: usize,
    m_at: Option<usize>,
) -> Vec<u8> {
    use half::f16;
    let n = values / ty.block_size() * ty.type_size();
    let mut data = fill.map_or_else(|| rng.bytes(n), |f| vec![f; n]);
    for blk in data.chunks_exact_mut(ty.type_size()) {
        blk[d_at..d_at + 2].copy_from_slice(&f16::from_f32(0.5).to_le_bytes());
        if let Some(m) = m_at {
            blk[m..m + 2].copy_from_slice(&f16::from_f32(-0.25).to_le_bytes());
        }
    }
    data
}

/// The types of the extremes tests: type, byte offset of `d` and of the f16 min / dmin in a
/// block.
const EXTREME_TYPES: [(GgmlType, usize, Option<usize>); 8] = [
    (GgmlType::Q4_0, 0, None),
    (GgmlType::Q4_1, 0, Some(2)),
    (GgmlType::Q5_0, 0, None),
    (GgmlType::Q5_1, 0, Some(2)),
    (GgmlType::Q8_0, 0, None),
    (GgmlType::Q4_K, 0, Some(2)),
    (GgmlType::Q5_K, 0, Some(2)),
    (GgmlType::Q6_K, 208, None),
];

/// The decode rows (eight rows transposed in registers, the K-quants' scales unpacked for
/// eight rows at once) at the extremes: every quant and scale byte at 0xff, 0x00, 0x80 or
/// 0x7f (Q4_K / Q5_K: values 15 / 31 with scale and min 63; Q6_K: scales -1, 0, -128, 127),
/// or random bytes, against activations all at +127 or all at -127 (the most the 16-bit
/// partial sums must hold): the bits of the portable path at every level.
#[test]
fn decode_rows_at_the_extremes_of_the_partial_sums() {
    let mut rng = Rng::new(0x6b6b);
    for (ty, d_at, m_at) in EXTREME_TYPES {
        let (rows, cols) = (13, 3 * 256);
        for fill in FILLS {
            let data = extreme_weight(&mut rng, ty, rows * cols, fill, d_at, m_at);
            let w = WeightView {
                ty,
                data: &data,
                rows,
                cols,
            };
            for sign in [1.0f32, -1.0] {
                let x = vec![sign * 3.0; cols];
                let (mut portable, mut reference) = (vec![0.0; rows], vec![0.0; rows]);
                matmul_portable(&w, &x, 1, &mut portable).unwrap();
                matmul_f32_reference(&w, &x, 1, &mut reference).unwrap();
                for kernels in [
                    CpuKernels::Avx2,
                    CpuKernels::Avx2Gemm,
                    CpuKernels::Avx512Vnni,
                ] {
                    let mut simd = vec![0.0; rows];
                    matmul_with(kernels, &w, &x, 1, &mut simd).unwrap();
                    for r in 0..rows {
                        let what = format!("{ty} {kernels:?} fill {fill:?} sign {sign} row {r}");
                        assert_eq!(simd[r].to_bits(), portable[r].to_bits(), "{what}");
                        let scale = reference[r].abs().max(1.0);
                        assert!(
                            (simd[r] - reference[r]).abs() / scale < 1e-2,
                            "{what}: {} vs reference {}",
                            simd[r],
                            reference[r]
                        );
                    }
                }
            }
        }
    }
}

/// The panel GEMMs (AVX2: `maddubs` pairs added up in i16 over 4 or 8 runs of four values
/// before widening; VNNI) and the token tiles at the extremes of their partial sums: every
/// quant byte at 0xff, 0x00, 0x80 or 0x7f, or random, against tokens whose activations are
/// all +127, all -127, alternating or random, 1 to 12 tokens (the decode rows; tiles of 4 and
/// 8 cut unevenly; the nibble formats' eight-row kernels, four tokens a pass, below 16; the
/// AVX2 GEMM of MXFP4 / IQ4_NL from 8) and 25 (the nibble formats' AVX2 GEMM from 16, Q8_0's
/// from 24) of 19 rows (panels of 16 cut): the bits of the portable path at every level. The
/// K-quants' GEMMs add `maddubs` pairs in i16 over 8 (Q4_K), 4 (Q5_K) or 2 (Q6_K) runs:
/// their extremes are Q4_K / Q5_K values 15 / 31 with scale and min 63, Q6_K values 63 with
/// scales -1, 0, -128, 127.
#[test]
fn gemm_at_the_extremes_of_the_partial_sums() {
    let mut rng = Rng::new(0x9e44);
    for (ty, d_at, m_at) in EXTREME_TYPES {
        let (rows, cols) = (19, 5 * ty.block_size().max(32));
        for fill in FILLS {
            let data = extreme_weight(&mut rng, ty, rows * cols, fill, d_at, m_at);
            let w = WeightView {
                ty,
                data: &data,
                rows,
                cols,
            };
            for n_tokens in [1usize, 2, 5, 9, 10, 11, 12, 25] {
                // Token t: all +3, all -3, alternating signs, random (q8 values +-127).
                let mut x = Vec::with_capacity(n_tokens * cols);
                for t in 0..n_tokens {
                    match t % 4 {
                        0 => x.extend(std::iter::repeat_n(3.0f32, cols)),
                        1 => x.extend(std::iter::repeat_n(-3.0f32, cols)),
                        2 => x.extend((0..cols).map(|c| if c % 2 == 0 { 3.0 } else { -3.0 })),
                        _ => x.extend(rng.vec(cols, -3.0, 3.0)),
                    }
                }
                check_levels(&w, &x, n_tokens, &format!("{ty} fill {fill:?}"));
            }
        }
    }
}

/// The K-quants' decode rows over a whole 0.5B-model row (7 or 19 super-blocks: 1792 and
/// 4864 columns) and row counts around the 8-row batches and 32-row tasks.
#[test]
fn k_decode_rows_over_model_widths() {
    let mut rng = Rng::new(0x4b0d);
    for ty in [GgmlType::Q4_K, GgmlType::Q5_K, GgmlType::Q6_K] {
        for (rows, blocks) in [(33, 7), (7, 19), (65, 2)] {
            check(ty, rows, blocks, 1, &mut rng);
        }
    }
}
