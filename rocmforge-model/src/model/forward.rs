//! The forward pass, once for every backend: embedding → blocks → final norm → LM head on the
//! rows whose logits are wanted. A call runs a batch of segments (each its own sequence and KV
//! cache, one token when decoding or a chunk of a prompt): every projection runs once over all
//! the batch's rows; KV append and attention run once per layer for the whole batch, each row
//! over its own sequence's cache ([`BatchKv`]).

use std::sync::PoisonError;

use rocmforge_gguf::GgmlType;
use rocmforge_tensor::cpu::MatmulIdShape;
use rocmforge_tensor::{Backend, BatchKv, HeadShape, SeqKv, Tensor, ops};

use super::scratch::{GraphRun, GraphState, Scratch};
use super::{MatmulSite, Model};
use crate::batch::{Segment, StepRows};
use crate::error::{ModelError, ModelResult};
use crate::forward::LogitsFor;
use crate::kv_cache::{self, KvCache};
use crate::weights::{Ffn, LayerWeights, Mat, MoeBias, Vector};

/// gpt-oss's clamped SwiGLU (llama.cpp's `LLM_FFN_SWIGLU_OAI_MOE`): sigmoid slope and clamp.
const SWIGLU_OAI_ALPHA: f32 = 1.702;
const SWIGLU_OAI_LIMIT: f32 = 7.0;

/// What a step returns for its wanted rows.
pub(super) enum Want<'a> {
    /// `[rows][vocab]` logits.
    Logits,
    /// The argmax id of each row (computed on the backend).
    Argmax,
    /// `[rows][n_embd]` final-normed hidden states of every row (no LM head).
    Hidden,
    /// The sampling op's id for each row (its input row by row, asked for once the forward is
    /// queued), and for the rows marked raw their raw logits too.
    Sample(&'a mut dyn StepRows),
}

/// A step's result for its wanted rows.
pub(super) enum RowsOut {
    Logits(Vec<f32>),
    Ids(Vec<u32>),
    /// Sampled ids (with the rows the host finished), and the raw logits of the rows that
    /// asked for them.
    Sampled(rocmforge_tensor::ops::Sampled, Vec<Option<Vec<f32>>>),
}

impl RowsOut {
    /// The logits (none for an id result, which only `Want::Argmax` or `Want::Sample` gives).
    fn into_logits(self) -> Vec<f32> {
        match self {
            RowsOut::Logits(l) => l,
            RowsOut::Ids(_) | RowsOut::Sampled(..) => Vec::new(),
        }
    }
}

/// Where a block finds its input: normed in `s.normed`, or the residual stream `s.x` that
/// the block norms itself inside its first matmul.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Input {
    Normed,
    Residual,
}

/// Rows added to a decode-only step to reach its bucket size, and the KV block they use.
#[derive(Debug, Clone, Copy)]
struct Padding {
    rows: usize,
    block: u32,
}

/// One sequence's rows in a forward call: rows `row..row + n` of the batch, and its cache.
struct SeqRows<'a> {
    cache: &'a mut KvCache,
    row: usize,
    n: usize,
}

impl Model {
    /// Runs `tokens` at positions `start_pos..` (which must equal `cache.len()`), appends their
    /// keys and values to `cache`, and returns `[n][vocab]` logits for the positions `which`
    /// selects.
    pub fn forward(
        &self,
        cache: &mut KvCache,
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
            tracing::debug_span!("decode", tokens = n, pos = start_pos)
        } else {
            tracing::debug_span!("prefill", tokens = n, pos = start_pos)
        };
        let _entered = span.enter();
        let positions = self.positions(start_pos, n)?;
        let out_rows: Vec<u32> = (first_out as u32..n as u32).collect();
        let mut seqs = [SeqRows { cache, row: 0, n }];
        self.run(tokens, &positions, &mut seqs, &out_rows, Want::Logits)
            .map(RowsOut::into_logits)
    }

    /// One step over a batch of segments: every segment's tokens run together, each appended
    /// to its own cache; returns, per segment, the logits `[vocab]` of its last token when
    /// `want_logits` is set. Each sequence's result is that of running it alone (the ops are
    /// row-independent).
    pub fn forward_batch(
        &self,
        segments: &mut [Segment<'_>],
    ) -> ModelResult<Vec<Option<Vec<f32>>>> {
        let out = self.batch(segments, Want::Logits)?.into_logits();
        let vocab = self.plan.config.vocab_size;
        let mut chunks = out.chunks_exact(vocab.max(1));
        Ok(segments
            .iter()
            .map(|seg| {
                seg.want_logits
                    .then(|| chunks.next().map(<[f32]>::to_vec))
                    .flatten()
            })
            .collect())
    }

    /// [`Model::forward_batch`] for greedy decoding: per segment with `want_logits`, the id of
    /// its last token's largest logit (first on ties), chosen on the backend — on a GPU only the
    /// ids are read back, not `[vocab]` logits per sequence.
    pub fn forward_batch_greedy(
        &self,
        segments: &mut [Segment<'_>],
    ) -> ModelResult<Vec<Option<u32>>> {
        let ids = match self.batch(segments, Want::Argmax)? {
            RowsOut::Ids(ids) => ids,
            RowsOut::Logits(_) | RowsOut::Sampled(..) => {
                return Err(ModelError::InvalidInput(
                    "the step gave logits where ids were asked".to_string(),
                ));
            }
        };
        let mut ids = ids.into_iter();
        Ok(segments
            .iter()
            .map(|seg| seg.want_logits.then(|| ids.next()).flatten())
            .collect())
    }

    /// Runs `tokens` at positions `cache.len()..`, appending their keys and values to `cache`,
    /// and returns the output-normed hidden state of every token, `[n][n_embd]` (the input of
    /// the LM head, which is not run): what embeddings are pooled from.
    pub fn forward_hidden(&self, cache: &mut KvCache, tokens: &[u32]) -> ModelResult<Vec<f32>> {
        let n = tokens.len();
        if n == 0 {
            return Err(ModelError::InvalidInput("no tokens to run".to_string()));
        }
        cache.check_room(n)?;
        let positions = self.positions(cache.len(), n)?;
        let mut seqs = [SeqRows { cache, row: 0, n }];
        self.run(tokens, &positions, &mut seqs, &[], Want::Hidden)
            .map(RowsOut::into_logits)
    }

    /// Runs the segments as one step; the wanted rows' logits or argmax ids, in segment order.
    pub(super) fn batch(
        &self,
        segments: &mut [Segment<'_>],
        want: Want<'_>,
    ) -> ModelResult<RowsOut> {
        if segments.is_empty() {
            return Ok(RowsOut::Ids(Vec::new()));
        }
        let mut tokens = Vec::new();
        let mut positions = Vec::new();
        let mut out_rows = Vec::new();
        for (i, seg) in segments.iter().enumerate() {
            if seg.tokens.is_empty() {
                return Err(ModelError::InvalidInput(format!(
                    "segment {i} of the batch has no tokens"
                )));
            }
            seg.cache.check_room(seg.tokens.len())?;
            tokens.extend_from_slice(seg.tokens);
            positions.extend(self.positions(seg.cache.len(), seg.tokens.len())?);
            if seg.want_logits {
                out_rows.push(u32::try_from(tokens.len() - 1).map_err(|_| {
                    ModelError::InvalidInput("a batch of over 2^32 tokens".to_string())
                })?);
            }
        }
        let _span =
            tracing::debug_span!("batch", sequences = segments.len(), tokens = tokens.len())
                .entered();
        let mut row = 0;
        let mut seqs: Vec<SeqRows<'_>> = segments
            .iter_mut()
            .map(|seg| {
                let n = seg.tokens.len();
                row += n;
                SeqRows {
                    cache: &mut *seg.cache,
                    row: row - n,
                    n,
                }
            })
            .collect();
        self.run(&tokens, &positions, &mut seqs, &out_rows, want)
    }

    /// The padding of a step of `n` rows over `seqs`: some for a decode-only step (one row
    /// per sequence) whose rows are all wanted in order, short of its bucket size, when
    /// padding and captured steps are on and the pool has a block for the padding rows.
    fn decode_padding(
        &self,
        n: usize,
        seqs: &[SeqRows<'_>],
        out_rows: &[u32],
        want: &Want<'_>,
    ) -> Option<Padding> {
        let rows = super::decode_bucket(n) - n;
        let shaped = rows > 0
            && !matches!(want, Want::Hidden)
            && seqs.len() == n
            && seqs.iter().all(|q| q.n == 1)
            && out_rows.len() == n
            && out_rows.iter().enumerate().all(|(i, &r)| r as usize == i);
        if !shaped
            || !self.pad_decode.load(std::sync::atomic::Ordering::Relaxed)
            || !self.graphs.enabled()
        {
            return None;
        }
        let block = self.padding_block(&mut kv_cache::lock(self.kv_pool()))?;
        Some(Padding { rows, block })
    }

    /// Position ids `start..start + n` (GLM-4's own scheme where it has one); beyond the
    /// 32-bit range is an error.
    pub(super) fn positions(&self, start: usize, n: usize) -> ModelResult<Vec<u32>> {
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

    /// Embedding, every block, final norm and LM head over the batch's rows; each sequence's
    /// keys and values go to its cache, which is then committed. Returns the logits of
    /// `out_rows` (`[out_rows.len()][vocab]`).
    fn run(
        &self,
        tokens: &[u32],
        positions: &[u32],
        seqs: &mut [SeqRows<'_>],
        out_rows: &[u32],
        want: Want<'_>,
    ) -> ModelResult<RowsOut> {
        // A decode-only step whose every row is wanted may be padded to its bucket size: the
        // padding rows run token 0 at position 0 in a block of their own, their results
        // dropped (row-independent ops: the real rows' results are unchanged).
        let padding = self.decode_padding(tokens.len(), seqs, out_rows, &want);
        let padded;
        let (tokens, positions) = match padding {
            Some(p) => {
                let n = tokens.len() + p.rows;
                let mut t = tokens.to_vec();
                t.resize(n, 0);
                let mut q = positions.to_vec();
                q.resize(n, 0);
                padded = (t, q);
                (&padded.0[..], &padded.1[..])
            }
            None => (tokens, positions),
        };
        let n = tokens.len();
        let mut s = {
            let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
            match pool.iter().position(|s| s.n == n) {
                Some(i) => pool.remove(i),
                None => {
                    // Full: the least recently used set goes, one without a captured decode
                    // graph first (mixed steps' sizes vary; a graph is worth keeping).
                    if pool.len() >= super::POOL_SIZES {
                        let victim = pool
                            .iter()
                            .position(|s| s.graph.state != GraphState::Ready)
                            .unwrap_or(0);
                        pool.remove(victim);
                    }
                    drop(pool);
                    Scratch::new(&self.backend, &self.plan.config, n)?
                }
            }
        };
        let result = self
            .check_and_set_inputs(&mut s, tokens, positions)
            .and_then(|()| {
                self.backend
                    .run_step(|| self.run_in(&mut s, seqs, out_rows, want, padding))
            });
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        pool.push(s);
        result
    }

    /// Checks the step's token ids against the vocabulary and uploads them and the positions.
    fn check_and_set_inputs(
        &self,
        s: &mut Scratch,
        tokens: &[u32],
        positions: &[u32],
    ) -> ModelResult<()> {
        let c = &self.plan.config;
        if let Some((index, &id)) = tokens
            .iter()
            .enumerate()
            .find(|(_, id)| **id as usize >= c.vocab_size)
        {
            return Err(rocmforge_tensor::TensorError::TokenOutOfRange {
                op: "forward",
                id,
                index,
                vocab: c.vocab_size,
            }
            .into());
        }
        s.positions.set(positions)?;
        s.tokens.set(tokens)?;
        Ok(())
    }

    fn run_in(
        &self,
        s: &mut Scratch,
        seqs: &mut [SeqRows<'_>],
        out_rows: &[u32],
        want: Want<'_>,
        padding: Option<Padding>,
    ) -> ModelResult<RowsOut> {
        let (be, c, w) = (&self.backend, &self.plan.config, &self.weights);
        let file = self.plan.loader().file();
        // LongRoPE takes its long factors when a sequence's context is beyond the original one
        // (llama.cpp: by the context of the sequence); a captured step is recaptured when the
        // choice changes.
        let rope_long = c.long_rope.is_some_and(|lr| {
            seqs.iter()
                .any(|q| q.cache.capacity() > lr.original_context)
        });
        if rope_long != s.rope_long {
            s.rope_long = rope_long;
            if s.graph.state == GraphState::Ready {
                s.graph.exec = None;
                s.graph.state = GraphState::Warm;
            }
        }
        let n_out = out_rows.len();
        let pad_rows = padding.map_or(0, |p| p.rows);
        let every_row =
            n_out + pad_rows == s.n && out_rows.iter().enumerate().all(|(i, &r)| r as usize == i);
        // A step of decoding sequences only, every row's logits wanted: on a GPU it is recorded
        // once per batch size as a graph and replayed (its inputs live in the scratch's device
        // buffers and the KV address tables, uploaded above and in BatchKv::new).
        let graphable = every_row
            && seqs.iter().all(|q| q.n == 1)
            && matches!(be, Backend::Hip(_))
            && self.graphs.enabled();
        let mut pool = kv_cache::lock(self.kv_pool());
        // Every sequence's blocks for its new tokens (new ones, private copies of shared ones)
        // before anything runs: out of blocks is an error with nothing computed.
        for seq in seqs.iter_mut() {
            seq.cache.reserve(&mut pool, seq.n)?;
        }
        // The wanted rows' final norm and LM head when the step does not compute every row's
        // logits: their buffers are made before the forward is queued (a zero fill waits for
        // the device), so that nothing waits for the forward before the sampling rows are
        // asked for.
        let vocab = c.vocab_size;
        let mut gather = if !every_row && n_out > 0 && !matches!(want, Want::Hidden) {
            Some((
                be.zeros(GgmlType::F32, vec![n_out, c.n_embd])?,
                be.zeros(GgmlType::F32, vec![n_out, c.n_embd])?,
                be.zeros(GgmlType::F32, vec![n_out, vocab])?,
            ))
        } else {
            None
        };
        let pad_table = [padding.map_or(0, |p| p.block)];
        let real_rows = s.n - pad_rows;
        let kv_seqs = seqs
            .iter()
            .map(|seq| SeqKv {
                start: seq.cache.len(),
                blocks: seq.cache.blocks(),
                row: seq.row,
                n: seq.n,
            })
            .chain((0..pad_rows).map(|k| SeqKv {
                start: 0,
                blocks: &pad_table,
                row: real_rows + k,
                n: 1,
            }))
            .collect();
        let mut tables = std::mem::take(&mut s.kv_tables);
        let ran = BatchKv::new(be, &mut pool, kv_seqs, &mut tables)
            .map_err(ModelError::from)
            .and_then(|mut kv| {
                if graphable {
                    self.run_graphed(s, &mut kv)
                } else {
                    self.record_step(s, &mut kv, every_row)
                }
            });
        s.kv_tables = tables;
        drop(pool);
        ran?;
        for seq in seqs.iter_mut() {
            seq.cache.commit(seq.n)?;
        }
        if matches!(want, Want::Hidden) {
            if w.layers.is_empty() {
                ops::rms_norm(be, &s.x, &w.output_norm.get(), c.rms_eps, &mut s.normed)?;
            }
            be.synchronize()?;
            return Ok(RowsOut::Logits(s.normed.rows_to_f32_vec(c.n_embd, 0, s.n)?));
        }
        if n_out == 0 {
            be.synchronize()?;
            return Ok(RowsOut::Ids(Vec::new()));
        }
        let logits = match gather.as_mut() {
            None => s
                .logits
                .as_ref()
                .ok_or_else(|| ModelError::InvalidInput("the step left no logits".to_string()))?,
            Some((rows, normed, logits)) => {
                ops::gather_rows(be, &s.x, c.n_embd, out_rows, rows)?;
                ops::rms_norm(be, rows, &w.output_norm.get(), c.rms_eps, normed)?;
                ops::matmul(be, &w.lm_head.get(file), normed, n_out, logits)?;
                if let Some(cap) = c.final_logit_softcap {
                    ops::softcap(be, logits, cap)?;
                }
                &*logits
            }
        };
        match want {
            Want::Logits => {
                be.synchronize()?;
                Ok(RowsOut::Logits(logits.rows_to_f32_vec(vocab, 0, n_out)?))
            }
            Want::Argmax | Want::Hidden => {
                ops::argmax_rows(be, logits, vocab, n_out, &mut s.out_ids)?;
                be.synchronize()?;
                Ok(RowsOut::Ids(s.out_ids.to_vec(n_out)?))
            }
            Want::Sample(source) => {
                let raw = source.raw().to_vec();
                // The forward is queued: the rows' host work (grammar masks) runs while the
                // device computes it.
                let rows = source.rows()?;
                if rows.len() != n_out || raw.len() != n_out {
                    return Err(ModelError::InvalidInput(format!(
                        "{} sampling rows and {} raw flags for {n_out} wanted rows",
                        rows.len(),
                        raw.len()
                    )));
                }
                let sampled = ops::sample_rows(be, logits, vocab, &rows, &mut s.out_ids)?;

                let raws = raw
                    .iter()
                    .enumerate()
                    .map(|(i, &r)| r.then(|| logits.rows_to_f32_vec(vocab, i, 1)).transpose())
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(RowsOut::Sampled(sampled, raws))
            }
        }
    }

    /// Queues a step's launches: embedding, every block, and with `every_row` the final norm
    /// and LM head of all rows into `s.logits` (rows wanted otherwise are done by the caller).
    fn record_step(
        &self,
        s: &mut Scratch,
        kv: &mut BatchKv<'_>,
        every_row: bool,
    ) -> ModelResult<()> {
        let (be, c, w) = (&self.backend, &self.plan.config, &self.weights);
        let file = self.plan.loader().file();
        ops::embedding_ids(be, &w.embedding.get(file), &s.tokens, &mut s.x)?;
        if let Some(f) = c.embd_scale {
            ops::scale(be, &mut s.x, f)?;
        }
        let observer = self
            .observer
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        // A block's input norm runs inside its first matmul where the block before ended in a
        // plain residual add (itself then inside that block's last matmul: `matmul_add`);
        // otherwise the residual add is fused with the norm that follows it (the MLP's, the
        // next block's, the output norm) and `s.normed` holds the next input. An observer
        // reads every block's normed input before the block runs, so it gets the latter.
        let fuse = observer.is_none() && self.fuse_residual;
        let mut input = Input::Residual;
        if !fuse && let Some(first) = w.layers.first() {
            ops::rms_norm(be, &s.x, &first.norm1.get(), c.rms_eps, &mut s.normed)?;
            input = Input::Normed;
        }
        let n = s.n;
        let see = |(il, site): (usize, MatmulSite), t: &Tensor, cols: usize| -> ModelResult<()> {
            if let Some(o) = &observer {
                be.synchronize()?;
                o.observe(il, site, &t.rows_to_f32_vec(cols, 0, n)?, cols, n);
            }
            Ok(())
        };
        for (il, layer) in w.layers.iter().enumerate() {
            see((il, MatmulSite::AttnIn), &s.normed, c.n_embd)?;
            input = self.attention_block(il, layer, kv, s, input, fuse)?;
            see((il, MatmulSite::AttnOut), &s.attn, c.n_heads * c.head_dim)?;
            see((il, MatmulSite::FfnIn), &s.normed, c.n_embd)?;
            let next_norm = match w.layers.get(il + 1) {
                Some(next) => (&next.norm1, fuse),
                None => (&w.output_norm, false),
            };
            input = self.mlp_block(layer, next_norm, s, input)?;
            if matches!(layer.ffn, Ffn::Dense { .. }) {
                see((il, MatmulSite::FfnDown), &s.hidden, c.n_ff)?;
            }
        }
        if every_row {
            if w.layers.is_empty() {
                ops::rms_norm(be, &s.x, &w.output_norm.get(), c.rms_eps, &mut s.normed)?;
            }
            let logits = match &mut s.logits {
                Some(l) => l,
                slot => slot.insert(be.zeros(GgmlType::F32, vec![s.n, c.vocab_size])?),
            };
            ops::matmul(be, &w.lm_head.get(file), &s.normed, s.n, logits)?;
            if let Some(cap) = c.final_logit_softcap {
                ops::softcap(be, logits, cap)?;
            }
        }
        Ok(())
    }

    /// [`Model::record_step`] of a decode-only step through the scratch's graph: the first step
    /// of a batch size runs eagerly (allocating what the launches need), the second is captured
    /// and replayed, later ones replay. A failed capture leaves that batch size eager.
    fn run_graphed(&self, s: &mut Scratch, kv: &mut BatchKv<'_>) -> ModelResult<()> {
        let Backend::Hip(ops) = &self.backend else {
            return self.record_step(s, kv, true);
        };
        let generation = rocmforge_tensor::hip::scratch_generation();
        let kv_key = kv.graph_key();
        if s.graph.state == GraphState::Ready
            && (s.graph.generation != generation || s.graph.kv_key != kv_key)
        {
            // A matmul scratch was reallocated since the capture, or the KV tables moved or
            // their block tables outgrew the captured stride: capture again.
            s.graph.exec = None;
            s.graph.state = GraphState::Warm;
        }
        let how = match s.graph.state {
            GraphState::Ready => GraphRun::Replayed,
            GraphState::Cold | GraphState::Failed => {
                self.graphs.set_replayed(false);
                self.graphs.count(GraphRun::Eager);
                self.record_step(s, kv, true)?;
                if s.graph.state == GraphState::Cold {
                    s.graph.state = GraphState::Warm;
                }
                return Ok(());
            }
            GraphState::Warm => {
                ops.begin_capture()?;
                let recorded = self.record_step(s, kv, true);
                match (recorded, ops.end_capture()) {
                    (Ok(()), Ok(exec))
                        if rocmforge_tensor::hip::scratch_generation() == generation =>
                    {
                        s.graph.exec = Some(exec);
                        s.graph.state = GraphState::Ready;
                        s.graph.generation = generation;
                        s.graph.kv_key = kv_key;
                        GraphRun::Captured
                    }
                    (recorded, ended) => {
                        let why = recorded.err().map(|e| e.to_string());
                        let why = why
                            .or(ended.err().map(|e| e.to_string()))
                            .or(Some("a matmul scratch grew during the capture".to_string()));
                        tracing::warn!(batch = s.n, error = ?why, "batched decode graph: capture failed, running eagerly");
                        s.graph.state = GraphState::Failed;
                        self.graphs.count(GraphRun::Eager);
                        return self.record_step(s, kv, true);
                    }
                }
            }
        };
        self.graphs.set_replayed(s.graph.exec.is_some());
        self.graphs.count(if s.graph.exec.is_some() {
            how
        } else {
            GraphRun::Eager
        });
        match &s.graph.exec {
            Some(exec) => Ok(ops.launch_graph(exec)?),
            None => self.record_step(s, kv, true),
        }
    }

    /// `t = rms_norm(t) * w` in place, through `tmp`.
    fn norm_in_place(&self, t: &mut Tensor, tmp: &mut Tensor, w: &Vector) -> ModelResult<()> {
        ops::rms_norm(&self.backend, t, &w.get(), self.plan.config.rms_eps, tmp)?;
        std::mem::swap(t, tmp);
        Ok(())
    }

    /// The attention block on `input`; returns how the MLP block gets its input.
    fn attention_block(
        &self,
        il: usize,
        l: &LayerWeights,
        kv: &mut BatchKv<'_>,
        s: &mut Scratch,
        input: Input,
        fuse: bool,
    ) -> ModelResult<Input> {
        let (be, c, n) = (&self.backend, &self.plan.config, s.n);
        let file = self.plan.loader().file();
        let (wq, wk, wv) = (l.q.get(file), l.k.get(file), l.v.get(file));
        let mut qkv = [(&wq, &mut s.q), (&wk, &mut s.k), (&wv, &mut s.v)];
        match input {
            Input::Normed => ops::matmul_many(be, &s.normed, n, &mut qkv)?,
            Input::Residual => ops::rms_norm_matmul_many(
                be,
                &s.x,
                &l.norm1.get(),
                c.rms_eps,
                &mut s.normed,
                n,
                &mut qkv,
            )?,
        }
        if let (Some(qn), Some(kn)) = (&l.q_norm, &l.k_norm) {
            // (Models with q/k norms have no q/k/v biases: checked at load.)
            self.norm_in_place(&mut s.q, &mut s.q_tmp, qn)?;
            self.norm_in_place(&mut s.k, &mut s.k_tmp, kn)?;
        }
        let window = c.layer_window(il);
        let shape = HeadShape {
            n_heads: c.n_heads,
            n_kv_heads: c.n_kv_heads,
            head_dim: c.head_dim,
            scale: c.attn_scale,
            window,
        };
        let rope = match (&self.rope_local, window) {
            (Some(local), Some(_)) => local,
            _ => &self.rope,
        };
        let [bq, bk, bv] = &l.bias;
        let freq_factors = self
            .weights
            .rope_factors
            .as_ref()
            .map(|f| f.pick(s.rope_long));
        ops::rope_kv_append_batch(
            be,
            il,
            &mut s.q,
            &mut s.k,
            &mut s.v,
            [bq.as_ref(), bk.as_ref(), bv.as_ref()],
            &shape,
            &s.positions,
            rope,
            freq_factors,
            kv,
        )?;
        if let Some(t) = c.attn_temperature {
            ops::attn_temperature(be, &mut s.q, &s.positions, c.q_dim(), t.scale, t.floor)?;
        }
        ops::attention_batch(be, il, &s.q, kv, &shape, l.sinks.as_ref(), &mut s.attn)?;
        let plain_end = l.o_bias.is_none() && l.post_attn_norm.is_none();
        if fuse && plain_end && self.mlp_takes_residual(l) {
            ops::matmul_add(be, &l.o.get(file), &s.attn, n, &mut s.proj, &mut s.x)?;
            return Ok(Input::Residual);
        }
        ops::matmul(be, &l.o.get(file), &s.attn, n, &mut s.proj)?;
        if let Some(b) = &l.o_bias {
            ops::add_bias(be, &mut s.proj, b, c.n_embd, None)?;
        }
        if let Some(post) = &l.post_attn_norm {
            self.norm_in_place(&mut s.proj, &mut s.proj_tmp, post)?;
        }
        ops::add_rms_norm(
            be,
            &mut s.x,
            &s.proj,
            &l.norm2.get(),
            c.rms_eps,
            &mut s.normed,
        )?;
        Ok(Input::Normed)
    }

    /// Whether the MLP block of `l` norms its input inside its first matmul (a dense SwiGLU).
    fn mlp_takes_residual(&self, l: &LayerWeights) -> bool {
        matches!(l.ffn, Ffn::Dense { .. }) && !self.plan.config.arch.gelu_gate()
    }

    /// The MLP on `input`; its output is added to `s.x`. With `next.1` (the next block norms
    /// its input itself) and a plain end, the add is the down projection's (`matmul_add`);
    /// otherwise `s.normed` becomes `rms_norm(s.x) * next.0`. Returns the next block's input.
    fn mlp_block(
        &self,
        l: &LayerWeights,
        next: (&Vector, bool),
        s: &mut Scratch,
        input: Input,
    ) -> ModelResult<Input> {
        let (be, c, n) = (&self.backend, &self.plan.config, s.n);
        let file = self.plan.loader().file();
        let (next_norm, next_fuses) = next;
        if input == Input::Residual && !self.mlp_takes_residual(l) {
            ops::rms_norm(be, &s.x, &l.norm2.get(), c.rms_eps, &mut s.normed)?;
        }
        if let (Ffn::Dense { gate, up, down }, Input::Residual) = (&l.ffn, input)
            && self.mlp_takes_residual(l)
        {
            ops::rms_norm_matmul_swiglu(
                be,
                &s.x,
                &l.norm2.get(),
                c.rms_eps,
                &mut s.normed,
                &gate.get(file),
                &up.get(file),
                n,
                &mut s.gate,
                &mut s.up,
                &mut s.hidden,
            )?;
            if next_fuses && l.post_ffn_norm.is_none() {
                ops::matmul_add(be, &down.get(file), &s.hidden, n, &mut s.proj, &mut s.x)?;
                return Ok(Input::Residual);
            }
            ops::matmul(be, &down.get(file), &s.hidden, n, &mut s.proj)?;
            return self.mlp_end(l, next_norm, s);
        }
        match &l.ffn {
            Ffn::Dense { gate, up, down } if c.arch.gelu_gate() => {
                ops::matmul(be, &gate.get(file), &s.normed, n, &mut s.gate)?;
                ops::matmul(be, &up.get(file), &s.normed, n, &mut s.up)?;
                ops::gelu_mul(be, &s.gate, &s.up, &mut s.hidden)?;
                ops::matmul(be, &down.get(file), &s.hidden, n, &mut s.proj)?;
            }
            Ffn::Dense { gate, up, down } => {
                ops::matmul_swiglu(
                    be,
                    &gate.get(file),
                    &up.get(file),
                    &s.normed,
                    n,
                    &mut s.gate,
                    &mut s.up,
                    &mut s.hidden,
                )?;
                ops::matmul(be, &down.get(file), &s.hidden, n, &mut s.proj)?;
            }
            Ffn::Moe {
                router,
                gate,
                up,
                down,
                bias,
            } => self.moe_ffn(router, gate, up, down, bias.as_deref(), s)?,
        }
        self.mlp_end(l, next_norm, s)
    }

    /// The MLP's output in `s.proj` (post-FFN norm where the model has one) added to `s.x`,
    /// and `s.normed = rms_norm(s.x) * next_norm`.
    fn mlp_end(&self, l: &LayerWeights, next_norm: &Vector, s: &mut Scratch) -> ModelResult<Input> {
        let (be, c) = (&self.backend, &self.plan.config);
        if let Some(post) = &l.post_ffn_norm {
            self.norm_in_place(&mut s.proj, &mut s.proj_tmp, post)?;
        }
        ops::add_rms_norm(
            be,
            &mut s.x,
            &s.proj,
            &next_norm.get(),
            c.rms_eps,
            &mut s.normed,
        )?;
        Ok(Input::Normed)
    }

    /// The mixture of experts on `s.normed` into `s.proj`: router logits, softmax top-k (ids
    /// kept on the backend), each token's chosen experts' SwiGLU (only their rows are read),
    /// and the routing-weighted sum of their outputs. With gpt-oss's `bias`: the router's bias
    /// before the top-k, the experts' biases after their matmuls, and the clamped SwiGLU; its
    /// softmax over the chosen experts' logits equals the softmax over all renormalised over
    /// the chosen (the routing's `normalize_weights`).
    fn moe_ffn(
        &self,
        router: &Mat,
        gate: &Mat,
        up: &Mat,
        down: &Mat,
        bias: Option<&MoeBias>,
        s: &mut Scratch,
    ) -> ModelResult<()> {
        let (be, c, n) = (&self.backend, &self.plan.config, s.n);
        let file = self.plan.loader().file();
        let (Some(moe), Some(m)) = (&c.moe, &mut s.moe) else {
            return Err(ModelError::InvalidInput(
                "a mixture-of-experts block in a model without an expert configuration".to_string(),
            ));
        };
        let k = moe.n_expert_used;
        ops::matmul(be, &router.get(file), &s.normed, n, &mut m.logits)?;
        if let Some(b) = bias {
            ops::add_bias(be, &mut m.logits, &b.router, moe.n_expert, None)?;
        }
        ops::moe_route(
            be,
            &m.logits,
            moe.n_expert,
            k,
            moe.normalize_weights,
            &mut m.ids,
            &mut m.weights,
        )?;
        let shape = MatmulIdShape {
            n_expert: moe.n_expert,
            n_tokens: n,
            k,
            x_per_slot: false,
        };
        if let Some(b) = bias {
            let ff = moe.n_ff_exp;
            ops::matmul_id(be, &gate.get(file), &shape, &s.normed, &m.ids, &mut m.gate)?;
            ops::add_bias(be, &mut m.gate, &b.gate, ff, Some(&m.ids))?;
            ops::matmul_id(be, &up.get(file), &shape, &s.normed, &m.ids, &mut m.up)?;
            ops::add_bias(be, &mut m.up, &b.up, ff, Some(&m.ids))?;
            ops::swiglu_oai(
                be,
                &m.gate,
                &m.up,
                &mut m.hidden,
                SWIGLU_OAI_ALPHA,
                SWIGLU_OAI_LIMIT,
            )?;
        } else {
            ops::matmul_id_swiglu(
                be,
                &gate.get(file),
                &up.get(file),
                &shape,
                &s.normed,
                &m.ids,
                &mut m.gate,
                &mut m.up,
                &mut m.hidden,
            )?;
        }
        let per_slot = MatmulIdShape {
            x_per_slot: true,
            ..shape
        };
        ops::matmul_id(
            be,
            &down.get(file),
            &per_slot,
            &m.hidden,
            &m.ids,
            &mut m.down,
        )?;
        if let Some(b) = bias {
            ops::add_bias(be, &mut m.down, &b.down, c.n_embd, Some(&m.ids))?;
        }
        ops::moe_weighted_sum(be, &m.down, &m.weights, k, &mut s.proj)?;
        Ok(())
    }
}
