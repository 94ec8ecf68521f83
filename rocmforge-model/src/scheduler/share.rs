//! Prompts shared by live sequences: the `n` choices of one request, or clients sending the same
//! system prompt at once. A sequence that has not started and whose prompt begins like that of
//! another active sequence waits while that one prefills the shared tokens, then shares their keys
//! and values (KV blocks) instead of computing them again (what the prefix cache does for finished
//! sequences, done for running ones).

use super::Worker;
use super::metrics::EngineMetrics;
use super::prefix::{MIN_REUSE, common_prefix};
use crate::batch::BatchModel;
use crate::generate::SequenceCache;

impl<M: BatchModel> Worker<'_, M> {
    /// Shares prompt prefixes of sequences that have computed them with sequences that
    /// have not started; returns, per active sequence, whether it waits this step for another
    /// one to get further through the prompt they share.
    pub(super) fn share_live_prompts(&mut self) -> Vec<bool> {
        let mut waits = vec![false; self.active.len()];
        for i in 0..self.active.len() {
            let seq = &self.active[i];
            if seq.decoding || seq.prefilled > 0 || seq.cache.len() > 0 {
                continue;
            }
            // The partner: an earlier sequence, or any that has started, sharing the most tokens
            // (never the whole prompt: its last token must run here for the first logits).
            let usable = seq.prompt.len().saturating_sub(1);
            let partner = self
                .active
                .iter()
                .enumerate()
                .filter(|(j, other)| *j != i && (*j < i || other.prefilled > 0))
                .map(|(j, other)| (j, common_prefix(&seq.prompt, &other.prompt).min(usable)))
                .filter(|&(_, shared)| shared >= MIN_REUSE)
                .max_by_key(|&(j, shared)| (shared, std::cmp::Reverse(j)));
            let Some((j, shared)) = partner else {
                continue;
            };
            if self.active[j].cache.len() < shared {
                // Still prefilling what they share (or waiting itself): wait for it.
                waits[i] = true;
                continue;
            }
            let (src, dst) = if j < i {
                let (head, tail) = self.active.split_at_mut(i);
                (&head[j], &mut tail[0])
            } else {
                let (head, tail) = self.active.split_at_mut(j);
                (&tail[0], &mut head[i])
            };
            match self.model.share_prefix(&src.cache, &mut dst.cache, shared) {
                Ok(true) => {
                    dst.prefilled = shared;
                    EngineMetrics::add(&self.metrics.prefix_hits, 1);
                    EngineMetrics::add(&self.metrics.prefix_reused_tokens, shared as u64);
                    tracing::debug!(
                        id = dst.id,
                        from = src.id,
                        shared,
                        "live prompt prefix shared"
                    );
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "sharing a live prompt prefix failed; prefilling it");
                }
            }
        }
        waits
    }
}
