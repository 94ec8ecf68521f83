//! Q5_K (176 bytes per 256 values): `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32],
//! qs: [u8; 128]`.
//!
//! As Q4_K, with a fifth bit per value: element `32·s + l` has its high bit at bit s of `qh[l]`.
//! Value = d·scale·q − dmin·min with q in 0..32.

use super::q4_k::{quantize_scales_and_codes, scale_bytes, weighted_scales_and_codes};
use super::search::QkxSearch;
use super::{QK_K, k4_scale_min, pack_4bit};
use crate::quants::scalar::f16_at;

const BLOCK_BYTES: usize = 176;

pub(crate) fn dequant(data: &[u8], out: &mut [f32]) {
    for (b, y) in data
        .chunks_exact(BLOCK_BYTES)
        .zip(out.chunks_exact_mut(QK_K))
    {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales = scale_bytes(b);
        let (qh, qs) = (&b[16..48], &b[48..176]);
        for (s, ys) in y.chunks_exact_mut(32).enumerate() {
            let (sc, m) = k4_scale_min(s, &scales);
            let d1 = d * f32::from(sc);
            let m1 = dmin * f32::from(m);
            let shift = 4 * (s % 2);
            let low = &qs[32 * (s / 2)..][..32];
            for ((yi, &q), &h) in ys.iter_mut().zip(low).zip(qh) {
                let q = ((q >> shift) & 0x0f) + if h & (1 << s) != 0 { 16 } else { 0 };
                *yi = d1 * f32::from(q) - m1;
            }
        }
    }
}

pub(crate) fn quant(src: &[f32], out: &mut [u8]) {
    let search = QkxSearch {
        nmax: 31,
        rmin: -0.5,
        rdelta: 0.1,
        nstep: 15,
        use_mad: false,
    };
    for (x, b) in src
        .chunks_exact(QK_K)
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        let l = quantize_scales_and_codes(x, &search, b);
        pack_codes(&l, b);
    }
}

/// Q5_K with importance weights: `qw` holds one weight per value of `src` (whole rows).
pub(crate) fn quant_weighted(src: &[f32], qw: &[f32], out: &mut [u8]) {
    for ((x, w), b) in src
        .chunks_exact(QK_K)
        .zip(qw.chunks_exact(QK_K))
        .zip(out.chunks_exact_mut(BLOCK_BYTES))
    {
        let l = weighted_scales_and_codes(x, w, 31, b);
        pack_codes(&l, b);
    }
}

/// Stores the 5-bit codes: high bits in `qh`, low nibbles in `qs`.
fn pack_codes(l: &[u8; QK_K], b: &mut [u8]) {
    let mut qh = [0u8; 32];
    for (e, &q) in l.iter().enumerate() {
        if q > 15 {
            qh[e % 32] |= 1 << (e / 32);
        }
    }
    b[16..48].copy_from_slice(&qh);
    pack_4bit(l, &mut b[48..176]);
}
