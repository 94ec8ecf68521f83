//! Tensors and LLM ops for ROCmForge, on the CPU and (through `rocmforge-hip`) on GPUs.
//!
//! Place in the ROCmForge stack: above `rocmforge-hip` and `rocmforge-gguf`, below
//! `rocmforge-model`. This crate must never import `rocmforge-model` or `rocmforge-cli`.
//!
//! - [`cpu`] — slice-level CPU ops (row-major, f32 activations): the engine's fallback and
//!   the oracle every GPU kernel is tested against. Quantized matmuls follow llama.cpp's
//!   scheme (activations quantized to 8-bit blocks, integer dot products, f32 accumulation).
//! - [`DeviceTensor`], [`LazyTensor`] and [`GgufLoader`] — weights uploaded to a device byte for
//!   byte in their GGUF block format, once per tensor however many threads ask.
//! - [`ops`] — one signature per op; the [`Backend`] (CPU or HIP) picks the body.
//!
//! A quantized matrix-vector product on the CPU, checked against the float reference:
//!
//! ```
//! use rocmforge_gguf::{GgmlType, quants};
//! use rocmforge_tensor::cpu::{WeightView, matmul, matmul_f32_reference, rms_norm};
//!
//! let (rows, cols) = (3, 64);
//! let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
//! let blocks = quants::quantize(GgmlType::Q8_0, &w)?;
//! let view = WeightView { ty: GgmlType::Q8_0, data: &blocks, rows, cols };
//!
//! let mut x: Vec<f32> = (0..cols).map(|i| (i as f32 * 0.1).sin()).collect();
//! let norm_weight = vec![1.0f32; cols];
//! let input = x.clone();
//! rms_norm(&input, &norm_weight, 1e-5, &mut x);
//!
//! let mut fast = vec![0.0f32; rows];
//! matmul(&view, &x, 1, &mut fast)?;
//! let mut exact = vec![0.0f32; rows];
//! matmul_f32_reference(&view, &x, 1, &mut exact)?;
//! for (a, b) in fast.iter().zip(&exact) {
//!     assert!((a - b).abs() < 0.05, "{a} vs {b}");
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
// This crate's MSRV is 1.87 (the AVX2 kernels), where clippy suggests `is_multiple_of`;
// the workspace's other crates stay at 1.85, so `%` is kept for one style across crates.
#![allow(clippy::manual_is_multiple_of)]

pub mod backend;
pub mod batch_kv;
pub mod cpu;
pub mod device_tensor;
pub mod devices;
pub mod error;
mod fused_ops;
pub mod hip;
pub mod kv_pool;
pub mod lazy;
pub mod loader;
mod moe_ops;
pub mod ops;
mod sample_ops;
pub mod tensor;

pub use backend::Backend;
pub use batch_kv::{
    BatchKv, HeadShape, KvTableBuffers, SeqKv, attention_batch, kv_append_batch,
    rope_kv_append_batch,
};
pub use device_tensor::DeviceTensor;
pub use error::{TensorError, TensorResult};
pub use kv_pool::{KV_BLOCK_TOKENS, KvPool, KvPoolStats, PagedRows};
pub use lazy::LazyTensor;
pub use loader::{GgufLoader, HipUploader, LoaderStats, Uploader};
pub use tensor::{HostData, HostTensor, Ids, Tensor, Weight};
