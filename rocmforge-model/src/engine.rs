//! The continuous-batching engine: one worker thread owns the model and runs every
//! request's sequence in one shared batch (see [`crate::scheduler`]), on the CPU or on a
//! GPU ([`EngineDevice`]). No lock serialises requests: they meet in the worker's batch.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rocmforge_model::engine::{Engine, EngineConfig, EngineDevice, EngineEvent, EngineRequest};
//! use rocmforge_model::GenerateParams;
//! let file = rocmforge_gguf::GgufFile::open("model.gguf")?;
//! let engine = Engine::start(file, EngineConfig::default(), EngineDevice::Cpu)?;
//! let prompt = engine.tokenizer().encode("Once upon a time", true, true)?;
//! let (tx, rx) = std::sync::mpsc::channel();
//! engine.submit(EngineRequest::new(prompt, GenerateParams::default(), Box::new(tx)))?;
//! for event in rx {
//!     match event {
//!         EngineEvent::Text(piece) => print!("{piece}"),
//!         EngineEvent::Finished { .. } | EngineEvent::Failed(_) => break,
//!         EngineEvent::Logprob(_) => {}
//!     }
//! }
//! engine.shutdown();
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use rocmforge_gguf::GgufFile;

use crate::config::ModelConfig;
use crate::constraint::Constraint;
use crate::embedding::Pooling;
use crate::error::{ModelError, ModelResult};
use crate::generate::{FinishReason, GenerateParams};
pub use crate::scheduler::metrics::{EngineMetrics, MetricsSnapshot};
use crate::scheduler::{self, EmbedJob, Job, Work};
use crate::tokenizer::Tokenizer;

/// Where the engine's model runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EngineDevice {
    /// The CPU backend (weights read in place from the file).
    #[default]
    Cpu,
    /// GPU `n` (the context per sequence is capped to the free memory).
    Gpu(usize),
}

impl EngineDevice {
    /// The tensor backend this device names (a GPU is opened here).
    pub fn backend(self) -> ModelResult<rocmforge_tensor::Backend> {
        match self {
            EngineDevice::Cpu => Ok(rocmforge_tensor::Backend::Cpu),
            EngineDevice::Gpu(index) => Ok(rocmforge_tensor::Backend::hip(index)?),
        }
    }
}

/// Called with `(uploaded_bytes, total_bytes)` while a GPU engine uploads its weights.
pub type LoadProgress = Box<dyn FnMut(u64, u64) + Send>;

/// Limits of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// Most sequences in the running batch.
    pub max_batch: usize,
    /// Most requests waiting for a batch slot; more are refused ([`SubmitError::QueueFull`]).
    pub max_queue: usize,
    /// Context (KV cache) size per sequence in tokens, capped by the model's.
    pub ctx: usize,
    /// Most prompt tokens prefilled in one step (so a long prompt never stalls the
    /// running streams for more than about one step).
    pub prefill_chunk: usize,
    /// Finished sequences' KV caches kept so that a request starting with the same tokens (a
    /// shared system prompt, the earlier turns of a conversation) copies them instead of
    /// prefilling them again; 0 turns the prefix cache off. Kept caches are freed first when a
    /// new sequence's cache does not fit.
    pub prefix_cache: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            max_batch: 8,
            max_queue: 64,
            ctx: 2048,
            prefill_chunk: 64,
            prefix_cache: 8,
        }
    }
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: usize,
    /// Tokens generated.
    pub completion_tokens: usize,
}

/// What the engine tells a request's owner.
#[derive(Debug, Clone, PartialEq)]
pub enum EngineEvent {
    /// The next piece of generated text (never empty).
    Text(String),
    /// Generation ended; no event follows.
    Finished {
        /// Why it ended.
        reason: FinishReason,
        /// Token counts.
        usage: Usage,
    },
    /// The request failed; no event follows.
    Failed(String),
    /// The log-probability of the token just generated and of the most likely alternatives
    /// (requests made [`EngineRequest::with_logprobs`]); sent before that token's text.
    Logprob(TokenLogprob),
}

/// A generated token's log-probability (log-softmax of the model's logits, before penalties and
/// temperature) and the `top` most likely tokens at that step with theirs, most likely first.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenLogprob {
    /// The token and its log-probability.
    pub token: TopLogprob,
    /// The most likely tokens at that step.
    pub top: Vec<TopLogprob>,
}

/// One token with its log-probability.
#[derive(Debug, Clone, PartialEq)]
pub struct TopLogprob {
    /// Token id.
    pub id: u32,
    /// Its bytes (a special token's text for control tokens).
    pub bytes: Vec<u8>,
    /// Natural log of its probability.
    pub logprob: f32,
}

/// Where a request's events go. `send` returns `false` once nobody listens, and
/// `is_closed` lets the engine notice a departed client even between events; either
/// cancels the sequence and frees its KV cache.
pub trait EventSink: Send {
    /// Delivers `event`; `false` when the receiver is gone.
    fn send(&mut self, event: EngineEvent) -> bool;
    /// Whether the receiver is gone.
    fn is_closed(&self) -> bool {
        false
    }
}

impl EventSink for Sender<EngineEvent> {
    fn send(&mut self, event: EngineEvent) -> bool {
        Sender::send(self, event).is_ok()
    }
}

/// One generation request.
pub struct EngineRequest {
    /// The prompt's token ids (not empty).
    pub prompt: Vec<u32>,
    /// Token limit, sampling chain and stop strings.
    pub params: GenerateParams,
    /// Where the events go.
    pub sink: Box<dyn EventSink>,
    /// `Some(k)`: send an [`EngineEvent::Logprob`] for every generated token with the `k`
    /// most likely alternatives.
    pub logprobs: Option<usize>,
    /// `Some`: the output must match this grammar ([`EngineRequest::with_constraint`]).
    pub constraint: Option<Constraint>,
}

impl std::fmt::Debug for EngineRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineRequest")
            .field("prompt_tokens", &self.prompt.len())
            .field("params", &self.params)
            .field("constrained", &self.constraint.is_some())
            .finish_non_exhaustive()
    }
}

impl EngineRequest {
    /// A request for `prompt` with `params`, its events sent to `sink`.
    pub fn new(prompt: Vec<u32>, params: GenerateParams, sink: Box<dyn EventSink>) -> Self {
        Self {
            prompt,
            params,
            sink,
            logprobs: None,
            constraint: None,
        }
    }

    /// Constrains the output to `constraint`'s grammar: at every step the tokens it does not
    /// allow are masked out of the logits before the sampler, and generation ends (reason
    /// [`FinishReason::EndOfGeneration`]) once the grammar is complete.
    pub fn with_constraint(mut self, constraint: Constraint) -> Self {
        self.constraint = Some(constraint);
        self
    }

    /// Also reports each generated token's log-probability with its `top` most likely
    /// alternatives ([`EngineEvent::Logprob`]; `top` is capped at 20).
    pub fn with_logprobs(mut self, top: usize) -> Self {
        self.logprobs = Some(top.min(MAX_TOP_LOGPROBS));
        self
    }
}

/// Most alternatives a [`EngineEvent::Logprob`] carries (OpenAI's `top_logprobs` limit).
pub const MAX_TOP_LOGPROBS: usize = 20;

/// Why a request was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// The waiting queue holds `max_queue` requests already.
    #[error("the request queue is full ({0} waiting); retry later")]
    QueueFull(usize),
    /// The engine has stopped.
    #[error("the engine is shutting down")]
    ShutDown,
    /// The request cannot run (empty prompt, prompt longer than the context, ...).
    #[error("{0}")]
    Invalid(String),
}

/// A running engine. Cheap to share behind an `Arc`; every method takes `&self`.
#[derive(Debug)]
pub struct Engine {
    jobs: Sender<Work>,
    metrics: Arc<EngineMetrics>,
    stop: Arc<AtomicBool>,
    worker: Mutex<Option<JoinHandle<()>>>,
    tokenizer: Arc<Tokenizer>,
    model_config: ModelConfig,
    config: EngineConfig,
    pooling: Pooling,
    next_id: AtomicU64,
}

impl Engine {
    /// Reads the model and tokenizer of `file` and starts the worker thread on `device`.
    pub fn start(
        file: GgufFile,
        config: EngineConfig,
        device: EngineDevice,
    ) -> ModelResult<Engine> {
        Self::start_with_progress(file, config, device, Box::new(|_, _| {}))
    }

    /// [`Engine::start`], reporting the weight upload of a GPU engine to `progress`. On a GPU
    /// the context per sequence is capped so that `max_batch` caches fit the free memory
    /// ([`Engine::config`] tells the context granted).
    pub fn start_with_progress(
        file: GgufFile,
        mut config: EngineConfig,
        device: EngineDevice,
        progress: LoadProgress,
    ) -> ModelResult<Engine> {
        let tokenizer = Arc::new(Tokenizer::from_gguf(&file)?);
        let model_config = ModelConfig::from_gguf(&file)?;
        let pooling = Pooling::from_gguf(&file, model_config.arch)?;
        config.ctx = config.ctx.min(model_config.context_length.max(1));
        if config.ctx == 0 || config.max_batch == 0 || config.prefill_chunk == 0 {
            return Err(ModelError::InvalidInput(format!(
                "engine limits must be positive: {config:?}"
            )));
        }
        let metrics = Arc::new(EngineMetrics::default());
        let stop = Arc::new(AtomicBool::new(false));
        let (jobs, rx) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let worker = {
            let (tokenizer, metrics, stop) = (tokenizer.clone(), metrics.clone(), stop.clone());
            std::thread::Builder::new()
                .name("rocmforge-engine".to_string())
                .spawn(move || {
                    let ctx = scheduler::WorkerContext {
                        tokenizer: &tokenizer,
                        config,
                        jobs: rx,
                        metrics: &metrics,
                        stop: &stop,
                        ready: ready_tx,
                    };
                    scheduler::run_worker(file, device, progress, ctx);
                })
                .map_err(|e| ModelError::InvalidInput(format!("spawning the engine thread: {e}")))?
        };
        match ready_rx.recv() {
            Ok(Ok(ctx)) => config.ctx = ctx,
            Ok(Err(e)) => {
                let _ = worker.join();
                return Err(e);
            }
            Err(_) => {
                let _ = worker.join();
                return Err(ModelError::InvalidInput(
                    "the engine thread stopped while loading the model".to_string(),
                ));
            }
        }
        Ok(Engine {
            jobs,
            metrics,
            stop,
            worker: Mutex::new(Some(worker)),
            tokenizer,
            model_config,
            config,
            pooling,
            next_id: AtomicU64::new(0),
        })
    }

    /// The tokenizer of the model.
    pub fn tokenizer(&self) -> &Arc<Tokenizer> {
        &self.tokenizer
    }

    /// The model's hyperparameters.
    pub fn model_config(&self) -> &ModelConfig {
        &self.model_config
    }

    /// The engine's limits (the context capped by the model's).
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The live counters.
    pub fn metrics(&self) -> MetricsSnapshot {
        self.metrics.snapshot()
    }

    /// Whether the worker thread is running.
    pub fn is_healthy(&self) -> bool {
        !self.stop.load(Ordering::Relaxed)
            && self
                .worker
                .lock()
                .map(|w| w.as_ref().is_some_and(|h| !h.is_finished()))
                .unwrap_or(false)
    }

    /// Checks a request against the limits without queueing it.
    pub fn validate(&self, prompt_tokens: usize, max_tokens: usize) -> Result<(), SubmitError> {
        if prompt_tokens == 0 {
            return Err(SubmitError::Invalid("the prompt is empty".to_string()));
        }
        if prompt_tokens >= self.config.ctx {
            return Err(SubmitError::Invalid(format!(
                "the prompt has {prompt_tokens} tokens but the context holds {} (prompt plus at least one generated token)",
                self.config.ctx
            )));
        }
        if max_tokens == 0 {
            return Err(SubmitError::Invalid(
                "max_tokens must be at least 1".to_string(),
            ));
        }
        Ok(())
    }

    /// Queues `request`; its events arrive on its sink.
    pub fn submit(&self, request: EngineRequest) -> Result<(), SubmitError> {
        self.validate(request.prompt.len(), request.params.max_tokens)?;
        if self.stop.load(Ordering::Relaxed) {
            return Err(SubmitError::ShutDown);
        }
        let max = self.config.max_queue as u64;
        let reserved =
            self.metrics
                .queue_depth
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |d| {
                    (d < max).then_some(d + 1)
                });
        if let Err(depth) = reserved {
            EngineMetrics::add(&self.metrics.rejected, 1);
            return Err(SubmitError::QueueFull(depth as usize));
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        if self
            .jobs
            .send(Work::Generate(Box::new(Job { id, request })))
            .is_err()
        {
            self.metrics.queue_depth.fetch_sub(1, Ordering::AcqRel);
            return Err(SubmitError::ShutDown);
        }
        EngineMetrics::add(&self.metrics.requests, 1);
        Ok(())
    }

    /// The pooling of the model's embeddings (its `pooling_type`, else mean).
    pub fn pooling(&self) -> Pooling {
        self.pooling
    }

    /// Queues the embedding of `tokens` (see [`crate::Model::embed`]: the output-normed
    /// hidden states pooled as [`Engine::pooling`] says, unit length); the worker runs it
    /// between batch steps and the result arrives on the returned receiver.
    pub fn embed(
        &self,
        tokens: Vec<u32>,
    ) -> Result<mpsc::Receiver<ModelResult<Vec<f32>>>, SubmitError> {
        if tokens.is_empty() {
            return Err(SubmitError::Invalid("the input is empty".to_string()));
        }
        if tokens.len() > self.config.ctx {
            return Err(SubmitError::Invalid(format!(
                "the input has {} tokens but the context holds {}",
                tokens.len(),
                self.config.ctx
            )));
        }
        if self.stop.load(Ordering::Relaxed) {
            return Err(SubmitError::ShutDown);
        }
        let (reply, rx) = mpsc::channel();
        let job = EmbedJob {
            tokens,
            pooling: self.pooling,
            reply,
        };
        self.jobs
            .send(Work::Embed(job))
            .map_err(|_| SubmitError::ShutDown)?;
        Ok(rx)
    }

    /// Stops the worker: queued and running requests get [`EngineEvent::Failed`], and the
    /// call returns once the thread has ended. Idempotent.
    pub fn shutdown(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.worker.lock().ok().and_then(|mut w| w.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        self.shutdown();
    }
}
