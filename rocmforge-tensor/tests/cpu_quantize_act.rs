//! The on-the-fly activation quantizers (Q8_0, Q8_1, Q8_K): scales, rounding rules, sums.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cpu_util;

use cpu_util::Rng;
use half::f16;
use rocmforge_tensor::cpu::quantize_act::{quantize_q8_0, quantize_q8_1, quantize_q8_k};

#[test]
fn q8_0_scale_and_error_bound() {
    let mut rng = Rng::new(60);
    let x = rng.vec(32 * 7, -3.0, 3.0);
    let q = quantize_q8_0(&x);
    assert_eq!((q.qs.len(), q.d.len(), q.s.len()), (224, 7, 0));
    for (b, xb) in x.chunks_exact(32).enumerate() {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        assert_eq!(q.d[b], f16::from_f32(amax / 127.0).to_f32());
        let d32 = amax / 127.0;
        for (i, &v) in xb.iter().enumerate() {
            let qi = q.qs[b * 32 + i];
            assert_ne!(qi, i8::MIN, "q8_0 never produces -128");
            // Quantized with the unrounded f32 scale: error at most half a step.
            assert!(
                (f32::from(qi) * d32 - v).abs() <= d32 * 0.5001,
                "block {b} elem {i}"
            );
        }
    }
}

#[test]
fn q8_0_rounds_half_away_from_zero() {
    // amax 127 gives d = 1, so the values themselves are rounded.
    let mut x = vec![0.0f32; 32];
    x[0] = 127.0;
    x[1] = 2.5;
    x[2] = -2.5;
    x[3] = 0.5;
    let q = quantize_q8_0(&x);
    assert_eq!(&q.qs[..4], &[127, 3, -3, 1]);
    let zeros = quantize_q8_0(&[0.0; 32]);
    assert_eq!(zeros.d, vec![0.0]);
    assert!(zeros.qs.iter().all(|&v| v == 0));
}

#[test]
fn q8_1_sum_uses_unrounded_scale() {
    let mut rng = Rng::new(61);
    let x = rng.vec(64, -1.0, 2.0);
    let q = quantize_q8_1(&x);
    for (b, xb) in x.chunks_exact(32).enumerate() {
        let amax = xb.iter().fold(0.0f32, |m, v| m.max(v.abs()));
        let sum: i32 = q.qs[b * 32..(b + 1) * 32]
            .iter()
            .map(|&v| i32::from(v))
            .sum();
        assert_eq!(q.s[b], f16::from_f32(sum as f32 * (amax / 127.0)).to_f32());
    }
    assert_eq!(q.qs, quantize_q8_0(&x).qs, "Q8_1 values equal Q8_0's");
}

#[test]
fn q8_k_signed_scale_half_even_and_bsums() {
    let mut x = vec![0.0f32; 256];
    x[0] = -127.0; // largest magnitude, negative: iscale = -127 / -127 = 1
    x[1] = 2.5; // ties go to even: 2
    x[2] = 3.5; // 4
    x[3] = -0.5; // -0
    let q = quantize_q8_k(&x);
    assert_eq!(q.d, vec![1.0]);
    assert_eq!(&q.qs[..4], &[-127, 2, 4, 0]);
    assert_eq!(q.bsums[0], -127 + 2 + 4);
    let mut rng = Rng::new(62);
    let y = rng.vec(512, -4.0, 1.0);
    let qy = quantize_q8_k(&y);
    for (i, s) in qy.bsums.iter().enumerate() {
        let want: i32 = qy.qs[i * 16..(i + 1) * 16]
            .iter()
            .map(|&v| i32::from(v))
            .sum();
        assert_eq!(*s, want);
    }
    let deq = qy.dequantize();
    for (b, yb) in y.chunks_exact(256).enumerate() {
        let step = qy.d[b].abs();
        for (i, &v) in yb.iter().enumerate() {
            assert!((deq[b * 256 + i] - v).abs() <= step * 0.5001);
        }
    }
}
