//! The mixture-of-experts ops, one signature each (re-exported by [`crate::ops`]): the backend
//! picks [`crate::cpu::moe`](crate::cpu) or the launches of [`crate::hip::moe`].
//!
//! A block's feed-forward over `n` tokens with `k` of `E` experts each:
//! router logits (`ops::matmul`) → [`moe_route`] (ids `[n * k]` on the backend, weights
//! `[n][k]`) → [`matmul_id_swiglu`] (gate and up `[n * k][n_ff]`, then silu·mul) → [`matmul_id`]
//! down (one input row per slot) → [`moe_weighted_sum`] (`[n][n_embd]`).

use crate::backend::Backend;
use crate::cpu::{self, MatmulIdShape};
use crate::error::{TensorError, TensorResult};
use crate::hip;
use crate::tensor::{Ids, Tensor, Weight};

fn other_backend(op: &'static str, what: &str) -> TensorError {
    TensorError::Backend {
        op,
        what: format!("{what} held by another backend"),
    }
}

/// Routes each row of `logits` (`[n_tokens][n_expert]`): softmax, the `k` most probable
/// experts into `ids[t * k..][..k]` (largest first), their probabilities into `weights`
/// (`[n_tokens][k]`), divided by their sum when `normalize`. On a GPU the ids stay there.
pub fn moe_route(
    be: &Backend,
    logits: &Tensor,
    n_expert: usize,
    k: usize,
    normalize: bool,
    ids: &mut Ids,
    weights: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "moe_route";
    match (be, ids) {
        (Backend::Cpu, Ids::Cpu(ids)) => cpu::moe_route(
            logits.cpu_f32(OP)?,
            n_expert,
            k,
            normalize,
            ids,
            weights.cpu_f32_mut(OP)?,
        ),
        (Backend::Hip(ops), Ids::Hip(ids)) => hip::moe::moe_route(
            ops,
            logits.hip(OP)?,
            n_expert,
            k,
            normalize,
            ids,
            weights.hip_mut(OP)?,
        ),
        _ => Err(other_backend(OP, "expert ids")),
    }
}

/// `out[t * k + j] = x_row · W[ids[t * k + j]]ᵀ`: every (token, slot) multiplied by its chosen
/// expert's rows only (llama.cpp's `mul_mat_id`). `w` stacks `s.n_expert` slabs of equal rows
/// (GGUF's 3-D `ffn_{gate,up,down}_exps`); `x` holds a row per token, or per slot with
/// `s.x_per_slot`; `out` is `[n_tokens * k][rows]`.
pub fn matmul_id(
    be: &Backend,
    w: &Weight,
    s: &MatmulIdShape,
    x: &Tensor,
    ids: &Ids,
    out: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "matmul_id";
    match (be, w, ids) {
        (Backend::Cpu, Weight::Cpu(view), Ids::Cpu(ids)) => {
            cpu::matmul_id(view, s, x.cpu_f32(OP)?, ids, out.cpu_f32_mut(OP)?)
        }
        (Backend::Hip(ops), Weight::Hip(wt), Ids::Hip(ids)) => {
            hip::moe::matmul_id(ops, wt, s, x.hip(OP)?, ids, out.hip_mut(OP)?)
        }
        (Backend::Cpu, Weight::CpuF32 { .. }, _) => Err(TensorError::Backend {
            op: OP,
            what: "expert weights must be a file-format view, not f32 values".to_string(),
        }),
        _ => Err(other_backend(OP, "the weight or the expert ids")),
    }
}

/// The experts' SwiGLU input: `out[t * k + j] = silu(x_t · G[e]ᵀ) * (x_t · U[e]ᵀ)` with
/// `e = ids[t * k + j]` (`x` one row per token). On the GPU a gate/up pair of the same quantized
/// type takes one launch for decode-sized batches (`hip::moe::matmul_id_swiglu`); every other
/// case runs [`matmul_id`] for gate and up into `gate_out` / `up_out` and `silu_mul` (the same
/// values up to float summation order).
#[allow(clippy::too_many_arguments)]
pub fn matmul_id_swiglu(
    be: &Backend,
    gate: &Weight,
    up: &Weight,
    s: &MatmulIdShape,
    x: &Tensor,
    ids: &Ids,
    gate_out: &mut Tensor,
    up_out: &mut Tensor,
    out: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "matmul_id_swiglu";
    if let (Backend::Hip(ops), Weight::Hip(g), Weight::Hip(u), Ids::Hip(i)) = (be, gate, up, ids)
        && hip::moe::matmul_id_swiglu(ops, g, u, s, x.hip(OP)?, i, out.hip_mut(OP)?)?
    {
        return Ok(());
    }
    matmul_id(be, gate, s, x, ids, gate_out)?;
    matmul_id(be, up, s, x, ids, up_out)?;
    crate::ops::silu_mul(be, gate_out, up_out, out)
}

/// `out[t] = sum_j weights[t][j] * y[t * k + j]` over rows of `out`'s width: each token's
/// expert outputs combined with its routing weights.
pub fn moe_weighted_sum(
    be: &Backend,
    y: &Tensor,
    weights: &Tensor,
    k: usize,
    out: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "moe_weighted_sum";
    match be {
        Backend::Cpu => cpu::moe_weighted_sum(
            y.cpu_f32(OP)?,
            weights.cpu_f32(OP)?,
            k,
            out.cpu_f32_mut(OP)?,
        ),
        Backend::Hip(ops) => {
            hip::moe::moe_weighted_sum(ops, y.hip(OP)?, weights.hip(OP)?, k, out.hip_mut(OP)?)
        }
    }
}
