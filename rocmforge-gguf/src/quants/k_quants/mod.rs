//! The K-quants: 256-element super-blocks with quantized sub-block scales.
//!
//! One file per type holds its layout, its dequantizer and its quantizer; this file holds the
//! scale-packing helpers and ggml's scale searches (`make_qx_quants`, `make_q3_quants`,
//! `make_qkx2_quants`) that the quantizers share.

pub(super) mod q2_k;
pub(super) mod q3_k;
pub(super) mod q4_k;
pub(super) mod q5_k;
pub(super) mod q6_k;
pub(super) mod q8_k;
pub(super) mod search;
pub(super) mod weighted;

pub(super) use q4_k::weighted_search;

/// Elements per K-quant super-block.
pub const QK_K: usize = 256;

/// Scale and min (6 bits each) of sub-block `j` (0..8) from the 12 packed scale bytes of a
/// Q4_K or Q5_K block (ggml's `get_scale_min_k4`).
///
/// Bytes 0..4 hold the scales of sub-blocks 0..4 in their low 6 bits, bytes 4..8 the mins;
/// bytes 8..12 hold the low 4 bits of scale (low nibble) and min (high nibble) of sub-blocks
/// 4..8, whose top 2 bits sit in the top bits of bytes 0..4 (scales) and 4..8 (mins).
///
/// # Panics
/// If `j >= 8`.
#[inline]
pub fn k4_scale_min(j: usize, scales: &[u8; 12]) -> (u8, u8) {
    if j < 4 {
        (scales[j] & 63, scales[j + 4] & 63)
    } else {
        (
            (scales[j + 4] & 0x0f) | ((scales[j - 4] >> 6) << 4),
            (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4),
        )
    }
}

/// The 16 signed 6-bit sub-block scales (already minus 32) from the 12 scale bytes of a Q3_K
/// block.
///
/// Scale i has its low 4 bits in byte `i % 8` (low nibble for i < 8, high nibble otherwise) and
/// its high 2 bits in byte `8 + i % 4` at bit `2·(i / 4)`.
pub fn q3_k_scales(scales: &[u8; 12]) -> [i8; 16] {
    let mut out = [0i8; 16];
    for (i, o) in out.iter_mut().enumerate() {
        let low = if i < 8 {
            scales[i] & 0x0f
        } else {
            scales[i - 8] >> 4
        };
        let high = (scales[8 + i % 4] >> (2 * (i / 4))) & 3;
        *o = ((low | (high << 4)) as i8) - 32;
    }
    out
}

/// Packs the 4 six-bit scales and mins of a Q4_K/Q5_K block into 12 bytes (inverse of
/// [`k4_scale_min`]).
pub(super) fn pack_k4_scales(ls: &[u8; 8], lm: &[u8; 8]) -> [u8; 12] {
    let mut s = [0u8; 12];
    for j in 0..8 {
        if j < 4 {
            s[j] = ls[j];
            s[j + 4] = lm[j];
        } else {
            s[j + 4] = (ls[j] & 0x0f) | ((lm[j] & 0x0f) << 4);
            s[j - 4] |= (ls[j] >> 4) << 6;
            s[j] |= (lm[j] >> 4) << 6;
        }
    }
    s
}

/// Packs 256 two-bit codes into 64 bytes the way Q2_K and Q3_K store their low bits: byte
/// `32·h + l` holds elements `128·h + l + 32·k` at bits `2k`.
pub(super) fn pack_2bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for h in 0..2 {
        for i in 0..32 {
            let e = 128 * h + i;
            qs[32 * h + i] = l[e] | (l[e + 32] << 2) | (l[e + 64] << 4) | (l[e + 96] << 6);
        }
    }
}

/// Packs 256 four-bit codes into 128 bytes as Q4_K/Q5_K store them: byte `32·c + l` holds
/// element `64·c + l` in its low nibble and `64·c + 32 + l` in its high nibble.
pub(super) fn pack_4bit(l: &[u8; QK_K], qs: &mut [u8]) {
    for c in 0..4 {
        for i in 0..32 {
            qs[32 * c + i] = (l[64 * c + i] & 0x0f) | ((l[64 * c + 32 + i] & 0x0f) << 4);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn k4_scales_round_trip_every_value() {
        for v in 0..64u8 {
            let ls = [v, 63 - v, v / 2, 1, v, 63 - v, v / 3, 62];
            let lm = [63 - v, v, 5, v / 2, 0, v, 63, v / 5];
            let packed = pack_k4_scales(&ls, &lm);
            for j in 0..8 {
                assert_eq!(k4_scale_min(j, &packed), (ls[j], lm[j]), "v={v} j={j}");
            }
        }
    }

    #[test]
    fn q3_scales_unpack_known_pattern() {
        // low nibbles 0..16 (i), high bits all 2 → 32 + i − 32 = i.
        let mut s = [0u8; 12];
        for i in 0..16u8 {
            if i < 8 {
                s[i as usize] |= i;
            } else {
                s[(i - 8) as usize] |= i << 4;
            }
            s[8 + (i as usize) % 4] |= 2 << (2 * (i / 4));
        }
        let got = q3_k_scales(&s);
        for (i, g) in got.iter().enumerate() {
            assert_eq!(*g as usize, i);
        }
    }
}
