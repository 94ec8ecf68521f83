//! Q2_K (84 bytes per 256 values): `scales: [u8; 16], qs: [u8; 64], d: f16, dmin: f16`.
//!
//! Sixteen sub-blocks of 16 values; scale byte g holds the 4-bit scale (low nibble) and 4-bit min
//! (high nibble) of sub-block g. Value e = d·scale·q − dmin·min, with the 2-bit code q of element
//! e = 128·h + 32·k + l at bits 2k of `qs[32·h + l]`.

use super::q4_k::weighted_search;
use super::search::{QkxSearch, make_qkx2_quants};
use super::weighted::{importance_weights, make_qp_quants, sum_sq};
use super::{QK_K, pack_2bit};
use crate::quants::scalar::{f16_at, nearest_int, put_f16};

const BLOCK_BYTES: usize = 84;

pub(crate) fn dequant(data: &[u8], out: &mut [f32]) {
    for (b, y) in data
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK_K))
    {
        let (scales, qs) = (&b[0..16], &b[16..80]);
        let (d, dmin) = (f16_at(b, 80), f16_at(b, 82));
        for (g, yg) in y.chunks_exact_mut(16).enumerate() {
            let dl = d * f32::from(scales[g] & 0x0f);
            let ml = dmin * f32::from(scales[g] >> 4);
            let (h, shift, half) = (g / 8, 2 * ((g % 8) / 2), g % 2);
            let q = &qs[32 * h + 16 * half..][..16];
            for (yi, &qi) in yg.iter_mut().zip(q) {
                *yi = dl * f32::from((qi >> shift) & 3) - ml;
            }
        }
    }
}

pub(crate) fn quant(src: &[f32], out: &mut [u8]) {
    let search = QkxSearch {
        nmax: 3,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: true,
    };
    for (x, b) in src
        .chunks_exact(QK_K)
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        let mut l = [0u8; QK_K];
        let mut laux = [0u8; 16];
        let mut weights = [0.0f32; 16];
        let mut scales = [0.0f32; 16];
        let mut mins = [0.0f32; 16];
        let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            for (w, v) in weights.iter_mut().zip(xs) {
                *w = v.abs();
            }
            let (s, m) = make_qkx2_quants(&search, xs, &weights, &mut l[16 * j..][..16], &mut laux);
            scales[j] = s;
            mins[j] = m;
            if s > max_scale {
                max_scale = s;
            }
            if m > max_min {
                max_min = m;
            }
        }
        let mut sc = [0u8; 16];
        if max_scale > 0.0 {
            let iscale = 15.0 / max_scale;
            for (o, &s) in sc.iter_mut().zip(&scales) {
                *o = nearest_int(iscale * s) as u8;
            }
            put_f16(b, 80, max_scale / 15.0);
        } else {
            put_f16(b, 80, 0.0);
        }
        if max_min > 0.0 {
            let iscale = 15.0 / max_min;
            for (o, &m) in sc.iter_mut().zip(&mins) {
                *o |= (nearest_int(iscale * m) as u8) << 4;
            }
            put_f16(b, 82, max_min / 15.0);
        } else {
            put_f16(b, 82, 0.0);
        }
        let (d_all, m_all) = (f16_at(b, 80), f16_at(b, 82));
        for j in 0..16 {
            let d = d_all * f32::from(sc[j] & 0x0f);
            if d == 0.0 {
                continue;
            }
            let dm = m_all * f32::from(sc[j] >> 4);
            for i in 0..16 {
                l[16 * j + i] = nearest_int((x[16 * j + i] + dm) / d).clamp(0, 3) as u8;
            }
        }
        b[0..16].copy_from_slice(&sc);
        pack_2bit(&l, &mut b[16..80]);
    }
}

/// Q2_K with importance weights: `qw` holds one weight per value of `src` (whole rows). Each
/// 16-value fit is weighted by `qw·√(σ² + x²)` (σ² = mean x² of the block) and the 4-bit
/// scales and mins are fitted by a weighted search (ggml's `quantize_row_q2_K_impl`).
pub(crate) fn quant_weighted(src: &[f32], qw: &[f32], out: &mut [u8]) {
    let search = weighted_search(3);
    for ((x, qw), b) in src
        .chunks_exact(QK_K)
        .zip(qw.chunks_exact(QK_K))
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        let sigma2 = sum_sq(x) / QK_K as f32;
        let mut l = [0u8; QK_K];
        let mut laux = [0u8; 16];
        let mut weights = [0.0f32; 16];
        let (mut scales, mut mins, mut sw) = ([0.0f32; 16], [0.0f32; 16], [0.0f32; 16]);
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            sw[j] = importance_weights(&qw[16 * j..16 * j + 16], xs, sigma2, &mut weights);
            let (s, m) = make_qkx2_quants(&search, xs, &weights, &mut l[16 * j..][..16], &mut laux);
            scales[j] = s;
            mins[j] = m;
        }
        let (mut ls, mut lm) = ([0u8; 16], [0u8; 16]);
        let dm = make_qp_quants(15, &scales, &mut ls, &sw);
        let mm = make_qp_quants(15, &mins, &mut lm, &sw);
        put_f16(b, 80, dm);
        put_f16(b, 82, mm);
        let (d_all, m_all) = (f16_at(b, 80), f16_at(b, 82));
        let mut sc = [0u8; 16];
        for ((o, &s), &m) in sc.iter_mut().zip(&ls).zip(&lm) {
            *o = s | (m << 4);
        }
        for j in 0..16 {
            let d = d_all * f32::from(sc[j] & 0x0f);
            if d == 0.0 {
                continue;
            }
            let m = m_all * f32::from(sc[j] >> 4);
            for i in 0..16 {
                l[16 * j + i] = nearest_int((x[16 * j + i] + m) / d).clamp(0, 3) as u8;
            }
        }
        b[0..16].copy_from_slice(&sc);
        pack_2bit(&l, &mut b[16..80]);
    }
}
