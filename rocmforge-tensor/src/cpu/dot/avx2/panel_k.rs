//! What the two K-quant panel GEMMs (AVX2 in `gemm_k.rs`, AVX-512 VNNI in `avx512`) share:
//! a Q4_K / Q5_K / Q6_K weight matrix decoded 16 rows at a time into a *panel* (built by
//! `pack_k.rs`), the activations' block sums paired as the kernels read them, the checks
//! of the operand sizes and the parallel loop over panels.
//!
//! A panel super-block holds the 256 values of 16 rows as unsigned bytes (4, 5 or 6 bits;
//! Q6_K keeps its stored `q + 32`), in 64 runs of `[16 rows][4 values]` (the layout of the
//! 32-element formats' panels, `panel.rs`), so a multiply-add against four activation bytes
//! broadcast to every lane adds their products into each row's own lane. Beside the values
//! a panel keeps per super-block and row: each sub-block's scale as an i16 pair (`sc, sc`:
//! a `madd` of the rows' 16-bit partial sums against it scales and widens them at once),
//! pairs of mins (Q4_K / Q5_K: `(min_0, min_2)`, `(min_1, min_3)`, `(min_4, min_6)`, `(min_5,
//! min_7)`) or of scales (Q6_K: `(sc_4k, sc_4k+2)`, `(sc_4k+1, sc_4k+3)`) for a `madd`
//! against the token's block sums paired the same way, and `d`, `dmin` as f32. The kernels
//! form per super-block the scalar path's exact integers, `isum = sum_s sc_s * sum(q_w *
//! q_a)` (Q6_K: `- 32 * sum_s sc_s * bsum_s`, its offset) and `msum = sum_s min_s *
//! bsum_s`, then its f32 operations in its order: `acc + (d * d_a) * isum`, then `- (dmin
//! * d_a) * msum` (Q4_K / Q5_K): the portable path's bits.

use rayon::prelude::*;

use super::KKind;
use super::kquant::block_bytes;
use super::panel::{Out, PANEL};
use super::rows_k::{SUMS_PER_BLOCK, act_sums};
use crate::cpu::dot::kquant::QK_K;
use crate::cpu::quantize_act::Q8KBlocks;

pub(in crate::cpu::dot) use super::kquant::{Q4K, Q5K, Q6K};
pub(in crate::cpu::dot) use super::pack_k::pack;

/// Paired block sums per super-block and token in [`KActs`].
pub(in crate::cpu::dot) const ACT_PAIRS: usize = SUMS_PER_BLOCK;

/// Bytes of one panel super-block: 256 values of 16 rows.
pub(in crate::cpu::dot) const KPANEL_BLOCK: usize = PANEL * QK_K;

/// A weight matrix of a K-quant with a panel GEMM, row-major.
#[derive(Debug, Clone, Copy)]
pub(crate) struct KMatrix<'a> {
    pub kind: KKind,
    pub data: &'a [u8],
    pub row_bytes: usize,
    pub rows: usize,
    pub cols: usize,
}

/// The kind as the kernels' const parameter.
pub(in crate::cpu::dot) fn kind_const(kind: KKind) -> u8 {
    match kind {
        KKind::Q4K => Q4K,
        KKind::Q5K => Q5K,
        KKind::Q6K => Q6K,
    }
}

/// Sub-blocks (one integer scale each) of one super-block.
pub(in crate::cpu::dot) const fn subs(k: u8) -> usize {
    if k == Q6K { 16 } else { 8 }
}

/// Pairs of mins (Q4_K / Q5_K) or of scales (Q6_K) per super-block.
pub(in crate::cpu::dot) const fn pairs(k: u8) -> usize {
    subs(k) / 2
}

/// 16 rows of a matrix decoded for a kernel (see the module docs), per super-block `b`:
/// `qs[b * KPANEL_BLOCK ..]`, `sc` as `[subs][16 rows][2]`, `pairs` as `[pairs][16
/// rows][2]`, `d` and `dmin` as 16 rows' values.
pub(in crate::cpu::dot) struct KPanel {
    pub qs: Vec<u8>,
    pub sc: Vec<i16>,
    pub pairs: Vec<i16>,
    pub d: Vec<f32>,
    pub dmin: Vec<f32>,
}

impl KPanel {
    fn new(k: u8, nb: usize) -> KPanel {
        KPanel {
            qs: vec![0; nb * KPANEL_BLOCK],
            sc: vec![0; nb * subs(k) * PANEL * 2],
            pairs: vec![0; nb * pairs(k) * PANEL * 2],
            d: vec![0.0; nb * PANEL],
            dmin: vec![0.0; nb * PANEL],
        }
    }
}

/// The activations of every token as the kernels read them: `qs` (`cols` per token), `d`
/// per super-block, and per super-block [`ACT_PAIRS`] i32, each two 16-bit block sums (low
/// half, high half; the decode rows' `act_sums`), whose first [`pairs`] match the panel's
/// pairs: Q4_K / Q5_K the sums `p_j` of 32 values as `(p0, p2)`, `(p1, p3)`, `(p4, p6)`,
/// `(p5, p7)`, Q6_K those of 16 values as `(b_4k, b_4k+2)`, `(b_4k+1, b_4k+3)`.
pub(in crate::cpu::dot) struct KActs<'a> {
    pub qs: &'a [i8],
    pub d: &'a [f32],
    pub pairs: Vec<i32>,
    pub cols: usize,
    pub nb: usize,
}

/// Checks the sizes, then runs `panel_rows(panel, r0, n, acts, out)` for every panel of 16
/// rows (`n` of them at row `r0`; the last panel may be shorter) in parallel, each task with
/// its own [`KPanel`]. `panel_rows` must write only rows `r0 .. r0 + n` of each token of
/// `out` (`n_tokens` x `rows` f32). Returns `false` (and runs nothing) when a slice is
/// shorter than the shapes say.
pub(in crate::cpu::dot) fn for_k_panels<F>(
    w: &KMatrix,
    act: &Q8KBlocks,
    n_tokens: usize,
    out: &mut [f32],
    panel_rows: F,
) -> bool
where
    F: Fn(&mut KPanel, usize, usize, &KActs, Out) + Sync + Send,
{
    let k = kind_const(w.kind);
    let nb = w.cols / QK_K;
    let fits = w.cols % QK_K == 0
        && w.row_bytes == nb * block_bytes(k)
        && Some(w.data.len()) == w.rows.checked_mul(w.row_bytes)
        && Some(act.qs.len()) == n_tokens.checked_mul(w.cols)
        && act.d.len() == n_tokens * nb
        && act.bsums.len() == n_tokens * nb * 16
        && Some(out.len()) == n_tokens.checked_mul(w.rows);
    if !fits {
        return false;
    }
    let acts = KActs {
        qs: &act.qs,
        d: &act.d,
        pairs: act_sums(w.kind, act),
        cols: w.cols,
        nb,
    };
    let dst = Out {
        ptr: out.as_mut_ptr(),
        rows: w.rows,
    };
    let panels = w.rows.div_ceil(PANEL);
    (0..panels).into_par_iter().for_each_init(
        || KPanel::new(k, nb),
        |panel, p| {
            let r0 = p * PANEL;
            panel_rows(panel, r0, PANEL.min(w.rows - r0), &acts, dst);
        },
    );
    true
}

/// Runs of four values whose `maddubs` pairs (unsigned weights of 4, 5 or 6 bits, against
/// activations of -128..=127) add up in i16 without saturating: 8 x 2 x 15 x 128, 4 x 2 x
/// 31 x 128, 2 x 2 x 63 x 128, all below 2^15.
pub(in crate::cpu::dot) const fn runs_in_i16(k: u8) -> usize {
    match k {
        Q4K => 8,
        Q5K => 4,
        _ => 2,
    }
}

/// Runs of four values per sub-block.
pub(in crate::cpu::dot) const fn runs_per_sub(k: u8) -> usize {
    QK_K / 4 / subs(k)
}

/// `$f::<K>(args)` with the const `K` of a [`kind_const`].
macro_rules! by_k_kind {
    ($k:expr, $f:ident($($arg:expr),* $(,)?)) => {{
        use $crate::cpu::dot::avx2::panel_k::{Q4K, Q5K, Q6K};
        match $k {
            Q4K => $f::<Q4K>($($arg),*),
            Q5K => $f::<Q5K>($($arg),*),
            _ => $f::<Q6K>($($arg),*),
        }
    }};
}
pub(in crate::cpu::dot) use by_k_kind;
