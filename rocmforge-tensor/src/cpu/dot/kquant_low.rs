//! Q2_K and Q3_K: 16-element sub-blocks of 2-bit (+1 high bit for Q3_K) values.

use super::half_le;
use super::kquant::{KRow, QK_K};

/// Q2_K super-block (84 bytes): `scales: [u8; 16]` (low nibble scale, high nibble min),
/// `qs: [u8; 64]` (four 2-bit values per byte), `d: f16`, `dmin: f16`.
/// Value of element `i` in sub-block `s`: `d * (scales[s] & 15) * q - dmin * (scales[s] >> 4)`.
pub(crate) fn unpack_q2_k(row: &[u8], out: &mut KRow) {
    out.sub_len = 16;
    for (blk, q) in row.chunks_exact(84).zip(out.q.chunks_exact_mut(QK_K)) {
        let scales = &blk[0..16];
        let qs = &blk[16..80];
        out.d.push(half_le(blk, 80));
        out.dmin.push(half_le(blk, 82));
        for &sc in scales {
            out.scales.push(i32::from(sc & 0x0f));
            out.mins.push(i32::from(sc >> 4));
        }
        // Each 128-element half reads 32 bytes; element 32*j + l of the half is bits
        // 2j..2j+2 of byte l.
        for (half_q, half_bytes) in q.chunks_exact_mut(128).zip(qs.chunks_exact(32)) {
            for (j, part) in half_q.chunks_exact_mut(32).enumerate() {
                for (o, &b) in part.iter_mut().zip(half_bytes) {
                    *o = i16::from((b >> (2 * j)) & 3);
                }
            }
        }
    }
}

/// The 16 six-bit scales of Q3_K (before subtracting 32): low 4 bits from bytes 0..8,
/// high 2 bits from bytes 8..12.
fn q3_k_scale(sc: &[u8], j: usize) -> i32 {
    let low = if j < 8 { sc[j] & 0x0f } else { sc[j - 8] >> 4 };
    let high = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
    i32::from(low | (high << 4))
}

/// Q3_K super-block (110 bytes): `hmask: [u8; 32]`, `qs: [u8; 64]`, `scales: [u8; 12]`,
/// `d: f16`. Value: `d * (scale - 32) * (q2 - (high bit ? 0 : 4))`.
pub(crate) fn unpack_q3_k(row: &[u8], out: &mut KRow) {
    out.sub_len = 16;
    for (blk, q) in row.chunks_exact(110).zip(out.q.chunks_exact_mut(QK_K)) {
        let hmask = &blk[0..32];
        let qs = &blk[32..96];
        let sc = &blk[96..108];
        out.d.push(half_le(blk, 108));
        out.dmin.push(0.0);
        for j in 0..16 {
            out.scales.push(q3_k_scale(sc, j) - 32);
        }
        // Element 32*j + l of half n uses bits 2j of qs[32n + l] and bit (4n + j) of hmask[l].
        for (n, (half_q, half_bytes)) in
            q.chunks_exact_mut(128).zip(qs.chunks_exact(32)).enumerate()
        {
            for (j, part) in half_q.chunks_exact_mut(32).enumerate() {
                let m = 1u8 << (4 * n + j);
                for ((o, &b), &h) in part.iter_mut().zip(half_bytes).zip(hmask) {
                    let low = i16::from((b >> (2 * j)) & 3);
                    *o = if h & m != 0 { low } else { low - 4 };
                }
            }
        }
    }
}
