//! Decode-only batches padded to their bucket size (`Model::set_decode_padding`): the padding
//! rows change nothing in the real rows — the same greedy tokens and the same logits as the
//! unpadded steps, for batch sizes that are not buckets — and the block they use goes back to
//! the pool when it is trimmed.

use rocmforge_model::batch::Segment;
use rocmforge_model::{LogitsFor, Model};

/// Five prompts for the checks on the test model (gpu_arch's tiny models take token ids).
#[allow(dead_code)]
pub const PROMPTS: [&str; 5] = [
    "The capital of France is",
    "Once upon a time",
    "1, 2, 3,",
    "def fibonacci(n):",
    "Hello",
];

fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// Per sequence its greedy tokens; every row's logits of every step.
type Decoded = (Vec<Vec<u32>>, Vec<Vec<f32>>);

/// `steps` batched greedy decode steps after prefilling `prompts` one by one.
fn decode(model: &Model, prompts: &[Vec<u32>], steps: usize) -> Result<Decoded, String> {
    let mut caches = prompts
        .iter()
        .map(|p| model.new_cache(p.len() + steps + 1))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| e.to_string())?;
    let mut next = Vec::new();
    for (cache, p) in caches.iter_mut().zip(prompts) {
        let l = model
            .forward(cache, p, 0, LogitsFor::Last)
            .map_err(|e| e.to_string())?;
        next.push([argmax(&l) as u32]);
    }
    let mut tokens = vec![Vec::new(); prompts.len()];
    let mut logits = Vec::new();
    for _ in 0..steps {
        let mut segs: Vec<Segment<'_>> = caches
            .iter_mut()
            .zip(&next)
            .map(|(cache, t)| Segment {
                cache,
                tokens: t,
                want_logits: true,
            })
            .collect();
        let out = model.forward_batch(&mut segs).map_err(|e| e.to_string())?;
        for (i, l) in out.into_iter().enumerate() {
            let l = l.ok_or("missing logits")?;
            if l.iter().any(|v| v.is_nan()) {
                return Err(format!("NaN in sequence {i}'s logits"));
            }
            next[i] = [argmax(&l) as u32];
            tokens[i].push(next[i][0]);
            logits.push(l);
        }
    }
    Ok((tokens, logits))
}

/// Runs batches of 3 and 5 sequences (padded to 4 and 8) with padding off and on; the logits
/// may differ by at most `max_rel` (0 on the CPU: bit for bit). Leaves padding as `default`.
pub fn padded_decode_checks(
    model: &Model,
    prompts: &[Vec<u32>],
    max_rel: f64,
    default: bool,
) -> Result<String, String> {
    let mut report = Vec::new();
    for n in [3usize, 5] {
        let batch = prompts
            .get(..n)
            .ok_or(format!("{n} prompts needed, {} given", prompts.len()))?;
        model.set_decode_padding(false);
        let plain = decode(model, batch, 4);
        model.set_decode_padding(true);
        let padded = decode(model, batch, 4);
        let held = model.kv_pool_stats().used;
        model.set_decode_padding(default);
        let ((t_plain, l_plain), (t_pad, l_pad)) = (plain?, padded?);
        let worst = l_plain
            .iter()
            .zip(&l_pad)
            .flat_map(|(a, b)| a.iter().zip(b))
            .map(|(&a, &b)| f64::from((a - b).abs()) / f64::from(a.abs()).max(1e-3))
            .fold(0.0f64, f64::max);
        if t_plain != t_pad || worst > max_rel {
            return Err(format!(
                "{n} sequences: padded tokens {t_pad:?} vs {t_plain:?}, worst logit rel diff {worst:.2e} (allowed {max_rel:.0e})"
            ));
        }
        // The sequences' caches are gone: only the padding rows' block is held, until a trim.
        model.trim_kv_pool();
        let after = model.kv_pool_stats().used;
        if held != 1 || after != 0 {
            return Err(format!(
                "{n} sequences: {held} KV blocks held after the padded steps (want the padding block only), {after} after a trim (want 0)"
            ));
        }
        report.push(format!(
            "{n} sequences: tokens equal, worst rel diff {worst:.1e}"
        ));
    }
    Ok(report.join("; "))
}
