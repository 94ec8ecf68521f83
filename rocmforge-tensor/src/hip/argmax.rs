//! Launches of `kernels/argmax.hip`: argmax and top-k of one row of logits.

use rocmforge_hip::LaunchConfig;

use super::{HipOps, check_device, check_f32, to_u32};
use crate::device_tensor::DeviceTensor;
use crate::error::TensorResult;

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
    l.arg(&px).arg(&n32).arg(&out);
    // SAFETY: (const float* x, u32 n, u32* out) matches; x holds n f32, out one u32.
    unsafe { l.launch(ONE_BLOCK)? };
    let idx = out.to_vec()?;
    Ok(idx.first().copied().unwrap_or(0) as usize)
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
    l.arg(&px).arg(&n32).arg(&k32).arg(&idx).arg(&val);
    // SAFETY: (const float*, u32 n, u32 k, u32* idx, float* val) matches; k <= n; idx and val
    // hold k entries.
    unsafe { l.launch(ONE_BLOCK)? };
    let (idx, val) = (idx.to_vec()?, val.to_vec()?);
    Ok(idx.iter().map(|&i| i as usize).zip(val).collect())
}
