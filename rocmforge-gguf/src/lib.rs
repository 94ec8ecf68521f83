//! GGUF for Rust: read, validate, dequantize, quantize and write GGUF model files.
//!
//! Place in the ROCmForge stack: the bottom, beside `rocmforge-hip`. This crate knows nothing
//! of GPUs, tensors on devices or models, and must never import another ROCmForge crate.
//!
//! A [`GgufFile`] maps a file (or takes bytes) and checks everything before trusting it: every
//! count, length, offset and dimension is validated against the file's size with checked
//! arithmetic, tensors must be aligned, inside the data section and not overlapping. A bad file
//! is a [`GgufError`] naming the file, the byte offset and the problem, never a panic.
//!
//! GGUF versions 2 and 3 are read; version 1 and big-endian files are refused with a clear error.
//!
//! ```
//! use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue};
//!
//! # fn main() -> Result<(), rocmforge_gguf::GgufError> {
//! let mut writer = GgufWriter::new();
//! writer.add_metadata("general.architecture", MetadataValue::String("llama".into()));
//! writer.add_metadata("llama.block_count", MetadataValue::U32(2));
//! let weights: Vec<u8> = [1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]
//!     .iter()
//!     .flat_map(|v| v.to_le_bytes())
//!     .collect();
//! writer.add_tensor("output_norm.weight", &[3, 2], GgmlType::F32, weights)?;
//! let bytes = writer.to_bytes()?;
//!
//! let file = GgufFile::from_bytes("tiny.gguf", bytes)?;
//! assert_eq!(file.architecture()?, "llama");
//! assert_eq!(file.metadata().get_u32("llama.block_count")?, 2);
//! let info = file.tensor("output_norm.weight").expect("tensor exists");
//! assert_eq!(info.dims, vec![3, 2]);
//! assert_eq!(info.n_elements(), 6);
//! let data = file.tensor_data(info);
//! assert_eq!(&data[..4], &1.0f32.to_le_bytes());
//! # Ok(())
//! # }
//! ```

pub mod error;
mod file;
pub mod imatrix;
mod layout;
pub mod metadata;
mod parse;
pub mod quants;
mod reader;
mod tensor_info;
pub mod types;
mod writer;
mod writer_stream;

pub use error::{GgufError, GgufResult};
pub use file::GgufFile;
pub use metadata::{Metadata, MetadataArray, MetadataValue, MetadataValueType};
pub use parse::{DEFAULT_ALIGNMENT, MAX_DIMS};
pub use tensor_info::TensorInfo;
pub use types::GgmlType;
pub use writer::{GgufWriter, MAX_WRITER_ALIGNMENT};
pub use writer_stream::TensorStream;
