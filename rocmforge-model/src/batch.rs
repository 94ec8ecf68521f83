//! The batched step of continuous batching: several sequences, each with its own KV cache and
//! its own number of new tokens, run through the model together ([`crate::Model::forward_batch`]).
//!
//! Every matrix multiplication runs once over the concatenated tokens of all sequences, so the
//! weights are read once per step whatever the number of sequences; KV append and attention run
//! per sequence over that sequence's rows and cache. A decode step is a batch of one-token
//! segments; a chunk of a prompt being prefilled is a segment of several tokens in the same step.

use rocmforge_tensor::cpu::SampleRow;

use crate::config::ModelConfig;
use crate::error::ModelResult;
use crate::generate::SequenceCache;
use crate::kv_cache::KvCache;
use crate::model::Model;

/// One sequence's part of a batch; `C` is its KV cache.
#[derive(Debug)]
pub struct Segment<'c, C = KvCache> {
    /// The sequence's cache; the tokens run at positions `cache.len()..`.
    pub cache: &'c mut C,
    /// The new tokens (at least one).
    pub tokens: &'c [u32],
    /// Whether the logits of the segment's last token are wanted.
    pub want_logits: bool,
}

/// A sampled step's result for one sequence: its token, its raw logits when asked for, and
/// whether the host finished its sampling (a GPU row the kernel could not complete: a top-p
/// prefix beyond its sorted candidates, or a logit bias beside a repeat penalty).
#[derive(Debug, Clone, PartialEq)]
pub struct SampledToken {
    pub token: u32,
    pub logits: Option<Vec<f32>>,
    pub on_host: bool,
}

/// The sampling rows of a batched step (one per segment with `want_logits`, in order), handed
/// to the model in two parts: what it must know before the forward pass (how many rows,
/// whether all are plain greedy, which want their raw logits) and the rows themselves, asked
/// for once the forward is queued — so host work a row still needs (a grammar consuming the
/// last token and computing its next mask) runs while a GPU computes the step.
pub trait StepRows: Send {
    /// How many rows.
    fn count(&self) -> usize;
    /// Whether every row is greedy with no penalty, bias or grammar and no row wants raw
    /// logits: the step may take the argmax without asking for the rows.
    fn plain(&self) -> bool;
    /// Per row, whether its raw logits come back too (log-probabilities).
    fn raw(&self) -> &[bool];
    /// The rows. The first call finishes their host work; later calls (a retried step, a
    /// caller reading the parameters back) give the same rows.
    fn rows(&mut self) -> ModelResult<Vec<SampleRow<'_>>>;
}

/// [`StepRows`] over rows that are complete already.
#[derive(Debug, Clone, Copy)]
pub struct ReadyRows<'a> {
    rows: &'a [SampleRow<'a>],
    raw: &'a [bool],
}

impl<'a> ReadyRows<'a> {
    /// `rows[j]` and `raw[j]` for the j-th segment with `want_logits`.
    pub fn new(rows: &'a [SampleRow<'a>], raw: &'a [bool]) -> Self {
        Self { rows, raw }
    }
}

impl StepRows for ReadyRows<'_> {
    fn count(&self) -> usize {
        self.rows.len()
    }
    fn plain(&self) -> bool {
        self.rows.iter().all(SampleRow::is_plain_greedy) && !self.raw.contains(&true)
    }
    fn raw(&self) -> &[bool] {
        self.raw
    }
    fn rows(&mut self) -> ModelResult<Vec<SampleRow<'_>>> {
        Ok(self.rows.to_vec())
    }
}

/// A model that runs a batch of [`Segment`]s in one step. The engine's scheduler drives the
/// [`Model`] through this (and tests a fake through it).
pub trait BatchModel {
    /// The per-sequence KV cache.
    type Cache: SequenceCache;
    /// The model's hyperparameters.
    fn config(&self) -> &ModelConfig;
    /// A fresh cache for `ctx` tokens.
    fn new_cache(&self, ctx: usize) -> ModelResult<Self::Cache>;
    /// One batched step (the contract of [`Model::forward_batch`]).
    fn forward_segments(
        &self,
        segments: &mut [Segment<'_, Self::Cache>],
    ) -> ModelResult<Vec<Option<Vec<f32>>>>;
    /// Makes `cache` ready to take `n` more tokens (a paged cache takes its blocks now): out of
    /// blocks is an error before any step runs. The default has nothing to take.
    fn reserve(&self, cache: &mut Self::Cache, n: usize) -> ModelResult<()> {
        let _ = (cache, n);
        Ok(())
    }
    /// The KV pool's block counts, for a model with a paged cache.
    fn kv_blocks(&self) -> Option<rocmforge_tensor::KvPoolStats> {
        None
    }
    /// Returns KV storage no sequence uses (the engine calls this when it goes idle); the
    /// bytes returned. The default has none.
    fn trim_kv(&self) -> usize {
        0
    }
    /// How the decode-only steps have run (captured, replayed, op by op), for a model that
    /// captures them.
    fn decode_graph_stats(&self) -> Option<crate::model::DecodeGraphStats> {
        None
    }
    /// Makes `dst` hold the first `n` tokens of `src` (a shared prompt prefix computed once:
    /// the [`Model`] shares its blocks, copying none); `false` when this model cannot (then
    /// nothing changed).
    fn share_prefix(
        &self,
        src: &Self::Cache,
        dst: &mut Self::Cache,
        n: usize,
    ) -> ModelResult<bool> {
        let _ = (src, dst, n);
        Ok(false)
    }
    /// Queues a real device fault on the model's backend (`fault-injection` feature only: tests
    /// of the engine's fault handling on a GPU); a model without a device says so.
    #[cfg(feature = "fault-injection")]
    fn inject_device_fault(&self) -> ModelResult<()> {
        Err(crate::error::ModelError::InvalidInput(
            "this model has no device to fault".to_string(),
        ))
    }
    /// The unit-length embedding of `tokens` ([`Model::embed`]); a model that cannot says so.
    fn embed(
        &self,
        tokens: &[u32],
        pooling: crate::embedding::Pooling,
        chunk: usize,
    ) -> ModelResult<Vec<f32>> {
        let _ = (tokens, pooling, chunk);
        Err(crate::error::ModelError::InvalidInput(
            "this model does not give embeddings".to_string(),
        ))
    }
    /// One batched step whose wanted rows are decoded greedily: per segment with
    /// `want_logits`, the argmax of its last token's logits (first on ties). The default
    /// computes it from [`BatchModel::forward_segments`]; a model may choose it where its
    /// logits are ([`Model::forward_batch_greedy`]).
    fn forward_segments_greedy(
        &self,
        segments: &mut [Segment<'_, Self::Cache>],
    ) -> ModelResult<Vec<Option<u32>>> {
        Ok(self
            .forward_segments(segments)?
            .into_iter()
            .map(|l| l.map(|l| crate::sampler::argmax(&l) as u32))
            .collect())
    }
    /// One batched step whose wanted rows are sampled (the contract of
    /// [`Model::forward_batch_sampled_with`]). The default runs the chain on the host over
    /// [`BatchModel::forward_segments`]'s logits; a model may sample where its logits are.
    fn forward_segments_sampled(
        &self,
        segments: &mut [Segment<'_, Self::Cache>],
        rows: &mut dyn StepRows,
    ) -> ModelResult<Vec<Option<SampledToken>>> {
        let logits = self.forward_segments(segments)?;
        let raw = rows.raw().to_vec();
        let rows = rows.rows()?;
        let mut j = 0;
        let mut out = Vec::with_capacity(segments.len());
        for l in logits {
            out.push(match (l, rows.get(j)) {
                (Some(l), Some(row)) => {
                    let token = rocmforge_tensor::cpu::sample_row(&l, row);
                    let logits = raw.get(j).copied().unwrap_or(false).then_some(l);
                    j += 1;
                    Some(SampledToken {
                        token,
                        logits,
                        on_host: false,
                    })
                }
                _ => None,
            });
        }
        Ok(out)
    }
}

impl BatchModel for Model {
    type Cache = KvCache;
    fn config(&self) -> &ModelConfig {
        Model::config(self)
    }
    #[cfg(feature = "fault-injection")]
    fn inject_device_fault(&self) -> ModelResult<()> {
        Ok(rocmforge_tensor::ops::inject_device_fault(self.backend())?)
    }
    fn new_cache(&self, ctx: usize) -> ModelResult<KvCache> {
        Model::new_cache(self, ctx)
    }
    fn forward_segments(
        &self,
        segments: &mut [Segment<'_, KvCache>],
    ) -> ModelResult<Vec<Option<Vec<f32>>>> {
        self.forward_batch(segments)
    }
    fn forward_segments_greedy(
        &self,
        segments: &mut [Segment<'_, KvCache>],
    ) -> ModelResult<Vec<Option<u32>>> {
        self.forward_batch_greedy(segments)
    }
    fn forward_segments_sampled(
        &self,
        segments: &mut [Segment<'_, KvCache>],
        rows: &mut dyn StepRows,
    ) -> ModelResult<Vec<Option<SampledToken>>> {
        self.forward_batch_sampled_with(segments, rows)
    }
    fn share_prefix(&self, src: &KvCache, dst: &mut KvCache, n: usize) -> ModelResult<bool> {
        dst.share_prefix_from(src, n)?;
        Ok(true)
    }
    fn kv_blocks(&self) -> Option<rocmforge_tensor::KvPoolStats> {
        Some(self.kv_pool_stats())
    }
    fn trim_kv(&self) -> usize {
        self.trim_kv_pool()
    }
    fn decode_graph_stats(&self) -> Option<crate::model::DecodeGraphStats> {
        Some(Model::decode_graph_stats(self))
    }
    fn reserve(&self, cache: &mut KvCache, n: usize) -> ModelResult<()> {
        cache.reserve(&mut crate::kv_cache::lock(self.kv_pool()), n)
    }
    fn embed(
        &self,
        tokens: &[u32],
        pooling: crate::embedding::Pooling,
        chunk: usize,
    ) -> ModelResult<Vec<f32>> {
        Model::embed(self, tokens, pooling, chunk)
    }
}
