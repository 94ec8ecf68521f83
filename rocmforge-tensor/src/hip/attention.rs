//! Launch of `kernels/attention.hip`: causal GQA attention over an f16 KV cache, any length.
//!
//! Two kernels with one signature: `attention_f16` (one block per head and query; decode and
//! short batches) and, for [`PREFILL_MIN_QUERIES`] queries or more with head_dim 64, 96 or 128,
//! `attention_prefill_f16_hd<D>` (flash-attention tiles: K/V staged in shared memory once per
//! 32 queries, online softmax).

use rocmforge_gguf::GgmlType;
use rocmforge_hip::{DevicePtr, LaunchConfig};

use super::{HipOps, check_device, check_f32, f32_rows_ptr, to_u32};
use crate::cpu::AttentionParams;
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

/// Largest head dimension the kernel takes (`ATT_MAX_HEAD_DIM` in the kernel).
pub const MAX_HEAD_DIM: usize = 512;
const THREADS: u32 = 128;
/// From this many queries on (prefill), head dims 64, 96 and 128 take the tiled
/// flash-attention kernel (`attention_prefill_f16_hd<D>`); fewer take `attention_f16`.
pub const PREFILL_MIN_QUERIES: usize = 16;
const PREFILL_THREADS: u32 = 128;
const PREFILL_QUERIES_PER_BLOCK: u32 = 32;

/// The tiled prefill kernel for `head_dim` (its paged entry point with `paged`), if there is
/// one.
fn prefill_kernel(head_dim: usize, paged: bool) -> Option<&'static str> {
    match (head_dim, paged) {
        (64, false) => Some("attention_prefill_f16_hd64"),
        (96, false) => Some("attention_prefill_f16_hd96"),
        (128, false) => Some("attention_prefill_f16_hd128"),
        (64, true) => Some("attention_prefill_paged_f16_hd64"),
        (96, true) => Some("attention_prefill_paged_f16_hd96"),
        (128, true) => Some("attention_prefill_paged_f16_hd128"),
        _ => None,
    }
}

/// Where a launch reads the keys and values: two contiguous caches, or a paged cache (a block
/// table on the device and the layer's K and V byte offsets inside each block).
enum KvSource<'a> {
    Contiguous(&'a DeviceTensor, &'a DeviceTensor),
    Paged {
        table: DevicePtr,
        k_off: u64,
        v_off: u64,
    },
}

/// A sliding window as the kernels take it: its length, 0 for none (a window of 0 keys, or
/// one past the 32-bit range, is refused).
pub(crate) fn window_arg(op: &'static str, window: Option<usize>) -> TensorResult<u32> {
    match window {
        None => Ok(0),
        Some(0) => Err(TensorError::Shape {
            op,
            what: "a sliding window of 0 keys".to_string(),
        }),
        Some(w) => to_u32(op, "window", w),
    }
}

/// `out = softmax(q·Kᵀ · scale, causal) · V` per head (over the last `p.window` keys of each
/// query when set). `q`, `out`: F32
/// `[n_q_tokens][n_heads][head_dim]`; `k_cache`, `v_cache`: F16 `[capacity][n_kv_heads][head_dim]`
/// of which the first `n_kv_tokens` rows are used. Same semantics as [`crate::cpu::attention`].
pub fn attention(
    ops: &HipOps,
    q: &DeviceTensor,
    k_cache: &DeviceTensor,
    v_cache: &DeviceTensor,
    p: &AttentionParams,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    let q_len = p.n_q_tokens * p.n_heads * p.head_dim;
    check_f32("attention", "q", q, q_len)?;
    check_f32("attention", "out", out, q_len)?;
    attention_rows(ops, q, 0, k_cache, v_cache, p, None, out)
}

/// The device address of the per-head sink logits (null when there are none), checked to hold
/// `n_heads` f32 on this device.
pub(crate) fn sinks_ptr(
    op: &'static str,
    ops: &HipOps,
    sinks: Option<&DeviceTensor>,
    n_heads: usize,
) -> TensorResult<DevicePtr> {
    match sinks {
        None => Ok(DevicePtr(0)),
        Some(s) => {
            check_f32(op, "sinks", s, n_heads)?;
            check_device(op, ops, s)?;
            Ok(s.device_ptr())
        }
    }
}

/// Checks the head shape (a whole group ratio, a head the kernels take) and that the queries
/// are the last keys.
fn check_params(p: &AttentionParams) -> TensorResult<()> {
    const OP: &str = "attention";
    if p.n_kv_heads == 0
        || p.head_dim == 0
        || p.head_dim > MAX_HEAD_DIM
        || p.n_heads % p.n_kv_heads != 0
    {
        return Err(TensorError::Shape {
            op: OP,
            what: format!(
                "{} heads over {} KV heads of dim {} (need a whole group ratio, dim 1..={MAX_HEAD_DIM})",
                p.n_heads, p.n_kv_heads, p.head_dim
            ),
        });
    }
    if p.n_q_tokens > p.n_kv_tokens {
        return Err(TensorError::Shape {
            op: OP,
            what: format!(
                "{} queries over {} keys (the queries are the last keys)",
                p.n_q_tokens, p.n_kv_tokens
            ),
        });
    }
    Ok(())
}

/// [`attention`] of the `p.n_q_tokens` query rows starting at row `row` of `q` (rows of
/// `n_heads * head_dim`), written to the same rows of `out`: one sequence of a batch, without a
/// copy. The tiled prefill kernel serves a row range as it serves a whole tensor. `sinks`
/// (F32 `[n_heads]`) joins each head's softmax denominators.
#[allow(clippy::too_many_arguments)]
pub fn attention_rows(
    ops: &HipOps,
    q: &DeviceTensor,
    row: usize,
    k_cache: &DeviceTensor,
    v_cache: &DeviceTensor,
    p: &AttentionParams,
    sinks: Option<&DeviceTensor>,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    const OP: &str = "attention";
    check_params(p)?;
    let kv_len = p.n_kv_tokens * p.n_kv_heads * p.head_dim;
    for (what, c) in [("k_cache", k_cache), ("v_cache", v_cache)] {
        c.expect_dtype(OP, GgmlType::F16)?;
        if c.n_elements() < kv_len {
            return Err(TensorError::Shape {
                op: OP,
                what: format!("{what} {:?} holds fewer than {kv_len} values", c.shape()),
            });
        }
        check_device(OP, ops, c)?;
    }
    launch(
        ops,
        q,
        row,
        KvSource::Contiguous(k_cache, v_cache),
        p,
        sinks,
        out,
    )
}

/// [`attention_rows`] over a paged cache: `table` is the device address of the sequence's block
/// table, whose blocks (of a [`crate::KvPool`] on this device) cover its first `p.n_kv_tokens`
/// tokens; the layer's keys and values sit `k_off` / `v_off` bytes into each block.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attention_paged_rows(
    ops: &HipOps,
    q: &DeviceTensor,
    row: usize,
    table: DevicePtr,
    k_off: u64,
    v_off: u64,
    p: &AttentionParams,
    sinks: Option<&DeviceTensor>,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    check_params(p)?;
    let kv = KvSource::Paged {
        table,
        k_off,
        v_off,
    };
    launch(ops, q, row, kv, p, sinks, out)
}

/// The kernel launch of [`attention_rows`] and [`attention_paged_rows`] (head shapes checked
/// by the caller).
fn launch(
    ops: &HipOps,
    q: &DeviceTensor,
    row: usize,
    kv: KvSource<'_>,
    p: &AttentionParams,
    sinks: Option<&DeviceTensor>,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    const OP: &str = "attention";
    let width = p.n_heads * p.head_dim;
    let pq = f32_rows_ptr(OP, q, width, row, p.n_q_tokens)?;
    let po = f32_rows_ptr(OP, out, width, row, p.n_q_tokens)?;
    for t in [q, &*out] {
        check_device(OP, ops, t)?;
    }
    if p.n_q_tokens == 0 {
        return Ok(());
    }
    let paged = matches!(kv, KvSource::Paged { .. });
    let prefill = prefill_kernel(p.head_dim, paged).filter(|_| p.n_q_tokens >= PREFILL_MIN_QUERIES);
    let plain = if paged {
        "attention_paged_f16"
    } else {
        "attention_f16"
    };
    let f = ops.function("attention", prefill.unwrap_or(plain))?;
    let (nq, nkv) = (
        to_u32(OP, "n_q_tokens", p.n_q_tokens)?,
        to_u32(OP, "n_kv_tokens", p.n_kv_tokens)?,
    );
    let (nh, nkvh, hd) = (
        to_u32(OP, "n_heads", p.n_heads)?,
        to_u32(OP, "n_kv_heads", p.n_kv_heads)?,
        to_u32(OP, "head_dim", p.head_dim)?,
    );
    let window = window_arg(OP, p.window)?;
    let psink = sinks_ptr(OP, ops, sinks, p.n_heads)?;
    let cfg = match prefill {
        // One block per (head, tile of PREFILL_QUERIES_PER_BLOCK queries).
        Some(_) => LaunchConfig {
            grid_dim: (nh, nq.div_ceil(PREFILL_QUERIES_PER_BLOCK), 1),
            block_dim: (PREFILL_THREADS, 1, 1),
            shared_mem_bytes: 0,
        },
        None => LaunchConfig {
            grid_dim: (nh, nq, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        },
    };
    let mut l = ops.stream().launch_builder(&f);
    l.arg(&pq);
    let (pk, pv);
    match kv {
        KvSource::Contiguous(k, v) => {
            (pk, pv) = (k.device_ptr(), v.device_ptr());
            l.arg(&pk).arg(&pv);
        }
        KvSource::Paged {
            ref table,
            ref k_off,
            ref v_off,
        } => {
            l.arg(table).arg(k_off).arg(v_off);
        }
    }
    l.arg(&po);
    l.arg(&nq)
        .arg(&nkv)
        .arg(&nh)
        .arg(&nkvh)
        .arg(&hd)
        .arg(&p.scale)
        .arg(&window)
        .arg(&psink);
    // SAFETY: the arguments match attention_f16's parameters (and attention_prefill_f16_hd<D>'s,
    // which are the same, chosen only for head_dim == D), or with a paged source those of
    // attention_paged_f16 / attention_prefill_paged_f16_hd<D> (a block table whose blocks cover
    // n_kv tokens: attention_paged_rows's contract); q and out hold n_q * n_heads *
    // head_dim f32 from their row `row` on, contiguous caches at least n_kv * n_kv_heads *
    // head_dim f16 (checked by attention_rows); head_dim <=
    // MAX_HEAD_DIM (the kernel's shared arrays); the grid matches the kernel chosen; sinks is
    // null or holds n_heads f32 on this device (checked).
    unsafe { l.launch(cfg)? };
    Ok(())
}
