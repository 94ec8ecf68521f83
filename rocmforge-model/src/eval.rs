//! Teacher forcing, perplexity (as llama.cpp computes it) and greedy decoding, on the
//! [`Model`] over any backend.

use std::time::Instant;

use crate::error::{ModelError, ModelResult};
use crate::forward::LogitsFor;
use crate::model::Model;
use crate::sampler::argmax;

/// Runs `ids` as one sequence and returns, for each position `i`, the argmax next
/// token after `ids[..=i]`.
pub fn predict_next(model: &Model, ids: &[u32]) -> ModelResult<Vec<u32>> {
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

/// `-log softmax(logits)[target]`, in f64 like llama.cpp's `log_softmax`.
pub fn negative_log_likelihood(logits: &[f32], target: usize) -> f64 {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits.iter().map(|&l| f64::from(l - max).exp()).sum();
    let target_logit = logits.get(target).copied().unwrap_or(f32::NEG_INFINITY);
    -(f64::from(target_logit - max) - sum.ln())
}

/// Outcome of a perplexity run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Perplexity {
    /// `exp(mean negative log-likelihood)`.
    pub ppl: f64,
    /// Chunks evaluated.
    pub chunks: usize,
    /// Tokens scored.
    pub scored_tokens: usize,
}

/// llama.cpp's perplexity: `tokens` (the whole text, BOS only where the model adds
/// one) is cut into consecutive chunks of `n_ctx` (the partial tail dropped); each
/// chunk runs from an empty cache, its first token replaced by `bos` when given;
/// positions `n_ctx/2 ..= n_ctx-2` score the token that follows them.
/// `progress(chunk_done, chunks, running_ppl)` is called after each chunk.
pub fn perplexity(
    model: &Model,
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
    let vocab = model.config().vocab_size;
    let mut nll = 0.0f64;
    let mut count = 0usize;
    for_each_chunk(model, tokens, n_ctx, chunks, bos, |chunk, span, rows| {
        for (p, row) in rows.chunks_exact(vocab).enumerate() {
            nll += negative_log_likelihood(row, span[n_ctx / 2 + p + 1] as usize);
            count += 1;
        }
        progress(chunk + 1, chunks, (nll / count as f64).exp());
        Ok(())
    })?;
    Ok(Perplexity {
        ppl: (nll / count as f64).exp(),
        chunks,
        scored_tokens: count,
    })
}

/// llama.cpp's chunked evaluation (perplexity, KL divergence): chunk `c` of `chunks` is
/// `tokens[c * n_ctx..(c + 1) * n_ctx]`, run from an empty cache with its first token replaced by
/// `bos` when given; `each(c, chunk tokens, rows)` gets the logits of positions
/// `n_ctx/2 ..= n_ctx-2` (each predicting the token after it), one row of `vocab_size` per position.
pub fn for_each_chunk(
    model: &Model,
    tokens: &[u32],
    n_ctx: usize,
    chunks: usize,
    bos: Option<u32>,
    mut each: impl FnMut(usize, &[u32], &[f32]) -> ModelResult<()>,
) -> ModelResult<()> {
    if n_ctx < 4 || tokens.len() < chunks.saturating_mul(n_ctx) {
        return Err(ModelError::InvalidInput(format!(
            "{chunks} chunks of {n_ctx} tokens need a context of at least 4 and {} tokens, got {}",
            chunks.saturating_mul(n_ctx),
            tokens.len()
        )));
    }
    let first = n_ctx / 2;
    let vocab = model.config().vocab_size;
    let mut cache = model.new_cache(n_ctx)?;
    for chunk in 0..chunks {
        let span = &tokens[chunk * n_ctx..(chunk + 1) * n_ctx];
        let mut batch = span.to_vec();
        if let Some(b) = bos {
            batch[0] = b;
        }
        cache.clear();
        let logits = model.forward(&mut cache, &batch, 0, LogitsFor::From(first))?;
        let rows = logits.get(..(n_ctx - 1 - first) * vocab).ok_or_else(|| {
            ModelError::InvalidInput(format!(
                "the forward pass returned {} logits for {} positions",
                logits.len(),
                n_ctx - first
            ))
        })?;
        each(chunk, span, rows)?;
    }
    Ok(())
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
pub fn greedy(model: &Model, prompt: &[u32], n_new: usize) -> ModelResult<GreedyRun> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nll_of_uniform_logits_is_log_vocab() {
        let logits = [0.5f32; 8];
        let nll = negative_log_likelihood(&logits, 3);
        assert!((nll - 8f64.ln()).abs() < 1e-9, "{nll}");
    }

    #[test]
    fn nll_of_a_confident_right_guess_is_small() {
        let logits = [0.0, 20.0, 0.0];
        assert!(negative_log_likelihood(&logits, 1) < 1e-6);
        assert!(negative_log_likelihood(&logits, 0) > 19.0);
    }
}
