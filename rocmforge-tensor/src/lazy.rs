//! [`LazyTensor`]: a model weight that is either still only in the file, resident on the GPU,
//! or read in place from the memory-mapped file by the CPU backend.

use std::sync::Arc;

use rocmforge_gguf::{GgmlType, GgufFile, TensorInfo};

use crate::cpu::WeightView;
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

/// One weight of a model file. `Send + Sync` (every field is), so plans can share it.
///
/// `shape` follows the crate convention: innermost dimension (`ne0`) last.
#[derive(Debug, Clone)]
pub enum LazyTensor {
    /// Known from the tensor index, not loaded anywhere yet.
    Unloaded {
        /// Tensor name in the file.
        name: String,
        /// Byte offset of its data, relative to the file's data section.
        offset: u64,
        /// Size of its data in bytes.
        size: u64,
        /// Shape, innermost last.
        shape: Vec<usize>,
        /// Element (block) type, as stored.
        tensor_type: GgmlType,
    },
    /// Uploaded to the GPU, byte for byte (quantized blocks stay quantized).
    Gpu {
        /// Tensor name in the file.
        name: String,
        /// The device copy, shared with the loader's cache.
        tensor: Arc<DeviceTensor>,
    },
    /// Resident for the CPU backend: a zero-copy view into the mapped file.
    Cpu {
        /// Tensor name in the file.
        name: String,
        /// The file that holds the bytes (kept alive by this handle).
        file: Arc<GgufFile>,
        /// The tensor's index entry.
        info: TensorInfo,
        /// Shape, innermost last.
        shape: Vec<usize>,
    },
}

impl LazyTensor {
    /// The tensor's name.
    pub fn name(&self) -> &str {
        match self {
            LazyTensor::Unloaded { name, .. }
            | LazyTensor::Gpu { name, .. }
            | LazyTensor::Cpu { name, .. } => name,
        }
    }

    /// Shape, innermost (`ne0`) last.
    pub fn shape(&self) -> &[usize] {
        match self {
            LazyTensor::Unloaded { shape, .. } | LazyTensor::Cpu { shape, .. } => shape,
            LazyTensor::Gpu { tensor, .. } => tensor.shape(),
        }
    }

    /// Element (block) type.
    pub fn tensor_type(&self) -> GgmlType {
        match self {
            LazyTensor::Unloaded { tensor_type, .. } => *tensor_type,
            LazyTensor::Gpu { tensor, .. } => tensor.dtype(),
            LazyTensor::Cpu { info, .. } => info.ty,
        }
    }

    /// Size of the data in bytes (in the file and on the device alike).
    pub fn size_bytes(&self) -> u64 {
        match self {
            LazyTensor::Unloaded { size, .. } => *size,
            LazyTensor::Gpu { tensor, .. } => tensor.size_bytes() as u64,
            LazyTensor::Cpu { info, .. } => info.size,
        }
    }

    /// Whether the tensor is resident somewhere (GPU or CPU view).
    pub fn is_loaded(&self) -> bool {
        !matches!(self, LazyTensor::Unloaded { .. })
    }

    /// The device copy, for a `Gpu` tensor.
    pub fn gpu(&self) -> Option<&Arc<DeviceTensor>> {
        match self {
            LazyTensor::Gpu { tensor, .. } => Some(tensor),
            _ => None,
        }
    }

    /// The bytes in the mapped file, for a `Cpu` tensor.
    pub fn cpu_bytes(&self) -> Option<&[u8]> {
        match self {
            LazyTensor::Cpu { file, info, .. } => Some(file.tensor_data(info)),
            _ => None,
        }
    }

    /// A weight view (`rows` x `cols`, `cols` = `ne0`) for the CPU ops, for a `Cpu` tensor.
    pub fn weight_view(&self) -> TensorResult<WeightView<'_>> {
        let LazyTensor::Cpu {
            file, info, shape, ..
        } = self
        else {
            return Err(TensorError::Backend {
                op: "LazyTensor::weight_view",
                what: format!("tensor {:?} is not resident on the CPU", self.name()),
            });
        };
        let cols = shape.last().copied().unwrap_or(1);
        let rows = shape[..shape.len().saturating_sub(1)].iter().product();
        Ok(WeightView {
            ty: info.ty,
            data: file.tensor_data(info),
            rows,
            cols,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn lazy_tensor_is_send_and_sync() {
        assert_send_sync::<LazyTensor>();
        assert_send_sync::<DeviceTensor>();
    }
}
