//! Q6_K (210 bytes per 256 values): `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`.
//!
//! Sixteen sub-blocks of 16 values with signed 8-bit scales; value = d·scale·(q − 32). Element
//! e = 128·h + 32·k + l has its low 4 bits in `ql[64·h + l + 32·(k % 2)]` (low nibble for k < 2,
//! high nibble otherwise) and its high 2 bits at bits 2k of `qh[32·h + l]`.

use super::QK_K;
use super::search::{GROUP_MAX_EPS, make_qx_quants};
use crate::quants::scalar::{f16_at, nearest_int, put_f16};

const BLOCK_BYTES: usize = 210;

pub(crate) fn dequant(data: &[u8], out: &mut [f32]) {
    for (b, y) in data
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK_K))
    {
        let (ql, qh, sc) = (&b[0..128], &b[128..192], &b[192..208]);
        let d = f16_at(b, 208);
        for h in 0..2 {
            let (ql, qh) = (&ql[64 * h..64 * h + 64], &qh[32 * h..32 * h + 32]);
            let yh = &mut y[128 * h..128 * h + 128];
            for l in 0..32 {
                let codes = [
                    (ql[l] & 0x0f) | ((qh[l] & 3) << 4),
                    (ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4),
                    (ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4),
                    (ql[l + 32] >> 4) | ((qh[l] >> 6) << 4),
                ];
                for (k, code) in codes.into_iter().enumerate() {
                    let e = 32 * k + l;
                    let scale = f32::from(sc[8 * h + e / 16] as i8);
                    yh[e] = d * scale * f32::from(code as i8 - 32);
                }
            }
        }
    }
}

pub(crate) fn quant(src: &[f32], out: &mut [u8]) {
    for (x, b) in src
        .chunks_exact(QK_K)
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        quant_block(x, None, b);
    }
}

/// Q6_K with importance weights: `qw` holds one weight per value of `src` (whole rows); each
/// 16-value fit is weighted by them directly (ggml's `quantize_row_q6_K_impl`).
pub(crate) fn quant_weighted(src: &[f32], qw: &[f32], out: &mut [u8]) {
    for ((x, w), b) in src
        .chunks_exact(QK_K)
        .zip(qw.chunks_exact(QK_K))
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        quant_block(x, Some(w), b);
    }
}

/// One block; sub-block fits weighted by `qw` (x² when `None`).
fn quant_block(x: &[f32], qw: Option<&[f32]>, b: &mut [u8]) {
    let mut l = [0i8; QK_K];
    let mut scales = [0.0f32; 16];
    let (mut max_scale, mut max_abs_scale) = (0.0f32, 0.0f32);
    for ib in 0..16 {
        let s = make_qx_quants(
            32,
            &x[16 * ib..16 * ib + 16],
            &mut l[16 * ib..][..16],
            qw.map(|w| &w[16 * ib..16 * ib + 16]),
        );
        scales[ib] = s;
        if s.abs() > max_abs_scale {
            max_abs_scale = s.abs();
            max_scale = s;
        }
    }
    if max_abs_scale < GROUP_MAX_EPS {
        b.fill(0);
        return;
    }
    let iscale = -128.0 / max_scale;
    put_f16(b, 208, 1.0 / iscale);
    let mut sc = [0i8; 16];
    for (o, &s) in sc.iter_mut().zip(&scales) {
        *o = nearest_int(iscale * s).min(127) as i8;
    }
    let d_all = f16_at(b, 208);
    for j in 0..16 {
        let d = d_all * f32::from(sc[j]);
        if d == 0.0 {
            continue;
        }
        for i in 0..16 {
            l[16 * j + i] = (nearest_int(x[16 * j + i] / d).clamp(-32, 31) + 32) as i8;
        }
    }
    for h in 0..2 {
        for i in 0..32 {
            let q = |k: usize| l[128 * h + 32 * k + i] as u8;
            b[64 * h + i] = (q(0) & 0x0f) | ((q(2) & 0x0f) << 4);
            b[64 * h + 32 + i] = (q(1) & 0x0f) | ((q(3) & 0x0f) << 4);
            b[128 + 32 * h + i] =
                (q(0) >> 4) | ((q(1) >> 4) << 2) | ((q(2) >> 4) << 4) | ((q(3) >> 4) << 6);
        }
    }
    for (o, s) in b[192..208].iter_mut().zip(sc) {
        *o = s as u8;
    }
}
