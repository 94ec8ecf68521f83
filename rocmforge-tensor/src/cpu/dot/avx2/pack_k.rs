//! Decoding 16 rows of a K-quant into a panel (`panel_k.rs`): each half of the panel (rows
//! 0-7, rows 8-15) is eight rows decoded side by side, 32 values of each row at a time
//! (the tiles' block decoder), and the 8 x 8 groups of four values transposed in registers
//! into the runs' `[8 rows][4 values]`, so a panel costs about as much to build as a few
//! tokens' products (the GEMM pays it once per matmul).

use std::arch::x86_64::*;

use super::kquant::{Q6K, Scales, block_bytes, scales, sub_vector};
use super::panel::PANEL;
use super::panel_k::{KMatrix, KPANEL_BLOCK, KPanel, pairs, subs};

/// Rows of one panel half: one 256-bit register holds four values of each.
const HALF: usize = 8;

/// `out[g]` = group `g` (values `4 g .. 4 g + 4`) of the eight rows `v[0..8]`, row by row.
#[target_feature(enable = "avx2")]
#[inline]
fn transpose(v: &[__m256i; HALF]) -> [__m256i; HALF] {
    let t0 = _mm256_unpacklo_epi32(v[0], v[1]);
    let t1 = _mm256_unpackhi_epi32(v[0], v[1]);
    let t2 = _mm256_unpacklo_epi32(v[2], v[3]);
    let t3 = _mm256_unpackhi_epi32(v[2], v[3]);
    let t4 = _mm256_unpacklo_epi32(v[4], v[5]);
    let t5 = _mm256_unpackhi_epi32(v[4], v[5]);
    let t6 = _mm256_unpacklo_epi32(v[6], v[7]);
    let t7 = _mm256_unpackhi_epi32(v[6], v[7]);
    // Rows 0-3 (u0..u3) and 4-7 (u4..u7) of groups 0-3 (low lane) and 4-7 (high lane).
    let u0 = _mm256_unpacklo_epi64(t0, t2);
    let u1 = _mm256_unpackhi_epi64(t0, t2);
    let u2 = _mm256_unpacklo_epi64(t1, t3);
    let u3 = _mm256_unpackhi_epi64(t1, t3);
    let u4 = _mm256_unpacklo_epi64(t4, t6);
    let u5 = _mm256_unpackhi_epi64(t4, t6);
    let u6 = _mm256_unpacklo_epi64(t5, t7);
    let u7 = _mm256_unpackhi_epi64(t5, t7);
    [
        _mm256_permute2x128_si256::<0x20>(u0, u4),
        _mm256_permute2x128_si256::<0x20>(u1, u5),
        _mm256_permute2x128_si256::<0x20>(u2, u6),
        _mm256_permute2x128_si256::<0x20>(u3, u7),
        _mm256_permute2x128_si256::<0x31>(u0, u4),
        _mm256_permute2x128_si256::<0x31>(u1, u5),
        _mm256_permute2x128_si256::<0x31>(u2, u6),
        _mm256_permute2x128_si256::<0x31>(u3, u7),
    ]
}

/// Rows `r0 .. r0 + n` of `w` into the panel layout (missing rows of the last panel as
/// zeros, with zero scales).
#[target_feature(enable = "avx2,fma,f16c")]
pub(in crate::cpu::dot) fn pack<const K: u8>(w: &KMatrix, panel: &mut KPanel, r0: usize, n: usize) {
    if n < PANEL {
        panel.qs.fill(0);
        panel.sc.fill(0);
        panel.pairs.fill(0);
        panel.d.fill(0.0);
        panel.dmin.fill(0.0);
    }
    let bb = block_bytes(K);
    let nb = w.row_bytes / bb;
    for half in 0..PANEL / HALF {
        let first = HALF * half;
        if first >= n {
            break;
        }
        let live = (n - first).min(HALF);
        let mut rows: [&[u8]; HALF] = [&[]; HALF];
        for (i, row) in rows.iter_mut().enumerate().take(live) {
            let r = r0 + first + i;
            *row = &w.data[r * w.row_bytes..(r + 1) * w.row_bytes];
        }
        for b in 0..nb {
            let mut s = [const {
                Scales {
                    d: 0.0,
                    dmin: 0.0,
                    sc: [0; 16],
                    mins: [0; 8],
                }
            }; HALF];
            for (si, row) in s.iter_mut().zip(&rows).take(live) {
                *si = scales::<K>(&row[b * bb..(b + 1) * bb]);
            }
            let dst = &mut panel.qs[b * KPANEL_BLOCK..(b + 1) * KPANEL_BLOCK];
            for i in 0..8 {
                let mut v = [_mm256_setzero_si256(); HALF];
                for (j, vj) in v.iter_mut().enumerate().take(live) {
                    *vj = sub_vector::<K>(&rows[j][b * bb..(b + 1) * bb], i, &s[j]).0;
                }
                for (g, t) in transpose(&v).into_iter().enumerate() {
                    let at = (8 * i + g) * 4 * PANEL + 4 * first;
                    let out = &mut dst[at..at + 32];
                    // SAFETY: `out` is 32 writable bytes; `storeu` has no alignment requirement.
                    unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), t) };
                }
            }
            scales_into::<K>(panel, b, first, &s[..live]);
        }
    }
}

/// The scales of super-block `b` of the rows `first ..` (one [`Scales`] each) into the
/// panel's `sc`, `pairs`, `d` and `dmin`.
fn scales_into<const K: u8>(panel: &mut KPanel, b: usize, first: usize, s: &[Scales]) {
    let (ns, np) = (subs(K), pairs(K));
    for (i, si) in s.iter().enumerate() {
        let r = first + i;
        for j in 0..ns {
            let at = ((b * ns + j) * PANEL + r) * 2;
            let sc = si.sc[j] as i16;
            panel.sc[at..at + 2].copy_from_slice(&[sc, sc]);
        }
        let paired = if K == Q6K { &si.sc[..] } else { &si.mins[..] };
        for j in 0..np {
            let at = ((b * np + j) * PANEL + r) * 2;
            let pair = [paired[2 * j] as i16, paired[2 * j + 1] as i16];
            panel.pairs[at..at + 2].copy_from_slice(&pair);
        }
        panel.d[b * PANEL + r] = si.d;
        panel.dmin[b * PANEL + r] = si.dmin;
    }
}
