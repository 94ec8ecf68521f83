//! The crate's one error type.

use rocmforge_gguf::{GgmlType, GgufError};
use rocmforge_hip::HipError;

/// Result alias of this crate.
pub type TensorResult<T> = Result<T, TensorError>;

/// Everything that can go wrong running a tensor op.
///
/// Messages name the op and the sizes or indices involved.
#[derive(Debug, thiserror::Error)]
pub enum TensorError {
    /// Operand sizes that do not fit together.
    #[error("{op}: shape mismatch: {what}")]
    Shape { op: &'static str, what: String },
    /// A weight type this op has no implementation for.
    #[error("{op}: weight type {ty} is not supported")]
    UnsupportedType { op: &'static str, ty: GgmlType },
    /// A token id outside the embedding table.
    #[error(
        "{op}: token id {id} (at index {index}) is out of range for a vocabulary of {vocab} rows"
    )]
    TokenOutOfRange {
        op: &'static str,
        id: u32,
        index: usize,
        vocab: usize,
    },
    /// An error from the GGUF layer (block layout, dequantization).
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// An error from the HIP runtime (no device, launch failure, out of memory).
    #[error(transparent)]
    Hip(#[from] HipError),
    /// A tensor name that the model file does not hold.
    #[error("tensor {name:?} is not in {file}")]
    TensorNotFound { name: String, file: String },
    /// A GPU operation asked of a loader or backend that has no GPU.
    #[error("{op}: no GPU backend (the loader or backend was created for the CPU only)")]
    NoGpuBackend { op: &'static str },
    /// Not enough free device memory for an upload.
    #[error(
        "uploading tensor {tensor:?} needs {needed} bytes of device memory, only {free} are free"
    )]
    OutOfDeviceMemory {
        tensor: String,
        needed: usize,
        free: usize,
    },
    /// A paged KV cache needed a block and its pool had none left (every block of the budget
    /// held by sequences or kept prefixes).
    #[error(
        "KV cache full: {what} needs a block of {block_tokens} tokens, and all {max_blocks} blocks \
         of the KV pool are in use"
    )]
    KvBlocksExhausted {
        what: String,
        block_tokens: usize,
        max_blocks: usize,
    },
    /// Operands that live on different backends (CPU and GPU) or that have the wrong dtype.
    #[error("{op}: {what}")]
    Backend { op: &'static str, what: String },
}
