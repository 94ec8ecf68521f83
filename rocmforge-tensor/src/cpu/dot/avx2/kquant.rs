//! AVX2 kernels for Q4_K, Q5_K and Q6_K rows against Q8_K activations. Each super-block
//! is read as eight vectors of 32 unsigned values (4, 5 or 6 bits) with their integer
//! scales; per token the scaled integer sum of a super-block is exact, then added in f32
//! in the scalar path's order (so the results are the scalar path's, bit for bit).

use std::arch::x86_64::*;

use super::{KKind, TILE, f16_at, hsum_epi32, load32, load32_i8};
use crate::cpu::dot::kquant::QK_K;
use crate::cpu::dot::kquant_high::scale_min_k4;
use crate::cpu::quantize_act::Q8KBlocks;

pub(in crate::cpu::dot) const Q4K: u8 = 0;
pub(in crate::cpu::dot) const Q5K: u8 = 1;
pub(in crate::cpu::dot) const Q6K: u8 = 2;

/// Bytes of one super-block of the kind `k`.
pub(super) const fn block_bytes(k: u8) -> usize {
    match k {
        Q4K => 144,
        Q5K => 176,
        _ => 210,
    }
}

/// See [`super::k_row`].
#[target_feature(enable = "avx2,fma,f16c")]
pub(super) fn row(
    kind: KKind,
    row: &[u8],
    act: &Q8KBlocks,
    cols: usize,
    t0: usize,
    out: &mut [f32],
) {
    match kind {
        KKind::Q4K => tiles::<Q4K>(row, act, cols, t0, out),
        KKind::Q5K => tiles::<Q5K>(row, act, cols, t0, out),
        KKind::Q6K => tiles::<Q6K>(row, act, cols, t0, out),
    }
}

#[target_feature(enable = "avx2,fma,f16c")]
fn tiles<const K: u8>(row: &[u8], act: &Q8KBlocks, cols: usize, t0: usize, out: &mut [f32]) {
    let nb = cols / QK_K;
    for (i, chunk) in out.chunks_mut(TILE).enumerate() {
        let (t, n) = (t0 + i * TILE, chunk.len());
        let qs = &act.qs[t * cols..(t + n) * cols];
        let d = &act.d[t * nb..(t + n) * nb];
        let bsums = &act.bsums[t * nb * 16..(t + n) * nb * 16];
        match n {
            4 => tile::<K, 4>(row, qs, d, bsums, chunk),
            3 => tile::<K, 3>(row, qs, d, bsums, chunk),
            2 => tile::<K, 2>(row, qs, d, bsums, chunk),
            _ => tile::<K, 1>(row, qs, d, bsums, chunk),
        }
    }
}

/// Scales of one super-block: `d`, `dmin`, one scale per 32 values (Q4_K / Q5_K) or per
/// 16 values (Q6_K), and the mins of Q4_K / Q5_K.
struct Scales {
    d: f32,
    dmin: f32,
    sc: [i32; 16],
    mins: [i32; 8],
}

#[target_feature(enable = "avx2,fma,f16c")]
fn scales<const K: u8>(blk: &[u8]) -> Scales {
    let mut s = Scales {
        d: 0.0,
        dmin: 0.0,
        sc: [0; 16],
        mins: [0; 8],
    };
    if K == Q6K {
        s.d = f16_at(blk, 208);
        for (o, &b) in s.sc.iter_mut().zip(&blk[192..208]) {
            *o = i32::from(b as i8);
        }
    } else {
        s.d = f16_at(blk, 0);
        s.dmin = f16_at(blk, 2);
        for j in 0..8 {
            (s.sc[j], s.mins[j]) = scale_min_k4(j, &blk[4..16]);
        }
    }
    s
}

/// Values `32 i .. 32 i + 32` of a super-block as unsigned bytes, and the i16 scale of
/// each of their products (one scale per vector, or per 16 values for Q6_K).
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn sub_vector<const K: u8>(blk: &[u8], i: usize, s: &Scales) -> (__m256i, __m256i) {
    let low4 = _mm256_set1_epi8(0x0f);
    let shift = |v: __m256i, n: usize| _mm256_srl_epi16(v, _mm_cvtsi32_si128(n as i32));
    if K == Q6K {
        let (n, r) = (i / 4, i % 4);
        let ql = load32(&blk[64 * n + 32 * (r & 1)..]);
        let qh = load32(&blk[128 + 32 * n..]);
        let lo = _mm256_and_si256(shift(ql, 4 * (r >> 1)), low4);
        let hi = _mm256_and_si256(shift(qh, 2 * r), _mm256_set1_epi8(3));
        let w = _mm256_or_si256(lo, _mm256_slli_epi16::<4>(hi));
        let sc = _mm256_set_m128i(
            _mm_set1_epi16(s.sc[2 * i + 1] as i16),
            _mm_set1_epi16(s.sc[2 * i] as i16),
        );
        return (w, sc);
    }
    let (k, h) = (i / 2, i % 2);
    let qs_at = if K == Q4K { 16 } else { 48 };
    let q = load32(&blk[qs_at + 32 * k..]);
    let mut w = _mm256_and_si256(shift(q, 4 * h), low4);
    if K == Q5K {
        let bit = _mm256_and_si256(shift(load32(&blk[16..]), i), _mm256_set1_epi8(1));
        w = _mm256_or_si256(w, _mm256_slli_epi16::<4>(bit));
    }
    (w, _mm256_set1_epi16(s.sc[i] as i16))
}

/// One row against the `N` tokens of one tile (activations in the tile layout of
/// `tiled.rs`), as `dot_k` of the scalar path.
#[target_feature(enable = "avx2,fma,f16c")]
fn tile<const K: u8, const N: usize>(
    row: &[u8],
    qs: &[i8],
    d: &[f32],
    bsums: &[i32],
    out: &mut [f32],
) {
    let mut sums = [0.0f32; N];
    let blocks = row
        .chunks_exact(block_bytes(K))
        .zip(qs.chunks_exact(N * QK_K))
        .zip(d.chunks_exact(N).zip(bsums.chunks_exact(N * 16)));
    for ((blk, aq), (ad, abs)) in blocks {
        let s = scales::<K>(blk);
        let mut isum = [_mm256_setzero_si256(); N];
        for i in 0..8 {
            let (w, sc) = sub_vector::<K>(blk, i, &s);
            for j in 0..N {
                let a = load32_i8(&aq[j * QK_K + 32 * i..]);
                let p = _mm256_madd_epi16(_mm256_maddubs_epi16(w, a), sc);
                isum[j] = _mm256_add_epi32(isum[j], p);
            }
        }
        for j in 0..N {
            let bs = &abs[j * 16..(j + 1) * 16];
            let mut is = hsum_epi32(isum[j]);
            if K == Q6K {
                // The values are stored as q + 32: subtract 32 * sum(scale * bsum).
                let offset: i32 = s.sc.iter().zip(bs).map(|(&c, &v)| c * v).sum();
                is -= 32 * offset;
            }
            sums[j] += (s.d * ad[j]) * is as f32;
            if K != Q6K {
                let msum: i32 = s
                    .mins
                    .iter()
                    .zip(bs.chunks_exact(2))
                    .map(|(&m, p)| m * (p[0] + p[1]))
                    .sum();
                sums[j] -= (s.dmin * ad[j]) * msum as f32;
            }
        }
    }
    out[..N].copy_from_slice(&sums);
}
