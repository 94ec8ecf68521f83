//! Launches of `kernels/norm.hip`: RMS norm and layer norm over rows (one block per row).

use rocmforge_hip::{DevicePtr, LaunchConfig};

use super::{HipOps, check_device, check_f32, to_u32};
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

const FAMILY: &str = "norm";
const THREADS: u32 = 1024;

fn rows_config(op: &'static str, rows: usize) -> TensorResult<LaunchConfig> {
    Ok(LaunchConfig {
        grid_dim: (to_u32(op, "rows", rows)?, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Rows of `x` (each `weight.n_elements()` long): checks and returns the row count.
fn check_rows(
    op: &'static str,
    ops: &HipOps,
    x: &DeviceTensor,
    weight: &DeviceTensor,
    out: &DeviceTensor,
) -> TensorResult<usize> {
    let n = weight.n_elements();
    let len = x.n_elements();
    if n == 0 || len % n != 0 {
        return Err(TensorError::Shape {
            op,
            what: format!("x {:?} is not whole rows of {n}", x.shape()),
        });
    }
    check_f32(op, "x", x, len)?;
    check_f32(op, "weight", weight, n)?;
    check_f32(op, "out", out, len)?;
    for t in [x, weight, out] {
        check_device(op, ops, t)?;
    }
    Ok(len / n)
}

/// `out = x / sqrt(mean(x^2) + eps) * weight`, row by row.
pub fn rms_norm(
    ops: &HipOps,
    x: &DeviceTensor,
    weight: &DeviceTensor,
    eps: f32,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    const OP: &str = "rms_norm";
    let rows = check_rows(OP, ops, x, weight, out)?;
    if rows == 0 {
        return Ok(());
    }
    let f = ops.function(FAMILY, "rms_norm_f32")?;
    let (px, pw, po) = (x.device_ptr(), weight.device_ptr(), out.device_ptr());
    let n = to_u32(OP, "n", weight.n_elements())?;
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&px).arg(&pw).arg(&po).arg(&n).arg(&eps);
    // SAFETY: (const float* x, const float* w, float* out, u32 n, float eps) matches; x and out
    // hold rows * n f32, w holds n (checked); one block per row.
    unsafe { l.launch(rows_config(OP, rows)?)? };
    Ok(())
}

/// `x += delta`, then `out = x / sqrt(mean(x^2) + eps) * weight`, row by row, in one launch.
pub fn add_rms_norm(
    ops: &HipOps,
    x: &mut DeviceTensor,
    delta: &DeviceTensor,
    weight: &DeviceTensor,
    eps: f32,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    const OP: &str = "add_rms_norm";
    let rows = check_rows(OP, ops, x, weight, out)?;
    check_f32(OP, "delta", delta, x.n_elements())?;
    check_device(OP, ops, delta)?;
    if rows == 0 {
        return Ok(());
    }
    let f = ops.function(FAMILY, "add_rms_norm_f32")?;
    let (px, pd, pw, po) = (
        x.device_ptr(),
        delta.device_ptr(),
        weight.device_ptr(),
        out.device_ptr(),
    );
    let n = to_u32(OP, "n", weight.n_elements())?;
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&px).arg(&pd).arg(&pw).arg(&po).arg(&n).arg(&eps);
    // SAFETY: (float* x, const float* delta, const float* w, float* out, u32 n, float eps)
    // matches add_rms_norm_f32; x, delta and out hold rows * n f32, w holds n (checked); x is
    // borrowed mutably and out is a different tensor; one block per row.
    unsafe { l.launch(rows_config(OP, rows)?)? };
    Ok(())
}

/// `out = (x - mean) / sqrt(var + eps) * weight (+ bias)`, row by row.
pub fn layer_norm(
    ops: &HipOps,
    x: &DeviceTensor,
    weight: &DeviceTensor,
    bias: Option<&DeviceTensor>,
    eps: f32,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    const OP: &str = "layer_norm";
    let rows = check_rows(OP, ops, x, weight, out)?;
    if let Some(b) = bias {
        check_f32(OP, "bias", b, weight.n_elements())?;
        check_device(OP, ops, b)?;
    }
    if rows == 0 {
        return Ok(());
    }
    let f = ops.function(FAMILY, "layer_norm_f32")?;
    let (px, pw, po) = (x.device_ptr(), weight.device_ptr(), out.device_ptr());
    let pb = bias.map_or(DevicePtr(0), DeviceTensor::device_ptr);
    let has_bias = u32::from(bias.is_some());
    let n = to_u32(OP, "n", weight.n_elements())?;
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&px)
        .arg(&pw)
        .arg(&pb)
        .arg(&po)
        .arg(&n)
        .arg(&eps)
        .arg(&has_bias);
    // SAFETY: (x, w, bias, out, u32 n, float eps, u32 has_bias) matches; sizes checked; the
    // kernel reads bias only when has_bias is 1.
    unsafe { l.launch(rows_config(OP, rows)?)? };
    Ok(())
}

/// The decode step's norm in one launch: `x += residual` (when given), then
/// `out = rms_norm(x) * weight` (as [`rms_norm`]) and the same values as q8_1 into `q8` for the
/// quantized matvec that follows (`super::matmul::matmul_q8_1`). The row length must be a
/// multiple of 32.
pub fn add_rms_norm_q8_1(
    ops: &HipOps,
    x: &mut DeviceTensor,
    residual: Option<&DeviceTensor>,
    weight: &DeviceTensor,
    eps: f32,
    out: &mut DeviceTensor,
    q8: &mut super::q8_1_act::Q8_1Act,
) -> TensorResult<()> {
    const OP: &str = "add_rms_norm_q8_1";
    let rows = check_rows(OP, ops, x, weight, out)?;
    let n = weight.n_elements();
    if n % 32 != 0 {
        return Err(TensorError::Shape {
            op: OP,
            what: format!("rows of {n} values (q8_1 needs a multiple of 32)"),
        });
    }
    q8.expect(OP, rows, n)?;
    if let Some(r) = residual {
        check_f32(OP, "residual", r, rows * n)?;
        check_device(OP, ops, r)?;
    }
    if rows == 0 {
        return Ok(());
    }
    let f = ops.function(FAMILY, "add_rms_norm_q8_1_f32")?;
    let (px, pw, po) = (x.device_ptr(), weight.device_ptr(), out.device_ptr());
    let pr = residual.map_or(DevicePtr(0), DeviceTensor::device_ptr);
    let (qs, ds) = (q8.qs_ptr(), q8.ds_ptr()?);
    let has_res = u32::from(residual.is_some());
    let n32 = to_u32(OP, "n", n)?;
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&px)
        .arg(&pr)
        .arg(&pw)
        .arg(&po)
        .arg(&qs)
        .arg(&ds)
        .arg(&n32)
        .arg(&eps)
        .arg(&has_res);
    // SAFETY: (float* x, const float* residual, const float* w, float* out, i8* qs, float* ds,
    // u32 n, float eps, u32 has_res) matches; x, out (and residual when has_res) hold rows * n
    // f32, w n (checked); q8 holds rows x n as q8_1 (checked); n % 32 == 0 keeps each q8_1
    // group in one warp; the residual is read only when has_res is 1.
    unsafe { l.launch(rows_config(OP, rows)?)? };
    Ok(())
}
