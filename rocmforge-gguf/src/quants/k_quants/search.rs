//! ggml's per-sub-block scale searches, used by the K-quant reference quantizers.
//!
//! Each takes the values `x` of one sub-block and writes its codes to `l`; they differ in the
//! code range and the error they minimise. The arithmetic order follows ggml's so that the same
//! codes come out.

use crate::quants::scalar::nearest_int;

/// Below this a group is treated as all zero (ggml's `GROUP_MAX_EPS`).
pub(crate) const GROUP_MAX_EPS: f32 = 1e-15;

/// Symmetric codes in `0..2·nmax` (value = scale·(code − nmax)) weighted by `qw` (x² when
/// `None`), trying 19 scales around `−nmax/max` and keeping the one with the best weighted fit
/// (ggml's `make_qx_quants` with `rmse_type = 1`). Returns the scale.
pub(crate) fn make_qx_quants(nmax: i32, x: &[f32], l: &mut [i8], qw: Option<&[f32]>) -> f32 {
    debug_assert!(x.len() <= 32, "sub-blocks have at most 32 values");
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    // `max`/`min` rather than `clamp`, whose range assertion keeps the loops scalar.
    let code = |iscale: f32, v: f32| nearest_int(iscale * v).max(-nmax).min(nmax - 1);
    let fit = |iscale: f32| {
        // The terms in a vectorizable pass, then their sums in ggml's order.
        let (mut lx, mut l2) = ([0.0f32; 32], [0.0f32; 32]);
        for (i, ((a, b), &v)) in lx.iter_mut().zip(&mut l2).zip(x).enumerate() {
            let q = code(iscale, v) as f32;
            let w = qw.map_or(v * v, |qw| qw[i]);
            *a = w * v * q;
            *b = w * q * q;
        }
        let n = x.len().min(32);
        let sumlx = lx[..n].iter().fold(0.0f32, |s, &t| s + t);
        let suml2 = l2[..n].iter().fold(0.0f32, |s, &t| s + t);
        (sumlx, suml2)
    };
    let mut iscale = -(nmax as f32) / max;
    for (li, &v) in l.iter_mut().zip(x) {
        *li = (code(iscale, v) + nmax) as i8;
    }
    let (sumlx, suml2) = fit(iscale);
    let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
    let mut best = scale * sumlx;
    for is in -9..=9 {
        if is == 0 {
            continue;
        }
        iscale = -(nmax as f32 + 0.1 * is as f32) / max;
        let (sumlx, suml2) = fit(iscale);
        if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
            for (li, &v) in l.iter_mut().zip(x) {
                *li = (code(iscale, v) + nmax) as i8;
            }
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    scale
}

/// Symmetric codes in `0..2·nmax` refined code by code to minimise the x²-weighted error
/// (ggml's `make_q3_quants` with `do_rmse`). Returns the scale. An all-zero group gets codes 0.
pub(super) fn make_q3_quants(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if v.abs() > amax {
            amax = v.abs();
            max = v;
        }
    }
    if amax < GROUP_MAX_EPS {
        l.fill(0);
        return 0.0;
    }
    let iscale = -(nmax as f32) / max;
    let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
    for (li, &v) in l.iter_mut().zip(x) {
        let q = nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        *li = q as i8;
        let w = v * v;
        sumlx += w * v * q as f32;
        suml2 += w * q as f32 * q as f32;
    }
    for _ in 0..5 {
        let mut changed = 0;
        for (li, &v) in l.iter_mut().zip(x) {
            let w = v * v;
            let old = f32::from(*li);
            let mut slx = sumlx - w * v * old;
            if slx > 0.0 {
                let mut sl2 = suml2 - w * old * old;
                let new_l = nearest_int(v * sl2 / slx).clamp(-nmax, nmax - 1);
                if new_l != i32::from(*li) {
                    slx += w * v * new_l as f32;
                    sl2 += w * new_l as f32 * new_l as f32;
                    if sl2 > 0.0 && slx * slx * suml2 > sumlx * sumlx * sl2 {
                        *li = new_l as i8;
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
    for li in l.iter_mut() {
        *li += nmax as i8;
    }
    if suml2 > 0.0 { sumlx / suml2 } else { 0.0 }
}

/// Search parameters of [`make_qkx2_quants`]: the scales tried are
/// `(nmax + rmin + rdelta·i) / (max − min)` for i in `0..=nstep`.
pub(crate) struct QkxSearch {
    pub nmax: i32,
    pub rmin: f32,
    pub rdelta: f32,
    pub nstep: i32,
    /// Minimise the weighted absolute error (else the weighted squared error).
    pub use_mad: bool,
}

/// Asymmetric codes in `0..=nmax` (value = scale·code − min), fitting scale and min by weighted
/// least squares over a range of trial scales (ggml's `make_qkx2_quants`).
///
/// Returns `(scale, min)` where `min ≥ 0` is the amount subtracted. `laux` is scratch of
/// `x.len()` codes.
pub(crate) fn make_qkx2_quants(
    p: &QkxSearch,
    x: &[f32],
    weights: &[f32],
    l: &mut [u8],
    laux: &mut [u8],
) -> (f32, f32) {
    debug_assert!(x.len() <= 32, "sub-blocks have at most 32 values");
    let nmax = p.nmax;
    let (mut min, mut max) = (x[0], x[0]);
    let mut sum_w = weights[0];
    let mut sum_x = sum_w * x[0];
    for (&v, &w) in x.iter().zip(weights).skip(1) {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
        sum_w += w;
        sum_x += w * v;
    }
    if min > 0.0 {
        min = 0.0;
    }
    if max == min {
        l.fill(0);
        return (0.0, -min);
    }
    let err = |scale: f32, min: f32, codes: &[u8]| {
        // The terms in a vectorizable pass, then their sum in ggml's order.
        let mut terms = [0.0f32; 32];
        for (((t, &q), &v), &w) in terms.iter_mut().zip(codes).zip(x).zip(weights) {
            let diff = scale * f32::from(q) + min - v;
            *t = w * if p.use_mad { diff.abs() } else { diff * diff };
        }
        terms[..codes.len().min(32)]
            .iter()
            .fold(0.0f32, |e, &t| e + t)
    };
    let mut iscale = nmax as f32 / (max - min);
    let mut scale = 1.0 / iscale;
    for (li, &v) in l.iter_mut().zip(x) {
        *li = nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
    }
    let mut best_error = err(scale, min, l);
    if p.nstep < 1 {
        return (scale, -min);
    }
    let mut wq = [0.0f32; 32];
    let mut qs = [0.0f32; 32];
    for is in 0..=p.nstep {
        iscale = (p.rmin + p.rdelta * is as f32 + nmax as f32) / (max - min);
        // The codes and weighted codes in one pass the compiler can vectorize (`max`/`min`
        // rather than `clamp`, whose range assertion keeps it scalar), then the sums in
        // ggml's order.
        for ((((la, q), wqi), &v), &w) in laux
            .iter_mut()
            .zip(&mut qs)
            .zip(&mut wq)
            .zip(x)
            .zip(weights)
        {
            let c = nearest_int(iscale * (v - min)).max(0).min(nmax);
            *la = c as u8;
            *q = c as f32;
            *wqi = w * *q;
        }
        let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
        for ((&wqi, &qf), &v) in wq.iter().zip(&qs).zip(x) {
            sum_l += wqi;
            sum_l2 += wqi * qf;
            sum_xl += wqi * v;
        }
        let det = sum_w * sum_l2 - sum_l * sum_l;
        if det > 0.0 {
            let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
            let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
            if this_min > 0.0 {
                this_min = 0.0;
                this_scale = sum_xl / sum_l2;
            }
            let cur_error = err(this_scale, this_min, laux);
            if cur_error < best_error {
                l.copy_from_slice(laux);
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    (scale, -min)
}
#[cfg(test)]
mod tests {
    use super::*;

    /// ggml's search as written there (and here before the vectorizable passes).
    fn reference(p: &QkxSearch, x: &[f32], weights: &[f32], l: &mut [u8]) -> (f32, f32) {
        let nmax = p.nmax;
        let mut laux = vec![0u8; x.len()];
        let (mut min, mut max) = (x[0], x[0]);
        let mut sum_w = weights[0];
        let mut sum_x = sum_w * x[0];
        for (&v, &w) in x.iter().zip(weights).skip(1) {
            min = if v < min { v } else { min };
            max = if v > max { v } else { max };
            sum_w += w;
            sum_x += w * v;
        }
        if min > 0.0 {
            min = 0.0;
        }
        if max == min {
            l.fill(0);
            return (0.0, -min);
        }
        let err = |scale: f32, min: f32, codes: &[u8]| {
            let mut e = 0.0f32;
            for ((&q, &v), &w) in codes.iter().zip(x).zip(weights) {
                let diff = scale * f32::from(q) + min - v;
                e += w * if p.use_mad { diff.abs() } else { diff * diff };
            }
            e
        };
        let mut iscale = nmax as f32 / (max - min);
        let mut scale = 1.0 / iscale;
        for (li, &v) in l.iter_mut().zip(x) {
            *li = nearest_int(iscale * (v - min)).clamp(0, nmax) as u8;
        }
        let mut best_error = err(scale, min, l);
        for is in 0..=p.nstep {
            iscale = (p.rmin + p.rdelta * is as f32 + nmax as f32) / (max - min);
            let (mut sum_l, mut sum_l2, mut sum_xl) = (0.0f32, 0.0f32, 0.0f32);
            for ((la, &v), &w) in laux.iter_mut().zip(x).zip(weights) {
                let q = nearest_int(iscale * (v - min)).clamp(0, nmax);
                *la = q as u8;
                let qf = q as f32;
                sum_l += w * qf;
                sum_l2 += w * qf * qf;
                sum_xl += w * qf * v;
            }
            let det = sum_w * sum_l2 - sum_l * sum_l;
            if det > 0.0 {
                let mut this_scale = (sum_w * sum_xl - sum_x * sum_l) / det;
                let mut this_min = (sum_l2 * sum_x - sum_l * sum_xl) / det;
                if this_min > 0.0 {
                    this_min = 0.0;
                    this_scale = sum_xl / sum_l2;
                }
                let cur_error = err(this_scale, this_min, &laux);
                if cur_error < best_error {
                    l.copy_from_slice(&laux);
                    best_error = cur_error;
                    scale = this_scale;
                    min = this_min;
                }
            }
        }
        (scale, -min)
    }

    /// ggml's `make_qx_quants` (rmse_type 1, no importance weights) as written there.
    fn reference_qx(nmax: i32, x: &[f32], l: &mut [i8]) -> f32 {
        let (mut amax, mut max) = (0.0f32, 0.0f32);
        for &v in x {
            if v.abs() > amax {
                amax = v.abs();
                max = v;
            }
        }
        if amax < GROUP_MAX_EPS {
            l.fill(0);
            return 0.0;
        }
        let code = |iscale: f32, v: f32| nearest_int(iscale * v).clamp(-nmax, nmax - 1);
        let fit = |iscale: f32| {
            let (mut sumlx, mut suml2) = (0.0f32, 0.0f32);
            for &v in x {
                let q = code(iscale, v) as f32;
                let w = v * v;
                sumlx += w * v * q;
                suml2 += w * q * q;
            }
            (sumlx, suml2)
        };
        let mut iscale = -(nmax as f32) / max;
        for (li, &v) in l.iter_mut().zip(x) {
            *li = (code(iscale, v) + nmax) as i8;
        }
        let (sumlx, suml2) = fit(iscale);
        let mut scale = if suml2 != 0.0 { sumlx / suml2 } else { 0.0 };
        let mut best = scale * sumlx;
        for is in -9..=9 {
            if is == 0 {
                continue;
            }
            iscale = -(nmax as f32 + 0.1 * is as f32) / max;
            let (sumlx, suml2) = fit(iscale);
            if suml2 > 0.0 && sumlx * sumlx > best * suml2 {
                for (li, &v) in l.iter_mut().zip(x) {
                    *li = (code(iscale, v) + nmax) as i8;
                }
                scale = sumlx / suml2;
                best = scale * sumlx;
            }
        }
        scale
    }

    #[test]
    fn qx_search_gives_the_reference_bits() {
        let mut state = 0x0fed_cba9_8765_4321u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        for case in 0..40_000 {
            let scale = [1e-3f32, 0.02, 1.0, 300.0][case % 4];
            let shift = [0.0f32, 0.1, -0.3][(case / 4) % 3];
            let x: Vec<f32> = (0..16).map(|_| (next() - 0.5 + shift) * scale).collect();
            let (mut a, mut b) = ([0i8; 16], [0i8; 16]);
            let fast = make_qx_quants(32, &x, &mut a, None);
            let slow = reference_qx(32, &x, &mut b);
            assert_eq!(fast.to_bits(), slow.to_bits(), "{x:?}");
            assert_eq!(a, b, "{x:?}");
        }
    }

    #[test]
    fn vectorizable_passes_give_the_reference_bits() {
        let searches = [
            (
                QkxSearch {
                    nmax: 15,
                    rmin: -1.0,
                    rdelta: 0.1,
                    nstep: 20,
                    use_mad: false,
                },
                32,
            ),
            (
                QkxSearch {
                    nmax: 31,
                    rmin: -0.5,
                    rdelta: 0.1,
                    nstep: 15,
                    use_mad: false,
                },
                32,
            ),
            (
                QkxSearch {
                    nmax: 3,
                    rmin: -0.5,
                    rdelta: 0.1,
                    nstep: 15,
                    use_mad: true,
                },
                16,
            ),
        ];
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        };
        for (p, len) in &searches {
            for case in 0..20_000 {
                let scale = [1e-3f32, 0.02, 1.0, 300.0][case % 4];
                let shift = [0.0f32, 0.0, 0.3, -0.45][(case / 4) % 4];
                let x: Vec<f32> = (0..*len).map(|_| (next() - 0.5 + shift) * scale).collect();
                let mean_sq = x.iter().map(|v| v * v).sum::<f32>() / *len as f32;
                let weights: Vec<f32> = x.iter().map(|v| mean_sq.sqrt() + v.abs()).collect();
                let (mut a, mut b, mut aux) = (vec![0u8; *len], vec![0u8; *len], vec![0u8; *len]);
                let fast = make_qkx2_quants(p, &x, &weights, &mut a, &mut aux);
                let slow = reference(p, &x, &weights, &mut b);
                assert_eq!(
                    (fast.0.to_bits(), fast.1.to_bits()),
                    (slow.0.to_bits(), slow.1.to_bits()),
                    "{x:?}"
                );
                assert_eq!(a, b, "{x:?}");
            }
        }
    }
}
