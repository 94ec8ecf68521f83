//! `sample_rows` on the GPU against the CPU chain: the same uniform must give the same id,
//! exactly, for every parameter combination, odd vocabulary sizes, 1-40 rows, ties, -inf, NaN,
//! grammar masks and penalties. Outputs are poisoned first; every id must lie in the row.

use rocmforge_tensor::cpu::{SampleParams, SampleRow};
use rocmforge_tensor::{hip, ops};

use crate::support::{Ctx, e};

const POISON: u32 = 0xDEAD_BEEF;

/// Logits of one case: `peaked` rows have a few large values (top-p prefixes fit the kernel's
/// sorted candidates), flat rows do not (those rows are finished on the host).
fn logits(ctx: &Ctx, n: usize, peaked: bool, quantised: bool) -> Vec<f32> {
    let mut l = ctx.randn(n, if peaked { 4.0 } else { 0.5 });
    if peaked {
        for _ in 0..(n / 500).max(3) {
            let i = ctx.below(n as u64) as usize;
            l[i] += 12.0;
        }
    }
    if quantised {
        l.iter_mut().for_each(|x| *x = (*x * 2.0).round() / 2.0);
    }
    for _ in 0..n / 9 {
        let i = ctx.below(n as u64) as usize;
        l[i] = if ctx.below(3) == 0 {
            f32::NAN
        } else {
            f32::NEG_INFINITY
        };
    }
    l
}

fn params(case: usize, n: usize) -> SampleParams {
    SampleParams {
        temperature: [0.7, 1.0, 1.5, 0.05, 0.0][case % 5],
        top_k: [0, 1, 40, 1000, n, 1500][(case / 5) % 6],
        top_p: [1.0, 0.95, 0.5][(case / 30) % 3],
        min_p: [0.0, 0.05][(case / 2) % 2],
        repeat_penalty: [1.0, 1.1][(case / 3) % 2],
        presence_penalty: [0.0, 0.3][(case / 7) % 2],
        frequency_penalty: [0.0, 0.2][(case / 11) % 2],
    }
}

pub fn sample_rows(ctx: &Ctx) -> Result<(), String> {
    let (mut rows_total, mut host_total) = (0usize, 0usize);
    for (n, n_rows) in [
        (1usize, 3usize),
        (37, 40),
        (1000, 17),
        (4099, 32),
        (151_937, 8),
        (151_936, 1),
    ] {
        for round in 0..6 {
            let mut all = Vec::with_capacity(n * n_rows);
            let mut rows_params = Vec::new();
            let mut penalties = Vec::new();
            let mut masks = Vec::new();
            let mut uniforms = Vec::new();
            for r in 0..n_rows {
                let case = (round * 41 + r * 7) % 90;
                all.extend(logits(ctx, n, r % 3 != 2, round % 2 == 1));
                rows_params.push(params(case, n));
                let pen: std::collections::BTreeMap<u32, u32> = (0..(r % 5) * 13)
                    .map(|_| (ctx.below(n as u64 + 3) as u32, 1 + ctx.below(4) as u32))
                    .collect();
                penalties.push(pen.into_iter().collect::<Vec<_>>());
                masks.push(if r % 4 == 1 {
                    let words = n.div_ceil(32);
                    Some(
                        (0..words)
                            .map(|_| (ctx.below(1 << 32) as u32) & (ctx.below(1 << 32) as u32))
                            .collect::<Vec<u32>>(),
                    )
                } else {
                    None
                });
                uniforms.push(ctx.below(1 << 53) as f64 / (1u64 << 53) as f64);
            }
            let spec: Vec<SampleRow<'_>> = (0..n_rows)
                .map(|r| SampleRow {
                    params: rows_params[r],
                    penalties: &penalties[r],
                    allowed: masks[r].as_deref(),
                    u: uniforms[r],
                })
                .collect();
            let tc = ctx.cpu.from_f32(vec![n_rows, n], &all).map_err(e)?;
            let tg = ctx.gpu.from_f32(vec![n_rows, n], &all).map_err(e)?;
            let mut oc = ctx.cpu.ids(&vec![POISON; n_rows]).map_err(e)?;
            let mut og = ctx.gpu.ids(&vec![POISON; n_rows + 1]).map_err(e)?;
            let want = ops::sample_rows(&ctx.cpu, &tc, n, &spec, &mut oc).map_err(e)?;
            let got = ops::sample_rows(&ctx.gpu, &tg, n, &spec, &mut og).map_err(e)?;
            for (r, (w, g)) in want.ids.iter().zip(&got.ids).enumerate() {
                if w != g || *g as usize >= n {
                    return Err(format!(
                        "{n_rows}x{n} round {round} row {r}: cpu {w}, gpu {g} ({:?}, u {}, \
                         {} penalties, mask {})",
                        spec[r].params,
                        spec[r].u,
                        spec[r].penalties.len(),
                        spec[r].allowed.is_some()
                    ));
                }
            }
            // Only the rows' entries are written.
            let tail = og.to_vec(n_rows + 1).map_err(e)?;
            if tail[n_rows] != POISON {
                return Err(format!(
                    "{n_rows}x{n}: wrote past the rows: {}",
                    tail[n_rows]
                ));
            }
            rows_total += n_rows;
            host_total += got.host_rows;
        }
        ctx.check(
            "sample_rows (exact ids)",
            &format!("{n_rows}x{n}"),
            &[0.0],
            &[0.0],
            0.0,
        )?;
    }
    println!("       sample_rows: {host_total} of {rows_total} rows finished on the host");
    if host_total * 2 > rows_total {
        return Err(format!(
            "{host_total} of {rows_total} rows finished on the host: the kernel's own path is \
             barely exercised"
        ));
    }
    Ok(())
}

/// The kernel's raw output for flat rows with a long top-p prefix is the host flag, and a
/// device-finished row never carries it.
pub fn finish_on_host_flag(ctx: &Ctx) -> Result<(), String> {
    let n = 151_936;
    let flat = ctx.randn(n, 0.01);
    let tg = ctx.gpu.from_f32(vec![1, n], &flat).map_err(e)?;
    let mut ids = ctx.gpu.ids(&[POISON]).map_err(e)?;
    let row = SampleRow {
        params: SampleParams {
            temperature: 1.0,
            top_p: 0.9,
            ..SampleParams::GREEDY
        },
        penalties: &[],
        allowed: None,
        u: 0.5,
    };
    let rocmforge_tensor::Ids::Hip(buf) = &mut ids else {
        return Err("GPU ids are not device ids".to_string());
    };
    let (rocmforge_tensor::Backend::Hip(hops), rocmforge_tensor::Tensor::Hip(dt)) = (&ctx.gpu, &tg)
    else {
        return Err("not a GPU backend".to_string());
    };
    hip::sample::sample_rows_queued(hops, dt, n, &[row], buf).map_err(e)?;
    ctx.gpu.synchronize().map_err(e)?;
    let raw = buf.to_vec().map_err(e)?;
    if raw[0] != hip::sample::FINISH_ON_HOST {
        return Err(format!(
            "flat row with top_p 0.9: raw id {}, expected the host flag",
            raw[0]
        ));
    }
    let mut oc = ctx.cpu.ids(&[POISON]).map_err(e)?;
    let tc = ctx.cpu.from_f32(vec![1, n], &flat).map_err(e)?;
    let want = ops::sample_rows(&ctx.cpu, &tc, n, &[row], &mut oc).map_err(e)?;
    let got = ops::sample_rows(&ctx.gpu, &tg, n, &[row], &mut ids).map_err(e)?;
    if want.ids != got.ids || got.host_rows != 1 {
        return Err(format!("finished on host: cpu {:?}, gpu {got:?}", want.ids));
    }
    Ok(())
}
