//! What the two panel GEMMs (AVX2 here, AVX-512 VNNI in `avx512`) share: a weight matrix of
//! a 32-element format decoded 16 rows at a time into a *panel*, the checks of the operand
//! sizes, and the parallel loop over panels.
//!
//! A panel block holds the 32 values of one block of 16 rows as 8 runs of `[16 rows][4
//! values]` (one byte each, plus a per-kernel bias that makes them unsigned), so one 512-bit
//! register (or two 256-bit ones: rows 0-7, rows 8-15) holds four consecutive values of
//! every row and a multiply-add against four activation bytes broadcast to every lane adds
//! their products into each row's own 32-bit lane. The panel is built by the task that
//! uses it and multiplied with every token of the matmul (prefill), so each weight block is
//! read and decoded once per matmul.

use std::arch::x86_64::*;

use rayon::prelude::*;

use super::LegacyKind;
use super::legacy::{IQ4_NL, MXFP4, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, block_bytes, decode, has_min};
use super::rows8::block_sums;
use crate::cpu::dot::QK;
use crate::cpu::quantize_act::Q8Blocks;

/// Rows per panel.
pub(in crate::cpu::dot) const PANEL: usize = 16;
/// Bytes of one panel block: 32 values of 16 rows, as 8 runs of `[16 rows][4 values]`.
pub(in crate::cpu::dot) const PANEL_BLOCK: usize = PANEL * QK;

/// A weight matrix of a 32-element format with an AVX2 block decoder, row-major.
#[derive(Debug, Clone, Copy)]
pub(crate) struct LegacyMatrix<'a> {
    pub kind: LegacyKind,
    pub data: &'a [u8],
    pub row_bytes: usize,
    pub rows: usize,
    pub cols: usize,
}

/// 16 rows of a matrix decoded for a kernel: `qs` per block as described at
/// [`PANEL_BLOCK`], `d` and `m` per block as 16 rows' values.
pub(in crate::cpu::dot) struct Panel {
    pub qs: Vec<u8>,
    pub d: Vec<f32>,
    pub m: Vec<f32>,
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
pub(in crate::cpu::dot) struct Out {
    pub ptr: *mut f32,
    pub rows: usize,
}

// SAFETY: `Out` is only made by `for_panels`, whose tasks write disjoint rows (panels) of a
// slice that it borrows mutably for the whole parallel loop.
unsafe impl Send for Out {}
// SAFETY: as for `Send`: no two tasks write the same element, and nobody reads.
unsafe impl Sync for Out {}

/// The activations of every token, as the kernels read them: `qs` (`cols` per token), `d`,
/// `s` (Q8_1 only) and `asum` (the sum of each block's quantized values) per block.
pub(in crate::cpu::dot) struct Acts<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub asum: &'a [i32],
    pub cols: usize,
    pub nb: usize,
}

impl<'a> Acts<'a> {
    /// The activations from token `t` on (`s` empty for Q8_0, `asum` for Q8_1).
    pub(in crate::cpu::dot) fn tokens_from(&self, t: usize) -> Tile<'a> {
        Tile {
            qs: &self.qs[t * self.cols..],
            d: &self.d[t * self.nb..],
            s: self.s.get(t * self.nb..).unwrap_or_default(),
            asum: self.asum.get(t * self.nb..).unwrap_or_default(),
        }
    }
}

/// The activations of one token tile, from its first token on.
pub(in crate::cpu::dot) struct Tile<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub s: &'a [f32],
    pub asum: &'a [i32],
}

/// The kind as the kernels' const parameter.
pub(in crate::cpu::dot) fn kind_const(kind: LegacyKind) -> u8 {
    match kind {
        LegacyKind::Q4_0 => Q4_0,
        LegacyKind::Q4_1 => Q4_1,
        LegacyKind::Q5_0 => Q5_0,
        LegacyKind::Q5_1 => Q5_1,
        LegacyKind::Q8_0 => Q8_0,
        LegacyKind::Mxfp4 => MXFP4,
        LegacyKind::Iq4Nl => IQ4_NL,
    }
}

/// `$f::<K>(args)` with the const `K` of the kind `$k` (a [`kind_const`]).
macro_rules! by_kind {
    ($k:expr, $f:ident($($arg:expr),* $(,)?)) => {{
        use $crate::cpu::dot::avx2::legacy::{IQ4_NL, MXFP4, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0};
        match $k {
            MXFP4 => $f::<MXFP4>($($arg),*),
            IQ4_NL => $f::<IQ4_NL>($($arg),*),
            Q4_0 => $f::<Q4_0>($($arg),*),
            Q4_1 => $f::<Q4_1>($($arg),*),
            Q5_0 => $f::<Q5_0>($($arg),*),
            Q5_1 => $f::<Q5_1>($($arg),*),
            _ => $f::<Q8_0>($($arg),*),
        }
    }};
}
pub(in crate::cpu::dot) use by_kind;

/// Checks the sizes, then runs `panel_rows(panel, r0, n, acts, out)` for every panel of 16
/// rows (`n` of them at row `r0`; the last panel may be shorter) in parallel, each task with
/// its own [`Panel`]. `panel_rows` must write only rows `r0 .. r0 + n` of each token of
/// `out` (`n_tokens` x `rows` f32). Returns `false` (and runs nothing) when a slice is
/// shorter than the shapes say.
pub(in crate::cpu::dot) fn for_panels<F>(
    w: &LegacyMatrix,
    act: &Q8Blocks,
    n_tokens: usize,
    out: &mut [f32],
    panel_rows: F,
) -> bool
where
    F: Fn(&mut Panel, usize, usize, &Acts, Out) + Sync + Send,
{
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
    let asum = if has_min(k) {
        Vec::new()
    } else {
        block_sums(act)
    };
    let acts = Acts {
        qs: &act.qs,
        d: &act.d,
        s: &act.s,
        asum: &asum,
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
            panel_rows(panel, r0, PANEL.min(w.rows - r0), &acts, dst);
        },
    );
    true
}

/// Rows `r0 .. r0 + n` of `w` into the panel layout, each value plus `bias` (wrapping;
/// missing rows of the last panel as zeros, with zero scales).
#[target_feature(enable = "avx2,fma,f16c")]
pub(in crate::cpu::dot) fn pack<const K: u8>(
    w: &LegacyMatrix,
    panel: &mut Panel,
    r0: usize,
    n: usize,
    bias: i8,
) {
    if n < PANEL {
        panel.qs.fill(0);
        panel.d.fill(0.0);
        panel.m.fill(0.0);
    }
    let bias = _mm256_set1_epi8(bias);
    let mut vals = [0u8; QK];
    for r in 0..n {
        let row = &w.data[(r0 + r) * w.row_bytes..(r0 + r + 1) * w.row_bytes];
        let blocks = row
            .chunks_exact(block_bytes(K))
            .zip(panel.qs.chunks_exact_mut(PANEL_BLOCK));
        for (b, (blk, dst)) in blocks.enumerate() {
            let (v, d, m) = decode::<K>(blk);
            // SAFETY: `vals` is 32 writable bytes; `storeu` has no alignment requirement.
            unsafe { _mm256_storeu_si256(vals.as_mut_ptr().cast(), _mm256_add_epi8(v, bias)) };
            for (g, four) in vals.chunks_exact(4).enumerate() {
                let at = g * 4 * PANEL + 4 * r;
                dst[at..at + 4].copy_from_slice(four);
            }
            panel.d[b * PANEL + r] = d;
            panel.m[b * PANEL + r] = m;
        }
    }
}
