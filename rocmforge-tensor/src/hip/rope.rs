//! Launch of `kernels/rope.hip`: RoPE in place, adjacent pairs or NeoX halves, partial rotation,
//! linear scaling and YaRN, with the CPU op's parameters.

use rocmforge_hip::{DeviceBuffer, DevicePtr};

use super::{HipOps, check_device, check_f32, grid_1d, to_u32};
use crate::cpu::{RopeMode, RopeParams, YarnParams};
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

/// The dimension at which `rotations` full turns fit the original context (ggml's formula,
/// computed exactly as the CPU op computes it).
fn corr_dim(n_dims: usize, n_ctx_orig: u32, rotations: f32, base: f32) -> f32 {
    n_dims as f32 * (n_ctx_orig as f32 / (rotations * 2.0 * std::f32::consts::PI)).ln()
        / (2.0 * base.ln())
}

fn corr_dims(n_dims: usize, y: &YarnParams, base: f32) -> [f32; 2] {
    let start = corr_dim(n_dims, y.n_ctx_orig, y.beta_fast, base).floor();
    let end = corr_dim(n_dims, y.n_ctx_orig, y.beta_slow, base).ceil();
    [start.max(0.0), end.min(n_dims as f32 - 1.0)]
}

/// Applies RoPE to `x` (F32 `[n_tokens][n_heads][head_dim]`), token `t` at `positions[t]`,
/// each pair's angle divided by its entry of `freq_factors` (F32, at least `n_rot / 2`) when
/// given. The positions are copied to the device first (a synchronous copy); see
/// [`rope_device_positions`] for positions already on the device (graph capture).
#[allow(clippy::too_many_arguments)]
pub fn rope(
    ops: &HipOps,
    x: &mut DeviceTensor,
    n_tokens: usize,
    n_heads: usize,
    head_dim: usize,
    positions: &[u32],
    p: &RopeParams,
    freq_factors: Option<&DeviceTensor>,
) -> TensorResult<()> {
    if positions.len() != n_tokens {
        return Err(TensorError::Shape {
            op: "rope",
            what: format!("{} positions for {n_tokens} tokens", positions.len()),
        });
    }
    if n_tokens == 0 {
        return Ok(());
    }
    let pos = ops.backend().htod(positions)?;
    rope_device_positions(ops, x, n_tokens, n_heads, head_dim, &pos, p, freq_factors)
}

/// The device address of RoPE frequency factors (null when absent), checked to hold one F32
/// divisor for each of the `n_rot / 2` rotated pairs.
pub(crate) fn freq_factors_ptr(
    op: &'static str,
    ops: &HipOps,
    freq_factors: Option<&DeviceTensor>,
    n_rot: usize,
) -> TensorResult<DevicePtr> {
    let Some(f) = freq_factors else {
        return Ok(DevicePtr(0));
    };
    check_device(op, ops, f)?;
    check_f32(op, "freq_factors", f, n_rot / 2)?;
    Ok(f.device_ptr())
}

/// [`rope`] with the positions in device memory (`positions.len() >= n_tokens`): no host
/// copy, so it can be captured in a graph.
#[allow(clippy::too_many_arguments)]
pub fn rope_device_positions(
    ops: &HipOps,
    x: &mut DeviceTensor,
    n_tokens: usize,
    n_heads: usize,
    head_dim: usize,
    positions: &DeviceBuffer<u32>,
    p: &RopeParams,
    freq_factors: Option<&DeviceTensor>,
) -> TensorResult<()> {
    const OP: &str = "rope";
    let len = n_tokens * n_heads * head_dim;
    check_f32(OP, "x", x, len)?;
    check_device(OP, ops, x)?;
    if positions.len() < n_tokens {
        return Err(TensorError::Shape {
            op: OP,
            what: format!("{} positions for {n_tokens} tokens", positions.len()),
        });
    }
    let a = RopeArgs::new(p, head_dim);
    if a.n_rot == 0 || len == 0 {
        return Ok(());
    }
    let n_rot = a.n_rot;
    let pf = freq_factors_ptr(OP, ops, freq_factors, n_rot)?;
    let f = ops.function("rope", "rope_f32")?;
    let px = x.device_ptr();
    let (nt, nh, hd, nr) = (
        to_u32(OP, "n_tokens", n_tokens)?,
        to_u32(OP, "n_heads", n_heads)?,
        to_u32(OP, "head_dim", head_dim)?,
        to_u32(OP, "n_rot", n_rot)?,
    );
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&px)
        .arg(positions)
        .arg(&pf)
        .arg(&nt)
        .arg(&nh)
        .arg(&hd)
        .arg(&nr)
        .arg(&a.mode);
    a.push_scalars(&mut l);
    // SAFETY: the arguments match rope_f32's parameters in order and type; x holds
    // n_tokens * n_heads * head_dim f32 and positions at least n_tokens u32 (checked);
    // n_rot <= head_dim; pf is null or holds n_rot / 2 f32 on this device (checked).
    unsafe { l.launch(grid_1d(n_tokens * n_heads * (n_rot / 2), 256))? };
    Ok(())
}

/// The scalar arguments the RoPE kernels take, from the CPU op's parameters.
pub(crate) struct RopeArgs {
    pub(crate) n_rot: usize,
    pub(crate) mode: u32,
    pub(crate) theta_scale: f32,
    pub(crate) freq_scale: f32,
    pub(crate) ext_factor: f32,
    pub(crate) corr: [f32; 2],
    pub(crate) mscale: f32,
}

impl RopeArgs {
    /// Appends the kernels' trailing scalars: theta_scale, freq_scale, ext_factor, corr0,
    /// corr1, mscale.
    pub(crate) fn push_scalars<'a>(&'a self, l: &mut rocmforge_hip::LaunchArgs<'a>) {
        l.arg(&self.theta_scale)
            .arg(&self.freq_scale)
            .arg(&self.ext_factor)
            .arg(&self.corr[0])
            .arg(&self.corr[1])
            .arg(&self.mscale);
    }

    pub(crate) fn new(p: &RopeParams, head_dim: usize) -> RopeArgs {
        let n_rot = p.n_rot.min(head_dim) & !1;
        let theta_scale = p.freq_base.powf(-2.0 / n_rot.max(1) as f32);
        let (ext_factor, mut mscale, corr) = match &p.yarn {
            Some(y) => (
                y.ext_factor,
                y.attn_factor,
                corr_dims(n_rot, y, p.freq_base),
            ),
            None => (0.0, 1.0, [0.0, 0.0]),
        };
        if ext_factor != 0.0 {
            mscale *= 1.0 + 0.1 * (1.0 / p.freq_scale).ln();
        }
        let mode = match p.mode {
            RopeMode::Normal => 0u32,
            RopeMode::Neox => 1u32,
        };
        RopeArgs {
            n_rot,
            mode,
            theta_scale,
            freq_scale: p.freq_scale,
            ext_factor,
            corr,
            mscale,
        }
    }
}
