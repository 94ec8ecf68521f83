//! The device side of [`crate::batch_kv::BatchKv`]: address tables of a step's cache rows and
//! the launches over them: `kv_append_rows_f16`, `rope_kv_append_rows_f32` (biases + RoPE +
//! append), and the decode attention (`attention_rows_split_f16`, split over the keys and
//! combined by each head chunk's last block in the same launch, or `attention_rows_f16` for head
//! dims the split kernel does not take).

use rocmforge_hip::{DeviceBuffer, DevicePtr, HipEvent, LaunchConfig, PinnedHostBuffer};

use super::attention::MAX_HEAD_DIM;
use super::rope::RopeArgs;
use super::{HipOps, check_device, check_f32, grid_1d, to_u32};
use crate::batch_kv::{HeadShape, SeqKv};
use crate::cpu::RopeParams;
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};
use crate::kv_pool::{KV_BLOCK_TOKENS, KvPool};

const OP: &str = "batch_kv";
/// Threads per block of `attention_rows_f16` (`ATT_THREADS` in kernels/attention.hip).
const ATTENTION_THREADS: u32 = 128;
/// `attention_rows_split_f16` (kernels/attention.hip): query heads (warps) per block (`AS_GC`), largest
/// head dimension (`AS_MAX_HD`).
const SPLIT_GROUP: usize = 8;
const SPLIT_MAX_HEAD_DIM: usize = 256;
/// Blocks (a warp per query head of one KV head) per compute unit the split attention aims for, and its most splits
/// (`AS_MAX_SPLIT`; a sequence uses at most one split per warp-wide tile of its keys).
const SPLIT_BLOCKS_PER_CU: usize = 4;
const SPLIT_MAX: usize = 64;

/// Device memory for a step's tables, reused from step to step (no allocation per step): the
/// tables go through pinned host memory with asynchronous copies on the ops' stream, so work
/// queued before reads the old tables and work queued after the new ones; an event recorded
/// after the copies is waited for before the pinned memory is written again.
#[derive(Debug)]
pub struct TableBuffers {
    ptrs: DeviceBuffer<u64>,
    idx: DeviceBuffer<u32>,
    host_ptrs: PinnedHostBuffer<u64>,
    host_idx: PinnedHostBuffer<u32>,
    copied: HipEvent,
    pending: bool,
}

impl TableBuffers {
    fn new(ops: &HipOps, n_ptrs: usize, n_idx: usize) -> TensorResult<Self> {
        let dev = ops.backend();
        Ok(TableBuffers {
            ptrs: dev.alloc_zeros(n_ptrs)?,
            idx: dev.alloc_zeros(n_idx)?,
            host_ptrs: dev.alloc_pinned(n_ptrs)?,
            host_idx: dev.alloc_pinned(n_idx)?,
            copied: dev.new_event()?,
            pending: false,
        })
    }

    fn wait(&mut self) -> TensorResult<()> {
        if self.pending {
            self.copied.synchronize()?;
            self.pending = false;
        }
        Ok(())
    }

    /// Queues the copies of `ptrs` and `idx` (growing the buffers when needed); returns the
    /// device addresses of both tables.
    fn upload(
        slot: &mut Option<TableBuffers>,
        ops: &HipOps,
        ptrs: &[u64],
        idx: &[u32],
    ) -> TensorResult<(DevicePtr, DevicePtr)> {
        let fits = slot
            .as_ref()
            .is_some_and(|b| b.ptrs.len() >= ptrs.len() && b.idx.len() >= idx.len());
        if !fits {
            if let Some(old) = slot.as_mut() {
                old.wait()?;
            }
            *slot = None;
            let grow = |n: usize| n.max(1).next_power_of_two().max(64);
            *slot = Some(TableBuffers::new(ops, grow(ptrs.len()), grow(idx.len()))?);
        }
        let Some(b) = slot.as_mut() else {
            return Err(TensorError::Backend {
                op: OP,
                what: "table buffers missing".to_string(),
            });
        };
        b.wait()?;
        b.host_ptrs[..ptrs.len()].copy_from_slice(ptrs);
        b.host_idx[..idx.len()].copy_from_slice(idx);
        // SAFETY: both buffer pairs are owned by `b` and have equal lengths; the pinned memory
        // is written again only after the event recorded below has completed (`wait`, also in
        // Drop), and the device buffers outlive the copies for the same reason.
        unsafe {
            ops.stream().memcpy_htod_async(&b.host_ptrs, &mut b.ptrs)?;
            ops.stream().memcpy_htod_async(&b.host_idx, &mut b.idx)?;
        }
        b.copied.record(ops.stream())?;
        b.pending = true;
        Ok((b.ptrs.device_ptr(), b.idx.device_ptr()))
    }
}

impl Drop for TableBuffers {
    fn drop(&mut self) {
        // A failed wait leaves nothing better to do than free the memory.
        let _ = self.wait();
    }
}

/// Per layer: the address of every batch row's K and V cache row (append); the block table of
/// every sequence as device addresses of its blocks (decoding sequences first, `stride` entries
/// each); the decoding sequences' batch rows and visible lengths. The addresses point into a
/// [`TableBuffers`] that the owning [`crate::batch_kv::BatchKv`] borrows for as long as it
/// lives.
#[derive(Debug)]
pub(crate) struct KvTables {
    /// `[k_dst: layers × rows][v_dst: layers × rows][block tables: seqs × stride]`.
    ptrs: DevicePtr,
    /// `[rows: dec][lens: dec]`.
    idx: DevicePtr,
    n_rows: usize,
    n_layers: usize,
    n_dec: usize,
    width: usize,
    /// Entries per block table (a power of two, so that a captured step stays valid while the
    /// sequences grow within it).
    stride: usize,
    /// Each sequence's block table: its index among the tables (in the order of the batch).
    table_of: Vec<usize>,
    /// Byte offsets of each layer's K and V parts inside a block.
    offsets: Vec<(u64, u64)>,
}

/// Smallest block-table stride: tables shorter than this many blocks share one stride.
const MIN_TABLE_STRIDE: usize = 16;

impl KvTables {
    pub(crate) fn new(
        ops: &HipOps,
        pool: &KvPool,
        seqs: &[SeqKv<'_>],
        buffers: &mut Option<TableBuffers>,
    ) -> TensorResult<Self> {
        let n_layers = pool.n_layers();
        let width = pool.width();
        let n_rows: usize = seqs.iter().map(|s| s.n).sum();
        let n_dec = seqs.iter().filter(|s| s.n == 1).count();
        let needed = |s: &SeqKv<'_>| (s.start + s.n).div_ceil(KV_BLOCK_TOKENS);
        let stride = seqs
            .iter()
            .map(needed)
            .max()
            .unwrap_or(1)
            .next_power_of_two()
            .max(MIN_TABLE_STRIDE);
        let tab0 = 2 * n_layers * n_rows;
        let mut ptrs = vec![0u64; tab0 + seqs.len() * stride];
        // Decoding sequences' tables first (the decode kernels index them by decode slot).
        let mut table_of = vec![0; seqs.len()];
        let mut next = 0;
        for pass_dec in [true, false] {
            for (i, s) in seqs.iter().enumerate() {
                if (s.n == 1) == pass_dec {
                    table_of[i] = next;
                    next += 1;
                }
            }
        }
        let mut r = 0;
        for (i, s) in seqs.iter().enumerate() {
            let base = tab0 + table_of[i] * stride;
            for (b, &id) in s.blocks[..needed(s)].iter().enumerate() {
                ptrs[base + b] = pool.block_address(id)?;
            }
            for t in 0..s.n {
                let p = s.start + t;
                let block = ptrs[base + p / KV_BLOCK_TOKENS];
                let in_block = (p % KV_BLOCK_TOKENS * width * 2) as u64;
                for il in 0..n_layers {
                    let (ko, vo) = pool.layer_offsets(il);
                    ptrs[il * n_rows + r] = block + ko + in_block;
                    ptrs[(n_layers + il) * n_rows + r] = block + vo + in_block;
                }
                r += 1;
            }
        }
        let mut idx = Vec::with_capacity(2 * n_dec);
        for s in seqs.iter().filter(|s| s.n == 1) {
            idx.push(to_u32(OP, "row", s.row)?);
        }
        for s in seqs.iter().filter(|s| s.n == 1) {
            idx.push(to_u32(OP, "length", s.start + 1)?);
        }
        let (ptrs, idx) = TableBuffers::upload(buffers, ops, &ptrs, &idx)?;
        Ok(KvTables {
            ptrs,
            idx,
            n_rows,
            n_layers,
            n_dec,
            width,
            stride,
            table_of,
            offsets: (0..n_layers).map(|l| pool.layer_offsets(l)).collect(),
        })
    }

    /// The tables' device addresses and the block tables' stride.
    pub(crate) fn graph_key(&self) -> (u64, u64, usize) {
        (self.ptrs.0, self.idx.0, self.stride)
    }

    /// The device address of table `t` (in table order).
    fn table(&self, t: usize) -> TensorResult<DevicePtr> {
        self.ptr(2 * self.n_layers * self.n_rows + t * self.stride)
    }

    fn ptr(&self, index: usize) -> TensorResult<DevicePtr> {
        self.ptrs
            .byte_offset(index * 8)
            .ok_or_else(|| TensorError::Shape {
                op: OP,
                what: format!("table entry {index} overflows a device address"),
            })
    }

    /// Appends rows of `k` and `v` (F32 `[n_rows][width]`) to the layer's cache rows.
    pub(crate) fn append(
        &self,
        ops: &HipOps,
        layer: usize,
        k: &DeviceTensor,
        v: &DeviceTensor,
        n_rows: usize,
    ) -> TensorResult<()> {
        if layer >= self.n_layers || n_rows != self.n_rows {
            return Err(TensorError::Shape {
                op: OP,
                what: format!(
                    "layer {layer} / {n_rows} rows of a {}-row table",
                    self.n_rows
                ),
            });
        }
        if n_rows == 0 {
            return Ok(());
        }
        let f = ops.function("kv_cache", "kv_append_rows_f16")?;
        let nr = to_u32(OP, "n_rows", n_rows)?;
        let halves = [
            (k, self.width, layer * self.n_rows),
            (v, self.width, (self.n_layers + layer) * self.n_rows),
        ];
        for (src, width, at) in halves {
            check_f32(OP, "src", src, n_rows * width)?;
            check_device(OP, ops, src)?;
            let (ps, pd, rl) = (src.device_ptr(), self.ptr(at)?, to_u32(OP, "width", width)?);
            let mut l = ops.stream().launch_builder(&f);
            l.dependent();
            l.arg(&ps).arg(&pd).arg(&rl).arg(&nr);
            // SAFETY: (const float* src, const u64* dst, u32 row_len, u32 n_rows) matches
            // kv_append_rows_f16; src holds n_rows * row_len f32 (checked), the table holds
            // n_rows addresses from `at`, each the start of a row of row_len f16 inside a block
            // of the pool (on this device) that BatchKv checked is in use by that row's
            // sequence alone and borrows mutably.
            unsafe { l.launch(grid_1d(n_rows * width, 256))? };
        }
        Ok(())
    }

    /// Adds the q/k/v biases (each optional: `[n_heads * head_dim]` / `[kv width]` f32), ropes
    /// q in place and k, and writes k and v (F32 `[n_rows][kv width]`) to the layer's cache rows:
    /// one launch for the whole batch.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn rope_append(
        &self,
        ops: &HipOps,
        layer: usize,
        q: &mut DeviceTensor,
        k: &DeviceTensor,
        v: &DeviceTensor,
        bias: [Option<&DeviceTensor>; 3],
        shape: &HeadShape,
        positions: &DeviceBuffer<u32>,
        rope: &RopeParams,
        freq_factors: Option<&DeviceTensor>,
    ) -> TensorResult<()> {
        const OP: &str = "rope_kv_append_batch";
        let kv_width = shape.n_kv_heads * shape.head_dim;
        let q_width = shape.n_heads * shape.head_dim;
        if layer >= self.n_layers || kv_width != self.width || positions.len() < self.n_rows {
            return Err(TensorError::Shape {
                op: OP,
                what: format!(
                    "{shape:?} at layer {layer} over caches of width {} ({} positions for {} rows)",
                    self.width,
                    positions.len(),
                    self.n_rows
                ),
            });
        }
        check_f32(OP, "q", q, self.n_rows * q_width)?;
        check_f32(OP, "k", k, self.n_rows * kv_width)?;
        check_f32(OP, "v", v, self.n_rows * kv_width)?;
        for t in [&*q, k, v] {
            check_device(OP, ops, t)?;
        }
        let mut bias_ptrs = [DevicePtr(0); 3];
        for (i, (b, width)) in bias.iter().zip([q_width, kv_width, kv_width]).enumerate() {
            if let Some(b) = b {
                check_f32(OP, "bias", b, width)?;
                check_device(OP, ops, b)?;
                bias_ptrs[i] = b.device_ptr();
            }
        }
        if self.n_rows == 0 {
            return Ok(());
        }
        let a = RopeArgs::new(rope, shape.head_dim);
        let per_head = a.n_rot / 2 + (shape.head_dim - a.n_rot);
        let per_token = (shape.n_heads + shape.n_kv_heads) * per_head + kv_width;
        let pf = super::rope::freq_factors_ptr(OP, ops, freq_factors, a.n_rot)?;
        let f = ops.function("rope", "rope_kv_append_rows_f32")?;
        let kd = self.ptr(layer * self.n_rows)?;
        let vd = self.ptr((self.n_layers + layer) * self.n_rows)?;
        let (pq, pk, pv) = (q.device_ptr(), k.device_ptr(), v.device_ptr());
        let pp = positions.device_ptr();
        let (nt, nh, nkvh, hd, nr) = (
            to_u32(OP, "n_rows", self.n_rows)?,
            to_u32(OP, "n_heads", shape.n_heads)?,
            to_u32(OP, "n_kv_heads", shape.n_kv_heads)?,
            to_u32(OP, "head_dim", shape.head_dim)?,
            to_u32(OP, "n_rot", a.n_rot)?,
        );
        let mut l = ops.stream().launch_builder(&f);
        l.dependent();
        l.arg(&pq).arg(&pk).arg(&pv);
        l.arg(&bias_ptrs[0]).arg(&bias_ptrs[1]).arg(&bias_ptrs[2]);
        l.arg(&pp).arg(&pf).arg(&kd).arg(&vd);
        l.arg(&nt)
            .arg(&nh)
            .arg(&nkvh)
            .arg(&hd)
            .arg(&nr)
            .arg(&a.mode);
        a.push_scalars(&mut l);
        // SAFETY: the arguments match rope_kv_append_rows_f32's parameters in order and type;
        // q holds n_rows * n_heads * head_dim f32, k and v n_rows * kv width (checked), each
        // bias is null or holds its width (checked), positions at least n_rows u32 (checked);
        // the tables hold n_rows K and V row addresses of this layer, each the start of a row
        // of kv width f16 inside a cache of this device with room for it (BatchKv checked and
        // borrows them mutably); n_rot <= head_dim; pf is null or holds n_rot / 2 f32
        // on this device (checked).
        unsafe { l.launch(grid_1d(self.n_rows * per_token, 256))? };
        Ok(())
    }

    /// The attention of every row of the batch: each prefilling sequence's rows (more than one
    /// new token) by the paged attention kernel over its block table, one launch per sequence;
    /// then every decoding sequence's query row, one launch for all of them.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn attention(
        &self,
        ops: &HipOps,
        seqs: &[SeqKv<'_>],
        layer: usize,
        q: &DeviceTensor,
        shape: &HeadShape,
        sinks: Option<&DeviceTensor>,
        out: &mut DeviceTensor,
    ) -> TensorResult<()> {
        let Some(&(k_off, v_off)) = self.offsets.get(layer) else {
            return Err(TensorError::Shape {
                op: OP,
                what: format!("layer {layer} of {}", self.n_layers),
            });
        };
        if shape.n_kv_heads * shape.head_dim != self.width {
            return Err(TensorError::Shape {
                op: OP,
                what: format!("{shape:?} over caches of width {}", self.width),
            });
        }
        for (i, s) in seqs.iter().enumerate().filter(|(_, s)| s.n > 1) {
            let table = self.table(self.table_of[i])?;
            let p = shape.params(s);
            super::attention::attention_paged_rows(
                ops, q, s.row, table, k_off, v_off, &p, sinks, out,
            )?;
        }
        if self.n_dec == 0 {
            return Ok(());
        }
        let psink = super::attention::sinks_ptr(OP, ops, sinks, shape.n_heads)?;
        let group_ok = shape.n_kv_heads > 0 && shape.n_heads % shape.n_kv_heads == 0;
        let kv_width = shape.n_kv_heads * shape.head_dim;
        if layer >= self.n_layers
            || !group_ok
            || shape.head_dim == 0
            || shape.head_dim > MAX_HEAD_DIM
            || kv_width != self.width
        {
            return Err(TensorError::Shape {
                op: OP,
                what: format!(
                    "{shape:?} at layer {layer} over caches of width {}",
                    self.width
                ),
            });
        }
        let width = shape.n_heads * shape.head_dim;
        check_f32(OP, "q", q, self.n_rows * width)?;
        check_f32(OP, "out", out, self.n_rows * width)?;
        check_device(OP, ops, q)?;
        check_device(OP, ops, out)?;
        let blocks = self.table(0)?;
        let ts = to_u32(OP, "table stride", self.stride)?;
        let rows = self.idx;
        let lens = rows
            .byte_offset(self.n_dec * 4)
            .ok_or_else(|| TensorError::Shape {
                op: OP,
                what: "length table overflows a device address".to_string(),
            })?;
        let (pq, po) = (q.device_ptr(), out.device_ptr());
        let (nh, nkvh, hd) = (
            to_u32(OP, "n_heads", shape.n_heads)?,
            to_u32(OP, "n_kv_heads", shape.n_kv_heads)?,
            to_u32(OP, "head_dim", shape.head_dim)?,
        );
        let n_dec = to_u32(OP, "decoding sequences", self.n_dec)?;
        let window = super::attention::window_arg(OP, shape.window)?;
        if shape.head_dim % 2 == 0 && shape.head_dim <= SPLIT_MAX_HEAD_DIM {
            // Split over the keys: enough blocks to fill the device whatever the lengths.
            let group = shape.n_heads / shape.n_kv_heads;
            let y_blocks = shape.n_kv_heads * group.div_ceil(SPLIT_GROUP);
            let target = SPLIT_BLOCKS_PER_CU * (ops.backend().info().compute_units as usize).max(1);
            let n_split = target.div_ceil(y_blocks * self.n_dec).clamp(1, SPLIT_MAX);
            let floats = self.n_dec * shape.n_heads * n_split * (shape.head_dim + 2);
            let part = ops.attention_partials(floats)?;
            let counters = ops.attention_counters(self.n_dec * y_blocks)?;
            let ns = to_u32(OP, "n_split", n_split)?;
            let f = ops.function("attention", "attention_rows_split_f16")?;
            // One warp per query head of the block's KV head (at most SPLIT_GROUP).
            let warp = ops.backend().info().warp_size.max(1);
            let split_threads = warp * to_u32(OP, "group", group.clamp(1, SPLIT_GROUP))?;
            let cfg = LaunchConfig {
                grid_dim: (ns, to_u32(OP, "KV head blocks", y_blocks)?, n_dec),
                block_dim: (split_threads, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut l = ops.stream().launch_builder(&f);
            l.dependent();
            l.arg(&pq)
                .arg(&blocks)
                .arg(&ts)
                .arg(&k_off)
                .arg(&v_off)
                .arg(&rows)
                .arg(&lens)
                .arg(&part);
            l.arg(&nh)
                .arg(&nkvh)
                .arg(&hd)
                .arg(&shape.scale)
                .arg(&ns)
                .arg(&window)
                .arg(&po)
                .arg(&psink)
                .arg(&counters);
            // SAFETY: the arguments match attention_rows_split_f16's parameters; a block is
            // min(group, SPLIT_GROUP) warps (the kernel's maximum is SPLIT_GROUP warps); q and
            // out hold n_rows rows of n_heads * head_dim f32 (checked) and every rows[i] <
            // n_rows; blocks holds n_dec block tables of `ts` entries, each the device
            // addresses of blocks of the pool covering the sequence's first lens[i] tokens
            // (BatchKv checked them; this step's append wrote token lens[i] - 1), k_off/v_off
            // inside a block; head_dim is even and at most the kernel's maximum; n_split <= its
            // AS_MAX_SPLIT; part holds n_dec * n_heads * n_split * (head_dim + 2) f32 and
            // counters n_dec * y_blocks zeroed u32 (allocated above; each launch leaves them
            // zero); sinks null or n_heads f32 on this device (checked).
            unsafe { l.launch(cfg)? };
            return Ok(());
        }
        let f = ops.function("attention", "attention_rows_f16")?;
        let cfg = LaunchConfig {
            grid_dim: (nh, n_dec, 1),
            block_dim: (ATTENTION_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut l = ops.stream().launch_builder(&f);
        l.dependent();
        l.arg(&pq).arg(&blocks).arg(&ts).arg(&k_off).arg(&v_off);
        l.arg(&rows).arg(&lens).arg(&po);
        l.arg(&nh)
            .arg(&nkvh)
            .arg(&hd)
            .arg(&shape.scale)
            .arg(&window)
            .arg(&psink);
        // SAFETY: the arguments match attention_rows_f16's parameters (sinks null or n_heads
        // f32 on this device, checked); q and out hold n_rows
        // rows of n_heads * head_dim f32 (checked) and every rows[i] < n_rows (built from the
        // sequences' rows); blocks holds n_dec block tables of `ts` entries whose blocks (of
        // this device's pool) cover each sequence's first lens[i] tokens (BatchKv checked, and
        // the append of this step wrote token lens[i] - 1); head_dim <= MAX_HEAD_DIM.
        unsafe { l.launch(cfg)? };
        Ok(())
    }
}
