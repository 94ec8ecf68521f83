//! A block's residual stream through fewer launches: the RMS norm that starts an attention or
//! MLP block applied inside its first matmul (`rms_norm_matmul_many`,
//! `rms_norm_matmul_swiglu`), and the projection that ends it added to the residual in the
//! matmul's store (`matmul_add`). Each op means exactly the unfused sequence it names; on the
//! CPU it runs that sequence, on a GPU the one-launch decode kernels where they serve the shape
//! (1..=8 tokens), else the same sequence.

use crate::backend::Backend;
use crate::error::{TensorError, TensorResult};
use crate::hip;
use crate::ops;
use crate::tensor::{Tensor, Weight};

/// `normed = rms_norm(x) * norm_weight`, then `jobs[i].1 = normed · jobs[i].0ᵀ` as
/// [`ops::matmul_many`] (the q, k and v projections of a block). On a GPU the norm runs inside
/// the first group's launch, which also writes `normed` for the groups after it.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_matmul_many(
    be: &Backend,
    x: &Tensor,
    norm_weight: &Weight,
    eps: f32,
    normed: &mut Tensor,
    n_tokens: usize,
    jobs: &mut [(&Weight, &mut Tensor)],
) -> TensorResult<()> {
    let first = ops::group_end(be, jobs, 0).min(jobs.len());
    if first > 0
        && ops::hip_group(
            be,
            x,
            Some((norm_weight, eps, &mut *normed)),
            n_tokens,
            &mut jobs[..first],
        )?
    {
        return ops::matmul_many(be, normed, n_tokens, &mut jobs[first..]);
    }
    ops::rms_norm(be, x, norm_weight, eps, normed)?;
    ops::matmul_many(be, normed, n_tokens, jobs)
}

/// `normed = rms_norm(x) * norm_weight`, then [`ops::matmul_swiglu`] of `normed` (an MLP
/// block's input). On a GPU, a gate/up pair the one-launch kernels serve takes the norm, both
/// products and the SwiGLU in one launch.
#[allow(clippy::too_many_arguments)]
pub fn rms_norm_matmul_swiglu(
    be: &Backend,
    x: &Tensor,
    norm_weight: &Weight,
    eps: f32,
    normed: &mut Tensor,
    gate: &Weight,
    up: &Weight,
    n_tokens: usize,
    gate_out: &mut Tensor,
    up_out: &mut Tensor,
    out: &mut Tensor,
) -> TensorResult<()> {
    if ops::swiglu_one_launch(
        be,
        gate,
        up,
        x,
        Some((norm_weight, eps, &mut *normed)),
        n_tokens,
        out,
    )? {
        return Ok(());
    }
    ops::rms_norm(be, x, norm_weight, eps, normed)?;
    ops::matmul_swiglu(be, gate, up, normed, n_tokens, gate_out, up_out, out)
}

/// `residual += a · wᵀ` (a block's output projection and residual add): on a GPU the matvec
/// adds its product in its store for decode-sized batches; otherwise the product goes to
/// `tmp` (`[n_tokens][rows]`) and is added.
pub fn matmul_add(
    be: &Backend,
    w: &Weight,
    a: &Tensor,
    n_tokens: usize,
    tmp: &mut Tensor,
    residual: &mut Tensor,
) -> TensorResult<()> {
    const OP: &str = "matmul_add";
    if let (Backend::Hip(hops), Weight::Hip(wt)) = (be, w) {
        let wb = wt.bytes_buffer().ok_or_else(|| TensorError::Backend {
            op: OP,
            what: "GPU weights must be uploaded as raw bytes (GgufLoader does)".to_string(),
        })?;
        let ab = a.hip(OP)?.f32_buffer(OP)?;
        let rb = residual.hip_mut(OP)?.f32_buffer_mut(OP)?;
        let done = hops.with_matmul(|ctx, stream| {
            hip::matmul::matmul_add(
                ctx,
                wb,
                wt.dtype(),
                wt.rows(),
                wt.cols(),
                ab,
                n_tokens,
                rb,
                stream,
            )
        })?;
        if done {
            return Ok(());
        }
    }
    ops::matmul(be, w, a, n_tokens, tmp)?;
    ops::add(be, residual, tmp)
}
