//! [`Backend`]: where ops run. One signature per op ([`crate::ops`]); the backend picks the body.

use std::sync::Arc;

use half::f16;
use rocmforge_gguf::GgmlType;
use rocmforge_hip::HipBackend;

use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};
use crate::hip::HipOps;
use crate::tensor::{HostData, HostTensor, Ids, Tensor};

/// The CPU, or one GPU with its op context.
#[derive(Debug, Clone)]
pub enum Backend {
    /// Pure-Rust ops on host memory ([`crate::cpu`]).
    Cpu,
    /// HIP kernels on one device ([`crate::hip`]).
    Hip(Arc<HipOps>),
}

impl Backend {
    /// Runs one model step `f` where this backend's ops run best. On the CPU that is a
    /// thread of rayon's pool: each op's parallel loop then starts on a pool thread, which
    /// takes its share of the work, instead of being handed over from outside the pool and
    /// waited for (one hand-over per step instead of one per op, the decode cost at small
    /// widths); the pool's other threads stay hot for the step
    /// ([`crate::cpu::run_with_hot_team`]). Elsewhere, and when already on a pool thread, `f`
    /// runs here.
    pub fn run_step<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        match self {
            Backend::Cpu if rayon::current_thread_index().is_none() => {
                rayon::scope(|_| crate::cpu::run_with_hot_team(f))
            }
            _ => f(),
        }
    }

    /// The GPU with this index.
    pub fn hip(device_index: usize) -> TensorResult<Backend> {
        let device = HipBackend::new(device_index)?;
        Ok(Backend::Hip(Arc::new(HipOps::new(&device)?)))
    }

    /// The GPU device, for a HIP backend.
    pub fn device(&self) -> Option<&Arc<HipBackend>> {
        match self {
            Backend::Cpu => None,
            Backend::Hip(ops) => Some(ops.backend()),
        }
    }

    /// "cpu", or "hip:" and the device index.
    pub fn name(&self) -> String {
        match self {
            Backend::Cpu => "cpu".to_string(),
            Backend::Hip(ops) => format!("hip:{}", ops.backend().device_index()),
        }
    }

    /// An F32 tensor holding `values`.
    pub fn from_f32(&self, shape: Vec<usize>, values: &[f32]) -> TensorResult<Tensor> {
        match self {
            Backend::Cpu => Ok(Tensor::Cpu(host(shape, HostData::F32(values.to_vec()))?)),
            Backend::Hip(ops) => Ok(Tensor::Hip(DeviceTensor::from_f32(
                ops.backend(),
                shape,
                values,
            )?)),
        }
    }

    /// An F16 tensor holding `values`.
    pub fn from_f16(&self, shape: Vec<usize>, values: &[f16]) -> TensorResult<Tensor> {
        match self {
            Backend::Cpu => Ok(Tensor::Cpu(host(shape, HostData::F16(values.to_vec()))?)),
            Backend::Hip(ops) => Ok(Tensor::Hip(DeviceTensor::from_f16(
                ops.backend(),
                shape,
                values,
            )?)),
        }
    }

    /// A zero-filled F32 or F16 tensor.
    pub fn zeros(&self, dtype: GgmlType, shape: Vec<usize>) -> TensorResult<Tensor> {
        let n: usize = shape.iter().product();
        match (self, dtype) {
            (Backend::Cpu, GgmlType::F32) => {
                Ok(Tensor::Cpu(host(shape, HostData::F32(vec![0.0; n]))?))
            }
            (Backend::Cpu, GgmlType::F16) => {
                Ok(Tensor::Cpu(host(shape, HostData::F16(vec![f16::ZERO; n]))?))
            }
            (Backend::Hip(ops), GgmlType::F32 | GgmlType::F16) => {
                // The fill is queued on the ops' stream: the host does not wait for the device
                // (a step that allocates an output does not stall behind the queued forward).
                let mut t = DeviceTensor::alloc(ops.backend(), dtype, shape)?;
                t.fill_bytes_on(ops.stream(), 0)?;
                Ok(Tensor::Hip(t))
            }
            (_, ty) => Err(TensorError::UnsupportedType {
                op: "Backend::zeros",
                ty,
            }),
        }
    }

    /// [`Ids`] holding `values` (positions or token ids), where this backend's ops read them.
    pub fn ids(&self, values: &[u32]) -> TensorResult<Ids> {
        match self {
            Backend::Cpu => Ok(Ids::Cpu(values.to_vec())),
            Backend::Hip(ops) => Ok(Ids::Hip(ops.backend().htod(values)?)),
        }
    }

    /// Waits for every queued GPU op (no-op on the CPU).
    pub fn synchronize(&self) -> TensorResult<()> {
        match self {
            Backend::Cpu => Ok(()),
            Backend::Hip(ops) => ops.synchronize(),
        }
    }
}

fn host(shape: Vec<usize>, data: HostData) -> TensorResult<HostTensor> {
    let len = match &data {
        HostData::F32(v) => v.len(),
        HostData::F16(v) => v.len(),
    };
    if shape.iter().product::<usize>() != len {
        return Err(TensorError::Shape {
            op: "Backend::from_*",
            what: format!("{len} values for shape {shape:?}"),
        });
    }
    Ok(HostTensor { shape, data })
}

#[cfg(test)]
mod tests {
    use super::Backend;

    #[test]
    fn cpu_steps_run_on_a_pool_thread_and_nest() {
        assert!(rayon::current_thread_index().is_none());
        let on_pool = Backend::Cpu.run_step(|| rayon::current_thread_index().is_some());
        assert!(on_pool);
        let nested = Backend::Cpu.run_step(|| Backend::Cpu.run_step(|| 7));
        assert_eq!(nested, 7);
    }
}
