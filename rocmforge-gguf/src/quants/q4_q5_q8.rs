//! The legacy 32-element formats: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1.
//!
//! Layouts (little-endian, ggml-common.h):
//! - Q4_0 (18 B): `d: f16, qs: [u8; 16]`; element j < 16 is the low nibble of `qs[j]`, element
//!   j + 16 its high nibble; value = d·(q − 8).
//! - Q4_1 (20 B): `d: f16, m: f16, qs: [u8; 16]`; value = d·q + m.
//! - Q5_0 (22 B): `d: f16, qh: u32, qs: [u8; 16]`; bit j of `qh` is the fifth bit of element j;
//!   value = d·(q − 16).
//! - Q5_1 (24 B): `d: f16, m: f16, qh: u32, qs: [u8; 16]`; value = d·q + m.
//! - Q8_0 (34 B): `d: f16, qs: [i8; 32]`; value = d·q.
//! - Q8_1 (36 B): `d: f16, s: f16, qs: [i8; 32]` with s = d·Σq; value = d·q.

use super::k_quants::search::{make_qkx2_quants, make_qx_quants};
use super::k_quants::weighted::{importance_weights, sum_sq};
use super::k_quants::weighted_search;
use super::scalar::{f16_at, put_f16};

const QK: usize = 32;

pub(super) fn dequant_q4_0(data: &[u8], out: &mut [f32]) {
    for (b, y) in data.chunks_exact(18).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        for j in 0..16 {
            let q = b[2 + j];
            y[j] = ((q & 0x0f) as i32 - 8) as f32 * d;
            y[j + 16] = ((q >> 4) as i32 - 8) as f32 * d;
        }
    }
}

pub(super) fn dequant_q4_1(data: &[u8], out: &mut [f32]) {
    for (b, y) in data.chunks_exact(20).zip(out.chunks_exact_mut(QK)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        for j in 0..16 {
            let q = b[4 + j];
            y[j] = (q & 0x0f) as f32 * d + m;
            y[j + 16] = (q >> 4) as f32 * d + m;
        }
    }
}

/// The 32 five-bit codes of a Q5 block from its `qh` word and 16 `qs` bytes.
fn q5_codes(qh: u32, qs: &[u8]) -> [u8; QK] {
    let mut q = [0u8; QK];
    for j in 0..16 {
        let hi0 = ((qh >> j) & 1) as u8;
        let hi1 = ((qh >> (j + 16)) & 1) as u8;
        q[j] = (qs[j] & 0x0f) | (hi0 << 4);
        q[j + 16] = (qs[j] >> 4) | (hi1 << 4);
    }
    q
}

fn u32_at(b: &[u8], off: usize) -> u32 {
    u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]])
}

pub(super) fn dequant_q5_0(data: &[u8], out: &mut [f32]) {
    for (b, y) in data.chunks_exact(22).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        let q = q5_codes(u32_at(b, 2), &b[6..22]);
        for (yj, qj) in y.iter_mut().zip(q) {
            *yj = (qj as i32 - 16) as f32 * d;
        }
    }
}

pub(super) fn dequant_q5_1(data: &[u8], out: &mut [f32]) {
    for (b, y) in data.chunks_exact(24).zip(out.chunks_exact_mut(QK)) {
        let (d, m) = (f16_at(b, 0), f16_at(b, 2));
        let q = q5_codes(u32_at(b, 4), &b[8..24]);
        for (yj, qj) in y.iter_mut().zip(q) {
            *yj = qj as f32 * d + m;
        }
    }
}

fn dequant_8bit(data: &[u8], out: &mut [f32], block_bytes: usize) {
    let qs_at = block_bytes - QK;
    for (b, y) in data.chunks_exact(block_bytes).zip(out.chunks_exact_mut(QK)) {
        let d = f16_at(b, 0);
        for (yj, &q) in y.iter_mut().zip(&b[qs_at..]) {
            *yj = (q as i8) as f32 * d;
        }
    }
}

pub(super) fn dequant_q8_0(data: &[u8], out: &mut [f32]) {
    dequant_8bit(data, out, 34);
}

pub(super) fn dequant_q8_1(data: &[u8], out: &mut [f32]) {
    dequant_8bit(data, out, 36);
}

/// The value of largest magnitude (the first one on ties), as ggml's symmetric formats pick it.
fn signed_absmax(x: &[f32]) -> f32 {
    let (mut amax, mut max) = (0.0f32, 0.0f32);
    for &v in x {
        if amax < v.abs() {
            amax = v.abs();
            max = v;
        }
    }
    max
}

fn min_max(x: &[f32]) -> (f32, f32) {
    let (mut min, mut max) = (f32::MAX, -f32::MAX);
    for &v in x {
        if v < min {
            min = v;
        }
        if v > max {
            max = v;
        }
    }
    (min, max)
}

fn inverse_or_zero(d: f32) -> f32 {
    if d != 0.0 { 1.0 / d } else { 0.0 }
}

pub(super) fn quant_q4_0(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(out.chunks_exact_mut(18)) {
        let d = signed_absmax(x) / -8.0;
        let id = inverse_or_zero(d);
        put_f16(b, 0, d);
        for j in 0..16 {
            let q0 = ((x[j] * id + 8.5) as i8).min(15) as u8;
            let q1 = ((x[j + 16] * id + 8.5) as i8).min(15) as u8;
            b[2 + j] = q0 | (q1 << 4);
        }
    }
}

pub(super) fn quant_q4_1(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(out.chunks_exact_mut(20)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 15.0;
        let id = inverse_or_zero(d);
        put_f16(b, 0, d);
        put_f16(b, 2, min);
        for j in 0..16 {
            let q0 = (((x[j] - min) * id + 0.5) as i8).min(15) as u8;
            let q1 = (((x[j + 16] - min) * id + 0.5) as i8).min(15) as u8;
            b[4 + j] = q0 | (q1 << 4);
        }
    }
}

/// Packs 32 five-bit codes into `qh` (4 bytes) and `qs` (16 bytes).
fn pack_q5(q: &[u8; QK], qh_out: &mut [u8], qs_out: &mut [u8]) {
    let mut qh = 0u32;
    for j in 0..16 {
        qs_out[j] = (q[j] & 0x0f) | ((q[j + 16] & 0x0f) << 4);
        qh |= u32::from((q[j] & 0x10) >> 4) << j;
        qh |= u32::from((q[j + 16] & 0x10) >> 4) << (j + 16);
    }
    qh_out.copy_from_slice(&qh.to_le_bytes());
}

pub(super) fn quant_q5_0(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(out.chunks_exact_mut(22)) {
        let d = signed_absmax(x) / -16.0;
        let id = inverse_or_zero(d);
        put_f16(b, 0, d);
        let mut q = [0u8; QK];
        for (qj, &xj) in q.iter_mut().zip(x) {
            *qj = ((xj * id + 16.5) as i8).min(31) as u8;
        }
        let (qh, qs) = b[2..].split_at_mut(4);
        pack_q5(&q, qh, qs);
    }
}

pub(super) fn quant_q5_1(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(out.chunks_exact_mut(24)) {
        let (min, max) = min_max(x);
        let d = (max - min) / 31.0;
        let id = inverse_or_zero(d);
        put_f16(b, 0, d);
        put_f16(b, 2, min);
        let mut q = [0u8; QK];
        for (qj, &xj) in q.iter_mut().zip(x) {
            // ggml does not clamp here; the float → u8 cast saturates instead of wrapping.
            *qj = (((xj - min) * id + 0.5) as u8).min(31);
        }
        let (qh, qs) = b[4..].split_at_mut(4);
        pack_q5(&q, qh, qs);
    }
}

/// Fills `qs` with round-half-away(x·127/amax) and returns (d, Σq) with d = amax/127.
fn quant_8bit_codes(x: &[f32], qs: &mut [u8]) -> (f32, i32) {
    let amax = x
        .iter()
        .fold(0.0f32, |a, v| if a > v.abs() { a } else { v.abs() });
    let d = amax / 127.0;
    let id = inverse_or_zero(d);
    let mut sum = 0i32;
    for (q, &v) in qs.iter_mut().zip(x) {
        let qi = (v * id).round() as i8;
        sum += i32::from(qi);
        *q = qi as u8;
    }
    (d, sum)
}

pub(super) fn quant_q8_0(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(out.chunks_exact_mut(34)) {
        let (d, _) = quant_8bit_codes(x, &mut b[2..]);
        put_f16(b, 0, d);
    }
}

pub(super) fn quant_q8_1(src: &[f32], out: &mut [u8]) {
    for (x, b) in src.chunks_exact(QK).zip(out.chunks_exact_mut(36)) {
        let (d, sum) = quant_8bit_codes(x, &mut b[4..]);
        put_f16(b, 0, d);
        put_f16(b, 2, sum as f32 * d);
    }
}

/// What the weighted legacy quantizers share: for each 32-value block of the row `src`, the
/// weights `qw·√(σ² + x²)` (σ² = mean x² over the whole row), handed to `block` with the
/// block's values and output bytes (ggml's `quantize_row_q{4,5}_{0,1}_impl`).
fn weighted_blocks(
    src: &[f32],
    qw: &[f32],
    out: &mut [u8],
    block_bytes: usize,
    mut block: impl FnMut(&[f32], &[f32], &mut [u8]),
) {
    let sigma2 = sum_sq(src) / src.len() as f32;
    let mut weights = [0.0f32; QK];
    for ((x, w), b) in src
        .chunks_exact(QK)
        .zip(qw.chunks_exact(QK))
        .zip(out.chunks_exact_mut(block_bytes))
    {
        importance_weights(w, x, sigma2, &mut weights);
        block(x, &weights, b);
    }
}

/// Symmetric codes `0..2·nmax` from the weighted search; returns them with the scale.
fn symmetric_codes(nmax: i32, x: &[f32], weights: &[f32]) -> ([u8; QK], f32) {
    let mut l = [0i8; QK];
    let d = make_qx_quants(nmax, x, &mut l, Some(weights));
    (l.map(|q| q as u8), d)
}

/// Asymmetric codes `0..=nmax` from the weighted search; returns them with scale and minimum.
fn asymmetric_codes(nmax: i32, x: &[f32], weights: &[f32]) -> ([u8; QK], f32, f32) {
    let (mut l, mut laux) = ([0u8; QK], [0u8; QK]);
    let (d, neg_min) = make_qkx2_quants(&weighted_search(nmax), x, weights, &mut l, &mut laux);
    (l, d, -neg_min)
}

/// Q4_0 of one row with importance weights `qw` (one per value).
pub(super) fn quant_q4_0_weighted(src: &[f32], qw: &[f32], out: &mut [u8]) {
    weighted_blocks(src, qw, out, 18, |x, w, b| {
        let (l, d) = symmetric_codes(8, x, w);
        put_f16(b, 0, d);
        for j in 0..16 {
            b[2 + j] = l[j] | (l[j + 16] << 4);
        }
    });
}

/// Q4_1 of one row with importance weights `qw` (one per value).
pub(super) fn quant_q4_1_weighted(src: &[f32], qw: &[f32], out: &mut [u8]) {
    weighted_blocks(src, qw, out, 20, |x, w, b| {
        let (l, d, m) = asymmetric_codes(15, x, w);
        put_f16(b, 0, d);
        put_f16(b, 2, m);
        for j in 0..16 {
            b[4 + j] = l[j] | (l[j + 16] << 4);
        }
    });
}

/// Q5_0 of one row with importance weights `qw` (one per value).
pub(super) fn quant_q5_0_weighted(src: &[f32], qw: &[f32], out: &mut [u8]) {
    weighted_blocks(src, qw, out, 22, |x, w, b| {
        let (l, d) = symmetric_codes(16, x, w);
        put_f16(b, 0, d);
        let (qh, qs) = b[2..].split_at_mut(4);
        pack_q5(&l, qh, qs);
    });
}

/// Q5_1 of one row with importance weights `qw` (one per value).
pub(super) fn quant_q5_1_weighted(src: &[f32], qw: &[f32], out: &mut [u8]) {
    weighted_blocks(src, qw, out, 24, |x, w, b| {
        let (l, d, m) = asymmetric_codes(31, x, w);
        put_f16(b, 0, d);
        put_f16(b, 2, m);
        let (qh, qs) = b[4..].split_at_mut(4);
        pack_q5(&l, qh, qs);
    });
}
