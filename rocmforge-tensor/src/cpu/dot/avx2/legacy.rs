//! AVX2 kernels for Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, MXFP4 and IQ4_NL rows (the last two through
//! their 16-entry value tables, one byte shuffle per half block) against Q8_0 / Q8_1 activations:
//! each 32-element block becomes one vector of 32 bytes (signed for the symmetric formats,
//! unsigned for Q4_1 / Q5_1), multiplied with the activations of up to `TILE` tokens
//! (in the tile layout of `tiled.rs`).

use std::arch::x86_64::*;

use super::rows8::{self, halves_to_f32, transpose};
use super::{
    Ahead, LegacyKind, ROWS, TILE, dot_i8_i8, dot_u8_i8, f16_at, load16, load32, load32_i8,
};
use crate::cpu::dot::QK;
use crate::cpu::dot::iq4::IQ4NL_VALUES;
use crate::cpu::quantize_act::Q8Blocks;
use rocmforge_gguf::quants::{MXFP4_VALUES, e8m0_half};

pub(in crate::cpu::dot) const Q4_0: u8 = 0;
pub(in crate::cpu::dot) const Q4_1: u8 = 1;
pub(in crate::cpu::dot) const Q5_0: u8 = 2;
pub(in crate::cpu::dot) const Q5_1: u8 = 3;
pub(in crate::cpu::dot) const Q8_0: u8 = 4;
/// gpt-oss's experts: an E8M0 scale byte, then 16 bytes of 4-bit FP4 codes (a table of
/// doubled values, -12..=12).
pub(in crate::cpu::dot) const MXFP4: u8 = 5;
/// An f16 scale, then 16 bytes of 4-bit indices into the non-linear table (-127..=113).
pub(in crate::cpu::dot) const IQ4_NL: u8 = 6;

/// Whether kind `K` decodes to signed bytes through a 16-entry table (the products then take
/// Q8_0's paths: the sign trick, no offset).
pub(in crate::cpu::dot) const fn is_table(k: u8) -> bool {
    k == MXFP4 || k == IQ4_NL
}

/// Whether kind `K` decodes to signed bytes (Q8_0 and the table kinds).
pub(in crate::cpu::dot) const fn is_signed(k: u8) -> bool {
    k == Q8_0 || is_table(k)
}

/// Bytes per block of each kind.
pub(in crate::cpu::dot) const fn block_bytes(k: u8) -> usize {
    match k {
        Q4_0 => 18,
        Q4_1 => 20,
        Q5_0 => 22,
        Q5_1 => 24,
        MXFP4 => 17,
        IQ4_NL => 18,
        _ => 34,
    }
}

/// Whether the kind has a per-block min `m` (and meets Q8_1 activations).
pub(in crate::cpu::dot) const fn has_min(k: u8) -> bool {
    k == Q4_1 || k == Q5_1
}

/// See [`super::legacy_row`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn row(
    kind: LegacyKind,
    row: &[u8],
    act: &Q8Blocks,
    cols: usize,
    t0: usize,
    out: &mut [f32],
) {
    match kind {
        LegacyKind::Q4_0 => tiles::<Q4_0>(row, act, cols, t0, out),
        LegacyKind::Q4_1 => tiles::<Q4_1>(row, act, cols, t0, out),
        LegacyKind::Q5_0 => tiles::<Q5_0>(row, act, cols, t0, out),
        LegacyKind::Q5_1 => tiles::<Q5_1>(row, act, cols, t0, out),
        LegacyKind::Q8_0 => tiles::<Q8_0>(row, act, cols, t0, out),
        LegacyKind::Mxfp4 => tiles::<MXFP4>(row, act, cols, t0, out),
        LegacyKind::Iq4Nl => tiles::<IQ4_NL>(row, act, cols, t0, out),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn tiles<const K: u8>(row: &[u8], act: &Q8Blocks, cols: usize, t0: usize, out: &mut [f32]) {
    let nb = cols / QK;
    for (i, chunk) in out.chunks_mut(TILE).enumerate() {
        let (t, n) = (t0 + i * TILE, chunk.len());
        let qs = &act.qs[t * cols..(t + n) * cols];
        let d = &act.d[t * nb..(t + n) * nb];
        let s = if has_min(K) {
            &act.s[t * nb..(t + n) * nb]
        } else {
            &[][..]
        };
        match n {
            4 => tile::<K, 4>(row, qs, d, s, chunk),
            3 => tile::<K, 3>(row, qs, d, s, chunk),
            2 => tile::<K, 2>(row, qs, d, s, chunk),
            _ => tile::<K, 1>(row, qs, d, s, chunk),
        }
    }
}

/// One row against the `N` tokens of one tile (activations in the tile layout of
/// `tiled.rs`): per block the exact integer sums of the `N` tokens side by side in four
/// i32 lanes, then `(d_w * d_a) * sum (+ m_w * s_a)` added to each token's lane in block
/// order with the scalar path's operations (no fused multiply-add), so every token gets
/// the portable path's bits.
#[target_feature(enable = "avx2,fma,f16c")]
fn tile<const K: u8, const N: usize>(row: &[u8], qs: &[i8], d: &[f32], s: &[f32], out: &mut [f32]) {
    let mut acc = _mm_setzero_ps();
    let blocks = row
        .chunks_exact(block_bytes(K))
        .zip(qs.chunks_exact(N * QK))
        .zip(d.chunks_exact(N));
    for (b, ((blk, aq), ad)) in blocks.enumerate() {
        let (w, dw, m) = decode::<K>(blk);
        let mut p = [_mm256_setzero_si256(); 4];
        for (j, pj) in p.iter_mut().enumerate().take(N) {
            let a = load32_i8(&aq[j * QK..]);
            *pj = if has_min(K) {
                dot_u8_i8(w, a)
            } else {
                dot_i8_i8(w, a)
            };
        }
        let sums = _mm_cvtepi32_ps(sum4(p));
        let scale = _mm_mul_ps(_mm_set1_ps(dw), load_n::<N>(ad));
        let mut term = _mm_mul_ps(scale, sums);
        if has_min(K) {
            let sa = load_n::<N>(&s[b * N..]);
            term = _mm_add_ps(term, _mm_mul_ps(_mm_set1_ps(m), sa));
        }
        acc = _mm_add_ps(acc, term);
    }
    let mut lanes = [0.0f32; 4];
    // SAFETY: `lanes` is 4 writable f32; `storeu` has no alignment requirement.
    unsafe { _mm_storeu_ps(lanes.as_mut_ptr(), acc) };
    out[..N].copy_from_slice(&lanes[..N]);
}

/// The first `N` (at most 4) values of `v` in the low lanes, zeros above.
#[target_feature(enable = "avx2")]
#[inline]
fn load_n<const N: usize>(v: &[f32]) -> __m128 {
    let mut lanes = [0.0f32; 4];
    lanes[..N].copy_from_slice(&v[..N]);
    // SAFETY: `lanes` is 4 readable f32; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_ps(lanes.as_ptr()) }
}

/// The sums of the eight i32 lanes of each of `p[0..4]`, in lanes 0..4 (exact: the lanes
/// never overflow here).
#[target_feature(enable = "avx2")]
#[inline]
fn sum4(p: [__m256i; 4]) -> __m128i {
    let h = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256::<1>(h))
}

/// The sums of the eight i32 lanes of each of `p[0..8]`, in lanes 0..8.
#[target_feature(enable = "avx2")]
#[inline]
pub(in crate::cpu::dot) fn sum8(p: &[__m256i; 8]) -> __m256i {
    let lo = _mm256_hadd_epi32(_mm256_hadd_epi32(p[0], p[1]), _mm256_hadd_epi32(p[2], p[3]));
    let hi = _mm256_hadd_epi32(_mm256_hadd_epi32(p[4], p[5]), _mm256_hadd_epi32(p[6], p[7]));
    // lo = [rows 0-3 of lanes 0-3 | rows 0-3 of lanes 4-7], hi the same for rows 4-7.
    _mm256_add_epi32(
        _mm256_permute2x128_si256::<0x20>(lo, hi),
        _mm256_permute2x128_si256::<0x31>(lo, hi),
    )
}

/// See [`super::legacy_rows`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn rows(
    kind: LegacyKind,
    rows: [&[u8]; ROWS],
    act: &Q8Blocks,
    asum: &[i32],
    ahead: Ahead,
    out: &mut [f32],
) {
    match kind {
        LegacyKind::Q4_0 => rows8::rows::<Q4_0, 18>(rows, act, asum, ahead, out),
        LegacyKind::Q4_1 => rows8::rows::<Q4_1, 20>(rows, act, asum, ahead, out),
        LegacyKind::Q5_0 => rows8::rows::<Q5_0, 22>(rows, act, asum, ahead, out),
        LegacyKind::Q5_1 => rows8::rows::<Q5_1, 24>(rows, act, asum, ahead, out),
        LegacyKind::Q8_0 => rows_q8_0(rows, act, ahead, out),
        LegacyKind::Mxfp4 => rows_table::<MXFP4, 17>(rows, act, ahead, out),
        LegacyKind::Iq4Nl => rows_table::<IQ4_NL, 18>(rows, act, ahead, out),
    }
}

/// [`ROWS`] rows of a table kind against one token, as [`rows_q8_0`]: per block each row's
/// 32 values decoded through the table, the exact integer sums of the rows side by side in
/// eight i32 lanes, then each row's f32 term added to its lane in block order with the scalar
/// path's operations (the portable path's bits).
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_table<const K: u8, const BB: usize>(
    rows: [&[u8]; ROWS],
    act: &Q8Blocks,
    ahead: Ahead,
    out: &mut [f32],
) {
    const { assert!(BB == block_bytes(K)) };
    let mut acc = _mm256_setzero_ps();
    let mut p = [_mm256_setzero_si256(); ROWS];
    let mut d = [0.0f32; ROWS];
    let (blocks, aqs, ads) = block_arrays::<BB>(rows, act);
    for (b, (aq, &ad)) in aqs.iter().zip(ads).enumerate() {
        ahead.part(b);
        let a = load32_i8(aq);
        for r in 0..ROWS {
            let (w, dr, _) = decode::<K>(&blocks[r][b]);
            p[r] = dot_i8_i8(w, a);
            d[r] = dr;
        }
        let sums = _mm256_cvtepi32_ps(sum8(&p));
        // SAFETY: `d` is 8 readable f32; `loadu` has no alignment requirement.
        let dw = unsafe { _mm256_loadu_ps(d.as_ptr()) };
        acc = add_terms::<K>(acc, dw, dw, ad, 0.0, sums);
    }
    store_rows(acc, out);
}

/// The eight rows' blocks (`BB` bytes each) and one token's activation blocks and scales, as
/// slices of one length (the activations' block count; callers pass whole rows): a kernel
/// indexing them by block needs no checks inside its loop.
#[allow(clippy::type_complexity)]
pub(in crate::cpu::dot) fn block_arrays<'a, const BB: usize>(
    rows: [&'a [u8]; ROWS],
    act: &'a Q8Blocks,
) -> ([&'a [[u8; BB]]; ROWS], &'a [[i8; QK]], &'a [f32]) {
    let nb = act.d.len();
    (
        rows.map(|r| &r.as_chunks::<BB>().0[..nb]),
        &act.qs.as_chunks::<QK>().0[..nb],
        &act.d[..nb],
    )
}

/// [`ROWS`] Q8_0 rows against one token: per block the exact integer sums of the rows side
/// by side in eight i32 lanes (a horizontal-sum tree), the rows' `d` from one transpose of
/// their block heads, then each row's f32 term added to its lane in block order with the
/// scalar path's operations (the bits of the portable path and of the tiles above).
#[target_feature(enable = "avx2,fma,f16c")]
fn rows_q8_0(rows: [&[u8]; ROWS], act: &Q8Blocks, ahead: Ahead, out: &mut [f32]) {
    const BB: usize = block_bytes(Q8_0);
    let mut acc = _mm256_setzero_ps();
    let mut p = [_mm256_setzero_si256(); ROWS];
    let (blocks, aqs, ads) = block_arrays::<BB>(rows, act);
    for (b, (aq, &ad)) in aqs.iter().zip(ads).enumerate() {
        ahead.part(b);
        let a = load32_i8(aq);
        let blk = blocks.map(|r| &r[b]);
        for r in 0..ROWS {
            p[r] = dot_i8_i8(load32(&blk[r][2..]), a);
        }
        let sums = _mm256_cvtepi32_ps(sum8(&p));
        let (dw, _) = halves_to_f32(transpose!(blk, 0)[0]);
        acc = add_terms::<Q8_0>(acc, dw, dw, ad, 0.0, sums);
    }
    store_rows(acc, out);
}

/// One block's f32 terms of eight rows added to their running sums `acc`, lane by lane
/// with the scalar path's operations: `acc + ((d_w * d_a) * sum (+ m_w * s_a))`, where
/// `sums` holds the rows' exact integer block sums (as f32), `dw` / `mw` their scales.
#[target_feature(enable = "avx2")]
#[inline]
pub(in crate::cpu::dot) fn add_terms<const K: u8>(
    acc: __m256,
    dw: __m256,
    mw: __m256,
    ad: f32,
    sa: f32,
    sums: __m256,
) -> __m256 {
    let scale = _mm256_mul_ps(dw, _mm256_set1_ps(ad));
    let mut term = _mm256_mul_ps(scale, sums);
    if has_min(K) {
        term = _mm256_add_ps(term, _mm256_mul_ps(mw, _mm256_set1_ps(sa)));
    }
    _mm256_add_ps(acc, term)
}

/// The first `out.len()` (at most [`ROWS`]) lanes of `acc` into `out`.
#[target_feature(enable = "avx2")]
#[inline]
pub(in crate::cpu::dot) fn store_rows(acc: __m256, out: &mut [f32]) {
    let mut lanes = [0.0f32; ROWS];
    // SAFETY: `lanes` is 8 writable f32; `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
    let n = out.len().min(ROWS);
    out[..n].copy_from_slice(&lanes[..n]);
}

/// One block's 32 values as bytes (layout of ggml's `block_*`), its `d` and its `m`
/// (0 for the symmetric formats).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
pub(in crate::cpu::dot) fn decode<const K: u8>(blk: &[u8]) -> (__m256i, f32, f32) {
    match K {
        MXFP4 => {
            return (
                table_nibbles(&MXFP4_VALUES, &blk[1..]),
                e8m0_half(blk[0]),
                0.0,
            );
        }
        IQ4_NL => return (table_nibbles(&IQ4NL_VALUES, &blk[2..]), f16_at(blk, 0), 0.0),
        _ => {}
    }
    let d = f16_at(blk, 0);
    match K {
        Q4_0 => (
            _mm256_sub_epi8(nibbles(&blk[2..]), _mm256_set1_epi8(8)),
            d,
            0.0,
        ),
        Q4_1 => (nibbles(&blk[4..]), d, f16_at(blk, 2)),
        Q5_0 => {
            let q = _mm256_or_si256(nibbles(&blk[6..]), fifth_bits(qh_at(blk, 2)));
            (_mm256_sub_epi8(q, _mm256_set1_epi8(16)), d, 0.0)
        }
        Q5_1 => {
            let q = _mm256_or_si256(nibbles(&blk[8..]), fifth_bits(qh_at(blk, 4)));
            (q, d, f16_at(blk, 2))
        }
        _ => (load32(&blk[2..]), d, 0.0),
    }
}

fn qh_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// 16 packed bytes of 4-bit indices to the 32 signed `table` values they pick: low nibbles
/// first, then high nibbles.
#[target_feature(enable = "avx2")]
#[inline]
fn table_nibbles(table: &[i8; 16], qs: &[u8]) -> __m256i {
    // SAFETY: `table` is 16 readable bytes; `loadu` has no alignment requirement.
    let t = unsafe { _mm_loadu_si128(table.as_ptr().cast()) };
    let v = load16(qs);
    let m = _mm_set1_epi8(0x0f);
    let lo = _mm_shuffle_epi8(t, _mm_and_si128(v, m));
    let hi = _mm_shuffle_epi8(t, _mm_and_si128(_mm_srli_epi16::<4>(v), m));
    _mm256_set_m128i(hi, lo)
}

/// 16 packed bytes to 32 values: low nibbles first, then high nibbles.
#[target_feature(enable = "avx2")]
#[inline]
fn nibbles(qs: &[u8]) -> __m256i {
    let v = load16(qs);
    let m = _mm_set1_epi8(0x0f);
    let lo = _mm_and_si128(v, m);
    let hi = _mm_and_si128(_mm_srli_epi16::<4>(v), m);
    _mm256_set_m128i(hi, lo)
}

/// Bit `j` of `qh` as `0x10` in byte `j`.
#[target_feature(enable = "avx2")]
#[inline]
fn fifth_bits(qh: u32) -> __m256i {
    let v = _mm256_set1_epi32(qh as i32);
    let pick = _mm256_set_epi64x(
        0x0303_0303_0303_0303,
        0x0202_0202_0202_0202,
        0x0101_0101_0101_0101,
        0,
    );
    let v = _mm256_shuffle_epi8(v, pick);
    let mask = _mm256_set1_epi64x(0x8040_2010_0804_0201u64 as i64);
    let set = _mm256_cmpeq_epi8(_mm256_and_si256(v, mask), mask);
    _mm256_and_si256(set, _mm256_set1_epi8(0x10))
}
