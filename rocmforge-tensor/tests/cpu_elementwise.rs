//! add, mul, scale, silu_mul and gelu against f64 references.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::{Rng, max_rel_err};
use rocmforge_tensor::cpu::{add, gelu, mul, scale, silu_mul};

#[test]
fn add_mul_scale_are_exact() {
    let mut rng = Rng::new(3);
    let a = rng.vec(101, -5.0, 5.0);
    let b = rng.vec(101, -5.0, 5.0);
    let mut s = a.clone();
    add(&mut s, &b);
    let mut p = a.clone();
    mul(&mut p, &b);
    let mut k = a.clone();
    scale(&mut k, 0.125);
    for i in 0..101 {
        assert_eq!(s[i], a[i] + b[i]);
        assert_eq!(p[i], a[i] * b[i]);
        assert_eq!(k[i], a[i] * 0.125);
    }
}

#[test]
fn silu_mul_matches_f64() {
    let mut rng = Rng::new(4);
    let g = rng.vec(1537, -12.0, 12.0);
    let u = rng.vec(1537, -3.0, 3.0);
    let mut out = vec![f32::NAN; 1537];
    silu_mul(&g, &u, &mut out);
    let want: Vec<f64> = g
        .iter()
        .zip(&u)
        .map(|(&g, &u)| {
            let g = f64::from(g);
            g / (1.0 + (-g).exp()) * f64::from(u)
        })
        .collect();
    let err = max_rel_err(&out, &want, 1e-6);
    assert!(err < 1e-6, "silu_mul rel err {err}");
    // Large negative gates give 0 (not NaN), large positive give the gate itself.
    let mut o = [0.0f32; 2];
    silu_mul(&[-200.0, 200.0], &[1.0, 1.0], &mut o);
    assert_eq!(o, [-0.0, 200.0]);
}

#[test]
fn gelu_matches_f64_tanh_approximation() {
    let mut rng = Rng::new(5);
    let x = rng.vec(999, -8.0, 8.0);
    let mut y = x.clone();
    gelu(&mut y);
    let c = (2.0f64 / std::f64::consts::PI).sqrt();
    let want: Vec<f64> = x
        .iter()
        .map(|&v| {
            let v = f64::from(v);
            0.5 * v * (1.0 + (c * v * (1.0 + 0.044715 * v * v)).tanh())
        })
        .collect();
    let err = max_rel_err(&y, &want, 1e-6);
    assert!(err < 1e-6, "gelu rel err {err}");
}
