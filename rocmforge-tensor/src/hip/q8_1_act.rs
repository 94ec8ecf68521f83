//! [`Q8_1Act`]: activations already quantized to q8_1 on the device, written by a fused
//! producer kernel (`add_rms_norm_q8_1`, `silu_mul_q8_1`) and read by
//! [`super::matmul::matmul_q8_1`], so a decode step needs no separate quantization launch.
//! The layout is [`Q8_1Layout`]'s: quantized values first, then the `(d, s)` pairs.

use std::sync::Arc;

use rocmforge_hip::{DeviceBuffer, DevicePtr, HipBackend};

use super::quantize_act::{Q8_1Layout, QK8_1};
use crate::error::{TensorError, TensorResult};

/// `n_tokens` rows of `cols` activations as q8_1 blocks in device memory.
#[derive(Debug)]
pub struct Q8_1Act {
    n_tokens: usize,
    cols: usize,
    layout: Q8_1Layout,
    buf: DeviceBuffer<u8>,
}

impl Q8_1Act {
    /// A zeroed buffer for `n_tokens` rows of `cols` values (`cols` a multiple of 32).
    pub fn new(backend: &Arc<HipBackend>, n_tokens: usize, cols: usize) -> TensorResult<Self> {
        let layout = Q8_1Layout::new("Q8_1Act", n_tokens, cols)?;
        Ok(Q8_1Act {
            n_tokens,
            cols,
            layout,
            buf: backend.alloc_zeros::<u8>(layout.total_bytes.max(1))?,
        })
    }

    /// Rows.
    pub fn n_tokens(&self) -> usize {
        self.n_tokens
    }

    /// Values per row.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The whole buffer (what the matvec kernels take).
    pub fn buffer(&self) -> &DeviceBuffer<u8> {
        &self.buf
    }

    /// Address of the quantized values (`n_tokens * cols` signed bytes).
    pub fn qs_ptr(&self) -> DevicePtr {
        self.buf.device_ptr()
    }

    /// Address of the `(d, s)` f32 pairs, one per 32 values.
    pub fn ds_ptr(&self) -> TensorResult<DevicePtr> {
        self.buf
            .device_ptr()
            .byte_offset(self.layout.ds_offset)
            .ok_or_else(|| TensorError::Shape {
                op: "Q8_1Act",
                what: "scale offset overflows a device address".to_string(),
            })
    }

    /// Quantizes `x` (F32, `n_tokens * cols` values) into this buffer with the standalone
    /// kernel (`quantize_q8_1_f32`), for producers without a fused q8_1 epilogue.
    pub fn quantize(&mut self, ops: &super::HipOps, x: &crate::DeviceTensor) -> TensorResult<()> {
        const OP: &str = "Q8_1Act::quantize";
        super::check_f32(OP, "x", x, self.n_tokens * self.cols)?;
        super::check_device(OP, ops, x)?;
        let f = ops.function("quantize_act", "quantize_q8_1_f32")?;
        let xb = x.f32_buffer(OP)?;
        super::quantize_act::quantize_q8_1(&f, xb, &self.layout, &mut self.buf, ops.stream())
    }

    /// Checks that this buffer holds `n_tokens` rows of `cols` values, for `op`.
    pub fn expect(&self, op: &'static str, n_tokens: usize, cols: usize) -> TensorResult<()> {
        if self.n_tokens != n_tokens || self.cols != cols {
            return Err(TensorError::Shape {
                op,
                what: format!(
                    "q8_1 activations of {} x {}, expected {n_tokens} x {cols}",
                    self.n_tokens, self.cols
                ),
            });
        }
        Ok(())
    }

    /// The values as f32 (`q * d`), on the host (a synchronous copy), for tests.
    pub fn dequantize_to_host(&self) -> TensorResult<Vec<f32>> {
        let bytes = self.buf.to_vec()?;
        let n = self.layout.qs_bytes;
        let ds = &bytes[self.layout.ds_offset..self.layout.total_bytes];
        Ok((0..n)
            .map(|i| {
                let b = i / QK8_1 * 8;
                let d = f32::from_le_bytes([ds[b], ds[b + 1], ds[b + 2], ds[b + 3]]);
                f32::from(bytes[i] as i8) * d
            })
            .collect())
    }
}
