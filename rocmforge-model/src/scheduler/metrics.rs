//! Counters and gauges of the engine, shared lock-free between the worker and readers.

use std::sync::atomic::{AtomicU64, Ordering};

/// Live counters of an [`Engine`](crate::engine::Engine). Read with [`EngineMetrics::snapshot`].
#[derive(Debug, Default)]
pub struct EngineMetrics {
    pub(crate) requests: AtomicU64,
    pub(crate) rejected: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) prompt_tokens: AtomicU64,
    pub(crate) generated_tokens: AtomicU64,
    pub(crate) queue_depth: AtomicU64,
    pub(crate) active: AtomicU64,
    pub(crate) steps: AtomicU64,
    pub(crate) kv_bytes: AtomicU64,
    pub(crate) prefix_hits: AtomicU64,
    pub(crate) prefix_reused_tokens: AtomicU64,
    pub(crate) prefix_cache_bytes: AtomicU64,
    pub(crate) sampled_on_host: AtomicU64,
    pub(crate) kv_blocks_used: AtomicU64,
    pub(crate) kv_blocks_free: AtomicU64,
    pub(crate) kv_pool_bytes: AtomicU64,
    /// Microseconds: the batched steps' wall time, the part of it spent on the engine's host
    /// work outside the model's forward and sampling, and the grammars' time (inside the
    /// forward's: they run while the device computes it).
    pub(crate) step_micros: AtomicU64,
    pub(crate) step_host_micros: AtomicU64,
    pub(crate) grammar_micros: AtomicU64,
    /// Tokens consumed by grammars (each followed by a mask computation).
    pub(crate) grammar_tokens: AtomicU64,
    /// The model's decode-only steps: captured as graphs, replayed, run op by op.
    pub(crate) graph_captured: AtomicU64,
    pub(crate) graph_replayed: AtomicU64,
    pub(crate) graph_eager: AtomicU64,
    /// f64 bits: exponentially smoothed tokens per second of the batched steps.
    pub(crate) tokens_per_s: AtomicU64,
}

/// A consistent-enough copy of the counters (each read atomically).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct MetricsSnapshot {
    /// Requests accepted into the queue.
    pub requests: u64,
    /// Requests refused because the queue was full.
    pub rejected: u64,
    /// Requests that ran to a finish reason.
    pub completed: u64,
    /// Requests whose client went away before the end (sequence freed).
    pub cancelled: u64,
    /// Requests ended by an error.
    pub failed: u64,
    /// Prompt tokens prefilled.
    pub prompt_tokens: u64,
    /// Tokens generated.
    pub generated_tokens: u64,
    /// Requests waiting for a batch slot.
    pub queue_depth: u64,
    /// Sequences in the running batch.
    pub active_sequences: u64,
    /// Batched forward steps run.
    pub steps: u64,
    /// Bytes of KV blocks held by the active sequences (a block shared by several counted
    /// for each).
    pub kv_cache_bytes: u64,
    /// KV blocks held by sequences or kept prefixes (a shared block counted once).
    pub kv_blocks_used: u64,
    /// KV blocks the budget still allows.
    pub kv_blocks_free: u64,
    /// Bytes of KV block storage allocated (grows with the tokens held, up to the budget).
    pub kv_pool_bytes: u64,
    /// Requests that started from a cached prompt prefix.
    pub prefix_hits: u64,
    /// Prompt tokens taken from cached prefixes (their KV blocks shared) instead of prefilled.
    pub prefix_reused_tokens: u64,
    /// Bytes of KV cache kept for prefix reuse.
    pub prefix_cache_bytes: u64,
    /// Sampled tokens whose sampling the host finished (GPU rows the kernel could not
    /// complete; always 0 on the CPU).
    pub sampled_on_host: u64,
    /// Seconds spent in batched steps.
    pub step_seconds: f64,
    /// Seconds of the steps spent on the engine's own host work (planning, sampling rows,
    /// the tokens' delivery) outside the model's forward and sampling.
    pub step_host_seconds: f64,
    /// Seconds grammars spent consuming tokens and computing the next masks (structured
    /// output): part of the steps' forward time, run while the device computes the forward.
    pub grammar_seconds: f64,
    /// Tokens consumed by grammars.
    pub grammar_tokens: u64,
    /// Decode-only steps captured as graphs (GPU; a batch size's second step, or a step after
    /// its KV tables moved).
    pub decode_graph_captures: u64,
    /// Decode-only steps replayed from a captured graph.
    pub decode_graph_replays: u64,
    /// Decode-only steps on the graph path launched op by op (a batch size's first step, a
    /// failed capture).
    pub decode_steps_eager: u64,
    /// Recent throughput of the batched steps (prompt and generated tokens per second).
    pub tokens_per_s: f64,
}

impl EngineMetrics {
    /// Reads every counter.
    pub fn snapshot(&self) -> MetricsSnapshot {
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        MetricsSnapshot {
            requests: get(&self.requests),
            rejected: get(&self.rejected),
            completed: get(&self.completed),
            cancelled: get(&self.cancelled),
            failed: get(&self.failed),
            prompt_tokens: get(&self.prompt_tokens),
            generated_tokens: get(&self.generated_tokens),
            queue_depth: get(&self.queue_depth),
            active_sequences: get(&self.active),
            steps: get(&self.steps),
            kv_cache_bytes: get(&self.kv_bytes),
            kv_blocks_used: get(&self.kv_blocks_used),
            kv_blocks_free: get(&self.kv_blocks_free),
            kv_pool_bytes: get(&self.kv_pool_bytes),
            prefix_hits: get(&self.prefix_hits),
            prefix_reused_tokens: get(&self.prefix_reused_tokens),
            prefix_cache_bytes: get(&self.prefix_cache_bytes),
            sampled_on_host: get(&self.sampled_on_host),
            step_seconds: get(&self.step_micros) as f64 * 1e-6,
            step_host_seconds: get(&self.step_host_micros) as f64 * 1e-6,
            grammar_seconds: get(&self.grammar_micros) as f64 * 1e-6,
            grammar_tokens: get(&self.grammar_tokens),
            decode_graph_captures: get(&self.graph_captured),
            decode_graph_replays: get(&self.graph_replayed),
            decode_steps_eager: get(&self.graph_eager),
            tokens_per_s: f64::from_bits(get(&self.tokens_per_s)),
        }
    }

    pub(crate) fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn set(gauge: &AtomicU64, v: u64) {
        gauge.store(v, Ordering::Relaxed);
    }

    /// Adds `d` to a microsecond counter.
    pub(crate) fn add_time(counter: &AtomicU64, d: std::time::Duration) {
        Self::add(counter, u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
    }

    /// Counts one step and folds its throughput into the smoothed figure.
    pub(crate) fn record_step(&self, tokens: usize, seconds: f64) {
        Self::add(&self.steps, 1);
        Self::add(&self.step_micros, (seconds.max(0.0) * 1e6) as u64);
        if seconds <= 0.0 {
            return;
        }
        let now = tokens as f64 / seconds;
        let old = f64::from_bits(self.tokens_per_s.load(Ordering::Relaxed));
        let smoothed = if old == 0.0 {
            now
        } else {
            0.8 * old + 0.2 * now
        };
        self.tokens_per_s
            .store(smoothed.to_bits(), Ordering::Relaxed);
    }
}
