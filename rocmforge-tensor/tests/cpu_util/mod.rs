//! Shared helpers of the CPU op tests: a seeded generator, random weights in every
//! supported format, and error measures.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use half::{bf16, f16};
use rocmforge_gguf::GgmlType;

/// xorshift64* — deterministic, no dependency.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f32, hi: f32) -> f32 {
        lo + (hi - lo) * self.unit()
    }
    pub fn vec(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.range(lo, hi)).collect()
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| (self.next_u64() >> 56) as u8).collect()
    }
}

/// Byte offsets of the f16 scale fields (`d`, `m`/`dmin`) inside one block of `ty`.
fn scale_offsets(ty: GgmlType) -> (&'static [usize], &'static [usize]) {
    use GgmlType::*;
    match ty {
        Q4_0 | Q5_0 | Q8_0 | IQ4_NL | IQ4_XS => (&[0], &[]),
        Q4_1 | Q5_1 => (&[0], &[2]),
        Q4_K | Q5_K => (&[0], &[2]),
        Q2_K => (&[80], &[82]),
        Q3_K => (&[108], &[]),
        Q6_K => (&[208], &[]),
        _ => (&[], &[]),
    }
}

/// A random `[rows][cols]` weight of type `ty`: random bits for the quants, sane random
/// f16 scales (so no NaN/inf), random values for the float types.
pub fn random_weight(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    let n = rows * cols;
    match ty {
        GgmlType::F32 => {
            return rng
                .vec(n, -1.0, 1.0)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
        }
        GgmlType::F16 => {
            return (0..n)
                .flat_map(|_| f16::from_f32(rng.range(-1.0, 1.0)).to_le_bytes())
                .collect();
        }
        GgmlType::BF16 => {
            return (0..n)
                .flat_map(|_| bf16::from_f32(rng.range(-1.0, 1.0)).to_le_bytes())
                .collect();
        }
        _ => {}
    }
    let nb = n / ty.block_size();
    let ts = ty.type_size();
    let mut data = rng.bytes(nb * ts);
    let (ds, ms) = scale_offsets(ty);
    for blk in data.chunks_exact_mut(ts) {
        if ty == GgmlType::MXFP4 {
            // E8M0 scale byte: half-scales 2^-9 .. 2^-3 (random bytes reach 2^127).
            blk[0] = 119 + (rng.next_u64() % 7) as u8;
        }
        for &o in ds {
            let d = f16::from_f32(rng.range(0.002, 0.03)).to_le_bytes();
            blk[o..o + 2].copy_from_slice(&d);
        }
        for &o in ms {
            let m = f16::from_f32(rng.range(-0.05, 0.05)).to_le_bytes();
            blk[o..o + 2].copy_from_slice(&m);
        }
    }
    data
}

/// Every weight type with a CPU matmul.
pub const MATMUL_TYPES: [GgmlType; 16] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
    GgmlType::MXFP4,
];

/// Largest `|a - b| / max(|b|max, floor)` over the slices: error relative to the largest
/// reference value. Panics on non-finite values (NaN never passes).
pub fn max_rel_err(got: &[f32], want: &[f64], floor: f64) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    assert!(got.iter().all(|v| v.is_finite()), "non-finite output");
    let scale = want.iter().fold(floor, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - w).abs() / scale)
        .fold(0.0, f64::max)
}
