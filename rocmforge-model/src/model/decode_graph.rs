//! Single-sequence decode as ONE captured graph per (model, cache), replayed every token.
//!
//! A decode step of batch 1 is a fixed sequence of launches whose only changing inputs are
//! the token id, its position, the KV row it writes and the KV length it attends over. Those
//! four live in device memory (uploaded from pinned host memory before each replay), every
//! kernel reads them there, so the launches are captured once and replayed unchanged:
//!
//! - per block: `add_rms_norm_q8_1` (residual add of the previous block + norm + q8_1 of the
//!   result), q/k/v matvecs on the q8_1 activations, `rope_qk_kv_append` (RoPE of q and k, K and
//!   V written to the cache), split-K `attention_decode` (two launches), the output projection,
//!   `add_rms_norm_q8_1`, gate and up matvecs, `silu_mul_q8_1`, the down projection;
//! - then the final `add_rms_norm_q8_1` and the LM head.
//!
//! The first step with a cache runs the launches eagerly (loading every kernel, giving that
//! step's logits), then captures them; later steps replay. When capture or instantiation
//! fails, the step keeps running the same launches eagerly. Blocks this path does not cover
//! (biases, q/k norms, post-norms, float projection weights other than F32, more than 8 query
//! heads per KV head) make [`decode_step`] return `None`: the caller runs its general forward.
//!
//! Capture records whatever is queued on the model's one stream while it lasts: a
//! [`super::Model::forward_batch`] running on another thread at that moment would be
//! recorded instead of run. The engine owns its model; callers that share one model between
//! threads must not overlap a first decode step with other work on it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use rocmforge_gguf::GgmlType;
use rocmforge_hip::{DeviceBuffer, HipGraphExec};
use rocmforge_tensor::hip::attention_decode::{
    self, DecodeAttentionShape, MAX_GROUP, MAX_HEAD_DIM,
};
use rocmforge_tensor::hip::q8_1_act::Q8_1Act;
use rocmforge_tensor::hip::rope::{QkvShape, rope_qk_kv_append};
use rocmforge_tensor::hip::step::StepScalars;
use rocmforge_tensor::hip::{HipOps, elementwise, embedding, matmul, norm};
use rocmforge_tensor::{Backend, DeviceTensor, TensorError};

use super::Model;
use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};
use crate::kv_cache::KvCache;
use crate::weights::{LayerWeights, Mat, Vector, Weights};

/// The decode graph of a model: on/off switch and the graph of the last cache used.
#[derive(Debug)]
pub(crate) struct DecodeSlot {
    enabled: AtomicBool,
    graph: Mutex<Option<DecodeGraph>>,
}

impl Default for DecodeSlot {
    /// Enabled unless `ROCMFORGE_DECODE_GRAPH=0`.
    fn default() -> Self {
        let off = std::env::var("ROCMFORGE_DECODE_GRAPH").is_ok_and(|v| v == "0");
        DecodeSlot {
            enabled: AtomicBool::new(!off),
            graph: Mutex::new(None),
        }
    }
}

impl DecodeSlot {
    /// Turns the captured decode path on or off (off: every step runs the general forward).
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
        if !on {
            *self.graph.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
    }

    /// Whether the captured decode path is on.
    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Whether the last step replayed a captured graph (false: ran eagerly or never ran).
    pub fn replaying(&self) -> bool {
        let g = self.graph.lock().unwrap_or_else(PoisonError::into_inner);
        g.as_ref().is_some_and(|g| g.exec.is_some())
    }
}

impl Model {
    /// Whether a single-sequence decode step takes this captured path (GPU, on, model covered).
    pub(super) fn decode_graph_covers(&self) -> bool {
        self.decode.enabled()
            && matches!(self.backend, Backend::Hip(_))
            && covers(&self.plan.config, &self.weights)
            && !std::env::var("ROCMFORGE_FUSED_DECODE").is_ok_and(|v| v == "0")
    }

    /// Runs one token at `position` (cache row `cache.len()`) through the captured path,
    /// commits it to `cache` and returns its logits; `None` when the path is off or does not
    /// cover the model (nothing was run then).
    pub(super) fn decode_graph_step(
        &self,
        cache: &mut KvCache,
        token: u32,
        position: u32,
    ) -> ModelResult<Option<Vec<f32>>> {
        let slot = &self.decode;
        if !self.decode_graph_covers() {
            return Ok(None);
        }
        let Backend::Hip(ops) = &self.backend else {
            return Ok(None);
        };
        let c = &self.plan.config;
        if token as usize >= c.vocab_size {
            return Err(TensorError::TokenOutOfRange {
                op: "decode step",
                id: token,
                index: 0,
                vocab: c.vocab_size,
            }
            .into());
        }
        cache.check_room(1)?;
        let key = CacheKey::of(cache)?;
        let mut g = slot.graph.lock().unwrap_or_else(PoisonError::into_inner);
        if g.as_ref().is_none_or(|g| g.key != key) {
            *g = None; // free the old graph and buffers first
            *g = Some(DecodeGraph::new(ops, c, key)?);
        }
        let Some(graph) = g.as_mut() else {
            return Err(ModelError::InvalidInput("decode graph missing".to_string()));
        };
        let row = u32::try_from(cache.len()).map_err(|_| {
            ModelError::InvalidInput(format!("KV row {} exceeds 32 bits", cache.len()))
        })?;
        graph
            .b
            .step
            .upload(ops, [token, position, row, row.saturating_add(1)])?;
        if let Some(exec) = &graph.exec {
            ops.launch_graph(exec)?;
        } else {
            graph.record(ops, self, cache)?;
            if !graph.eager_only {
                ops.synchronize()?;
                graph.capture(ops, self, cache);
            }
        }
        ops.synchronize()?;
        let logits = graph.b.logits.to_f32_vec()?;
        cache.commit(1)?;
        Ok(Some(logits))
    }
}

/// Whether the captured path covers every block of the model.
fn covers(c: &ModelConfig, w: &Weights) -> bool {
    let proj_ok = |m: &Mat| {
        m.device().is_some_and(|t| {
            let ty = t.dtype();
            matmul::supports(ty) && (ty.is_quantized() || ty == GgmlType::F32)
        })
    };
    let vec_ok = |v: &Vector| v.device().is_some();
    let layer_ok = |l: &LayerWeights| {
        l.bias.iter().all(Option::is_none)
            && l.q_norm.is_none()
            && l.k_norm.is_none()
            && l.post_attn_norm.is_none()
            && l.post_ffn_norm.is_none()
            && vec_ok(&l.norm1)
            && vec_ok(&l.norm2)
            && [&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down]
                .into_iter()
                .all(&proj_ok)
    };
    c.n_kv_heads > 0
        && c.n_heads % c.n_kv_heads == 0
        && c.n_heads / c.n_kv_heads <= MAX_GROUP
        && c.head_dim <= MAX_HEAD_DIM
        && c.head_dim_v == c.head_dim
        && [c.n_embd, c.q_dim(), c.n_ff].iter().all(|d| d % 32 == 0)
        && w.embedding
            .device()
            .is_some_and(|e| embedding::at_kernel_name(e.dtype()).is_some())
        && proj_ok(&w.lm_head)
        && vec_ok(&w.output_norm)
        && w.layers.len() == c.n_layers
        && w.layers.iter().all(layer_ok)
}

/// The device copy of a weight the captured path uses ([`covers`] checked there is one).
fn dev<'a>(what: &'static str, t: Option<&'a DeviceTensor>) -> ModelResult<&'a DeviceTensor> {
    t.ok_or_else(|| ModelError::InvalidInput(format!("decode graph: {what} is not on the GPU")))
}

/// The device addresses a captured graph baked in: every layer's K and V cache.
#[derive(Debug, Clone, PartialEq, Eq)]
struct CacheKey {
    capacity: usize,
    ptrs: Vec<u64>,
}

impl CacheKey {
    fn of(cache: &KvCache) -> ModelResult<CacheKey> {
        let mut ptrs = Vec::with_capacity(cache.k.len() * 2);
        for t in cache.k.iter().chain(&cache.v) {
            ptrs.push(t.hip("decode graph")?.device_ptr().0);
        }
        Ok(CacheKey {
            capacity: cache.capacity(),
            ptrs,
        })
    }
}

/// Activations and step scalars of the captured step (their addresses are in the graph).
#[derive(Debug)]
struct Buffers {
    x: DeviceTensor,
    normed: DeviceTensor,
    normed_q8: Q8_1Act,
    q: DeviceTensor,
    k: DeviceTensor,
    v: DeviceTensor,
    attn: DeviceTensor,
    attn_q8: Q8_1Act,
    proj: DeviceTensor,
    gate: DeviceTensor,
    up: DeviceTensor,
    hidden: DeviceTensor,
    hidden_q8: Q8_1Act,
    logits: DeviceTensor,
    workspace: DeviceBuffer<f32>,
    /// Token id, position, KV row, KV length (after the append), one buffer each.
    step: StepScalars<4>,
}

/// A decode step for one cache: the instantiated graph (once captured) and its buffers.
#[derive(Debug)]
struct DecodeGraph {
    /// Declared first: dropped (and its replays waited for) before the buffers it uses.
    exec: Option<HipGraphExec>,
    /// Set once capture or instantiation failed: later steps run eagerly without retrying.
    eager_only: bool,
    key: CacheKey,
    b: Buffers,
}

impl DecodeGraph {
    fn new(ops: &HipOps, c: &ModelConfig, key: CacheKey) -> ModelResult<DecodeGraph> {
        let dev = ops.backend();
        let f32s = |cols: usize| DeviceTensor::zeros(dev, GgmlType::F32, vec![1, cols]);
        let q8 = |cols: usize| Q8_1Act::new(dev, 1, cols);
        let shape = attention_shape(c, key.capacity);
        let b = Buffers {
            x: f32s(c.n_embd)?,
            normed: f32s(c.n_embd)?,
            normed_q8: q8(c.n_embd)?,
            q: f32s(c.q_dim())?,
            k: f32s(c.k_dim())?,
            v: f32s(c.v_dim())?,
            attn: f32s(c.q_dim())?,
            attn_q8: q8(c.q_dim())?,
            proj: f32s(c.n_embd)?,
            gate: f32s(c.n_ff)?,
            up: f32s(c.n_ff)?,
            hidden: f32s(c.n_ff)?,
            hidden_q8: q8(c.n_ff)?,
            logits: f32s(c.vocab_size)?,
            workspace: dev
                .alloc_zeros::<f32>(attention_decode::workspace_len(&shape))
                .map_err(TensorError::Hip)?,
            step: StepScalars::new(ops)?,
        };
        Ok(DecodeGraph {
            exec: None,
            eager_only: false,
            key,
            b,
        })
    }

    /// Captures the step's launches and instantiates them; on failure the step stays eager.
    fn capture(&mut self, ops: &HipOps, m: &Model, cache: &mut KvCache) {
        self.eager_only = true; // cleared below when the graph is instantiated
        if let Err(e) = ops.begin_capture() {
            tracing::warn!(error = %e, "decode graph: capture unavailable, decoding eagerly");
            return;
        }
        let recorded = self.record(ops, m, cache);
        let graph = ops.end_capture();
        match (recorded, graph) {
            (Ok(()), Ok(exec)) => {
                self.exec = Some(exec);
                self.eager_only = false;
            }
            (Err(e), _) => tracing::warn!(error = %e, "decode graph: capture failed"),
            (_, Err(e)) => tracing::warn!(error = %e, "decode graph: instantiation failed"),
        }
    }

    /// Queues every launch of one step on the ops' stream (run, or captured).
    fn record(&mut self, ops: &HipOps, m: &Model, cache: &mut KvCache) -> ModelResult<()> {
        let (c, w) = (&m.plan.config, &m.weights);
        let b = &mut self.b;
        let [token, position, row, len] = b.step.buffers() else {
            return Err(ModelError::InvalidInput(
                "decode graph: step scalars missing".to_string(),
            ));
        };
        embedding::embedding_at(
            ops,
            dev("token_embd", w.embedding.device())?,
            token,
            1,
            &mut b.x,
        )?;
        let shape = attention_shape(c, cache.capacity());
        let qkv = QkvShape {
            n_tokens: 1,
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
        };
        let scale = 1.0 / (c.head_dim as f32).sqrt();
        for (il, l) in w.layers.iter().enumerate() {
            let res = (il > 0).then_some(&b.proj);
            norm::add_rms_norm_q8_1(
                ops,
                &mut b.x,
                res,
                dev("attn_norm", l.norm1.device())?,
                c.rms_eps,
                &mut b.normed,
                &mut b.normed_q8,
            )?;
            project(ops, &l.q, &b.normed, &b.normed_q8, &mut b.q)?;
            project(ops, &l.k, &b.normed, &b.normed_q8, &mut b.k)?;
            project(ops, &l.v, &b.normed, &b.normed_q8, &mut b.v)?;
            let kc = cache.k[il].hip_mut("decode graph")?;
            let vc = cache.v[il].hip_mut("decode graph")?;
            rope_qk_kv_append(
                ops, &mut b.q, &b.k, &b.v, kc, vc, position, row, &qkv, &m.rope,
            )?;
            attention_decode::attention_decode(
                ops,
                &b.q,
                kc,
                vc,
                len,
                &shape,
                scale,
                &mut b.workspace,
                &mut b.attn,
            )?;
            if dev("attn_output", l.o.device())?.dtype().is_quantized() {
                b.attn_q8.quantize(ops, &b.attn)?;
            }
            project(ops, &l.o, &b.attn, &b.attn_q8, &mut b.proj)?;
            norm::add_rms_norm_q8_1(
                ops,
                &mut b.x,
                Some(&b.proj),
                dev("ffn_norm", l.norm2.device())?,
                c.rms_eps,
                &mut b.normed,
                &mut b.normed_q8,
            )?;
            project(ops, &l.gate, &b.normed, &b.normed_q8, &mut b.gate)?;
            project(ops, &l.up, &b.normed, &b.normed_q8, &mut b.up)?;
            elementwise::silu_mul_q8_1(ops, &b.gate, &b.up, &mut b.hidden, &mut b.hidden_q8)?;
            project(ops, &l.down, &b.hidden, &b.hidden_q8, &mut b.proj)?;
        }
        let res = (!w.layers.is_empty()).then_some(&b.proj);
        norm::add_rms_norm_q8_1(
            ops,
            &mut b.x,
            res,
            dev("output_norm", w.output_norm.device())?,
            c.rms_eps,
            &mut b.normed,
            &mut b.normed_q8,
        )?;
        project(ops, &w.lm_head, &b.normed, &b.normed_q8, &mut b.logits)?;
        Ok(())
    }
}

fn attention_shape(c: &ModelConfig, capacity: usize) -> DecodeAttentionShape {
    DecodeAttentionShape {
        n_heads: c.n_heads,
        n_kv_heads: c.n_kv_heads,
        head_dim: c.head_dim,
        capacity,
    }
}

/// `out = x · wᵀ` for one token: quantized weights read the q8_1 activations `x_q8` (already
/// written by the producer), F32 weights the f32 activations `x`.
fn project(
    ops: &HipOps,
    w: &Mat,
    x: &DeviceTensor,
    x_q8: &Q8_1Act,
    out: &mut DeviceTensor,
) -> ModelResult<()> {
    const OP: &str = "decode projection";
    let w = dev(OP, w.device())?;
    let wb = w.bytes_buffer().ok_or_else(|| TensorError::Backend {
        op: OP,
        what: "GPU weights must be uploaded as raw bytes".to_string(),
    })?;
    let (ty, rows, cols) = (w.dtype(), w.rows(), w.cols());
    let ob = out.f32_buffer_mut(OP)?;
    ops.with_matmul(|ctx, stream| {
        if ty.is_quantized() {
            matmul::matmul_q8_1(ctx, wb, ty, rows, cols, x_q8.buffer(), 1, ob, stream)
        } else {
            matmul::matmul(ctx, wb, ty, rows, cols, x.f32_buffer(OP)?, 1, ob, stream)
        }
    })?;
    Ok(())
}
