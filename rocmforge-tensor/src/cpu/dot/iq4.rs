//! IQ4_NL (32-element blocks) and IQ4_XS (256-element super-blocks): 4-bit indices into a
//! fixed non-linear table of 16 signed values.

use super::kquant::KRow;
use super::legacy::LegacyRow;
use super::{QK, half_le};

/// ggml's `kvalues_iq4nl`.
pub(crate) const IQ4NL_VALUES: [i8; 16] = [
    -127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113,
];

fn table_nibbles(qs: &[u8], q: &mut [i16]) {
    let (lo, hi) = q.split_at_mut(QK / 2);
    for ((l, h), &b) in lo.iter_mut().zip(hi.iter_mut()).zip(qs) {
        *l = i16::from(IQ4NL_VALUES[usize::from(b & 0x0f)]);
        *h = i16::from(IQ4NL_VALUES[usize::from(b >> 4)]);
    }
}

/// IQ4_NL block (18 bytes): `d: f16, qs: [u8; 16]`; value `IQ4NL_VALUES[nibble] * d`.
/// Multiplied with Q8_0 activations like Q4_0.
pub(crate) fn unpack_iq4_nl(row: &[u8], out: &mut LegacyRow) {
    for (blk, q) in row.chunks_exact(18).zip(out.q.chunks_exact_mut(QK)) {
        out.d.push(half_le(blk, 0));
        table_nibbles(&blk[2..18], q);
    }
}

/// IQ4_XS super-block (136 bytes): `d: f16, scales_h: u16, scales_l: [u8; 4], qs: [u8; 128]`;
/// eight 32-element sub-blocks with 6-bit scales `ls - 32` (low 4 bits from `scales_l`,
/// high 2 from `scales_h`); value `d * (ls - 32) * IQ4NL_VALUES[nibble]`.
pub(crate) fn unpack_iq4_xs(row: &[u8], out: &mut KRow) {
    out.sub_len = 32;
    for (blk, q) in row.chunks_exact(136).zip(out.q.chunks_exact_mut(256)) {
        out.d.push(half_le(blk, 0));
        out.dmin.push(0.0);
        let scales_h = u16::from_le_bytes([blk[2], blk[3]]);
        let scales_l = &blk[4..8];
        for (ib, (qs, qb)) in blk[8..136]
            .chunks_exact(16)
            .zip(q.chunks_exact_mut(QK))
            .enumerate()
        {
            let lo = (scales_l[ib / 2] >> (4 * (ib % 2))) & 0x0f;
            let hi = ((scales_h >> (2 * ib)) & 3) as u8;
            out.scales.push(i32::from(lo | (hi << 4)) - 32);
            table_nibbles(qs, qb);
        }
    }
}
