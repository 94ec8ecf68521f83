//! Q4_K, Q5_K and Q6_K against Q8_K activations as a GEMM over panels of 16 rows (the
//! layout of `panel_k.rs`), for prefill on CPUs with AVX2: each run of four values of 16
//! rows is two 256-bit registers (rows 0-7, rows 8-15), multiplied with four activation
//! bytes broadcast to every lane by `maddubs`; the i16 pairs add up over the runs of a
//! sub-block that fit (`runs_in_i16`), then one `madd` against the rows' sub-block scales
//! scales and widens them into each row's i32 lane. Every super-block's integer sums are
//! the scalar path's, and its f32 terms are added in the scalar path's order with its
//! operations (no fused multiply-add): the portable path's bits, and the token tiles'.

use std::arch::x86_64::*;

use super::kquant::Q6K;
use super::load32;
use super::panel::{Out, PANEL};
use super::panel_k::{
    ACT_PAIRS, KActs, KMatrix, KPANEL_BLOCK, KPanel, by_k_kind, for_k_panels, kind_const, pack,
    pairs, runs_in_i16, runs_per_sub, subs,
};
use crate::cpu::dot::kquant::QK_K;
use crate::cpu::quantize_act::Q8KBlocks;

/// Tokens of one tile: their i16 partial sums stay in registers while a run of the panel
/// is reused.
const TOKENS: usize = 4;

/// See [`super::k_gemm`].
pub(super) fn gemm(w: &KMatrix, act: &Q8KBlocks, n_tokens: usize, out: &mut [f32]) -> bool {
    let k = kind_const(w.kind);
    for_k_panels(w, act, n_tokens, out, |panel, r0, n, acts, dst| {
        // SAFETY: an `Avx2` token (required by `k_gemm`, the only caller) exists only when
        // the CPU has avx2, fma and f16c. `for_k_panels` checked the sizes and lets this
        // task write rows `r0 .. r0 + n` of each token.
        unsafe { by_k_kind!(k, panel_rows(w, panel, r0, n, acts, n_tokens, dst)) }
    })
}

/// Decodes rows `r0 .. r0 + n` into `panel` and multiplies them with every token.
///
/// # Safety
/// The CPU has the enabled features; the sizes are those `for_k_panels` checked; `out` may
/// be written at rows `r0 .. r0 + n` of every token.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn panel_rows<const K: u8>(
    w: &KMatrix,
    panel: &mut KPanel,
    r0: usize,
    n: usize,
    acts: &KActs,
    n_tokens: usize,
    out: Out,
) {
    pack::<K>(w, panel, r0, n);
    for t in (0..n_tokens).step_by(TOKENS) {
        let out_at = |j: usize| {
            // SAFETY: token `t + j < n_tokens`, row `r0 < rows`: inside `out`.
            unsafe { out.ptr.add((t + j) * out.rows + r0) }
        };
        // SAFETY: as for this function; each arm reads `N` tokens from `t`, all present.
        unsafe {
            match n_tokens - t {
                1 => tile::<K, 1>(panel, acts, t, n, out_at),
                2 => tile::<K, 2>(panel, acts, t, n, out_at),
                3 => tile::<K, 3>(panel, acts, t, n, out_at),
                _ => tile::<K, TOKENS>(panel, acts, t, n, out_at),
            }
        }
    }
}

/// Two 256-bit loads at element `at` of `v` (rows 0-7, rows 8-15 of a panel vector).
///
/// # Safety
/// The CPU has AVX2; `v[at..]` holds at least 32 bytes.
#[target_feature(enable = "avx2")]
#[inline]
unsafe fn load_pair<T>(v: &[T], at: usize) -> [__m256i; 2] {
    // SAFETY: the caller's promise; `loadu` has no alignment requirement.
    unsafe {
        let p = v.as_ptr().add(at).cast::<__m256i>();
        [_mm256_loadu_si256(p), _mm256_loadu_si256(p.add(1))]
    }
}

/// The panel against the `N` tokens from `t`: 16 rows x `N` tokens of f32 sums (two
/// registers per token), the first `n` rows of each stored to `out_at(j)` (token `t + j`'s
/// first row of the panel).
///
/// # Safety
/// The CPU has the enabled features; tokens `t .. t + N` exist in `acts`; `out_at(j)` points
/// to `n <= 16` writable f32 for each `j < N`.
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn tile<const K: u8, const N: usize>(
    panel: &KPanel,
    acts: &KActs,
    t: usize,
    n: usize,
    out_at: impl Fn(usize) -> *mut f32,
) {
    let (cols, nb) = (acts.cols, acts.nb);
    let (ns, np) = (subs(K), pairs(K));
    let qs = &acts.qs[t * cols..(t + N) * cols];
    let mut acc = [[_mm256_setzero_ps(); 2]; N];
    for b in 0..nb {
        let wq = &panel.qs[b * KPANEL_BLOCK..(b + 1) * KPANEL_BLOCK];
        let mut isum = [[_mm256_setzero_si256(); 2]; N];
        for s in 0..ns {
            // SAFETY: `[16 rows][2]` i16 of sub-block `s` of super-block `b` (32 x 2 bytes).
            let sc = unsafe { load_pair(&panel.sc, (b * ns + s) * PANEL * 2) };
            let first = s * runs_per_sub(K);
            for g0 in (first..first + runs_per_sub(K)).step_by(runs_in_i16(K)) {
                let mut h = [[_mm256_setzero_si256(); 2]; N];
                for g in g0..g0 + runs_in_i16(K) {
                    let w = [load32(&wq[g * 64..]), load32(&wq[g * 64 + 32..])];
                    for (j, hj) in h.iter_mut().enumerate() {
                        let at = j * cols + b * QK_K + 4 * g;
                        // SAFETY: `at + 4 <= N * cols == qs.len()`.
                        let a = unsafe { qs.as_ptr().add(at).cast::<i32>().read_unaligned() };
                        let a = _mm256_set1_epi32(a);
                        for x in 0..2 {
                            hj[x] = _mm256_add_epi16(hj[x], _mm256_maddubs_epi16(w[x], a));
                        }
                    }
                }
                for (ij, hj) in isum.iter_mut().zip(&h) {
                    for x in 0..2 {
                        ij[x] = _mm256_add_epi32(ij[x], _mm256_madd_epi16(hj[x], sc[x]));
                    }
                }
            }
        }
        // Per row and token: `sum_k pair_k . (bsum_2k, bsum_2k+1)`, the mins' sum (Q4_K /
        // Q5_K) or Q6_K's offset sum.
        let mut psum = [[_mm256_setzero_si256(); 2]; N];
        for p in 0..np {
            // SAFETY: `[16 rows][2]` i16 of pair `p` of super-block `b` (32 x 2 bytes).
            let pw = unsafe { load_pair(&panel.pairs, (b * np + p) * PANEL * 2) };
            for (j, pj) in psum.iter_mut().enumerate() {
                let a = _mm256_set1_epi32(acts.pairs[((t + j) * nb + b) * ACT_PAIRS + p]);
                for x in 0..2 {
                    pj[x] = _mm256_add_epi32(pj[x], _mm256_madd_epi16(pw[x], a));
                }
            }
        }
        let at = b * PANEL;
        let (d, dmin) = (&panel.d[at..at + PANEL], &panel.dmin[at..at + PANEL]);
        // SAFETY: 2 x 8 f32 of `d` / `dmin` (16 long).
        let (dw, mw) = unsafe {
            (
                [
                    _mm256_loadu_ps(d.as_ptr()),
                    _mm256_loadu_ps(d.as_ptr().add(8)),
                ],
                [
                    _mm256_loadu_ps(dmin.as_ptr()),
                    _mm256_loadu_ps(dmin.as_ptr().add(8)),
                ],
            )
        };
        for (j, aj) in acc.iter_mut().enumerate() {
            let ad = _mm256_set1_ps(acts.d[(t + j) * nb + b]);
            for x in 0..2 {
                let mut is = isum[j][x];
                if K == Q6K {
                    // The values are stored as q + 32: subtract 32 * sum(scale * bsum).
                    is = _mm256_sub_epi32(is, _mm256_slli_epi32::<5>(psum[j][x]));
                }
                // The scalar path's operations in its order: `sum + (d * d_a) * isum`,
                // then `- (dmin * d_a) * msum`.
                let term = _mm256_mul_ps(_mm256_mul_ps(dw[x], ad), _mm256_cvtepi32_ps(is));
                aj[x] = _mm256_add_ps(aj[x], term);
                if K != Q6K {
                    let mins =
                        _mm256_mul_ps(_mm256_mul_ps(mw[x], ad), _mm256_cvtepi32_ps(psum[j][x]));
                    aj[x] = _mm256_sub_ps(aj[x], mins);
                }
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
