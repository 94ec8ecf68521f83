//! The 32-element formats (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0) against Q8_0 / Q8_1 activations
//! as a GEMM over panels of 16 rows (see the module docs of `avx512`).
//!
//! Values are stored as unsigned bytes for `vpdpbusd`: the formats with a min as they are
//! (0..31), the symmetric ones plus 128, with `-128 * sum(q_a)` of the activation block as
//! the starting value of the integer sum, so every block's integer sum equals the scalar
//! path's exactly. Per block and token the f32 term `(d_w * d_a) * sum (+ m_w * s_a)` is
//! computed and added to each row's lane in block order with the scalar path's operations
//! (no fused multiply-add): the results are the scalar path's, bit for bit, whatever the
//! number of tokens (so a prompt run in chunks gives what it gives in one piece).

use std::arch::x86_64::*;

use crate::cpu::dot::QK;
use crate::cpu::dot::avx2::legacy::has_min;
use crate::cpu::dot::avx2::panel::{
    Acts, LegacyMatrix, Out, PANEL, PANEL_BLOCK, Panel, Tile, by_kind, for_panels, kind_const, pack,
};
use crate::cpu::quantize_act::Q8Blocks;

/// Tokens whose integer sums and accumulators stay in registers while a panel block is
/// reused (2 x 8 of the 32 vector registers).
const TOKENS: usize = 8;

/// See [`super::legacy_gemm`].
pub(super) fn gemm(w: &LegacyMatrix, act: &Q8Blocks, n_tokens: usize, out: &mut [f32]) -> bool {
    let k = kind_const(w.kind);
    for_panels(w, act, n_tokens, out, |panel, r0, n, acts, dst| {
        // SAFETY: a `Vnni` token (required by `legacy_gemm`, the only caller) exists only
        // when the CPU has every feature these functions enable. `for_panels` checked the
        // sizes and lets this task write rows `r0 .. r0 + n` of each token.
        unsafe { by_kind!(k, panel_rows(w, panel, r0, n, acts, n_tokens, dst)) }
    })
}

/// Decodes rows `r0 .. r0 + n` into `panel` and multiplies them with every token.
///
/// # Safety
/// The CPU has the enabled features; the sizes are those `for_panels` checked; `out` may be
/// written at rows `r0 .. r0 + n` of every token.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn panel_rows<const K: u8>(
    w: &LegacyMatrix,
    panel: &mut Panel,
    r0: usize,
    n: usize,
    acts: &Acts,
    n_tokens: usize,
    out: Out,
) {
    pack::<K>(w, panel, r0, n, if has_min(K) { 0 } else { -128 });
    let mask: __mmask16 = if n == PANEL { 0xffff } else { (1u16 << n) - 1 };
    for t in (0..n_tokens).step_by(TOKENS) {
        let out_at = |j: usize| {
            // SAFETY: token `t + j < n_tokens`, row `r0 < rows`: inside `out`.
            unsafe { out.ptr.add((t + j) * out.rows + r0) }
        };
        let v = acts.tokens_from(t);
        // SAFETY: as for this function; each arm reads `N` tokens from `t`, all present.
        unsafe {
            match n_tokens - t {
                1 => tile::<K, 1>(panel, acts, &v, mask, out_at),
                2 => tile::<K, 2>(panel, acts, &v, mask, out_at),
                3 => tile::<K, 3>(panel, acts, &v, mask, out_at),
                4 => tile::<K, 4>(panel, acts, &v, mask, out_at),
                5 => tile::<K, 5>(panel, acts, &v, mask, out_at),
                6 => tile::<K, 6>(panel, acts, &v, mask, out_at),
                7 => tile::<K, 7>(panel, acts, &v, mask, out_at),
                _ => tile::<K, TOKENS>(panel, acts, &v, mask, out_at),
            }
        }
    }
}

/// The panel against `N` tokens: 16 rows x `N` tokens of f32 sums in registers, each
/// stored to `out_at(j)` (token `j`'s first row of the panel) under `mask`.
///
/// # Safety
/// The CPU has the enabled features; `v` holds `N` tokens' activations (`qs`: `N * cols`,
/// `d`, `s`, `asum`: `N * nb`); `out_at(j)` points to 16 writable f32 for each `j < N`
/// where `mask` is set.
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
unsafe fn tile<const K: u8, const N: usize>(
    panel: &Panel,
    acts: &Acts,
    v: &Tile,
    mask: __mmask16,
    out_at: impl Fn(usize) -> *mut f32,
) {
    let (cols, nb) = (acts.cols, acts.nb);
    let mut acc = [_mm512_setzero_ps(); N];
    for b in 0..nb {
        let mut p = [_mm512_setzero_si512(); N];
        if !has_min(K) {
            for (j, pj) in p.iter_mut().enumerate() {
                *pj = _mm512_set1_epi32(-128 * v.asum[j * nb + b]);
            }
        }
        let wq = &panel.qs[b * PANEL_BLOCK..(b + 1) * PANEL_BLOCK];
        for g in 0..QK / 4 {
            // SAFETY: 64 bytes at `64 g` of the 512-byte panel block.
            let wv = unsafe { _mm512_loadu_si512(wq[g * 64..].as_ptr().cast()) };
            for (j, pj) in p.iter_mut().enumerate() {
                let at = j * cols + b * QK + 4 * g;
                // SAFETY: `at + 4 <= N * cols <= v.qs.len()` (the caller's promise).
                let a = unsafe { v.qs.as_ptr().add(at).cast::<i32>().read_unaligned() };
                *pj = _mm512_dpbusd_epi32(*pj, wv, _mm512_set1_epi32(a));
            }
        }
        // SAFETY: 16 f32 at `16 b` of `d` / `m` (`nb * 16` long).
        let (dw, mw) = unsafe {
            (
                _mm512_loadu_ps(panel.d[b * PANEL..].as_ptr()),
                _mm512_loadu_ps(panel.m[b * PANEL..].as_ptr()),
            )
        };
        for j in 0..N {
            // The scalar path's operations in its order: `(d_w * d_a) * sum (+ m_w * s_a)`.
            let scale = _mm512_mul_ps(dw, _mm512_set1_ps(v.d[j * nb + b]));
            let mut term = _mm512_mul_ps(scale, _mm512_cvtepi32_ps(p[j]));
            if has_min(K) {
                term = _mm512_add_ps(term, _mm512_mul_ps(mw, _mm512_set1_ps(v.s[j * nb + b])));
            }
            acc[j] = _mm512_add_ps(acc[j], term);
        }
    }
    for (j, a) in acc.iter().enumerate() {
        // SAFETY: the caller's promise on `out_at` and `mask`.
        unsafe { _mm512_mask_storeu_ps(out_at(j), mask, *a) };
    }
}
