//! [`Model::forward_batch_sampled`]: a batched step whose wanted rows are sampled on the
//! backend right after the LM head (rocmforge-tensor's `sample_rows`), so a GPU step hands
//! back token ids, not `[vocab]` logits per sequence.

use rocmforge_tensor::cpu::SampleRow;

use super::Model;
use super::forward::{RowsOut, Want};
use crate::batch::{ReadyRows, SampledToken, Segment, StepRows};
use crate::error::{ModelError, ModelResult};

impl Model {
    /// One step over `segments`; per segment with `want_logits`, in order, the token the
    /// sampling chain picks from its last token's logits with `rows[j]` (penalties, filters,
    /// grammar mask, uniform), plus those raw logits where `raw[j]` is set (log-probabilities).
    /// A step whose rows are all plain greedy and want no logits takes the argmax kernel.
    pub fn forward_batch_sampled(
        &self,
        segments: &mut [Segment<'_>],
        rows: &[SampleRow<'_>],
        raw: &[bool],
    ) -> ModelResult<Vec<Option<SampledToken>>> {
        self.forward_batch_sampled_with(segments, &mut ReadyRows::new(rows, raw))
    }

    /// [`Model::forward_batch_sampled`] with rows that may still need host work: `rows` is
    /// asked for them once the step's forward pass is queued, before its sampling.
    pub fn forward_batch_sampled_with(
        &self,
        segments: &mut [Segment<'_>],
        rows: &mut dyn StepRows,
    ) -> ModelResult<Vec<Option<SampledToken>>> {
        let (ids, mut on_host, mut raws) = if rows.plain() {
            match self.batch(segments, Want::Argmax)? {
                RowsOut::Ids(ids) => (ids, Vec::new(), Vec::new()),
                _ => return Err(unexpected()),
            }
        } else {
            match self.batch(segments, Want::Sample(rows))? {
                RowsOut::Sampled(s, raws) => (s.ids, s.on_host, raws),
                // An empty batch.
                RowsOut::Ids(ids) if ids.is_empty() => (ids, Vec::new(), Vec::new()),
                _ => return Err(unexpected()),
            }
        };
        raws.resize_with(ids.len(), || None);
        on_host.resize(ids.len(), false);
        let mut out = ids.into_iter().zip(on_host).zip(raws);
        Ok(segments
            .iter()
            .map(|seg| {
                seg.want_logits
                    .then(|| out.next())
                    .flatten()
                    .map(|((token, on_host), logits)| SampledToken {
                        token,
                        logits,
                        on_host,
                    })
            })
            .collect())
    }
}

fn unexpected() -> ModelError {
    ModelError::InvalidInput("the sampled step gave another kind of result".to_string())
}
