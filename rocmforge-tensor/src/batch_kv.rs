//! A ragged batch's KV caches: [`BatchKv`] says, for one batched step, which rows of the batch
//! belong to which sequence and where in that sequence's per-layer caches they go. Built once
//! per step; then [`rope_kv_append_batch`] (or [`kv_append_batch`]) and [`attention_batch`] run
//! each layer's KV append and attention for the whole batch.
//!
//! On a GPU the biases + RoPE + append is one launch for every row of the batch, and the
//! attention of every decoding sequence (one new token) is split over its keys
//! (`attention_rows_split_f16` + combine: two launches for all of them, each query reading its
//! own cache through an address table uploaded once per step); prefill chunks take the tiled
//! flash-attention kernel per chunk. On the CPU each sequence runs the row ops in turn.

use rocmforge_gguf::GgmlType;

use crate::backend::Backend;
use crate::cpu::{AttentionParams, RopeParams};
use crate::error::{TensorError, TensorResult};
use crate::hip;
use crate::ops;
use crate::tensor::{Ids, Tensor};

/// One sequence's part of a batch: its caches (one K and one V tensor per layer, F16
/// `[capacity][kv_dim]`), its rows `row..row + n` of the batch, and the cache row `start` that
/// its first new token takes.
#[derive(Debug)]
pub struct SeqKv<'a> {
    /// K cache of every layer.
    pub k: &'a mut [Tensor],
    /// V cache of every layer.
    pub v: &'a mut [Tensor],
    /// First batch row of the sequence.
    pub row: usize,
    /// Its number of new tokens (rows).
    pub n: usize,
    /// Tokens already in its cache (the first new token's cache row).
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

/// Reusable device memory for the address tables of [`BatchKv`] (GPU; nothing on the CPU):
/// keep one per stream of batched steps so that no step allocates.
#[derive(Debug, Default)]
pub struct KvTableBuffers {
    hip: Option<hip::batch_kv::TableBuffers>,
}

/// The sequences of one batched step and, on a GPU, the address tables of their cache rows
/// (in the [`KvTableBuffers`] it borrows).
#[derive(Debug)]
pub struct BatchKv<'a> {
    seqs: Vec<SeqKv<'a>>,
    n_rows: usize,
    n_layers: usize,
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
    /// Checks the sequences (contiguous rows from 0, caches of `n_layers` layers with room for
    /// their tokens) and, on a GPU, uploads the address tables of the step.
    pub fn new(
        be: &Backend,
        seqs: Vec<SeqKv<'a>>,
        n_layers: usize,
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
            if s.k.len() != n_layers || s.v.len() != n_layers {
                return Err(shape_err(format!(
                    "sequence {i} has {} K and {} V layers, the model {n_layers}",
                    s.k.len(),
                    s.v.len()
                )));
            }
            for t in s.k.iter().chain(s.v.iter()) {
                let capacity = t.shape().first().copied().unwrap_or(0);
                if t.dtype() != GgmlType::F16
                    || s.start.checked_add(s.n).is_none_or(|e| e > capacity)
                {
                    return Err(shape_err(format!(
                        "sequence {i}: rows {}..+{} of a {} cache {:?}",
                        s.start,
                        s.n,
                        t.dtype(),
                        t.shape()
                    )));
                }
            }
        }
        let tables = match be {
            Backend::Cpu => None,
            Backend::Hip(ops) => Some(hip::batch_kv::KvTables::new(
                ops,
                &seqs,
                n_layers,
                &mut buffers.hip,
            )?),
        };
        Ok(BatchKv {
            seqs,
            n_rows: next_row,
            n_layers,
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

    fn check_layer(&self, layer: usize) -> TensorResult<()> {
        if layer < self.n_layers {
            Ok(())
        } else {
            Err(shape_err(format!("layer {layer} of {}", self.n_layers)))
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
        _ => {
            for s in kv.seqs.iter_mut() {
                ops::kv_append_rows(be, k, s.row, s.n, &mut s.k[layer], s.start)?;
                ops::kv_append_rows(be, v, s.row, s.n, &mut s.v[layer], s.start)?;
            }
            Ok(())
        }
    }
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
    let params = |s: &SeqKv<'_>| AttentionParams {
        n_q_tokens: s.n,
        n_kv_tokens: s.start + s.n,
        n_heads: shape.n_heads,
        n_kv_heads: shape.n_kv_heads,
        head_dim: shape.head_dim,
        scale: shape.scale,
        window: shape.window,
    };
    match (be, &kv.tables) {
        (Backend::Hip(ops), Some(tables)) => {
            let (qd, od) = (q.hip("attention_batch")?, out.hip_mut("attention_batch")?);
            let sinks_d = sinks.map(|s| s.hip("attention_batch")).transpose()?;
            tables.attention_decode_rows(ops, layer, qd, shape, sinks_d, od)?;
            for s in kv.seqs.iter().filter(|s| s.n > 1) {
                hip::attention::attention_rows(
                    ops,
                    qd,
                    s.row,
                    s.k[layer].hip("attention_batch")?,
                    s.v[layer].hip("attention_batch")?,
                    &params(s),
                    sinks_d,
                    od,
                )?;
            }
            Ok(())
        }
        _ => {
            for s in kv.seqs.iter() {
                ops::attention_rows(
                    be,
                    q,
                    s.row,
                    &s.k[layer],
                    &s.v[layer],
                    &params(s),
                    sinks,
                    out,
                )?;
            }
            Ok(())
        }
    }
}
