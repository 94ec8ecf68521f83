//! argmax and top-k over logits, ties, NaN and -inf included.

use rocmforge_tensor::ops;

use crate::support::{Ctx, e};

pub fn argmax_and_top_k(ctx: &Ctx) -> Result<(), String> {
    for n in [1usize, 7, 1025, 49_152, 151_936] {
        let mut x = ctx.randn(n, 10.0);
        // Quantise to create ties; sprinkle NaN and -inf; put the maximum twice when possible.
        for v in x.iter_mut() {
            *v = (*v * 4.0).round() / 4.0;
        }
        if n > 10 {
            x[3] = f32::NAN;
            x[5] = f32::NEG_INFINITY;
            x[n / 2] = 11.0;
            x[n - 1] = 11.0;
        }
        let tc = ctx.cpu.from_f32(vec![n], &x).map_err(e)?;
        let tg = ctx.gpu.from_f32(vec![n], &x).map_err(e)?;
        let (ac, ag) = (
            ops::argmax(&ctx.cpu, &tc).map_err(e)?,
            ops::argmax(&ctx.gpu, &tg).map_err(e)?,
        );
        if ac != ag {
            return Err(format!("argmax n={n}: cpu {ac}, gpu {ag}"));
        }
        for k in [1usize, 5, 40] {
            let kc = ops::top_k(&ctx.cpu, &tc, k).map_err(e)?;
            let kg = ops::top_k(&ctx.gpu, &tg, k).map_err(e)?;
            let same = kc.len() == kg.len()
                && kc
                    .iter()
                    .zip(&kg)
                    .all(|(a, b)| a.0 == b.0 && (a.1 == b.1 || (a.1.is_nan() && b.1.is_nan())));
            if !same {
                return Err(format!("top_k n={n} k={k}: cpu {kc:?}, gpu {kg:?}"));
            }
        }
        ctx.check(
            "argmax + top_k (exact)",
            &format!("n={n}"),
            &[ac as f32],
            &[ag as f32],
            0.0,
        )?;
    }
    let all_nan = ctx.gpu.from_f32(vec![3], &[f32::NAN; 3]).map_err(e)?;
    if ops::argmax(&ctx.gpu, &all_nan).map_err(e)? != 0 {
        return Err("argmax of all-NaN must be 0 like the CPU".to_string());
    }
    Ok(())
}
