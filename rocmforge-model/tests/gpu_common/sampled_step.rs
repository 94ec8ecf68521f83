//! A sampled batched step on the GPU (rocmforge-tensor's `sample_rows` right after the LM head,
//! only ids read back): every id is what the CPU chain picks from the GPU's own logits of that
//! row (read back as raw logits for the check), ids are reproducible for the same seeds with or
//! without those read-backs, a grammar mask is respected, and decode steps (eager, captured,
//! replayed) all take the device path.

use rocmforge_model::Model;
use rocmforge_model::batch::Segment;
use rocmforge_model::sampler::{Sampler, SamplingParams};

/// Sampling settings of the batch's sequences, cycled: the server's default (T 0.7 over the
/// whole vocabulary) with a logit bias (applied by the kernel), llama.cpp's default chain,
/// penalties with top-p only and a bias (a repeat penalty beside a bias: finished on the
/// host), greedy with a penalty, a top-k larger than the kernel's sorted candidates with top-p.
fn settings(i: usize) -> SamplingParams {
    let bias: std::sync::Arc<[(u32, f32)]> =
        std::sync::Arc::from([(1u32, 9.0f32), (2, -50.0), (100, 4.0)]);
    let base = SamplingParams {
        temperature: 0.7,
        top_k: 0,
        top_p: 1.0,
        min_p: 0.0,
        seed: 1000 + i as u64,
        ..SamplingParams::default()
    };
    match i % 5 {
        0 => SamplingParams {
            logit_bias: bias,
            ..base
        },
        1 => SamplingParams {
            seed: base.seed,
            ..SamplingParams::default()
        },
        2 => SamplingParams {
            top_p: 0.9,
            repeat_penalty: 1.3,
            frequency_penalty: 0.4,
            presence_penalty: 0.2,
            logit_bias: bias,
            ..base
        },
        3 => SamplingParams {
            temperature: 0.0,
            repeat_penalty: 1.2,
            ..base
        },
        _ => SamplingParams {
            top_k: 2000,
            top_p: 0.8,
            temperature: 1.3,
            ..base
        },
    }
}

/// Every 7th token id allowed (the mask of sequence 1).
fn mask(vocab: usize) -> Vec<u32> {
    (0..vocab.div_ceil(32))
        .map(|w| {
            (0..32)
                .filter(|b| (w * 32 + b) % 7 == 0 && w * 32 + b < vocab)
                .fold(0u32, |m, b| m | (1 << b))
        })
        .collect()
}

/// `steps` sampled steps of every prompt together; with `check_raw`, each id is compared
/// with the CPU chain over that row's logits read back from the device.
fn run(
    model: &Model,
    prompts: &[Vec<u32>],
    steps: usize,
    check_raw: bool,
) -> Result<Vec<Vec<u32>>, String> {
    let vocab = model.config().vocab_size;
    let allowed = mask(vocab);
    let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
    let mut caches = prompts
        .iter()
        .map(|_| model.new_cache(longest + steps + 1))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut samplers = (0..prompts.len())
        .map(|i| Sampler::new(settings(i)))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    for (s, p) in samplers.iter_mut().zip(prompts) {
        p.iter().for_each(|&t| s.accept(t));
    }
    let mut out = vec![Vec::new(); prompts.len()];
    let mut next: Vec<[u32; 1]> = vec![[0]; prompts.len()];
    for step in 0..steps {
        let inputs: Vec<_> = samplers.iter_mut().map(Sampler::next_input).collect();
        let rows: Vec<_> = inputs
            .iter()
            .enumerate()
            .map(|(i, x)| x.row((i == 1).then_some(&allowed[..])))
            .collect();
        let raw = vec![check_raw; prompts.len()];
        let mut segs: Vec<Segment<'_>> = caches
            .iter_mut()
            .enumerate()
            .map(|(i, cache)| Segment {
                cache,
                tokens: if step == 0 { &prompts[i] } else { &next[i] },
                want_logits: true,
            })
            .collect();
        let got = model
            .forward_batch_sampled(&mut segs, &rows, &raw)
            .map_err(|e| format!("step {step}: {e}"))?;
        for (i, g) in got.into_iter().enumerate() {
            let g = g.ok_or(format!("step {step}: no token for sequence {i}"))?;
            if g.token as usize >= vocab || (i == 1 && g.token % 7 != 0) {
                return Err(format!(
                    "step {step}, sequence {i}: token {} not allowed",
                    g.token
                ));
            }
            // On a GPU a bias beside a repeat penalty is finished on the host; the plain
            // T 0.7 row with a bias never is (no top-p cut); the CPU finishes nothing "on the
            // host" (it is the host).
            let gpu = matches!(model.backend(), rocmforge_tensor::Backend::Hip(_));
            let must = gpu && rows[i].scales_bias();
            let must_not = !gpu || i % 5 == 0;
            if (must && !g.on_host) || (must_not && g.on_host) {
                return Err(format!(
                    "step {step}, sequence {i}: on_host {} (GPU {gpu}, scales_bias {})",
                    g.on_host,
                    rows[i].scales_bias()
                ));
            }
            if check_raw {
                let l = g.logits.ok_or(format!("step {step}: raw logits missing"))?;
                let want = rocmforge_tensor::cpu::sample_row(&l, &rows[i]);
                if want != g.token {
                    return Err(format!(
                        "step {step}, sequence {i} ({:?}): device {}, CPU chain on the same logits {want}",
                        rows[i].params, g.token
                    ));
                }
            }
            samplers[i].accept(g.token);
            next[i] = [g.token];
            out[i].push(g.token);
        }
    }
    Ok(out)
}

pub fn sampled_step_checks(model: &Model, prompts: &[Vec<u32>]) -> Result<String, String> {
    let steps = 10;
    let checked = run(model, prompts, steps, true)?;
    let again = run(model, prompts, steps, false)?;
    if checked != again {
        return Err(format!("same seeds, other ids: {checked:?} then {again:?}"));
    }
    let distinct: std::collections::BTreeSet<u32> = checked.iter().flatten().copied().collect();
    Ok(format!(
        "{} sequences x {steps} steps: ids = CPU chain on the device's logits, reproducible; {} distinct ids",
        prompts.len(),
        distinct.len()
    ))
}
