//! Tensors and LLM ops for ROCmForge, on the CPU and (through `rocmforge-hip`) on GPUs.
//!
//! Place in the ROCmForge stack: above `rocmforge-hip` and `rocmforge-gguf`, below
//! `rocmforge-model`. This crate must never import `rocmforge-model` or `rocmforge-cli`.
//!
//! - [`cpu`] — slice-level CPU ops (row-major, f32 activations): the engine's fallback and
//!   the oracle every GPU kernel is tested against. Quantized matmuls follow llama.cpp's
//!   scheme (activations quantized to 8-bit blocks, integer dot products, f32 accumulation).

pub mod backend;
pub mod cpu;
pub mod device_tensor;
pub mod error;
pub mod hip;
pub mod lazy;
pub mod loader;
pub mod ops;
pub mod tensor;

pub use backend::Backend;
pub use device_tensor::DeviceTensor;
pub use error::{TensorError, TensorResult};
pub use lazy::LazyTensor;
pub use loader::{GgufLoader, HipUploader, LoaderStats, Uploader};
pub use tensor::{HostData, HostTensor, Tensor, Weight};
