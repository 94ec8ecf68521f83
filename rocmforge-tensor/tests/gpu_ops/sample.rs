//! `sample_rows` on the GPU against the CPU chain: the same uniform must give the same id,
//! exactly, for every parameter combination, odd vocabulary sizes, 1-40 rows, ties, -inf, NaN,
//! grammar masks, penalties and logit bias (folded into the penalty list; rows with a repeat
//! penalty beside a bias-only token finished on the host). Outputs are poisoned first; every id
//! must lie in the row.

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
            let mut biases = Vec::new();
            let mut uniforms = Vec::new();
            for r in 0..n_rows {
                let case = (round * 41 + r * 7) % 90;
                all.extend(logits(ctx, n, r % 3 != 2, round % 2 == 1));
                rows_params.push(params(case, n));
                let pen: std::collections::BTreeMap<u32, u32> = (0..(r % 5) * 13)
                    .map(|_| (ctx.below(n as u64 + 3) as u32, 1 + ctx.below(4) as u32))
                    .collect();
                // Every third row biased: half its tokens penalised ones, half others.
                let bias: std::collections::BTreeMap<u32, f32> = if r % 3 == 0 {
                    let mut b: std::collections::BTreeMap<u32, f32> = pen
                        .keys()
                        .take(3)
                        .map(|&t| (t, ctx.below(201) as f32 - 100.0))
                        .collect();
                    for _ in 0..4 {
                        let t = ctx.below(n as u64 + 3) as u32;
                        b.insert(t, (ctx.below(2001) as f32 - 1000.0) / 10.0);
                    }
                    b
                } else {
                    Default::default()
                };
                biases.push(bias.into_iter().collect::<Vec<_>>());
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
                    bias: &biases[r],
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
                         {} penalties, mask {}, {} biased)",
                        spec[r].params,
                        spec[r].u,
                        spec[r].penalties.len(),
                        spec[r].allowed.is_some(),
                        spec[r].bias.len()
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
            host_total += got.host_rows();
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
        bias: &[],
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
    if want.ids != got.ids || got.host_rows() != 1 {
        return Err(format!("finished on host: cpu {:?}, gpu {got:?}", want.ids));
    }
    Ok(())
}

/// Logit bias without a repeat penalty is applied by the kernel (no row goes to the host): a
/// +100 bias forces its token greedily, -100 on the argmax gives the runner-up, and sampled
/// rows with bias on penalised and other tokens match the CPU chain.
pub fn logit_bias_on_the_device(ctx: &Ctx) -> Result<(), String> {
    let n = 151_936;
    let l = logits(ctx, n, true, false);
    let mut order: Vec<u32> = (0..n as u32).filter(|&i| !l[i as usize].is_nan()).collect();
    order.sort_by(|&a, &b| l[b as usize].total_cmp(&l[a as usize]).then(a.cmp(&b)));
    let (best, second, low) = (order[0], order[1], order[n / 2]);
    let up = [(low, 100.0f32)];
    let ban = [(best, -100.0f32)];
    let pen = [(best, 2u32), (low, 1)];
    let mixed = [(best, 3.5f32), (7, -40.0), (low, 60.0)];
    let sampled = SampleParams {
        temperature: 0.8,
        top_k: 40,
        presence_penalty: 0.5,
        frequency_penalty: 0.25,
        ..SampleParams::GREEDY
    };
    let row = |params, penalties, bias, u| SampleRow {
        params,
        penalties,
        allowed: None,
        bias,
        u,
    };
    let rows = [
        row(SampleParams::GREEDY, &[][..], &up[..], 0.0),
        row(SampleParams::GREEDY, &[][..], &ban[..], 0.0),
        row(sampled, &pen[..], &mixed[..], 0.3),
        row(sampled, &pen[..], &mixed[..], 0.9),
    ];
    let all: Vec<f32> = (0..rows.len()).flat_map(|_| l.iter().copied()).collect();
    let tc = ctx.cpu.from_f32(vec![rows.len(), n], &all).map_err(e)?;
    let tg = ctx.gpu.from_f32(vec![rows.len(), n], &all).map_err(e)?;
    let mut oc = ctx.cpu.ids(&[POISON; 4]).map_err(e)?;
    let mut og = ctx.gpu.ids(&[POISON; 4]).map_err(e)?;
    let want = ops::sample_rows(&ctx.cpu, &tc, n, &rows, &mut oc).map_err(e)?;
    let got = ops::sample_rows(&ctx.gpu, &tg, n, &rows, &mut og).map_err(e)?;
    if got.ids != want.ids || got.host_rows() != 0 || got.ids[..2] != [low, second] {
        return Err(format!(
            "bias: cpu {:?}, gpu {got:?}; expected [{low}, {second}, ..] on the device",
            want.ids
        ));
    }
    Ok(())
}
