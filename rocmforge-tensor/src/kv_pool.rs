//! [`KvPool`]: the paged KV cache's storage. Keys and values live in fixed-size blocks of
//! [`KV_BLOCK_TOKENS`] tokens; a sequence's cache is a block table (block ids in position
//! order), so memory grows with the tokens held, and sequences that share a prompt prefix share
//! its blocks (each block is reference-counted).
//!
//! One block holds every layer's keys and values of its tokens: F16 rows of `width` values, the
//! layer-`l` keys at block rows `2l·B..2l·B + B` and its values at `(2l+1)·B..(2l+2)·B`
//! (`B = KV_BLOCK_TOKENS`). So one block table serves every layer: a kernel finds token `p` of
//! layer `l` at block `table[p / B]`, row `p % B` of the layer's K or V part (a fixed byte
//! offset into the block). Storage is allocated in chunks of whole blocks as blocks are first
//! needed, up to the pool's budget of blocks; freed blocks are reused. [`KvPool::trim`] returns
//! the storage of every chunk whose blocks are all free (the engine calls it when it goes
//! idle); such a chunk is allocated again, with the same block ids, before any new one.

use half::f16;
use rocmforge_gguf::GgmlType;

use crate::backend::Backend;
use crate::cpu::KvRows;
use crate::error::{TensorError, TensorResult};
use crate::tensor::Tensor;

/// Tokens per KV block (`RF_KV_BLOCK` in kernels/attention.hip): a multiple of every
/// attention kernel's key tile.
pub const KV_BLOCK_TOKENS: usize = 64;

/// Bytes of storage one chunk aims at (whole blocks; at least one block).
const CHUNK_BYTES: usize = 16 << 20;

/// Where a block lives: its chunk and its index in that chunk.
#[derive(Debug, Clone, Copy)]
struct Slot {
    chunk: u32,
    index: u32,
}

/// Blocks in use, in bytes and counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KvPoolStats {
    /// Tokens per block.
    pub block_tokens: usize,
    /// Bytes of one block (every layer's keys and values of its tokens).
    pub block_bytes: usize,
    /// Blocks held by at least one sequence (a shared block counts once).
    pub used: usize,
    /// Blocks the budget still allows (allocated or not).
    pub free: usize,
    /// The budget.
    pub max_blocks: usize,
    /// Blocks whose storage is allocated (used or free for reuse).
    pub allocated: usize,
}

/// Paged KV storage on one backend: blocks, their reference counts and the free list.
#[derive(Debug)]
pub struct KvPool {
    backend: Backend,
    n_layers: usize,
    width: usize,
    max_blocks: usize,
    blocks_per_chunk: usize,
    /// Storage of each chunk; `None` once [`KvPool::trim`] returned it.
    chunks: Vec<Option<Tensor>>,
    /// The block ids of each chunk (consecutive).
    chunk_ids: Vec<std::ops::Range<u32>>,
    slots: Vec<Slot>,
    refs: Vec<u32>,
    free: Vec<u32>,
    used: usize,
}

fn err(what: String) -> TensorError {
    TensorError::Shape {
        op: "kv_pool",
        what,
    }
}

impl KvPool {
    /// An empty pool (nothing allocated) for `n_layers` layers of K and V rows of `width` values,
    /// holding at most `max_blocks` blocks.
    pub fn new(
        backend: &Backend,
        n_layers: usize,
        width: usize,
        max_blocks: usize,
    ) -> TensorResult<Self> {
        let block_values = n_layers
            .checked_mul(2 * KV_BLOCK_TOKENS)
            .and_then(|r| r.checked_mul(width))
            .filter(|&v| v > 0 && isize::try_from(v.saturating_mul(2)).is_ok());
        let Some(block_values) = block_values else {
            return Err(err(format!(
                "a KV block of {n_layers} layers x rows of {width} values is empty or overflows"
            )));
        };
        let max_blocks = max_blocks.min(u32::MAX as usize);
        let blocks_per_chunk = (CHUNK_BYTES / (block_values * 2)).clamp(1, 256);
        Ok(KvPool {
            backend: backend.clone(),
            n_layers,
            width,
            max_blocks,
            blocks_per_chunk,
            chunks: Vec::new(),
            chunk_ids: Vec::new(),
            slots: Vec::new(),
            refs: Vec::new(),
            free: Vec::new(),
            used: 0,
        })
    }

    /// The pool with chunks of `n` blocks (at least one) instead of about 16 MiB: for tests of
    /// blocks in different chunks, and for tuning.
    pub fn with_chunk_blocks(mut self, n: usize) -> Self {
        self.blocks_per_chunk = n.max(1);
        self
    }

    /// The backend the blocks live on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// Layers per block.
    pub fn n_layers(&self) -> usize {
        self.n_layers
    }

    /// Values per K or V row.
    pub fn width(&self) -> usize {
        self.width
    }

    /// Rows of `width` values per block (every layer's K and V).
    pub fn rows_per_block(&self) -> usize {
        self.n_layers * 2 * KV_BLOCK_TOKENS
    }

    /// Bytes of one block.
    pub fn block_bytes(&self) -> usize {
        self.rows_per_block() * self.width * 2
    }

    /// Sets the budget (blocks allocated beyond it stay allocated but are not handed out while
    /// as many are in use).
    pub fn set_max_blocks(&mut self, max_blocks: usize) {
        self.max_blocks = max_blocks.min(u32::MAX as usize);
    }

    /// Counts of blocks and bytes.
    pub fn stats(&self) -> KvPoolStats {
        KvPoolStats {
            block_tokens: KV_BLOCK_TOKENS,
            block_bytes: self.block_bytes(),
            used: self.used,
            free: self.max_blocks.saturating_sub(self.used),
            max_blocks: self.max_blocks,
            allocated: self
                .chunks
                .iter()
                .zip(&self.chunk_ids)
                .filter(|(c, _)| c.is_some())
                .map(|(_, ids)| ids.len())
                .sum(),
        }
    }

    /// Returns the storage of every chunk whose blocks are all free (their ids leave the free
    /// list until the chunk is allocated again); the bytes returned.
    pub fn trim(&mut self) -> usize {
        let mut returned = 0;
        for (c, ids) in self.chunk_ids.iter().enumerate() {
            let idle = ids.clone().all(|id| self.refs[id as usize] == 0);
            if idle && self.chunks[c].take().is_some() {
                returned += ids.len() * self.block_bytes();
                self.free.retain(|id| !ids.contains(id));
            }
        }
        if returned > 0 {
            tracing::debug!(
                bytes = returned,
                "kv pool: returned the storage of idle chunks"
            );
        }
        returned
    }

    /// A block for `what` (a sequence; named in the error), reference count 1; contents are
    /// whatever an earlier holder left. Fails with [`TensorError::KvBlocksExhausted`] when the
    /// budget's blocks are all in use.
    pub fn alloc(&mut self, what: &str) -> TensorResult<u32> {
        if self.used >= self.max_blocks {
            return Err(TensorError::KvBlocksExhausted {
                what: what.to_string(),
                block_tokens: KV_BLOCK_TOKENS,
                max_blocks: self.max_blocks,
            });
        }
        let id = match self.free.pop() {
            Some(id) => id,
            None => match self.chunks.iter().position(Option::is_none) {
                Some(c) => self.revive(c)?,
                None => self.grow()?,
            },
        };
        self.refs[id as usize] = 1;
        self.used += 1;
        Ok(id)
    }

    /// Allocates the storage of chunk `c` again (returned by [`KvPool::trim`]); returns its
    /// first block (the others join the free list).
    fn revive(&mut self, c: usize) -> TensorResult<u32> {
        let ids = self.chunk_ids[c].clone();
        let chunk = self.backend.zeros(
            GgmlType::F16,
            vec![ids.len() * self.rows_per_block(), self.width],
        )?;
        self.chunks[c] = Some(chunk);
        for id in ids.clone().skip(1).rev() {
            self.free.push(id);
        }
        Ok(ids.start)
    }

    /// The storage of chunk `c` (an error once returned: no block of it is in use then).
    fn chunk(&self, c: usize) -> TensorResult<&Tensor> {
        self.chunks
            .get(c)
            .and_then(Option::as_ref)
            .ok_or_else(|| err(format!("KV chunk {c} holds no storage (returned)")))
    }

    fn chunk_mut(&mut self, c: usize) -> TensorResult<&mut Tensor> {
        self.chunks
            .get_mut(c)
            .and_then(Option::as_mut)
            .ok_or_else(|| err(format!("KV chunk {c} holds no storage (returned)")))
    }

    /// Allocates one more chunk; returns its first block (the others join the free list).
    fn grow(&mut self) -> TensorResult<u32> {
        let first = self.slots.len();
        let n = self
            .blocks_per_chunk
            .min(self.max_blocks.saturating_sub(first))
            .max(1);
        let chunk = self
            .backend
            .zeros(GgmlType::F16, vec![n * self.rows_per_block(), self.width])?;
        let c = u32::try_from(self.chunks.len()).map_err(|_| err("too many chunks".into()))?;
        self.chunks.push(Some(chunk));
        let (lo, hi) = (first as u32, (first + n) as u32);
        self.chunk_ids.push(lo..hi);
        for index in 0..n as u32 {
            self.slots.push(Slot { chunk: c, index });
            self.refs.push(0);
        }
        // Later blocks of the chunk are handed out lowest first.
        for id in (first + 1..first + n).rev() {
            self.free.push(id as u32);
        }
        Ok(first as u32)
    }

    /// The reference count of block `id` (0: free or unknown).
    pub fn refcount(&self, id: u32) -> u32 {
        self.refs.get(id as usize).copied().unwrap_or(0)
    }

    /// One more holder of block `id` (a sequence sharing it).
    pub fn retain(&mut self, id: u32) -> TensorResult<()> {
        match self.refs.get_mut(id as usize) {
            Some(r) if *r > 0 => {
                *r += 1;
                Ok(())
            }
            _ => Err(err(format!("retaining block {id}, which is not in use"))),
        }
    }

    /// One holder fewer of block `id`; at zero the block is free for reuse.
    pub fn release(&mut self, id: u32) -> TensorResult<()> {
        match self.refs.get_mut(id as usize) {
            Some(r) if *r > 0 => {
                *r -= 1;
                if *r == 0 {
                    self.used -= 1;
                    self.free.push(id);
                }
                Ok(())
            }
            _ => Err(err(format!("releasing block {id}, which is not in use"))),
        }
    }

    /// Checks that every block of `blocks` is in use.
    pub fn check_blocks(&self, blocks: &[u32]) -> TensorResult<()> {
        match blocks.iter().find(|&&b| self.refcount(b) == 0) {
            Some(b) => Err(err(format!("block {b} of a table is not in use"))),
            None => Ok(()),
        }
    }

    fn slot(&self, id: u32) -> TensorResult<Slot> {
        self.slots
            .get(id as usize)
            .copied()
            .ok_or_else(|| err(format!("no block {id}")))
    }

    /// Copies every row of block `src` over block `dst` (copy-on-write of a shared block),
    /// queued on a GPU in order with the ops.
    pub fn copy_block(&mut self, src: u32, dst: u32) -> TensorResult<()> {
        const OP: &str = "kv_pool copy_block";
        let (s, d) = (self.slot(src)?, self.slot(dst)?);
        if src == dst {
            return Ok(());
        }
        let n = self.rows_per_block() * self.width;
        let (s_at, d_at) = (s.index as usize * n, d.index as usize * n);
        match &self.backend {
            Backend::Cpu => {
                if s.chunk == d.chunk {
                    let c = self.chunk_mut(s.chunk as usize)?.cpu_f16_mut(OP)?;
                    c.copy_within(s_at..s_at + n, d_at);
                } else {
                    let (lo, hi) = (s.chunk.min(d.chunk), s.chunk.max(d.chunk));
                    let (a, b) = self.chunks.split_at_mut(hi as usize);
                    let gone = || {
                        err(format!(
                            "copying block {src} to {dst}: a chunk holds no storage"
                        ))
                    };
                    let low = a[lo as usize].as_mut().ok_or_else(gone)?.cpu_f16_mut(OP)?;
                    let high = b[0].as_mut().ok_or_else(gone)?.cpu_f16_mut(OP)?;
                    let (from, to) = if s.chunk < d.chunk {
                        (&low[s_at..s_at + n], &mut high[d_at..d_at + n])
                    } else {
                        (&high[s_at..s_at + n], &mut low[d_at..d_at + n])
                    };
                    to.copy_from_slice(from);
                }
                Ok(())
            }
            Backend::Hip(ops) => {
                if s.chunk == d.chunk {
                    let ops = ops.clone();
                    let c = self.chunk_mut(s.chunk as usize)?.hip_mut(OP)?;
                    let buf = c.f16_buffer_mut(OP)?;
                    Ok(ops.stream().memcpy_dtod_within(buf, s_at, d_at, n)?)
                } else {
                    let (lo, hi) = (s.chunk.min(d.chunk), s.chunk.max(d.chunk));
                    let (a, b) = self.chunks.split_at_mut(hi as usize);
                    let gone = || {
                        err(format!(
                            "copying block {src} to {dst}: a chunk holds no storage"
                        ))
                    };
                    let low = a[lo as usize].as_mut().ok_or_else(gone)?;
                    let high = b[0].as_mut().ok_or_else(gone)?;
                    let (from, to) = if s.chunk < d.chunk {
                        (low, high)
                    } else {
                        (high, low)
                    };
                    let from = from.hip(OP)?.f16_buffer(OP)?;
                    let to = to.hip_mut(OP)?.f16_buffer_mut(OP)?;
                    Ok(ops.stream().memcpy_dtod_range(from, s_at, to, d_at, n)?)
                }
            }
        }
    }

    /// The row of the pool's chunk tensor where token `pos` of `layer`'s keys (`value` false) or
    /// values lives, given the table `blocks`: `(chunk, row)`.
    pub(crate) fn row_of(
        &self,
        blocks: &[u32],
        layer: usize,
        value: bool,
        pos: usize,
    ) -> TensorResult<(usize, usize)> {
        let id = blocks
            .get(pos / KV_BLOCK_TOKENS)
            .copied()
            .ok_or_else(|| err(format!("position {pos} beyond a table of {}", blocks.len())))?;
        let s = self.slot(id)?;
        let part = 2 * layer + usize::from(value);
        let row = s.index as usize * self.rows_per_block()
            + part * KV_BLOCK_TOKENS
            + pos % KV_BLOCK_TOKENS;
        Ok((s.chunk as usize, row))
    }

    /// Chunk `c`'s tensor, for writing (CPU append).
    pub(crate) fn chunk_tensor_mut(&mut self, c: usize) -> TensorResult<&mut Tensor> {
        self.chunk_mut(c)
    }

    /// The device address of block `id` (GPU).
    pub(crate) fn block_address(&self, id: u32) -> TensorResult<u64> {
        let s = self.slot(id)?;
        let t = self.chunk(s.chunk as usize)?.hip("kv_pool")?;
        Ok(t.device_ptr().0 + (s.index as usize * self.block_bytes()) as u64)
    }

    /// Byte offsets of `layer`'s K and V parts inside a block.
    pub(crate) fn layer_offsets(&self, layer: usize) -> (u64, u64) {
        let part = (KV_BLOCK_TOKENS * self.width * 2) as u64;
        (2 * layer as u64 * part, (2 * layer as u64 + 1) * part)
    }

    /// `layer`'s keys and values of a sequence with block table `blocks`, row by row (CPU).
    pub fn rows<'a>(&'a self, blocks: &'a [u32], layer: usize) -> TensorResult<PagedRows<'a>> {
        let chunks = self
            .chunks
            .iter()
            .map(|c| {
                c.as_ref()
                    .map_or(Ok(&[][..]), |c| c.cpu_f16("kv_pool rows"))
            })
            .collect::<TensorResult<Vec<_>>>()?;
        self.check_blocks(blocks)?;
        if layer >= self.n_layers {
            return Err(err(format!("layer {layer} of {}", self.n_layers)));
        }
        Ok(PagedRows {
            pool: self,
            chunks,
            blocks,
            layer,
        })
    }

    /// The keys (or values) of `layer` for the first `n` tokens of table `blocks`, as f32 (a
    /// copy; for tests and inspection).
    pub fn to_f32(
        &self,
        blocks: &[u32],
        layer: usize,
        value: bool,
        n: usize,
    ) -> TensorResult<Vec<f32>> {
        let mut out = Vec::with_capacity(n * self.width);
        let host: Vec<Vec<f32>> = self
            .chunks
            .iter()
            .map(|c| c.as_ref().map_or(Ok(Vec::new()), Tensor::to_f32_vec))
            .collect::<TensorResult<_>>()?;
        for p in 0..n {
            let (c, r) = self.row_of(blocks, layer, value, p)?;
            out.extend_from_slice(&host[c][r * self.width..(r + 1) * self.width]);
        }
        Ok(out)
    }
}

/// One layer's keys and values of a paged sequence on the CPU ([`KvPool::rows`]).
#[derive(Debug)]
pub struct PagedRows<'a> {
    pool: &'a KvPool,
    chunks: Vec<&'a [f16]>,
    blocks: &'a [u32],
    layer: usize,
}

impl PagedRows<'_> {
    fn row(&self, t: usize, value: bool) -> &[f16] {
        let w = self.pool.width;
        match self.pool.row_of(self.blocks, self.layer, value, t) {
            Ok((c, r)) => self.chunks.get(c).and_then(|c| c.get(r * w..(r + 1) * w)),
            Err(_) => None,
        }
        .unwrap_or(&[])
    }

    /// Tokens the table covers.
    pub fn capacity(&self) -> usize {
        self.blocks.len() * KV_BLOCK_TOKENS
    }
}

impl KvRows for PagedRows<'_> {
    fn key(&self, t: usize) -> &[f16] {
        self.row(t, false)
    }
    fn value(&self, t: usize) -> &[f16] {
        self.row(t, true)
    }
}
