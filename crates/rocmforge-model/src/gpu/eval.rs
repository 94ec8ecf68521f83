//! Teacher forcing, perplexity and greedy decoding on a [`GpuModel`], with the CPU versions'
//! exact conventions ([`crate::eval`]).

use std::time::Instant;

use super::forward::GpuModel;
use crate::error::{ModelError, ModelResult};
use crate::eval::{Perplexity, negative_log_likelihood};
use crate::forward::LogitsFor;
use crate::sampler::argmax;

/// For each position `i` of `ids` (one sequence), the argmax next token after `ids[..=i]`.
pub fn gpu_predict_next(model: &GpuModel, ids: &[u32]) -> ModelResult<Vec<u32>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut cache = model.new_cache(ids.len())?;
    let logits = model.forward(&mut cache, ids, 0, LogitsFor::All)?;
    let vocab = model.config().vocab_size;
    Ok(logits
        .chunks_exact(vocab)
        .map(|row| argmax(row) as u32)
        .collect())
}

/// llama.cpp's perplexity over `tokens` in chunks of `n_ctx`, as [`crate::perplexity`].
pub fn gpu_perplexity(
    model: &GpuModel,
    tokens: &[u32],
    n_ctx: usize,
    bos: Option<u32>,
    mut progress: impl FnMut(usize, usize, f64),
) -> ModelResult<Perplexity> {
    if n_ctx < 4 {
        return Err(ModelError::InvalidInput(format!(
            "perplexity needs a context of at least 4 tokens, got {n_ctx}"
        )));
    }
    let chunks = tokens.len() / n_ctx;
    if chunks == 0 {
        return Err(ModelError::InvalidInput(format!(
            "the text has {} tokens, fewer than one chunk of {n_ctx}",
            tokens.len()
        )));
    }
    let first = n_ctx / 2;
    let vocab = model.config().vocab_size;
    let mut cache = model.new_cache(n_ctx)?;
    let (mut nll, mut count) = (0.0f64, 0usize);
    for chunk in 0..chunks {
        let span = &tokens[chunk * n_ctx..(chunk + 1) * n_ctx];
        let mut batch = span.to_vec();
        if let Some(b) = bos {
            batch[0] = b;
        }
        cache.clear();
        let logits = model.forward(&mut cache, &batch, 0, LogitsFor::From(first))?;
        for p in first..n_ctx - 1 {
            let row = &logits[(p - first) * vocab..(p - first + 1) * vocab];
            nll += negative_log_likelihood(row, span[p + 1] as usize);
            count += 1;
        }
        progress(chunk + 1, chunks, (nll / count as f64).exp());
    }
    Ok(Perplexity {
        ppl: (nll / count as f64).exp(),
        chunks,
        scored_tokens: count,
    })
}

/// Tokens and timings of a greedy run.
#[derive(Debug, Clone, PartialEq)]
pub struct GreedyRun {
    /// The generated ids (the prompt excluded).
    pub tokens: Vec<u32>,
    /// Prompt tokens per second of the prefill (its logits read back included).
    pub prefill_tokens_per_s: f64,
    /// Generated tokens per second of the decode steps (one token each, logits read back).
    pub decode_tokens_per_s: f64,
}

/// Greedy decoding of `n_new` tokens after `prompt` (no end-of-generation stop).
pub fn gpu_greedy(model: &GpuModel, prompt: &[u32], n_new: usize) -> ModelResult<GreedyRun> {
    if prompt.is_empty() {
        return Err(ModelError::InvalidInput("an empty prompt".to_string()));
    }
    let mut cache = model.new_cache(prompt.len() + n_new)?;
    let t0 = Instant::now();
    let logits = model.forward(&mut cache, prompt, 0, LogitsFor::Last)?;
    let prefill_s = t0.elapsed().as_secs_f64();
    let mut next = argmax(&logits) as u32;
    let mut tokens = Vec::with_capacity(n_new);
    let t1 = Instant::now();
    for _ in 0..n_new {
        tokens.push(next);
        if tokens.len() == n_new {
            break;
        }
        let pos = cache.len();
        let logits = model.forward(&mut cache, &[next], pos, LogitsFor::Last)?;
        next = argmax(&logits) as u32;
    }
    let decode_s = t1.elapsed().as_secs_f64();
    let steps = n_new.saturating_sub(1);
    Ok(GreedyRun {
        tokens,
        prefill_tokens_per_s: prompt.len() as f64 / prefill_s.max(1e-9),
        decode_tokens_per_s: steps as f64 / decode_s.max(1e-9),
    })
}
