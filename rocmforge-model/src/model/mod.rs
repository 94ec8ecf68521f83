//! [`Model`]: the model written once over `rocmforge-tensor`'s [`Backend`] — one set of
//! weights, one KV cache type, one forward for every device. A single sequence is a batch of
//! one segment; a device is a backend, not a second model type.
//!
//! On a GPU a step that only decodes (one new token per sequence, one sequence included) is
//! recorded once per batch size as a graph and replayed (`forward.rs`).

mod forward;
mod observe;
mod sampled;
mod scratch;

pub use observe::{MatmulObserver, MatmulSite};

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rocmforge_gguf::GgufFile;
use rocmforge_tensor::cpu::RopeParams;
use rocmforge_tensor::{Backend, GgufLoader};

use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};
use crate::forward::{rope_params, rope_params_local};
use crate::kv_cache::{self, KvCache, SharedPool};
use crate::plan::ExecutionPlan;
use crate::weights::{self, LOAD_HEADROOM_BYTES, Weights, weight_bytes};
use rocmforge_tensor::{KV_BLOCK_TOKENS, KvPool, KvPoolStats};
pub use scratch::DecodeGraphStats;
use scratch::Scratch;

/// A model over one backend: weights resolved at load (read in place from the file on the CPU,
/// uploaded in their file format on a GPU) and the forward pass.
pub struct Model {
    plan: ExecutionPlan,
    backend: Backend,
    rope: RopeParams,
    /// The RoPE of the sliding-window layers (gemma3's local layers), when it differs.
    rope_local: Option<RopeParams>,
    weights: Weights,
    /// Activations of recent batch sizes (most recent last), reused between calls.
    pool: Mutex<Vec<Scratch>>,
    /// Whether decode-only steps are captured and replayed (GPU), and whether the last one was.
    graphs: scratch::GraphSwitch,
    /// Sees each matrix product's input when set ([`Model::set_matmul_observer`]).
    observer: observe::ObserverSlot,
    /// The paged KV storage every cache of this model takes its blocks from.
    kv_pool: SharedPool,
    /// Whether a block's input norm runs inside its first matmul and its output projection adds
    /// to the residual in its store (`forward.rs`); off with `ROCMFORGE_FUSE_RESIDUAL=0` (the
    /// separate norm and add launches, for comparisons).
    fuse_residual: bool,
    /// Whether decode-only steps are padded to their bucket size ([`decode_bucket`]), so that
    /// a GPU captures each bucket's step once as a graph: off unless
    /// `ROCMFORGE_DECODE_PADDING=1` (it has not run on a GPU yet) or
    /// [`Model::set_decode_padding`].
    pad_decode: AtomicBool,
    /// The KV block the padding rows write into and read (held while padding is in use).
    pad_block: Mutex<Option<u32>>,
}

/// The row count a decode-only batch of `n` sequences is padded to: 1, 2, 4, 8, then
/// multiples of 8 (the batch sizes captured as graphs, as vLLM's capture sizes).
pub(crate) fn decode_bucket(n: usize) -> usize {
    if n <= 8 {
        n.next_power_of_two()
    } else {
        n.next_multiple_of(8)
    }
}

/// Batch sizes whose activations the forward keeps allocated.
const POOL_SIZES: usize = 12;

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("backend", &self.backend.name())
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// Checks that the forward can run every block of `plan`.
fn check_supported(plan: &ExecutionPlan) -> ModelResult<()> {
    let c = &plan.config;
    if c.head_dim_v != c.head_dim {
        return Err(ModelError::InvalidInput(
            "value heads wider or narrower than key heads (head_dim_v != head_dim) are not \
             supported yet"
                .to_string(),
        ));
    }
    if c.head_dim > rocmforge_tensor::hip::attention::MAX_HEAD_DIM {
        return Err(ModelError::InvalidInput(
            "heads wider than the attention kernel's 512 are not supported".to_string(),
        ));
    }
    Ok(())
}

impl Model {
    /// Maps the model at `path` and loads it on `backend`.
    pub fn open(path: impl AsRef<Path>, backend: Backend) -> ModelResult<Self> {
        Self::open_with_progress(path, backend, &mut |_, _| {})
    }

    /// [`Model::open`], calling `progress(loaded_bytes, total_bytes)` during the load.
    pub fn open_with_progress(
        path: impl AsRef<Path>,
        backend: Backend,
        progress: &mut dyn FnMut(u64, u64),
    ) -> ModelResult<Self> {
        let path = path.as_ref();
        let _span = tracing::info_span!("load", path = %path.display(), backend = %backend.name())
            .entered();
        let file = GgufFile::open(path)?;
        Self::from_file_with_progress(Arc::new(file), backend, progress)
    }

    /// The model of an opened GGUF file, on `backend`.
    pub fn from_file(file: Arc<GgufFile>, backend: Backend) -> ModelResult<Self> {
        Self::from_file_with_progress(file, backend, &mut |_, _| {})
    }

    /// [`Model::from_file`] with load progress.
    pub fn from_file_with_progress(
        file: Arc<GgufFile>,
        backend: Backend,
        progress: &mut dyn FnMut(u64, u64),
    ) -> ModelResult<Self> {
        let loader = Arc::new(GgufLoader::new(file, backend.device().cloned()));
        Self::new_with_progress(ExecutionPlan::new(loader)?, backend, progress)
    }

    /// A model over `plan` (whose loader uploads to `backend`'s device, if any); loads it all.
    pub fn new(plan: ExecutionPlan, backend: Backend) -> ModelResult<Self> {
        Self::new_with_progress(plan, backend, &mut |_, _| {})
    }

    /// [`Model::new`] with load progress. On a GPU, fails before the first upload, with needed
    /// vs free bytes, when the weights cannot fit the device's free memory.
    pub fn new_with_progress(
        plan: ExecutionPlan,
        backend: Backend,
        progress: &mut dyn FnMut(u64, u64),
    ) -> ModelResult<Self> {
        check_supported(&plan)?;
        let started = std::time::Instant::now();
        let weights = weights::load(&plan, &backend, progress)?;
        if let Some(il) = weights.layers.iter().position(|l| {
            (l.q_norm.is_some() || l.k_norm.is_some()) && l.bias.iter().any(Option::is_some)
        }) {
            return Err(ModelError::InvalidInput(format!(
                "block {il} has both q/k norms and q/k/v biases: not supported yet"
            )));
        }
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            bytes = weight_bytes(&plan),
            backend = %backend.name(),
            "model loaded"
        );
        let rope = rope_params(&plan.config);
        let rope_local = rope_params_local(&plan.config);
        // No budget until the caller sets one ([`Model::set_kv_budget`]): blocks are taken as
        // tokens arrive, bounded by memory.
        let c = &plan.config;
        let kv_pool = KvPool::new(&backend, c.n_layers.max(1), c.k_dim(), usize::MAX)?;
        Ok(Model {
            kv_pool: Arc::new(Mutex::new(kv_pool)),
            plan,
            backend,
            rope,
            rope_local,
            weights,
            pool: Mutex::new(Vec::new()),
            graphs: Default::default(),
            fuse_residual: !std::env::var("ROCMFORGE_FUSE_RESIDUAL").is_ok_and(|v| v.trim() == "0"),
            observer: Default::default(),
            pad_decode: AtomicBool::new(
                std::env::var("ROCMFORGE_DECODE_PADDING").is_ok_and(|v| v.trim() == "1"),
            ),
            pad_block: Mutex::new(None),
        })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.plan.config
    }

    /// The execution plan (file, loader and lazy weights).
    pub fn plan(&self) -> &ExecutionPlan {
        &self.plan
    }

    /// The backend the ops run on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// A fresh KV cache for at most `ctx` tokens on the model's backend (no memory is taken
    /// until tokens arrive: its blocks come from the model's pool).
    pub fn new_cache(&self, ctx: usize) -> ModelResult<KvCache> {
        KvCache::new(&self.kv_pool, ctx)
    }

    /// The KV pool's blocks: in use, free under the budget, allocated, and their size.
    pub fn kv_pool_stats(&self) -> KvPoolStats {
        kv_cache::lock(&self.kv_pool).stats()
    }

    /// Returns the KV pool's storage that holds no block in use (whole chunks; see
    /// [`KvPool::trim`]) to the backend; the bytes returned. Caches keep working: storage is
    /// allocated again as blocks are needed.
    pub fn trim_kv_pool(&self) -> usize {
        let mut pool = kv_cache::lock(&self.kv_pool);
        if let Some(block) = self
            .pad_block
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            && let Err(e) = pool.release(block)
        {
            tracing::warn!(error = %e, "releasing the padding rows' KV block");
        }
        pool.trim()
    }

    /// Pads decode-only batches to their bucket size (1, 2, 4, 8, then multiples of 8) with
    /// rows whose results are dropped, so that a GPU captures one graph per bucket rather than
    /// one per batch size (on the CPU nothing is captured: padding there only shows that the
    /// padded rows change nothing). Off by default; `ROCMFORGE_DECODE_PADDING=1` turns it on.
    pub fn set_decode_padding(&self, on: bool) {
        self.pad_decode.store(on, Ordering::Relaxed);
    }

    /// The block the padding rows use (allocated on first use; `None` when the pool has no
    /// block to spare: the step then runs unpadded).
    pub(super) fn padding_block(&self, pool: &mut KvPool) -> Option<u32> {
        let mut slot = self
            .pad_block
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(b) = *slot {
            return Some(b);
        }
        match pool.alloc("the padding rows of a decode batch") {
            Ok(b) => {
                *slot = Some(b);
                Some(b)
            }
            Err(e) => {
                tracing::debug!(error = %e, "no KV block for padding rows; the step runs unpadded");
                None
            }
        }
    }

    /// Caps the KV blocks all caches together may hold to what `tokens` tokens of one
    /// sequence each for `sequences` sequences would take (whole blocks per sequence): beyond
    /// it a cache that needs a block gets a clear error. Returns the cap in blocks.
    pub fn set_kv_budget(&self, tokens: usize, sequences: usize) -> usize {
        let blocks = tokens
            .div_ceil(KV_BLOCK_TOKENS)
            .saturating_mul(sequences.max(1));
        kv_cache::lock(&self.kv_pool).set_max_blocks(blocks);
        blocks
    }

    pub(crate) fn kv_pool(&self) -> &SharedPool {
        &self.kv_pool
    }

    /// Bytes of KV cache one token of one sequence takes (all layers, keys and values).
    pub fn kv_bytes_per_token(&self) -> usize {
        let c = &self.plan.config;
        c.n_layers * (c.k_dim() + c.v_dim()) * 2
    }

    /// `(free, total)` bytes of device memory now; `None` on the CPU.
    pub fn memory_info(&self) -> ModelResult<Option<(usize, usize)>> {
        match self.backend.device() {
            Some(d) => Ok(Some(
                d.mem_info().map_err(rocmforge_tensor::TensorError::Hip)?,
            )),
            None => Ok(None),
        }
    }

    /// The context (tokens per sequence) that `sequences` KV caches can have, at most
    /// `wanted`: on a GPU, what fits the free device memory after keeping room for the
    /// activations of a `batch_tokens`-token step (said in the log when it had to cap); on the
    /// CPU, `wanted`.
    pub fn fit_ctx(
        &self,
        wanted: usize,
        sequences: usize,
        batch_tokens: usize,
    ) -> ModelResult<usize> {
        let Some((free, _)) = self.memory_info()? else {
            return Ok(wanted);
        };
        let reserve = Scratch::bytes(&self.plan.config, batch_tokens.max(1))
            .saturating_add(LOAD_HEADROOM_BYTES);
        let per_ctx_token = self.kv_bytes_per_token().max(1) * sequences.max(1);
        let fits = free.saturating_sub(reserve) / per_ctx_token;
        if fits == 0 {
            return Err(rocmforge_tensor::TensorError::OutOfDeviceMemory {
                tensor: format!("the KV cache of {sequences} sequence(s)"),
                needed: reserve.saturating_add(per_ctx_token),
                free,
            }
            .into());
        }
        if fits < wanted {
            tracing::warn!(
                wanted,
                fits,
                free,
                "KV cache capped to the free device memory"
            );
        }
        Ok(wanted.min(fits))
    }

    /// Turns the captured decode steps on or off (GPU; on by default unless
    /// `ROCMFORGE_DECODE_GRAPH=0`); off, every step runs launch by launch.
    pub fn set_decode_graph(&self, on: bool) {
        self.graphs.set_enabled(on);
    }

    /// Sets (or with `None` clears) the observer that sees the input of every matrix product
    /// of later forward steps (copied to the host: slow; decode steps then run eagerly).
    pub fn set_matmul_observer(&self, observer: Option<Arc<dyn MatmulObserver>>) {
        self.set_decode_graph(observer.is_none());
        *self
            .observer
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = observer;
    }

    /// Whether the last decode-only step replayed a captured graph.
    pub fn decode_graph_replaying(&self) -> bool {
        self.graphs.replayed()
    }

    /// How the decode-only steps have run so far: captured, replayed, launched op by op.
    pub fn decode_graph_stats(&self) -> DecodeGraphStats {
        self.graphs.stats()
    }

    /// The batch sizes whose decode-only step is captured as a graph now (GPU), ascending.
    pub fn batched_graph_sizes(&self) -> Vec<usize> {
        let pool = self
            .pool
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut sizes: Vec<usize> = pool
            .iter()
            .filter(|s| s.graph.state == scratch::GraphState::Ready)
            .map(|s| s.n)
            .collect();
        sizes.sort_unstable();
        sizes
    }
}
