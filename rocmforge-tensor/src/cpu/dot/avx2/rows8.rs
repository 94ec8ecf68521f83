//! Decode (one token) for the nibble formats Q4_0, Q4_1, Q5_0 and Q5_1: eight rows at a
//! time with their per-block integer sums landing side by side, one row per i32 lane,
//! without a horizontal-sum tree.
//!
//! The packed bytes of one block of eight rows are transposed in registers (the four
//! 32-bit words of each row's 16 `qs` bytes: two `unpack` rounds), so register `k` holds
//! bytes `4k .. 4k + 4` of every row, row `r` in lane `r`. Their low nibbles are values
//! `4k .. 4k + 4` of the block, their high nibbles values `16 + 4k ..`: `maddubs` against
//! those four activation bytes broadcast to every lane adds the products into each row's
//! own lane. The unsigned nibbles (plus the fifth bit for Q5) multiply the signed
//! activations directly; the symmetric formats' offset (8 for Q4_0, 16 for Q5_0) comes off
//! the integer sum as `offset * sum(activations of the block)`, exact in integers. So each
//! row's block sum is the scalar path's integer, and the f32 terms are formed and added in
//! its order: the same bits as the portable path, the tiles and the VNNI GEMM.

use std::arch::x86_64::*;

use super::legacy::{Q4_0, Q4_1, Q5_0, add_terms, block_bytes, has_min, store_rows};
use super::{Ahead, ROWS, load16};
use crate::cpu::dot::QK;
use crate::cpu::quantize_act::Q8Blocks;

/// Offset of the 16 `qs` bytes inside a block of kind `K`.
const fn qs_at(k: u8) -> usize {
    match k {
        Q4_0 => 2,
        Q4_1 => 4,
        Q5_0 => 6,
        _ => 8,
    }
}

/// Whether kind `K` has a fifth bit per value (`qh`, the four bytes before `qs`).
const fn has_qh(k: u8) -> bool {
    qs_at(k) >= 6
}

/// What the symmetric formats subtract from each unsigned value (0 for Q4_1 / Q5_1).
pub(in crate::cpu::dot) const fn offset(k: u8) -> i32 {
    match k {
        Q4_0 => 8,
        Q5_0 => 16,
        _ => 0,
    }
}

/// The 16 bytes at `$at` of each of the eight rows `$rows` as four registers: register
/// `k` holds bytes `4k .. 4k + 4` of row `r` in its 32-bit lane `r`. (A macro so that it
/// is always inlined: LLVM kept the function apart, its four results going through memory.)
macro_rules! transpose {
    ($rows:expr, $at:expr) => {{
        let (rows, at) = ($rows, $at);
        let y0 = _mm256_set_m128i(load16(&rows[4][at..]), load16(&rows[0][at..]));
        let y1 = _mm256_set_m128i(load16(&rows[5][at..]), load16(&rows[1][at..]));
        let y2 = _mm256_set_m128i(load16(&rows[6][at..]), load16(&rows[2][at..]));
        let y3 = _mm256_set_m128i(load16(&rows[7][at..]), load16(&rows[3][at..]));
        // Per 128-bit half: rows (0, 1) and (2, 3) of words (0, 1) and (2, 3) interleaved.
        let (a, b) = (_mm256_unpacklo_epi32(y0, y1), _mm256_unpackhi_epi32(y0, y1));
        let (c, d) = (_mm256_unpacklo_epi32(y2, y3), _mm256_unpackhi_epi32(y2, y3));
        [
            _mm256_unpacklo_epi64(a, c),
            _mm256_unpackhi_epi64(a, c),
            _mm256_unpacklo_epi64(b, d),
            _mm256_unpackhi_epi64(b, d),
        ]
    }};
}
pub(in crate::cpu::dot) use transpose;

/// Per block of one token's activations, the sum of its 32 quantized values (what the
/// symmetric formats' offset is multiplied with).
pub(in crate::cpu::dot) fn block_sums(act: &Q8Blocks) -> Vec<i32> {
    act.qs
        .chunks_exact(QK)
        .map(|b| b.iter().map(|&q| i32::from(q)).sum())
        .collect()
}

/// One token's Q8_0 / Q8_1 blocks as a kernel of this file reads them: `nb` blocks of
/// quantized values, their scales, their `d * sum` (Q8_1; empty for Q8_0) and their integer
/// sums ([`block_sums`]), each slice exactly `nb` long.
#[derive(Clone, Copy)]
pub(in crate::cpu::dot) struct TokenBlocks<'a> {
    qs: &'a [[i8; QK]],
    d: &'a [f32],
    s: &'a [f32],
    sum: &'a [i32],
}

impl<'a> TokenBlocks<'a> {
    /// Token `t` of `act` (blocks of `nb` per token, token after token) with its block sums
    /// `asum` (the same layout). Panics if `act` holds fewer tokens (callers check shapes).
    pub(in crate::cpu::dot) fn of(act: &'a Q8Blocks, asum: &'a [i32], nb: usize, t: usize) -> Self {
        let r = t * nb..(t + 1) * nb;
        TokenBlocks {
            qs: &act.qs.as_chunks::<QK>().0[r.clone()],
            d: &act.d[r.clone()],
            s: if act.s.is_empty() {
                &[]
            } else {
                &act.s[r.clone()]
            },
            sum: &asum[r],
        }
    }
}

/// `out[r] = rows[r] · token 0` for kind `K` (one of the nibble formats, `BB` its block
/// bytes); `asum` is [`block_sums`] of `act`. See the module docs.
#[target_feature(enable = "avx2,fma,f16c")]
pub(in crate::cpu::dot) fn rows<const K: u8, const BB: usize>(
    rows: [&[u8]; ROWS],
    act: &Q8Blocks,
    asum: &[i32],
    ahead: Ahead,
    out: &mut [f32],
) {
    let token = TokenBlocks::of(act, asum, act.d.len(), 0);
    let [acc] = rows_n::<K, BB, 1>(rows, [token], ahead);
    store_rows(acc, out);
}

/// `out[j][r] = rows[r] · tokens[j]` for `N` (1 to 4) tokens (`out[j]` holds as many rows as
/// count, at most [`ROWS`]): the eight rows' blocks transposed once for all the tokens, each
/// (row, token) summed as [`rows`] sums it (the same bits).
#[target_feature(enable = "avx2,fma,f16c")]
pub(in crate::cpu::dot) fn rows_tokens<const K: u8, const BB: usize, const N: usize>(
    rows: [&[u8]; ROWS],
    tokens: [TokenBlocks; N],
    ahead: Ahead,
    out: [&mut [f32; ROWS]; N],
) {
    let acc = rows_n::<K, BB, N>(rows, tokens, ahead);
    for (a, o) in acc.into_iter().zip(out) {
        store_rows(a, o);
    }
}

/// The eight rows' f32 sums against each of `N` tokens, row `r` in lane `r` (see the module
/// docs). Every token's blocks are `nb` long, as are the rows (callers pass whole rows).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn rows_n<const K: u8, const BB: usize, const N: usize>(
    rows: [&[u8]; ROWS],
    tokens: [TokenBlocks; N],
    ahead: Ahead,
) -> [__m256; N] {
    const { assert!(BB == block_bytes(K) && N >= 1 && N <= 4) };
    let low = _mm256_set1_epi8(0x0f);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [_mm256_setzero_ps(); N];
    let nb = tokens[0].d.len();
    // Indexed by block without checks inside the loop (with a check per load of the eight
    // rows, the checks were most of the loop's instructions).
    let blocks = rows.map(|r| &r.as_chunks::<BB>().0[..nb]);
    let tokens = tokens.map(|t| TokenBlocks {
        qs: &t.qs[..nb],
        d: &t.d[..nb],
        s: if has_min(K) { &t.s[..nb] } else { &[] },
        sum: &t.sum[..nb],
    });
    for b in 0..nb {
        ahead.part(b);
        let blk = blocks.map(|r| &r[b]);
        // The block's first eight bytes, row `r` in lane `r`: `d` (and `m` for Q4_1 /
        // Q5_1) in word 0, `qh` after them.
        let head = transpose!(blk, 0);
        let p = transpose!(blk, qs_at(K));
        let qh = match K {
            Q5_0 => _mm256_or_si256(
                _mm256_srli_epi32::<16>(head[0]),
                _mm256_slli_epi32::<16>(head[1]),
            ),
            _ => head[1],
        };
        let mut sums = [_mm256_setzero_si256(); N];
        let mut s16 = [_mm256_setzero_si256(); N];
        for (k, &pk) in p.iter().enumerate() {
            let mut lo = _mm256_and_si256(pk, low);
            let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(pk), low);
            if has_qh(K) {
                lo = _mm256_or_si256(lo, fifth_bits(qh, k, false));
                hi = _mm256_or_si256(hi, fifth_bits(qh, k, true));
            }
            for j in 0..N {
                let aq = &tokens[j].qs[b];
                let s = _mm256_add_epi16(
                    _mm256_maddubs_epi16(lo, broadcast4(&aq[4 * k..])),
                    _mm256_maddubs_epi16(hi, broadcast4(&aq[16 + 4 * k..])),
                );
                s16[j] = _mm256_add_epi16(s16[j], s);
                // Each i16 lane holds 4 products per `k`, each at most 31 * 128 in
                // magnitude: four `k` of 4-bit values (16 * 15 * 128) and two of 5-bit
                // values (8 * 31 * 128) stay below 2^15.
                if !has_qh(K) && k == 3 || has_qh(K) && k % 2 == 1 {
                    sums[j] = _mm256_add_epi32(sums[j], _mm256_madd_epi16(s16[j], ones));
                    s16[j] = _mm256_setzero_si256();
                }
            }
        }
        let (dv, mv) = halves_to_f32(head[0]);
        for j in 0..N {
            let t = &tokens[j];
            if offset(K) != 0 {
                let off = _mm256_set1_epi32(offset(K) * t.sum[b]);
                sums[j] = _mm256_sub_epi32(sums[j], off);
            }
            let s = if has_min(K) { t.s[b] } else { 0.0 };
            let sf = _mm256_cvtepi32_ps(sums[j]);
            acc[j] = add_terms::<K>(acc[j], dv, mv, t.d[b], s, sf);
        }
    }
    acc
}

/// The low and the high f16 of each 32-bit lane of `v`, widened to f32 (lane order kept).
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub(in crate::cpu::dot) fn halves_to_f32(v: __m256i) -> (__m256, __m256) {
    // Per 128-bit half: the four low halves, then the four high halves.
    let split = _mm256_setr_epi8(
        0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7, 10, 11, 14, 15, 0, 1, 4, 5, 8, 9, 12, 13, 2, 3, 6, 7,
        10, 11, 14, 15,
    );
    // 64-bit words (low 0-3, high 0-3, low 4-7, high 4-7) to (low 0-7, high 0-7).
    let v = _mm256_permute4x64_epi64::<0b11_01_10_00>(_mm256_shuffle_epi8(v, split));
    (
        _mm256_cvtph_ps(_mm256_castsi256_si128(v)),
        _mm256_cvtph_ps(_mm256_extracti128_si256::<1>(v)),
    )
}

/// The four bytes at the start of `a` repeated in every 32-bit lane.
#[target_feature(enable = "avx2")]
#[inline]
pub(in crate::cpu::dot) fn broadcast4(a: &[i8]) -> __m256i {
    _mm256_set1_epi32(i32::from_le_bytes([
        a[0] as u8, a[1] as u8, a[2] as u8, a[3] as u8,
    ]))
}

/// `0x10` in byte `i` of lane `r` where value `4k + i` (`16 + 4k + i` when `high`) of row
/// `r` has its fifth bit set (bit `4k + i`, or `16 + 4k + i`, of the row's `qh` in `qh`'s
/// lane `r`), else 0.
#[target_feature(enable = "avx2")]
#[inline]
fn fifth_bits(qh: __m256i, k: usize, high: bool) -> __m256i {
    // Bits 4k.. (16 + 4k.. when high) sit in byte (4k + 16 high) / 8 of the lane, at bit
    // offset 4 for odd k.
    let byte = (4 * k + if high { 16 } else { 0 }) / 8;
    let pick = match byte {
        0 => _mm256_set1_epi32(0x0000_0000),
        1 => _mm256_set1_epi32(0x0101_0101),
        2 => _mm256_set1_epi32(0x0202_0202),
        _ => _mm256_set1_epi32(0x0303_0303),
    };
    // `pshufb` indexes within each 128-bit half: lanes 1..4 of a half start at bytes 4, 8, 12.
    let base = _mm256_setr_epi32(
        0,
        0x0404_0404,
        0x0808_0808,
        0x0c0c_0c0c,
        0,
        0x0404_0404,
        0x0808_0808,
        0x0c0c_0c0c,
    );
    let v = _mm256_shuffle_epi8(qh, _mm256_add_epi8(base, pick));
    let mask = if k % 2 == 0 {
        _mm256_set1_epi32(0x0804_0201)
    } else {
        _mm256_set1_epi32(0x8040_2010u32 as i32)
    };
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}
