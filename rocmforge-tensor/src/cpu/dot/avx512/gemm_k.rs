//! Q4_K, Q5_K and Q6_K against Q8_K activations as a GEMM over panels of 16 rows (the
//! layout of `avx2/panel_k.rs`, shared with the AVX2 GEMM): one 512-bit register holds a
//! run of four values of all 16 rows, `vpdpbusd` against four activation bytes broadcast
//! to every lane adds their products into each row's i32 lane over a whole sub-block, and
//! one `vpmulld` by the rows' sub-block scales (the high i16 of the panel's `sc, sc` pairs)
//! adds it to the super-block's sum. The integers are the scalar path's, and the f32 terms
//! are added in its order with its operations, exactly as the AVX2 GEMM does (no fused
//! multiply-add): the portable path's bits.

use std::arch::x86_64::*;

use crate::cpu::dot::avx2::panel::{Out, PANEL};
use crate::cpu::dot::avx2::panel_k::{
    ACT_PAIRS, KActs, KMatrix, KPANEL_BLOCK, KPanel, Q6K, by_k_kind, for_k_panels, kind_const,
    pack, pairs, runs_per_sub, subs,
};
use crate::cpu::dot::kquant::QK_K;
use crate::cpu::quantize_act::Q8KBlocks;

/// Tokens whose sums stay in registers while a panel run is reused (3 x 8 of the 32
/// vector registers).
const TOKENS: usize = 8;

/// See [`super::k_gemm`].
pub(super) fn gemm(w: &KMatrix, act: &Q8KBlocks, n_tokens: usize, out: &mut [f32]) -> bool {
    let k = kind_const(w.kind);
    for_k_panels(w, act, n_tokens, out, |panel, r0, n, acts, dst| {
        // SAFETY: a `Vnni` token (required by `k_gemm`, the only caller) exists only when
        // the CPU has every feature these functions enable. `for_k_panels` checked the
        // sizes and lets this task write rows `r0 .. r0 + n` of each token.
        unsafe { by_k_kind!(k, panel_rows(w, panel, r0, n, acts, n_tokens, dst)) }
    })
}

/// Decodes rows `r0 .. r0 + n` into `panel` and multiplies them with every token.
///
/// # Safety
/// The CPU has the enabled features; the sizes are those `for_k_panels` checked; `out` may
/// be written at rows `r0 .. r0 + n` of every token.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
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
    let mask: __mmask16 = if n == PANEL { 0xffff } else { (1u16 << n) - 1 };
    for t in (0..n_tokens).step_by(TOKENS) {
        let out_at = |j: usize| {
            // SAFETY: token `t + j < n_tokens`, row `r0 < rows`: inside `out`.
            unsafe { out.ptr.add((t + j) * out.rows + r0) }
        };
        // SAFETY: as for this function; each arm reads `N` tokens from `t`, all present.
        unsafe {
            match n_tokens - t {
                1 => tile::<K, 1>(panel, acts, t, mask, out_at),
                2 => tile::<K, 2>(panel, acts, t, mask, out_at),
                3 => tile::<K, 3>(panel, acts, t, mask, out_at),
                4 => tile::<K, 4>(panel, acts, t, mask, out_at),
                5 => tile::<K, 5>(panel, acts, t, mask, out_at),
                6 => tile::<K, 6>(panel, acts, t, mask, out_at),
                7 => tile::<K, 7>(panel, acts, t, mask, out_at),
                _ => tile::<K, TOKENS>(panel, acts, t, mask, out_at),
            }
        }
    }
}

/// 64 bytes at element `at` of `v` (a run or an i16 pair vector of 16 rows).
///
/// # Safety
/// The CPU has AVX-512 F; `v[at..]` holds at least 64 bytes.
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn load64<T>(v: &[T], at: usize) -> __m512i {
    // SAFETY: the caller's promise; `loadu` has no alignment requirement.
    unsafe { _mm512_loadu_si512(v.as_ptr().add(at).cast()) }
}

/// The panel against the `N` tokens from `t`: 16 rows x `N` tokens of f32 sums in
/// registers, each stored to `out_at(j)` (token `t + j`'s first row of the panel) under
/// `mask`.
///
/// # Safety
/// The CPU has the enabled features; tokens `t .. t + N` exist in `acts`; `out_at(j)` points
/// to 16 writable f32 for each `j < N` where `mask` is set.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile<const K: u8, const N: usize>(
    panel: &KPanel,
    acts: &KActs,
    t: usize,
    mask: __mmask16,
    out_at: impl Fn(usize) -> *mut f32,
) {
    let (cols, nb) = (acts.cols, acts.nb);
    let (ns, np) = (subs(K), pairs(K));
    let qs = &acts.qs[t * cols..(t + N) * cols];
    let mut acc = [_mm512_setzero_ps(); N];
    for b in 0..nb {
        let wq = &panel.qs[b * KPANEL_BLOCK..(b + 1) * KPANEL_BLOCK];
        let mut isum = [_mm512_setzero_si512(); N];
        for s in 0..ns {
            let mut dot = [_mm512_setzero_si512(); N];
            let first = s * runs_per_sub(K);
            for g in first..first + runs_per_sub(K) {
                // SAFETY: 64 bytes at `64 g` of the panel super-block.
                let wv = unsafe { load64(wq, g * 64) };
                for (j, dj) in dot.iter_mut().enumerate() {
                    let at = j * cols + b * QK_K + 4 * g;
                    // SAFETY: `at + 4 <= N * cols == qs.len()`.
                    let a = unsafe { qs.as_ptr().add(at).cast::<i32>().read_unaligned() };
                    *dj = _mm512_dpbusd_epi32(*dj, wv, _mm512_set1_epi32(a));
                }
            }
            // SAFETY: `[16 rows][2]` i16 of sub-block `s` of super-block `b` (64 bytes).
            let pair = unsafe { load64(&panel.sc, (b * ns + s) * PANEL * 2) };
            let sc = _mm512_srai_epi32::<16>(pair);
            for (ij, dj) in isum.iter_mut().zip(&dot) {
                *ij = _mm512_add_epi32(*ij, _mm512_mullo_epi32(*dj, sc));
            }
        }
        // Per row and token: `sum_k pair_k . (bsum_2k, bsum_2k+1)`, the mins' sum (Q4_K /
        // Q5_K) or Q6_K's offset sum.
        let mut psum = [_mm512_setzero_si512(); N];
        for p in 0..np {
            // SAFETY: `[16 rows][2]` i16 of pair `p` of super-block `b` (64 bytes).
            let pw = unsafe { load64(&panel.pairs, (b * np + p) * PANEL * 2) };
            for (j, pj) in psum.iter_mut().enumerate() {
                let a = _mm512_set1_epi32(acts.pairs[((t + j) * nb + b) * ACT_PAIRS + p]);
                *pj = _mm512_add_epi32(*pj, _mm512_madd_epi16(pw, a));
            }
        }
        let at = b * PANEL;
        // SAFETY: 16 f32 at `16 b` of `d` / `dmin` (`nb * 16` long).
        let (dw, mw) = unsafe {
            (
                _mm512_loadu_ps(panel.d[at..at + PANEL].as_ptr()),
                _mm512_loadu_ps(panel.dmin[at..at + PANEL].as_ptr()),
            )
        };
        for (j, aj) in acc.iter_mut().enumerate() {
            let ad = _mm512_set1_ps(acts.d[(t + j) * nb + b]);
            let mut is = isum[j];
            if K == Q6K {
                // The values are stored as q + 32: subtract 32 * sum(scale * bsum).
                is = _mm512_sub_epi32(is, _mm512_slli_epi32::<5>(psum[j]));
            }
            // The scalar path's operations in its order: `sum + (d * d_a) * isum`, then
            // `- (dmin * d_a) * msum`.
            let term = _mm512_mul_ps(_mm512_mul_ps(dw, ad), _mm512_cvtepi32_ps(is));
            *aj = _mm512_add_ps(*aj, term);
            if K != Q6K {
                let mins = _mm512_mul_ps(_mm512_mul_ps(mw, ad), _mm512_cvtepi32_ps(psum[j]));
                *aj = _mm512_sub_ps(*aj, mins);
            }
        }
    }
    for (j, a) in acc.iter().enumerate() {
        // SAFETY: the caller's promise on `out_at` and `mask`.
        unsafe { _mm512_mask_storeu_ps(out_at(j), mask, *a) };
    }
}
