//! Launches of `kernels/dequant_f16.hip`: GGUF weights and f32 activations to f16, the input of
//! the vendor BLAS GEMM ([`super::matmul_blas`]).
//!
//! Every quantized type the matmul kernels read is decoded by the same block unpackers
//! (`kernels/include/rf_quant_blocks.h`), so the f16 values are the numbers the integer-dot
//! kernels multiply, rounded once to f16. F32 and BF16 weights are converted (saturating at the
//! f16 range); F16 weights need no pass at all.

use std::collections::HashMap;
use std::sync::Arc;

use half::f16;
use rocmforge_gguf::GgmlType;
use rocmforge_hip::{
    DeviceBuffer, DevicePtr, HipBackend, HipFunction, HipModule, HipStream, LaunchConfig,
};

use super::grid_1d;
use crate::error::{TensorError, TensorResult};

const OP: &str = "hip::dequantize_f16";
const THREADS: u32 = 256;

/// Kernel name and values one thread decodes (the unpacker's chunk) for a quantized type.
fn quant_kernel(ty: GgmlType) -> Option<(&'static str, usize)> {
    use GgmlType::*;
    Some(match ty {
        Q4_0 => ("dequant_f16_q4_0", 32),
        Q4_1 => ("dequant_f16_q4_1", 32),
        Q5_0 => ("dequant_f16_q5_0", 32),
        Q5_1 => ("dequant_f16_q5_1", 32),
        Q8_0 => ("dequant_f16_q8_0", 32),
        IQ4_NL => ("dequant_f16_iq4_nl", 32),
        MXFP4 => ("dequant_f16_mxfp4", 32),
        IQ4_XS => ("dequant_f16_iq4_xs", 32),
        Q2_K => ("dequant_f16_q2_k", 128),
        Q3_K => ("dequant_f16_q3_k", 128),
        Q4_K => ("dequant_f16_q4_k", 64),
        Q5_K => ("dequant_f16_q5_k", 64),
        Q6_K => ("dequant_f16_q6_k", 128),
        _ => return None,
    })
}

/// Whether weights of type `ty` can be brought to f16 (F16 itself included).
pub fn supports(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F16 | GgmlType::F32 | GgmlType::BF16) || quant_kernel(ty).is_some()
}

/// The conversion kernels of one device, looked up on first use.
#[derive(Debug)]
pub struct DequantKernels {
    module: Arc<HipModule>,
    functions: HashMap<&'static str, HipFunction>,
}

impl DequantKernels {
    /// Loads `kernels/dequant_f16` for `backend`'s device.
    pub fn new(backend: &Arc<HipBackend>) -> TensorResult<Self> {
        Ok(Self {
            module: backend.load_kernels("dequant_f16")?,
            functions: HashMap::new(),
        })
    }

    fn function(&mut self, name: &'static str) -> TensorResult<HipFunction> {
        if let Some(f) = self.functions.get(name) {
            return Ok(f.clone());
        }
        let f = self.module.function(name)?;
        self.functions.insert(name, f.clone());
        Ok(f)
    }

    /// Queues `n` f32 (or bf16 when `bf16`) values at `x` converted to f16 at `out`.
    ///
    /// # Safety
    /// `x` holds `n` values and `out` `n` f16 on the stream's device, both alive until the
    /// stream reaches the kernel.
    pub unsafe fn convert_raw(
        &mut self,
        stream: &HipStream,
        x: DevicePtr,
        bf16: bool,
        n: usize,
        out: DevicePtr,
    ) -> TensorResult<()> {
        if n == 0 {
            return Ok(());
        }
        let f = self.function(if bf16 { "to_f16_bf16" } else { "to_f16_f32" })?;
        let n64 = n as u64;
        // SAFETY: `to_f16_<src>(const src* x, rf_half* out, u64 n)`, grid-stride bounded by n;
        // sizes are the caller's promise.
        unsafe {
            stream
                .launch_builder(&f)
                .arg(&x)
                .arg(&out)
                .arg(&n64)
                .launch(grid_1d(n.div_ceil(8), THREADS))?;
        }
        Ok(())
    }

    /// Queues `rows` rows of a `ty` weight (`row_bytes` apart from `w`, `cols` values each)
    /// decoded to f16 at `out` (`[rows][cols]`). F16 weights are copied.
    ///
    /// # Safety
    /// `w` holds `rows * row_bytes` bytes and `out` `rows * cols` f16 (16-byte aligned) on the
    /// stream's device, alive until the stream reaches the kernel; `row_bytes` is the row size
    /// of a `cols`-wide `ty` row.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn weight_raw(
        &mut self,
        stream: &HipStream,
        w: DevicePtr,
        ty: GgmlType,
        row_bytes: usize,
        rows: usize,
        cols: usize,
        out: DevicePtr,
    ) -> TensorResult<()> {
        let n = rows * cols;
        match ty {
            // SAFETY: the caller's promise; F32/BF16 rows are dense, so the weight is n values.
            GgmlType::F32 => return unsafe { self.convert_raw(stream, w, false, n, out) },
            // SAFETY: as above.
            GgmlType::BF16 => return unsafe { self.convert_raw(stream, w, true, n, out) },
            GgmlType::F16 => {
                let f = self.function("copy_f16")?;
                let n64 = n as u64;
                // SAFETY: `copy_f16(const rf_half* x, rf_half* out, u64 n)`; sizes promised.
                unsafe {
                    stream
                        .launch_builder(&f)
                        .arg(&w)
                        .arg(&out)
                        .arg(&n64)
                        .launch(grid_1d(n.div_ceil(8), THREADS))?;
                }
                return Ok(());
            }
            _ => {}
        }
        let (name, chunk) = quant_kernel(ty).ok_or(TensorError::UnsupportedType { op: OP, ty })?;
        if cols % ty.block_size() != 0 || rows == 0 || cols == 0 {
            return Err(TensorError::Shape {
                op: OP,
                what: format!("{ty} weight {rows} x {cols}: columns not whole blocks, or empty"),
            });
        }
        let (rows32, cols32) = (
            super::to_u32(OP, "rows", rows)?,
            super::to_u32(OP, "cols", cols)?,
        );
        let f = self.function(name)?;
        let row_bytes64 = row_bytes as u64;
        // SAFETY: `dequant_f16_<type>(const u8* w, u64 row_bytes, u32 rows, u32 cols,
        // rf_half* out)`, STAGE_VALUES / chunk threads per block as the kernel's stage
        // expects, grid-stride over rows * cols / chunk chunks; sizes promised.
        unsafe {
            stream
                .launch_builder(&f)
                .arg(&w)
                .arg(&row_bytes64)
                .arg(&rows32)
                .arg(&cols32)
                .arg(&out)
                .launch(dequant_grid(n / chunk, chunk))?;
        }
        Ok(())
    }
}

/// Values one block of the `dequant_f16_<type>` kernels stages (`DQ_STAGE_VALUES`): its size
/// is this over the type's chunk values.
const STAGE_VALUES: usize = 8192;

/// Grid of the decode kernels for `chunks` chunks of `chunk` values.
fn dequant_grid(chunks: usize, chunk: usize) -> LaunchConfig {
    let threads = STAGE_VALUES / chunk;
    LaunchConfig {
        grid_dim: (chunks.div_ceil(threads).clamp(1, 65_535) as u32, 1, 1),
        block_dim: (threads as u32, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Row bytes of a `cols`-wide `ty` row, checking that `w` holds `rows` of them.
pub(crate) fn checked_row_bytes(
    ty: GgmlType,
    rows: usize,
    cols: usize,
    w_len: usize,
) -> TensorResult<usize> {
    let bs = ty.block_size();
    if bs == 0 || cols % bs != 0 {
        return Err(TensorError::Shape {
            op: OP,
            what: format!("{ty} weight has {cols} columns, not a multiple of its block size {bs}"),
        });
    }
    let row_bytes = cols / bs * ty.type_size();
    match row_bytes.checked_mul(rows) {
        Some(n) if n <= w_len => Ok(row_bytes),
        _ => Err(TensorError::Shape {
            op: OP,
            what: format!("{ty} weight {rows} x {cols} needs more than the {w_len} bytes given"),
        }),
    }
}

/// Decodes a whole `rows x cols` weight of type `ty` into `out` (`[rows][cols]` f16) on
/// `stream`: the first half of the BLAS path, on its own (tests, benchmarks).
#[allow(clippy::too_many_arguments)]
pub fn dequantize_f16(
    kernels: &mut DequantKernels,
    w: &DeviceBuffer<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    out: &mut DeviceBuffer<f16>,
    stream: &HipStream,
) -> TensorResult<()> {
    if !supports(ty) {
        return Err(TensorError::UnsupportedType { op: OP, ty });
    }
    let row_bytes = checked_row_bytes(ty, rows, cols, w.len())?;
    let n = rows.saturating_mul(cols);
    if out.len() < n {
        return Err(TensorError::Shape {
            op: OP,
            what: format!("output holds {} f16, {rows} x {cols} needed", out.len()),
        });
    }
    if n == 0 {
        return Ok(());
    }
    // SAFETY: sizes checked above; the buffers are borrowed for the call and freeing them waits
    // for queued work; allocations are 256-byte aligned.
    unsafe {
        kernels.weight_raw(
            stream,
            w.device_ptr(),
            ty,
            row_bytes,
            rows,
            cols,
            out.device_ptr(),
        )
    }
}
