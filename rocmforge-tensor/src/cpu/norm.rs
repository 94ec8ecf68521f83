//! Row normalisations: RMS norm and layer norm, as ggml computes them.

use rayon::prelude::*;

/// Rows per rayon task; norms of a single decode row stay on the calling thread.
const PAR_MIN_ELEMS: usize = 1 << 15;

/// RMS norm of each row of `x` (`[rows][weight.len()]`), times `weight`, into `out`.
///
/// Like ggml: the sum of squares is accumulated in f64 (each square taken in f32), the
/// mean and `1/sqrt(mean + eps)` in f32, then `out = (x * scale) * weight`.
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let n = weight.len();
    if n == 0 {
        return;
    }
    let one_row = |(xr, yr): (&[f32], &mut [f32])| {
        let sum: f64 = xr.iter().map(|&v| f64::from(v * v)).sum();
        let mean = (sum / n as f64) as f32;
        let s = 1.0 / (mean + eps).sqrt();
        for ((y, &v), &w) in yr.iter_mut().zip(xr).zip(weight) {
            *y = (v * s) * w;
        }
    };
    if x.len() >= PAR_MIN_ELEMS {
        x.par_chunks_exact(n)
            .zip(out.par_chunks_exact_mut(n))
            .for_each(one_row);
    } else {
        x.chunks_exact(n)
            .zip(out.chunks_exact_mut(n))
            .for_each(one_row);
    }
}

/// Layer norm of each row of `x` (`[rows][weight.len()]`): `(x - mean) / sqrt(var + eps)`,
/// times `weight`, plus `bias` when given.
///
/// Like ggml: mean and variance are accumulated in f64, the centred values and the scale
/// in f32.
pub fn layer_norm(x: &[f32], weight: &[f32], bias: Option<&[f32]>, eps: f32, out: &mut [f32]) {
    let n = weight.len();
    if n == 0 {
        return;
    }
    let one_row = |(xr, yr): (&[f32], &mut [f32])| {
        let sum: f64 = xr.iter().map(|&v| f64::from(v)).sum();
        let mean = (sum / n as f64) as f32;
        let mut sum2 = 0.0f64;
        for (y, &v) in yr.iter_mut().zip(xr) {
            let c = v - mean;
            *y = c;
            sum2 += f64::from(c * c);
        }
        let variance = (sum2 / n as f64) as f32;
        let s = 1.0 / (variance + eps).sqrt();
        for (y, &w) in yr.iter_mut().zip(weight) {
            *y = (*y * s) * w;
        }
        if let Some(b) = bias {
            for (y, &bv) in yr.iter_mut().zip(b) {
                *y += bv;
            }
        }
    };
    if x.len() >= PAR_MIN_ELEMS {
        x.par_chunks_exact(n)
            .zip(out.par_chunks_exact_mut(n))
            .for_each(one_row);
    } else {
        x.chunks_exact(n)
            .zip(out.chunks_exact_mut(n))
            .for_each(one_row);
    }
}
