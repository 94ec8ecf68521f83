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
    // Row-wise argmax of a batch (one launch), rows with ties, NaN, -inf and all-NaN; the
    // output is poisoned first and only the first n_rows entries are written.
    for (n_rows, row_len) in [(1usize, 151_936usize), (5, 7), (33, 49_152), (3, 1)] {
        let mut x = ctx.randn(n_rows * row_len, 10.0);
        for v in x.iter_mut() {
            *v = (*v * 4.0).round() / 4.0;
        }
        if row_len > 10 {
            x[3] = f32::NAN;
            x[(n_rows - 1) * row_len + 5] = f32::NEG_INFINITY;
        }
        if n_rows > 2 {
            x[2 * row_len..3 * row_len].fill(f32::NAN);
        }
        let tc = ctx.cpu.from_f32(vec![n_rows, row_len], &x).map_err(e)?;
        let tg = ctx.gpu.from_f32(vec![n_rows, row_len], &x).map_err(e)?;
        let mut ic = ctx.cpu.ids(&vec![u32::MAX; n_rows + 1]).map_err(e)?;
        let mut ig = ctx.gpu.ids(&vec![u32::MAX; n_rows + 1]).map_err(e)?;
        ops::argmax_rows(&ctx.cpu, &tc, row_len, n_rows, &mut ic).map_err(e)?;
        ops::argmax_rows(&ctx.gpu, &tg, row_len, n_rows, &mut ig).map_err(e)?;
        ctx.gpu.synchronize().map_err(e)?;
        let (vc, vg) = (
            ic.to_vec(n_rows + 1).map_err(e)?,
            ig.to_vec(n_rows + 1).map_err(e)?,
        );
        let expect: Vec<u32> = x
            .chunks_exact(row_len)
            .map(|r| rocmforge_tensor::cpu::argmax(r) as u32)
            .chain([u32::MAX])
            .collect();
        if vc != expect || vg != expect {
            return Err(format!(
                "argmax_rows {n_rows}x{row_len}: cpu {vc:?}, gpu {vg:?}, expected {expect:?}"
            ));
        }
        ctx.check(
            "argmax_rows (exact)",
            &format!("{n_rows}x{row_len}"),
            &vc.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            &vg.iter().map(|&v| v as f32).collect::<Vec<_>>(),
            0.0,
        )?;
    }
    let all_nan = ctx.gpu.from_f32(vec![3], &[f32::NAN; 3]).map_err(e)?;
    if ops::argmax(&ctx.gpu, &all_nan).map_err(e)? != 0 {
        return Err("argmax of all-NaN must be 0 like the CPU".to_string());
    }
    Ok(())
}
