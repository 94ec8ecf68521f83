//! Token samplers: penalties, top-k, top-p, min-p, temperature, then a seeded draw.
//!
//! The order is llama.cpp's default chain: penalties (then the logit bias) → top-k → top-p →
//! min-p → temperature → sample. A temperature of zero or less means greedy (argmax after
//! the penalties). The chain itself is rocmforge-tensor's `sample_rows` op (its CPU body,
//! [`rocmforge_tensor::cpu::sample_row`], is the reference; a GPU runs it for a whole batch):
//! a [`Sampler`] keeps what a sequence carries from step to step — the seeded random state and
//! the recent tokens its penalties look at — and hands the op one row's input.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use rocmforge_tensor::cpu::{SampleParams, SampleRow, sample_row};

use crate::error::{ModelError, ModelResult};
use crate::rng::SeededRng;

/// Parameters of the sampling chain. `Default` gives llama.cpp's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct SamplingParams {
    /// Softmax temperature; `<= 0` selects greedy decoding.
    pub temperature: f32,
    /// Keep only the `top_k` most likely tokens (0 = off).
    pub top_k: usize,
    /// Keep the smallest set of tokens whose probability reaches `top_p` (1 = off).
    pub top_p: f32,
    /// Drop tokens less likely than `min_p` times the most likely one (0 = off).
    pub min_p: f32,
    /// Divide positive / multiply negative logits of recent tokens (1 = off).
    pub repeat_penalty: f32,
    /// Subtracted once from the logit of every recent token (0 = off).
    pub presence_penalty: f32,
    /// Subtracted per occurrence from the logit of recent tokens (0 = off).
    pub frequency_penalty: f32,
    /// How many of the latest tokens the penalties look at.
    pub penalty_last_n: usize,
    /// Seed of the random draw.
    pub seed: u64,
    /// Added to the logits of these tokens after the penalties (OpenAI's `logit_bias`):
    /// distinct `(token, bias)` pairs, finite biases; empty = off.
    pub logit_bias: Arc<[(u32, f32)]>,
}

impl Default for SamplingParams {
    fn default() -> Self {
        Self {
            temperature: 0.8,
            top_k: 40,
            top_p: 0.95,
            min_p: 0.05,
            repeat_penalty: 1.0,
            presence_penalty: 0.0,
            frequency_penalty: 0.0,
            penalty_last_n: 64,
            seed: 0,
            logit_bias: Arc::from([]),
        }
    }
}

impl SamplingParams {
    /// Greedy decoding (argmax), no penalties.
    pub fn greedy() -> Self {
        Self {
            temperature: 0.0,
            ..Self::default()
        }
    }

    /// The chain's parameters (the seed and the penalty window stay with the [`Sampler`]).
    pub fn chain(&self) -> SampleParams {
        SampleParams {
            repeat_penalty: self.repeat_penalty,
            presence_penalty: self.presence_penalty,
            frequency_penalty: self.frequency_penalty,
            top_k: self.top_k,
            top_p: self.top_p,
            min_p: self.min_p,
            temperature: self.temperature,
        }
    }

    /// Checks every parameter's range.
    pub fn validate(&self) -> ModelResult<()> {
        let bad = |name: &'static str, value: f32, reason: &'static str| {
            Err(ModelError::InvalidSampling {
                name,
                value: value.to_string(),
                reason,
            })
        };
        if !self.temperature.is_finite() {
            return bad("temperature", self.temperature, "must be a finite number");
        }
        if !(self.top_p > 0.0 && self.top_p <= 1.0) {
            return bad("top-p", self.top_p, "must be in (0, 1]");
        }
        if !(0.0..=1.0).contains(&self.min_p) {
            return bad("min-p", self.min_p, "must be in [0, 1]");
        }
        if !(self.repeat_penalty.is_finite() && self.repeat_penalty > 0.0) {
            return bad("repeat-penalty", self.repeat_penalty, "must be positive");
        }
        if !self.presence_penalty.is_finite() {
            return bad("presence-penalty", self.presence_penalty, "must be finite");
        }
        if !self.frequency_penalty.is_finite() {
            return bad(
                "frequency-penalty",
                self.frequency_penalty,
                "must be finite",
            );
        }
        if let Some(b) = self.logit_bias.iter().find(|b| !b.1.is_finite()) {
            return bad("logit-bias", b.1, "must be finite");
        }
        let mut tokens: Vec<u32> = self.logit_bias.iter().map(|b| b.0).collect();
        tokens.sort_unstable();
        if let Some(w) = tokens.windows(2).find(|w| w[0] == w[1]) {
            return bad("logit-bias", w[0] as f32, "lists a token twice");
        }
        Ok(())
    }
}

/// Index of the largest value (the first one on ties); 0 for an empty slice.
pub fn argmax(x: &[f32]) -> usize {
    let mut best = 0;
    for (i, &v) in x.iter().enumerate() {
        if v > x[best] {
            best = i;
        }
    }
    best
}

/// One row's input to the sampling op, drawn from a [`Sampler`] for one step: the chain's
/// parameters, the recent tokens as distinct `(token, count)` pairs (empty when no penalty is
/// on), the logit bias and the uniform of the draw (0 for greedy sampling, which draws nothing).
#[derive(Debug, Clone, PartialEq)]
pub struct SampleInput {
    pub params: SampleParams,
    pub penalties: Vec<(u32, u32)>,
    pub bias: Arc<[(u32, f32)]>,
    pub u: f64,
}

impl SampleInput {
    /// The op's row, with the grammar's allowed-token bit mask if there is one.
    pub fn row<'a>(&'a self, allowed: Option<&'a [u32]>) -> SampleRow<'a> {
        SampleRow {
            params: self.params,
            penalties: &self.penalties,
            allowed,
            bias: &self.bias,
            u: self.u,
        }
    }
}

/// A sampling chain with its random state and the history its penalties look at.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplingParams,
    rng: SeededRng,
    recent: VecDeque<u32>,
}

impl Sampler {
    /// A sampler for `params` (validated).
    pub fn new(params: SamplingParams) -> ModelResult<Self> {
        params.validate()?;
        let rng = SeededRng::new(params.seed);
        Ok(Self {
            params,
            rng,
            recent: VecDeque::new(),
        })
    }

    /// The parameters this sampler runs with.
    pub fn params(&self) -> &SamplingParams {
        &self.params
    }

    /// Records a token of the context (prompt or generated) for the penalties.
    pub fn accept(&mut self, token: u32) {
        if self.params.penalty_last_n == 0 {
            return;
        }
        if self.recent.len() == self.params.penalty_last_n {
            self.recent.pop_front();
        }
        self.recent.push_back(token);
    }

    /// Whether [`Sampler::sample`] is the plain argmax of the logits (temperature 0, no
    /// penalty, no bias), so the model may choose the token where the logits are.
    pub fn is_greedy(&self) -> bool {
        let p = &self.params;
        p.temperature <= 0.0
            && p.repeat_penalty == 1.0
            && p.presence_penalty == 0.0
            && p.frequency_penalty == 0.0
            && p.logit_bias.is_empty()
    }

    fn penalties_active(&self) -> bool {
        let p = &self.params;
        !self.recent.is_empty()
            && (p.repeat_penalty != 1.0 || p.presence_penalty != 0.0 || p.frequency_penalty != 0.0)
    }

    /// The next step's input: advances the random state by one draw unless the sampling is
    /// greedy (temperature <= 0).
    pub fn next_input(&mut self) -> SampleInput {
        let penalties = if self.penalties_active() {
            let mut counts: BTreeMap<u32, u32> = BTreeMap::new();
            for &t in &self.recent {
                *counts.entry(t).or_insert(0) += 1;
            }
            counts.into_iter().collect()
        } else {
            Vec::new()
        };
        let u = if self.params.temperature > 0.0 {
            self.rng.next_f64()
        } else {
            0.0
        };
        SampleInput {
            params: self.params.chain(),
            penalties,
            bias: Arc::clone(&self.params.logit_bias),
            u,
        }
    }

    /// Picks the next token from `logits` (one value per vocabulary entry), on the host.
    pub fn sample(&mut self, logits: &[f32]) -> u32 {
        self.sample_allowed(logits, None)
    }

    /// [`Sampler::sample`] among the tokens a grammar allows (bit `t % 32` of word `t / 32`).
    pub fn sample_allowed(&mut self, logits: &[f32], allowed: Option<&[u32]>) -> u32 {
        let input = self.next_input();
        sample_row(logits, &input.row(allowed))
    }
}

/// The log-probability (log-softmax of the raw `logits`, before penalties and temperature: the
/// model's own distribution) of `token`, and the `top` most likely ids with theirs, most likely
/// first (ties by lower id).
pub fn token_logprobs(logits: &[f32], token: u32, top: usize) -> (f32, Vec<(u32, f32)>) {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = logits
        .iter()
        .map(|&l| (f64::from(l) - f64::from(max)).exp())
        .sum();
    let lse = f64::from(max) + sum.ln();
    let lp = |l: f32| (f64::from(l) - lse) as f32;
    let chosen = logits
        .get(token as usize)
        .map_or(f32::NEG_INFINITY, |&l| lp(l));
    if top == 0 {
        return (chosen, Vec::new());
    }
    let cand = logits
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as u32, l))
        .collect();
    let top = most_likely(cand, top);
    (chosen, top.into_iter().map(|(i, l)| (i, lp(l))).collect())
}

/// The `k` most likely of `cand` (all of them for `k = 0`), sorted by logit descending, ties by
/// lower id. The order is total, so the first k after a selection are exactly the first k of a
/// full sort: a 152k-entry vocabulary is partitioned in O(n) and only the kept ones are sorted.
fn most_likely(mut cand: Vec<(u32, f32)>, k: usize) -> Vec<(u32, f32)> {
    let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
    if k > 0 && k < cand.len() {
        cand.select_nth_unstable_by(k - 1, order);
        cand.truncate(k);
    }
    cand.sort_by(order);
    cand
}

#[cfg(test)]
#[path = "sampler_tests.rs"]
mod tests;
