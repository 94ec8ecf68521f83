//! Launches of `kernels/elementwise.hip`: add, bias rows, mul, scale, silu·mul, gelu·mul,
//! gpt-oss's clamped SwiGLU, gelu and the tanh soft cap (f32).

use rocmforge_hip::DevicePtr;

use super::{HipOps, check_device, check_f32, grid_1d, to_u32};
use crate::device_tensor::DeviceTensor;
use crate::error::TensorResult;

const FAMILY: &str = "elementwise";

/// `a[i] op= b[i]` with kernel `name` (`add_f32`, `mul_f32`).
fn binary_in_place(
    ops: &HipOps,
    op: &'static str,
    name: &'static str,
    a: &mut DeviceTensor,
    b: &DeviceTensor,
) -> TensorResult<()> {
    let n = a.n_elements();
    check_f32(op, "a", a, n)?;
    check_f32(op, "b", b, n)?;
    check_device(op, ops, a)?;
    check_device(op, ops, b)?;
    if n == 0 {
        return Ok(());
    }
    let f = ops.function(FAMILY, name)?;
    let (pa, pb, n32) = (a.device_ptr(), b.device_ptr(), to_u32(op, "n", n)?);
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&pa).arg(&pb).arg(&n32);
    // SAFETY: (float* a, const float* b, u32 n) matches the kernel; both hold n f32 (checked).
    unsafe { l.launch(grid_1d(n, 256))? };
    Ok(())
}

/// `a[i] += b[i]` (residual add).
pub fn add(ops: &HipOps, a: &mut DeviceTensor, b: &DeviceTensor) -> TensorResult<()> {
    binary_in_place(ops, "add", "add_f32", a, b)
}

/// `y[r] += bias[ids[r]]` over rows of `cols` values, or with `ids` absent `y[r] += bias`
/// (one row). The ids are not read back: they must be below the bias's row count (the router
/// writes ids below its expert count, the bias's rows).
pub fn add_bias(
    ops: &HipOps,
    y: &mut DeviceTensor,
    bias: &DeviceTensor,
    cols: usize,
    ids: Option<&rocmforge_hip::DeviceBuffer<u32>>,
) -> TensorResult<()> {
    const OP: &str = "add_bias";
    let n = y.n_elements();
    let nb = bias.n_elements();
    check_f32(OP, "y", y, n)?;
    check_f32(OP, "bias", bias, nb)?;
    check_device(OP, ops, y)?;
    check_device(OP, ops, bias)?;
    let rows_ok = cols > 0 && n % cols == 0 && nb % cols == 0 && nb > 0;
    let ids_ok = match ids {
        Some(ids) => rows_ok && ids.len() >= n / cols,
        None => nb == cols,
    };
    if !rows_ok || !ids_ok {
        return Err(crate::error::TensorError::Shape {
            op: OP,
            what: format!(
                "{n} values and a bias of {nb} in rows of {cols} ({} ids)",
                ids.map_or(0, |i| i.len())
            ),
        });
    }
    if n == 0 {
        return Ok(());
    }
    let f = ops.function(FAMILY, "add_bias_f32")?;
    let (py, pb) = (y.device_ptr(), bias.device_ptr());
    let pi = ids.map_or(DevicePtr(0), |i| i.device_ptr());
    let (c32, n32) = (to_u32(OP, "cols", cols)?, to_u32(OP, "n", n)?);
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&py).arg(&pb).arg(&pi).arg(&c32).arg(&n32);
    // SAFETY: (float*, const float*, const u32*, u32, u32) matches add_bias_f32; y holds n f32
    // in rows of cols, bias whole rows of cols f32, ids null (then bias is one row) or at least
    // n / cols u32 (checked), each below the bias's rows (the caller's contract: router ids).
    unsafe { l.launch(grid_1d(n, 256))? };
    Ok(())
}

/// `a[i] *= b[i]`.
pub fn mul(ops: &HipOps, a: &mut DeviceTensor, b: &DeviceTensor) -> TensorResult<()> {
    binary_in_place(ops, "mul", "mul_f32", a, b)
}

/// `a[i] = f(a[i], s)` with kernel `name` (`scale_f32`, `softcap_f32`).
fn scalar_in_place(
    ops: &HipOps,
    op: &'static str,
    name: &'static str,
    a: &mut DeviceTensor,
    s: f32,
) -> TensorResult<()> {
    let n = a.n_elements();
    check_f32(op, "a", a, n)?;
    check_device(op, ops, a)?;
    if n == 0 {
        return Ok(());
    }
    let f = ops.function(FAMILY, name)?;
    let (pa, n32) = (a.device_ptr(), to_u32(op, "n", n)?);
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&pa).arg(&s).arg(&n32);
    // SAFETY: (float* a, float s, u32 n) matches the kernel; a holds n f32.
    unsafe { l.launch(grid_1d(n, 256))? };
    Ok(())
}

/// `a[i] *= s`.
pub fn scale(ops: &HipOps, a: &mut DeviceTensor, s: f32) -> TensorResult<()> {
    scalar_in_place(ops, "scale", "scale_f32", a, s)
}

/// `a[i] = cap * tanh(a[i] / cap)` (final logit soft-capping).
pub fn softcap(ops: &HipOps, a: &mut DeviceTensor, cap: f32) -> TensorResult<()> {
    scalar_in_place(ops, "softcap", "softcap_f32", a, cap)
}

/// Attention temperature: each row `r` of `q` (`width` values) times
/// `ln(floor(positions[r] / floor_len) + 1) * scale + 1`.
pub fn attn_temperature(
    ops: &HipOps,
    q: &mut DeviceTensor,
    positions: &rocmforge_hip::DeviceBuffer<u32>,
    width: usize,
    scale: f32,
    floor_len: u32,
) -> TensorResult<()> {
    const OP: &str = "attn_temperature";
    let n = q.n_elements();
    check_f32(OP, "q", q, n)?;
    check_device(OP, ops, q)?;
    if width == 0 || n % width != 0 || positions.len() < n / width || floor_len == 0 {
        return Err(crate::error::TensorError::Shape {
            op: OP,
            what: format!(
                "{n} values in rows of {width} with {} positions (floor {floor_len})",
                positions.len()
            ),
        });
    }
    if n == 0 {
        return Ok(());
    }
    let f = ops.function(FAMILY, "attn_temp_f32")?;
    let (pq, pp) = (q.device_ptr(), positions.device_ptr());
    let (w32, n32) = (to_u32(OP, "width", width)?, to_u32(OP, "n", n)?);
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&pq)
        .arg(&pp)
        .arg(&w32)
        .arg(&n32)
        .arg(&scale)
        .arg(&floor_len);
    // SAFETY: (float*, const u32*, u32, u32, float, u32) matches attn_temp_f32; q holds n f32,
    // positions at least n / width u32 (checked), floor_len > 0.
    unsafe { l.launch(grid_1d(n, 256))? };
    Ok(())
}

/// `out[i] = silu(gate[i]) * up[i]`.
pub fn silu_mul(
    ops: &HipOps,
    gate: &DeviceTensor,
    up: &DeviceTensor,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    gated(ops, "silu_mul", "silu_mul_f32", gate, up, out, None)
}

/// `out[i] = gelu(gate[i]) * up[i]` (GeGLU, tanh approximation).
pub fn gelu_mul(
    ops: &HipOps,
    gate: &DeviceTensor,
    up: &DeviceTensor,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    gated(ops, "gelu_mul", "gelu_mul_f32", gate, up, out, None)
}

/// gpt-oss's clamped SwiGLU: `out = x sigmoid(alpha x) (y + 1)`, `x = min(gate, limit)`,
/// `y = clamp(up, -limit, limit)`.
pub fn swiglu_oai(
    ops: &HipOps,
    gate: &DeviceTensor,
    up: &DeviceTensor,
    out: &mut DeviceTensor,
    alpha: f32,
    limit: f32,
) -> TensorResult<()> {
    gated(
        ops,
        "swiglu_oai",
        "swiglu_oai_f32",
        gate,
        up,
        out,
        Some((alpha, limit)),
    )
}

/// `out[i] = act(gate[i]) * up[i]` with kernel `name`, whose two extra f32 parameters follow
/// when `params` is set.
fn gated(
    ops: &HipOps,
    op: &'static str,
    name: &'static str,
    gate: &DeviceTensor,
    up: &DeviceTensor,
    out: &mut DeviceTensor,
    params: Option<(f32, f32)>,
) -> TensorResult<()> {
    let n = gate.n_elements();
    check_f32(op, "gate", gate, n)?;
    check_f32(op, "up", up, n)?;
    check_f32(op, "out", out, n)?;
    for t in [gate, up, &*out] {
        check_device(op, ops, t)?;
    }
    if n == 0 {
        return Ok(());
    }
    let f = ops.function(FAMILY, name)?;
    let (pg, pu, po): (DevicePtr, DevicePtr, DevicePtr) =
        (gate.device_ptr(), up.device_ptr(), out.device_ptr());
    let n32 = to_u32(op, "n", n)?;
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&pg).arg(&pu).arg(&po).arg(&n32);
    if let Some((a, b)) = &params {
        l.arg(a).arg(b);
    }
    // SAFETY: (const float*, const float*, float*, u32) matches the kernel, followed by
    // (float, float) exactly for the kernels given `params` (swiglu_oai_f32); all three hold
    // n f32.
    unsafe { l.launch(grid_1d(n, 256))? };
    Ok(())
}

/// GELU (tanh approximation) in place.
pub fn gelu(ops: &HipOps, x: &mut DeviceTensor) -> TensorResult<()> {
    const OP: &str = "gelu";
    let n = x.n_elements();
    check_f32(OP, "x", x, n)?;
    check_device(OP, ops, x)?;
    if n == 0 {
        return Ok(());
    }
    let f = ops.function(FAMILY, "gelu_f32")?;
    let (px, n32) = (x.device_ptr(), to_u32(OP, "n", n)?);
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&px).arg(&n32);
    // SAFETY: (float* x, u32 n) matches the kernel; x holds n f32.
    unsafe { l.launch(grid_1d(n, 256))? };
    Ok(())
}

/// `out[i] = silu(gate[i]) * up[i]` (as [`silu_mul`]) and the same values as q8_1 into `q8`
/// (`q8`'s row length must divide the element count and be a multiple of 32), for the down
/// projection's quantized matvec.
pub fn silu_mul_q8_1(
    ops: &HipOps,
    gate: &DeviceTensor,
    up: &DeviceTensor,
    out: &mut DeviceTensor,
    q8: &mut super::q8_1_act::Q8_1Act,
) -> TensorResult<()> {
    const OP: &str = "silu_mul_q8_1";
    let n = gate.n_elements();
    check_f32(OP, "gate", gate, n)?;
    check_f32(OP, "up", up, n)?;
    check_f32(OP, "out", out, n)?;
    for t in [gate, up, &*out] {
        check_device(OP, ops, t)?;
    }
    let cols = q8.cols();
    if cols == 0 || cols % 32 != 0 || n % cols != 0 {
        return Err(crate::error::TensorError::Shape {
            op: OP,
            what: format!("{n} values as q8_1 rows of {cols}"),
        });
    }
    q8.expect(OP, n / cols, cols)?;
    if n == 0 {
        return Ok(());
    }
    let f = ops.function(FAMILY, "silu_mul_q8_1_f32")?;
    let (pg, pu, po) = (gate.device_ptr(), up.device_ptr(), out.device_ptr());
    let (qs, ds) = (q8.qs_ptr(), q8.ds_ptr()?);
    let n32 = to_u32(OP, "n", n)?;
    let blocks = to_u32(OP, "blocks", n.div_ceil(256))?;
    let cfg = rocmforge_hip::LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&pg).arg(&pu).arg(&po).arg(&qs).arg(&ds).arg(&n32);
    // SAFETY: (const float* gate, const float* up, float* out, i8* qs, float* ds, u32 n)
    // matches; the three tensors hold n f32 and q8 n values as q8_1 (checked); one thread per
    // value over a grid covering n, n % 32 == 0.
    unsafe { l.launch(cfg)? };
    Ok(())
}
