//! Decode (one token) for Q8_0 with AVX-512 VNNI on 256-bit registers: eight rows at a
//! time, as the AVX2 rows (`avx2::legacy_rows`), but each row's block products come from one
//! `vpdpbusd` instead of the sign trick and two multiply-adds: the weight bytes plus 128
//! (an xor) are unsigned and multiply the signed activations without 16-bit saturation;
//! `128 * sum(activations of the block)` comes off the integer sum afterwards, exact. The
//! eight rows' `d` come from one transpose of their block heads. Same integer sums and the
//! same f32 operations: the portable path's bits.

use std::arch::x86_64::*;

use crate::cpu::dot::avx2::legacy::{Q8_0, add_terms, block_arrays, block_bytes, store_rows, sum8};
use crate::cpu::dot::avx2::rows8::{halves_to_f32, transpose};
use crate::cpu::dot::avx2::{Ahead, ROWS, load16, load32};
use crate::cpu::quantize_act::Q8Blocks;

/// `out[r] = rows[r] · token 0` for Q8_0 rows against one token's Q8_0 blocks `act` whose
/// per-block integer sums are `asum`.
#[target_feature(enable = "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")]
pub(super) fn rows(
    rows: [&[u8]; ROWS],
    act: &Q8Blocks,
    asum: &[i32],
    ahead: Ahead,
    out: &mut [f32],
) {
    const BB: usize = block_bytes(Q8_0);
    let flip = _mm256_set1_epi8(-128);
    let mut acc = _mm256_setzero_ps();
    let mut p = [_mm256_setzero_si256(); ROWS];
    let (blocks, aqs, ads) = block_arrays::<BB>(rows, act);
    let asum = &asum[..aqs.len()];
    for b in 0..aqs.len() {
        ahead.part(b);
        let (aq, ad, sa) = (&aqs[b], ads[b], asum[b]);
        let blk = blocks.map(|r| &r[b]);
        // SAFETY: `aq` is 32 readable bytes; `loadu` has no alignment requirement.
        let a = unsafe { _mm256_loadu_si256(aq.as_ptr().cast()) };
        for r in 0..ROWS {
            let w = _mm256_xor_si256(load32(&blk[r][2..]), flip);
            p[r] = _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, a);
        }
        let sums = _mm256_sub_epi32(sum8(&p), _mm256_set1_epi32(128 * sa));
        let (dw, _) = halves_to_f32(transpose!(blk, 0)[0]);
        acc = add_terms::<Q8_0>(acc, dw, dw, ad, 0.0, _mm256_cvtepi32_ps(sums));
    }
    store_rows(acc, out);
}
