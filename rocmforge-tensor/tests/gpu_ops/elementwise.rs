//! add, mul, scale, silu·mul, gelu·mul, gelu, the soft cap, the attention temperature and
//! softmax: GPU against CPU.

use rocmforge_tensor::{Backend, Tensor, TensorResult, ops};

use crate::support::{Ctx, e};

const SIZES: [usize; 5] = [1, 33, 1000, 4097, 65_537];
const F32_BOUND: f64 = 1e-5;

/// An output tensor: NaN-poisoned on the GPU, zeros on the CPU.
pub fn out(ctx: &Ctx, be: &Backend, shape: Vec<usize>) -> TensorResult<Tensor> {
    match be {
        Backend::Cpu => be.from_f32(shape.clone(), &vec![0.0; shape.iter().product()]),
        Backend::Hip(_) => ctx.poisoned_gpu(shape),
    }
}

/// Runs `f` on both backends and returns (cpu, gpu) results.
pub fn both(
    ctx: &Ctx,
    f: impl Fn(&Backend) -> TensorResult<Vec<f32>>,
) -> Result<(Vec<f32>, Vec<f32>), String> {
    let c = f(&ctx.cpu).map_err(|err| format!("cpu: {err}"))?;
    let g = f(&ctx.gpu).map_err(|err| format!("gpu: {err}"))?;
    Ok((c, g))
}

pub fn binary_ops(ctx: &Ctx) -> Result<(), String> {
    for n in SIZES {
        let (a, b) = (ctx.randn(n, 3.0), ctx.randn(n, 3.0));
        let s = ctx.randn(1, 4.0)[0];
        for op in ["add", "mul", "scale"] {
            let (c, g) = both(ctx, |be| {
                let mut ta = be.from_f32(vec![n], &a)?;
                let tb = be.from_f32(vec![n], &b)?;
                match op {
                    "add" => ops::add(be, &mut ta, &tb)?,
                    "mul" => ops::mul(be, &mut ta, &tb)?,
                    _ => ops::scale(be, &mut ta, s)?,
                }
                ta.to_f32_vec()
            })?;
            ctx.check(op, &format!("n={n}"), &c, &g, F32_BOUND)?;
        }
    }
    Ok(())
}

/// gpt-oss's clamped SwiGLU (gate and up spread past the clamp of 7) and bias rows: one row for
/// all, and a row per id (expert biases) with ids from a larger table.
pub fn swiglu_oai_and_add_bias(ctx: &Ctx) -> Result<(), String> {
    for n in SIZES {
        let (gate, up) = (ctx.randn(n, 12.0), ctx.randn(n, 12.0));
        let (c, g) = both(ctx, |be| {
            let tg = be.from_f32(vec![n], &gate)?;
            let tu = be.from_f32(vec![n], &up)?;
            let mut o = out(ctx, be, vec![n])?;
            ops::swiglu_oai(be, &tg, &tu, &mut o, 1.702, 7.0)?;
            o.to_f32_vec()
        })?;
        ctx.check("swiglu_oai", &format!("n={n}"), &c, &g, F32_BOUND)?;
    }
    for (rows, cols, n_bias) in [(1, 1, 1), (7, 33, 5), (64, 2880, 32), (130, 64, 8)] {
        let y = ctx.randn(rows * cols, 3.0);
        let bias = ctx.randn(n_bias * cols, 3.0);
        let ids: Vec<u32> = (0..rows)
            .map(|r| ((ctx.randn(1, 1.0)[0].abs() * 1000.0) as usize + r) as u32 % n_bias as u32)
            .collect();
        for with_ids in [false, true] {
            let (c, g) = both(ctx, |be| {
                let mut t = be.from_f32(vec![rows, cols], &y)?;
                if with_ids {
                    let b = be.from_f32(vec![n_bias, cols], &bias)?;
                    let i = be.ids(&ids)?;
                    ops::add_bias(be, &mut t, &b, cols, Some(&i))?;
                } else {
                    let b = be.from_f32(vec![cols], &bias[..cols])?;
                    ops::add_bias(be, &mut t, &b, cols, None)?;
                }
                t.to_f32_vec()
            })?;
            ctx.check(
                "add_bias",
                &format!("{rows}x{cols}, {n_bias} bias rows, ids {with_ids}"),
                &c,
                &g,
                F32_BOUND,
            )?;
        }
    }
    Ok(())
}

pub fn silu_mul_and_gelu(ctx: &Ctx) -> Result<(), String> {
    for n in SIZES {
        let (gate, up) = (ctx.randn(n, 8.0), ctx.randn(n, 2.0));
        let (c, g) = both(ctx, |be| {
            let tg = be.from_f32(vec![n], &gate)?;
            let tu = be.from_f32(vec![n], &up)?;
            let mut o = out(ctx, be, vec![n])?;
            ops::silu_mul(be, &tg, &tu, &mut o)?;
            o.to_f32_vec()
        })?;
        ctx.check("silu_mul", &format!("n={n}"), &c, &g, F32_BOUND)?;
        let (c, g) = both(ctx, |be| {
            let mut t = be.from_f32(vec![n], &gate)?;
            ops::gelu(be, &mut t)?;
            t.to_f32_vec()
        })?;
        let input_scale = gate.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
        ctx.check_scaled("gelu", &format!("n={n}"), &c, &g, F32_BOUND, input_scale)?;
        // GeGLU: the CPU rounds the GELU's input and value to f16 (ggml's CPU table), the GPU
        // keeps f32 (ggml's CUDA): they agree to f16 precision, relative to the output scale.
        let (c, g) = both(ctx, |be| {
            let tg = be.from_f32(vec![n], &gate)?;
            let tu = be.from_f32(vec![n], &up)?;
            let mut o = out(ctx, be, vec![n])?;
            ops::gelu_mul(be, &tg, &tu, &mut o)?;
            o.to_f32_vec()
        })?;
        let out_scale = c.iter().fold(0.0f64, |m, &v| m.max(v.abs() as f64));
        ctx.check_scaled("gelu_mul", &format!("n={n}"), &c, &g, 2e-3, out_scale)?;
        let (c, g) = both(ctx, |be| {
            let mut t = be.from_f32(vec![n], &gate)?;
            ops::softcap(be, &mut t, 5.0)?;
            t.to_f32_vec()
        })?;
        ctx.check("softcap 5", &format!("n={n}"), &c, &g, F32_BOUND)?;
        // Attention temperature: rows of 8 values, positions across several steps of 3.
        if n % 8 == 0 {
            let positions: Vec<u32> = (0..n as u32 / 8).map(|r| r * 5 % 97).collect();
            let (c, g) = both(ctx, |be| {
                let mut t = be.from_f32(vec![n / 8, 8], &gate)?;
                let pos = be.ids(&positions)?;
                ops::attn_temperature(be, &mut t, &pos, 8, 0.5, 3)?;
                t.to_f32_vec()
            })?;
            ctx.check("attn_temperature", &format!("n={n}"), &c, &g, F32_BOUND)?;
        }
    }
    Ok(())
}

pub fn softmax_masked(ctx: &Ctx) -> Result<(), String> {
    for (rows, cols) in [(1, 1), (3, 7), (4, 100), (2, 4097), (2, 49_153)] {
        let mut x = ctx.randn(rows * cols, 12.0);
        // Mask about a quarter of the entries, and all of the last row when there are several.
        for (i, v) in x.iter_mut().enumerate() {
            if ctx.below(4) == 0 || (rows > 1 && i >= (rows - 1) * cols) {
                *v = f32::NEG_INFINITY;
            }
        }
        x[0] = 1.0; // the first row keeps one unmasked entry
        let (c, g) = both(ctx, |be| {
            let mut t = be.from_f32(vec![rows, cols], &x)?;
            ops::softmax_rows(be, &mut t, cols)?;
            t.to_f32_vec()
        })?;
        ctx.check(
            "softmax (masked)",
            &format!("{rows}x{cols}"),
            &c,
            &g,
            F32_BOUND,
        )?;
        if rows > 1 && g[(rows - 1) * cols..].iter().any(|&v| v != 0.0) {
            return Err("softmax: a fully masked row must come out as zeros".to_string());
        }
    }
    Ok(())
}

pub fn wrong_backend_is_an_error(ctx: &Ctx) -> Result<(), String> {
    let mut a = ctx.cpu.from_f32(vec![4], &[1.0; 4]).map_err(e)?;
    let b = ctx.gpu.from_f32(vec![4], &[1.0; 4]).map_err(e)?;
    if ops::add(&ctx.gpu, &mut a, &b).is_ok() || ops::add(&ctx.cpu, &mut a, &b).is_ok() {
        return Err("mixing CPU and GPU tensors must be an error".to_string());
    }
    let mut g = ctx.gpu.from_f32(vec![5], &[1.0; 5]).map_err(e)?;
    if ops::add(&ctx.gpu, &mut g, &b).is_ok() {
        return Err("length mismatch must be an error".to_string());
    }
    Ok(())
}
