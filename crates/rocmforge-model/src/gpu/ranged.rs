//! KV append and attention on a row range of the batch's activations: the batched forward
//! runs every projection over all the batch's tokens at once, then each sequence's keys,
//! values and queries are its own rows of those tensors. These launch the tensor crate's
//! `kv_append_f16` and `attention_f16` kernels with pointers offset to the rows (no copy),
//! after the same checks the whole-tensor ops make.

use rocmforge_gguf::GgmlType;
use rocmforge_hip::{DevicePtr, LaunchConfig};
use rocmforge_tensor::cpu::AttentionParams;
use rocmforge_tensor::hip::HipOps;
use rocmforge_tensor::hip::attention::MAX_HEAD_DIM;
use rocmforge_tensor::{DeviceTensor, TensorError};

use crate::error::{ModelError, ModelResult};

/// Threads per block of `attention_f16` (as the tensor crate launches it).
const ATTENTION_THREADS: u32 = 128;

fn u32_arg(what: &str, n: usize) -> ModelResult<u32> {
    u32::try_from(n).map_err(|_| {
        ModelError::InvalidInput(format!("{what} = {n} exceeds the kernels' 32-bit range"))
    })
}

fn shape_err(op: &'static str, what: String) -> ModelError {
    ModelError::Tensor(TensorError::Shape { op, what })
}

/// The address of f32 element `row * width` of `t` after checking that rows
/// `row..row + n_rows` of width `width` lie inside it.
fn f32_rows(
    op: &'static str,
    t: &DeviceTensor,
    width: usize,
    row: usize,
    n_rows: usize,
) -> ModelResult<DevicePtr> {
    let buf = t.f32_buffer(op)?;
    let end = row.checked_add(n_rows).and_then(|e| e.checked_mul(width));
    match end {
        Some(end) if end <= buf.len() && width > 0 => {
            Ok(buf.device_ptr_at(row * width).map_err(TensorError::Hip)?)
        }
        _ => Err(shape_err(
            op,
            format!(
                "rows {row}..+{n_rows} of width {width} outside a tensor of {} values",
                buf.len()
            ),
        )),
    }
}

/// Writes rows `row..row + n_rows` of `src` (F32, rows of the cache's width) into `cache`
/// (F16) at rows `start..start + n_rows`, rounded to f16.
pub(crate) fn kv_append_rows(
    ops: &HipOps,
    src: &DeviceTensor,
    row: usize,
    n_rows: usize,
    cache: &mut DeviceTensor,
    start: usize,
) -> ModelResult<()> {
    const OP: &str = "kv_append_rows";
    cache.expect_dtype(OP, GgmlType::F16)?;
    let (width, capacity) = (cache.cols(), cache.rows());
    if start.checked_add(n_rows).is_none_or(|end| end > capacity) {
        return Err(shape_err(
            OP,
            format!("rows {start}..+{n_rows} exceed the cache's {capacity} rows"),
        ));
    }
    let ps = f32_rows(OP, src, width, row, n_rows)?;
    if n_rows == 0 {
        return Ok(());
    }
    let pc = cache.device_ptr();
    let f = ops.function("kv_cache", "kv_append_f16")?;
    let (rl, nr, sr) = (
        u32_arg("row_len", width)?,
        u32_arg("n_rows", n_rows)?,
        u32_arg("start_row", start)?,
    );
    let n = n_rows * width;
    let blocks = n.div_ceil(256).clamp(1, 65_535) as u32;
    let cfg = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = ops.stream().launch_builder(&f);
    l.arg(&ps).arg(&pc).arg(&rl).arg(&nr).arg(&sr);
    // SAFETY: (const float* src, rf_half* cache, u32 row_len, u32 n_rows, u32 start_row) is
    // kv_append_f16's signature; src points at n_rows * row_len f32 inside its tensor and
    // rows start..start + n_rows lie inside the cache (both checked above); grid-stride kernel.
    unsafe { l.launch(cfg).map_err(TensorError::Hip)? };
    Ok(())
}

/// Causal attention of the `p.n_q_tokens` query rows starting at `row` of `q` over the first
/// `p.n_kv_tokens` rows of the caches, written to the same rows of `out`.
pub(crate) fn attention_rows(
    ops: &HipOps,
    q: &DeviceTensor,
    row: usize,
    k_cache: &DeviceTensor,
    v_cache: &DeviceTensor,
    p: &AttentionParams,
    out: &mut DeviceTensor,
) -> ModelResult<()> {
    const OP: &str = "attention_rows";
    if p.n_kv_heads == 0
        || p.head_dim == 0
        || p.head_dim > MAX_HEAD_DIM
        || p.n_heads % p.n_kv_heads != 0
        || p.n_q_tokens > p.n_kv_tokens
    {
        return Err(shape_err(OP, format!("unusable parameters {p:?}")));
    }
    let width = p.n_heads * p.head_dim;
    let pq = f32_rows(OP, q, width, row, p.n_q_tokens)?;
    let po = f32_rows(OP, out, width, row, p.n_q_tokens)?;
    let kv_len = p.n_kv_tokens * p.n_kv_heads * p.head_dim;
    for (what, c) in [("k_cache", k_cache), ("v_cache", v_cache)] {
        c.expect_dtype(OP, GgmlType::F16)?;
        if c.n_elements() < kv_len {
            return Err(shape_err(
                OP,
                format!("{what} {:?} holds fewer than {kv_len} values", c.shape()),
            ));
        }
    }
    if p.n_q_tokens == 0 {
        return Ok(());
    }
    let f = ops.function("attention", "attention_f16")?;
    let (pk, pv) = (k_cache.device_ptr(), v_cache.device_ptr());
    let (nq, nkv) = (
        u32_arg("n_q_tokens", p.n_q_tokens)?,
        u32_arg("n_kv_tokens", p.n_kv_tokens)?,
    );
    let (nh, nkvh, hd) = (
        u32_arg("n_heads", p.n_heads)?,
        u32_arg("n_kv_heads", p.n_kv_heads)?,
        u32_arg("head_dim", p.head_dim)?,
    );
    let cfg = LaunchConfig {
        grid_dim: (nh, nq, 1),
        block_dim: (ATTENTION_THREADS, 1, 1),
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
    // SAFETY: the arguments match attention_f16's parameters (as in rocmforge-tensor's
    // hip::attention); q and out point at n_q * n_heads * head_dim f32 inside their tensors,
    // the caches hold at least n_kv * n_kv_heads * head_dim f16 (checked); head_dim <=
    // MAX_HEAD_DIM; one block per (head, query).
    unsafe { l.launch(cfg).map_err(TensorError::Hip)? };
    Ok(())
}

/// Copies rows `row..row + n_rows` (of `width` f32 each) of `t` to the host; the work that
/// writes them must have finished (the forward synchronizes before reading).
pub(crate) fn read_rows(
    t: &DeviceTensor,
    width: usize,
    row: usize,
    n_rows: usize,
) -> ModelResult<Vec<f32>> {
    let src = f32_rows("read_rows", t, width, row, n_rows)?;
    let len = n_rows * width;
    let mut out = vec![0.0f32; len];
    if len == 0 {
        return Ok(out);
    }
    t.backend().bind().map_err(TensorError::Hip)?;
    // SAFETY: `src` points at `len` f32 inside `t`'s allocation (checked by f32_rows), `out`
    // holds `len` writable f32, and the copy is synchronous (no stream), so `out` is written
    // before this returns; every bit pattern is a valid f32.
    unsafe {
        rocmforge_hip::result::memory::dtoh(out.as_mut_ptr().cast(), src.0, len * 4, None)
            .map_err(TensorError::Hip)?;
    }
    Ok(out)
}
