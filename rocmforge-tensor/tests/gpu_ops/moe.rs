//! Mixture of experts on the GPU against the CPU ops: the router's top-k (ids exact, weights
//! 1e-5), the expert matvec `matmul_id` per quantized type (gate/up shape with one input row per
//! token, down shape with one per slot; decode and prefill batches, odd expert counts), the
//! gate/up SwiGLU in one launch, the weighted sum, and NaN rows for an expert id outside the
//! weight. Outputs poisoned first.

use rocmforge_gguf::GgmlType;
use rocmforge_gguf::quants::quantize;
use rocmforge_tensor::cpu::MatmulIdShape;
use rocmforge_tensor::{DeviceTensor, Tensor, Weight, ops};

use crate::support::{Ctx, e};

/// The CPU pairs K-quants with q8_K activations, the GPU with q8_1 (see gpu_matmul.rs).
fn bound(ty: GgmlType) -> f64 {
    if ty.block_size() == 256 { 2e-2 } else { 1e-3 }
}

pub fn route(ctx: &Ctx) -> Result<(), String> {
    for (n_tokens, n_expert, k) in [
        (1usize, 8usize, 2usize),
        (5, 128, 8),
        (33, 100, 7),
        (3, 60, 1),
    ] {
        let logits = ctx.randn(n_tokens * n_expert, 4.0);
        let tc = ctx
            .cpu
            .from_f32(vec![n_tokens, n_expert], &logits)
            .map_err(e)?;
        let tg = ctx
            .gpu
            .from_f32(vec![n_tokens, n_expert], &logits)
            .map_err(e)?;
        for normalize in [true, false] {
            let mut ic = ctx.cpu.ids(&vec![0; n_tokens * k]).map_err(e)?;
            let mut ig = ctx.gpu.ids(&vec![u32::MAX; n_tokens * k]).map_err(e)?;
            let mut wc = ctx.cpu.zeros(GgmlType::F32, vec![n_tokens, k]).map_err(e)?;
            let mut wg = ctx.poisoned_gpu(vec![n_tokens, k]).map_err(e)?;
            ops::moe_route(&ctx.cpu, &tc, n_expert, k, normalize, &mut ic, &mut wc).map_err(e)?;
            ops::moe_route(&ctx.gpu, &tg, n_expert, k, normalize, &mut ig, &mut wg).map_err(e)?;
            ctx.gpu.synchronize().map_err(e)?;
            let (idc, idg) = (
                ic.to_vec(n_tokens * k).map_err(e)?,
                ig.to_vec(n_tokens * k).map_err(e)?,
            );
            if idc != idg {
                return Err(format!(
                    "moe_route {n_tokens}x{n_expert} k={k}: ids cpu {idc:?} gpu {idg:?}"
                ));
            }
            ctx.check(
                "moe_route weights",
                &format!("{n_tokens}x{n_expert} k={k} norm={normalize}"),
                &wc.to_f32_vec().map_err(e)?,
                &wg.to_f32_vec().map_err(e)?,
                1e-5,
            )?;
        }
    }
    Ok(())
}

/// A random `n_expert x rows x cols` expert tensor of `ty` on both backends.
fn experts(
    ctx: &Ctx,
    ty: GgmlType,
    n_expert: usize,
    rows: usize,
    cols: usize,
) -> Result<(Vec<u8>, DeviceTensor), String> {
    let wf = ctx.randn(n_expert * rows * cols, 1.0);
    let wq = quantize(ty, &wf).map_err(|e| e.to_string())?;
    let dev = ctx.gpu.device().ok_or("no GPU backend")?;
    let wt = DeviceTensor::from_raw_bytes(dev, ty, vec![n_expert, rows, cols], &wq).map_err(e)?;
    Ok((wq, wt))
}

/// One token, two slots over 4 Q8_0 experts of 9 x 64: the shape, the token's row on the GPU,
/// the experts and their rows (the bad-id checks).
fn bad_id_case(ctx: &Ctx) -> Result<(MatmulIdShape, Tensor, DeviceTensor, usize), String> {
    let (n_expert, rows, cols) = (4usize, 9usize, 64usize);
    let (_, wt) = experts(ctx, GgmlType::Q8_0, n_expert, rows, cols)?;
    let s = MatmulIdShape {
        n_expert,
        n_tokens: 1,
        k: 2,
        x_per_slot: false,
    };
    let xg = ctx
        .gpu
        .from_f32(vec![1, cols], &ctx.randn(cols, 1.0))
        .map_err(e)?;
    Ok((s, xg, wt, rows))
}

pub fn matmul_id(ctx: &Ctx) -> Result<(), String> {
    // The types MoE GGUFs use for their experts (Q4_K_M: Q4_K + Q6_K; Q8_0, Q4_0, IQ4_XS;
    // gpt-oss's MXFP4).
    let types = [
        GgmlType::MXFP4,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::IQ4_XS,
        GgmlType::Q5_K,
        GgmlType::Q3_K,
    ];
    for ty in types {
        let cols = if ty.block_size() == 256 { 512 } else { 96 };
        for (n_expert, rows, n_tokens, k, x_per_slot) in [
            (8usize, 33usize, 1usize, 2usize, false),
            (8, 33, 1, 2, true),
            (5, 17, 6, 3, false),
            (5, 17, 6, 3, true),
            (128, 24, 1, 8, false),
            // Enough slots per expert for the grouped tiled kernels (several tiles per
            // expert, partial tiles, odd rows beyond one 64-row tile).
            (5, 17, 40, 3, false),
            (3, 70, 70, 2, true),
            (3, 70, 70, 2, false),
            (128, 33, 67, 8, false),
        ] {
            let (wq, wt) = experts(ctx, ty, n_expert, rows, cols)?;
            let s = MatmulIdShape {
                n_expert,
                n_tokens,
                k,
                x_per_slot,
            };
            let x = ctx.randn(s.x_rows() * cols, 1.0);
            let ids: Vec<u32> = (0..n_tokens * k)
                .map(|_| ctx.below(n_expert as u64) as u32)
                .collect();
            let wc = Weight::Cpu(rocmforge_tensor::cpu::WeightView {
                ty,
                data: &wq,
                rows: n_expert * rows,
                cols,
            });
            let xc = ctx.cpu.from_f32(vec![s.x_rows(), cols], &x).map_err(e)?;
            let xg = ctx.gpu.from_f32(vec![s.x_rows(), cols], &x).map_err(e)?;
            let (ic, ig) = (ctx.cpu.ids(&ids).map_err(e)?, ctx.gpu.ids(&ids).map_err(e)?);
            let mut oc = ctx
                .cpu
                .zeros(GgmlType::F32, vec![n_tokens * k, rows])
                .map_err(e)?;
            let mut og = ctx.poisoned_gpu(vec![n_tokens * k, rows]).map_err(e)?;
            ops::matmul_id(&ctx.cpu, &wc, &s, &xc, &ic, &mut oc).map_err(e)?;
            ops::matmul_id(&ctx.gpu, &Weight::Hip(&wt), &s, &xg, &ig, &mut og).map_err(e)?;
            ctx.check(
                &format!("matmul_id {ty}"),
                &format!("E{n_expert} {rows}x{cols} t{n_tokens} k{k} slot={x_per_slot}"),
                &oc.to_f32_vec().map_err(e)?,
                &og.to_f32_vec().map_err(e)?,
                bound(ty),
            )?;
        }
    }
    Ok(())
}

/// The gate/up expert matvecs with their SwiGLU in one launch (decode batches) and through the
/// fallback (grouped batches) against the CPU's two matmul_id and silu_mul; a bad id gives NaN
/// rows only for its slot.
pub fn matmul_id_swiglu(ctx: &Ctx) -> Result<(), String> {
    for ty in [
        GgmlType::Q4_K,
        GgmlType::Q6_K,
        GgmlType::Q8_0,
        GgmlType::Q4_0,
        GgmlType::IQ4_XS,
    ] {
        let cols = if ty.block_size() == 256 { 512 } else { 96 };
        for (n_expert, rows, n_tokens, k) in [
            (8usize, 33usize, 1usize, 2usize),
            (128, 70, 4, 8),
            (5, 17, 6, 3),
            (3, 70, 70, 2),
        ] {
            let (gq, gt) = experts(ctx, ty, n_expert, rows, cols)?;
            let (uq, ut) = experts(ctx, ty, n_expert, rows, cols)?;
            let s = MatmulIdShape {
                n_expert,
                n_tokens,
                k,
                x_per_slot: false,
            };
            let x = ctx.randn(n_tokens * cols, 1.0);
            let ids: Vec<u32> = (0..n_tokens * k)
                .map(|_| ctx.below(n_expert as u64) as u32)
                .collect();
            let view = |data| rocmforge_tensor::cpu::WeightView {
                ty,
                data,
                rows: n_expert * rows,
                cols,
            };
            let (gc, uc) = (Weight::Cpu(view(&gq)), Weight::Cpu(view(&uq)));
            let xc = ctx.cpu.from_f32(vec![n_tokens, cols], &x).map_err(e)?;
            let xg = ctx.gpu.from_f32(vec![n_tokens, cols], &x).map_err(e)?;
            let (ic, ig) = (ctx.cpu.ids(&ids).map_err(e)?, ctx.gpu.ids(&ids).map_err(e)?);
            let slots_rows = vec![n_tokens * k, rows];
            let zeros =
                |be: &rocmforge_tensor::Backend| be.zeros(GgmlType::F32, slots_rows.clone());
            let (mut g1, mut u1, mut oc) = (
                zeros(&ctx.cpu).map_err(e)?,
                zeros(&ctx.cpu).map_err(e)?,
                zeros(&ctx.cpu).map_err(e)?,
            );
            let (mut g2, mut u2) = (zeros(&ctx.gpu).map_err(e)?, zeros(&ctx.gpu).map_err(e)?);
            let mut og = ctx.poisoned_gpu(slots_rows.clone()).map_err(e)?;
            ops::matmul_id_swiglu(&ctx.cpu, &gc, &uc, &s, &xc, &ic, &mut g1, &mut u1, &mut oc)
                .map_err(e)?;
            let (gw, uw) = (Weight::Hip(&gt), Weight::Hip(&ut));
            ops::matmul_id_swiglu(&ctx.gpu, &gw, &uw, &s, &xg, &ig, &mut g2, &mut u2, &mut og)
                .map_err(e)?;
            ctx.check(
                &format!("matmul_id_swiglu {ty}"),
                &format!("E{n_expert} {rows}x{cols} t{n_tokens} k{k}"),
                &oc.to_f32_vec().map_err(e)?,
                &og.to_f32_vec().map_err(e)?,
                bound(ty),
            )?;
        }
    }
    // A bad id through the one-launch kernel: NaN rows for its slot only.
    let (s, xg, gt, rows) = bad_id_case(ctx)?;
    let (_, ut) = experts(ctx, GgmlType::Q8_0, s.n_expert, rows, 64)?;
    let ig = ctx.gpu.ids(&[4, 2]).map_err(e)?;
    let mut g2 = ctx.gpu.zeros(GgmlType::F32, vec![2, rows]).map_err(e)?;
    let mut u2 = ctx.gpu.zeros(GgmlType::F32, vec![2, rows]).map_err(e)?;
    let mut og = ctx.poisoned_gpu(vec![2, rows]).map_err(e)?;
    let (gw, uw) = (Weight::Hip(&gt), Weight::Hip(&ut));
    ops::matmul_id_swiglu(&ctx.gpu, &gw, &uw, &s, &xg, &ig, &mut g2, &mut u2, &mut og)
        .map_err(e)?;
    let out = og.to_f32_vec().map_err(e)?;
    if !out[..rows].iter().all(|v| v.is_nan()) || !out[rows..].iter().all(|v| v.is_finite()) {
        return Err(format!(
            "matmul_id_swiglu with ids [4, 2] of 4 experts: {out:?}"
        ));
    }
    Ok(())
}

pub fn weighted_sum_and_bad_ids(ctx: &Ctx) -> Result<(), String> {
    for (n_tokens, k, width) in [(1usize, 8usize, 2048usize), (7, 3, 33)] {
        let y = ctx.randn(n_tokens * k * width, 1.0);
        let w = ctx.randn(n_tokens * k, 1.0);
        let up = |t: &crate::support::Ctx,
                  on_gpu: bool,
                  shape: Vec<usize>,
                  v: &[f32]|
         -> Result<Tensor, String> {
            if on_gpu {
                t.gpu.from_f32(shape, v)
            } else {
                t.cpu.from_f32(shape, v)
            }
            .map_err(e)
        };
        let (yc, yg) = (
            up(ctx, false, vec![n_tokens * k, width], &y)?,
            up(ctx, true, vec![n_tokens * k, width], &y)?,
        );
        let (wc, wg) = (
            up(ctx, false, vec![n_tokens, k], &w)?,
            up(ctx, true, vec![n_tokens, k], &w)?,
        );
        let mut oc = ctx
            .cpu
            .zeros(GgmlType::F32, vec![n_tokens, width])
            .map_err(e)?;
        let mut og = ctx.poisoned_gpu(vec![n_tokens, width]).map_err(e)?;
        ops::moe_weighted_sum(&ctx.cpu, &yc, &wc, k, &mut oc).map_err(e)?;
        ops::moe_weighted_sum(&ctx.gpu, &yg, &wg, k, &mut og).map_err(e)?;
        ctx.check(
            "moe_weighted_sum",
            &format!("t{n_tokens} k{k} w{width}"),
            &oc.to_f32_vec().map_err(e)?,
            &og.to_f32_vec().map_err(e)?,
            1e-6,
        )?;
    }
    // An id past the experts gives NaN rows for its slot and leaves the other slot right.
    let (s, xg, wt, rows) = bad_id_case(ctx)?;
    let cols = 64;
    let ig = ctx.gpu.ids(&[1, 4]).map_err(e)?;
    let mut og = ctx.poisoned_gpu(vec![2, rows]).map_err(e)?;
    og.hip_mut("zero").map_err(e)?.fill_bytes(0).map_err(e)?;
    ops::matmul_id(&ctx.gpu, &Weight::Hip(&wt), &s, &xg, &ig, &mut og).map_err(e)?;
    let out = og.to_f32_vec().map_err(e)?;
    if !out[..rows].iter().all(|v| v.is_finite()) || !out[rows..].iter().all(|v| v.is_nan()) {
        return Err(format!("matmul_id with id 4 of 4 experts: {out:?}"));
    }
    // The same through the grouped kernels (20 tokens x 2 slots over 4 experts): only the slot
    // with the bad id is NaN.
    let s = MatmulIdShape { n_tokens: 20, ..s };
    let xg = ctx
        .gpu
        .from_f32(vec![20, cols], &ctx.randn(20 * cols, 1.0))
        .map_err(e)?;
    let bad = 13;
    let ids: Vec<u32> = (0..40u32)
        .map(|i| if i == bad { 4 } else { i % 4 })
        .collect();
    let ig = ctx.gpu.ids(&ids).map_err(e)?;
    let mut og = ctx.poisoned_gpu(vec![40, rows]).map_err(e)?;
    og.hip_mut("zero").map_err(e)?.fill_bytes(0).map_err(e)?;
    ops::matmul_id(&ctx.gpu, &Weight::Hip(&wt), &s, &xg, &ig, &mut og).map_err(e)?;
    let out = og.to_f32_vec().map_err(e)?;
    for (slot, row) in out.chunks(rows).enumerate() {
        let ok = if slot == bad as usize {
            row.iter().all(|v| v.is_nan())
        } else {
            row.iter().all(|v| v.is_finite())
        };
        if !ok {
            return Err(format!(
                "grouped matmul_id, slot {slot} (bad id at {bad}): {row:?}"
            ));
        }
    }
    Ok(())
}
