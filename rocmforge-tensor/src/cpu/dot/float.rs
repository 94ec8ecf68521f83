//! Float weights (F32, F16, BF16): row conversion and the f32 dot product.

use half::slice::HalfFloatSliceExt;
use half::{bf16, f16};

/// Dot product with eight f32 accumulator lanes (the shape ggml's SIMD `vec_dot` uses;
/// the compiler turns the lanes into vector registers).
pub(crate) fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    dot_lanes(a, b, |x| x)
}

/// [`dot_f32`] of each of the `N` vectors `a` (of one length) with f16 values widened to f32
/// (an f16 KV cache read in place, one key against several query heads): the same operations
/// in the same order, so for each the bits of widening `b` first and taking one [`dot_f32`].
pub(crate) fn dot_f32_f16<const N: usize>(a: [&[f32]; N], b: &[f16]) -> [f32; N] {
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = super::avx2::Avx2::detect() {
        return super::avx2::dot_f32_f16(isa, a, b);
    }
    a.map(|a| dot_lanes(a, b, f16::to_f32))
}

/// `acc[j][i] += w[j] * x[i]` for f16 `x` widened to f32 (a multiply, then an add), for each
/// of the `N` accumulators.
pub(crate) fn axpy_f16<const N: usize>(acc: [&mut [f32]; N], w: [f32; N], x: &[f16]) {
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = super::avx2::Avx2::detect() {
        return super::avx2::axpy_f16(isa, acc, w, x);
    }
    for (acc, w) in acc.into_iter().zip(w) {
        for (a, &v) in acc.iter_mut().zip(x) {
            *a += w * v.to_f32();
        }
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
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = super::avx2::Avx2::detect() {
        return super::avx2::round_through_f16(isa, x);
    }
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
    fn rounding_through_f16_gives_halfs_bits() {
        let mut x = values(1000, 7);
        x.extend([
            0.0,
            -0.0,
            1e-8,
            -6.1e-5,
            65504.0,
            65520.0,
            1e9,
            -1e9,
            f32::INFINITY,
            f32::NEG_INFINITY,
            2049.0,
            2051.0,
        ]);
        for v in x.iter_mut().step_by(3) {
            *v *= 1e-4;
        }
        let want: Vec<u32> = x
            .iter()
            .map(|&v| f16::from_f32(v).to_f32().to_bits())
            .collect();
        super::round_through_f16(&mut x);
        let got: Vec<u32> = x.iter().map(|v| v.to_bits()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn f16_cache_reads_give_the_bits_of_widening_first() {
        // The SIMD bodies (where the CPU has them) against the same formulas on widened values.
        for n in [0usize, 1, 7, 8, 9, 16, 31, 64, 72, 128] {
            let a = values(n, 1);
            let b: Vec<f16> = values(n, 2).into_iter().map(f16::from_f32).collect();
            let wide: Vec<f32> = b.iter().map(|h| h.to_f32()).collect();
            let [d] = dot_f32_f16([&a[..]], &b);
            assert_eq!(d.to_bits(), dot_f32(&a, &wide).to_bits(), "dot, {n} values");
            // Three vectors against one `b`: each the bits of its own dot.
            let (a2, a3) = (values(n, 4), values(n, 5));
            let three = dot_f32_f16([&a[..], &a2, &a3], &b);
            for (got, x) in three.iter().zip([&a, &a2, &a3]) {
                assert_eq!(got.to_bits(), dot_f32(x, &wide).to_bits(), "dot of 3, {n}");
            }
            let (mut acc, mut want) = (values(n, 3), values(n, 3));
            axpy_f16([&mut acc[..]], [0.3712], &b);
            for (w, &x) in want.iter_mut().zip(&wide) {
                *w += 0.3712 * x;
            }
            assert_eq!(acc, want, "axpy, {n} values");
            let (mut acc2, mut want2) = (values(n, 6), values(n, 6));
            axpy_f16([&mut acc[..], &mut acc2[..]], [-1.25, 0.5], &b);
            for ((w, w2), &x) in want.iter_mut().zip(want2.iter_mut()).zip(&wide) {
                *w += -1.25 * x;
                *w2 += 0.5 * x;
            }
            assert_eq!((&acc, &acc2), (&want, &want2), "axpy of 2, {n} values");
        }
    }
}
