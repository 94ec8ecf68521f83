//! AVX2 dot products straight from the packed weight blocks (x86-64 only).
//!
//! Every kernel here takes one weight row and a *tile* of tokens: each weight block is
//! decoded once into 8-bit lanes and multiplied with the 8-bit activations of up to
//! [`TILE`] tokens (`maddubs` / `madd`, the products ggml's AVX2 path takes), so the
//! integer sums equal the scalar path's exactly, and the f32 block terms are formed and
//! added in the scalar path's order: every kernel gives the portable path's bits, whatever
//! the number of tokens (a prompt run in one piece, in chunks or token by token gives the
//! same logits). One token (decode) takes [`legacy_rows`] / [`k_rows`]: [`ROWS`] rows at
//! a time, their integer sums side by side in one register. Prefill of the 32-element
//! formats may instead run [`legacy_gemm`]: the AVX-512 VNNI panel GEMM's panels of 16 rows
//! (`panel.rs`, shared with it) multiplied by AVX2 multiply-adds, the same bits again; the
//! K-quants (Q4_K, Q5_K, Q6_K) run [`k_gemm`] on panels of their own (`panel_k.rs`, shared
//! with the VNNI K-quant GEMM), with the same bits as their tiles.
//!
//! The kernels are `#[target_feature]` functions. They are reached only through the
//! functions of this module, which take an [`Avx2`] token: a value that exists only after
//! [`Avx2::detect`] found AVX2, FMA and F16C on the running CPU.

mod float;
mod gemm_k;
mod gemm_legacy;
mod kquant;
pub(super) mod legacy;
mod pack_k;
pub(super) mod panel;
pub(super) mod panel_k;
pub(super) mod rows8;
mod rows_k;
mod tiled;

use std::arch::x86_64::*;
use std::sync::OnceLock;

use rocmforge_gguf::GgmlType;

pub(crate) use panel::LegacyMatrix;
pub(crate) use panel_k::KMatrix;
pub(crate) use tiled::{tile_q8, tile_q8k};

use crate::cpu::quantize_act::{Q8Blocks, Q8KBlocks};

/// Tokens whose accumulators stay in registers while one weight block is reused.
pub(crate) const TILE: usize = 4;
/// Rows of one [`legacy_rows`] call: one i32 / f32 lane of a 256-bit register each.
pub(crate) const ROWS: usize = 8;

/// Proof that the running CPU has AVX2, FMA and F16C (see [`Avx2::detect`]).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Avx2(());

impl Avx2 {
    /// The token when the CPU supports the kernels; detected once per process.
    /// `ROCMFORGE_CPU_SCALAR=1` forces the portable path (for comparisons).
    pub(crate) fn detect() -> Option<Avx2> {
        static FOUND: OnceLock<bool> = OnceLock::new();
        let found = *FOUND.get_or_init(|| {
            std::env::var_os("ROCMFORGE_CPU_SCALAR").is_none_or(|v| v != "1")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
                && is_x86_feature_detected!("f16c")
        });
        found.then_some(Avx2(()))
    }
}

/// The 32-element formats with an AVX2 kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LegacyKind {
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Mxfp4,
    Iq4Nl,
}

impl LegacyKind {
    pub(crate) fn of(ty: GgmlType) -> Option<Self> {
        Some(match ty {
            GgmlType::Q4_0 => Self::Q4_0,
            GgmlType::Q4_1 => Self::Q4_1,
            GgmlType::Q5_0 => Self::Q5_0,
            GgmlType::Q5_1 => Self::Q5_1,
            GgmlType::Q8_0 => Self::Q8_0,
            GgmlType::MXFP4 => Self::Mxfp4,
            GgmlType::IQ4_NL => Self::Iq4Nl,
            _ => return None,
        })
    }
}

/// The 256-element formats with an AVX2 kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KKind {
    Q4K,
    Q5K,
    Q6K,
}

impl KKind {
    pub(crate) fn of(ty: GgmlType) -> Option<Self> {
        Some(match ty {
            GgmlType::Q4_K => Self::Q4K,
            GgmlType::Q5_K => Self::Q5K,
            GgmlType::Q6_K => Self::Q6K,
            _ => return None,
        })
    }
}

/// `out[j] = row · token (t0 + j)` for a row of a 32-element format (`row` holds `cols`
/// elements) against Q8_0 / Q8_1 activations of `cols` elements per token, regrouped by
/// [`tile_q8`] (one token needs no regrouping); `t0` is a multiple of [`TILE`].
pub(crate) fn legacy_row(
    _: Avx2,
    kind: LegacyKind,
    row: &[u8],
    act: &Q8Blocks,
    cols: usize,
    t0: usize,
    out: &mut [f32],
) {
    // SAFETY: an `Avx2` token exists only when avx2, fma and f16c were detected.
    unsafe { legacy::row(kind, row, act, cols, t0, out) }
}

/// As [`super::avx512::legacy_gemm`] (the same bits), with AVX2 multiply-adds: `out[t][r] =
/// row r · token t` for all `n_tokens` tokens of `act`, in parallel over panels of 16 rows.
/// Returns `false` (and writes nothing) when a slice is shorter than the shapes say.
pub(crate) fn legacy_gemm(
    _: Avx2,
    w: &LegacyMatrix,
    act: &Q8Blocks,
    n_tokens: usize,
    out: &mut [f32],
) -> bool {
    gemm_legacy::gemm(w, act, n_tokens, out)
}

/// As [`legacy_gemm`] for the K-quants (Q4_K, Q5_K, Q6_K) against Q8_K activations
/// (`quantize_q8_k`'s blocks, token after token): `out[t][r] = row r · token t`, the
/// portable path's bits, in parallel over panels of 16 rows. Returns `false` (and writes
/// nothing) when a slice is shorter than the shapes say.
pub(crate) fn k_gemm(
    _: Avx2,
    w: &KMatrix,
    act: &Q8KBlocks,
    n_tokens: usize,
    out: &mut [f32],
) -> bool {
    gemm_k::gemm(w, act, n_tokens, out)
}

/// The bytes a decode kernel's caller multiplies next (the next batch of rows), asked for a
/// part per block: a kernel of `parts` blocks calls [`Ahead::part`] once per block, so the
/// next rows arrive while these are computed. (Asked for in one burst before the kernel, they
/// filled the core's miss buffers and stalled it until most had come: measured on one AVX2
/// VM, the decode rows of 65,536 x 896 Q8_0 / Q5_0 on two threads ran 14-15 / 11 GB/s that
/// way.) Hints only: no result depends on them.
#[derive(Clone, Copy)]
pub(in crate::cpu::dot) struct Ahead<'a> {
    bytes: &'a [u8],
    step: usize,
}

impl<'a> Ahead<'a> {
    pub(in crate::cpu::dot) fn new(bytes: &'a [u8], parts: usize) -> Self {
        Ahead {
            bytes,
            step: bytes.len().div_ceil(parts.max(1)),
        }
    }

    /// Asks for the cache lines of part `i` (bytes `i * step ..` of the next rows).
    #[target_feature(enable = "avx2")]
    #[inline]
    pub(in crate::cpu::dot) fn part(self, i: usize) {
        let start = i * self.step;
        let end = (start + self.step).min(self.bytes.len());
        let mut at = start;
        while at < end {
            // SAFETY: a prefetch never faults and reads nothing the program sees; `at` is
            // inside `bytes` anyway.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(self.bytes.as_ptr().add(at).cast()) };
            at += 64;
        }
        if end > start {
            // SAFETY: as above (the part's last byte, whose line the steps may have missed).
            unsafe { _mm_prefetch::<_MM_HINT_T0>(self.bytes.as_ptr().add(end - 1).cast()) };
        }
    }
}

/// Per block of one token's Q8_0 / Q8_1 activations, the sum of its quantized values
/// (what [`legacy_rows`] takes as `asum`).
pub(crate) fn block_sums(act: &Q8Blocks) -> Vec<i32> {
    rows8::block_sums(act)
}

/// `out[i] = rows[i] · token 0` for up to [`ROWS`] rows of a 32-element format (each
/// holding `cols` elements: `act` is one token's Q8_0 / Q8_1 blocks, `asum` its
/// [`block_sums`]); `out.len()` says how many rows count (a shorter batch repeats one of
/// its rows to fill `rows`). `next`: the bytes the caller multiplies after these, asked
/// for while these are computed (see [`Ahead`]; may be empty).
pub(crate) fn legacy_rows(
    _: Avx2,
    kind: LegacyKind,
    rows: [&[u8]; ROWS],
    act: &Q8Blocks,
    asum: &[i32],
    next: &[u8],
    out: &mut [f32],
) {
    let ahead = Ahead::new(next, act.d.len());
    // SAFETY: an `Avx2` token exists only when avx2, fma and f16c were detected.
    unsafe { legacy::rows(kind, rows, act, asum, ahead, out) }
}

/// `out[j][r] = rows[r] · token (t0 + j)` for the nibble formats (Q4_0, Q4_1, Q5_0, Q5_1)
/// against `out.len()` (1 to 4) tokens of `act` (`nb` blocks per token, token after token;
/// `asum` their [`block_sums`]), the eight rows' blocks decoded once for all of them; the
/// bits of [`legacy_rows`] for each token. `next`: bytes asked for while these are computed
/// (see [`Ahead`]; may be empty). Returns `false`, with nothing written, for other kinds or
/// token counts.
#[allow(clippy::too_many_arguments)]
pub(crate) fn legacy_rows_tokens(
    _: Avx2,
    kind: LegacyKind,
    rows: [&[u8]; ROWS],
    act: &Q8Blocks,
    asum: &[i32],
    nb: usize,
    t0: usize,
    next: &[u8],
    out: &mut [[f32; ROWS]],
) -> bool {
    use legacy::{Q4_0, Q4_1, Q5_0, Q5_1};
    let run = match kind {
        LegacyKind::Q4_0 => tokens_of::<Q4_0, 18>,
        LegacyKind::Q4_1 => tokens_of::<Q4_1, 20>,
        LegacyKind::Q5_0 => tokens_of::<Q5_0, 22>,
        LegacyKind::Q5_1 => tokens_of::<Q5_1, 24>,
        _ => return false,
    };
    let ahead = Ahead::new(next, nb);
    // SAFETY: an `Avx2` token exists only when avx2, fma and f16c were detected.
    unsafe { run(rows, act, asum, nb, t0, ahead, out) }
}

/// [`legacy_rows_tokens`] for kind `K` (`BB` bytes per block).
#[target_feature(enable = "avx2,fma,f16c")]
fn tokens_of<const K: u8, const BB: usize>(
    rows: [&[u8]; ROWS],
    act: &Q8Blocks,
    asum: &[i32],
    nb: usize,
    t0: usize,
    ahead: Ahead,
    out: &mut [[f32; ROWS]],
) -> bool {
    let tk = |j: usize| rows8::TokenBlocks::of(act, asum, nb, t0 + j);
    // Only the tokens `out` asks for exist (the last group may be short).
    match out {
        [a] => rows8::rows_tokens::<K, BB, 1>(rows, [tk(0)], ahead, [a]),
        [a, b] => rows8::rows_tokens::<K, BB, 2>(rows, [tk(0), tk(1)], ahead, [a, b]),
        [a, b, c] => {
            let t = [tk(0), tk(1), tk(2)];
            rows8::rows_tokens::<K, BB, 3>(rows, t, ahead, [a, b, c])
        }
        [a, b, c, d] => {
            let t = [tk(0), tk(1), tk(2), tk(3)];
            rows8::rows_tokens::<K, BB, 4>(rows, t, ahead, [a, b, c, d])
        }
        _ => return false,
    }
    true
}

/// Per super-block of one token's Q8_K activations, its block sums packed as the
/// [`k_rows`] kernel of `kind` reads them.
pub(crate) fn k_act_sums(kind: KKind, act: &Q8KBlocks) -> Vec<i32> {
    rows_k::act_sums(kind, act)
}

/// As [`legacy_rows`] for up to [`ROWS`] rows of a K-quant against one token's Q8_K
/// blocks `act` (`sums` = [`k_act_sums`] of `act` for `kind`): the portable path's bits.
pub(crate) fn k_rows(
    _: Avx2,
    kind: KKind,
    rows: [&[u8]; ROWS],
    act: &Q8KBlocks,
    sums: &[i32],
    next: &[u8],
    out: &mut [f32],
) {
    let ahead = Ahead::new(next, act.d.len());
    // SAFETY: an `Avx2` token exists only when avx2, fma and f16c were detected.
    unsafe { rows_k::rows(kind, rows, act, sums, ahead, out) }
}

/// As [`legacy_row`] for the K-quants against Q8_K activations regrouped by [`tile_q8k`].
pub(crate) fn k_row(
    _: Avx2,
    kind: KKind,
    row: &[u8],
    act: &Q8KBlocks,
    cols: usize,
    t0: usize,
    out: &mut [f32],
) {
    // SAFETY: an `Avx2` token exists only when avx2, fma and f16c were detected.
    unsafe { kquant::row(kind, row, act, cols, t0, out) }
}

/// As [`legacy_row`] for an F16 row against activations already rounded through f16.
pub(crate) fn f16_row(_: Avx2, row: &[u8], act: &[f32], cols: usize, t0: usize, out: &mut [f32]) {
    // SAFETY: an `Avx2` token exists only when avx2, fma and f16c were detected.
    unsafe { float::row(row, act, cols, t0, out) }
}

/// See [`crate::cpu::dot::float::dot_f32_f16`] (same bits).
pub(crate) fn dot_f32_f16<const N: usize>(_: Avx2, a: [&[f32]; N], b: &[half::f16]) -> [f32; N] {
    // SAFETY: an `Avx2` token exists only when avx2, fma and f16c were detected.
    unsafe { float::dot_f16(a, b) }
}

/// See [`crate::cpu::dot::float::round_through_f16`] (same bits).
pub(crate) fn round_through_f16(_: Avx2, x: &mut [f32]) {
    // SAFETY: an `Avx2` token exists only when avx2, fma and f16c were detected.
    unsafe { float::round_through_f16(x) }
}

/// See [`crate::cpu::dot::float::axpy_f16`] (same bits).
pub(crate) fn axpy_f16<const N: usize>(
    _: Avx2,
    acc: [&mut [f32]; N],
    w: [f32; N],
    x: &[half::f16],
) {
    // SAFETY: an `Avx2` token exists only when avx2, fma and f16c were detected.
    unsafe { float::axpy(acc, w, x) }
}

/// The 32 bytes at the start of `b` (panics if shorter: callers pass whole blocks).
#[target_feature(enable = "avx2")]
#[inline]
pub(in crate::cpu::dot) fn load32(b: &[u8]) -> __m256i {
    let b = &b[..32];
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// [`load32`] for signed bytes.
#[target_feature(enable = "avx2")]
#[inline]
fn load32_i8(b: &[i8]) -> __m256i {
    let b = &b[..32];
    // SAFETY: `b` is 32 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(b.as_ptr().cast()) }
}

/// The 16 bytes at the start of `b`.
#[target_feature(enable = "avx2")]
#[inline]
pub(in crate::cpu::dot) fn load16(b: &[u8]) -> __m128i {
    let b = &b[..16];
    // SAFETY: `b` is 16 readable bytes; `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(b.as_ptr().cast()) }
}

/// The little-endian f16 at byte `at` of `b`, widened to f32 by the F16C instruction.
#[target_feature(enable = "avx2,f16c")]
#[inline]
fn f16_at(b: &[u8], at: usize) -> f32 {
    let bits = u16::from_le_bytes([b[at], b[at + 1]]);
    _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(bits))))
}

/// Sum of the eight f32 lanes.
#[target_feature(enable = "avx2")]
#[inline]
fn hsum_ps(v: __m256) -> f32 {
    let s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
    let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    let s = _mm_add_ss(s, _mm_movehdup_ps(s));
    _mm_cvtss_f32(s)
}

/// Sum of the eight i32 lanes (wrapping, as the lanes never overflow here).
#[target_feature(enable = "avx2")]
#[inline]
fn hsum_epi32(v: __m256i) -> i32 {
    let s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b01_00_11_10>(s));
    let s = _mm_add_epi32(s, _mm_shuffle_epi32::<0b10_11_00_01>(s));
    _mm_cvtsi128_si32(s)
}

/// Pairwise products of unsigned bytes `u` and signed bytes `s`, summed in groups of four
/// into eight i32 lanes (`maddubs` pairs stay below 2^15 for every format here).
#[target_feature(enable = "avx2")]
#[inline]
fn dot_u8_i8(u: __m256i, s: __m256i) -> __m256i {
    _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1))
}

/// As [`dot_u8_i8`] for two signed operands: `|w| * (a * sign(w))`.
#[target_feature(enable = "avx2")]
#[inline]
fn dot_i8_i8(w: __m256i, a: __m256i) -> __m256i {
    dot_u8_i8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w))
}
