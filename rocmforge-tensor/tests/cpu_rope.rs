//! RoPE (both pair layouts, partial rotation, linear scaling, YaRN) against a naive f64
//! cos/sin reference.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::{Rng, max_rel_err};
use rocmforge_tensor::cpu::{RopeMode, RopeParams, YarnParams, rope, rope_with_freq_factors};

/// Naive reference: angle `pos * freq_scale * base^(-2i/n_rot)` per pair, YaRN mixing and
/// magnitude scale in f64.
fn rope_ref(x: &[f32], n_heads: usize, hd: usize, positions: &[u32], p: &RopeParams) -> Vec<f64> {
    let n_rot = p.n_rot;
    let base = f64::from(p.freq_base);
    let fs = f64::from(p.freq_scale);
    let mut out: Vec<f64> = x.iter().map(|&v| f64::from(v)).collect();
    for (t, &pos) in positions.iter().enumerate() {
        for h in 0..n_heads {
            let o = (t * n_heads + h) * hd;
            for i in 0..n_rot / 2 {
                let extrap = f64::from(pos) * base.powf(-2.0 * i as f64 / n_rot as f64);
                let mut theta = fs * extrap;
                let mut mscale = 1.0;
                if let Some(y) = &p.yarn {
                    mscale = f64::from(y.attn_factor);
                    if y.ext_factor != 0.0 {
                        let cd = |rot: f64| {
                            n_rot as f64
                                * (f64::from(y.n_ctx_orig) / (rot * 2.0 * std::f64::consts::PI))
                                    .ln()
                                / (2.0 * base.ln())
                        };
                        let lo = cd(f64::from(y.beta_fast)).floor().max(0.0);
                        let hi = cd(f64::from(y.beta_slow)).ceil().min(n_rot as f64 - 1.0);
                        let r = (i as f64 - lo) / (hi - lo).max(0.001);
                        let mix = (1.0 - r.clamp(0.0, 1.0)) * f64::from(y.ext_factor);
                        theta = theta * (1.0 - mix) + extrap * mix;
                        mscale *= 1.0 + 0.1 * (1.0 / fs).ln();
                    }
                }
                let (c, s) = (theta.cos() * mscale, theta.sin() * mscale);
                let (a, b) = match p.mode {
                    RopeMode::Normal => (o + 2 * i, o + 2 * i + 1),
                    RopeMode::Neox => (o + i, o + i + n_rot / 2),
                };
                let (x0, x1) = (f64::from(x[a]), f64::from(x[b]));
                out[a] = x0 * c - x1 * s;
                out[b] = x0 * s + x1 * c;
            }
        }
    }
    out
}

fn check(p: RopeParams, n_tokens: usize, n_heads: usize, hd: usize, seed: u64) {
    let mut rng = Rng::new(seed);
    let x = rng.vec(n_tokens * n_heads * hd, -2.0, 2.0);
    let positions: Vec<u32> = (0..n_tokens).map(|i| (i * 13 + 3) as u32 % 180).collect();
    let mut y = x.clone();
    rope(&mut y, n_tokens, n_heads, hd, &positions, &p);
    let err = max_rel_err(&y, &rope_ref(&x, n_heads, hd, &positions, &p), 1e-3);
    assert!(err < 1e-4, "{p:?}: rel err {err}");
    // Dimensions past n_rot pass through untouched.
    for (a, b) in y.chunks_exact(hd).zip(x.chunks_exact(hd)) {
        assert_eq!(&a[p.n_rot..], &b[p.n_rot..]);
    }
}

fn params(n_rot: usize, mode: RopeMode) -> RopeParams {
    RopeParams {
        n_rot,
        freq_base: 10000.0,
        freq_scale: 1.0,
        mode,
        yarn: None,
    }
}

#[test]
fn normal_and_neox_full_rotation() {
    check(params(64, RopeMode::Normal), 5, 3, 64, 10);
    check(params(64, RopeMode::Neox), 5, 3, 64, 11);
    check(params(128, RopeMode::Normal), 1, 2, 128, 12);
}

#[test]
fn partial_rotation_leaves_the_rest() {
    check(params(32, RopeMode::Normal), 5, 4, 96, 13);
    check(params(24, RopeMode::Neox), 7, 2, 80, 14);
}

#[test]
fn linear_scaling_and_base() {
    let mut p = params(64, RopeMode::Neox);
    p.freq_base = 1_000_000.0;
    p.freq_scale = 0.25;
    check(p, 5, 2, 64, 15);
}

#[test]
fn yarn_matches_reference() {
    let mut p = params(64, RopeMode::Neox);
    p.freq_scale = 0.25;
    p.yarn = Some(YarnParams {
        ext_factor: 1.0,
        attn_factor: 1.0,
        beta_fast: 32.0,
        beta_slow: 1.0,
        n_ctx_orig: 4096,
    });
    check(p, 5, 2, 64, 16);
    p.mode = RopeMode::Normal;
    p.yarn = Some(YarnParams {
        ext_factor: 0.5,
        attn_factor: 0.9,
        beta_fast: 32.0,
        beta_slow: 1.0,
        n_ctx_orig: 2048,
    });
    check(p, 3, 3, 64, 17);
}

#[test]
fn position_zero_is_identity() {
    let mut rng = Rng::new(18);
    let x = rng.vec(2 * 64, -1.0, 1.0);
    let mut y = x.clone();
    rope(&mut y, 1, 2, 64, &[0], &params(64, RopeMode::Normal));
    assert_eq!(x, y);
}

#[test]
fn freq_factors_divide_the_angles() {
    let mut rng = Rng::new(19);
    let (n_heads, hd) = (2, 64);
    let x = rng.vec(3 * n_heads * hd, -1.0, 1.0);
    let positions = [5u32, 17, 100];
    let ff: Vec<f32> = (0..32).map(|i| 1.0 + i as f32 * 0.25).collect();
    let p = params(64, RopeMode::Normal);
    let mut y = x.clone();
    rope_with_freq_factors(&mut y, 3, n_heads, hd, &positions, &p, &ff);
    // Reference: rotate each pair by pos * base^(-2i/n_rot) / ff[i].
    for (t, &pos) in positions.iter().enumerate() {
        for h in 0..n_heads {
            let o = (t * n_heads + h) * hd;
            for i in 0..32 {
                let theta =
                    f64::from(pos) * 10000f64.powf(-2.0 * i as f64 / 64.0) / f64::from(ff[i]);
                let (c, s) = (theta.cos(), theta.sin());
                let (x0, x1) = (f64::from(x[o + 2 * i]), f64::from(x[o + 2 * i + 1]));
                assert!((f64::from(y[o + 2 * i]) - (x0 * c - x1 * s)).abs() < 1e-4);
                assert!((f64::from(y[o + 2 * i + 1]) - (x0 * s + x1 * c)).abs() < 1e-4);
            }
        }
    }
    // All-ones factors equal plain RoPE exactly.
    let mut a = x.clone();
    let mut b = x.clone();
    rope(&mut a, 3, n_heads, hd, &positions, &p);
    rope_with_freq_factors(&mut b, 3, n_heads, hd, &positions, &p, &[1.0; 32]);
    assert_eq!(a, b);
}
