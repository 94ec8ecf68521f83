//! Launches of `kernels/argmax.hip`: argmax and top-k of one row of logits.

use rocmforge_hip::{DeviceBuffer, LaunchConfig};

use super::{HipOps, check_device, check_f32, to_u32};
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

const ONE_BLOCK: LaunchConfig = LaunchConfig {
    grid_dim: (1, 1, 1),
    block_dim: (1024, 1, 1),
    shared_mem_bytes: 0,
};

/// Index of the largest value of `x` (F32, all elements); first on ties, NaN never chosen
/// unless all are NaN (then 0), as [`crate::cpu::argmax`].
pub fn argmax(ops: &HipOps, x: &DeviceTensor) -> TensorResult<usize> {
    const OP: &str = "argmax";
    let n = x.n_elements();
    check_f32(OP, "x", x, n)?;
    check_device(OP, ops, x)?;
    let out = ops.backend().alloc_zeros::<u32>(1)?;
    let f = ops.function("argmax", "argmax_f32")?;
    let (px, n32) = (x.device_ptr(), to_u32(OP, "n", n)?);
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&px).arg(&n32).arg(&out);
    // SAFETY: (const float* x, u32 n, u32* out) matches; x holds n f32, out one u32.
    unsafe { l.launch(ONE_BLOCK)? };
    let idx = out.to_vec()?;
    Ok(idx.first().copied().unwrap_or(0) as usize)
}

/// Queues the argmax of each of the `n_rows` rows of `x` (F32 `[n_rows][row_len]`) into
/// `out[..n_rows]`, with [`argmax`]'s order; nothing is read back.
pub fn argmax_rows(
    ops: &HipOps,
    x: &DeviceTensor,
    row_len: usize,
    n_rows: usize,
    out: &mut DeviceBuffer<u32>,
) -> TensorResult<()> {
    const OP: &str = "argmax_rows";
    let total = row_len
        .checked_mul(n_rows)
        .ok_or_else(|| TensorError::Shape {
            op: OP,
            what: format!("{n_rows} rows of {row_len}"),
        })?;
    check_f32(OP, "x", x, total)?;
    check_device(OP, ops, x)?;
    if out.len() < n_rows || row_len == 0 {
        return Err(TensorError::Shape {
            op: OP,
            what: format!("{n_rows} rows of {row_len} into {} indices", out.len()),
        });
    }
    if n_rows == 0 {
        return Ok(());
    }
    let f = ops.function("argmax", "argmax_rows_f32")?;
    let (px, len32, po) = (
        x.device_ptr(),
        to_u32(OP, "row_len", row_len)?,
        out.device_ptr(),
    );
    let cfg = LaunchConfig {
        grid_dim: (to_u32(OP, "n_rows", n_rows)?, 1, 1),
        ..ONE_BLOCK
    };
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&px).arg(&len32).arg(&po);
    // SAFETY: (const float* x, u32 row_len, u32* out) matches argmax_rows_f32; x holds
    // n_rows * row_len f32 (checked), out at least n_rows u32 (checked), one block per row.
    unsafe { l.launch(cfg)? };
    Ok(())
}

/// The `k` largest entries of `x` as `(index, value)`, largest first, as [`crate::cpu::top_k`].
pub fn top_k(ops: &HipOps, x: &DeviceTensor, k: usize) -> TensorResult<Vec<(usize, f32)>> {
    const OP: &str = "top_k";
    let n = x.n_elements();
    check_f32(OP, "x", x, n)?;
    check_device(OP, ops, x)?;
    let k = k.min(n);
    if k == 0 {
        return Ok(Vec::new());
    }
    let idx = ops.backend().alloc_zeros::<u32>(k)?;
    let val = ops.backend().alloc_zeros::<f32>(k)?;
    let f = ops.function("argmax", "top_k_f32")?;
    let (px, n32, k32) = (x.device_ptr(), to_u32(OP, "n", n)?, to_u32(OP, "k", k)?);
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&px).arg(&n32).arg(&k32).arg(&idx).arg(&val);
    // SAFETY: (const float*, u32 n, u32 k, u32* idx, float* val) matches; k <= n; idx and val
    // hold k entries.
    unsafe { l.launch(ONE_BLOCK)? };
    let (idx, val) = (idx.to_vec()?, val.to_vec()?);
    Ok(idx.iter().map(|&i| i as usize).zip(val).collect())
}
