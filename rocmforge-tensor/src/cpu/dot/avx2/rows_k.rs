//! Decode (one token) for Q4_K, Q5_K and Q6_K: eight rows at a time, each row's exact
//! super-block sums in its own i32 lane, as `rows8.rs` does for the 32-element formats.
//!
//! The packed bytes of eight rows are transposed in registers 16 at a time (`transpose!`):
//! register `k` then holds bytes `4k .. 4k + 4` of every row, row `r` in lane `r`. The
//! values those bytes carry (nibbles, plus Q6_K's two high bits) multiply four activation
//! bytes broadcast to every lane (`maddubs`), 16-bit partial sums of one sub-block are added
//! while they cannot overflow, and one `madd` with the rows' sub-block scales (row `r`'s
//! scale in both i16 of lane `r`) turns them into the scaled i32 sums. The 6-bit scales and
//! mins of Q4_K / Q5_K are unpacked for the eight rows at once with ggml's mask arithmetic
//! on the transposed scale words; their mins term `sum_j min_j * (bsum_2j + bsum_2j+1)` and
//! Q6_K's offset term `32 * sum_s scale_s * bsum_s` (its values are stored as `q + 32`) are
//! `madd`s against the activations' block sums packed in i16 pairs ([`act_sums`], once per
//! matvec). So each row's `isum` and `msum` are the scalar path's integers (`dot_k`), and
//! its f32 terms are formed and added in that path's order, lane by lane: the same bits as
//! the portable path and the token tiles.
//!
//! Measured (one thread, 896 x 4864, fastest of many calls, a shared Xeon with AVX-512):
//! Q4_K 1.66x, Q5_K ~1.2x, Q6_K 1.26x the one-row kernel (`kquant.rs`), 13-17 GB/s of
//! weights. llvm-mca (sapphirerapids) puts Q6_K's inner loop at ~36 cycles per 8 rows and
//! quarter block, ~100 us for that shape at 3 GHz against 272 us measured: the 3.5 MB
//! weight does not fit the 2 MB L2, so the rest is most likely the weight stream.

use std::arch::x86_64::*;

use super::legacy::store_rows;
use super::rows8::{broadcast4, halves_to_f32, transpose};
use super::{Ahead, KKind, ROWS, load16};
use crate::cpu::dot::kquant::QK_K;
use crate::cpu::quantize_act::Q8KBlocks;

/// Packed i16 pairs of activation block sums per super-block in [`act_sums`].
pub(in crate::cpu::dot) const SUMS_PER_BLOCK: usize = 8;

/// Two i16 in one i32 lane (low, high), as `madd` reads them.
fn pack(lo: i32, hi: i32) -> i32 {
    (i32::from(lo as i16) & 0xffff) | (i32::from(hi as i16) << 16)
}

/// Per super-block of one token's Q8_K activations, [`SUMS_PER_BLOCK`] pairs of block sums
/// (each at most 32 * 127 in magnitude, so an i16 holds it) in the order the kernel of
/// `kind` multiplies them with its rows' mins or scales:
/// - Q4_K, Q5_K: the sums of sub-blocks of 32 (`p_j = bsum_2j + bsum_2j+1`) as `(p0, p2)`,
///   `(p1, p3)`, `(p4, p6)`, `(p5, p7)`, then zeros;
/// - Q6_K: the sums of sub-blocks of 16 as `(b_4k, b_4k+2)`, `(b_4k+1, b_4k+3)` for `k` in 0..4.
pub(in crate::cpu::dot) fn act_sums(kind: KKind, act: &Q8KBlocks) -> Vec<i32> {
    let mut out = Vec::with_capacity(act.d.len() * SUMS_PER_BLOCK);
    for b in act.bsums.chunks_exact(QK_K / 16) {
        if kind == KKind::Q6K {
            for k in 0..4 {
                out.push(pack(b[4 * k], b[4 * k + 2]));
                out.push(pack(b[4 * k + 1], b[4 * k + 3]));
            }
        } else {
            let p = |j: usize| b[2 * j] + b[2 * j + 1];
            out.extend([pack(p(0), p(2)), pack(p(1), p(3)), pack(p(4), p(6))]);
            out.extend([pack(p(5), p(7)), 0, 0, 0, 0]);
        }
    }
    out
}

/// Byte `j` (0..4) of each 32-bit lane of `v`, zero-extended, in both i16 of the lane.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn byte_u16x2(v: __m256i, j: i8) -> __m256i {
    // Per lane L of a 128-bit half the indices (4L, -, 4L, -); 0x80 clears a byte.
    let base = _mm256_setr_epi32(
        0x8000_8000u32 as i32,
        0x8004_8004u32 as i32,
        0x8008_8008u32 as i32,
        0x800c_800cu32 as i32,
        0x8000_8000u32 as i32,
        0x8004_8004u32 as i32,
        0x8008_8008u32 as i32,
        0x800c_800cu32 as i32,
    );
    _mm256_shuffle_epi8(v, _mm256_add_epi8(base, _mm256_set1_epi8(j)))
}

/// Byte `j` (0..4) of each 32-bit lane of `v`, sign-extended, in both i16 of the lane.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn byte_i16x2(v: __m256i, j: i8) -> __m256i {
    // Per lane L the indices (-, 4L, -, 4L): the byte lands in the high half of each i16.
    let base = _mm256_setr_epi32(
        0x0080_0080,
        0x0480_0480,
        0x0880_0880,
        0x0c80_0c80,
        0x0080_0080,
        0x0480_0480,
        0x0880_0880,
        0x0c80_0c80,
    );
    let hi = _mm256_shuffle_epi8(v, _mm256_add_epi8(base, _mm256_set1_epi8(j)));
    _mm256_srai_epi16::<8>(hi)
}

/// See [`super::k_rows`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn rows(
    kind: KKind,
    rows: [&[u8]; ROWS],
    act: &Q8KBlocks,
    sums: &[i32],
    ahead: Ahead,
    out: &mut [f32],
) {
    match kind {
        KKind::Q4K => rows_q45_k::<false, 144>(rows, act, sums, ahead, out),
        KKind::Q5K => rows_q45_k::<true, 176>(rows, act, sums, ahead, out),
        KKind::Q6K => rows_q6_k(rows, act, sums, ahead, out),
    }
}

/// Q4_K (`FIVE == false`) and Q5_K: `d`, `dmin` and the 12 scale bytes are the first 16
/// bytes of a block (one transpose); then Q5_K's 32 `qh` bytes; then 128 `qs` bytes, each
/// 32 of them holding sub-block `2c` in their low nibbles and `2c + 1` in their high
/// nibbles (Q5_K: the fifth bit of value `l` of sub-block `s` is bit `s` of `qh[l]`).
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q45_k<const FIVE: bool, const BLOCK: usize>(
    rows: [&[u8]; ROWS],
    act: &Q8KBlocks,
    sums: &[i32],
    ahead: Ahead,
    out: &mut [f32],
) {
    let qs_at = if FIVE { 48 } else { 16 };
    let chunks = rows.map(|r| r.as_chunks::<BLOCK>().0);
    let low = _mm256_set1_epi8(0x0f);
    let one = _mm256_set1_epi8(1);
    let (k1, k2, k3) = (
        _mm256_set1_epi32(0x3f3f_3f3f),
        _mm256_set1_epi32(0x0f0f_0f0f),
        _mm256_set1_epi32(0x0303_0303),
    );
    let mut acc = _mm256_setzero_ps();
    // The activations' blocks as arrays: the constant offsets into them need no checks.
    let blocks = act.qs.as_chunks::<QK_K>().0.iter().zip(&act.d);
    for (b, ((aq, &ad), ps)) in blocks.zip(sums.chunks_exact(SUMS_PER_BLOCK)).enumerate() {
        ahead.part(b);
        // This block of each row, as arrays: offsets below their length need no checks.
        let blk = chunks.map(|c| &c[b]);
        let head = transpose!(blk, 0);
        let (dv, mv) = halves_to_f32(head[0]);
        let (u0, u1, u2) = (head[1], head[2], head[3]);
        // ggml's unpacking of the 6-bit scales (sc) and mins (m): sc 0-3, sc 4-7, m 0-3, m 4-7.
        let hi2 =
            |u: __m256i| _mm256_slli_epi32::<4>(_mm256_and_si256(_mm256_srli_epi32::<6>(u), k3));
        let sc = [
            _mm256_and_si256(u0, k1),
            _mm256_or_si256(_mm256_and_si256(u2, k2), hi2(u0)),
        ];
        let m = [
            _mm256_and_si256(u1, k1),
            _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32::<4>(u2), k2), hi2(u1)),
        ];
        let even = _mm256_set1_epi32(0x00ff_00ff);
        let mut msum = _mm256_setzero_si256();
        for (h, &mh) in m.iter().enumerate() {
            let pair = |i: usize| _mm256_set1_epi32(ps[2 * h + i]);
            let m02 = _mm256_madd_epi16(_mm256_and_si256(mh, even), pair(0));
            let m13 = _mm256_madd_epi16(_mm256_srli_epi16::<8>(mh), pair(1));
            msum = _mm256_add_epi32(msum, _mm256_add_epi32(m02, m13));
        }
        let qh = if FIVE {
            [transpose!(blk, 16), transpose!(blk, 32)]
        } else {
            [[_mm256_setzero_si256(); 4]; 2]
        };
        let mut isum = _mm256_setzero_si256();
        for c in 0..4 {
            let s = sc[c / 2];
            let j = 2 * (c % 2) as i8;
            let (slo, shi) = (byte_u16x2(s, j), byte_u16x2(s, j + 1));
            // Q5_K: the fifth bits of sub-blocks 2c and 2c + 1.
            let bit_lo = _mm256_set1_epi8(1 << (2 * c));
            let bit_hi = _mm256_set1_epi8(1 << (2 * c + 1));
            for (g, qhg) in qh.iter().enumerate() {
                // 16-bit sums of 8 products (sub-block 2c from the low nibbles, 2c + 1 from
                // the high ones) of at most 31 * 127 each per i16 lane: below 2^15.
                let (mut lo16, mut hi16) = (_mm256_setzero_si256(), _mm256_setzero_si256());
                let p = transpose!(blk, qs_at + 32 * c + 16 * g);
                for k in 0..4 {
                    let pos = 64 * c + 16 * g + 4 * k;
                    let mut lo = _mm256_and_si256(p[k], low);
                    let mut hi = _mm256_and_si256(_mm256_srli_epi16::<4>(p[k]), low);
                    if FIVE {
                        // Bit `m` of each byte of `qh` as 0x10: (qh & m) min 1, times 16.
                        let bit = |m: __m256i| {
                            let v = _mm256_min_epu8(_mm256_and_si256(qhg[k], m), one);
                            _mm256_slli_epi16::<4>(v)
                        };
                        lo = _mm256_or_si256(lo, bit(bit_lo));
                        hi = _mm256_or_si256(hi, bit(bit_hi));
                    }
                    let plo = _mm256_maddubs_epi16(lo, broadcast4(&aq[pos..]));
                    let phi = _mm256_maddubs_epi16(hi, broadcast4(&aq[pos + 32..]));
                    lo16 = _mm256_add_epi16(lo16, plo);
                    hi16 = _mm256_add_epi16(hi16, phi);
                }
                let both =
                    _mm256_add_epi32(_mm256_madd_epi16(lo16, slo), _mm256_madd_epi16(hi16, shi));
                isum = _mm256_add_epi32(isum, both);
            }
        }
        let adv = _mm256_set1_ps(ad);
        let term = _mm256_mul_ps(_mm256_mul_ps(dv, adv), _mm256_cvtepi32_ps(isum));
        acc = _mm256_add_ps(acc, term);
        let mterm = _mm256_mul_ps(_mm256_mul_ps(mv, adv), _mm256_cvtepi32_ps(msum));
        acc = _mm256_sub_ps(acc, mterm);
    }
    store_rows(acc, out);
}

/// The f16 at byte `at` of eight rows' blocks, widened to f32, row `r` in lane `r` (the
/// decode rows' and the K panels' Q6_K `d`).
#[target_feature(enable = "avx2,f16c")]
#[inline]
pub(super) fn d_of_rows<R: AsRef<[u8]>>(rows: &[R; ROWS], at: usize) -> __m256 {
    let h = |r: usize| {
        let b = rows[r].as_ref();
        i16::from_le_bytes([b[at], b[at + 1]])
    };
    _mm256_cvtph_ps(_mm_setr_epi16(
        h(0),
        h(1),
        h(2),
        h(3),
        h(4),
        h(5),
        h(6),
        h(7),
    ))
}

/// Q6_K: per half `n` of a block, `ql` bytes `64n .. 64n + 64` and `qh` bytes
/// `128 + 32n ..`; byte `l` (0..32) of each gives elements `l`, `l + 32`, `l + 64`,
/// `l + 96` of the half (low nibble of `ql[l]`, of `ql[l + 32]`, high nibbles; the
/// `qh` bit pairs 0-1, 2-3, 4-5, 6-7). The values are stored as `q + 32` (unsigned);
/// `32 * sum_s scale_s * bsum_s` comes off the integer sum afterwards.
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q6_k(rows: [&[u8]; ROWS], act: &Q8KBlocks, sums: &[i32], ahead: Ahead, out: &mut [f32]) {
    const BLOCK: usize = 210;
    let chunks = rows.map(|r| r.as_chunks::<BLOCK>().0);
    let mut acc = _mm256_setzero_ps();
    let blocks = act.qs.as_chunks::<QK_K>().0.iter().zip(&act.d);
    for (b, ((aq, &ad), bs)) in blocks.zip(sums.chunks_exact(SUMS_PER_BLOCK)).enumerate() {
        ahead.part(b);
        // This block of each row, as arrays: offsets below their length need no checks.
        let blk = chunks.map(|c| &c[b]);
        // Scales 4k .. 4k + 4 of every row in register k.
        let sc = transpose!(blk, 192);
        let mut off = _mm256_setzero_si256();
        for (k, &s) in sc.iter().enumerate() {
            let s02 = _mm256_srai_epi16::<8>(_mm256_slli_epi16::<8>(s));
            let s13 = _mm256_srai_epi16::<8>(s);
            let p02 = _mm256_madd_epi16(s02, _mm256_set1_epi32(bs[2 * k]));
            let p13 = _mm256_madd_epi16(s13, _mm256_set1_epi32(bs[2 * k + 1]));
            off = _mm256_add_epi32(off, _mm256_add_epi32(p02, p13));
        }
        let mut isum = _mm256_setzero_si256();
        for n in 0..2 {
            for g in 0..2 {
                // Positions l = 16g .. 16g + 16 of half n: sub-blocks 8n + g + 2i for the
                // four values i of each byte.
                let qa = transpose!(blk, 64 * n + 16 * g);
                let qb = transpose!(blk, 64 * n + 32 + 16 * g);
                let qh = transpose!(blk, 128 + 32 * n + 16 * g);
                let s = [0, 1, 2, 3].map(|i| {
                    let sub = 8 * n + g + 2 * i;
                    byte_i16x2(sc[sub / 4], (sub % 4) as i8)
                });
                let a = &aq[128 * n + 16 * g..];
                // Per value i, a 16-bit sum of 4 products of at most 63 * 127 (two bytes
                // k, k + 1): below 2^15.
                for k in [0, 2] {
                    let v0 = values_q6(qa[k], qb[k], qh[k]);
                    let v1 = values_q6(qa[k + 1], qb[k + 1], qh[k + 1]);
                    for i in 0..4 {
                        let p0 = _mm256_maddubs_epi16(v0[i], broadcast4(&a[32 * i + 4 * k..]));
                        let p1 = _mm256_maddubs_epi16(v1[i], broadcast4(&a[32 * i + 4 * k + 4..]));
                        let t = _mm256_madd_epi16(_mm256_add_epi16(p0, p1), s[i]);
                        isum = _mm256_add_epi32(isum, t);
                    }
                }
            }
        }
        isum = _mm256_sub_epi32(isum, _mm256_slli_epi32::<5>(off));
        let dv = d_of_rows(&blk, 208);
        let term = _mm256_mul_ps(
            _mm256_mul_ps(dv, _mm256_set1_ps(ad)),
            _mm256_cvtepi32_ps(isum),
        );
        acc = _mm256_add_ps(acc, term);
    }
    store_rows(acc, out);
}

/// The four unsigned 6-bit values of each byte position of Q6_K's `ql[l]` (`qa`),
/// `ql[l + 32]` (`qb`) and `qh[l]` (`qh`): elements `l`, `l + 32`, `l + 64`, `l + 96`.
#[target_feature(enable = "avx2")]
#[inline]
pub(super) fn values_q6(qa: __m256i, qb: __m256i, qh: __m256i) -> [__m256i; 4] {
    let low = _mm256_set1_epi8(0x0f);
    let m = _mm256_set1_epi8(0x30);
    [
        _mm256_or_si256(
            _mm256_and_si256(qa, low),
            _mm256_and_si256(_mm256_slli_epi16::<4>(qh), m),
        ),
        _mm256_or_si256(
            _mm256_and_si256(qb, low),
            _mm256_and_si256(_mm256_slli_epi16::<2>(qh), m),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(qa), low),
            _mm256_and_si256(qh, m),
        ),
        _mm256_or_si256(
            _mm256_and_si256(_mm256_srli_epi16::<4>(qb), low),
            _mm256_and_si256(_mm256_srli_epi16::<2>(qh), m),
        ),
    ]
}
