//! The device side of [`crate::batch_kv::BatchKv`]: address tables of a step's cache rows and
//! the launches over them: `kv_append_rows_f16`, `rope_kv_append_rows_f32` (biases + RoPE +
//! append), and the decode attention (`attention_rows_split_f16` + `attention_rows_combine_f32`,
//! or `attention_rows_f16` for head dims the split kernel does not take).

use rocmforge_hip::{DeviceBuffer, DevicePtr, HipEvent, LaunchConfig, PinnedHostBuffer};

use super::attention::MAX_HEAD_DIM;
use super::rope::RopeArgs;
use super::{HipOps, check_device, check_f32, grid_1d, to_u32};
use crate::batch_kv::{HeadShape, SeqKv};
use crate::cpu::RopeParams;
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

const OP: &str = "batch_kv";
/// Threads per block of `attention_rows_f16` (`ATT_THREADS` in kernels/attention.hip).
const ATTENTION_THREADS: u32 = 128;
/// `attention_rows_split_f16` (kernels/attention.hip): query heads per block (`AS_GC`), largest
/// head dimension (`AS_MAX_HD`); threads of `attention_rows_combine_f32`.
const SPLIT_GROUP: usize = 8;
const SPLIT_MAX_HEAD_DIM: usize = 256;
const COMBINE_THREADS: u32 = 128;
/// Blocks (one warp each) per compute unit the split attention aims for, and its most splits
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

/// Per layer: the address of every batch row's K and V cache row (append), and for each
/// decoding sequence the base of its K and V caches (attention); the decoding sequences' batch
/// rows and visible lengths. The addresses point into a [`TableBuffers`] that the owning
/// [`crate::batch_kv::BatchKv`] borrows for as long as it lives.
#[derive(Debug)]
pub(crate) struct KvTables {
    /// `[k_dst: layers × rows][v_dst: layers × rows][k_base: layers × dec][v_base: layers × dec]`.
    ptrs: DevicePtr,
    /// `[rows: dec][lens: dec]`.
    idx: DevicePtr,
    n_rows: usize,
    n_layers: usize,
    n_dec: usize,
    k_width: usize,
    v_width: usize,
}

fn width_of(t: &DeviceTensor) -> usize {
    t.cols()
}

impl KvTables {
    pub(crate) fn new(
        ops: &HipOps,
        seqs: &[SeqKv<'_>],
        n_layers: usize,
        buffers: &mut Option<TableBuffers>,
    ) -> TensorResult<Self> {
        let n_rows: usize = seqs.iter().map(|s| s.n).sum();
        let n_dec = seqs.iter().filter(|s| s.n == 1).count();
        let mut widths = None;
        let mut ptrs = vec![0u64; 2 * n_layers * (n_rows + n_dec)];
        let (kd0, vd0) = (0, n_layers * n_rows);
        let (kb0, vb0) = (
            2 * n_layers * n_rows,
            2 * n_layers * n_rows + n_layers * n_dec,
        );
        for il in 0..n_layers {
            let (mut r, mut d) = (0, 0);
            for s in seqs {
                let (kt, vt) = (s.k[il].hip(OP)?, s.v[il].hip(OP)?);
                check_device(OP, ops, kt)?;
                check_device(OP, ops, vt)?;
                let w = (width_of(kt), width_of(vt));
                if *widths.get_or_insert(w) != w {
                    return Err(TensorError::Shape {
                        op: OP,
                        what: format!("caches of widths {w:?} and {widths:?} in one batch"),
                    });
                }
                let (kb, vb) = (kt.device_ptr().0, vt.device_ptr().0);
                for i in 0..s.n {
                    let at = (s.start + i) as u64;
                    ptrs[kd0 + il * n_rows + r] = kb + at * (w.0 as u64) * 2;
                    ptrs[vd0 + il * n_rows + r] = vb + at * (w.1 as u64) * 2;
                    r += 1;
                }
                if s.n == 1 {
                    ptrs[kb0 + il * n_dec + d] = kb;
                    ptrs[vb0 + il * n_dec + d] = vb;
                    d += 1;
                }
            }
        }
        let mut idx = Vec::with_capacity(2 * n_dec);
        for s in seqs.iter().filter(|s| s.n == 1) {
            idx.push(to_u32(OP, "row", s.row)?);
        }
        for s in seqs.iter().filter(|s| s.n == 1) {
            idx.push(to_u32(OP, "length", s.start + 1)?);
        }
        let (k_width, v_width) = widths.unwrap_or((0, 0));
        let (ptrs, idx) = TableBuffers::upload(buffers, ops, &ptrs, &idx)?;
        Ok(KvTables {
            ptrs,
            idx,
            n_rows,
            n_layers,
            n_dec,
            k_width,
            v_width,
        })
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
            (k, self.k_width, layer * self.n_rows),
            (v, self.v_width, (self.n_layers + layer) * self.n_rows),
        ];
        for (src, width, at) in halves {
            check_f32(OP, "src", src, n_rows * width)?;
            check_device(OP, ops, src)?;
            let (ps, pd, rl) = (src.device_ptr(), self.ptr(at)?, to_u32(OP, "width", width)?);
            let mut l = ops.stream().launch_builder(&f);
            l.arg(&ps).arg(&pd).arg(&rl).arg(&nr);
            // SAFETY: (const float* src, const u64* dst, u32 row_len, u32 n_rows) matches
            // kv_append_rows_f16; src holds n_rows * row_len f32 (checked), the table holds
            // n_rows addresses from `at`, each the start of a row of row_len f16 inside a cache
            // of this device that BatchKv checked has room for it and borrows mutably.
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
        if layer >= self.n_layers
            || kv_width != self.k_width
            || kv_width != self.v_width
            || positions.len() < self.n_rows
        {
            return Err(TensorError::Shape {
                op: OP,
                what: format!(
                    "{shape:?} at layer {layer} over caches of width {} ({} positions for {} rows)",
                    self.k_width,
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

    /// The attention of every decoding sequence's query row, one launch for all of them.
    pub(crate) fn attention_decode_rows(
        &self,
        ops: &HipOps,
        layer: usize,
        q: &DeviceTensor,
        shape: &HeadShape,
        sinks: Option<&DeviceTensor>,
        out: &mut DeviceTensor,
    ) -> TensorResult<()> {
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
            || kv_width != self.k_width
            || kv_width != self.v_width
        {
            return Err(TensorError::Shape {
                op: OP,
                what: format!(
                    "{shape:?} at layer {layer} over caches of width {}",
                    self.k_width
                ),
            });
        }
        let width = shape.n_heads * shape.head_dim;
        check_f32(OP, "q", q, self.n_rows * width)?;
        check_f32(OP, "out", out, self.n_rows * width)?;
        check_device(OP, ops, q)?;
        check_device(OP, ops, out)?;
        let kb = self.ptr(2 * self.n_layers * self.n_rows + layer * self.n_dec)?;
        let vb =
            self.ptr(2 * self.n_layers * self.n_rows + (self.n_layers + layer) * self.n_dec)?;
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
            let ns = to_u32(OP, "n_split", n_split)?;
            let f = ops.function("attention", "attention_rows_split_f16")?;
            let cfg = LaunchConfig {
                grid_dim: (ns, to_u32(OP, "KV head blocks", y_blocks)?, n_dec),
                block_dim: (ops.backend().info().warp_size.max(1), 1, 1),
                shared_mem_bytes: 0,
            };
            let mut l = ops.stream().launch_builder(&f);
            l.arg(&pq)
                .arg(&kb)
                .arg(&vb)
                .arg(&rows)
                .arg(&lens)
                .arg(&part);
            l.arg(&nh)
                .arg(&nkvh)
                .arg(&hd)
                .arg(&shape.scale)
                .arg(&ns)
                .arg(&window);
            // SAFETY: the arguments match attention_rows_split_f16's parameters; one block is
            // one warp (the kernel's size); q holds n_rows rows of n_heads * head_dim f32
            // (checked) and every rows[i] < n_rows; k_base/v_base hold n_dec cache addresses
            // of this device whose first lens[i] rows of n_kv_heads * head_dim f16 exist
            // (BatchKv checked the room; this step's append wrote row lens[i] - 1); head_dim is
            // even and at most the kernel's maximum; part holds n_dec * n_heads * n_split *
            // (head_dim + 2) f32 (allocated above).
            unsafe { l.launch(cfg)? };
            let f = ops.function("attention", "attention_rows_combine_f32")?;
            let cfg = LaunchConfig {
                grid_dim: (nh, n_dec, 1),
                block_dim: (COMBINE_THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            let mut l = ops.stream().launch_builder(&f);
            l.arg(&part)
                .arg(&rows)
                .arg(&lens)
                .arg(&po)
                .arg(&nh)
                .arg(&hd)
                .arg(&ns)
                .arg(&window)
                .arg(&psink);
            // SAFETY: the arguments match attention_rows_combine_f32's parameters (sinks null or
            // n_heads f32 on this device, checked); part holds
            // the partials the launch above wrote for the splits each sequence uses (the same
            // count from the same lens and window, at most n_split <= the kernel's AS_MAX_SPLIT), out holds
            // n_rows rows of n_heads * head_dim f32 (checked) and every rows[i] < n_rows.
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
        l.arg(&pq).arg(&kb).arg(&vb).arg(&rows).arg(&lens).arg(&po);
        l.arg(&nh)
            .arg(&nkvh)
            .arg(&hd)
            .arg(&shape.scale)
            .arg(&window)
            .arg(&psink);
        // SAFETY: the arguments match attention_rows_f16's parameters (sinks null or n_heads
        // f32 on this device, checked); q and out hold n_rows
        // rows of n_heads * head_dim f32 (checked) and every rows[i] < n_rows (built from the
        // sequences' rows); k_base/v_base hold n_dec cache addresses of this device whose first
        // lens[i] rows of n_kv_heads * head_dim f16 exist (BatchKv checked the room, and the
        // append of this step wrote row lens[i] - 1); head_dim <= MAX_HEAD_DIM.
        unsafe { l.launch(cfg)? };
        Ok(())
    }
}
