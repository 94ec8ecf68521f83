//! Q4_K, Q5_K (32-element sub-blocks with 6-bit scales and mins) and Q6_K (16-element
//! sub-blocks with 8-bit scales).

use super::half_le;
use super::kquant::{KRow, QK_K};

/// Scale and min of sub-block `j` (0..8) from the 12 packed bytes of Q4_K / Q5_K.
pub(crate) fn scale_min_k4(j: usize, q: &[u8]) -> (i32, i32) {
    if j < 4 {
        (i32::from(q[j] & 63), i32::from(q[j + 4] & 63))
    } else {
        let sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
        let m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
        (i32::from(sc), i32::from(m))
    }
}

fn push_scales_k4(sc: &[u8], scales: &mut Vec<i32>, mins: &mut Vec<i32>) {
    for j in 0..8 {
        let (s, m) = scale_min_k4(j, sc);
        scales.push(s);
        mins.push(m);
    }
}

/// Q4_K super-block (144 bytes): `d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128]`.
/// Each 64 elements read 32 bytes: low nibbles first, then high nibbles.
pub(crate) fn unpack_q4_k(row: &[u8], out: &mut KRow) {
    out.sub_len = 32;
    for (blk, q) in row.chunks_exact(144).zip(out.q.chunks_exact_mut(QK_K)) {
        out.d.push(half_le(blk, 0));
        out.dmin.push(half_le(blk, 2));
        push_scales_k4(&blk[4..16], &mut out.scales, &mut out.mins);
        for (q64, bytes) in q.chunks_exact_mut(64).zip(blk[16..144].chunks_exact(32)) {
            let (lo, hi) = q64.split_at_mut(32);
            for ((l, h), &b) in lo.iter_mut().zip(hi.iter_mut()).zip(bytes) {
                *l = i16::from(b & 0x0f);
                *h = i16::from(b >> 4);
            }
        }
    }
}

/// Q5_K super-block (176 bytes): `d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32],
/// qs: [u8; 128]`. As Q4_K with a fifth bit: bit `2k` (low nibbles) or `2k + 1` (high
/// nibbles) of `qh[l]` for the `k`-th group of 64 elements.
pub(crate) fn unpack_q5_k(row: &[u8], out: &mut KRow) {
    out.sub_len = 32;
    for (blk, q) in row.chunks_exact(176).zip(out.q.chunks_exact_mut(QK_K)) {
        out.d.push(half_le(blk, 0));
        out.dmin.push(half_le(blk, 2));
        push_scales_k4(&blk[4..16], &mut out.scales, &mut out.mins);
        let qh = &blk[16..48];
        let groups = q.chunks_exact_mut(64).zip(blk[48..176].chunks_exact(32));
        for (k, (q64, bytes)) in groups.enumerate() {
            let (lo, hi) = q64.split_at_mut(32);
            for (((l, h), &b), &hb) in lo.iter_mut().zip(hi.iter_mut()).zip(bytes).zip(qh) {
                *l = i16::from((b & 0x0f) | (((hb >> (2 * k)) & 1) << 4));
                *h = i16::from((b >> 4) | (((hb >> (2 * k + 1)) & 1) << 4));
            }
        }
    }
}

/// Q6_K super-block (210 bytes): `ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16`.
/// Value: `d * scale * (q6 - 32)`; each 128 elements read 64 bytes of `ql` and 32 of `qh`.
pub(crate) fn unpack_q6_k(row: &[u8], out: &mut KRow) {
    out.sub_len = 16;
    for (blk, q) in row.chunks_exact(210).zip(out.q.chunks_exact_mut(QK_K)) {
        out.d.push(half_le(blk, 208));
        out.dmin.push(0.0);
        for &s in &blk[192..208] {
            out.scales.push(i32::from(s as i8));
        }
        let halves = q.chunks_exact_mut(128);
        let qls = blk[0..128].chunks_exact(64);
        let qhs = blk[128..192].chunks_exact(32);
        for ((q128, ql), qh) in halves.zip(qls).zip(qhs) {
            for (l, &h) in qh.iter().enumerate() {
                let (a, b) = (ql[l], ql[l + 32]);
                q128[l] = i16::from((a & 0x0f) | ((h & 3) << 4)) - 32;
                q128[l + 32] = i16::from((b & 0x0f) | (((h >> 2) & 3) << 4)) - 32;
                q128[l + 64] = i16::from((a >> 4) | (((h >> 4) & 3) << 4)) - 32;
                q128[l + 96] = i16::from((b >> 4) | (((h >> 6) & 3) << 4)) - 32;
            }
        }
    }
}
