//! Launch of `kernels/softmax.hip`: stable softmax of each row, in place (one block per row).

use rocmforge_hip::LaunchConfig;

use super::{HipOps, check_device, check_f32, to_u32};
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

/// Softmax of every row of `cols` values of `x`, in place; `-inf` entries (masked) give 0.
pub fn softmax_rows(ops: &HipOps, x: &mut DeviceTensor, cols: usize) -> TensorResult<()> {
    const OP: &str = "softmax";
    let len = x.n_elements();
    if cols == 0 || len % cols != 0 {
        return Err(TensorError::Shape {
            op: OP,
            what: format!("{:?} is not whole rows of {cols}", x.shape()),
        });
    }
    check_f32(OP, "x", x, len)?;
    check_device(OP, ops, x)?;
    let rows = len / cols;
    if rows == 0 {
        return Ok(());
    }
    let f = ops.function("softmax", "softmax_f32")?;
    let (px, n) = (x.device_ptr(), to_u32(OP, "cols", cols)?);
    let cfg = LaunchConfig {
        grid_dim: (to_u32(OP, "rows", rows)?, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = ops.stream().launch_builder(&f);
    l.arg(&px).arg(&n);
    // SAFETY: (float* x, u32 n) matches; x holds rows * n f32; one block per row.
    unsafe { l.launch(cfg)? };
    Ok(())
}
