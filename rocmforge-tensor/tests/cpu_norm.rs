//! rms_norm and layer_norm against f64 references.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::{Rng, max_rel_err};
use rocmforge_tensor::cpu::{layer_norm, rms_norm};

fn rms_ref(x: &[f32], w: &[f32], eps: f32) -> Vec<f64> {
    let n = w.len();
    x.chunks_exact(n)
        .flat_map(|r| {
            let ms = r.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>() / n as f64;
            let s = 1.0 / (ms + f64::from(eps)).sqrt();
            r.iter()
                .zip(w)
                .map(move |(&v, &g)| f64::from(v) * s * f64::from(g))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn ln_ref(x: &[f32], w: &[f32], b: Option<&[f32]>, eps: f32) -> Vec<f64> {
    let n = w.len();
    let mut out = Vec::new();
    for r in x.chunks_exact(n) {
        let mean = r.iter().map(|&v| f64::from(v)).sum::<f64>() / n as f64;
        let var = r
            .iter()
            .map(|&v| (f64::from(v) - mean).powi(2))
            .sum::<f64>()
            / n as f64;
        let s = 1.0 / (var + f64::from(eps)).sqrt();
        for (i, &v) in r.iter().enumerate() {
            let bias = b.map_or(0.0, |b| f64::from(b[i]));
            out.push((f64::from(v) - mean) * s * f64::from(w[i]) + bias);
        }
    }
    out
}

#[test]
fn rms_norm_matches_f64() {
    let mut rng = Rng::new(1);
    for &(rows, n) in &[(1usize, 96usize), (7, 576), (5, 33), (300, 130)] {
        let x = rng.vec(rows * n, -3.0, 3.0);
        let w = rng.vec(n, -2.0, 2.0);
        let mut out = vec![f32::NAN; rows * n];
        rms_norm(&x, &w, 1e-5, &mut out);
        let err = max_rel_err(&out, &rms_ref(&x, &w, 1e-5), 1e-6);
        assert!(err < 1e-6, "rows {rows} n {n}: rel err {err}");
    }
}

#[test]
fn rms_norm_of_zeros_is_zero() {
    let x = vec![0.0f32; 64];
    let w = vec![1.0f32; 32];
    let mut out = vec![f32::NAN; 64];
    rms_norm(&x, &w, 1e-6, &mut out);
    assert!(out.iter().all(|&v| v == 0.0));
}

#[test]
fn layer_norm_matches_f64() {
    let mut rng = Rng::new(2);
    for &(rows, n) in &[(1usize, 64usize), (7, 96), (3, 257)] {
        let x = rng.vec(rows * n, -2.0, 4.0);
        let w = rng.vec(n, 0.5, 1.5);
        let b = rng.vec(n, -0.5, 0.5);
        let mut out = vec![f32::NAN; rows * n];
        layer_norm(&x, &w, Some(&b), 1e-5, &mut out);
        let err = max_rel_err(&out, &ln_ref(&x, &w, Some(&b), 1e-5), 1e-6);
        assert!(err < 2e-6, "with bias, rows {rows} n {n}: rel err {err}");
        layer_norm(&x, &w, None, 1e-5, &mut out);
        let err = max_rel_err(&out, &ln_ref(&x, &w, None, 1e-5), 1e-6);
        assert!(err < 2e-6, "no bias, rows {rows} n {n}: rel err {err}");
    }
}
