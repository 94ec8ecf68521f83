//! Launches of `kernels/attention_decode.hip`: split-K ("flash-decoding") attention of one query
//! token over an f16 KV cache whose length is read on the device, so a captured graph replays
//! unchanged while the cache grows.
//!
//! The grid is sized for the cache's capacity: chunks past the length return at once. Partial
//! results go to a workspace of [`workspace_len`] floats, which the caller owns (allocated once,
//! outside any capture).

use rocmforge_hip::{DeviceBuffer, LaunchConfig};

use super::{HipOps, check_device, check_f32, to_u32};
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

const OP: &str = "attention_decode";
/// Keys per chunk (one per thread of a block).
pub const CHUNK: usize = 128;
/// Partial-result slots per chunk: warps per block at the smallest warp size (32 lanes).
pub const SUBS_PER_CHUNK: usize = CHUNK / 32;
/// Threads of a combine block (one block per query head).
const COMBINE_THREADS: u32 = 512;
/// Most query heads per KV head.
pub const MAX_GROUP: usize = 8;
/// Largest head dimension.
pub const MAX_HEAD_DIM: usize = 256;

/// Shapes of one decode attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeAttentionShape {
    /// Query heads.
    pub n_heads: usize,
    /// KV heads (divides `n_heads`, at most [`MAX_GROUP`] query heads each).
    pub n_kv_heads: usize,
    /// Values per head (at most [`MAX_HEAD_DIM`]).
    pub head_dim: usize,
    /// Rows of the KV cache (the longest length the graph may see).
    pub capacity: usize,
}

impl DecodeAttentionShape {
    fn chunks(&self) -> usize {
        self.capacity.div_ceil(CHUNK).max(1)
    }

    fn check(&self) -> TensorResult<()> {
        let s = self;
        let bad = |what: String| Err(TensorError::Shape { op: OP, what });
        if s.n_kv_heads == 0 || s.n_heads % s.n_kv_heads != 0 {
            return bad(format!(
                "{} query heads are not a multiple of {} KV heads",
                s.n_heads, s.n_kv_heads
            ));
        }
        if s.n_heads / s.n_kv_heads > MAX_GROUP {
            return bad(format!(
                "{} query heads per KV head (at most {MAX_GROUP})",
                s.n_heads / s.n_kv_heads
            ));
        }
        if s.head_dim == 0 || s.head_dim > MAX_HEAD_DIM {
            return bad(format!(
                "head_dim {} (1..={MAX_HEAD_DIM} supported)",
                s.head_dim
            ));
        }
        if s.capacity == 0 {
            return bad("a cache of capacity 0".to_string());
        }
        Ok(())
    }
}

/// Floats of workspace [`attention_decode`] needs for `shape`.
pub fn workspace_len(shape: &DecodeAttentionShape) -> usize {
    shape.chunks() * SUBS_PER_CHUNK * shape.n_heads * (shape.head_dim + 2)
}

/// `out = softmax(q · Kᵀ · scale) · V` for one query token (`q`, `out`: F32
/// `[n_heads * head_dim]`) over the first `len[0]` rows of `k_cache` / `v_cache` (F16
/// `[capacity][n_kv_heads * head_dim]`); `len` is read by the kernels, never by the host.
/// A length above the capacity reads only the capacity (the kernels clamp it).
#[allow(clippy::too_many_arguments)]
pub fn attention_decode(
    ops: &HipOps,
    q: &DeviceTensor,
    k_cache: &DeviceTensor,
    v_cache: &DeviceTensor,
    len: &DeviceBuffer<u32>,
    shape: &DecodeAttentionShape,
    scale: f32,
    workspace: &mut DeviceBuffer<f32>,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    shape.check()?;
    let s = shape;
    let q_len = s.n_heads * s.head_dim;
    let kv_len = s.n_kv_heads * s.head_dim;
    check_f32(OP, "q", q, q_len)?;
    check_f32(OP, "out", out, q_len)?;
    for (what, c) in [("k_cache", k_cache), ("v_cache", v_cache)] {
        c.expect_dtype(OP, rocmforge_gguf::GgmlType::F16)?;
        if c.cols() != kv_len || c.rows() != s.capacity {
            return Err(TensorError::Shape {
                op: OP,
                what: format!(
                    "{what} {:?}, expected [{}, {kv_len}]",
                    c.shape(),
                    s.capacity
                ),
            });
        }
    }
    for t in [q, k_cache, v_cache, &*out] {
        check_device(OP, ops, t)?;
    }
    if len.is_empty() || workspace.len() < workspace_len(s) {
        return Err(TensorError::Shape {
            op: OP,
            what: format!(
                "length buffer of {} entries, workspace of {} floats (need 1 and {})",
                len.len(),
                workspace.len(),
                workspace_len(s)
            ),
        });
    }
    let chunks = s.chunks();
    let acc_floats = chunks * SUBS_PER_CHUNK * s.n_heads * s.head_dim;
    let part_acc = workspace.device_ptr();
    let part_ml = part_acc
        .byte_offset(acc_floats * 4)
        .ok_or_else(|| TensorError::Shape {
            op: OP,
            what: "workspace offset overflows a device address".to_string(),
        })?;
    let (nh, nkv, hd) = (
        to_u32(OP, "n_heads", s.n_heads)?,
        to_u32(OP, "n_kv_heads", s.n_kv_heads)?,
        to_u32(OP, "head_dim", s.head_dim)?,
    );
    let cap = to_u32(OP, "capacity", s.capacity)?;
    let (pq, pk, pv, po) = (
        q.device_ptr(),
        k_cache.device_ptr(),
        v_cache.device_ptr(),
        out.device_ptr(),
    );
    let partial = ops.function("attention_decode", "attention_decode_partial_f16")?;
    let combine = ops.function("attention_decode", "attention_decode_combine_f32")?;
    let mut l = ops.stream().launch_builder(&partial);
    l.arg(&pq)
        .arg(&pk)
        .arg(&pv)
        .arg(len)
        .arg(&part_acc)
        .arg(&part_ml)
        .arg(&nh)
        .arg(&nkv)
        .arg(&hd)
        .arg(&scale)
        .arg(&cap);
    let cfg = LaunchConfig {
        grid_dim: (to_u32(OP, "chunks", chunks)?, nkv, 1),
        block_dim: (CHUNK as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: (q, k, v, const u32* len, float* part_acc, float* part_ml, u32 n_heads,
    // u32 n_kv_heads, u32 head_dim, float scale, u32 capacity) matches. q holds
    // n_heads * head_dim f32, the caches capacity rows (checked); the kernel clamps the length
    // to the capacity; chunks * SUBS_PER_CHUNK * n_heads * (head_dim + 2) workspace floats
    // (checked) hold both partial arrays, at most SUBS_PER_CHUNK sub-chunks per chunk for any
    // warp size; group <= 8 and head_dim <= 256 (checked) fit its register arrays.
    unsafe { l.launch(cfg)? };
    let mut l = ops.stream().launch_builder(&combine);
    l.arg(&part_acc)
        .arg(&part_ml)
        .arg(len)
        .arg(&po)
        .arg(&nh)
        .arg(&hd)
        .arg(&cap);
    let cfg = LaunchConfig {
        grid_dim: (nh, 1, 1),
        block_dim: (COMBINE_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: (part_acc, part_ml, const u32* len, float* out, u32 n_heads, u32 head_dim,
    // u32 capacity) matches; the kernel reads the sub-chunks below the clamped length, all
    // written by the partial launch queued before it; out holds n_heads * head_dim f32; its
    // 512 threads match the kernel's launch bounds.
    unsafe { l.launch(cfg)? };
    Ok(())
}
