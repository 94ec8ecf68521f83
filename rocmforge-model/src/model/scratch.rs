//! Activation buffers of one forward call, on the model's backend, kept between calls of the
//! same batch size (every decode step of one batch size reuses one set: no allocation per token).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use rocmforge_gguf::GgmlType;
use rocmforge_tensor::{Backend, Ids, KvTableBuffers, Tensor};

use crate::config::ModelConfig;
use crate::error::ModelResult;

/// The model-wide switch of the captured decode steps.
#[derive(Debug)]
pub(crate) struct GraphSwitch {
    enabled: AtomicBool,
    replayed: AtomicBool,
    /// Decode-only steps captured, replayed, and run launch by launch (GPU).
    captured: AtomicU64,
    replays: AtomicU64,
    eager: AtomicU64,
}

/// How a model's decode-only steps ran (GPU; all zero on the CPU): captured as a graph,
/// replayed from one, or launched op by op (the first step of a batch size, a size whose
/// capture failed, graphs off).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecodeGraphStats {
    pub captured: u64,
    pub replayed: u64,
    pub eager: u64,
}

impl Default for GraphSwitch {
    /// Enabled unless `ROCMFORGE_DECODE_GRAPH=0`.
    fn default() -> Self {
        let off = std::env::var("ROCMFORGE_DECODE_GRAPH").is_ok_and(|v| v == "0");
        GraphSwitch {
            enabled: AtomicBool::new(!off),
            replayed: AtomicBool::new(false),
            captured: AtomicU64::new(0),
            replays: AtomicU64::new(0),
            eager: AtomicU64::new(0),
        }
    }
}

impl GraphSwitch {
    pub fn set_enabled(&self, on: bool) {
        self.enabled.store(on, Ordering::Relaxed);
    }

    pub fn enabled(&self) -> bool {
        self.enabled.load(Ordering::Relaxed)
    }

    /// Records whether the last decode-only step replayed a graph.
    pub fn set_replayed(&self, replayed: bool) {
        self.replayed.store(replayed, Ordering::Relaxed);
    }

    pub fn replayed(&self) -> bool {
        self.replayed.load(Ordering::Relaxed)
    }

    /// Counts a decode-only step that was captured (and run), replayed, or run eagerly.
    pub fn count(&self, how: GraphRun) {
        let counter = match how {
            GraphRun::Captured => &self.captured,
            GraphRun::Replayed => &self.replays,
            GraphRun::Eager => &self.eager,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> DecodeGraphStats {
        DecodeGraphStats {
            captured: self.captured.load(Ordering::Relaxed),
            replayed: self.replays.load(Ordering::Relaxed),
            eager: self.eager.load(Ordering::Relaxed),
        }
    }
}

/// How one decode-only step ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GraphRun {
    Captured,
    Replayed,
    Eager,
}

/// Where the batched decode graph of a scratch stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum GraphState {
    /// No decode-only step has run with this scratch.
    Cold,
    /// One ran eagerly (buffers allocated): the next one is captured.
    Warm,
    /// Captured: decode-only steps replay it.
    Ready,
    /// Capture failed: decode-only steps run eagerly.
    Failed,
}

/// The captured decode-only step of one batch size.
#[derive(Debug)]
pub(crate) struct StepGraph {
    pub state: GraphState,
    pub exec: Option<rocmforge_hip::HipGraphExec>,
    /// `rocmforge_tensor::hip::scratch_generation()` when `exec` was captured.
    pub generation: u64,
    /// The KV tables' [`rocmforge_tensor::BatchKv::graph_key`] when `exec` was captured.
    pub kv_key: Option<(u64, u64, usize)>,
}

/// Activations for a batch of `n` tokens.
#[derive(Debug)]
pub(crate) struct Scratch {
    /// The recorded decode-only step. Declared first: dropped (its replays waited for) before
    /// the buffers it reads.
    pub graph: StepGraph,
    pub n: usize,
    /// Position ids of the batch, uploaded once per call and read by every RoPE.
    pub positions: Ids,
    /// Token ids of the batch, uploaded once per call (read by the embedding).
    pub tokens: Ids,
    pub x: Tensor,
    pub normed: Tensor,
    pub q: Tensor,
    pub k: Tensor,
    pub v: Tensor,
    pub q_tmp: Tensor,
    pub k_tmp: Tensor,
    pub attn: Tensor,
    pub proj: Tensor,
    pub proj_tmp: Tensor,
    pub gate: Tensor,
    pub up: Tensor,
    pub hidden: Tensor,
    /// The argmax ids of the wanted rows of a greedy step (read back instead of logits).
    pub out_ids: Ids,
    /// `[n][vocab]` logits when every row's are wanted (allocated on first such call).
    pub logits: Option<Tensor>,
    /// The KV address tables of a step (reused: no allocation per step).
    pub kv_tables: KvTableBuffers,
    /// The mixture-of-experts activations (MoE architectures only).
    pub moe: Option<MoeScratch>,
    /// Whether this step's RoPE takes the long LongRoPE factors (a sequence's context is
    /// beyond the original one) rather than the short ones.
    pub rope_long: bool,
}

/// Activations of a mixture-of-experts feed-forward over `n` tokens, `k` experts each.
#[derive(Debug)]
pub(crate) struct MoeScratch {
    /// Router logits `[n][n_expert]`.
    pub logits: Tensor,
    /// Chosen expert ids `[n * k]`, where the backend reads them.
    pub ids: Ids,
    /// Their routing weights `[n][k]`.
    pub weights: Tensor,
    /// Expert gate, up and SwiGLU outputs `[n * k][n_ff_exp]`.
    pub gate: Tensor,
    pub up: Tensor,
    pub hidden: Tensor,
    /// Expert down projections `[n * k][n_embd]`.
    pub down: Tensor,
}

impl Scratch {
    /// Bytes a set for `n` tokens takes (biases aside), with the LM head's output rows.
    pub fn bytes(c: &ModelConfig, n: usize) -> usize {
        let per_row = 4 * c.n_embd
            + 2 * c.q_dim()
            + 2 * c.k_dim()
            + c.v_dim()
            + c.n_heads * c.head_dim_v
            + 3 * c.n_ff
            + c.vocab_size
            + c.moe.map_or(0, |m| {
                m.n_expert + m.n_expert_used * (2 + 3 * m.n_ff_exp + c.n_embd)
            });
        n.saturating_mul(per_row).saturating_mul(4)
    }

    pub fn new(be: &Backend, c: &ModelConfig, n: usize) -> ModelResult<Self> {
        let z = |cols: usize| be.zeros(GgmlType::F32, vec![n, cols]);
        Ok(Scratch {
            graph: StepGraph {
                state: GraphState::Cold,
                exec: None,
                generation: 0,
                kv_key: None,
            },
            n,
            positions: be.ids(&vec![0; n])?,
            tokens: be.ids(&vec![0; n])?,
            x: z(c.n_embd)?,
            normed: z(c.n_embd)?,
            q: z(c.q_dim())?,
            k: z(c.k_dim())?,
            v: z(c.v_dim())?,
            q_tmp: z(c.q_dim())?,
            k_tmp: z(c.k_dim())?,
            attn: z(c.n_heads * c.head_dim_v)?,
            proj: z(c.n_embd)?,
            proj_tmp: z(c.n_embd)?,
            gate: z(c.n_ff)?,
            up: z(c.n_ff)?,
            hidden: z(c.n_ff)?,
            out_ids: be.ids(&vec![0; n])?,
            logits: None,
            kv_tables: KvTableBuffers::default(),
            moe: c
                .moe
                .map(|m| -> ModelResult<MoeScratch> {
                    let slots = n * m.n_expert_used;
                    let zs = |cols: usize| be.zeros(GgmlType::F32, vec![slots, cols]);
                    Ok(MoeScratch {
                        logits: z(m.n_expert)?,
                        ids: be.ids(&vec![0; slots])?,
                        weights: z(m.n_expert_used)?,
                        gate: zs(m.n_ff_exp)?,
                        up: zs(m.n_ff_exp)?,
                        hidden: zs(m.n_ff_exp)?,
                        down: zs(c.n_embd)?,
                    })
                })
                .transpose()?,
            rope_long: false,
        })
    }
}
