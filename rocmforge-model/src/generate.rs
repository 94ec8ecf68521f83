//! The generation loop: prefill the prompt, then sample and decode one token at a
//! time until an end-of-generation token, a stop string or the token limit.

use std::time::{Duration, Instant};

use crate::error::ModelResult;
use crate::forward::LogitsFor;
use crate::kv_cache::KvCache;
use crate::model::Model;
use crate::sampler::{Sampler, SamplingParams};
use crate::stop::StopMatcher;
use crate::tokenizer::{StreamDecoder, Tokenizer};

/// A KV cache of one sequence, on whatever device.
pub trait SequenceCache {
    /// Tokens held.
    fn len(&self) -> usize;
    /// Whether no token is held.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Tokens that still fit.
    fn remaining(&self) -> usize;
    /// Bytes of memory the cache takes.
    fn size_bytes(&self) -> usize;
}

/// A model that runs one sequence's new tokens against its cache: the [`Model`] on any
/// backend. [`generate`] runs on it.
pub trait SequenceModel {
    /// The model's per-sequence KV cache.
    type Cache: SequenceCache;
    /// Runs `tokens` at positions `cache.len()..`, appends them to `cache`, and returns the
    /// `[n][vocab]` logits `which` selects.
    fn run_tokens(
        &self,
        cache: &mut Self::Cache,
        tokens: &[u32],
        which: LogitsFor,
    ) -> ModelResult<Vec<f32>>;
}

impl SequenceModel for Model {
    type Cache = KvCache;
    fn run_tokens(
        &self,
        cache: &mut KvCache,
        tokens: &[u32],
        which: LogitsFor,
    ) -> ModelResult<Vec<f32>> {
        self.forward(cache, tokens, cache.len(), which)
    }
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    /// Most tokens to generate.
    pub max_tokens: usize,
    /// The sampling chain.
    pub sampling: SamplingParams,
    /// Generation ends before the first occurrence of any of these strings.
    pub stop: Vec<String>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        Self {
            max_tokens: 128,
            sampling: SamplingParams::default(),
            stop: Vec::new(),
        }
    }
}

/// Why generation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// The model produced an end-of-generation token.
    EndOfGeneration,
    /// A stop string appeared.
    StopString,
    /// `max_tokens` were generated.
    MaxTokens,
    /// The KV cache is full (`length` in OpenAI terms).
    ContextFull,
}

/// Timings of one generation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct GenerationStats {
    /// Tokens run in the prefill.
    pub prompt_tokens: usize,
    /// Tokens sampled (the end-of-generation token not counted).
    pub generated_tokens: usize,
    /// Tokens run through the decode step.
    pub decoded_tokens: usize,
    /// Wall time of the prefill forward pass.
    pub prefill_time: Duration,
    /// Wall time of all decode forward passes.
    pub decode_time: Duration,
}

fn per_second(n: usize, t: Duration) -> f64 {
    let s = t.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

impl GenerationStats {
    /// Prompt tokens per second.
    pub fn prefill_tokens_per_s(&self) -> f64 {
        per_second(self.prompt_tokens, self.prefill_time)
    }

    /// Decoded tokens per second.
    pub fn decode_tokens_per_s(&self) -> f64 {
        per_second(self.decoded_tokens, self.decode_time)
    }
}

/// The result of one generation.
#[derive(Debug, Clone, PartialEq)]
pub struct Generation {
    /// The generated token ids (without the end-of-generation token).
    pub tokens: Vec<u32>,
    /// The generated text, cut before a stop string.
    pub text: String,
    /// Why it ended.
    pub finish: FinishReason,
    /// Timings.
    pub stats: GenerationStats,
}

/// Generates a continuation of `prompt` (appended after what `cache` already holds),
/// calling `on_text` with each piece of text as soon as it is final.
pub fn generate<M: SequenceModel>(
    model: &M,
    tokenizer: &Tokenizer,
    cache: &mut M::Cache,
    prompt: &[u32],
    params: &GenerateParams,
    mut on_text: impl FnMut(&str),
) -> ModelResult<Generation> {
    let mut sampler = Sampler::new(params.sampling.clone())?;
    for &t in prompt {
        sampler.accept(t);
    }
    let mut stats = GenerationStats {
        prompt_tokens: prompt.len(),
        ..GenerationStats::default()
    };
    let mut out = Generation {
        tokens: Vec::new(),
        text: String::new(),
        finish: FinishReason::MaxTokens,
        stats,
    };
    if params.max_tokens == 0 {
        return Ok(out);
    }
    let started = Instant::now();
    let mut logits = {
        let _span = tracing::info_span!("prefill", tokens = prompt.len()).entered();
        model.run_tokens(cache, prompt, LogitsFor::Last)?
    };
    stats.prefill_time = started.elapsed();
    tracing::info!(
        tokens = prompt.len(),
        tokens_per_s = stats.prefill_tokens_per_s(),
        "prefill done"
    );

    let decode_span = tracing::info_span!("decode").entered();
    let mut decoder = StreamDecoder::new(tokenizer);
    let mut stops = StopMatcher::new(&params.stop);
    let mut emit = |text: &str, out: &mut Generation| {
        if !text.is_empty() {
            on_text(text);
            out.text.push_str(text);
        }
    };
    loop {
        let token = sampler.sample(&logits);
        if tokenizer.is_eog(token) {
            out.finish = FinishReason::EndOfGeneration;
            break;
        }
        sampler.accept(token);
        out.tokens.push(token);
        let step = stops.push(&decoder.push(token));
        emit(&step.emit, &mut out);
        if step.stopped {
            out.finish = FinishReason::StopString;
            break;
        }
        if out.tokens.len() >= params.max_tokens {
            out.finish = FinishReason::MaxTokens;
            break;
        }
        if cache.remaining() == 0 {
            out.finish = FinishReason::ContextFull;
            break;
        }
        let t0 = Instant::now();
        logits = model.run_tokens(cache, &[token], LogitsFor::Last)?;
        stats.decode_time += t0.elapsed();
        stats.decoded_tokens += 1;
    }
    if out.finish != FinishReason::StopString {
        let rest = decoder.finish();
        let step = stops.push(&rest);
        emit(&step.emit, &mut out);
        if step.stopped {
            out.finish = FinishReason::StopString;
        } else {
            let held = stops.finish();
            emit(&held, &mut out);
        }
    }
    stats.generated_tokens = out.tokens.len();
    tracing::info!(
        tokens = stats.decoded_tokens,
        tokens_per_s = stats.decode_tokens_per_s(),
        "decode done"
    );
    drop(decode_span);
    out.stats = stats;
    Ok(out)
}
