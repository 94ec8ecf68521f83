//! AVX2 + F16C kernel for F16 rows: eight halves widened per instruction, multiplied with
//! the f32 activations (already rounded through f16, as ggml converts them) of up to
//! `TILE` tokens, two f32 accumulators per token.

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
