//! [`GpuModel`]: embedding → blocks → final norm → LM head with the HIP ops.

use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use rocmforge_hip::DeviceBuffer;
use rocmforge_tensor::cpu::{AttentionParams, RopeParams};
use rocmforge_tensor::hip::HipOps;
use rocmforge_tensor::hip::rope::rope_device_positions;
use rocmforge_tensor::{Backend, DeviceTensor, GgufLoader, Tensor, Weight, ops};

use super::cache::GpuKvCache;
use super::ranged;
use super::scratch::Scratch;
use super::weights::{self, GpuLayer, GpuWeights, weight_bytes};
use crate::batch::Segment;
use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};
use crate::forward::{LogitsFor, rope_params};
use crate::plan::ExecutionPlan;

/// A model run on one GPU: weights resident through its [`ExecutionPlan`].
pub struct GpuModel {
    plan: ExecutionPlan,
    backend: Backend,
    rope: RopeParams,
    weights: GpuWeights,
    /// Activations of the single-sequence [`GpuModel::forward`] (reused while `n` repeats).
    scratch: Mutex<Option<Scratch>>,
    /// Activations of [`GpuModel::forward_batch`], a few batch sizes kept (most recent last).
    pool: Mutex<Vec<Scratch>>,
    /// The captured single-sequence decode step (see `decode_graph.rs`).
    pub(super) decode: super::decode_graph::DecodeSlot,
}

/// Batch sizes whose activations the batched forward keeps allocated.
const POOL_SIZES: usize = 8;

impl std::fmt::Debug for GpuModel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModel")
            .field("backend", &self.backend.name())
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

fn unsupported(what: &str) -> ModelError {
    ModelError::InvalidInput(format!(
        "the GPU forward does not run {what} yet; use --device cpu"
    ))
}

/// Checks that the GPU forward can run every block of `plan`.
fn check_supported(plan: &ExecutionPlan) -> ModelResult<()> {
    let c = &plan.config;
    if c.head_dim_v != c.head_dim {
        return Err(unsupported(
            "value heads wider or narrower than key heads (head_dim_v != head_dim)",
        ));
    }
    if c.head_dim > rocmforge_tensor::hip::attention::MAX_HEAD_DIM {
        return Err(unsupported("heads wider than the attention kernel's 512"));
    }
    Ok(())
}

/// One sequence's rows in a forward call: rows `row..row + n` of the batch, its cache.
struct SeqRows<'a, 'c> {
    cache: &'a mut &'c mut GpuKvCache,
    row: usize,
    n: usize,
}

impl GpuModel {
    /// Maps the model at `path`, plans it on GPU `device_index` and uploads every weight.
    pub fn open(path: impl AsRef<Path>, device_index: usize) -> ModelResult<Self> {
        Self::open_with_progress(path, device_index, &mut |_, _| {})
    }

    /// [`GpuModel::open`], calling `progress(uploaded_bytes, total_bytes)` during the upload.
    pub fn open_with_progress(
        path: impl AsRef<Path>,
        device_index: usize,
        progress: &mut dyn FnMut(u64, u64),
    ) -> ModelResult<Self> {
        let path = path.as_ref();
        let _span = tracing::info_span!("gpu_load", path = %path.display(), device = device_index)
            .entered();
        let started = std::time::Instant::now();
        let backend = Backend::hip(device_index)?;
        let device = backend.device().cloned();
        let loader = Arc::new(GgufLoader::open(path, device)?);
        let model = Self::new_with_progress(ExecutionPlan::new(loader)?, backend, progress)?;
        tracing::info!(
            seconds = started.elapsed().as_secs_f64(),
            bytes = weight_bytes(&model.plan),
            "model loaded on the GPU"
        );
        Ok(model)
    }

    /// A model over `plan` (whose loader uploads to `backend`'s device); preloads it all.
    pub fn new(plan: ExecutionPlan, backend: Backend) -> ModelResult<Self> {
        Self::new_with_progress(plan, backend, &mut |_, _| {})
    }

    /// [`GpuModel::new`] with upload progress. Fails before the first upload, with needed vs
    /// free bytes, when the weights cannot fit the device's free memory.
    pub fn new_with_progress(
        plan: ExecutionPlan,
        backend: Backend,
        progress: &mut dyn FnMut(u64, u64),
    ) -> ModelResult<Self> {
        let Some(device) = backend.device().cloned() else {
            return Err(ModelError::InvalidInput(
                "GpuModel needs a HIP backend".to_string(),
            ));
        };
        check_supported(&plan)?;
        let weights = {
            let _span = tracing::info_span!("preload", layers = plan.layers.len()).entered();
            weights::load(&plan, &device, progress)?
        };
        let rope = rope_params(&plan.config);
        Ok(GpuModel {
            plan,
            backend,
            rope,
            weights,
            scratch: Mutex::new(None),
            pool: Mutex::new(Vec::new()),
            decode: Default::default(),
        })
    }

    /// The model's hyperparameters.
    pub fn config(&self) -> &ModelConfig {
        &self.plan.config
    }

    /// The execution plan (weights and loader).
    pub fn plan(&self) -> &ExecutionPlan {
        &self.plan
    }

    /// The backend the ops run on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// A fresh device KV cache for `ctx` tokens.
    pub fn new_cache(&self, ctx: usize) -> ModelResult<GpuKvCache> {
        GpuKvCache::new(&self.backend, &self.plan.config, ctx)
    }

    /// Bytes of KV cache one token of one sequence takes (all layers, keys and values).
    pub fn kv_bytes_per_token(&self) -> usize {
        let c = &self.plan.config;
        c.n_layers * (c.k_dim() + c.v_dim()) * 2
    }

    /// `(free, total)` bytes of device memory now.
    pub fn memory_info(&self) -> ModelResult<(usize, usize)> {
        let device = self
            .backend
            .device()
            .ok_or_else(|| ModelError::InvalidInput("GpuModel needs a HIP backend".to_string()))?;
        Ok(device
            .mem_info()
            .map_err(rocmforge_tensor::TensorError::Hip)?)
    }

    /// The context (tokens per sequence) that `sequences` KV caches can have in the free
    /// device memory, at most `wanted`, after keeping room for the activations of a
    /// `batch_tokens`-token step. Says so in the log when it had to cap.
    pub fn fit_ctx(
        &self,
        wanted: usize,
        sequences: usize,
        batch_tokens: usize,
    ) -> ModelResult<usize> {
        let (free, _) = self.memory_info()?;
        let reserve = Scratch::bytes(&self.plan.config, batch_tokens.max(1))
            .saturating_add(weights::LOAD_HEADROOM_BYTES);
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

    fn hip_ops(&self) -> ModelResult<&HipOps> {
        match &self.backend {
            Backend::Hip(ops) => Ok(ops),
            _ => Err(ModelError::InvalidInput(
                "GpuModel needs a HIP backend".to_string(),
            )),
        }
    }

    /// Runs `tokens` at positions `start_pos..` (= `cache.len()`), appends their keys and
    /// values to `cache`, and returns `[n][vocab]` logits for the positions `which` selects.
    pub fn forward(
        &self,
        cache: &mut GpuKvCache,
        tokens: &[u32],
        start_pos: usize,
        which: LogitsFor,
    ) -> ModelResult<Vec<f32>> {
        let n = tokens.len();
        if n == 0 {
            return Err(ModelError::InvalidInput("no tokens to run".to_string()));
        }
        if start_pos != cache.len() {
            return Err(ModelError::InvalidInput(format!(
                "start position {start_pos} but the KV cache holds {} tokens",
                cache.len()
            )));
        }
        cache.check_room(n)?;
        let first_out = match which {
            LogitsFor::Last => n - 1,
            LogitsFor::All => 0,
            LogitsFor::From(i) if i < n => i,
            LogitsFor::From(i) => {
                return Err(ModelError::InvalidInput(format!(
                    "logits asked from batch index {i} of a {n}-token batch"
                )));
            }
        };
        let span = if n == 1 {
            tracing::debug_span!("gpu_decode", tokens = n, pos = start_pos)
        } else {
            tracing::debug_span!("gpu_prefill", tokens = n, pos = start_pos)
        };
        let _entered = span.enter();
        let started = std::time::Instant::now();
        let positions = self.positions(start_pos, n)?;
        if let ([token], [pos]) = (tokens, positions.as_slice()) {
            let m = super::decode_graph::DecodeModel {
                backend: &self.backend,
                config: &self.plan.config,
                weights: &self.weights,
                rope: &self.rope,
            };
            if let Some(logits) =
                super::decode_graph::decode_step(&self.decode, &m, cache, *token, *pos)?
            {
                return Ok(logits);
            }
        }

        let mut slot = self.scratch.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|s| s.n != n) {
            *slot = None; // free the old set before allocating the new one
            *slot = Some(Scratch::new(
                &self.backend,
                &self.plan.config,
                &self.weights,
                n,
            )?);
        }
        let Some(s) = slot.as_mut() else {
            return Err(ModelError::InvalidInput(
                "scratch buffers missing".to_string(),
            ));
        };
        let mut cache = cache;
        let mut seqs = [SeqRows {
            cache: &mut cache,
            row: 0,
            n,
        }];
        self.run(s, tokens, &positions, &mut seqs)?;
        let vocab = self.plan.config.vocab_size;
        // Only the rows asked for cross to the host (a 512-token prefill's last row, not
        // its 512 × vocab logits).
        let out = ranged::read_rows(s.logits.hip("logits")?, vocab, first_out, n - first_out)?;
        tracing::debug!(
            tokens_per_s = n as f64 / started.elapsed().as_secs_f64().max(1e-9),
            "gpu forward done"
        );
        Ok(out)
    }

    /// The batched forward (see [`crate::batch`]): every segment's tokens run together,
    /// each appended to its own cache; returns, per segment, the logits of its last token
    /// when `want_logits` is set. Each sequence's result equals running it alone.
    pub fn forward_batch(
        &self,
        segments: &mut [Segment<'_, GpuKvCache>],
    ) -> ModelResult<Vec<Option<Vec<f32>>>> {
        if segments.is_empty() {
            return Ok(Vec::new());
        }
        let mut tokens = Vec::new();
        let mut positions = Vec::new();
        for (i, seg) in segments.iter().enumerate() {
            if seg.tokens.is_empty() {
                return Err(ModelError::InvalidInput(format!(
                    "segment {i} of the batch has no tokens"
                )));
            }
            seg.cache.check_room(seg.tokens.len())?;
            tokens.extend_from_slice(seg.tokens);
            positions.extend(self.positions(seg.cache.len(), seg.tokens.len())?);
        }
        let n = tokens.len();
        let _span =
            tracing::debug_span!("gpu_batch", sequences = segments.len(), tokens = n).entered();
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let mut s = match pool.iter().position(|s| s.n == n) {
            Some(i) => pool.remove(i),
            None => {
                if pool.len() >= POOL_SIZES {
                    pool.remove(0);
                }
                Scratch::new(&self.backend, &self.plan.config, &self.weights, n)?
            }
        };
        let mut row = 0;
        let mut seqs: Vec<SeqRows<'_, '_>> = segments
            .iter_mut()
            .map(|seg| {
                let m = seg.tokens.len();
                row += m;
                SeqRows {
                    cache: &mut seg.cache,
                    row: row - m,
                    n: m,
                }
            })
            .collect();
        let ran = self.run(&mut s, &tokens, &positions, &mut seqs);
        drop(seqs);
        let logits = ran.and_then(|()| self.read_wanted(&s, segments));
        pool.push(s);
        logits
    }

    /// Each segment's last-row logits when wanted: one copy when every row is wanted (a
    /// decode step), else one row per wanted segment.
    fn read_wanted(
        &self,
        s: &Scratch,
        segments: &[Segment<'_, GpuKvCache>],
    ) -> ModelResult<Vec<Option<Vec<f32>>>> {
        let vocab = self.plan.config.vocab_size;
        let logits = s.logits.hip("logits")?;
        let every_row = segments
            .iter()
            .all(|seg| seg.want_logits && seg.tokens.len() == 1);
        if every_row {
            let all = ranged::read_rows(logits, vocab, 0, segments.len())?;
            return Ok(all.chunks_exact(vocab).map(|r| Some(r.to_vec())).collect());
        }
        let mut end = 0;
        segments
            .iter()
            .map(|seg| {
                end += seg.tokens.len();
                seg.want_logits
                    .then(|| ranged::read_rows(logits, vocab, end - 1, 1))
                    .transpose()
            })
            .collect()
    }

    fn positions(&self, start: usize, n: usize) -> ModelResult<Vec<u32>> {
        match self.plan.position_handler() {
            Some(h) => h.position_ids(start, n),
            None => start
                .checked_add(n)
                .filter(|&end| u32::try_from(end).is_ok())
                .map(|end| (start..end).map(|p| p as u32).collect())
                .ok_or_else(|| {
                    ModelError::InvalidInput(format!(
                        "positions {start}..+{n} exceed the 32-bit position range"
                    ))
                }),
        }
    }

    /// Embedding, every block, final norm and LM head over the scratch's `n` rows; each
    /// sequence's keys and values go to its cache, which is then committed. The logits of
    /// every row are left in `s.logits` (the stream synchronized).
    fn run(
        &self,
        s: &mut Scratch,
        tokens: &[u32],
        positions: &[u32],
        seqs: &mut [SeqRows<'_, '_>],
    ) -> ModelResult<()> {
        let (be, c, w) = (&self.backend, &self.plan.config, &self.weights);
        s.positions
            .copy_from_host(positions)
            .map_err(rocmforge_tensor::TensorError::Hip)?;
        ops::embedding(be, &Weight::Hip(&w.embedding), tokens, &mut s.x)?;
        for (il, layer) in w.layers.iter().enumerate() {
            self.attention_block(il, layer, seqs, s)?;
            self.mlp_block(layer, s)?;
        }
        for seq in seqs.iter_mut() {
            seq.cache.commit(seq.n)?;
        }
        ops::rms_norm(
            be,
            &s.x,
            &Weight::Hip(&w.output_norm),
            c.rms_eps,
            &mut s.normed,
        )?;
        ops::matmul(be, &Weight::Hip(&w.lm_head), &s.normed, s.n, &mut s.logits)?;
        self.backend.synchronize()?;
        Ok(())
    }

    /// `t = rms_norm(t) * w` in place, through `tmp` (rows of `w`'s length).
    fn norm_in_place(&self, t: &mut Tensor, tmp: &mut Tensor, w: &DeviceTensor) -> ModelResult<()> {
        ops::rms_norm(
            &self.backend,
            t,
            &Weight::Hip(w),
            self.plan.config.rms_eps,
            tmp,
        )?;
        std::mem::swap(t, tmp);
        Ok(())
    }

    /// RoPE on `x` with the batch's positions already on the device (no host copy per launch).
    fn rope_in_place(
        &self,
        x: &mut Tensor,
        n_heads: usize,
        positions: &DeviceBuffer<u32>,
        n: usize,
    ) -> ModelResult<()> {
        let c = &self.plan.config;
        rope_device_positions(
            self.hip_ops()?,
            x.hip_mut("rope")?,
            n,
            n_heads,
            c.head_dim,
            positions,
            &self.rope,
        )?;
        Ok(())
    }

    fn attention_block(
        &self,
        il: usize,
        l: &GpuLayer,
        seqs: &mut [SeqRows<'_, '_>],
        s: &mut Scratch,
    ) -> ModelResult<()> {
        let (be, c, n) = (&self.backend, &self.plan.config, s.n);
        ops::rms_norm(be, &s.x, &Weight::Hip(&l.norm1), c.rms_eps, &mut s.normed)?;
        let bias = &s.bias[il];
        for (w, out, b) in [
            (&l.q, &mut s.q, &bias[0]),
            (&l.k, &mut s.k, &bias[1]),
            (&l.v, &mut s.v, &bias[2]),
        ] {
            ops::matmul(be, &Weight::Hip(w), &s.normed, n, out)?;
            if let Some(b) = b {
                ops::add(be, out, b)?;
            }
        }
        if let (Some(qn), Some(kn)) = (&l.q_norm, &l.k_norm) {
            self.norm_in_place(&mut s.q, &mut s.q_tmp, qn)?;
            self.norm_in_place(&mut s.k, &mut s.k_tmp, kn)?;
        }
        self.rope_in_place(&mut s.q, c.n_heads, &s.positions, n)?;
        self.rope_in_place(&mut s.k, c.n_kv_heads, &s.positions, n)?;
        let params = |m: usize, start: usize| AttentionParams {
            n_q_tokens: m,
            n_kv_tokens: start + m,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
        };
        if let [only] = seqs {
            // One sequence over all rows: the tensor crate's whole-tensor ops.
            let start = only.cache.len();
            ops::kv_append(be, &s.k, &mut only.cache.k[il], start)?;
            ops::kv_append(be, &s.v, &mut only.cache.v[il], start)?;
            let cache = &**only.cache;
            ops::attention(
                be,
                &s.q,
                &cache.k[il],
                &cache.v[il],
                &params(n, start),
                &mut s.attn,
            )?;
        } else {
            let hip = self.hip_ops()?;
            for seq in seqs.iter_mut() {
                let start = seq.cache.len();
                let (k_t, v_t) = (s.k.hip("kv_append")?, s.v.hip("kv_append")?);
                ranged::kv_append_rows(
                    hip,
                    k_t,
                    seq.row,
                    seq.n,
                    seq.cache.k[il].hip_mut("kv")?,
                    start,
                )?;
                ranged::kv_append_rows(
                    hip,
                    v_t,
                    seq.row,
                    seq.n,
                    seq.cache.v[il].hip_mut("kv")?,
                    start,
                )?;
                let cache = &**seq.cache;
                ranged::attention_rows(
                    hip,
                    s.q.hip("attention")?,
                    seq.row,
                    cache.k[il].hip("attention")?,
                    cache.v[il].hip("attention")?,
                    &params(seq.n, start),
                    s.attn.hip_mut("attention")?,
                )?;
            }
        }
        ops::matmul(be, &Weight::Hip(&l.o), &s.attn, n, &mut s.proj)?;
        if let Some(post) = &l.post_attn_norm {
            self.norm_in_place(&mut s.proj, &mut s.proj_tmp, post)?;
        }
        ops::add(be, &mut s.x, &s.proj)?;
        Ok(())
    }

    fn mlp_block(&self, l: &GpuLayer, s: &mut Scratch) -> ModelResult<()> {
        let (be, c, n) = (&self.backend, &self.plan.config, s.n);
        ops::rms_norm(be, &s.x, &Weight::Hip(&l.norm2), c.rms_eps, &mut s.normed)?;
        ops::matmul(be, &Weight::Hip(&l.gate), &s.normed, n, &mut s.gate)?;
        ops::matmul(be, &Weight::Hip(&l.up), &s.normed, n, &mut s.up)?;
        ops::silu_mul(be, &s.gate, &s.up, &mut s.hidden)?;
        ops::matmul(be, &Weight::Hip(&l.down), &s.hidden, n, &mut s.proj)?;
        if let Some(post) = &l.post_ffn_norm {
            self.norm_in_place(&mut s.proj, &mut s.proj_tmp, post)?;
        }
        ops::add(be, &mut s.x, &s.proj)?;
        Ok(())
    }
}
