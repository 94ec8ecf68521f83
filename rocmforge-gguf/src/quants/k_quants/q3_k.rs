//! Q3_K (110 bytes per 256 values): `hmask: [u8; 32], qs: [u8; 64], scales: [u8; 12], d: f16`.
//!
//! Sixteen sub-blocks of 16 values with signed 6-bit scales (see [`q3_k_scales`]). Element
//! e = 128·h + 32·k + l has its low 2 bits at bits 2k of `qs[32·h + l]` and its high bit at bit
//! e / 32 of `hmask[l]`; value = d·scale·(low − (high ? 0 : 4)).

use super::search::{make_q3_quants, make_qx_quants};
use super::weighted::{importance_weights, sum_sq};
use super::{QK_K, pack_2bit, q3_k_scales};
use crate::quants::scalar::{f16_at, nearest_int, put_f16};

const BLOCK_BYTES: usize = 110;

fn scale_bytes(b: &[u8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    s.copy_from_slice(&b[96..108]);
    s
}

pub(crate) fn dequant(data: &[u8], out: &mut [f32]) {
    for (b, y) in data
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK_K))
    {
        let (hmask, qs) = (&b[0..32], &b[32..96]);
        let scales = q3_k_scales(&scale_bytes(b));
        let d_all = f16_at(b, 108);
        for (g, yg) in y.chunks_exact_mut(16).enumerate() {
            let dl = d_all * f32::from(scales[g]);
            let (h, k, half) = (g / 8, (g % 8) / 2, g % 2);
            let m = 1u8 << (4 * h + k);
            for (i, yi) in yg.iter_mut().enumerate() {
                let l = 16 * half + i;
                let low = ((qs[32 * h + l] >> (2 * k)) & 3) as i8;
                let q = low - if hmask[l] & m != 0 { 0 } else { 4 };
                *yi = dl * f32::from(q);
            }
        }
    }
}

pub(crate) fn quant(src: &[f32], out: &mut [u8]) {
    for (x, b) in src
        .chunks_exact(QK_K)
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; 16];
        let (mut max_scale, mut amax) = (0.0f32, 0.0f32);
        for j in 0..16 {
            scales[j] = make_q3_quants(4, &x[16 * j..16 * j + 16], &mut l[16 * j..][..16]);
            if scales[j].abs() > amax {
                amax = scales[j].abs();
                max_scale = scales[j];
            }
        }
        let mut packed = [0u8; 12];
        if max_scale != 0.0 {
            let iscale = -32.0 / max_scale;
            for (j, &s) in scales.iter().enumerate() {
                let q = (nearest_int(iscale * s) as i8).clamp(-32, 31) + 32;
                let q = q as u8;
                if j < 8 {
                    packed[j] = q & 0x0f;
                } else {
                    packed[j - 8] |= (q & 0x0f) << 4;
                }
                packed[8 + j % 4] |= (q >> 4) << (2 * (j / 4));
            }
            put_f16(b, 108, 1.0 / iscale);
        } else {
            put_f16(b, 108, 0.0);
        }
        finish_block(x, l, &packed, b);
    }
}

/// Q3_K with importance weights: `qw` holds one weight per value of `src` (whole rows). Each
/// 16-value fit is weighted by `qw·√(σ² + x²)` and the 16 scales are fitted to 6 bits weighted
/// by their sub-blocks' total weight (ggml's `quantize_row_q3_K_impl`).
pub(crate) fn quant_weighted(src: &[f32], qw: &[f32], out: &mut [u8]) {
    for ((x, qw), b) in src
        .chunks_exact(QK_K)
        .zip(qw.chunks_exact(QK_K))
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        let sigma2 = 2.0 * sum_sq(x) / QK_K as f32;
        let mut l = [0i8; QK_K];
        let mut scales = [0.0f32; 16];
        let mut sw = [0.0f32; 16];
        let mut weights = [0.0f32; 16];
        for j in 0..16 {
            let xs = &x[16 * j..16 * j + 16];
            sw[j] = importance_weights(&qw[16 * j..16 * j + 16], xs, sigma2, &mut weights);
            scales[j] = make_qx_quants(4, xs, &mut l[16 * j..][..16], Some(&weights));
        }
        let mut ls = [0i8; 16];
        let d_block = make_qx_quants(32, &scales, &mut ls, Some(&sw));
        let mut packed = [0u8; 12];
        for (j, &q) in ls.iter().enumerate() {
            let q = q as u8;
            if j < 8 {
                packed[j] = q & 0x0f;
            } else {
                packed[j - 8] |= (q & 0x0f) << 4;
            }
            packed[8 + j % 4] |= (q >> 4) << (2 * (j / 4));
        }
        put_f16(b, 108, d_block);
        finish_block(x, l, &packed, b);
    }
}

/// Re-quantizes the values of `x` against the block's scale (`b[108..110]`) and 6-bit
/// sub-block scales `packed` into codes 0..8 (sub-blocks whose scale is 0 keep their codes from
/// `l`), and stores codes and scales in `b`.
fn finish_block(x: &[f32], mut l: [i8; QK_K], packed: &[u8; 12], b: &mut [u8]) {
    let d_all = f16_at(b, 108);
    let sc = q3_k_scales(packed);
    for j in 0..16 {
        let d = d_all * f32::from(sc[j]);
        if d == 0.0 {
            continue;
        }
        for i in 0..16 {
            l[16 * j + i] = (nearest_int(x[16 * j + i] / d).clamp(-4, 3) + 4) as i8;
        }
    }
    let mut hmask = [0u8; 32];
    let mut low = [0u8; QK_K];
    for (e, (&q, lo)) in l.iter().zip(low.iter_mut()).enumerate() {
        let q = q as u8;
        if q > 3 {
            hmask[e % 32] |= 1 << (e / 32);
            *lo = q - 4;
        } else {
            *lo = q;
        }
    }
    b[0..32].copy_from_slice(&hmask);
    pack_2bit(&low, &mut b[32..96]);
    b[96..108].copy_from_slice(packed);
}
