//! The engine's worker loop: admit waiting requests, then run ONE batched step over every
//! active sequence — one token per decoding sequence plus at most `prefill_chunk` prompt
//! tokens of sequences still prefilling — and hand each sequence its logits.

#[cfg(any(test, feature = "fault-injection"))]
mod fault;
#[cfg(test)]
mod host_rows_tests;
pub mod metrics;
mod prefix;
mod sequence;
mod share;
mod step_rows;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant};

use rocmforge_gguf::GgufFile;

use crate::batch::{BatchModel, SampledToken, Segment};
use crate::embedding::Pooling;
use crate::engine::{EngineConfig, EngineDevice, EngineRequest, LoadProgress};
use crate::error::{ModelError, ModelResult};
use crate::generate::SequenceCache;
use crate::model::Model;
use crate::sampler::Sampler;
use crate::tokenizer::Tokenizer;
use metrics::EngineMetrics;
use sequence::{Next, Sequence};
use step_rows::{EngineRows, GrammarStep};

/// A queued request with its id.
#[derive(Debug)]
pub(crate) struct Job {
    pub id: u64,
    pub request: EngineRequest,
}

/// An embedding asked of the worker: run between steps, outside the batch.
#[derive(Debug)]
pub(crate) struct EmbedJob {
    pub tokens: Vec<u32>,
    pub pooling: Pooling,
    pub reply: Sender<ModelResult<Vec<f32>>>,
}

/// What the engine hands its worker.
#[derive(Debug)]
pub(crate) enum Work {
    /// A generation request: a sequence of the batch.
    Generate(Box<Job>),
    /// An embedding.
    Embed(EmbedJob),
}

/// How long an idle worker waits for a request before checking the stop flag.
const IDLE_POLL: Duration = Duration::from_millis(50);

struct Worker<'t, M: BatchModel> {
    model: M,
    tokenizer: &'t Tokenizer,
    config: EngineConfig,
    metrics: &'t EngineMetrics,
    active: Vec<Sequence<'t, M::Cache>>,
    /// Finished sequences' caches kept for prompt-prefix reuse.
    prefix: prefix::PrefixCache<M::Cache>,
    /// Set when a step failed in a way that leaves the device unusable: the worker stops.
    device_fault: Option<String>,
    /// Whether the KV storage was trimmed since the last sequence started (once per idle
    /// spell: the first poll that finds no request and nothing running).
    kv_trimmed: bool,
    /// Test-only: steps made to fail instead of running (see [`fault`]).
    #[cfg(any(test, feature = "fault-injection"))]
    faults: fault::StepFaults,
}

/// What the worker thread needs besides the model.
pub(crate) struct WorkerContext<'t> {
    pub tokenizer: &'t Tokenizer,
    pub config: EngineConfig,
    pub jobs: Receiver<Work>,
    pub metrics: &'t EngineMetrics,
    pub stop: &'t AtomicBool,
    /// Receives the context per sequence the engine runs with (capped by device memory).
    pub ready: Sender<ModelResult<usize>>,
}

/// Loads the model of `file` on `device`, reports readiness (and the context it can give
/// each sequence) on `ready`, then serves `jobs` until `stop`.
pub(crate) fn run_worker(
    file: GgufFile,
    device: EngineDevice,
    mut progress: LoadProgress,
    ctx: WorkerContext<'_>,
) {
    let loaded = device.backend().and_then(|backend| {
        Model::from_file_with_progress(std::sync::Arc::new(file), backend, &mut *progress)
    });
    let model = match loaded {
        Ok(model) => model,
        Err(e) => {
            let _ = ctx.ready.send(Err(e));
            return;
        }
    };
    let mut ctx = ctx;
    let c = ctx.config;
    match model.fit_ctx(c.ctx, c.max_batch, c.max_batch + c.prefill_chunk) {
        Ok(fits) => {
            if fits < c.ctx {
                tracing::warn!(
                    asked = c.ctx,
                    ctx = fits,
                    sequences = c.max_batch,
                    "context per sequence capped to fit the free device memory"
                );
            }
            ctx.config.ctx = fits;
            // The KV blocks all sequences and kept prefixes may hold together: what
            // `max_batch + prefix_cache` full-length sequences would take (the batch's part fits
            // the device, above; kept prefixes beyond free memory are evicted when a step runs
            // out of it, as out of blocks).
            let blocks = model.set_kv_budget(fits, c.max_batch + c.prefix_cache);
            tracing::info!(blocks, "KV block budget");
            serve(model, ctx);
        }
        Err(e) => {
            let _ = ctx.ready.send(Err(e));
        }
    }
}

/// Serves `ctx.jobs` with `model` until the stop flag.
fn serve<M: BatchModel>(model: M, ctx: WorkerContext<'_>) {
    let WorkerContext {
        tokenizer,
        config,
        jobs,
        metrics,
        stop,
        ready,
    } = ctx;
    let _ = ready.send(Ok(config.ctx));
    let mut worker = Worker {
        model,
        tokenizer,
        config,
        metrics,
        active: Vec::new(),
        prefix: prefix::PrefixCache::new(config.prefix_cache),
        device_fault: None,
        kv_trimmed: false,
        #[cfg(any(test, feature = "fault-injection"))]
        faults: fault::StepFaults::from_env(),
    };
    while !stop.load(Ordering::Relaxed) {
        if !worker.admit(&jobs) {
            break;
        }
        worker.drop_cancelled();
        if !worker.active.is_empty() {
            worker.step();
        }
        worker.publish_gauges();
        if worker.device_fault.is_some() {
            break;
        }
    }
    // Shutting down (or the device failed): everything still queued or running is told so.
    let why = match &worker.device_fault {
        Some(fault) => {
            tracing::error!(error = %fault, "device fault: the engine stops");
            format!("the engine stopped after a device fault: {fault}")
        }
        None => "the server is shutting down".to_string(),
    };
    for mut seq in worker.active.drain(..) {
        seq.fail(&why);
        EngineMetrics::add(&metrics.failed, 1);
    }
    while let Ok(work) = jobs.try_recv() {
        match work {
            Work::Generate(mut job) => {
                metrics.queue_depth.fetch_sub(1, Ordering::AcqRel);
                job.request
                    .sink
                    .send(crate::engine::EngineEvent::Failed(why.clone()));
                EngineMetrics::add(&metrics.failed, 1);
            }
            Work::Embed(job) => {
                let _ = job.reply.send(Err(ModelError::InvalidInput(why.clone())));
            }
        }
    }
    worker.publish_gauges();
}

impl<'t, M: BatchModel> Worker<'t, M> {
    /// Moves waiting requests into the batch while there is room; blocks briefly when idle.
    /// Returns `false` once the request channel is closed and nothing is running.
    fn admit(&mut self, jobs: &Receiver<Work>) -> bool {
        while self.active.len() < self.config.max_batch {
            let work = if self.active.is_empty() {
                match jobs.recv_timeout(IDLE_POLL) {
                    Ok(job) => job,
                    Err(RecvTimeoutError::Timeout) => {
                        // Idle for a poll: the KV storage no kept prefix holds goes back.
                        if !self.kv_trimmed {
                            self.kv_trimmed = true;
                            let bytes = self.model.trim_kv();
                            if bytes > 0 {
                                tracing::debug!(bytes, "idle: returned unused KV storage");
                            }
                        }
                        return true;
                    }
                    Err(RecvTimeoutError::Disconnected) => return false,
                }
            } else {
                match jobs.try_recv() {
                    Ok(job) => job,
                    Err(TryRecvError::Empty) => return true,
                    Err(TryRecvError::Disconnected) => return true,
                }
            };
            match work {
                Work::Generate(job) => {
                    self.metrics.queue_depth.fetch_sub(1, Ordering::AcqRel);
                    self.kv_trimmed = false;
                    self.start_sequence(*job);
                }
                Work::Embed(job) => self.embed(job),
            }
        }
        true
    }

    /// Runs an embedding now (between steps; it takes no place in the batch).
    fn embed(&mut self, job: EmbedJob) {
        let result = self
            .model
            .embed(&job.tokens, job.pooling, self.config.prefill_chunk);
        if let Err(e) = &result {
            if is_device_fault(e) {
                self.device_fault = Some(e.to_string());
            }
        }
        let _ = job.reply.send(result);
    }

    fn start_sequence(&mut self, job: Job) {
        let Job { id, mut request } = job;
        if request.sink.is_closed() {
            EngineMetrics::add(&self.metrics.cancelled, 1);
            return;
        }
        let size = (request.prompt.len() + request.params.max_tokens).min(self.config.ctx);
        let made = self.new_cache(size).and_then(|cache| {
            Sampler::new(request.params.sampling.clone()).map(|sampler| (cache, sampler))
        });
        match made {
            Ok((mut cache, sampler)) => {
                let reused = self.reuse_prefix(&request.prompt, &mut cache);
                tracing::debug!(
                    id,
                    prompt = request.prompt.len(),
                    reused,
                    "sequence admitted"
                );
                self.active.push(Sequence::new(
                    id,
                    request.prompt,
                    cache,
                    sampler,
                    &request.params.stop,
                    request.params.max_tokens,
                    self.tokenizer,
                    request.sink,
                    request.logprobs,
                    reused,
                    request.constraint,
                ));
            }
            Err(e) => {
                request
                    .sink
                    .send(crate::engine::EngineEvent::Failed(e.to_string()));
                EngineMetrics::add(&self.metrics.failed, 1);
            }
        }
    }

    /// A cache for `size` tokens; when memory is short, kept prefix caches are freed (oldest
    /// first) until it fits or none is left.
    fn new_cache(&mut self, size: usize) -> ModelResult<M::Cache> {
        loop {
            match self.model.new_cache(size) {
                Ok(cache) => return Ok(cache),
                Err(e) => {
                    if !self.prefix.evict_oldest() {
                        return Err(e);
                    }
                    tracing::debug!(error = %e, "freed a prefix cache entry to make room");
                }
            }
        }
    }

    /// Shares with `cache` the longest prefix of `prompt` a kept cache holds; returns the
    /// tokens reused (0: none, the whole prompt is prefilled).
    fn reuse_prefix(&mut self, prompt: &[u32], cache: &mut M::Cache) -> usize {
        let Some((src, n)) = self.prefix.lookup(prompt) else {
            return 0;
        };
        match self.model.share_prefix(src, cache, n) {
            Ok(true) => {
                EngineMetrics::add(&self.metrics.prefix_hits, 1);
                EngineMetrics::add(&self.metrics.prefix_reused_tokens, n as u64);
                n
            }
            Ok(false) => 0,
            Err(e) => {
                tracing::warn!(error = %e, "sharing a cached prompt prefix failed; prefilling it");
                0
            }
        }
    }

    /// Frees the sequences whose client has gone.
    fn drop_cancelled(&mut self) {
        let before = self.active.len();
        self.active.retain(|s| !s.sink.is_closed());
        let gone = before - self.active.len();
        if gone > 0 {
            tracing::debug!(gone, "sequences cancelled by their clients");
            EngineMetrics::add(&self.metrics.cancelled, gone as u64);
        }
    }

    /// One batched forward step over every active sequence.
    fn step(&mut self) {
        let started = Instant::now();
        let mut budget = self.config.prefill_chunk;
        let mut waits = self.share_live_prompts();
        self.reserve_kv(&mut waits);
        let mut plan: Vec<Part> = Vec::new();
        for (i, seq) in self.active.iter_mut().enumerate() {
            if seq.decoding {
                plan.push(Part {
                    seq: i,
                    prompt: None,
                    choose: true,
                });
            } else if budget > 0 && !waits[i] {
                let take = seq.prompt_left().min(budget);
                budget -= take;
                let from = seq.prefilled;
                seq.prefilled += take;
                plan.push(Part {
                    seq: i,
                    prompt: Some((from, from + take)),
                    choose: seq.prefilled == seq.prompt.len(),
                });
            }
        }
        // The sampling row of every member whose token is chosen (its random state advances
        // here, once, even if the step is retried), sampled on the model's backend.
        let vocab = self.model.config().vocab_size;
        let requests: Vec<_> = plan
            .iter()
            .filter(|p| p.choose)
            .map(|p| self.active[p.seq].next_sample(vocab))
            .collect();
        let members: Vec<usize> = plan.iter().map(|p| p.seq).collect();
        let mut segments = Vec::with_capacity(plan.len());
        let mut grammar = Vec::new();
        let mut planned = plan.iter().peekable();
        let mut row = 0;
        for (i, seq) in self.active.iter_mut().enumerate() {
            let Some(part) = planned.next_if(|p| p.seq == i) else {
                continue;
            };
            let (cache, tokens, owed) = seq.step_parts(part.prompt);
            if let Some((constraint, token)) = owed {
                grammar.push(GrammarStep {
                    seq: i,
                    row,
                    constraint,
                    token,
                });
            }
            row += usize::from(part.choose);
            segments.push(Segment {
                cache,
                tokens,
                want_logits: part.choose,
            });
        }
        let mut rows = EngineRows::new(requests, grammar, vocab);
        let n_tokens: usize = segments.iter().map(|s| s.tokens.len()).sum();
        let prompt_tokens = self.config.prefill_chunk - budget;
        let forward_started = Instant::now();
        #[cfg(any(test, feature = "fault-injection"))]
        let result = match self.faults.next() {
            fault::Injected::Error(fault) => Err(fault),
            fault::Injected::Kernel => {
                #[cfg(feature = "fault-injection")]
                if let Err(e) = self.model.inject_device_fault() {
                    tracing::warn!(error = %e, "could not inject a device fault");
                }
                run_step(&self.model, &mut segments, &mut rows)
            }
            fault::Injected::None => run_step(&self.model, &mut segments, &mut rows),
        };
        #[cfg(not(any(test, feature = "fault-injection")))]
        let result = run_step(&self.model, &mut segments, &mut rows);
        // Out of KV blocks with caches kept for prefix reuse: free them oldest first until the
        // step gets its blocks (it fails before computing anything); out of device memory: free
        // them all. Then run the step again (a failed step commits nothing to the caches, so it
        // can simply be repeated).
        let mut result = result;
        while matches!(&result, Err(e) if is_out_of_kv_blocks(e)) && self.prefix.evict_oldest() {
            tracing::debug!("step out of KV blocks: freed the oldest kept prefix, retrying");
            result = run_step(&self.model, &mut segments, &mut rows);
        }
        let result = match result {
            Err(e) if is_out_of_memory(&e) && self.prefix.clear() > 0 => {
                tracing::warn!(error = %e, "step out of memory: freed the prefix cache, retrying");
                run_step(&self.model, &mut segments, &mut rows)
            }
            other => other,
        };
        drop(segments);
        let forward = forward_started.elapsed();
        let (verdicts, grammar_steps, grammar_time) = rows.finish();
        if grammar_steps > 0 {
            EngineMetrics::add_time(&self.metrics.grammar_micros, grammar_time);
            EngineMetrics::add(&self.metrics.grammar_tokens, grammar_steps as u64);
        }
        let outputs = match result {
            Ok(l) => l,
            Err(e) => {
                tracing::error!(error = %e, "batched step failed");
                self.fail_members(&members, &e.to_string());
                if is_device_fault(&e) {
                    self.device_fault = Some(e.to_string());
                }
                return;
            }
        };
        EngineMetrics::add(&self.metrics.prompt_tokens, prompt_tokens as u64);
        let mut ended: Vec<Option<Next>> = vec![None; self.active.len()];
        // Each sequence's token, sampled by the step; log-probabilities reported from the raw
        // logits of the rows that asked for them.
        let mut chosen: Vec<Option<u32>> = vec![None; self.active.len()];
        let on_host = outputs.iter().flatten().filter(|o| o.on_host).count();
        if on_host > 0 {
            tracing::debug!(rows = on_host, "sampling rows finished on the host");
            EngineMetrics::add(&self.metrics.sampled_on_host, on_host as u64);
        }
        // A sequence whose grammar step (run during the forward) failed or completed the
        // grammar ends here, its token of this step unused.
        for (i, outcome) in verdicts {
            if let Some(next) = self.active[i].grammar_verdict(outcome) {
                if next == Next::Finished {
                    EngineMetrics::add(&self.metrics.completed, 1);
                }
                ended[i] = Some(next);
            }
        }
        for (&i, out) in members.iter().zip(&outputs) {
            let Some(out) = out.as_ref().filter(|_| ended[i].is_none()) else {
                continue;
            };
            match self.active[i].chosen(out.token, out.logits.as_deref()) {
                Ok(t) => chosen[i] = Some(t),
                Err(next) => ended[i] = Some(next),
            }
        }
        for (i, token) in chosen.into_iter().enumerate() {
            let Some(token) = token.filter(|_| ended[i].is_none()) else {
                if ended[i] == Some(Next::Cancelled) {
                    EngineMetrics::add(&self.metrics.cancelled, 1);
                }
                continue;
            };
            let seq = &mut self.active[i];
            let before = seq.generated();
            let next = seq.take(token);
            let new = seq.generated() - before;
            EngineMetrics::add(&self.metrics.generated_tokens, new as u64);
            match next {
                Next::Continue => {}
                Next::Finished => {
                    ended[i] = Some(Next::Finished);
                    EngineMetrics::add(&self.metrics.completed, 1);
                }
                Next::Cancelled => {
                    ended[i] = Some(Next::Cancelled);
                    EngineMetrics::add(&self.metrics.cancelled, 1);
                }
            }
        }
        let mut kept = Vec::with_capacity(self.active.len());
        for (seq, ended) in self.active.drain(..).zip(ended) {
            match ended {
                // A finished sequence's cache holds its prompt and answer: kept for requests
                // that continue the conversation or share the prompt's beginning.
                Some(Next::Finished) => {
                    let (tokens, cache) = seq.into_cached();
                    self.prefix.insert(tokens, cache);
                }
                Some(_) => {}
                None => kept.push(seq),
            }
        }
        self.active = kept;
        let took = started.elapsed();
        EngineMetrics::add_time(&self.metrics.step_host_micros, took.saturating_sub(forward));
        self.metrics.record_step(n_tokens, took.as_secs_f64());
    }

    /// Gives every sequence that runs this step the KV blocks of its tokens (a decode token, or
    /// at most a prefill chunk), evicting kept prefixes oldest first when the pool is short; a
    /// sequence that still gets none fails alone with the pool's error, and leaves the step
    /// (its entry of `waits` too).
    fn reserve_kv(&mut self, waits: &mut Vec<bool>) {
        let mut starved = Vec::new();
        for (i, seq) in self.active.iter_mut().enumerate() {
            let n = if seq.decoding {
                1
            } else if waits[i] {
                0
            } else {
                seq.prompt_left().min(self.config.prefill_chunk)
            };
            loop {
                match self.model.reserve(&mut seq.cache, n) {
                    Ok(()) => break,
                    Err(e) if is_out_of_kv_blocks(&e) && self.prefix.evict_oldest() => {
                        tracing::debug!("out of KV blocks: freed the oldest kept prefix");
                    }
                    Err(e) => {
                        starved.push((i, e.to_string()));
                        break;
                    }
                }
            }
        }
        for (i, message) in starved.into_iter().rev() {
            tracing::warn!(error = %message, "a sequence got no KV block");
            waits.remove(i);
            self.fail_members(&[i], &message);
        }
    }

    fn fail_members(&mut self, members: &[usize], message: &str) {
        for &i in members.iter().rev() {
            let mut seq = self.active.remove(i);
            tracing::debug!(id = seq.id, "sequence failed");
            seq.fail(message);
            EngineMetrics::add(&self.metrics.failed, 1);
        }
    }

    fn publish_gauges(&self) {
        EngineMetrics::set(&self.metrics.active, self.active.len() as u64);
        let kv: usize = self.active.iter().map(|s| s.cache.size_bytes()).sum();
        EngineMetrics::set(&self.metrics.kv_bytes, kv as u64);
        EngineMetrics::set(
            &self.metrics.prefix_cache_bytes,
            self.prefix.size_bytes() as u64,
        );
        if let Some(g) = self.model.decode_graph_stats() {
            EngineMetrics::set(&self.metrics.graph_captured, g.captured);
            EngineMetrics::set(&self.metrics.graph_replayed, g.replayed);
            EngineMetrics::set(&self.metrics.graph_eager, g.eager);
        }
        if let Some(kv) = self.model.kv_blocks() {
            EngineMetrics::set(&self.metrics.kv_blocks_used, kv.used as u64);
            EngineMetrics::set(&self.metrics.kv_blocks_free, kv.free as u64);
            EngineMetrics::set(
                &self.metrics.kv_pool_bytes,
                (kv.allocated * kv.block_bytes) as u64,
            );
        }
    }
}

/// One member's part of a step: its sequence (index into the active list), the prompt range
/// it prefills (none when decoding) and whether its next token is chosen this step.
struct Part {
    seq: usize,
    prompt: Option<(usize, usize)>,
    choose: bool,
}

/// Runs one batched step; per segment with wanted logits, its token sampled with the j-th of
/// `rows` (whose grammar steps run once the forward is queued).
fn run_step<M: BatchModel>(
    model: &M,
    segments: &mut [Segment<'_, M::Cache>],
    rows: &mut EngineRows<'_>,
) -> ModelResult<Vec<Option<SampledToken>>> {
    model.forward_segments_sampled(segments, rows)
}

/// Whether a failed step found no free KV block.
fn is_out_of_kv_blocks(e: &ModelError) -> bool {
    matches!(
        e,
        ModelError::Tensor(rocmforge_tensor::TensorError::KvBlocksExhausted { .. })
    )
}

/// Whether a failed step ran out of device memory or of KV blocks.
fn is_out_of_memory(e: &ModelError) -> bool {
    use rocmforge_tensor::TensorError;
    matches!(
        e,
        ModelError::Tensor(
            TensorError::OutOfDeviceMemory { .. }
                | TensorError::KvBlocksExhausted { .. }
                | TensorError::Hip(rocmforge_hip::HipError::OutOfMemory { .. })
        )
    )
}

/// Whether a failed step leaves the device unusable: any runtime error except running out of
/// memory (after a kernel fault or a lost device, the context refuses all further work).
fn is_device_fault(e: &ModelError) -> bool {
    matches!(
        e,
        ModelError::Tensor(rocmforge_tensor::TensorError::Hip(h))
            if !matches!(h, rocmforge_hip::HipError::OutOfMemory { .. })
    )
}
