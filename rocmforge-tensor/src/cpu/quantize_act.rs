//! On-the-fly quantization of f32 activations to the 8-bit blocks that quantized weights
//! are multiplied with (ggml's `vec_dot_type`s): Q8_0, Q8_1 (32 elements per block) and
//! Q8_K (256 elements per block, with per-16 sums).
//!
//! Rounding follows ggml's reference quantizers: `roundf` (half away from zero) for Q8_0
//! and Q8_1, round-half-to-even (`nearest_int`) for Q8_K. Scales that ggml stores as f16
//! (Q8_0's and Q8_1's `d`, Q8_1's `s`) are kept here as the f32 value of that f16.

use half::f16;

/// Elements per Q8_0 / Q8_1 block.
pub const QK8: usize = 32;
/// Elements per Q8_K block (and per K-quant super-block).
pub const QK_K: usize = 256;

/// 32-element 8-bit blocks (Q8_0, or Q8_1 when `s` is filled).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Q8Blocks {
    /// Quantized values, one per input element.
    pub qs: Vec<i8>,
    /// Per-block scale (an f16 value widened to f32).
    pub d: Vec<f32>,
    /// Q8_1 only: per-block `d * sum(qs)` (an f16 value widened to f32); empty for Q8_0.
    pub s: Vec<f32>,
}

/// 256-element 8-bit blocks (Q8_K).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Q8KBlocks {
    /// Quantized values, one per input element.
    pub qs: Vec<i8>,
    /// Per-block scale (f32, may be negative: ggml scales by `-127 / max`).
    pub d: Vec<f32>,
    /// Sums of each 16 consecutive quantized values.
    pub bsums: Vec<i32>,
}

fn f16_round(v: f32) -> f32 {
    f16::from_f32(v).to_f32()
}

/// ggml's `nearest_int`: round half to even through the float adder (valid for
/// `|v| <= 4194303`, which `127 * x / max` always is).
fn nearest_int(v: f32) -> i32 {
    let bits = (v + 12_582_912.0f32).to_bits();
    (bits & 0x007f_ffff) as i32 - 0x0040_0000
}

/// `roundf(v)` (half away from zero) as an integer, for `|v| < 2^23`, without a libm
/// call: `v - trunc(v)` is exact there, so the fraction decides the rounding exactly.
/// NaN gives 0, as `roundf(NaN) as i8` does.
#[inline(always)]
fn round_half_away(v: f32) -> i32 {
    let t = v as i32;
    let f = v - t as f32;
    t + i32::from(f >= 0.5) - i32::from(f <= -0.5)
}

/// One Q8_0/Q8_1 block: returns `(d as f32 before f16 rounding, sum of q)`.
fn quantize_block32(x: &[f32], qs: &mut [i8]) -> (f32, i32) {
    let amax = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = amax / 127.0;
    let id = if d != 0.0 { 1.0 / d } else { 0.0 };
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        *q = round_half_away(v * id).clamp(-128, 127) as i8;
        sum += i32::from(*q);
    }
    (d, sum)
}

/// Quantizes `x` to Q8_0 blocks (`d = amax / 127`, `q = round(x / d)`). A trailing partial
/// block (when `x.len()` is not a multiple of 32) is ignored.
pub fn quantize_q8_0(x: &[f32]) -> Q8Blocks {
    let nb = x.len() / QK8;
    let mut out = Q8Blocks {
        qs: vec![0; nb * QK8],
        d: Vec::with_capacity(nb),
        s: Vec::new(),
    };
    for (xb, qb) in x.chunks_exact(QK8).zip(out.qs.chunks_exact_mut(QK8)) {
        let (d, _) = quantize_block32(xb, qb);
        out.d.push(f16_round(d));
    }
    out
}

/// Quantizes `x` to Q8_1 blocks: as Q8_0, plus `s = d * sum(q)` (ggml multiplies the sum
/// of the quantized values by the f32 `d`, then stores the product as f16).
pub fn quantize_q8_1(x: &[f32]) -> Q8Blocks {
    let nb = x.len() / QK8;
    let mut out = Q8Blocks {
        qs: vec![0; nb * QK8],
        d: Vec::with_capacity(nb),
        s: Vec::with_capacity(nb),
    };
    for (xb, qb) in x.chunks_exact(QK8).zip(out.qs.chunks_exact_mut(QK8)) {
        let (d, sum) = quantize_block32(xb, qb);
        out.d.push(f16_round(d));
        out.s.push(f16_round(sum as f32 * d));
    }
    out
}

/// Quantizes `x` to Q8_K blocks: `iscale = -127 / max` where `max` is the signed value of
/// largest magnitude, `q = min(127, nearest_int(iscale * x))`, `d = 1 / iscale`, and the
/// sum of each 16 values. A trailing partial block is ignored.
pub fn quantize_q8_k(x: &[f32]) -> Q8KBlocks {
    let nb = x.len() / QK_K;
    let mut out = Q8KBlocks {
        qs: vec![0; nb * QK_K],
        d: Vec::with_capacity(nb),
        bsums: vec![0; nb * QK_K / 16],
    };
    let blocks = x.chunks_exact(QK_K).zip(out.qs.chunks_exact_mut(QK_K));
    for ((xb, qb), sums) in blocks.zip(out.bsums.chunks_exact_mut(QK_K / 16)) {
        let mut amax = 0.0f32;
        let mut max = 0.0f32;
        for &v in xb {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax == 0.0 {
            out.d.push(0.0);
            continue;
        }
        let iscale = -127.0 / max;
        for (q, &v) in qb.iter_mut().zip(xb) {
            *q = nearest_int(iscale * v).min(127) as i8;
        }
        for (s, q16) in sums.iter_mut().zip(qb.chunks_exact(16)) {
            *s = q16.iter().map(|&q| i32::from(q)).sum();
        }
        out.d.push(1.0 / iscale);
    }
    out
}

impl Q8Blocks {
    /// The values these blocks stand for: `q * d`.
    pub fn dequantize(&self) -> Vec<f32> {
        self.qs
            .chunks_exact(QK8)
            .zip(&self.d)
            .flat_map(|(qb, &d)| qb.iter().map(move |&q| f32::from(q) * d))
            .collect()
    }
}

impl Q8KBlocks {
    /// The values these blocks stand for: `q * d`.
    pub fn dequantize(&self) -> Vec<f32> {
        self.qs
            .chunks_exact(QK_K)
            .zip(&self.d)
            .flat_map(|(qb, &d)| qb.iter().map(move |&q| f32::from(q) * d))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::round_half_away;

    #[test]
    fn round_half_away_is_roundf() {
        let mut v = -130.0f32;
        while v <= 130.0 {
            for x in [
                v,
                v.next_up(),
                v.next_down(),
                v + 0.5,
                (v + 0.5).next_down(),
            ] {
                assert_eq!(round_half_away(x), x.round() as i32, "{x}");
            }
            v += 0.125;
        }
        for x in [
            0.499_999_97f32,
            -0.499_999_97,
            1.5,
            -2.5,
            126.5,
            -127.5,
            0.0,
            -0.0,
        ] {
            assert_eq!(round_half_away(x), x.round() as i32, "{x}");
        }
        assert_eq!(round_half_away(f32::NAN), 0);
    }
}
