//! The 32-element "legacy" formats Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 (and IQ4_NL, in `iq4.rs`):
//! row unpacking and the integer dot product against Q8_0 / Q8_1 activations.

use super::{QK, half_le, int_dot};

/// One weight row unpacked to one signed 8-bit value (held in i16) per element and per-block scales:
/// element `i` of block `b` stands for `q[i] * d[b]` (`+ m[b]` for Q4_1 / Q5_1).
#[derive(Debug, Default)]
pub(crate) struct LegacyRow {
    pub q: Vec<i16>,
    pub d: Vec<f32>,
    /// Per-block offsets of the asymmetric types; empty for the symmetric ones.
    pub m: Vec<f32>,
}

impl LegacyRow {
    pub fn prepare(&mut self, cols: usize) {
        self.q.resize(cols, 0);
        self.d.clear();
        self.m.clear();
    }
}

/// Low nibbles to the first half of the block, high nibbles to the second, minus `offset`.
fn split_nibbles(qs: &[u8], q: &mut [i16], offset: i16) {
    let (lo, hi) = q.split_at_mut(QK / 2);
    for ((l, h), &b) in lo.iter_mut().zip(hi.iter_mut()).zip(qs) {
        *l = i16::from(b & 0x0f) - offset;
        *h = i16::from(b >> 4) - offset;
    }
}

/// As [`split_nibbles`] with a fifth bit from `qh` (bit `j` for element `j`, bit `j + 16`
/// for element `j + 16`).
fn split_nibbles_5bit(qs: &[u8], qh: u32, q: &mut [i16], offset: i16) {
    let (lo, hi) = q.split_at_mut(QK / 2);
    for (j, ((l, h), &b)) in lo.iter_mut().zip(hi.iter_mut()).zip(qs).enumerate() {
        let h0 = (((qh >> j) & 1) << 4) as u8;
        let h1 = (((qh >> (j + 16)) & 1) << 4) as u8;
        *l = i16::from((b & 0x0f) | h0) - offset;
        *h = i16::from((b >> 4) | h1) - offset;
    }
}

fn qh_le(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// Q4_0 block (18 bytes): `d: f16, qs: [u8; 16]`; value `(nibble - 8) * d`.
pub(crate) fn unpack_q4_0(row: &[u8], out: &mut LegacyRow) {
    for (blk, q) in row.chunks_exact(18).zip(out.q.chunks_exact_mut(QK)) {
        out.d.push(half_le(blk, 0));
        split_nibbles(&blk[2..18], q, 8);
    }
}

/// Q4_1 block (20 bytes): `d: f16, m: f16, qs: [u8; 16]`; value `nibble * d + m`.
pub(crate) fn unpack_q4_1(row: &[u8], out: &mut LegacyRow) {
    for (blk, q) in row.chunks_exact(20).zip(out.q.chunks_exact_mut(QK)) {
        out.d.push(half_le(blk, 0));
        out.m.push(half_le(blk, 2));
        split_nibbles(&blk[4..20], q, 0);
    }
}

/// Q5_0 block (22 bytes): `d: f16, qh: [u8; 4], qs: [u8; 16]`; value `(q5 - 16) * d`.
pub(crate) fn unpack_q5_0(row: &[u8], out: &mut LegacyRow) {
    for (blk, q) in row.chunks_exact(22).zip(out.q.chunks_exact_mut(QK)) {
        out.d.push(half_le(blk, 0));
        split_nibbles_5bit(&blk[6..22], qh_le(&blk[2..6]), q, 16);
    }
}

/// Q5_1 block (24 bytes): `d: f16, m: f16, qh: [u8; 4], qs: [u8; 16]`; value `q5 * d + m`.
pub(crate) fn unpack_q5_1(row: &[u8], out: &mut LegacyRow) {
    for (blk, q) in row.chunks_exact(24).zip(out.q.chunks_exact_mut(QK)) {
        out.d.push(half_le(blk, 0));
        out.m.push(half_le(blk, 2));
        split_nibbles_5bit(&blk[8..24], qh_le(&blk[4..8]), q, 0);
    }
}

/// Q8_0 block (34 bytes): `d: f16, qs: [i8; 32]`; value `q * d`.
pub(crate) fn unpack_q8_0(row: &[u8], out: &mut LegacyRow) {
    for (blk, q) in row.chunks_exact(34).zip(out.q.chunks_exact_mut(QK)) {
        out.d.push(half_le(blk, 0));
        for (o, &b) in q.iter_mut().zip(&blk[2..34]) {
            *o = i16::from(b as i8);
        }
    }
}

/// Dot product of an unpacked row with one token's Q8_0 (`a_s` empty) or Q8_1 activation
/// blocks, as ggml's `vec_dot_*_q8_0` / `vec_dot_*_q8_1`: per block the integer sum
/// `sumi = sum(q_w * q_a)`, then `(d_w * d_a) * sumi`, plus `m_w * s_a` for Q4_1 / Q5_1.
pub(crate) fn dot_legacy(w: &LegacyRow, a_qs: &[i16], a_d: &[f32], a_s: &[f32]) -> f32 {
    let mut sum = 0.0f32;
    let blocks = w.q.chunks_exact(QK).zip(a_qs.chunks_exact(QK));
    if w.m.is_empty() {
        for ((wq, aq), (&wd, &ad)) in blocks.zip(w.d.iter().zip(a_d)) {
            sum += (wd * ad) * int_dot(wq, aq) as f32;
        }
    } else {
        let scales = w.d.iter().zip(&w.m).zip(a_d.iter().zip(a_s));
        for ((wq, aq), ((&wd, &wm), (&ad, &as_))) in blocks.zip(scales) {
            sum += (wd * ad) * int_dot(wq, aq) as f32 + wm * as_;
        }
    }
    sum
}

/// Dequantizes an unpacked row: `q * d (+ m)`.
pub(crate) fn dequantize_legacy(w: &LegacyRow, out: &mut [f32]) {
    for (b, (ob, qb)) in out
        .chunks_exact_mut(QK)
        .zip(w.q.chunks_exact(QK))
        .enumerate()
    {
        let d = w.d.get(b).copied().unwrap_or(0.0);
        let m = w.m.get(b).copied().unwrap_or(0.0);
        for (o, &q) in ob.iter_mut().zip(qb) {
            *o = f32::from(q) * d + m;
        }
    }
}
