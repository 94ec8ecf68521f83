//! `matmul_many` (several weights with the same activations: one parallel loop over all their
//! rows for one token, the activations quantized once per scheme) against each weight alone
//! through the portable scalar path (F16: `matmul`, whose AVX2 rows sum in another order):
//! the same bits, for groups of mixed types (each activation scheme, weights without decode
//! rows among them), row counts that cut the 32-row tasks and 8-row batches unevenly, one
//! token and several; and its size checks.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::{Rng, random_weight};
use rocmforge_gguf::GgmlType;
use rocmforge_tensor::cpu::{WeightView, matmul, matmul_many, matmul_portable};

/// A group of weights of `types` (rows from `rows`), `cols` columns each, multiplied with
/// `n_tokens` random tokens both ways.
fn check(types: &[GgmlType], rows: &[usize], cols: usize, n_tokens: usize, rng: &mut Rng) {
    let data: Vec<Vec<u8>> = types
        .iter()
        .zip(rows)
        .map(|(&ty, &r)| random_weight(rng, ty, r, cols))
        .collect();
    let views: Vec<WeightView> = types
        .iter()
        .zip(rows)
        .zip(&data)
        .map(|((&ty, &rows), d)| WeightView {
            ty,
            data: d,
            rows,
            cols,
        })
        .collect();
    let x = rng.vec(n_tokens * cols, -2.0, 2.0);
    let mut outs: Vec<Vec<f32>> = rows.iter().map(|&r| vec![f32::NAN; r * n_tokens]).collect();
    {
        let mut jobs: Vec<(&WeightView, &mut [f32])> = views
            .iter()
            .zip(outs.iter_mut())
            .map(|(w, o)| (w, o.as_mut_slice()))
            .collect();
        matmul_many(&mut jobs, &x, n_tokens).unwrap();
    }
    for ((w, got), ty) in views.iter().zip(&outs).zip(types) {
        let mut want = vec![0.0f32; w.rows * n_tokens];
        if *ty == GgmlType::F16 {
            matmul(w, &x, n_tokens, &mut want).unwrap();
        } else {
            matmul_portable(w, &x, n_tokens, &mut want).unwrap();
        }
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            assert_eq!(
                g.to_bits(),
                e.to_bits(),
                "{ty} in {types:?}, {} rows x {cols}, {n_tokens} tokens, value {i}: {g} vs {e}",
                w.rows
            );
        }
    }
}

#[test]
fn one_loop_gives_each_weights_portable_bits() {
    use GgmlType::*;
    let mut rng = Rng::new(0x3a1f);
    // (types, rows, columns): q/k/v shapes, every activation scheme, a weight without
    // decode rows (F16, IQ4_NL) in the group, rows off the 8- and 32-row grid.
    let groups: [(&[GgmlType], &[usize], usize); 7] = [
        (&[Q4_1, Q4_1, Q4_1], &[64, 24, 24], 64),
        (&[Q5_0, Q5_0, Q8_0], &[56, 8, 8], 96),
        (&[Q4_K, Q4_K, Q6_K], &[40, 9, 9], 512),
        (&[Q4_0, Q4_K, Q5_1, Q5_K], &[33, 17, 7, 65], 256),
        (&[Q8_0, F16, Q4_0], &[31, 12, 41], 64),
        (&[IQ4_NL, Q4_0], &[16, 16], 64),
        (&[Q5_K, Q5_K], &[97, 97], 768),
    ];
    for (types, rows, cols) in groups {
        for n_tokens in [1, 2, 5] {
            check(types, rows, cols, n_tokens, &mut rng);
        }
    }
}

#[test]
fn a_size_mismatch_is_an_error_and_writes_nothing() {
    let mut rng = Rng::new(7);
    let cols = 64;
    let a = random_weight(&mut rng, GgmlType::Q4_0, 16, cols);
    let b = random_weight(&mut rng, GgmlType::Q4_0, 8, cols);
    let wa = WeightView {
        ty: GgmlType::Q4_0,
        data: &a,
        rows: 16,
        cols,
    };
    let wb = WeightView {
        ty: GgmlType::Q4_0,
        data: &b,
        rows: 8,
        cols,
    };
    let x = rng.vec(cols, -1.0, 1.0);
    let mut oa = vec![0.0f32; 16];
    let mut ob = vec![0.0f32; 7];
    let err = matmul_many(&mut [(&wa, &mut oa), (&wb, &mut ob)], &x, 1);
    assert!(
        err.is_err(),
        "an output of 7 values for 8 rows was accepted"
    );
    assert!(oa.iter().all(|&v| v == 0.0), "the first weight ran anyway");
}
