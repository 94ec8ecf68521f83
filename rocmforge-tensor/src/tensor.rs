//! [`Tensor`]: an activation or cache on the CPU or on a GPU, and [`Weight`]: a borrowed weight
//! on either. The ops in [`crate::ops`] take these and pick the body by where they live.

use std::borrow::Cow;

use half::f16;
use rocmforge_gguf::GgmlType;

use crate::cpu::WeightView;
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};
use crate::lazy::LazyTensor;

/// Values on the host: f32 activations or an f16 cache.
#[derive(Debug, Clone, PartialEq)]
pub enum HostData {
    /// f32 values.
    F32(Vec<f32>),
    /// f16 values (KV cache).
    F16(Vec<f16>),
}

/// A host tensor: shape (innermost last) and values.
#[derive(Debug, Clone, PartialEq)]
pub struct HostTensor {
    /// Shape, innermost (`ne0`) last.
    pub shape: Vec<usize>,
    /// The values, row-major.
    pub data: HostData,
}

/// An activation or cache, on the CPU or on a GPU.
#[derive(Debug)]
pub enum Tensor {
    /// In host memory.
    Cpu(HostTensor),
    /// In device memory.
    Hip(DeviceTensor),
}

impl Tensor {
    /// Shape, innermost (`ne0`) last.
    pub fn shape(&self) -> &[usize] {
        match self {
            Tensor::Cpu(h) => &h.shape,
            Tensor::Hip(d) => d.shape(),
        }
    }

    /// Element type (F32 or F16 on the CPU; any on the GPU).
    pub fn dtype(&self) -> GgmlType {
        match self {
            Tensor::Cpu(HostTensor {
                data: HostData::F32(_),
                ..
            }) => GgmlType::F32,
            Tensor::Cpu(_) => GgmlType::F16,
            Tensor::Hip(d) => d.dtype(),
        }
    }

    /// Number of elements.
    pub fn n_elements(&self) -> usize {
        self.shape().iter().product()
    }

    /// The values as f32 on the host (a copy; GPU tensors are read back synchronously).
    pub fn to_f32_vec(&self) -> TensorResult<Vec<f32>> {
        match self {
            Tensor::Cpu(HostTensor {
                data: HostData::F32(v),
                ..
            }) => Ok(v.clone()),
            Tensor::Cpu(HostTensor {
                data: HostData::F16(v),
                ..
            }) => Ok(v.iter().map(|x| x.to_f32()).collect()),
            Tensor::Hip(d) => d.to_f32_vec(),
        }
    }

    /// Rows `row..row + n_rows` of `width` f32 values each, copied to the host (a GPU
    /// tensor's copy is synchronous: queued work that writes it finishes first).
    pub fn rows_to_f32_vec(
        &self,
        width: usize,
        row: usize,
        n_rows: usize,
    ) -> TensorResult<Vec<f32>> {
        const OP: &str = "rows_to_f32_vec";
        let len = self.n_elements();
        let range = row
            .checked_add(n_rows)
            .and_then(|e| e.checked_mul(width))
            .filter(|&end| end <= len && width > 0)
            .map(|end| row * width..end)
            .ok_or_else(|| TensorError::Shape {
                op: OP,
                what: format!("rows {row}..+{n_rows} of width {width} outside {len} values"),
            })?;
        match self {
            Tensor::Cpu(_) => Ok(self.cpu_f32(OP)?[range].to_vec()),
            Tensor::Hip(d) => {
                let mut out = vec![0.0f32; range.len()];
                d.f32_buffer(OP)?
                    .copy_range_to_host(range.start, &mut out)?;
                Ok(out)
            }
        }
    }

    /// The f32 values of a CPU tensor.
    pub fn cpu_f32(&self, op: &'static str) -> TensorResult<&[f32]> {
        match self {
            Tensor::Cpu(HostTensor {
                data: HostData::F32(v),
                ..
            }) => Ok(v),
            other => Err(wrong(op, "a CPU F32 tensor", other)),
        }
    }

    /// The f32 values of a CPU tensor, mutable.
    pub fn cpu_f32_mut(&mut self, op: &'static str) -> TensorResult<&mut [f32]> {
        match self {
            Tensor::Cpu(HostTensor {
                data: HostData::F32(v),
                ..
            }) => Ok(v),
            other => Err(wrong(op, "a CPU F32 tensor", other)),
        }
    }

    /// The f16 values of a CPU tensor.
    pub fn cpu_f16(&self, op: &'static str) -> TensorResult<&[f16]> {
        match self {
            Tensor::Cpu(HostTensor {
                data: HostData::F16(v),
                ..
            }) => Ok(v),
            other => Err(wrong(op, "a CPU F16 tensor", other)),
        }
    }

    /// The f16 values of a CPU tensor, mutable.
    pub fn cpu_f16_mut(&mut self, op: &'static str) -> TensorResult<&mut [f16]> {
        match self {
            Tensor::Cpu(HostTensor {
                data: HostData::F16(v),
                ..
            }) => Ok(v),
            other => Err(wrong(op, "a CPU F16 tensor", other)),
        }
    }

    /// The device tensor of a GPU tensor.
    pub fn hip(&self, op: &'static str) -> TensorResult<&DeviceTensor> {
        match self {
            Tensor::Hip(d) => Ok(d),
            other => Err(wrong(op, "a GPU tensor", other)),
        }
    }

    /// The device tensor of a GPU tensor, mutable.
    pub fn hip_mut(&mut self, op: &'static str) -> TensorResult<&mut DeviceTensor> {
        match self {
            Tensor::Hip(d) => Ok(d),
            other => Err(wrong(op, "a GPU tensor", other)),
        }
    }
}

fn wrong(op: &'static str, want: &str, got: &Tensor) -> TensorError {
    let place = match got {
        Tensor::Cpu(_) => "CPU",
        Tensor::Hip(_) => "GPU",
    };
    TensorError::Backend {
        op,
        what: format!(
            "expected {want}, got a {place} {} tensor {:?}",
            got.dtype(),
            got.shape()
        ),
    }
}

/// u32 ids of a batch's tokens where the backend reads them — its positions (read by every
/// RoPE of a forward call) or its token ids (read by the embedding) — uploaded once per call.
#[derive(Debug)]
pub enum Ids {
    /// On the host.
    Cpu(Vec<u32>),
    /// In device memory.
    Hip(rocmforge_hip::DeviceBuffer<u32>),
}

impl Ids {
    /// Number of positions.
    pub fn len(&self) -> usize {
        match self {
            Ids::Cpu(v) => v.len(),
            Ids::Hip(b) => b.len(),
        }
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Overwrites the positions with `values` (same length).
    pub fn set(&mut self, values: &[u32]) -> TensorResult<()> {
        if values.len() != self.len() {
            return Err(TensorError::Shape {
                op: "Ids::set",
                what: format!("{} values for {} positions", values.len(), self.len()),
            });
        }
        match self {
            Ids::Cpu(v) => v.copy_from_slice(values),
            Ids::Hip(b) => b.copy_from_host(values)?,
        }
        Ok(())
    }

    /// The first `n` values, read back to the host (from a GPU: after the ops queued before
    /// have finished — synchronize the backend first).
    pub fn to_vec(&self, n: usize) -> TensorResult<Vec<u32>> {
        if n > self.len() {
            return Err(TensorError::Shape {
                op: "Ids::to_vec",
                what: format!("{n} of {} values", self.len()),
            });
        }
        match self {
            Ids::Cpu(v) => Ok(v[..n].to_vec()),
            Ids::Hip(b) => {
                let mut out = vec![0u32; n];
                b.copy_range_to_host(0, &mut out)?;
                Ok(out)
            }
        }
    }
}

/// A borrowed weight in its file format, on the CPU or on a GPU.
#[derive(Debug, Clone, Copy)]
pub enum Weight<'a> {
    /// Bytes in host memory (usually the memory-mapped file).
    Cpu(WeightView<'a>),
    /// Plain f32 values in host memory (`[rows][cols]`, cols = `ne0`).
    CpuF32 {
        /// The values.
        data: &'a [f32],
        /// Number of rows.
        rows: usize,
        /// Values per row.
        cols: usize,
    },
    /// A device tensor (uploaded byte for byte).
    Hip(&'a DeviceTensor),
}

impl<'a> Weight<'a> {
    /// The weight held by a `Cpu` or `Gpu` lazy tensor (an `Unloaded` one is an error).
    pub fn from_lazy(t: &'a LazyTensor) -> TensorResult<Weight<'a>> {
        match t {
            LazyTensor::Gpu { tensor, .. } => Ok(Weight::Hip(tensor)),
            LazyTensor::Cpu { .. } => Ok(Weight::Cpu(t.weight_view()?)),
            LazyTensor::Unloaded { name, .. } => Err(TensorError::Backend {
                op: "Weight::from_lazy",
                what: format!("tensor {name:?} is not loaded"),
            }),
        }
    }

    /// The weight's values as f32 on the host (for small CPU weights such as norm scales):
    /// borrowed when they are f32 already (no copy per call), else dequantized.
    pub fn host_f32(&self, op: &'static str) -> TensorResult<Cow<'a, [f32]>> {
        match *self {
            Weight::CpuF32 { data, .. } => Ok(Cow::Borrowed(data)),
            Weight::Cpu(v) => Ok(Cow::Owned(rocmforge_gguf::quants::dequantize_to_vec(
                v.ty, v.data,
            )?)),
            Weight::Hip(_) => Err(TensorError::Backend {
                op,
                what: "expected a CPU weight, got a GPU one".to_string(),
            }),
        }
    }
}
