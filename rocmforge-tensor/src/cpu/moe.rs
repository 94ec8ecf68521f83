//! Mixture-of-experts on the CPU: the router's top-k choice ([`moe_route`]), the expert matmul
//! that multiplies each token by its chosen experts' rows only ([`matmul_id`], llama.cpp's
//! `mul_mat_id` idea) and the weighted sum of the experts' outputs ([`moe_weighted_sum`]).
//!
//! `matmul_id` groups the (token, slot) pairs by expert and runs [`matmul`] — the quantized
//! integer dot products, SIMD and rayon — once per used expert over the gathered rows, so a
//! prefill reads each used expert's weights once, and a decode step reads only the `k` chosen.

use super::matmul::matmul;
use super::softmax::{softmax, top_k};
use super::weight::WeightView;
use crate::error::{TensorError, TensorResult};

/// Smallest sum of the chosen probabilities that is divided by when they are renormalised
/// (the smallest normal f16, as llama.cpp clamps it).
pub const MIN_WEIGHT_SUM: f32 = 1.0 / 16_384.0; // 2^-14 = 6.103515625e-5

fn shape(op: &'static str, what: String) -> TensorError {
    TensorError::Shape { op, what }
}

/// Routes each of the `n_tokens` rows of `logits` (`[n_tokens][n_expert]`): softmax, the `k`
/// most probable experts (largest first) into `ids[t * k..][..k]` and their probabilities into
/// `weights` (`[n_tokens][k]`), divided by their sum when `normalize` (the sum clamped to
/// [`MIN_WEIGHT_SUM`]) — llama.cpp's softmax gating as qwen3moe uses it.
pub fn moe_route(
    logits: &[f32],
    n_expert: usize,
    k: usize,
    normalize: bool,
    ids: &mut [u32],
    weights: &mut [f32],
) -> TensorResult<()> {
    const OP: &str = "moe_route";
    if n_expert == 0 || k == 0 || k > n_expert || logits.len() % n_expert != 0 {
        return Err(shape(
            OP,
            format!(
                "{} logits in rows of {n_expert} experts, {k} chosen",
                logits.len()
            ),
        ));
    }
    let n_tokens = logits.len() / n_expert;
    if ids.len() < n_tokens * k || weights.len() != n_tokens * k {
        return Err(shape(
            OP,
            format!(
                "{n_tokens} tokens x {k} experts into {} ids and {} weights",
                ids.len(),
                weights.len()
            ),
        ));
    }
    let mut probs = vec![0.0f32; n_expert];
    for (t, row) in logits.chunks_exact(n_expert).enumerate() {
        probs.copy_from_slice(row);
        softmax(&mut probs);
        let chosen = top_k(&probs, k);
        let sum: f32 = chosen.iter().map(|&(_, p)| p).sum();
        let div = if normalize {
            sum.max(MIN_WEIGHT_SUM)
        } else {
            1.0
        };
        for (j, &(e, p)) in chosen.iter().enumerate() {
            ids[t * k + j] = e as u32;
            weights[t * k + j] = p / div;
        }
    }
    Ok(())
}

/// Shapes of one [`matmul_id`] call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatmulIdShape {
    /// Experts stacked in the weight (each a slab of `rows` consecutive rows).
    pub n_expert: usize,
    /// Tokens of the batch.
    pub n_tokens: usize,
    /// Experts chosen per token (slots).
    pub k: usize,
    /// Whether `x` holds one row per slot (`[n_tokens * k][cols]`, the down projection) rather
    /// than one per token shared by its slots (`[n_tokens][cols]`, gate and up).
    pub x_per_slot: bool,
}

impl MatmulIdShape {
    /// Rows of `x` the shape reads.
    pub fn x_rows(&self) -> usize {
        if self.x_per_slot {
            self.n_tokens * self.k
        } else {
            self.n_tokens
        }
    }

    /// Checks the operand sizes for a weight of `w_rows` rows of `cols`; returns the rows of
    /// one expert.
    pub fn check(
        &self,
        op: &'static str,
        w_rows: usize,
        cols: usize,
        x_len: usize,
        ids_len: usize,
        out_len: usize,
    ) -> TensorResult<usize> {
        if self.n_expert == 0 || w_rows % self.n_expert != 0 {
            return Err(shape(
                op,
                format!(
                    "{w_rows} weight rows are not {} equal expert slabs",
                    self.n_expert
                ),
            ));
        }
        let rows = w_rows / self.n_expert;
        let slots = self.n_tokens.checked_mul(self.k);
        let fits = slots.is_some_and(|s| {
            ids_len >= s
                && Some(x_len) == self.x_rows().checked_mul(cols)
                && Some(out_len) == s.checked_mul(rows)
        });
        if !fits || self.k > self.n_expert {
            return Err(shape(
                op,
                format!(
                    "{self:?} with {rows} rows x {cols} columns per expert: x of {x_len}, {ids_len} ids, out of {out_len}"
                ),
            ));
        }
        Ok(rows)
    }
}

/// `out[t * k + j] = x_row · W[ids[t * k + j]]ᵀ` for every token `t` and slot `j`: each row
/// of `out` multiplies its input row (the token's, or the slot's own with `x_per_slot`) by
/// the rows of its chosen expert only. `w` stacks `n_expert` slabs of `rows` rows (GGUF's 3-D
/// `ffn_*_exps`); `out` is `[n_tokens * k][rows]`. An id outside the experts is an error.
pub fn matmul_id(
    w: &WeightView,
    s: &MatmulIdShape,
    x: &[f32],
    ids: &[u32],
    out: &mut [f32],
) -> TensorResult<()> {
    const OP: &str = "matmul_id";
    let row_bytes = w.checked_row_bytes(OP)?;
    let rows = s.check(OP, w.rows, w.cols, x.len(), ids.len(), out.len())?;
    let cols = w.cols;
    let slots = s.n_tokens * s.k;
    // The slots of each expert, in batch order.
    let mut by_expert: Vec<Vec<usize>> = vec![Vec::new(); s.n_expert];
    for (slot, &e) in ids[..slots].iter().enumerate() {
        let list = by_expert.get_mut(e as usize).ok_or_else(|| {
            shape(
                OP,
                format!("expert id {e} at slot {slot} of {} experts", s.n_expert),
            )
        })?;
        list.push(slot);
    }
    let slab = rows * row_bytes;
    let (mut xs, mut ys) = (Vec::new(), Vec::new());
    for (e, list) in by_expert.iter().enumerate() {
        if list.is_empty() {
            continue;
        }
        let view = WeightView {
            ty: w.ty,
            data: &w.data[e * slab..(e + 1) * slab],
            rows,
            cols,
        };
        xs.clear();
        for &slot in list {
            let r = if s.x_per_slot { slot } else { slot / s.k };
            xs.extend_from_slice(&x[r * cols..(r + 1) * cols]);
        }
        ys.clear();
        ys.resize(list.len() * rows, 0.0);
        matmul(&view, &xs, list.len(), &mut ys)?;
        for (&slot, y) in list.iter().zip(ys.chunks_exact(rows)) {
            out[slot * rows..(slot + 1) * rows].copy_from_slice(y);
        }
    }
    Ok(())
}

/// `out[t] = sum_j weights[t][j] * y[t * k + j]` over rows of `width`: the experts' outputs of
/// each token combined with its routing weights (slots added in order).
pub fn moe_weighted_sum(y: &[f32], weights: &[f32], k: usize, out: &mut [f32]) -> TensorResult<()> {
    const OP: &str = "moe_weighted_sum";
    let n_tokens = weights.len().checked_div(k).unwrap_or(0);
    let width = out.len().checked_div(n_tokens).unwrap_or(0);
    if k == 0
        || weights.len() != n_tokens * k
        || out.len() != n_tokens * width
        || y.len() != n_tokens * k * width
    {
        return Err(shape(
            OP,
            format!(
                "y of {}, {} weights in groups of {k}, out of {}",
                y.len(),
                weights.len(),
                out.len()
            ),
        ));
    }
    for (t, o) in out.chunks_exact_mut(width.max(1)).enumerate() {
        o.fill(0.0);
        for j in 0..k {
            let wj = weights[t * k + j];
            let row = &y[(t * k + j) * width..(t * k + j + 1) * width];
            for (a, &b) in o.iter_mut().zip(row) {
                *a += wj * b;
            }
        }
    }
    Ok(())
}
