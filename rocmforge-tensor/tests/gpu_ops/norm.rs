//! rms_norm and layer_norm: GPU against CPU.

use rocmforge_tensor::{Weight, ops};

use crate::elementwise::{both, out};
use crate::support::Ctx;

const SHAPES: [(usize, usize); 5] = [(1, 1), (3, 7), (5, 576), (2, 4097), (1, 8192)];

pub fn rms_norm(ctx: &Ctx) -> Result<(), String> {
    for (rows, n) in SHAPES {
        let x = ctx.randn(rows * n, 5.0);
        let w = ctx.randn(n, 2.0);
        let (c, g) = both(ctx, |be| {
            let tx = be.from_f32(vec![rows, n], &x)?;
            let tw = be.from_f32(vec![n], &w)?;
            let weight = match &tw {
                rocmforge_tensor::Tensor::Hip(d) => Weight::Hip(d),
                _ => Weight::CpuF32 {
                    data: &w,
                    rows: 1,
                    cols: n,
                },
            };
            let mut o = out(ctx, be, vec![rows, n])?;
            ops::rms_norm(be, &tx, &weight, 1e-5, &mut o)?;
            o.to_f32_vec()
        })?;
        ctx.check("rms_norm", &format!("{rows}x{n}"), &c, &g, 1e-5)?;
    }
    Ok(())
}

/// The fused residual add + RMS norm: both the updated residual and the normed rows.
pub fn add_rms_norm(ctx: &Ctx) -> Result<(), String> {
    for (rows, n) in SHAPES {
        let x = ctx.randn(rows * n, 5.0);
        let d = ctx.randn(rows * n, 3.0);
        let w = ctx.randn(n, 2.0);
        let (c, g) = both(ctx, |be| {
            let mut tx = be.from_f32(vec![rows, n], &x)?;
            let td = be.from_f32(vec![rows, n], &d)?;
            let tw = be.from_f32(vec![n], &w)?;
            let weight = match &tw {
                rocmforge_tensor::Tensor::Hip(d) => Weight::Hip(d),
                _ => Weight::CpuF32 {
                    data: &w,
                    rows: 1,
                    cols: n,
                },
            };
            let mut o = out(ctx, be, vec![rows, n])?;
            ops::add_rms_norm(be, &mut tx, &td, &weight, 1e-5, &mut o)?;
            let mut all = o.to_f32_vec()?;
            all.extend(tx.to_f32_vec()?);
            Ok(all)
        })?;
        ctx.check("add_rms_norm", &format!("{rows}x{n}"), &c, &g, 1e-5)?;
    }
    Ok(())
}

pub fn layer_norm(ctx: &Ctx) -> Result<(), String> {
    for (rows, n) in SHAPES {
        let x = ctx.randn(rows * n, 5.0);
        let (w, b) = (ctx.randn(n, 2.0), ctx.randn(n, 1.0));
        for with_bias in [false, true] {
            let (c, g) = both(ctx, |be| {
                let tx = be.from_f32(vec![rows, n], &x)?;
                let tw = be.from_f32(vec![n], &w)?;
                let tb = be.from_f32(vec![n], &b)?;
                let (weight, bias) = match (&tw, &tb) {
                    (rocmforge_tensor::Tensor::Hip(dw), rocmforge_tensor::Tensor::Hip(db)) => {
                        (Weight::Hip(dw), Weight::Hip(db))
                    }
                    _ => (
                        Weight::CpuF32 {
                            data: &w,
                            rows: 1,
                            cols: n,
                        },
                        Weight::CpuF32 {
                            data: &b,
                            rows: 1,
                            cols: n,
                        },
                    ),
                };
                let mut o = out(ctx, be, vec![rows, n])?;
                let bias = with_bias.then_some(&bias);
                ops::layer_norm(be, &tx, &weight, bias, 1e-5, &mut o)?;
                o.to_f32_vec()
            })?;
            let op = if with_bias {
                "layer_norm+bias"
            } else {
                "layer_norm"
            };
            ctx.check(op, &format!("{rows}x{n}"), &c, &g, 1e-5)?;
        }
    }
    Ok(())
}
