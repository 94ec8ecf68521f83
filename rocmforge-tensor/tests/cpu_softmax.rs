//! softmax, argmax and top_k.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::{Rng, max_rel_err};
use rocmforge_tensor::cpu::{argmax, softmax, top_k};

#[test]
fn softmax_matches_f64_with_mask() {
    let mut rng = Rng::new(20);
    let mut x = rng.vec(77, -30.0, 30.0);
    for i in (0..77).step_by(5) {
        x[i] = f32::NEG_INFINITY;
    }
    let max = x
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, |m, v| m.max(f64::from(v)));
    let sum: f64 = x.iter().map(|&v| (f64::from(v) - max).exp()).sum();
    let want: Vec<f64> = x
        .iter()
        .map(|&v| (f64::from(v) - max).exp() / sum)
        .collect();
    let mut y = x.clone();
    softmax(&mut y);
    let err = max_rel_err(&y, &want, 1e-12);
    assert!(err < 1e-6, "softmax rel err {err}");
    for i in (0..77).step_by(5) {
        assert_eq!(y[i], 0.0);
    }
    let total: f64 = y.iter().map(|&v| f64::from(v)).sum();
    assert!((total - 1.0).abs() < 1e-5);
}

#[test]
fn softmax_large_values_stay_finite() {
    let mut x = vec![1e30f32, 1e30, -1e30];
    softmax(&mut x);
    assert_eq!(x, vec![0.5, 0.5, 0.0]);
    let mut all_masked = vec![f32::NEG_INFINITY; 4];
    softmax(&mut all_masked);
    assert_eq!(all_masked, vec![0.0; 4]);
}

#[test]
fn argmax_takes_first_of_ties() {
    assert_eq!(argmax(&[1.0, 3.0, 2.0, 3.0]), 1);
    assert_eq!(argmax(&[f32::NAN, -1.0, -0.5]), 2);
    assert_eq!(argmax(&[f32::NEG_INFINITY, f32::NEG_INFINITY]), 0);
    assert_eq!(argmax(&[]), 0);
}

#[test]
fn top_k_sorted_with_ties_by_index() {
    let x = [0.5, 2.0, -1.0, 2.0, 7.0, f32::NAN, 0.5];
    assert_eq!(top_k(&x, 3), vec![(4, 7.0), (1, 2.0), (3, 2.0)]);
    assert_eq!(top_k(&x, 0), vec![]);
    let all = top_k(&x, 100);
    assert_eq!(all.len(), 7);
    assert_eq!(all[4], (6, 0.5));
    assert!(all[6].1.is_nan());
    let mut rng = Rng::new(21);
    let v = rng.vec(5000, -1.0, 1.0);
    let tk = top_k(&v, 10);
    let mut sorted = v.clone();
    sorted.sort_by(|a, b| b.partial_cmp(a).unwrap());
    let vals: Vec<f32> = tk.iter().map(|p| p.1).collect();
    assert_eq!(vals, sorted[..10].to_vec());
    assert_eq!(tk[0].0, argmax(&v));
}
