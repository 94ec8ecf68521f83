//! Launch of `kernels/attention.hip`: causal GQA attention over an f16 KV cache, any length.

use rocmforge_gguf::GgmlType;
use rocmforge_hip::LaunchConfig;

use super::{HipOps, check_device, check_f32, to_u32};
use crate::cpu::AttentionParams;
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

/// Largest head dimension the kernel takes (`ATT_MAX_HEAD_DIM` in the kernel).
pub const MAX_HEAD_DIM: usize = 512;
const THREADS: u32 = 128;

/// `out = softmax(q·Kᵀ · scale, causal) · V` per head. `q`, `out`: F32
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
    let q_len = p.n_q_tokens * p.n_heads * p.head_dim;
    check_f32(OP, "q", q, q_len)?;
    check_f32(OP, "out", out, q_len)?;
    let kv_len = p.n_kv_tokens * p.n_kv_heads * p.head_dim;
    for (what, c) in [("k_cache", k_cache), ("v_cache", v_cache)] {
        c.expect_dtype(OP, GgmlType::F16)?;
        if c.n_elements() < kv_len {
            return Err(TensorError::Shape {
                op: OP,
                what: format!("{what} {:?} holds fewer than {kv_len} values", c.shape()),
            });
        }
    }
    for t in [q, k_cache, v_cache, &*out] {
        check_device(OP, ops, t)?;
    }
    if q_len == 0 {
        return Ok(());
    }
    let f = ops.function("attention", "attention_f16")?;
    let (pq, pk, pv, po) = (
        q.device_ptr(),
        k_cache.device_ptr(),
        v_cache.device_ptr(),
        out.device_ptr(),
    );
    let (nq, nkv) = (
        to_u32(OP, "n_q_tokens", p.n_q_tokens)?,
        to_u32(OP, "n_kv_tokens", p.n_kv_tokens)?,
    );
    let (nh, nkvh, hd) = (
        to_u32(OP, "n_heads", p.n_heads)?,
        to_u32(OP, "n_kv_heads", p.n_kv_heads)?,
        to_u32(OP, "head_dim", p.head_dim)?,
    );
    let cfg = LaunchConfig {
        grid_dim: (nh, nq, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = ops.stream().launch_builder(&f);
    l.arg(&pq).arg(&pk).arg(&pv).arg(&po);
    l.arg(&nq)
        .arg(&nkv)
        .arg(&nh)
        .arg(&nkvh)
        .arg(&hd)
        .arg(&p.scale);
    // SAFETY: the arguments match attention_f16's parameters; q and out hold n_q * n_heads *
    // head_dim f32, the caches at least n_kv * n_kv_heads * head_dim f16 (checked); head_dim <=
    // MAX_HEAD_DIM (the kernel's shared arrays); one block per (head, query).
    unsafe { l.launch(cfg)? };
    Ok(())
}
