//! [`DeviceTensor`]: bytes in GPU memory with a dtype and a shape.
//!
//! Shape convention: `shape` is row-major, **the last entry is the innermost, contiguous
//! dimension** (ggml's `ne0`). A GGUF tensor with `dims = [ne0, ne1]` (4096 columns, 32000
//! rows) has `shape = [32000, 4096]`. Block-quantized types store each row of `ne0` elements
//! as `ne0 / block_size` blocks, exactly as in the file.

use std::sync::Arc;

use rocmforge_gguf::{GgmlType, quants};
use rocmforge_hip::{DeviceBuffer, DevicePtr, HipBackend, HipStream};

use crate::error::{TensorError, TensorResult};

/// RAII device memory holding one tensor: freed when dropped.
///
/// Activations (F32) and caches (F16) made by this crate are held as typed buffers (so that other
/// crates can take a `DeviceBuffer<f32>`); weights uploaded from a file, and every other type
/// (BF16, the block types), as raw bytes. Kernels only need [`DeviceTensor::device_ptr`].
#[derive(Debug)]
pub struct DeviceTensor {
    storage: DeviceStorage,
    dtype: GgmlType,
    shape: Vec<usize>,
}

/// The device buffer behind a [`DeviceTensor`].
#[derive(Debug)]
pub enum DeviceStorage {
    /// F32 values.
    F32(DeviceBuffer<f32>),
    /// F16 values.
    F16(DeviceBuffer<half::f16>),
    /// Raw bytes in the dtype's layout (BF16, quantized blocks, ...).
    Bytes(DeviceBuffer<u8>),
}

impl DeviceStorage {
    fn num_bytes(&self) -> usize {
        match self {
            DeviceStorage::F32(b) => b.num_bytes(),
            DeviceStorage::F16(b) => b.num_bytes(),
            DeviceStorage::Bytes(b) => b.num_bytes(),
        }
    }
}

fn f32_from_le(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn f16_from_le(bytes: &[u8]) -> Vec<half::f16> {
    bytes
        .chunks_exact(2)
        .map(|c| half::f16::from_le_bytes([c[0], c[1]]))
        .collect()
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
    /// Wraps a storage whose size matches `dtype` and `shape`.
    pub fn from_storage(
        storage: DeviceStorage,
        dtype: GgmlType,
        shape: Vec<usize>,
    ) -> TensorResult<DeviceTensor> {
        let need = bytes_for_shape(dtype, &shape)?;
        let typed_ok = match &storage {
            DeviceStorage::F32(_) => dtype == GgmlType::F32,
            DeviceStorage::F16(_) => dtype == GgmlType::F16,
            DeviceStorage::Bytes(_) => true,
        };
        if storage.num_bytes() != need || !typed_ok {
            return Err(TensorError::Shape {
                op: "DeviceTensor::from_storage",
                what: format!(
                    "storage of {} bytes ({storage:?}) for {dtype} {shape:?} (needs {need})",
                    storage.num_bytes()
                ),
            });
        }
        Ok(DeviceTensor {
            storage,
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
        let storage = match dtype {
            GgmlType::F32 => DeviceStorage::F32(backend.alloc(need / 4)?),
            GgmlType::F16 => DeviceStorage::F16(backend.alloc(need / 2)?),
            _ => DeviceStorage::Bytes(backend.alloc(need)?),
        };
        DeviceTensor::from_storage(storage, dtype, shape)
    }

    /// Zero-filled device memory for `dtype` and `shape`.
    pub fn zeros(
        backend: &Arc<HipBackend>,
        dtype: GgmlType,
        shape: Vec<usize>,
    ) -> TensorResult<DeviceTensor> {
        let mut t = DeviceTensor::alloc(backend, dtype, shape)?;
        t.fill_bytes(0)?;
        Ok(t)
    }

    /// Copies `bytes` (in `dtype`'s layout, e.g. quantized blocks as in a GGUF file) to the
    /// device, byte for byte.
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
        let storage = match dtype {
            GgmlType::F32 => DeviceStorage::F32(backend.htod(&f32_from_le(bytes))?),
            GgmlType::F16 => DeviceStorage::F16(backend.htod(&f16_from_le(bytes))?),
            _ => DeviceStorage::Bytes(backend.htod(bytes)?),
        };
        DeviceTensor::from_storage(storage, dtype, shape)
    }

    /// Copies `bytes` to the device as raw bytes whatever the dtype (weights from a file: the
    /// device holds exactly the file's bytes).
    pub fn from_raw_bytes(
        backend: &Arc<HipBackend>,
        dtype: GgmlType,
        shape: Vec<usize>,
        bytes: &[u8],
    ) -> TensorResult<DeviceTensor> {
        let need = bytes_for_shape(dtype, &shape)?;
        if bytes.len() != need {
            return Err(TensorError::Shape {
                op: "DeviceTensor::from_raw_bytes",
                what: format!("{} bytes for {dtype} {shape:?} (needs {need})", bytes.len()),
            });
        }
        DeviceTensor::from_storage(DeviceStorage::Bytes(backend.htod(bytes)?), dtype, shape)
    }

    /// Copies f32 values to the device as an F32 tensor.
    pub fn from_f32(
        backend: &Arc<HipBackend>,
        shape: Vec<usize>,
        values: &[f32],
    ) -> TensorResult<DeviceTensor> {
        check_len("DeviceTensor::from_f32", &shape, values.len())?;
        DeviceTensor::from_storage(
            DeviceStorage::F32(backend.htod(values)?),
            GgmlType::F32,
            shape,
        )
    }

    /// Copies f16 values to the device as an F16 tensor.
    pub fn from_f16(
        backend: &Arc<HipBackend>,
        shape: Vec<usize>,
        values: &[half::f16],
    ) -> TensorResult<DeviceTensor> {
        check_len("DeviceTensor::from_f16", &shape, values.len())?;
        DeviceTensor::from_storage(
            DeviceStorage::F16(backend.htod(values)?),
            GgmlType::F16,
            shape,
        )
    }

    /// The raw bytes (little-endian, the dtype's layout), copied back to the host (synchronous).
    pub fn to_host_bytes(&self) -> TensorResult<Vec<u8>> {
        Ok(match &self.storage {
            DeviceStorage::F32(b) => b.to_vec()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DeviceStorage::F16(b) => b.to_vec()?.iter().flat_map(|v| v.to_le_bytes()).collect(),
            DeviceStorage::Bytes(b) => b.to_vec()?,
        })
    }

    /// The values as f32 on the host: floats converted, block types dequantized on the CPU.
    pub fn to_f32_vec(&self) -> TensorResult<Vec<f32>> {
        match &self.storage {
            DeviceStorage::F32(b) => Ok(b.to_vec()?),
            DeviceStorage::F16(b) => Ok(b.to_vec()?.iter().map(|v| v.to_f32()).collect()),
            DeviceStorage::Bytes(b) => Ok(quants::dequantize_to_vec(self.dtype, &b.to_vec()?)?),
        }
    }

    /// The values of an F16 tensor as f16 on the host.
    pub fn to_f16_vec(&self) -> TensorResult<Vec<half::f16>> {
        match &self.storage {
            DeviceStorage::F16(b) => Ok(b.to_vec()?),
            _ => Err(self.wrong_dtype("DeviceTensor::to_f16_vec", GgmlType::F16)),
        }
    }

    /// Overwrites an F32 tensor with `values` (same element count).
    pub fn copy_from_f32(&mut self, values: &[f32]) -> TensorResult<()> {
        self.f32_buffer_mut("DeviceTensor::copy_from_f32")?
            .copy_from_host(values)?;
        Ok(())
    }

    /// Fills every byte with `value` (0xFF makes every f32 and f16 a NaN: used to poison outputs).
    pub fn fill_bytes(&mut self, value: u8) -> TensorResult<()> {
        match &mut self.storage {
            DeviceStorage::F32(b) => b.memset_bytes(value)?,
            DeviceStorage::F16(b) => b.memset_bytes(value)?,
            DeviceStorage::Bytes(b) => b.memset_bytes(value)?,
        }
        Ok(())
    }

    /// Queues filling every byte with `value` on `stream` (ordered with that stream's work, no
    /// wait for the device; a blocking stream, as the ops' stream, also orders it before later
    /// host-synchronous copies).
    pub fn fill_bytes_on(&mut self, stream: &HipStream, value: u8) -> TensorResult<()> {
        match &mut self.storage {
            DeviceStorage::F32(b) => stream.memset_async(b, value)?,
            DeviceStorage::F16(b) => stream.memset_async(b, value)?,
            DeviceStorage::Bytes(b) => stream.memset_async(b, value)?,
        }
        Ok(())
    }

    fn wrong_dtype(&self, op: &'static str, want: GgmlType) -> TensorError {
        TensorError::Backend {
            op,
            what: format!(
                "expected a {want} tensor, got {} {:?}",
                self.dtype, self.shape
            ),
        }
    }

    /// Fails with a [`TensorError::Backend`] unless the dtype is `want`.
    pub fn expect_dtype(&self, op: &'static str, want: GgmlType) -> TensorResult<()> {
        if self.dtype == want {
            Ok(())
        } else {
            Err(self.wrong_dtype(op, want))
        }
    }

    /// The typed buffer of an F32 tensor.
    pub fn f32_buffer(&self, op: &'static str) -> TensorResult<&DeviceBuffer<f32>> {
        match &self.storage {
            DeviceStorage::F32(b) => Ok(b),
            _ => Err(self.wrong_dtype(op, GgmlType::F32)),
        }
    }

    /// The typed buffer of an F32 tensor, mutable.
    pub fn f32_buffer_mut(&mut self, op: &'static str) -> TensorResult<&mut DeviceBuffer<f32>> {
        if !matches!(self.storage, DeviceStorage::F32(_)) {
            return Err(self.wrong_dtype(op, GgmlType::F32));
        }
        match &mut self.storage {
            DeviceStorage::F32(b) => Ok(b),
            _ => Err(TensorError::Backend {
                op,
                what: "storage changed type".to_string(),
            }),
        }
    }

    /// The typed buffer of an F16 tensor.
    pub fn f16_buffer(&self, op: &'static str) -> TensorResult<&DeviceBuffer<half::f16>> {
        match &self.storage {
            DeviceStorage::F16(b) => Ok(b),
            _ => Err(self.wrong_dtype(op, GgmlType::F16)),
        }
    }

    /// The typed buffer of an F16 tensor, for writing.
    pub fn f16_buffer_mut(
        &mut self,
        op: &'static str,
    ) -> TensorResult<&mut DeviceBuffer<half::f16>> {
        let dtype = self.dtype;
        match &mut self.storage {
            DeviceStorage::F16(b) => Ok(b),
            _ => Err(TensorError::Backend {
                op,
                what: format!("a {dtype} tensor where F16 was expected"),
            }),
        }
    }

    /// The raw byte buffer of a tensor held as bytes (weights uploaded from a file).
    pub fn bytes_buffer(&self) -> Option<&DeviceBuffer<u8>> {
        match &self.storage {
            DeviceStorage::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// The device storage.
    pub fn storage(&self) -> &DeviceStorage {
        &self.storage
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
        self.storage.num_bytes()
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

    /// Gives the tensor another shape with the same size.
    pub fn reshape(&mut self, shape: Vec<usize>) -> TensorResult<()> {
        let need = bytes_for_shape(self.dtype, &shape)?;
        if need != self.size_bytes() {
            return Err(TensorError::Shape {
                op: "DeviceTensor::reshape",
                what: format!("{:?} -> {shape:?} changes the size", self.shape),
            });
        }
        self.shape = shape;
        Ok(())
    }

    /// Device address of the first byte (what a kernel receives for this tensor).
    pub fn device_ptr(&self) -> DevicePtr {
        match &self.storage {
            DeviceStorage::F32(b) => b.device_ptr(),
            DeviceStorage::F16(b) => b.device_ptr(),
            DeviceStorage::Bytes(b) => b.device_ptr(),
        }
    }

    /// The backend (device) that owns the memory.
    pub fn backend(&self) -> &Arc<HipBackend> {
        match &self.storage {
            DeviceStorage::F32(b) => b.backend(),
            DeviceStorage::F16(b) => b.backend(),
            DeviceStorage::Bytes(b) => b.backend(),
        }
    }
}

fn check_len(op: &'static str, shape: &[usize], len: usize) -> TensorResult<()> {
    let n = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    if n == Some(len) {
        Ok(())
    } else {
        Err(TensorError::Shape {
            op,
            what: format!("{len} values for shape {shape:?}"),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bytes_for_shape_counts_whole_blocks() {
        assert_eq!(bytes_for_shape(GgmlType::F32, &[3, 5]).unwrap(), 60);
        assert_eq!(bytes_for_shape(GgmlType::F16, &[7]).unwrap(), 14);
        assert_eq!(
            bytes_for_shape(GgmlType::Q4_K, &[2, 512]).unwrap(),
            2 * 2 * 144
        );
        assert!(
            bytes_for_shape(GgmlType::Q8_0, &[]).is_err(),
            "a scalar is less than one block"
        );
        assert!(
            bytes_for_shape(GgmlType::Q4_0, &[3, 33]).is_err(),
            "not whole blocks"
        );
        assert!(
            bytes_for_shape(GgmlType::F32, &[usize::MAX, 2]).is_err(),
            "overflow"
        );
        assert_eq!(bytes_for_shape(GgmlType::F32, &[0, 4]).unwrap(), 0);
    }

    #[test]
    fn gguf_dims_reverse_into_innermost_last() {
        assert_eq!(shape_from_gguf_dims(&[4096, 32000]).unwrap(), [32000, 4096]);
        assert_eq!(shape_from_gguf_dims(&[7]).unwrap(), [7]);
        assert!(shape_from_gguf_dims(&[]).unwrap().is_empty());
    }
}
