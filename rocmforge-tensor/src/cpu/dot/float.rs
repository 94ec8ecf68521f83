//! Float weights (F32, F16, BF16): row conversion and the f32 dot product.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// Dot product with eight f32 accumulator lanes (the shape ggml's SIMD `vec_dot` uses;
/// the compiler turns the lanes into vector registers).
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b, |x| x)
}

/// [`dot_f32`] of `a` with f16 values widened to f32 (an f16 KV cache read in place): the
/// same operations in the same order, so the same bits as widening `b` first.
pub(crate) fn dot_f32_f16(a: &[f32], b: &[f16]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = super::avx2::Avx2::detect() {
        return super::avx2::dot_f32_f16(isa, a, b);
    }
    dot_lanes(a, b, f16::to_f32)
}

/// `acc[i] += w * x[i]` for f16 `x` widened to f32 (a multiply, then an add).
pub(crate) fn axpy_f16(acc: &mut [f32], w: f32, x: &[f16]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = super::avx2::Avx2::detect() {
        return super::avx2::axpy_f16(isa, acc, w, x);
    }
    for (a, &v) in acc.iter_mut().zip(x) {
        *a += w * v.to_f32();
    }
}

/// The order of [`dot_f32`]: `acc[l] += a[8i + l] * b[8i + l]`, the lanes summed as
/// `((0 + 4) + (1 + 5)) + ((2 + 6) + (3 + 7))`, plus the tail summed in order.
fn dot_lanes<T: Copy>(a: &[f32], b: &[T], widen: impl Fn(T) -> f32) -> f32 {
    const L: usize = 8;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; L];
    let mut ca = a.chunks_exact(L);
    let mut cb = b.chunks_exact(L);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..L {
            acc[l] += x[l] * widen(y[l]);
        }
    }
    let mut tail = 0.0f32;
    for (x, &y) in ca.remainder().iter().zip(cb.remainder()) {
        tail += x * widen(y);
    }
    let s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    s + tail
}

/// Converts a row of little-endian F32 bytes.
pub(crate) fn f32_row(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
    }
}

/// Converts a row of little-endian F16 bytes; `halves` is scratch space reused between
/// rows (the slice conversion uses the CPU's f16 instructions where it has them).
pub(crate) fn f16_row(bytes: &[u8], halves: &mut Vec<f16>, out: &mut [f32]) {
    halves.clear();
    halves.extend(
        bytes
            .chunks_exact(2)
            .map(|b| f16::from_le_bytes([b[0], b[1]])),
    );
    let n = halves.len().min(out.len());
    halves[..n].convert_to_f32_slice(&mut out[..n]);
}

/// Converts a row of little-endian BF16 bytes.
pub(crate) fn bf16_row(bytes: &[u8], out: &mut [f32]) {
    for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = bf16::from_le_bytes([b[0], b[1]]).to_f32();
    }
}

/// Rounds activations to f16 and back, as ggml converts them to `vec_dot_type` F16.
pub(crate) fn round_through_f16(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = f16::from_f32(*v).to_f32();
    }
}

/// Rounds activations to bf16 (round to nearest even) and back.
pub(crate) fn round_through_bf16(x: &mut [f32]) {
    for v in x.iter_mut() {
        *v = bf16::from_f32(*v).to_f32();
    }
}

#[cfg(test)]
mod tests {
    use half::f16;

    use super::{axpy_f16, dot_f32, dot_f32_f16};

    /// Values spread over several binades, from a fixed linear congruential sequence.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let mut x = seed;
        (0..n)
            .map(|_| {
                x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                (f64::from(x >> 8) / f64::from(1u32 << 24) * 8.0 - 4.0) as f32
            })
            .collect()
    }

    #[test]
    fn f16_cache_reads_give_the_bits_of_widening_first() {
        // The SIMD bodies (where the CPU has them) against the same formulas on widened values.
        for n in [0usize, 1, 7, 8, 9, 16, 31, 64, 72, 128] {
            let a = values(n, 1);
            let b: Vec<f16> = values(n, 2).into_iter().map(f16::from_f32).collect();
            let wide: Vec<f32> = b.iter().map(|h| h.to_f32()).collect();
            assert_eq!(
                dot_f32_f16(&a, &b).to_bits(),
                dot_f32(&a, &wide).to_bits(),
                "dot, {n} values"
            );
            let (mut acc, mut want) = (values(n, 3), values(n, 3));
            axpy_f16(&mut acc, 0.3712, &b);
            for (w, &x) in want.iter_mut().zip(&wide) {
                *w += 0.3712 * x;
            }
            assert_eq!(acc, want, "axpy, {n} values");
        }
    }
}
