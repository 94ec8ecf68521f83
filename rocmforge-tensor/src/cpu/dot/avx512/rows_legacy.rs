//! The 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against one token's Q8_0 / Q8_1
//! activations (decode): rows straight from their packed blocks, four rows at a time, two
//! blocks per 512-bit register, one `vpdpbusd` per row and pair of blocks.
//!
//! The weights go in as unsigned bytes: Q4_0's nibbles as they are (the `- 8` becomes
//! `-8 * sum(q_a)`, the integer sum's starting value), Q4_1 / Q5_1 as they are, Q5_0 and
//! Q8_0 plus 128 (starting at `-128 * sum(q_a)`); the lanes of each block are summed to the
//! block's exact integer sum, and the f32 terms are formed and added in block order with the
//! scalar path's operations, so the results are the scalar path's (and the panel GEMM's),
//! bit for bit. An odd last block goes through one 256-bit `vpdpbusd`.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::LegacyMatrix;
use crate::cpu::dot::QK;
use crate::cpu::dot::avx2::legacy::{Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, block_bytes, decode, has_min};
use crate::cpu::quantize_act::Q8Blocks;

/// Weight rows per rayon task (a multiple of [`ROWS`]).
const ROWS_PER_TASK: usize = 32;
/// Rows whose block sums are reduced together.
const ROWS: usize = 4;

/// The token's activations.
struct Token<'a> {
    /// The 8-bit values, `cols` of them (a pair of blocks is 64 consecutive bytes).
    qs: &'a [i8],
    /// Per pair of blocks: the two blocks' starting integer sums in lanes 0 and 8 (the
    /// first 128-bit lane of each half), zeros elsewhere.
    start: Vec<i32>,
    /// The odd last block's starting integer sum (0 when `nb` is even).
    tail_start: i32,
    /// Per block `d` (an f16 value).
    d: &'a [f32],
    /// Q8_1 only: per block `d * sum(q)`.
    s: &'a [f32],
}

/// Starting value of a pair's integer sum per unit of `sum(q_a)`.
const fn pair_offset(k: u8) -> i32 {
    match k {
        Q4_0 => -8,
        Q5_0 | Q8_0 => -128,
        _ => 0,
    }
}

fn kind_const(kind: super::LegacyKind) -> u8 {
    use super::LegacyKind::*;
    match kind {
        Q4_0 => self::Q4_0,
        Q4_1 => self::Q4_1,
        Q5_0 => self::Q5_0,
        Q5_1 => self::Q5_1,
        Q8_0 => self::Q8_0,
    }
}

/// See [`super::legacy_rows`].
pub(super) fn rows(w: &LegacyMatrix, act: &Q8Blocks, out: &mut [f32]) -> bool {
    let k = kind_const(w.kind);
    let nb = w.cols / QK;
    let fits = w.cols % QK == 0
        && w.row_bytes == nb * block_bytes(k)
        && Some(w.data.len()) == w.rows.checked_mul(w.row_bytes)
        && act.qs.len() == w.cols
        && act.d.len() == nb
        && (!has_min(k) || act.s.len() == nb)
        && out.len() == w.rows;
    if !fits {
        return false;
    }
    let sums: Vec<i32> = act
        .qs
        .chunks_exact(QK)
        .map(|c| c.iter().map(|&q| i32::from(q)).sum())
        .collect();
    let mut start = vec![0i32; nb / 2 * 16];
    for (p, lanes) in start.chunks_exact_mut(16).enumerate() {
        lanes[0] = pair_offset(k) * sums[2 * p];
        lanes[8] = pair_offset(k) * sums[2 * p + 1];
    }
    let tail_start = match (nb % 2, has_min(k)) {
        (1, false) => -128 * sums[nb - 1],
        _ => 0,
    };
    let tok = Token {
        qs: &act.qs,
        start,
        tail_start,
        d: &act.d,
        s: &act.s,
    };
    let last = w.rows - 1;
    out.par_chunks_mut(ROWS_PER_TASK)
        .enumerate()
        .for_each(|(c, chunk)| {
            for (g, outs) in chunk.chunks_mut(ROWS).enumerate() {
                let r0 = c * ROWS_PER_TASK + g * ROWS;
                // A short last group repeats the last row (its results are dropped).
                let row = |i: usize| {
                    let r = (r0 + i).min(last);
                    &w.data[r * w.row_bytes..(r + 1) * w.row_bytes]
                };
                let rows = [row(0), row(1), row(2), row(3)];
                // SAFETY: a `Vnni` token (required by `legacy_rows`, the only caller) exists
                // only when the CPU has every feature `dot4` enables; the sizes were checked.
                let res = unsafe {
                    match k {
                        Q4_0 => dot4::<Q4_0>(rows, &tok),
                        Q4_1 => dot4::<Q4_1>(rows, &tok),
                        Q5_0 => dot4::<Q5_0>(rows, &tok),
                        Q5_1 => dot4::<Q5_1>(rows, &tok),
                        _ => dot4::<Q8_0>(rows, &tok),
                    }
                };
                outs.copy_from_slice(&res[..outs.len()]);
            }
        });
    true
}

/// Four rows (`nb` blocks of kind `K` each) against the token.
///
/// # Safety
/// The CPU has the enabled features; `tok` was built for rows of this length.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn dot4<const K: u8>(rows: [&[u8]; ROWS], tok: &Token) -> [f32; ROWS] {
    let bb = block_bytes(K);
    let nb = rows[0].len() / bb;
    let mut acc = _mm_setzero_ps();
    let acts = tok.qs.chunks_exact(2 * QK).zip(tok.start.chunks_exact(16));
    for (p, (a, start)) in acts.enumerate() {
        // SAFETY: `a` is 64 bytes, `start` 16 lanes; `loadu` needs no alignment.
        let (a, start) = unsafe {
            (
                _mm512_loadu_si512(a.as_ptr().cast()),
                _mm512_loadu_si512(start.as_ptr().cast()),
            )
        };
        let at = 2 * p * bb;
        let sum = |r: &[u8]| {
            let w = pair_values::<K>(&r[at..at + bb], &r[at + bb..at + 2 * bb]);
            _mm512_dpbusd_epi32(start, w, a)
        };
        let sums = reduce4(sum(rows[0]), sum(rows[1]), sum(rows[2]), sum(rows[3]));
        let first = _mm512_castsi512_si128(sums);
        let second = _mm512_extracti32x4_epi32::<2>(sums);
        acc = add_block::<K>(acc, first, rows, at, tok, 2 * p);
        acc = add_block::<K>(acc, second, rows, at + bb, tok, 2 * p + 1);
    }
    let mut out = [0.0f32; ROWS];
    // SAFETY: `out` is 4 writable f32; `storeu` needs no alignment.
    unsafe { _mm_storeu_ps(out.as_mut_ptr(), acc) };
    if nb % 2 == 1 {
        let b = nb - 1;
        let a = &tok.qs[b * QK..(b + 1) * QK];
        for (o, r) in out.iter_mut().zip(rows) {
            let (isum, d, m) = tail::<K>(&r[b * bb..(b + 1) * bb], a, tok.tail_start);
            let mut term = (d * tok.d[b]) * isum as f32;
            if has_min(K) {
                term += m * tok.s[b];
            }
            *o += term;
        }
    }
    out
}

/// `acc + (d_w * d_a) * sum (+ m_w * s_a)` for block `b` of the four rows (its bytes at
/// `at` of each row), with the exact integer sums `sums`: the scalar path's operations.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
fn add_block<const K: u8>(
    acc: __m128,
    sums: __m128i,
    rows: [&[u8]; ROWS],
    at: usize,
    tok: &Token,
    b: usize,
) -> __m128 {
    // [d, m] of each row's block as 8 halves, widened and split into d's and m's.
    let dm = _mm_set_epi32(
        le32(&rows[3][at..]) as i32,
        le32(&rows[2][at..]) as i32,
        le32(&rows[1][at..]) as i32,
        le32(&rows[0][at..]) as i32,
    );
    let dm = _mm256_permutevar8x32_ps(
        _mm256_cvtph_ps(dm),
        _mm256_set_epi32(7, 5, 3, 1, 6, 4, 2, 0),
    );
    let dw = _mm256_castps256_ps128(dm);
    let scale = _mm_mul_ps(dw, _mm_set1_ps(tok.d[b]));
    let mut term = _mm_mul_ps(scale, _mm_cvtepi32_ps(sums));
    if has_min(K) {
        let mw = _mm256_extractf128_ps::<1>(dm);
        term = _mm_add_ps(term, _mm_mul_ps(mw, _mm_set1_ps(tok.s[b])));
    }
    _mm_add_ps(acc, term)
}

/// The block sums of four rows' pair registers (lanes 0..8 the first block, 8..16 the
/// second): the first block's four sums in 32-bit lanes 0..4, the second's in lanes 8..12.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
fn reduce4(s0: __m512i, s1: __m512i, s2: __m512i, s3: __m512i) -> __m512i {
    // Per 128-bit lane: [s0 0+2, s1 0+2, s0 1+3, s1 1+3], likewise for s2, s3.
    let a = _mm512_add_epi32(_mm512_unpacklo_epi32(s0, s1), _mm512_unpackhi_epi32(s0, s1));
    let b = _mm512_add_epi32(_mm512_unpacklo_epi32(s2, s3), _mm512_unpackhi_epi32(s2, s3));
    // Per 128-bit lane: the lane's sum of s0, s1, s2, s3.
    let c = _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
    // 128-bit lanes 0 + 1 (first block) and 2 + 3 (second block).
    _mm512_add_epi32(c, _mm512_shuffle_i64x2::<0b10_11_00_01>(c, c))
}

/// The odd last block through 256-bit registers: its exact integer sum, `d` and `m`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn tail<const K: u8>(blk: &[u8], a: &[i8], start: i32) -> (i32, f32, f32) {
    let (v, d, m) = decode::<K>(blk);
    let v = if has_min(K) {
        v
    } else {
        _mm256_xor_si256(v, _mm256_set1_epi8(-128))
    };
    let a = &a[..QK];
    // SAFETY: `a` is 32 bytes; `loadu` needs no alignment.
    let a = unsafe { _mm256_loadu_si256(a.as_ptr().cast()) };
    let sum = _mm256_dpbusd_epi32(_mm256_castsi128_si256(_mm_cvtsi32_si128(start)), v, a);
    let s128 = _mm_add_epi32(
        _mm256_castsi256_si128(sum),
        _mm256_extracti128_si256::<1>(sum),
    );
    let s64 = _mm_add_epi32(s128, _mm_shuffle_epi32::<0b01_00_11_10>(s128));
    let s32 = _mm_add_epi32(s64, _mm_shuffle_epi32::<0b10_11_00_01>(s64));
    (_mm_cvtsi128_si32(s32), d, m)
}

/// The first 4 bytes of a block, little-endian.
fn le32(b: &[u8]) -> u32 {
    u32::from_le_bytes([b[0], b[1], b[2], b[3]])
}

/// The 64 values of two blocks as unsigned bytes (see the module docs).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
#[inline]
fn pair_values<const K: u8>(b0: &[u8], b1: &[u8]) -> __m512i {
    match K {
        Q4_0 | Q4_1 => {
            let at = if K == Q4_0 { 2 } else { 4 };
            let (q0, q1) = (&b0[at..at + 16], &b1[at..at + 16]);
            // SAFETY: `q0` and `q1` are 16 bytes each; `loadu` needs no alignment.
            let y = unsafe {
                _mm256_set_m128i(
                    _mm_loadu_si128(q1.as_ptr().cast()),
                    _mm_loadu_si128(q0.as_ptr().cast()),
                )
            };
            // 128-bit lanes [q0, q0, q1, q1]; the high nibbles in lanes 1 and 3.
            let z = _mm512_castsi256_si512(y);
            let z = _mm512_shuffle_i64x2::<0b01_01_00_00>(z, z);
            let z = _mm512_mask_srli_epi16::<4>(z, 0xff00_ff00, z);
            _mm512_and_si512(z, _mm512_set1_epi8(0x0f))
        }
        _ => {
            let (v0, v1) = (decode::<K>(b0).0, decode::<K>(b1).0);
            let z = _mm512_inserti64x4::<1>(_mm512_castsi256_si512(v0), v1);
            if has_min(K) {
                z
            } else {
                _mm512_xor_si512(z, _mm512_set1_epi8(-128))
            }
        }
    }
}
