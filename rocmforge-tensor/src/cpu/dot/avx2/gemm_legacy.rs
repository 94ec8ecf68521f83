//! The 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against Q8_0 / Q8_1 activations
//! as a GEMM over panels of 16 rows (the panel layout of `panel.rs`, as the AVX-512 VNNI
//! GEMM), for CPUs with AVX2 but no VNNI: each run of four values of 16 rows is two 256-bit
//! registers, multiplied with four activation bytes broadcast to every lane by `maddubs`
//! (pairs of products in i16) and `madd` against ones (into each row's i32 lane).
//!
//! The nibble formats are stored unsigned as in the file (Q4_0 / Q5_0 with their offset 8
//! / 16, which comes off the integer sum as `offset * sum(q_a)`, exact), and their `maddubs`
//! pairs (at most 2 * 31 * 128) add up in i16 over 8 (4-bit) or 4 (5-bit) runs before one
//! `madd` widens them. Q8_0 keeps its signed values and takes the sign trick, `|w| * (a *
//! sign(w))` (pairs at most 2 * 128 * 127, as the activations stay in -127..=127), widened
//! after every run. So every block's integer sum is the scalar path's, and its f32 term
//! `(d_w * d_a) * sum (+ m_w * s_a)` is added to each row's lane in block order with the
//! scalar path's operations: the portable path's bits, and the VNNI GEMM's.

use std::arch::x86_64::*;

use super::legacy::{Q4_0, Q4_1, Q5_0, Q5_1, add_terms, has_min, is_signed};
use super::load32;
use super::panel::{
    Acts, LegacyMatrix, Out, PANEL, PANEL_BLOCK, Panel, Tile, by_kind, for_panels, kind_const, pack,
};
use super::rows8::offset;
use crate::cpu::dot::QK;
use crate::cpu::quantize_act::Q8Blocks;

/// Tokens of one tile: their 2 x `TOKENS` integer sums stay in registers (of 16) while a
/// panel block is reused.
const TOKENS: usize = 4;

/// Runs of four values whose `maddubs` pairs add up in i16 without saturating.
const fn runs_in_i16(k: u8) -> usize {
    match k {
        Q4_0 | Q4_1 => 8,
        Q5_0 | Q5_1 => 4,
        _ => 1,
    }
}

/// See [`super::legacy_gemm`].
pub(super) fn gemm(w: &LegacyMatrix, act: &Q8Blocks, n_tokens: usize, out: &mut [f32]) -> bool {
    let k = kind_const(w.kind);
    for_panels(w, act, n_tokens, out, |panel, r0, n, acts, dst| {
        // SAFETY: an `Avx2` token (required by `legacy_gemm`, the only caller) exists only
        // when the CPU has avx2, fma and f16c. `for_panels` checked the sizes and lets this
        // task write rows `r0 .. r0 + n` of each token.
        unsafe { by_kind!(k, panel_rows(w, panel, r0, n, acts, n_tokens, dst)) }
    })
}

/// Decodes rows `r0 .. r0 + n` into `panel` and multiplies them with every token.
///
/// # Safety
/// The CPU has the enabled features; the sizes are those `for_panels` checked; `out` may be
/// written at rows `r0 .. r0 + n` of every token.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn panel_rows<const K: u8>(
    w: &LegacyMatrix,
    panel: &mut Panel,
    r0: usize,
    n: usize,
    acts: &Acts,
    n_tokens: usize,
    out: Out,
) {
    pack::<K>(w, panel, r0, n, offset(K) as i8);
    for t in (0..n_tokens).step_by(TOKENS) {
        let out_at = |j: usize| {
            // SAFETY: token `t + j < n_tokens`, row `r0 < rows`: inside `out`.
            unsafe { out.ptr.add((t + j) * out.rows + r0) }
        };
        let v = acts.tokens_from(t);
        // SAFETY: as for this function; each arm reads `N` tokens from `t`, all present.
        unsafe {
            match n_tokens - t {
                1 => tile::<K, 1>(panel, acts, &v, n, out_at),
                2 => tile::<K, 2>(panel, acts, &v, n, out_at),
                3 => tile::<K, 3>(panel, acts, &v, n, out_at),
                _ => tile::<K, TOKENS>(panel, acts, &v, n, out_at),
            }
        }
    }
}

/// The panel against `N` tokens: 16 rows x `N` tokens of f32 sums (two registers per
/// token), the first `n` rows of each stored to `out_at(j)` (token `j`'s first row of the
/// panel).
///
/// # Safety
/// The CPU has the enabled features; `v` holds `N` tokens' activations (`qs`: `N * cols`,
/// `d`, `s`, `asum`: `N * nb`); `out_at(j)` points to `n <= 16` writable f32 for each
/// `j < N`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const K: u8, const N: usize>(
    panel: &Panel,
    acts: &Acts,
    v: &Tile,
    n: usize,
    out_at: impl Fn(usize) -> *mut f32,
) {
    let (cols, nb) = (acts.cols, acts.nb);
    let ones = _mm256_set1_epi16(1);
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    for b in 0..nb {
        let wq = &panel.qs[b * PANEL_BLOCK..(b + 1) * PANEL_BLOCK];
        let mut p = [[_mm256_setzero_si256(); 2]; N];
        for g0 in (0..QK / 4).step_by(runs_in_i16(K)) {
            let mut h = [[_mm256_setzero_si256(); 2]; N];
            for g in g0..g0 + runs_in_i16(K) {
                let w = [load32(&wq[g * 64..]), load32(&wq[g * 64 + 32..])];
                let u = if is_signed(K) {
                    [_mm256_sign_epi8(w[0], w[0]), _mm256_sign_epi8(w[1], w[1])]
                } else {
                    w
                };
                for (j, hj) in h.iter_mut().enumerate() {
                    let at = j * cols + b * QK + 4 * g;
                    // SAFETY: `at + 4 <= N * cols <= v.qs.len()` (the caller's promise).
                    let a = unsafe { v.qs.as_ptr().add(at).cast::<i32>().read_unaligned() };
                    let a = _mm256_set1_epi32(a);
                    for (x, hx) in hj.iter_mut().enumerate() {
                        let s = if is_signed(K) {
                            _mm256_sign_epi8(a, w[x])
                        } else {
                            a
                        };
                        *hx = _mm256_add_epi16(*hx, _mm256_maddubs_epi16(u[x], s));
                    }
                }
            }
            for (pj, hj) in p.iter_mut().zip(&h) {
                for x in 0..2 {
                    pj[x] = _mm256_add_epi32(pj[x], _mm256_madd_epi16(hj[x], ones));
                }
            }
        }
        let at = b * PANEL;
        // SAFETY: 2 x 8 f32 at `16 b` of `d` / `m` (`nb * 16` long).
        let (dw, mw) = unsafe {
            let (d, m) = (
                panel.d[at..at + PANEL].as_ptr(),
                panel.m[at..at + PANEL].as_ptr(),
            );
            (
                [_mm256_loadu_ps(d), _mm256_loadu_ps(d.add(8))],
                [_mm256_loadu_ps(m), _mm256_loadu_ps(m.add(8))],
            )
        };
        for (j, (aj, pj)) in acc.iter_mut().zip(&p).enumerate() {
            let ad = v.d[j * nb + b];
            let sa = if has_min(K) { v.s[j * nb + b] } else { 0.0 };
            let corr = if offset(K) != 0 {
                _mm256_set1_epi32(-offset(K) * v.asum[j * nb + b])
            } else {
                _mm256_setzero_si256()
            };
            for x in 0..2 {
                let sums = _mm256_cvtepi32_ps(_mm256_add_epi32(pj[x], corr));
                aj[x] = add_terms::<K>(aj[x], dw[x], mw[x], ad, sa, sums);
            }
        }
    }
    let mut lanes = [0.0f32; PANEL];
    for (j, aj) in acc.iter().enumerate() {
        // SAFETY: `lanes` is 16 writable f32; `storeu` has no alignment requirement; the
        // caller's promise on `out_at(j)` and `n <= 16`.
        unsafe {
            _mm256_storeu_ps(lanes.as_mut_ptr(), aj[0]);
            _mm256_storeu_ps(lanes.as_mut_ptr().add(8), aj[1]);
            std::ptr::copy_nonoverlapping(lanes.as_ptr(), out_at(j), n);
        }
    }
}
