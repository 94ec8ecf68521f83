//! Launch of `kernels/embedding.hip`: rows of a float or quantized table, dequantized on the GPU.

use rocmforge_gguf::GgmlType;
use rocmforge_hip::LaunchConfig;

use super::{HipOps, check_device, check_f32, to_u32};
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

/// The kernel for a table type, if there is one.
pub fn kernel_name(ty: GgmlType) -> Option<&'static str> {
    Some(match ty {
        GgmlType::F32 => "embedding_f32",
        GgmlType::F16 => "embedding_f16",
        GgmlType::BF16 => "embedding_bf16",
        GgmlType::Q8_0 => "embedding_q8_0",
        GgmlType::Q4_0 => "embedding_q4_0",
        GgmlType::Q4_1 => "embedding_q4_1",
        GgmlType::Q5_0 => "embedding_q5_0",
        GgmlType::Q5_1 => "embedding_q5_1",
        GgmlType::Q4_K => "embedding_q4_k",
        GgmlType::Q5_K => "embedding_q5_k",
        GgmlType::Q6_K => "embedding_q6_k",
        _ => return None,
    })
}

/// `out[t] = table[ids[t]]` as f32; `table` is `[rows][cols]` in its GGUF type, `out` F32
/// `[ids.len()][cols]`. An id outside the table is an error (checked on the host).
pub fn embedding(
    ops: &HipOps,
    table: &DeviceTensor,
    ids: &[u32],
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    const OP: &str = "embedding";
    let ty = table.dtype();
    let name = kernel_name(ty).ok_or(TensorError::UnsupportedType { op: OP, ty })?;
    let (rows, cols) = (table.rows(), table.cols());
    check_f32(OP, "out", out, ids.len() * cols)?;
    check_device(OP, ops, table)?;
    check_device(OP, ops, out)?;
    if let Some((index, &id)) = ids.iter().enumerate().find(|(_, id)| **id as usize >= rows) {
        return Err(TensorError::TokenOutOfRange {
            op: OP,
            id,
            index,
            vocab: rows,
        });
    }
    if ids.is_empty() || cols == 0 {
        return Ok(());
    }
    let row_bytes = (cols / ty.block_size() * ty.type_size()) as u64;
    let d_ids = ops.backend().htod(ids)?;
    let f = ops.function("embedding", name)?;
    let (pt, po, c) = (
        table.device_ptr(),
        out.device_ptr(),
        to_u32(OP, "cols", cols)?,
    );
    let cfg = LaunchConfig {
        grid_dim: (to_u32(OP, "ids", ids.len())?, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&pt).arg(&d_ids).arg(&po).arg(&c).arg(&row_bytes);
    // SAFETY: (const u8* table, const u32* ids, float* out, u32 cols, u64 row_bytes) matches;
    // every id < rows (checked), so each block reads one row of row_bytes inside the table, and
    // writes cols f32 of its own output row.
    unsafe { l.launch(cfg)? };
    Ok(())
}

/// [`embedding`] with the `n` ids in device memory (a captured decode step reads the next token
/// there): no host copy, and the range check happens in the kernel, which fills the output row of
/// an id outside the table with NaN instead of reading it.
pub fn embedding_at(
    ops: &HipOps,
    table: &DeviceTensor,
    ids: &rocmforge_hip::DeviceBuffer<u32>,
    n: usize,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    const OP: &str = "embedding_at";
    let ty = table.dtype();
    let name = at_kernel_name(ty).ok_or(TensorError::UnsupportedType { op: OP, ty })?;
    let (rows, cols) = (table.rows(), table.cols());
    check_f32(OP, "out", out, n * cols)?;
    check_device(OP, ops, table)?;
    check_device(OP, ops, out)?;
    if ids.len() < n {
        return Err(TensorError::Shape {
            op: OP,
            what: format!("{} device ids for {n} tokens", ids.len()),
        });
    }
    if n == 0 || cols == 0 {
        return Ok(());
    }
    let row_bytes = (cols / ty.block_size() * ty.type_size()) as u64;
    let f = ops.function("embedding", name)?;
    let (pt, po) = (table.device_ptr(), out.device_ptr());
    let (c, r) = (to_u32(OP, "cols", cols)?, to_u32(OP, "rows", rows)?);
    let cfg = LaunchConfig {
        grid_dim: (to_u32(OP, "ids", n)?, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&pt).arg(ids).arg(&po).arg(&c).arg(&row_bytes).arg(&r);
    // SAFETY: (const u8* table, const u32* ids, float* out, u32 cols, u64 row_bytes, u32 rows)
    // matches; ids holds n entries (checked); the kernel reads a table row only for an id
    // below rows, and writes cols f32 of its own output row.
    unsafe { l.launch(cfg)? };
    Ok(())
}

/// The `embedding_at_<type>` kernel for a table type, if there is one.
pub fn at_kernel_name(ty: GgmlType) -> Option<&'static str> {
    Some(match ty {
        GgmlType::F32 => "embedding_at_f32",
        GgmlType::F16 => "embedding_at_f16",
        GgmlType::BF16 => "embedding_at_bf16",
        GgmlType::Q8_0 => "embedding_at_q8_0",
        GgmlType::Q4_0 => "embedding_at_q4_0",
        GgmlType::Q4_1 => "embedding_at_q4_1",
        GgmlType::Q5_0 => "embedding_at_q5_0",
        GgmlType::Q5_1 => "embedding_at_q5_1",
        GgmlType::Q4_K => "embedding_at_q4_k",
        GgmlType::Q5_K => "embedding_at_q5_k",
        GgmlType::Q6_K => "embedding_at_q6_k",
        _ => return None,
    })
}
