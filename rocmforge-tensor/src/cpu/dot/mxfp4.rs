//! MXFP4 (32-element blocks, gpt-oss's experts): an E8M0 scale byte and 4-bit FP4 E2M1 codes
//! indexing a table of doubled values; multiplied with Q8_0 activations as llama.cpp does
//! (`ggml_vec_dot_mxfp4_q8_0`: integer sums, scale `d_act * 2^(e - 128)`).

use rocmforge_gguf::quants::{MXFP4_VALUES, e8m0_half};

use super::QK;
use super::legacy::LegacyRow;

/// MXFP4 block (17 bytes): `e: u8, qs: [u8; 16]`; value `MXFP4_VALUES[nibble] * e8m0_half(e)`.
pub(crate) fn unpack_mxfp4(row: &[u8], out: &mut LegacyRow) {
    for (blk, q) in row.chunks_exact(17).zip(out.q.chunks_exact_mut(QK)) {
        out.d.push(e8m0_half(blk[0]));
        let (lo, hi) = q.split_at_mut(QK / 2);
        for ((l, h), &b) in lo.iter_mut().zip(hi.iter_mut()).zip(&blk[1..17]) {
            *l = i16::from(MXFP4_VALUES[usize::from(b & 0x0f)]);
            *h = i16::from(MXFP4_VALUES[usize::from(b >> 4)]);
        }
    }
}
