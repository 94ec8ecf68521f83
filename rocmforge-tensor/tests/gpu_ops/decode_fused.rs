//! The decode step's fused ops against the CPU ops they replace: residual add + RMS norm +
//! q8_1 quantization, silu·mul + q8_1, RoPE of q and k + KV append, and the device-addressed
//! KV append and embedding lookup.

use half::f16;
use rocmforge_gguf::GgmlType;
use rocmforge_tensor::cpu::{self, WeightView};
use rocmforge_tensor::hip::q8_1_act::Q8_1Act;
use rocmforge_tensor::hip::{HipOps, elementwise, embedding, kv, norm};
use rocmforge_tensor::{Backend, DeviceTensor};

use crate::support::{Ctx, e};

fn hip(ctx: &Ctx) -> Result<&HipOps, String> {
    match &ctx.gpu {
        Backend::Hip(ops) => Ok(ops),
        Backend::Cpu => Err("the GPU backend is not HIP".to_string()),
    }
}

fn upload(ops: &HipOps, shape: Vec<usize>, v: &[f32]) -> Result<DeviceTensor, String> {
    DeviceTensor::from_f32(ops.backend(), shape, v).map_err(e)
}

fn poisoned(ops: &HipOps, shape: Vec<usize>) -> Result<DeviceTensor, String> {
    let n = shape.iter().product();
    let mut t = upload(ops, shape, &vec![0.0; n])?;
    t.fill_bytes(0xFF).map_err(e)?;
    Ok(t)
}

fn read(ops: &HipOps, t: &DeviceTensor) -> Result<Vec<f32>, String> {
    ops.synchronize().map_err(e)?;
    t.to_f32_vec().map_err(e)
}

/// The values a q8_1 buffer holds against the CPU quantizer's on the same f32 inputs.
fn check_q8(ctx: &Ctx, op: &str, size: &str, q8: &Q8_1Act, values: &[f32]) -> Result<(), String> {
    let got = q8.dequantize_to_host().map_err(e)?;
    let blocks = cpu::quantize_act::quantize_q8_1(values);
    let want: Vec<f32> = blocks
        .qs
        .iter()
        .enumerate()
        .map(|(i, &q)| f32::from(q) * blocks.d[i / 32])
        .collect();
    ctx.check(op, size, &want, &got, 1e-6)
}

pub fn add_rms_norm_q8_1(ctx: &Ctx) -> Result<(), String> {
    let ops = hip(ctx)?;
    for (rows, n, with_res) in [
        (1, 576, true),
        (1, 4096, false),
        (3, 96, true),
        (2, 864, true),
    ] {
        let (x, r, w) = (
            ctx.randn(rows * n, 3.0),
            ctx.randn(rows * n, 3.0),
            ctx.randn(n, 1.5),
        );
        let mut sum = x.clone();
        if with_res {
            cpu::add(&mut sum, &r);
        }
        let mut want = vec![0.0; rows * n];
        cpu::rms_norm(&sum, &w, 1e-5, &mut want);
        let mut dx = upload(ops, vec![rows, n], &x)?;
        let dr = upload(ops, vec![rows, n], &r)?;
        let dw = upload(ops, vec![n], &w)?;
        let mut out = poisoned(ops, vec![rows, n])?;
        let mut q8 = Q8_1Act::new(ops.backend(), rows, n).map_err(e)?;
        let res = with_res.then_some(&dr);
        norm::add_rms_norm_q8_1(ops, &mut dx, res, &dw, 1e-5, &mut out, &mut q8).map_err(e)?;
        let size = format!("{rows}x{n}{}", if with_res { " +res" } else { "" });
        ctx.check("add_rms_norm_q8_1 x", &size, &sum, &read(ops, &dx)?, 0.0)?;
        let normed = read(ops, &out)?;
        ctx.check("add_rms_norm_q8_1 f32", &size, &want, &normed, 1e-5)?;
        check_q8(ctx, "add_rms_norm_q8_1 q8_1", &size, &q8, &normed)?;
    }
    let ops_err = {
        let mut dx = upload(ops, vec![1, 40], &[0.5; 40])?;
        let dw = upload(ops, vec![40], &[1.0; 40])?;
        let mut out = poisoned(ops, vec![1, 40])?;
        let mut q8 = Q8_1Act::new(ops.backend(), 1, 64).map_err(e)?;
        norm::add_rms_norm_q8_1(ops, &mut dx, None, &dw, 1e-5, &mut out, &mut q8).is_err()
    };
    if !ops_err {
        return Err("rows of 40 values (not a multiple of 32) must be refused".to_string());
    }
    Ok(())
}

pub fn silu_mul_q8_1(ctx: &Ctx) -> Result<(), String> {
    let ops = hip(ctx)?;
    for (rows, n) in [(1, 1536), (1, 14336), (3, 96)] {
        let (g, u) = (ctx.randn(rows * n, 6.0), ctx.randn(rows * n, 3.0));
        let mut want = vec![0.0; rows * n];
        cpu::silu_mul(&g, &u, &mut want);
        let (dg, du) = (
            upload(ops, vec![rows, n], &g)?,
            upload(ops, vec![rows, n], &u)?,
        );
        let mut out = poisoned(ops, vec![rows, n])?;
        let mut q8 = Q8_1Act::new(ops.backend(), rows, n).map_err(e)?;
        elementwise::silu_mul_q8_1(ops, &dg, &du, &mut out, &mut q8).map_err(e)?;
        let size = format!("{rows}x{n}");
        let got = read(ops, &out)?;
        ctx.check("silu_mul_q8_1 f32", &size, &want, &got, 1e-5)?;
        check_q8(ctx, "silu_mul_q8_1 q8_1", &size, &q8, &got)?;
    }
    Ok(())
}

/// f16 cache rows as f32.
fn widen(v: &[f16]) -> Vec<f32> {
    v.iter().map(|h| h.to_f32()).collect()
}

pub fn kv_append_at_and_embedding_at(ctx: &Ctx) -> Result<(), String> {
    let ops = hip(ctx)?;
    let dev = ops.backend();
    let (capacity, row_len, n) = (50, 3 * 64, 2);
    let src = ctx.randn(n * row_len, 4.0);
    let ds = upload(ops, vec![n, row_len], &src)?;
    for start in [0usize, 17, 49] {
        let mut want = vec![f16::ZERO; capacity * row_len];
        for t in 0..n.min(capacity - start) {
            for i in 0..row_len {
                want[(start + t) * row_len + i] = f16::from_f32(src[t * row_len + i]);
            }
        }
        let zeros = vec![f16::ZERO; capacity * row_len];
        let mut cache = DeviceTensor::from_f16(dev, vec![capacity, row_len], &zeros).map_err(e)?;
        let row = dev.htod(&[start as u32]).map_err(e)?;
        kv::kv_append_at(ops, &ds, &mut cache, &row).map_err(e)?;
        ops.synchronize().map_err(e)?;
        let got = widen(&cache.to_f16_vec().map_err(e)?);
        let size = format!("{n} rows at {start} of {capacity}x{row_len}");
        ctx.check("kv_append_at", &size, &widen(&want), &got, 0.0)?;
    }
    for ty in [
        GgmlType::F16,
        GgmlType::Q8_0,
        GgmlType::Q4_K,
        GgmlType::Q6_K,
    ] {
        let (rows, cols) = (13, 512);
        let bytes = crate::embedding::table_bytes(ctx, ty, rows, cols)?;
        let table = DeviceTensor::from_raw_bytes(dev, ty, vec![rows, cols], &bytes).map_err(e)?;
        let ids: Vec<u32> = vec![ctx.below(rows as u64) as u32, 0, rows as u32 - 1];
        let view = WeightView {
            ty,
            data: &bytes,
            rows,
            cols,
        };
        let mut want = vec![0.0; (ids.len() + 1) * cols];
        cpu::embedding(&view, &ids, &mut want[..ids.len() * cols]).map_err(e)?;
        want[ids.len() * cols..].fill(f32::NAN); // the out-of-range id
        let mut dids = ids.clone();
        dids.push(rows as u32 + 5);
        let dids = dev.htod(&dids).map_err(e)?;
        let mut out = poisoned(ops, vec![ids.len() + 1, cols])?;
        out.fill_bytes(0).map_err(e)?;
        embedding::embedding_at(ops, &table, &dids, ids.len() + 1, &mut out).map_err(e)?;
        let size = format!("{rows}x{cols}, {} ids + 1 out of range", ids.len());
        ctx.check(
            &format!("embedding_at {}", ty.name()),
            &size,
            &want,
            &read(ops, &out)?,
            1e-6,
        )?;
    }
    Ok(())
}
