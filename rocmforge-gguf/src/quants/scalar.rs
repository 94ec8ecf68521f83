//! Scalar helpers shared by the block formats: half-precision fields and ggml's rounding.

use half::f16;

/// Rounds to the nearest integer, ties to even, the way ggml's `nearest_int` does.
///
/// ggml adds 1.5·2²³ and reads the low mantissa bits; for |x| ≤ 4194303 that is exact
/// round-half-to-even. Outside that range (or for NaN) the result is unspecified garbage in
/// ggml, and here whatever the same bit trick gives — never a panic.
#[inline]
pub fn nearest_int(x: f32) -> i32 {
    let v = x + 12_582_912.0f32;
    (v.to_bits() as i32 & 0x007f_ffff) - 0x0040_0000
}

/// ggml's f32 → bf16 conversion: NaN becomes a quiet NaN, everything else rounds to nearest even.
#[inline]
pub fn bf16_bits_from_f32(x: f32) -> u16 {
    let u = x.to_bits();
    if u & 0x7fff_ffff > 0x7f80_0000 {
        return ((u >> 16) | 64) as u16;
    }
    ((u as u64 + 0x7fff + ((u as u64 >> 16) & 1)) >> 16) as u16
}

/// Reads the little-endian f16 at `b[off..off + 2]` as f32 (exact).
#[inline]
pub(crate) fn f16_at(b: &[u8], off: usize) -> f32 {
    f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// Rounds `v` to f16 (nearest even, like `GGML_FP32_TO_FP16`) and stores it little-endian.
#[inline]
pub(crate) fn put_f16(b: &mut [u8], off: usize, v: f32) {
    b[off..off + 2].copy_from_slice(&f16::from_f32(v).to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_int_rounds_half_to_even() {
        assert_eq!(nearest_int(0.5), 0);
        assert_eq!(nearest_int(1.5), 2);
        assert_eq!(nearest_int(2.5), 2);
        assert_eq!(nearest_int(-0.5), 0);
        assert_eq!(nearest_int(-1.5), -2);
        assert_eq!(nearest_int(-2.6), -3);
        assert_eq!(nearest_int(4_194_303.0), 4_194_303);
        assert_eq!(nearest_int(-4_194_303.0), -4_194_303);
        assert_eq!(nearest_int(1234.49), 1234);
    }

    #[test]
    fn bf16_rounds_to_nearest_even_and_quiets_nan() {
        assert_eq!(bf16_bits_from_f32(1.0), 0x3f80);
        // 1 + 2^-8 is exactly half way between two bf16 values: ties to even (down).
        assert_eq!(bf16_bits_from_f32(f32::from_bits(0x3f80_8000)), 0x3f80);
        assert_eq!(bf16_bits_from_f32(f32::from_bits(0x3f81_8000)), 0x3f82);
        assert_eq!(bf16_bits_from_f32(f32::from_bits(0x3f80_8001)), 0x3f81);
        assert_eq!(bf16_bits_from_f32(f32::INFINITY), 0x7f80);
        // A signalling NaN with a payload only in the low half stays NaN.
        assert_eq!(bf16_bits_from_f32(f32::from_bits(0x7f80_0001)), 0x7fc0);
    }
}
