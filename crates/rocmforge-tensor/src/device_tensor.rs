//! [`DeviceTensor`]: bytes in GPU memory with a dtype and a shape.
//!
//! Shape convention: `shape` is row-major, **the last entry is the innermost, contiguous
//! dimension** (ggml's `ne0`). A GGUF tensor with `dims = [ne0, ne1]` (4096 columns, 32000
//! rows) has `shape = [32000, 4096]`. Block-quantized types store each row of `ne0` elements
//! as `ne0 / block_size` blocks, exactly as in the file.

use std::sync::Arc;

use rocmforge_gguf::{GgmlType, quants};
use rocmforge_hip::{DeviceBuffer, DevicePtr, HipBackend};

use crate::error::{TensorError, TensorResult};

/// RAII device memory holding one tensor: freed when dropped.
#[derive(Debug)]
pub struct DeviceTensor {
    buffer: DeviceBuffer<u8>,
    dtype: GgmlType,
    shape: Vec<usize>,
}

/// Bytes that `n` elements of `dtype` occupy, checked (whole blocks, no overflow).
pub fn bytes_for_shape(dtype: GgmlType, shape: &[usize]) -> TensorResult<usize> {
    let overflow = || TensorError::Shape {
        op: "DeviceTensor",
        what: format!("shape {shape:?} of {dtype} overflows"),
    };
    let n = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(overflow)?;
    let inner = shape.last().copied().unwrap_or(1);
    if inner % dtype.block_size() != 0 {
        return Err(TensorError::Shape {
            op: "DeviceTensor",
            what: format!(
                "innermost dimension {inner} of {dtype} is not a multiple of its block size {}",
                dtype.block_size()
            ),
        });
    }
    (n / dtype.block_size())
        .checked_mul(dtype.type_size())
        .ok_or_else(overflow)
}

/// The shape of a GGUF tensor (`dims`, `ne0` first) in this crate's convention (`ne0` last).
pub fn shape_from_gguf_dims(dims: &[u64]) -> TensorResult<Vec<usize>> {
    dims.iter()
        .rev()
        .map(|&d| {
            usize::try_from(d).map_err(|_| TensorError::Shape {
                op: "shape_from_gguf_dims",
                what: format!("dimension {d} does not fit in usize"),
            })
        })
        .collect()
}

impl DeviceTensor {
    /// Wraps a buffer whose length matches `dtype` and `shape`.
    pub fn from_buffer(
        buffer: DeviceBuffer<u8>,
        dtype: GgmlType,
        shape: Vec<usize>,
    ) -> TensorResult<DeviceTensor> {
        let need = bytes_for_shape(dtype, &shape)?;
        if buffer.len() != need {
            return Err(TensorError::Shape {
                op: "DeviceTensor::from_buffer",
                what: format!(
                    "buffer of {} bytes for {dtype} {shape:?} (needs {need})",
                    buffer.len()
                ),
            });
        }
        Ok(DeviceTensor {
            buffer,
            dtype,
            shape,
        })
    }

    /// Uninitialised device memory for `dtype` and `shape`.
    pub fn alloc(
        backend: &Arc<HipBackend>,
        dtype: GgmlType,
        shape: Vec<usize>,
    ) -> TensorResult<DeviceTensor> {
        let need = bytes_for_shape(dtype, &shape)?;
        let buffer = backend.alloc::<u8>(need)?;
        DeviceTensor::from_buffer(buffer, dtype, shape)
    }

    /// Zero-filled device memory for `dtype` and `shape`.
    pub fn zeros(
        backend: &Arc<HipBackend>,
        dtype: GgmlType,
        shape: Vec<usize>,
    ) -> TensorResult<DeviceTensor> {
        let need = bytes_for_shape(dtype, &shape)?;
        let buffer = backend.alloc_zeros::<u8>(need)?;
        DeviceTensor::from_buffer(buffer, dtype, shape)
    }

    /// Copies `bytes` (in `dtype`'s layout, e.g. quantized blocks as in a GGUF file) to the device.
    pub fn from_host_bytes(
        backend: &Arc<HipBackend>,
        dtype: GgmlType,
        shape: Vec<usize>,
        bytes: &[u8],
    ) -> TensorResult<DeviceTensor> {
        let need = bytes_for_shape(dtype, &shape)?;
        if bytes.len() != need {
            return Err(TensorError::Shape {
                op: "DeviceTensor::from_host_bytes",
                what: format!("{} bytes for {dtype} {shape:?} (needs {need})", bytes.len()),
            });
        }
        let buffer = backend.htod(bytes)?;
        DeviceTensor::from_buffer(buffer, dtype, shape)
    }

    /// Copies f32 values to the device as an F32 tensor.
    pub fn from_f32(
        backend: &Arc<HipBackend>,
        shape: Vec<usize>,
        values: &[f32],
    ) -> TensorResult<DeviceTensor> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        DeviceTensor::from_host_bytes(backend, GgmlType::F32, shape, &bytes)
    }

    /// Copies f16 values to the device as an F16 tensor.
    pub fn from_f16(
        backend: &Arc<HipBackend>,
        shape: Vec<usize>,
        values: &[half::f16],
    ) -> TensorResult<DeviceTensor> {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        DeviceTensor::from_host_bytes(backend, GgmlType::F16, shape, &bytes)
    }

    /// The raw bytes, copied back to the host (synchronous).
    pub fn to_host_bytes(&self) -> TensorResult<Vec<u8>> {
        Ok(self.buffer.to_vec()?)
    }

    /// The values as f32 on the host: floats converted, block types dequantized on the CPU.
    pub fn to_f32_vec(&self) -> TensorResult<Vec<f32>> {
        let bytes = self.to_host_bytes()?;
        match self.dtype {
            GgmlType::F32 => Ok(bytes
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                .collect()),
            ty => Ok(quants::dequantize_to_vec(ty, &bytes)?),
        }
    }

    /// The values of an F16 tensor as f16 on the host.
    pub fn to_f16_vec(&self) -> TensorResult<Vec<half::f16>> {
        self.expect_dtype("DeviceTensor::to_f16_vec", GgmlType::F16)?;
        let bytes = self.to_host_bytes()?;
        Ok(bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
            .collect())
    }

    /// Overwrites the tensor with f32 values (an F32 tensor of the same element count).
    pub fn copy_from_f32(&mut self, values: &[f32]) -> TensorResult<()> {
        self.expect_dtype("DeviceTensor::copy_from_f32", GgmlType::F32)?;
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.buffer.copy_from_host(&bytes)?;
        Ok(())
    }

    /// Fills every byte with `value` (0xFF makes every f32 a NaN: used to poison outputs).
    pub fn fill_bytes(&mut self, value: u8) -> TensorResult<()> {
        self.buffer.memset_bytes(value)?;
        Ok(())
    }

    /// Fails with a [`TensorError::Backend`] unless the dtype is `want`.
    pub fn expect_dtype(&self, op: &'static str, want: GgmlType) -> TensorResult<()> {
        if self.dtype == want {
            Ok(())
        } else {
            Err(TensorError::Backend {
                op,
                what: format!("expected a {want} tensor, got {}", self.dtype),
            })
        }
    }

    /// Element type.
    pub fn dtype(&self) -> GgmlType {
        self.dtype
    }

    /// Shape, innermost (`ne0`) last.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.shape.iter().product()
    }

    /// Size of the device allocation in bytes.
    pub fn size_bytes(&self) -> usize {
        self.buffer.len()
    }

    /// The innermost dimension (`ne0`; 1 for a scalar).
    pub fn cols(&self) -> usize {
        self.shape.last().copied().unwrap_or(1)
    }

    /// Number of rows: the product of every dimension but the innermost.
    pub fn rows(&self) -> usize {
        self.shape[..self.shape.len().saturating_sub(1)]
            .iter()
            .product()
    }

    /// Gives the tensor another shape with the same element count.
    pub fn reshape(&mut self, shape: Vec<usize>) -> TensorResult<()> {
        let need = bytes_for_shape(self.dtype, &shape)?;
        if need != self.buffer.len() {
            return Err(TensorError::Shape {
                op: "DeviceTensor::reshape",
                what: format!("{:?} -> {shape:?} changes the size", self.shape),
            });
        }
        self.shape = shape;
        Ok(())
    }

    /// The device buffer.
    pub fn buffer(&self) -> &DeviceBuffer<u8> {
        &self.buffer
    }

    /// The device buffer, mutable (kernel outputs).
    pub fn buffer_mut(&mut self) -> &mut DeviceBuffer<u8> {
        &mut self.buffer
    }

    /// Device address of the first byte.
    pub fn device_ptr(&self) -> DevicePtr {
        self.buffer.device_ptr()
    }

    /// The backend (device) that owns the memory.
    pub fn backend(&self) -> &Arc<HipBackend> {
        self.buffer.backend()
    }
}
