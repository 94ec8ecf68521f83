//! AVX2 + F16C kernel for F16 rows: eight halves widened per instruction, multiplied with
//! the f32 activations (already rounded through f16, as ggml converts them) of up to
//! `TILE` tokens, two f32 accumulators per token; and the f16 KV cache's dot product and
//! weighted sum in the portable path's order (`dot/float.rs`).

use std::arch::x86_64::*;

use super::{TILE, hsum_ps};

/// See [`super::f16_row`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn row(row: &[u8], act: &[f32], cols: usize, t0: usize, out: &mut [f32]) {
    for (i, chunk) in out.chunks_mut(TILE).enumerate() {
        let t = t0 + i * TILE;
        match chunk.len() {
            4 => tile::<4>(row, act, cols, t, chunk),
            3 => tile::<3>(row, act, cols, t, chunk),
            2 => tile::<2>(row, act, cols, t, chunk),
            _ => tile::<1>(row, act, cols, t, chunk),
        }
    }
}

/// Eight halves at the start of `b` widened to f32.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn halves8(b: &[u8]) -> __m256 {
    let b = &b[..16];
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(b.as_ptr().cast()) })
}

/// Eight f32 at the start of `x`.
#[target_feature(enable = "avx2")]
#[inline]
fn floats8(x: &[f32]) -> __m256 {
    let x = &x[..8];
    // SAFETY: `x` is 8 readable f32; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_ps(x.as_ptr()) }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn tile<const N: usize>(row: &[u8], act: &[f32], cols: usize, t0: usize, out: &mut [f32]) {
    let xs: [&[f32]; N] = std::array::from_fn(|j| &act[(t0 + j) * cols..(t0 + j + 1) * cols]);
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    let main = cols / 16 * 16;
    for c in (0..main).step_by(16) {
        let w0 = halves8(&row[2 * c..]);
        let w1 = halves8(&row[2 * c + 16..]);
        for j in 0..N {
            acc[j][0] = _mm256_fmadd_ps(w0, floats8(&xs[j][c..]), acc[j][0]);
            acc[j][1] = _mm256_fmadd_ps(w1, floats8(&xs[j][c + 8..]), acc[j][1]);
        }
    }
    for j in 0..N {
        let mut s = hsum_ps(_mm256_add_ps(acc[j][0], acc[j][1]));
        for c in main..cols {
            let h = half::f16::from_le_bytes([row[2 * c], row[2 * c + 1]]).to_f32();
            s += h * xs[j][c];
        }
        out[j] = s;
    }
}

/// Eight f16 at the start of `b` widened to f32.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn f16x8(b: &[half::f16]) -> __m256 {
    let b = &b[..8];
    // SAFETY: `b` is 8 readable f16 (16 bytes); `loadu` has no alignment requirement.
    _mm256_cvtph_ps(unsafe { _mm_loadu_si128(b.as_ptr().cast()) })
}

/// `dot_lanes` of `dot/float.rs` for f16 `b` against each of the `N` vectors `a` (of one
/// length): eight lanes of multiply-then-add per vector, the same lane sums and tail, each
/// `b` chunk widened once for all of them — every result the bits of the one-vector dot.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn dot_f16<const N: usize>(a: [&[f32]; N], b: &[half::f16]) -> [f32; N] {
    let n = a.iter().fold(b.len(), |n, x| n.min(x.len()));
    let main = n / 8 * 8;
    let mut acc = [_mm256_setzero_ps(); N];
    for c in (0..main).step_by(8) {
        let bv = f16x8(&b[c..]);
        for j in 0..N {
            acc[j] = _mm256_add_ps(acc[j], _mm256_mul_ps(floats8(&a[j][c..]), bv));
        }
    }
    let mut out = [0.0f32; N];
    for j in 0..N {
        // [0 + 4, 1 + 5, 2 + 6, 3 + 7], then (0 + 1) and (2 + 3) of those, then their sum.
        let q = _mm_add_ps(
            _mm256_castps256_ps128(acc[j]),
            _mm256_extractf128_ps::<1>(acc[j]),
        );
        let h = _mm_hadd_ps(q, q);
        let s = _mm_cvtss_f32(_mm_add_ss(h, _mm_movehdup_ps(h)));
        let mut tail = 0.0f32;
        for (x, y) in a[j][main..n].iter().zip(&b[main..n]) {
            tail += x * y.to_f32();
        }
        out[j] = s + tail;
    }
    out
}

/// Each value rounded to f16 (to nearest, ties to even) and back, eight at a time with
/// F16C: the bits of `half`'s conversion, which is the same IEEE rounding.
#[target_feature(enable = "avx2,f16c")]
pub(super) fn round_through_f16(x: &mut [f32]) {
    let mut chunks = x.chunks_exact_mut(8);
    for c in &mut chunks {
        let v = floats8(c);
        let r = _mm256_cvtph_ps(_mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v));
        // SAFETY: `c` is 8 writable f32; `storeu` has no alignment requirement.
        unsafe { _mm256_storeu_ps(c.as_mut_ptr(), r) };
    }
    for v in chunks.into_remainder() {
        *v = half::f16::from_f32(*v).to_f32();
    }
}

/// `acc[j][i] += w[j] * x[i]` for each of the `N` accumulators (of one length), multiply
/// then add, eight lanes at a time, each `x` chunk widened once for all of them.
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn axpy<const N: usize>(acc: [&mut [f32]; N], w: [f32; N], x: &[half::f16]) {
    let n = acc.iter().fold(x.len(), |n, a| n.min(a.len()));
    let main = n / 8 * 8;
    let wv: [__m256; N] = std::array::from_fn(|j| _mm256_set1_ps(w[j]));
    for c in (0..main).step_by(8) {
        let xv = f16x8(&x[c..]);
        for j in 0..N {
            let a = &mut acc[j][c..c + 8];
            let v = _mm256_add_ps(floats8(a), _mm256_mul_ps(wv[j], xv));
            // SAFETY: `a` is 8 writable f32; `storeu` has no alignment requirement.
            unsafe { _mm256_storeu_ps(a.as_mut_ptr(), v) };
        }
    }
    for (a, w) in acc.into_iter().zip(w) {
        for (a, v) in a[main..n].iter_mut().zip(&x[main..n]) {
            *a += w * v.to_f32();
        }
    }
}
