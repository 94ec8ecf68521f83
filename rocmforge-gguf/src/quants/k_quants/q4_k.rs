//! Q4_K (144 bytes per 256 values): `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`.
//!
//! Eight sub-blocks of 32 values with 6-bit scales and mins (see [`k4_scale_min`]); value =
//! d·scale·q − dmin·min. Sub-block s uses the low (s even) or high (s odd) nibbles of
//! `qs[32·(s/2)..][..32]`.

use super::search::{QkxSearch, make_qkx2_quants};
use super::weighted::{importance_weights, make_qp_quants, sum_sq};
use super::{QK_K, k4_scale_min, pack_4bit, pack_k4_scales};
use crate::quants::scalar::{f16_at, nearest_int, put_f16};

const BLOCK_BYTES: usize = 144;

pub(super) fn scale_bytes(b: &[u8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    s.copy_from_slice(&b[4..16]);
    s
}

pub(crate) fn dequant(data: &[u8], out: &mut [f32]) {
    for (b, y) in data
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK_K))
    {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales = scale_bytes(b);
        let qs = &b[16..144];
        for (s, ys) in y.chunks_exact_mut(32).enumerate() {
            let (sc, m) = k4_scale_min(s, &scales);
            let d1 = d * f32::from(sc);
            let m1 = dmin * f32::from(m);
            let shift = 4 * (s % 2);
            for (yi, &q) in ys.iter_mut().zip(&qs[32 * (s / 2)..][..32]) {
                *yi = d1 * f32::from((q >> shift) & 0x0f) - m1;
            }
        }
    }
}

/// What the Q4_K and Q5_K reference quantizers share: per sub-block scale/min search, 6-bit
/// scale quantization and the final re-quantization of each value. Writes `d`, `dmin` and the
/// 12 scale bytes to `b[0..16]` and returns the codes (0..=nmax) of the 256 values.
pub(super) fn quantize_scales_and_codes(x: &[f32], search: &QkxSearch, b: &mut [u8]) -> [u8; QK_K] {
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 32];
    let mut weights = [0.0f32; 32];
    let mut scales = [0.0f32; 8];
    let mut mins = [0.0f32; 8];
    let (mut max_scale, mut max_min) = (0.0f32, 0.0f32);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        let sum_x2 = xs.iter().fold(0.0f32, |a, v| a + v * v);
        let av_x = (sum_x2 / 32.0).sqrt();
        for (w, v) in weights.iter_mut().zip(xs) {
            *w = av_x + v.abs();
        }
        let (s, m) = make_qkx2_quants(search, xs, &weights, &mut l[32 * j..][..32], &mut laux);
        scales[j] = s;
        mins[j] = m;
        if s > max_scale {
            max_scale = s;
        }
        if m > max_min {
            max_min = m;
        }
    }
    let inv_scale = if max_scale > 0.0 {
        63.0 / max_scale
    } else {
        0.0
    };
    let inv_min = if max_min > 0.0 { 63.0 / max_min } else { 0.0 };
    let mut ls = [0u8; 8];
    let mut lm = [0u8; 8];
    for j in 0..8 {
        ls[j] = (nearest_int(inv_scale * scales[j]) as u8).min(63);
        lm[j] = (nearest_int(inv_min * mins[j]) as u8).min(63);
    }
    finish_block(
        x,
        &ls,
        &lm,
        (max_scale / 63.0, max_min / 63.0),
        search.nmax,
        l,
        b,
    )
}

/// Writes `d`, `dmin` (`d_dmin`, rounded to f16) and the packed 6-bit scales `ls` and mins `lm`
/// to `b[0..16]`, then re-quantizes each value of `x` against them into codes `0..=nmax`
/// (sub-blocks whose scale is 0 keep their codes from `l`). Returns the codes.
pub(super) fn finish_block(
    x: &[f32],
    ls: &[u8; 8],
    lm: &[u8; 8],
    d_dmin: (f32, f32),
    nmax: i32,
    mut l: [u8; QK_K],
    b: &mut [u8],
) -> [u8; QK_K] {
    let packed = pack_k4_scales(ls, lm);
    put_f16(b, 0, d_dmin.0);
    put_f16(b, 2, d_dmin.1);
    b[4..16].copy_from_slice(&packed);
    let (d_all, m_all) = (f16_at(b, 0), f16_at(b, 2));
    for j in 0..8 {
        let (sc, m) = k4_scale_min(j, &packed);
        let d = d_all * f32::from(sc);
        if d == 0.0 {
            continue;
        }
        let dm = m_all * f32::from(m);
        for i in 0..32 {
            l[32 * j + i] = nearest_int((x[32 * j + i] + dm) / d).clamp(0, nmax) as u8;
        }
    }
    l
}

/// The search the weighted Q4_K, Q5_K, Q4_1 and Q5_1 quantizers run for codes `0..=nmax`
/// (ggml's `make_qkx3_quants(.., -0.9, 0.05, 36, false)` with weights).
pub(crate) fn weighted_search(nmax: i32) -> QkxSearch {
    QkxSearch {
        nmax,
        rmin: -0.9,
        rdelta: 0.05,
        nstep: 36,
        use_mad: false,
    }
}

/// The Q4_K/Q5_K block search with importance weights `qw` (one per value of `x`): sub-block
/// fits weighted by `qw·√(σ² + x²)`, their scales and mins quantized to 6 bits by a weighted
/// search (ggml's `quantize_row_q4_K_impl` / `q5_K_impl`). Writes `b[0..16]` and returns the
/// codes.
pub(super) fn weighted_scales_and_codes(
    x: &[f32],
    qw: &[f32],
    nmax: i32,
    b: &mut [u8],
) -> [u8; QK_K] {
    let search = weighted_search(nmax);
    let sigma2 = 2.0 * sum_sq(&x[..QK_K]) / QK_K as f32;
    let mut l = [0u8; QK_K];
    let mut laux = [0u8; 32];
    let mut weights = [0.0f32; 32];
    let (mut scales, mut mins, mut sw) = ([0.0f32; 8], [0.0f32; 8], [0.0f32; 8]);
    for j in 0..8 {
        let xs = &x[32 * j..32 * j + 32];
        sw[j] = importance_weights(&qw[32 * j..32 * j + 32], xs, sigma2, &mut weights);
        let (s, m) = make_qkx2_quants(&search, xs, &weights, &mut l[32 * j..][..32], &mut laux);
        scales[j] = s;
        mins[j] = m;
    }
    let (mut ls, mut lm) = ([0u8; 8], [0u8; 8]);
    let d_block = make_qp_quants(63, &scales, &mut ls, &sw);
    let m_block = make_qp_quants(63, &mins, &mut lm, &sw);
    if nmax > 15 {
        // Q5_K caps the codes at 63 before packing; Q4_K packs them as they are.
        for v in ls.iter_mut().chain(lm.iter_mut()) {
            *v = (*v).min(63);
        }
    }
    finish_block(x, &ls, &lm, (d_block, m_block), nmax, l, b)
}

/// Q4_K with importance weights: `qw` holds one weight per value of `src` (whole rows).
pub(crate) fn quant_weighted(src: &[f32], qw: &[f32], out: &mut [u8]) {
    for ((x, w), b) in src
        .chunks_exact(QK_K)
        .zip(qw.chunks_exact(QK_K))
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        let l = weighted_scales_and_codes(x, w, 15, b);
        pack_4bit(&l, &mut b[16..144]);
    }
}

pub(crate) fn quant(src: &[f32], out: &mut [u8]) {
    let search = QkxSearch {
        nmax: 15,
        rmin: -1.0,
        rdelta: 0.1,
        nstep: 20,
        use_mad: false,
    };
    for (x, b) in src
        .chunks_exact(QK_K)
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        let l = quantize_scales_and_codes(x, &search, b);
        pack_4bit(&l, &mut b[16..144]);
    }
}
