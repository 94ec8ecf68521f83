//! Decoding 16 rows of a K-quant into a panel (`panel_k.rs`) with the decode rows' machinery
//! (`rows_k.rs`): each half of the panel (rows 0-7, rows 8-15) is eight rows' packed bytes
//! transposed in registers 16 at a time (`transpose!`: register `k` holds bytes `4k .. 4k +
//! 4` of every row, row `r` in lane `r`), which is the panel's run layout once the values
//! are taken out of the bytes (nibbles; Q5_K's fifth bit; Q6_K's two high bits). The 6-bit
//! scales and mins of Q4_K / Q5_K are unpacked for the eight rows at once with ggml's mask
//! arithmetic, Q6_K's eight-bit scales sign-extended, straight into the panel's i16 pairs,
//! and `d` / `dmin` by F16C. The GEMM builds each panel once per matmul, for about what two
//! tokens cost on the token tiles.

use std::arch::x86_64::*;

use super::kquant::{Q5K, Q6K, block_bytes};
use super::load16;
use super::panel::PANEL;
use super::panel_k::{KMatrix, KPANEL_BLOCK, KPanel, pairs, subs};
use super::rows_k::{byte_i16x2, byte_u16x2, d_of_rows, values_q6};
use super::rows8::{halves_to_f32, transpose};

/// Rows of one panel half: one 256-bit register holds four values of each.
const HALF: usize = 8;

/// `v` into the 32 bytes at the start of `dst`.
#[target_feature(enable = "avx2")]
#[inline]
fn store_bytes(dst: &mut [u8], v: __m256i) {
    let dst = &mut dst[..32];
    // SAFETY: `dst` is 32 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) };
}

/// `v` into the 16 i16 at the start of `dst`.
#[target_feature(enable = "avx2")]
#[inline]
fn store_i16(dst: &mut [i16], v: __m256i) {
    let dst = &mut dst[..16];
    // SAFETY: `dst` is 32 writable bytes; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_si256(dst.as_mut_ptr().cast(), v) };
}

/// `v` into the 8 f32 at the start of `dst`.
#[target_feature(enable = "avx2")]
#[inline]
fn store_f32(dst: &mut [f32], v: __m256) {
    let dst = &mut dst[..8];
    // SAFETY: `dst` is 8 writable f32; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(dst.as_mut_ptr(), v) };
}

/// Rows `r0 .. r0 + n` of `w` into the panel layout (missing rows of the last panel as
/// zeros, with zero scales).
#[target_feature(enable = "avx2,fma,f16c")]
pub(in crate::cpu::dot) fn pack<const K: u8>(w: &KMatrix, panel: &mut KPanel, r0: usize, n: usize) {
    if n < PANEL {
        panel.qs.fill(0);
        panel.sc.fill(0);
        panel.pairs.fill(0);
        panel.d.fill(0.0);
        panel.dmin.fill(0.0);
    }
    let bb = block_bytes(K);
    let nb = w.row_bytes / bb;
    // Rows past `n` read a row of zero bytes: values, scales and `d` all zero.
    let zero = if n < PANEL {
        vec![0u8; w.row_bytes]
    } else {
        Vec::new()
    };
    for half in 0..PANEL / HALF {
        let first = HALF * half;
        if first >= n {
            break;
        }
        let mut rows: [&[u8]; HALF] = [&zero; HALF];
        for (i, row) in rows.iter_mut().enumerate().take(n - first) {
            let r = r0 + first + i;
            *row = &w.data[r * w.row_bytes..(r + 1) * w.row_bytes];
        }
        for b in 0..nb {
            let blk = rows.map(|r| &r[b * bb..(b + 1) * bb]);
            let dst = &mut panel.qs[b * KPANEL_BLOCK..(b + 1) * KPANEL_BLOCK];
            if K == Q6K {
                values_6::<K>(&blk, dst, half);
            } else {
                values_45::<K>(&blk, dst, half);
            }
            scales_into::<K>(panel, &blk, b, first);
        }
    }
}

/// Q4_K / Q5_K values of eight rows' super-blocks `blk` into the panel super-block `dst`
/// (rows `8 half ..`): the 32 `qs` bytes of sub-blocks `2c`, `2c + 1` hold element `l` of
/// the first in the low nibble of byte `l`, of the second in the high nibble (Q5_K: their
/// fifth bits are bits `2c`, `2c + 1` of `qh[l]`).
#[target_feature(enable = "avx2,fma,f16c")]
fn values_45<const K: u8>(blk: &[&[u8]; HALF], dst: &mut [u8], half: usize) {
    let qs_at = if K == Q5K { 48 } else { 16 };
    let low = _mm256_set1_epi8(0x0f);
    let one = _mm256_set1_epi8(1);
    let qh = if K == Q5K {
        [transpose!(blk, 16), transpose!(blk, 32)]
    } else {
        [[_mm256_setzero_si256(); 4]; 2]
    };
    for c in 0..4 {
        let bit_lo = _mm256_set1_epi8(1 << (2 * c));
        let bit_hi = _mm256_set1_epi8(1 << (2 * c + 1));
        for (g, qhg) in qh.iter().enumerate() {
            let p = transpose!(blk, qs_at + 32 * c + 16 * g);
            for k in 0..4 {
                let mut lo = _mm256_and_si256(p[k], low);
                let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(p[k]), low);
                if K == Q5K {
                    // Bit `m` of each byte of `qh` as 0x10: (qh & m) min 1, times 16.
                    let bit = |m: __m256i| {
                        let v = _mm256_min_epu8(_mm256_and_si256(qhg[k], m), one);
                        _mm256_slli_epi16::<4>(v)
                    };
                    lo = _mm256_or_si256(lo, bit(bit_lo));
                    hi = _mm256_or_si256(hi, bit(bit_hi));
                }
                // Elements 64c + 16g + 4k .. (run 16c + 4g + k) and 32 further on.
                let run = 16 * c + 4 * g + k;
                store_bytes(&mut dst[run * 64 + 32 * half..], lo);
                store_bytes(&mut dst[(run + 8) * 64 + 32 * half..], hi);
            }
        }
    }
}

/// Q6_K values of eight rows' super-blocks `blk` into the panel super-block `dst` (rows
/// `8 half ..`): per half `h` of a block, byte `l` (0..32) of `ql[64h ..]`, `ql[64h + 32
/// ..]` and `qh[128 + 32h ..]` gives elements `l`, `l + 32`, `l + 64`, `l + 96` (stored as
/// `q + 32`, unsigned).
#[target_feature(enable = "avx2,fma,f16c")]
fn values_6<const K: u8>(blk: &[&[u8]; HALF], dst: &mut [u8], half: usize) {
    for h in 0..2 {
        for g in 0..2 {
            let qa = transpose!(blk, 64 * h + 16 * g);
            let qb = transpose!(blk, 64 * h + 32 + 16 * g);
            let qh = transpose!(blk, 128 + 32 * h + 16 * g);
            for k in 0..4 {
                let v = values_q6(qa[k], qb[k], qh[k]);
                for (i, vi) in v.into_iter().enumerate() {
                    // Elements 128h + 32i + 16g + 4k ..
                    let run = 32 * h + 8 * i + 4 * g + k;
                    store_bytes(&mut dst[run * 64 + 32 * half..], vi);
                }
            }
        }
    }
}

/// The scales of eight rows' super-blocks `blk` (super-block `b`, panel rows `first ..`)
/// into the panel's `sc`, `pairs`, `d` and `dmin`.
#[target_feature(enable = "avx2,fma,f16c")]
fn scales_into<const K: u8>(panel: &mut KPanel, blk: &[&[u8]; HALF], b: usize, first: usize) {
    let (ns, np) = (subs(K), pairs(K));
    let sc_at = |j: usize| ((b * ns + j) * PANEL + first) * 2;
    let pair_at = |p: usize| ((b * np + p) * PANEL + first) * 2;
    let d_at = b * PANEL + first;
    if K == Q6K {
        // Scales 4k .. 4k + 4 of every row in register k.
        let sc = transpose!(blk, 192);
        for j in 0..ns {
            let v = byte_i16x2(sc[j / 4], (j % 4) as i8);
            store_i16(&mut panel.sc[sc_at(j)..], v);
        }
        for (k, &s) in sc.iter().enumerate() {
            let s02 = _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(s));
            let s13 = _mm256_srai_epi16::<8>(s);
            store_i16(&mut panel.pairs[pair_at(2 * k)..], s02);
            store_i16(&mut panel.pairs[pair_at(2 * k + 1)..], s13);
        }
        store_f32(&mut panel.d[d_at..], d_of_rows(blk, 208));
        store_f32(&mut panel.dmin[d_at..], _mm256_setzero_ps());
        return;
    }
    let head = transpose!(blk, 0);
    let (dv, mv) = halves_to_f32(head[0]);
    let (u0, u1, u2) = (head[1], head[2], head[3]);
    let (k1, k2, k3) = (
        _mm256_set1_epi32(0x3f3f_3f3f),
        _mm256_set1_epi32(0x0f0f_0f0f),
        _mm256_set1_epi32(0x0303_0303),
    );
    // ggml's unpacking of the 6-bit scales (sc) and mins (m): sc 0-3, sc 4-7, m 0-3, m 4-7.
    let hi2 = |u: __m256i| _mm256_slli_epi32::<4>(_mm256_and_si256(_mm256_srli_epi32::<6>(u), k3));
    let sc = [
        _mm256_and_si256(u0, k1),
        _mm256_or_si256(_mm256_and_si256(u2, k2), hi2(u0)),
    ];
    let m = [
        _mm256_and_si256(u1, k1),
        _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32::<4>(u2), k2), hi2(u1)),
    ];
    for j in 0..ns {
        let v = byte_u16x2(sc[j / 4], (j % 4) as i8);
        store_i16(&mut panel.sc[sc_at(j)..], v);
    }
    let even = _mm256_set1_epi32(0x00ff_00ff);
    for (h, &mh) in m.iter().enumerate() {
        // (min 4h, min 4h + 2) and (min 4h + 1, min 4h + 3).
        store_i16(
            &mut panel.pairs[pair_at(2 * h)..],
            _mm256_and_si256(mh, even),
        );
        store_i16(
            &mut panel.pairs[pair_at(2 * h + 1)..],
            _mm256_srli_epi16::<8>(mh),
        );
    }
    store_f32(&mut panel.d[d_at..], dv);
    store_f32(&mut panel.dmin[d_at..], mv);
}
