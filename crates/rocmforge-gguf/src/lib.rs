//! GGUF for Rust: read, validate, dequantize, quantize and write GGUF model files.
//!
//! Place in the ROCmForge stack: the bottom, beside `rocmforge-hip`. This crate knows nothing
//! of GPUs, tensors on devices or models, and must never import another ROCmForge crate.

pub mod error;
pub mod types;

pub use error::{GgufError, GgufResult};
pub use types::GgmlType;
