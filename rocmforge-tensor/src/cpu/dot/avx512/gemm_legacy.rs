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

use rayon::prelude::*;

use super::LegacyMatrix;
use crate::cpu::dot::QK;
use crate::cpu::dot::avx2::LegacyKind;
use crate::cpu::dot::avx2::legacy::{Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, block_bytes, decode, has_min};
use crate::cpu::quantize_act::Q8Blocks;

/// Rows per panel: one 32-bit lane of a 512-bit register each.
const PANEL: usize = 16;
/// Tokens whose integer sums and accumulators stay in registers while a panel block is
/// reused (2 x 8 of the 32 vector registers).
const TOKENS: usize = 8;
/// Bytes of one panel block: 32 values of 16 rows, as 8 runs of `[16 rows][4 values]`.
const PANEL_BLOCK: usize = PANEL * QK;

/// 16 rows of a matrix decoded for the kernel: `qs` per block as described at
/// [`PANEL_BLOCK`], `d` and `m` per block as 16 rows' values.
struct Panel {
    qs: Vec<u8>,
    d: Vec<f32>,
    m: Vec<f32>,
}

impl Panel {
    fn new(nb: usize) -> Panel {
        Panel {
            qs: vec![0; nb * PANEL_BLOCK],
            d: vec![0.0; nb * PANEL],
            m: vec![0.0; nb * PANEL],
        }
    }
}

/// The output matrix, shared by the tasks; each task writes only the rows of its panel.
#[derive(Clone, Copy)]
struct Out {
    ptr: *mut f32,
    rows: usize,
}

// SAFETY: `Out` is only used inside `gemm`, whose tasks write disjoint rows (panels) of a
// slice that `gemm` borrows mutably for the whole parallel loop.
unsafe impl Send for Out {}
// SAFETY: as for `Send`: no two tasks write the same element, and nobody reads.
unsafe impl Sync for Out {}

/// What one panel's tokens loop reads besides the panel.
struct Acts<'a> {
    qs: &'a [i8],
    d: &'a [f32],
    s: &'a [f32],
    corr: &'a [i32],
    cols: usize,
    nb: usize,
}

/// See [`super::legacy_gemm`].
pub(super) fn gemm(w: &LegacyMatrix, act: &Q8Blocks, n_tokens: usize, out: &mut [f32]) -> bool {
    let k = kind_const(w.kind);
    let nb = w.cols / QK;
    let fits = w.cols % QK == 0
        && w.row_bytes == nb * block_bytes(k)
        && Some(w.data.len()) == w.rows.checked_mul(w.row_bytes)
        && Some(act.qs.len()) == n_tokens.checked_mul(w.cols)
        && act.d.len() == n_tokens * nb
        && (!has_min(k) || act.s.len() == n_tokens * nb)
        && Some(out.len()) == n_tokens.checked_mul(w.rows);
    if !fits {
        return false;
    }
    // The symmetric formats hold q + 128: start each block's sum at -128 * sum(q_a).
    let corr: Vec<i32> = if has_min(k) {
        Vec::new()
    } else {
        act.qs
            .chunks_exact(QK)
            .map(|c| -128 * c.iter().map(|&q| i32::from(q)).sum::<i32>())
            .collect()
    };
    let acts = Acts {
        qs: &act.qs,
        d: &act.d,
        s: &act.s,
        corr: &corr,
        cols: w.cols,
        nb,
    };
    let dst = Out {
        ptr: out.as_mut_ptr(),
        rows: w.rows,
    };
    let panels = w.rows.div_ceil(PANEL);
    (0..panels).into_par_iter().for_each_init(
        || Panel::new(nb),
        |panel, p| {
            let r0 = p * PANEL;
            let n = PANEL.min(w.rows - r0);
            // SAFETY: a `Vnni` token (required by `legacy_gemm`, the only caller) exists only
            // when the CPU has every feature these functions enable. The sizes checked above
            // keep every read in bounds; `out` holds `n_tokens * rows` values and this task
            // writes only rows `r0 .. r0 + n` of each token.
            unsafe {
                match k {
                    Q4_0 => panel_rows::<Q4_0>(w, panel, r0, n, &acts, n_tokens, dst),
                    Q4_1 => panel_rows::<Q4_1>(w, panel, r0, n, &acts, n_tokens, dst),
                    Q5_0 => panel_rows::<Q5_0>(w, panel, r0, n, &acts, n_tokens, dst),
                    Q5_1 => panel_rows::<Q5_1>(w, panel, r0, n, &acts, n_tokens, dst),
                    _ => panel_rows::<Q8_0>(w, panel, r0, n, &acts, n_tokens, dst),
                }
            }
        },
    );
    true
}

fn kind_const(kind: LegacyKind) -> u8 {
    match kind {
        LegacyKind::Q4_0 => Q4_0,
        LegacyKind::Q4_1 => Q4_1,
        LegacyKind::Q5_0 => Q5_0,
        LegacyKind::Q5_1 => Q5_1,
        LegacyKind::Q8_0 => Q8_0,
    }
}

/// Decodes rows `r0 .. r0 + n` into `panel` and multiplies them with every token.
///
/// # Safety
/// The CPU has the enabled features; the sizes are those `gemm` checked; `out` may be
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
    pack::<K>(w, panel, r0, n);
    let mask: __mmask16 = if n == PANEL { 0xffff } else { (1u16 << n) - 1 };
    for t in (0..n_tokens).step_by(TOKENS) {
        let out_at = |j: usize| {
            // SAFETY: token `t + j < n_tokens`, row `r0 < rows`: inside `out`.
            unsafe { out.ptr.add((t + j) * out.rows + r0) }
        };
        let (qs, d) = (&acts.qs[t * acts.cols..], &acts.d[t * acts.nb..]);
        let s = if has_min(K) {
            &acts.s[t * acts.nb..]
        } else {
            &[][..]
        };
        let corr = if has_min(K) {
            &[][..]
        } else {
            &acts.corr[t * acts.nb..]
        };
        let v = Tile { qs, d, s, corr };
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

/// Rows `r0 .. r0 + n` of `w` into the panel layout (missing rows of the last panel as
/// zeros, with zero scales).
#[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")]
fn pack<const K: u8>(w: &LegacyMatrix, panel: &mut Panel, r0: usize, n: usize) {
    if n < PANEL {
        panel.qs.fill(0);
        panel.d.fill(0.0);
        panel.m.fill(0.0);
    }
    let bias = _mm256_set1_epi8(if has_min(K) { 0 } else { -128 });
    let mut vals = [0u8; QK];
    for r in 0..n {
        let row = &w.data[(r0 + r) * w.row_bytes..(r0 + r + 1) * w.row_bytes];
        let blocks = row
            .chunks_exact(block_bytes(K))
            .zip(panel.qs.chunks_exact_mut(PANEL_BLOCK));
        for (b, (blk, dst)) in blocks.enumerate() {
            let (v, d, m) = decode::<K>(blk);
            // SAFETY: `vals` is 32 writable bytes; `storeu` has no alignment requirement.
            unsafe { _mm256_storeu_si256(vals.as_mut_ptr().cast(), _mm256_xor_si256(v, bias)) };
            for (g, four) in vals.chunks_exact(4).enumerate() {
                let at = g * 4 * PANEL + 4 * r;
                dst[at..at + 4].copy_from_slice(four);
            }
            panel.d[b * PANEL + r] = d;
            panel.m[b * PANEL + r] = m;
        }
    }
}

/// The activations of one token tile, from its first token on.
struct Tile<'a> {
    qs: &'a [i8],
    d: &'a [f32],
    s: &'a [f32],
    corr: &'a [i32],
}

/// The panel against `N` tokens: 16 rows x `N` tokens of f32 sums in registers, each
/// stored to `out_at(j)` (token `j`'s first row of the panel) under `mask`.
///
/// # Safety
/// The CPU has the enabled features; `v` holds `N` tokens' activations (`qs`: `N * cols`,
/// `d`, `s`, `corr`: `N * nb`); `out_at(j)` points to 16 writable f32 for each `j < N`
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
                *pj = _mm512_set1_epi32(v.corr[j * nb + b]);
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
