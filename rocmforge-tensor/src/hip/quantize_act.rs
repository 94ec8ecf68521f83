//! On-device quantization of f32 activations to q8_1 blocks (`kernels/quantize_act.hip`), the
//! input of every quantized matmul kernel.
//!
//! Layout of the q8_1 buffer for `n_tokens` rows of `cols` values (`cols` a multiple of 32):
//! `qs` — `n_tokens * cols` signed bytes, row-major; then, at [`Q8_1Layout::ds_offset`]
//! (16-byte aligned), `n_tokens * cols / 32` pairs of f32 `(d, s)` with `d = amax / 127` and
//! `s = d * sum(q)`, both rounded through f16 — the same values as the CPU backend's
//! `quantize_q8_1` (ggml-cuda stores the sum of the unquantized values as `s` instead).

use rocmforge_hip::{DeviceBuffer, HipFunction, HipStream, LaunchConfig};

use crate::error::{TensorError, TensorResult};

/// Values per q8_1 block.
pub const QK8_1: usize = 32;
/// Threads per block of `quantize_q8_1_f32`.
const THREADS: u32 = 256;

/// Where the parts of a q8_1 activation buffer lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Q8_1Layout {
    /// Bytes of quantized values (`n_tokens * cols`).
    pub qs_bytes: usize,
    /// Byte offset of the `(d, s)` pairs.
    pub ds_offset: usize,
    /// Total bytes.
    pub total_bytes: usize,
}

impl Q8_1Layout {
    /// The layout for `n_tokens` rows of `cols` values; `cols` must be a multiple of 32.
    pub fn new(op: &'static str, n_tokens: usize, cols: usize) -> TensorResult<Self> {
        if cols % QK8_1 != 0 {
            return Err(TensorError::Shape {
                op,
                what: format!("q8_1 activations need a multiple of {QK8_1} columns, got {cols}"),
            });
        }
        let overflow = || TensorError::Shape {
            op,
            what: format!("{n_tokens} tokens x {cols} columns overflow the q8_1 buffer size"),
        };
        let qs_bytes = n_tokens.checked_mul(cols).ok_or_else(overflow)?;
        let ds_offset = qs_bytes.checked_next_multiple_of(16).ok_or_else(overflow)?;
        let ds_bytes = (qs_bytes / QK8_1).checked_mul(8).ok_or_else(overflow)?;
        let total_bytes = ds_offset.checked_add(ds_bytes).ok_or_else(overflow)?;
        Ok(Self {
            qs_bytes,
            ds_offset,
            total_bytes,
        })
    }
}

/// Quantizes `x` (`n_tokens * cols` values, row-major) into `dst` (at least
/// `layout.total_bytes` long) on `stream`. `quantize` is the `quantize_q8_1_f32` kernel.
pub fn quantize_q8_1(
    quantize: &HipFunction,
    x: &DeviceBuffer<f32>,
    layout: &Q8_1Layout,
    dst: &mut DeviceBuffer<u8>,
    stream: &HipStream,
) -> TensorResult<()> {
    const OP: &str = "quantize_q8_1";
    let total = layout.qs_bytes;
    if x.len() < total || dst.len() < layout.total_bytes {
        return Err(TensorError::Shape {
            op: OP,
            what: format!(
                "{total} values to quantize, activations hold {}, q8_1 buffer {} of {} bytes",
                x.len(),
                dst.len(),
                layout.total_bytes
            ),
        });
    }
    if total == 0 {
        return Ok(());
    }
    let blocks =
        u32::try_from(total.div_ceil(THREADS as usize)).map_err(|_| TensorError::Shape {
            op: OP,
            what: format!("{total} values need more than 2^32 thread blocks"),
        })?;
    let qs = dst.device_ptr();
    let ds = dst
        .device_ptr()
        .byte_offset(layout.ds_offset)
        .ok_or_else(|| TensorError::Shape {
            op: OP,
            what: format!(
                "q8_1 scale offset {} overflows a device address",
                layout.ds_offset
            ),
        })?;
    let total_u64 = total as u64;
    let cfg = LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: the kernel's signature is (const float*, signed char*, float*, u64); `x` holds at
    // least `total` values, `dst` at least `layout.total_bytes` bytes (checked above), so every
    // index the kernel computes (< total for qs, < total / 32 pairs for ds) is in bounds.
    unsafe {
        stream
            .launch_builder(quantize)
            .dependent()
            .arg(x)
            .arg(&qs)
            .arg(&ds)
            .arg(&total_u64)
            .launch(cfg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn layout_aligns_scales_and_counts_bytes() {
        let l = Q8_1Layout::new("t", 3, 96).unwrap();
        assert_eq!(l.qs_bytes, 288);
        assert_eq!(l.ds_offset, 288);
        assert_eq!(l.total_bytes, 288 + 9 * 8);
        let l = Q8_1Layout::new("t", 1, 32).unwrap();
        assert_eq!((l.ds_offset, l.total_bytes), (32, 40));
    }

    #[test]
    fn layout_rejects_partial_blocks_and_overflow() {
        let e = Q8_1Layout::new("op_x", 2, 33).unwrap_err().to_string();
        assert!(e.contains("op_x") && e.contains("33"), "{e}");
        assert!(Q8_1Layout::new("t", usize::MAX / 2, 64).is_err());
    }
}
