//! What the K-quants' importance-weighted quantizers share (ggml's `quantize_row_*_impl` with
//! `quant_weights`): the per-value weights made of an importance matrix row, and the search that
//! quantizes a block's sub-block scales to 6 bits (`make_qp_quants`).

use crate::quants::scalar::nearest_int;

use super::search::GROUP_MAX_EPS;

/// `Σ x²` of `x`, summed in order.
pub(crate) fn sum_sq(x: &[f32]) -> f32 {
    x.iter().fold(0.0f32, |a, v| a + v * v)
}

/// The weight of each value of `x`: its importance `qw` times `√(sigma2 + x²)` (the form every
/// weighted quantizer of ggml uses). Writes `x.len()` weights to `out` and returns their sum.
pub(crate) fn importance_weights(qw: &[f32], x: &[f32], sigma2: f32, out: &mut [f32]) -> f32 {
    for ((o, &w), &v) in out.iter_mut().zip(qw).zip(x) {
        *o = w * (sigma2 + v * v).sqrt();
    }
    out[..x.len()].iter().fold(0.0f32, |a, &w| a + w)
}

/// Non-negative codes in `0..=nmax` for the values `x` (sub-block scales or mins) with one
/// scale, minimising the `qw`-weighted squared error: 9 trial scales around `nmax/max`, then
/// up to 5 rounds of moving single codes (ggml's `make_qp_quants`). Returns the scale; an
/// all-zero group gets codes 0 and scale 0.
pub(super) fn make_qp_quants(nmax: i32, x: &[f32], l: &mut [u8], qw: &[f32]) -> f32 {
    let max = x.iter().fold(0.0f32, |m, &v| if v > m { v } else { m });
    if max < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let mut iscale = nmax as f32 / max;
    let scale = 1.0 / iscale;
    let mut best_mse = 0.0f32;
    for (&v, &w) in x.iter().zip(qw) {
        // Stored in a byte there before this use: a negative code wraps.
        let diff = v - scale * f32::from(nearest_int(iscale * v) as u8);
        best_mse += w * diff * diff;
    }
    for is in -4..=4 {
        if is == 0 {
            continue;
        }
        let iscale_is = (0.1 * is as f32 + nmax as f32) / max;
        let scale_is = 1.0 / iscale_is;
        let mut mse = 0.0f32;
        for (&v, &w) in x.iter().zip(qw) {
            let q = nearest_int(iscale_is * v).min(nmax);
            let diff = v - scale_is * q as f32;
            mse += w * diff * diff;
        }
        if mse < best_mse {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    // Codes as ints (ggml keeps them in bytes and reads them back as such: a negative code
    // wraps, as it does there).
    let mut li = [0i32; 32];
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for ((c, &v), &w) in li.iter_mut().zip(x).zip(qw) {
        let q = nearest_int(iscale * v).min(nmax);
        *c = i32::from(q as u8);
        sumlx += w * v * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    let n = x.len().min(32);
    for _ in 0..5 {
        let mut changed = 0;
        for ((c, &v), &w) in li[..n].iter_mut().zip(x).zip(qw) {
            let old = *c as f32;
            let mut slx = sumlx - w * v * old;
            let mut sl2 = suml2 - w * old * old;
            if slx > 0.0 && sl2 > 0.0 {
                let new_l = nearest_int(v * sl2 / slx).min(nmax);
                if new_l != *c {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *c = i32::from(new_l as u8);
                        sumlx = slx;
                        suml2 = sl2;
                        changed += 1;
                    }
                }
            }
        }
        if changed == 0 {
            break;
        }
    }
    for (o, &c) in l.iter_mut().zip(&li[..n]) {
        *o = c as u8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qp_codes_reproduce_a_grid_exactly() {
        // Values on a grid of step 0.5 (0..=63 codes): the fit returns that step.
        let x: Vec<f32> = (0..8).map(|i| 0.5 * (i * 9) as f32).collect();
        let w = [1.0f32; 8];
        let mut l = [0u8; 8];
        let d = make_qp_quants(63, &x, &mut l, &w);
        assert!((d - 0.5).abs() < 1e-6, "{d}");
        assert_eq!(l, [0, 9, 18, 27, 36, 45, 54, 63]);
        let mut z = [7u8; 4];
        assert_eq!(make_qp_quants(63, &[0.0; 4], &mut z, &w[..4]), 0.0);
        assert_eq!(z, [0; 4]);
    }
}
