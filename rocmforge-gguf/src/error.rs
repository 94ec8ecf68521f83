//! The crate's one error type.

use std::path::PathBuf;

use crate::types::GgmlType;

/// Result alias of this crate.
pub type GgufResult<T> = Result<T, GgufError>;

/// Everything that can go wrong reading, validating, converting or writing GGUF data.
///
/// Messages name the file, the byte offset, the key or the tensor involved.
#[derive(Debug, thiserror::Error)]
pub enum GgufError {
    /// The file could not be opened, mapped, read or written.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file's bytes do not form a valid GGUF file.
    #[error("{file}: at byte {offset}: {what}")]
    Malformed {
        file: String,
        offset: u64,
        what: String,
    },
    /// The file is GGUF, but of a version or byte order this crate does not read.
    #[error("{file}: at byte {offset}: {what}")]
    UnsupportedVersion {
        file: String,
        offset: u64,
        what: String,
    },
    /// A tensor's type id is not one this crate knows.
    #[error("{file}: at byte {offset}: tensor '{tensor}' has unknown tensor type id {type_id}")]
    UnknownTensorType {
        file: String,
        offset: u64,
        tensor: String,
        type_id: u32,
    },
    /// A metadata key is absent.
    #[error("metadata key '{key}' not found")]
    MissingKey { key: String },
    /// A metadata key holds a value of another type than the one asked for.
    #[error("metadata key '{key}': expected {expected}, found {found}")]
    WrongType {
        key: String,
        expected: String,
        found: String,
    },
    /// An integer metadata value that does not fit the type asked for.
    #[error("metadata key '{key}': value {value} does not fit in {expected}")]
    ValueOutOfRange {
        key: String,
        value: String,
        expected: String,
    },
    /// The writer was given something it cannot write as a valid GGUF file.
    #[error("GGUF writer: {what}")]
    InvalidWrite { what: String },
    /// No tensor of this name.
    #[error("tensor '{name}' not found")]
    MissingTensor { name: String },
    /// Data whose length does not fit the block layout of its type.
    #[error("{ty}: {what}")]
    BlockLayout { ty: GgmlType, what: String },
    /// An operation that this type does not support (for example quantizing to Q2_K).
    #[error("{op} is not supported for type {ty}")]
    Unsupported { ty: GgmlType, op: &'static str },
}
