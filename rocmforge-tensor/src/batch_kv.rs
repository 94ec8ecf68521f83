//! A ragged batch's paged KV caches: [`BatchKv`] says, for one batched step, which rows of the
//! batch belong to which sequence, that sequence's block table in the [`KvPool`] and where its
//! new tokens go. Built once per step; then [`rope_kv_append_batch`] (or [`kv_append_batch`])
//! and [`attention_batch`] run each layer's KV append and attention for the whole batch, every
//! read and write going through the block tables.
//!
//! On a GPU the biases + RoPE + append is one launch for every row of the batch, and the
//! attention of every decoding sequence (one new token) is split over its keys
//! (`attention_rows_split_f16`: one launch for all of them, combined in it, each query reading its
//! own cache through its block table, uploaded once per step); prefill chunks take the tiled
//! flash-attention kernel per chunk (`attention_prefill_paged_f16_hd<D>`). On the CPU each
//! sequence runs the row ops in turn over [`KvPool::rows`].

use crate::backend::Backend;
use crate::cpu::{self, AttentionParams, RopeParams};
use crate::error::{TensorError, TensorResult};
use crate::hip;
use crate::kv_pool::{KV_BLOCK_TOKENS, KvPool};
use crate::ops;
use crate::tensor::{Ids, Tensor};

/// One sequence's part of a batch: its block table (block ids of the pool in position order,
/// covering at least `start + n` tokens), its rows `row..row + n` of the batch, and the
/// position `start` that its first new token takes.
#[derive(Debug, Clone, Copy)]
pub struct SeqKv<'a> {
    /// The sequence's block table.
    pub blocks: &'a [u32],
    /// First batch row of the sequence.
    pub row: usize,
    /// Its number of new tokens (rows).
    pub n: usize,
    /// Tokens already in its cache (the first new token's position).
    pub start: usize,
}

/// Attention shape shared by every sequence of a batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HeadShape {
    /// Query heads.
    pub n_heads: usize,
    /// KV heads (a divisor of `n_heads`).
    pub n_kv_heads: usize,
    /// Dimension of a head.
    pub head_dim: usize,
    /// Score scale (usually `1 / sqrt(head_dim)`).
    pub scale: f32,
    /// Sliding window of this layer's attention (see [`AttentionParams::window`]); `None`
    /// attends over every earlier key.
    pub window: Option<usize>,
}

impl HeadShape {
    /// The attention sizes of sequence `s` (its new tokens over all its tokens).
    pub fn params(&self, s: &SeqKv<'_>) -> AttentionParams {
        AttentionParams {
            n_q_tokens: s.n,
            n_kv_tokens: s.start + s.n,
            n_heads: self.n_heads,
            n_kv_heads: self.n_kv_heads,
            head_dim: self.head_dim,
            scale: self.scale,
            window: self.window,
        }
    }
}

/// Reusable device memory for the address tables of [`BatchKv`] (GPU; nothing on the CPU):
/// keep one per stream of batched steps so that no step allocates.
#[derive(Debug, Default)]
pub struct KvTableBuffers {
    hip: Option<hip::batch_kv::TableBuffers>,
}

/// The sequences of one batched step, the pool holding their blocks and, on a GPU, the
/// address tables of their blocks and new rows (in the [`KvTableBuffers`] it borrows).
#[derive(Debug)]
pub struct BatchKv<'a> {
    pool: &'a mut KvPool,
    seqs: Vec<SeqKv<'a>>,
    n_rows: usize,
    tables: Option<hip::batch_kv::KvTables>,
    _buffers: std::marker::PhantomData<&'a mut KvTableBuffers>,
}

fn shape_err(what: String) -> TensorError {
    TensorError::Shape {
        op: "batch_kv",
        what,
    }
}

impl<'a> BatchKv<'a> {
    /// Checks the sequences (contiguous rows from 0; block tables of blocks in use, covering
    /// their tokens, and not shared where the new tokens go) and, on a GPU, uploads the step's
    /// tables.
    pub fn new(
        be: &Backend,
        pool: &'a mut KvPool,
        seqs: Vec<SeqKv<'a>>,
        buffers: &'a mut KvTableBuffers,
    ) -> TensorResult<Self> {
        let mut next_row = 0;
        for (i, s) in seqs.iter().enumerate() {
            if s.row != next_row || s.n == 0 {
                return Err(shape_err(format!(
                    "sequence {i} takes rows {}..+{} (expected from row {next_row}, at least one)",
                    s.row, s.n
                )));
            }
            next_row += s.n;
            let end = s.start.checked_add(s.n);
            if end.is_none_or(|e| e > s.blocks.len() * KV_BLOCK_TOKENS) {
                return Err(shape_err(format!(
                    "sequence {i}: positions {}..+{} beyond its {} blocks",
                    s.start,
                    s.n,
                    s.blocks.len()
                )));
            }
            pool.check_blocks(s.blocks)?;
            let written = s.start / KV_BLOCK_TOKENS..(s.start + s.n).div_ceil(KV_BLOCK_TOKENS);
            if let Some(b) = s.blocks[written].iter().find(|&&b| pool.refcount(b) > 1) {
                return Err(shape_err(format!(
                    "sequence {i} would write into block {b}, which other sequences share"
                )));
            }
        }
        let tables = match be {
            Backend::Cpu => None,
            Backend::Hip(ops) => Some(hip::batch_kv::KvTables::new(
                ops,
                pool,
                &seqs,
                &mut buffers.hip,
            )?),
        };
        Ok(BatchKv {
            pool,
            seqs,
            n_rows: next_row,
            tables,
            _buffers: std::marker::PhantomData,
        })
    }

    /// Rows of the batch.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    /// The sequences.
    pub fn seqs(&self) -> &[SeqKv<'a>] {
        &self.seqs
    }

    /// What a captured step bakes into its launches besides the tables' contents: the tables'
    /// device addresses and the block tables' stride (GPU; `None` on the CPU). A step captured
    /// under another key must be captured again.
    pub fn graph_key(&self) -> Option<(u64, u64, usize)> {
        self.tables.as_ref().map(|t| t.graph_key())
    }

    fn check_layer(&self, layer: usize) -> TensorResult<()> {
        if layer < self.pool.n_layers() {
            Ok(())
        } else {
            Err(shape_err(format!(
                "layer {layer} of {}",
                self.pool.n_layers()
            )))
        }
    }
}

/// Writes the batch's keys `k` and values `v` (F32 `[n_rows][kv_dim]`) into every sequence's
/// layer-`layer` caches at its rows `start..start + n`, rounded to f16.
pub fn kv_append_batch(
    be: &Backend,
    layer: usize,
    k: &Tensor,
    v: &Tensor,
    kv: &mut BatchKv<'_>,
) -> TensorResult<()> {
    kv.check_layer(layer)?;
    match (be, &kv.tables) {
        (Backend::Hip(ops), Some(tables)) => {
            let (kd, vd) = (k.hip("kv_append_batch")?, v.hip("kv_append_batch")?);
            tables.append(ops, layer, kd, vd, kv.n_rows)
        }
        _ => append_cpu(layer, k, v, kv),
    }
}

/// The CPU body of [`kv_append_batch`]: each row rounded to f16 into its block.
fn append_cpu(layer: usize, k: &Tensor, v: &Tensor, kv: &mut BatchKv<'_>) -> TensorResult<()> {
    const OP: &str = "kv_append_batch";
    let width = kv.pool.width();
    for (src, value) in [(k, false), (v, true)] {
        let src = src.cpu_f32(OP)?;
        if src.len() != kv.n_rows * width {
            return Err(shape_err(format!(
                "{} values for {} rows of {width}",
                src.len(),
                kv.n_rows
            )));
        }
        for s in &kv.seqs {
            for i in 0..s.n {
                let (c, r) = kv.pool.row_of(s.blocks, layer, value, s.start + i)?;
                let chunk = kv.pool.chunk_tensor_mut(c)?.cpu_f16_mut(OP)?;
                let from = &src[(s.row + i) * width..(s.row + i + 1) * width];
                for (d, &x) in chunk[r * width..(r + 1) * width].iter_mut().zip(from) {
                    *d = half::f16::from_f32(x);
                }
            }
        }
    }
    Ok(())
}

/// The attention prologue of a batch: `q`, `k` and `v` (F32 `[n_rows][..]`) plus their biases
/// (`bias[0..3]`, each `[width]` or absent), RoPE on q and k at each row's position, and k and
/// v written into every sequence's layer-`layer` caches at its rows `start..start + n`, rounded
/// to f16. `freq_factors` (F32 `[n_rot / 2]`, Phi-3's LongRoPE factors) divide each pair's
/// angle when given. One launch on a GPU (q is roped in place; k and v are left as they are);
/// on the CPU the steps run one after the other on `q`, `k` and `v` in place.
#[allow(clippy::too_many_arguments)]
pub fn rope_kv_append_batch(
    be: &Backend,
    layer: usize,
    q: &mut Tensor,
    k: &mut Tensor,
    v: &mut Tensor,
    bias: [Option<&Tensor>; 3],
    shape: &HeadShape,
    positions: &Ids,
    rope: &RopeParams,
    freq_factors: Option<&Tensor>,
    kv: &mut BatchKv<'_>,
) -> TensorResult<()> {
    const OP: &str = "rope_kv_append_batch";
    kv.check_layer(layer)?;
    match (be, &kv.tables, positions) {
        (Backend::Hip(ops), Some(tables), Ids::Hip(pos)) => {
            let bias = [
                bias[0].map(|b| b.hip(OP)).transpose()?,
                bias[1].map(|b| b.hip(OP)).transpose()?,
                bias[2].map(|b| b.hip(OP)).transpose()?,
            ];
            tables.rope_append(
                ops,
                layer,
                q.hip_mut(OP)?,
                k.hip(OP)?,
                v.hip(OP)?,
                bias,
                shape,
                pos,
                rope,
                freq_factors.map(|f| f.hip(OP)).transpose()?,
            )
        }
        (Backend::Cpu, None, Ids::Cpu(_)) => {
            for (t, b) in [&mut *q, &mut *k, &mut *v].into_iter().zip(bias) {
                if let Some(b) = b {
                    let b = b.cpu_f32(OP)?;
                    let t = t.cpu_f32_mut(OP)?;
                    if b.is_empty() || t.len() % b.len() != 0 {
                        return Err(shape_err(format!(
                            "a bias of {} for rows of {} values",
                            b.len(),
                            t.len()
                        )));
                    }
                    for row in t.chunks_exact_mut(b.len()) {
                        for (x, y) in row.iter_mut().zip(b) {
                            *x += y;
                        }
                    }
                }
            }
            let (nh, nkv, hd) = (shape.n_heads, shape.n_kv_heads, shape.head_dim);
            ops::rope_positions(be, q, nh, hd, positions, rope, freq_factors)?;
            ops::rope_positions(be, k, nkv, hd, positions, rope, freq_factors)?;
            kv_append_batch(be, layer, k, v, kv)
        }
        _ => Err(TensorError::Backend {
            op: OP,
            what: "tensors, tables and positions of different backends".to_string(),
        }),
    }
}

/// Causal attention of every row of `q` (F32 `[n_rows][n_heads * head_dim]`) over its own
/// sequence's layer-`layer` caches (its earlier tokens and itself, or with `shape.window` the
/// last `window` of them), into the same rows of `out`. `sinks` (F32 `[n_heads]`, gpt-oss's
/// `attn_sinks`) joins each head's softmax denominators.
pub fn attention_batch(
    be: &Backend,
    layer: usize,
    q: &Tensor,
    kv: &BatchKv<'_>,
    shape: &HeadShape,
    sinks: Option<&Tensor>,
    out: &mut Tensor,
) -> TensorResult<()> {
    kv.check_layer(layer)?;
    let width = shape.n_heads * shape.head_dim;
    if q.n_elements() != kv.n_rows * width || out.n_elements() != kv.n_rows * width {
        return Err(shape_err(format!(
            "q {:?} / out {:?} for {} rows of {width}",
            q.shape(),
            out.shape(),
            kv.n_rows
        )));
    }
    match (be, &kv.tables) {
        (Backend::Hip(ops), Some(tables)) => {
            let (qd, od) = (q.hip("attention_batch")?, out.hip_mut("attention_batch")?);
            let sinks_d = sinks.map(|s| s.hip("attention_batch")).transpose()?;
            tables.attention(ops, &kv.seqs, layer, qd, shape, sinks_d, od)
        }
        _ => {
            const OP: &str = "attention_batch";
            let qs = q.cpu_f32(OP)?;
            let sinks = sinks.map(|s| s.cpu_f32(OP)).transpose()?;
            if sinks.is_some_and(|s| s.len() != shape.n_heads) {
                return Err(shape_err(format!("sinks for {} heads", shape.n_heads)));
            }
            let o = out.cpu_f32_mut(OP)?;
            for s in kv.seqs.iter() {
                let p = shape.params(s);
                if p.n_kv_heads * p.head_dim != kv.pool.width()
                    || p.n_kv_heads == 0
                    || p.n_heads % p.n_kv_heads != 0
                {
                    return Err(shape_err(format!(
                        "{shape:?} over KV rows of {}",
                        kv.pool.width()
                    )));
                }
                let rows = kv.pool.rows(s.blocks, layer)?;
                let range = s.row * width..(s.row + s.n) * width;
                cpu::attention_over(&qs[range.clone()], &rows, &p, sinks, &mut o[range]);
            }
            Ok(())
        }
    }
}
