//! The crate's one error type.

use rocmforge_gguf::{GgmlType, GgufError};

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
}
