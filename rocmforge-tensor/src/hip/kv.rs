//! Launch of `kernels/kv_cache.hip`: append f32 K/V rows to an f16 cache at a position.

use super::{HipOps, check_device, check_f32, f32_rows_ptr, grid_1d, to_u32};
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

/// Writes the rows of `src` (F32, `[n_tokens][row_len]`) into `cache` (F16,
/// `[capacity][row_len]`) at rows `start_row..start_row + n_tokens`, rounded to f16.
pub fn kv_append(
    ops: &HipOps,
    src: &DeviceTensor,
    cache: &mut DeviceTensor,
    start_row: usize,
) -> TensorResult<()> {
    let row_len = cache.cols();
    let n = src.n_elements();
    if row_len == 0 || n % row_len != 0 {
        return Err(TensorError::Shape {
            op: "kv_append",
            what: format!("src {:?} is not whole rows of {row_len}", src.shape()),
        });
    }
    kv_append_rows(ops, src, 0, n / row_len, cache, start_row)
}

/// Writes rows `row..row + n_rows` of `src` (F32, rows of the cache's width) into `cache`
/// (F16, `[capacity][row_len]`) at rows `start_row..start_row + n_rows`, rounded to f16: one
/// sequence's keys or values out of a batch's rows, without a copy.
pub fn kv_append_rows(
    ops: &HipOps,
    src: &DeviceTensor,
    row: usize,
    n_rows: usize,
    cache: &mut DeviceTensor,
    start_row: usize,
) -> TensorResult<()> {
    const OP: &str = "kv_append_rows";
    cache.expect_dtype(OP, rocmforge_gguf::GgmlType::F16)?;
    let row_len = cache.cols();
    let capacity = cache.rows();
    if start_row
        .checked_add(n_rows)
        .is_none_or(|end| end > capacity)
    {
        return Err(TensorError::Shape {
            op: OP,
            what: format!("rows {start_row}..+{n_rows} exceed the cache's {capacity} rows"),
        });
    }
    let ps = f32_rows_ptr(OP, src, row_len, row, n_rows)?;
    check_device(OP, ops, src)?;
    check_device(OP, ops, cache)?;
    if n_rows == 0 {
        return Ok(());
    }
    let f = ops.function("kv_cache", "kv_append_f16")?;
    let pc = cache.device_ptr();
    let (rl, nr, sr) = (
        to_u32(OP, "row_len", row_len)?,
        to_u32(OP, "n_rows", n_rows)?,
        to_u32(OP, "start_row", start_row)?,
    );
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&ps).arg(&pc).arg(&rl).arg(&nr).arg(&sr);
    // SAFETY: (const float*, rf_half*, u32, u32, u32) matches; rows start_row..start_row+n_rows
    // lie inside the cache and `ps` points at n_rows * row_len f32 inside src (both checked).
    unsafe { l.launch(grid_1d(n_rows * row_len, 256))? };
    Ok(())
}

/// [`kv_append`] with the first row read on the device (`start_row[0]`), so a captured graph
/// appends at the cache's current length on each replay; rows past the capacity are skipped
/// (never written), so a stale row can not write out of bounds.
pub fn kv_append_at(
    ops: &HipOps,
    src: &DeviceTensor,
    cache: &mut DeviceTensor,
    start_row: &rocmforge_hip::DeviceBuffer<u32>,
) -> TensorResult<()> {
    const OP: &str = "kv_append_at";
    cache.expect_dtype(OP, rocmforge_gguf::GgmlType::F16)?;
    let (row_len, capacity) = (cache.cols(), cache.rows());
    let n = src.n_elements();
    if row_len == 0 || n % row_len != 0 || start_row.is_empty() {
        return Err(TensorError::Shape {
            op: OP,
            what: format!(
                "src {:?} is not whole rows of {row_len}, or no start row ({} entries)",
                src.shape(),
                start_row.len()
            ),
        });
    }
    check_f32(OP, "src", src, n)?;
    check_device(OP, ops, src)?;
    check_device(OP, ops, cache)?;
    if n == 0 {
        return Ok(());
    }
    let f = ops.function("kv_cache", "kv_append_at_f16")?;
    let (ps, pc) = (src.device_ptr(), cache.device_ptr());
    let (rl, nr, cap) = (
        to_u32(OP, "row_len", row_len)?,
        to_u32(OP, "n_rows", n / row_len)?,
        to_u32(OP, "capacity", capacity)?,
    );
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&ps)
        .arg(&pc)
        .arg(&rl)
        .arg(&nr)
        .arg(start_row)
        .arg(&cap);
    // SAFETY: (const float*, rf_half*, u32 row_len, u32 n_rows, const u32* start_row,
    // u32 capacity) matches; the kernel writes only rows below capacity; src holds
    // n_rows * row_len f32 (checked).
    unsafe { l.launch(grid_1d(n, 256))? };
    Ok(())
}
