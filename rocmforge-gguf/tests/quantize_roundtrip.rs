//! quantize → dequantize round trips: relative RMS error per type within bounds tight enough to
//! catch a layout or rounding bug, plus stability of re-quantization.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rocmforge_gguf::{GgmlType, GgufError, quants};

/// Deterministic pseudo-random numbers (xorshift64*), roughly normal via a sum of uniforms.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    fn normal(&mut self) -> f32 {
        (0..4).map(|_| self.uniform()).sum::<f32>() - 2.0
    }
}

/// Weight-like data: normal values whose scale grows from row to row (rows of 1024).
fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|i| {
            let row_scale = 0.02 * (1.0 + (i / 1024) as f32 * 0.25);
            rng.normal() * row_scale
        })
        .collect()
}

fn rel_rms(x: &[f32], y: &[f32]) -> f64 {
    let err: f64 = x.iter().zip(y).map(|(a, b)| f64::from(a - b).powi(2)).sum();
    let norm: f64 = x.iter().map(|a| f64::from(*a).powi(2)).sum();
    (err / norm).sqrt()
}

/// (type, bound on relative RMS error); bounds are ~1.5× the errors measured on this data
/// (F16 2.1e-4, BF16 1.7e-3, Q8_0 5.1e-3, Q8_K 6.2e-3, Q6_K 0.017, Q5_0 0.041, Q5_1 0.037,
/// Q5_K 0.035, Q4_0 0.082, Q4_1 0.076, Q4_K 0.069, IQ4_NL 0.074, IQ4_XS 0.074, Q3_K 0.146,
/// Q2_K 0.288).
const BOUNDS: &[(GgmlType, f64)] = &[
    (GgmlType::F32, 0.0),
    (GgmlType::F16, 0.0003),
    (GgmlType::BF16, 0.0025),
    (GgmlType::Q8_0, 0.0075),
    (GgmlType::Q8_1, 0.0075),
    (GgmlType::Q8_K, 0.0095),
    (GgmlType::Q6_K, 0.025),
    (GgmlType::Q5_0, 0.06),
    (GgmlType::Q5_1, 0.055),
    (GgmlType::Q5_K, 0.052),
    (GgmlType::Q4_0, 0.12),
    (GgmlType::Q4_1, 0.11),
    (GgmlType::Q4_K, 0.10),
    (GgmlType::IQ4_NL, 0.11),
    (GgmlType::IQ4_XS, 0.11),
    (GgmlType::Q3_K, 0.22),
    (GgmlType::Q2_K, 0.43),
];

#[test]
fn round_trip_error_is_within_bounds_for_every_quantizer() {
    let x = weights(64 * 1024, 0x5eed);
    let mut report = String::from("type    rel_rms\n");
    let mut failures = Vec::new();
    for &(ty, bound) in BOUNDS {
        assert!(quants::can_quantize(ty), "{ty} has no quantizer");
        let q = quants::quantize(ty, &x).unwrap();
        assert_eq!(q.len() as u64, ty.bytes_for(x.len() as u64).unwrap());
        let y = quants::dequantize_to_vec(ty, &q).unwrap();
        let e = rel_rms(&x, &y);
        report += &format!("{:<7} {e:.5}\n", ty.name());
        if e > bound {
            failures.push(format!("{ty}: rel RMS {e:.5} > bound {bound}"));
        }
    }
    println!("{report}");
    assert!(failures.is_empty(), "{failures:?}\n{report}");
}

#[test]
fn q8_0_requantization_is_stable() {
    let x = weights(4096, 7);
    let q1 = quants::quantize(GgmlType::Q8_0, &x).unwrap();
    let y1 = quants::dequantize_to_vec(GgmlType::Q8_0, &q1).unwrap();
    let q2 = quants::quantize(GgmlType::Q8_0, &y1).unwrap();
    let y2 = quants::dequantize_to_vec(GgmlType::Q8_0, &q2).unwrap();
    // Codes stay the same; the f16 scale may move by at most one f16 rounding step.
    for (b1, b2) in q1.chunks(34).zip(q2.chunks(34)) {
        assert_eq!(&b1[2..], &b2[2..], "codes changed on re-quantization");
    }
    assert!(rel_rms(&y1, &y2) < 1e-3);
}

#[test]
fn zero_input_quantizes_to_zero_output() {
    let x = vec![0.0f32; 512];
    for &(ty, _) in BOUNDS {
        let y = quants::dequantize_to_vec(ty, &quants::quantize(ty, &x).unwrap()).unwrap();
        assert!(y.iter().all(|v| *v == 0.0), "{ty}: zeros did not survive");
    }
}

#[test]
fn constant_and_signed_blocks_keep_their_extremes() {
    // The element of largest magnitude is reproduced closely by every symmetric format.
    let mut x = vec![0.25f32; 256];
    x[17] = -1.0;
    x[200] = 0.75;
    for ty in [
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::Q5_0,
        GgmlType::Q6_K,
        GgmlType::Q8_K,
    ] {
        let y = quants::dequantize_to_vec(ty, &quants::quantize(ty, &x).unwrap()).unwrap();
        assert!((y[17] + 1.0).abs() < 2e-3, "{ty}: {}", y[17]);
    }
}

#[test]
fn large_inputs_quantize_the_same_in_parallel_and_serially() {
    // 1 Mi elements take the rayon path; every 256-element slice must match its serial result.
    let x = weights(1 << 20, 99);
    for ty in [GgmlType::Q4_K, GgmlType::Q8_0, GgmlType::IQ4_XS] {
        let par = quants::quantize(ty, &x).unwrap();
        let bytes_per_256 = ty.bytes_for(256).unwrap() as usize;
        for (i, chunk) in [0usize, 1000, 4095]
            .iter()
            .map(|&i| (i, &x[i * 256..i * 256 + 256]))
        {
            let ser = quants::quantize(ty, chunk).unwrap();
            assert_eq!(
                &par[i * bytes_per_256..(i + 1) * bytes_per_256],
                &ser[..],
                "{ty} slice {i}"
            );
        }
        let y = quants::dequantize_to_vec(ty, &par).unwrap();
        let mut y_serial = vec![0.0; 256];
        quants::dequantize(
            ty,
            &par[4095 * bytes_per_256..4096 * bytes_per_256],
            &mut y_serial,
        )
        .unwrap();
        assert_eq!(&y[4095 * 256..4096 * 256], &y_serial[..]);
    }
}

#[test]
fn bad_lengths_and_unsupported_types_are_errors() {
    assert!(matches!(
        quants::quantize(GgmlType::Q4_0, &[0.0; 33]),
        Err(GgufError::BlockLayout { .. })
    ));
    assert!(matches!(
        quants::quantize(GgmlType::I32, &[0.0; 4]),
        Err(GgufError::Unsupported { .. })
    ));
    assert!(!quants::can_quantize(GgmlType::F64));
    assert!(!quants::can_dequantize(GgmlType::I8));
}

#[test]
fn non_finite_and_huge_inputs_never_panic() {
    let specials = [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        -f32::MAX,
        1e-45,
        -0.0,
    ];
    for (k, &s) in specials.iter().enumerate() {
        let x: Vec<f32> = (0..512)
            .map(|i| if i % (k + 3) == 0 { s } else { i as f32 * 0.01 })
            .collect();
        for &(ty, _) in BOUNDS {
            let q = quants::quantize(ty, &x).unwrap();
            let y = quants::dequantize_to_vec(ty, &q).unwrap();
            assert_eq!(y.len(), x.len(), "{ty} with {s}");
        }
    }
}
