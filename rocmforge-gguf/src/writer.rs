//! [`GgufWriter`]: builds a GGUF v3 file from metadata and tensors.

use std::path::Path;

use crate::error::{GgufError, GgufResult};
use crate::metadata::{Metadata, MetadataValue};
use crate::parse::{DEFAULT_ALIGNMENT, GGUF_MAGIC, MAX_DIMS};
use crate::types::GgmlType;

/// Largest alignment the writer pads to (padding is real bytes in memory and on disk).
pub const MAX_WRITER_ALIGNMENT: u64 = 1 << 20;

/// A tensor waiting to be written.
#[derive(Debug)]
pub(crate) struct PendingTensor {
    pub(crate) name: String,
    dims: Vec<u64>,
    ty: GgmlType,
    /// Bytes the tensor takes in the file (before padding).
    pub(crate) size: u64,
    /// The bytes, or `None` for a tensor declared by [`GgufWriter::add_tensor_info`] whose
    /// bytes come later through [`crate::TensorStream::write_tensor`].
    pub(crate) data: Option<Vec<u8>>,
}

/// Collects metadata and tensors, then writes them as one GGUF version 3 file.
///
/// Tensors are laid out in the order they were added, each at a multiple of the alignment
/// (`general.alignment`, set by [`GgufWriter::set_alignment`]; 32 when absent).
#[derive(Debug, Default)]
pub struct GgufWriter {
    metadata: Metadata,
    tensors: Vec<PendingTensor>,
}

pub(crate) fn invalid(what: String) -> GgufError {
    GgufError::InvalidWrite { what }
}

impl GgufWriter {
    /// An empty writer.
    pub fn new() -> GgufWriter {
        GgufWriter::default()
    }

    /// Sets `key` to `value` (a key added twice keeps its first position and the last value).
    pub fn add_metadata(&mut self, key: &str, value: MetadataValue) {
        self.metadata.insert(key, value);
    }

    /// Sets `general.alignment`. It must be a nonzero power of two of at most
    /// [`MAX_WRITER_ALIGNMENT`]; [`GgufWriter::to_bytes`] refuses anything else.
    pub fn set_alignment(&mut self, alignment: u64) {
        let value = match u32::try_from(alignment) {
            Ok(a) => MetadataValue::U32(a),
            Err(_) => MetadataValue::U64(alignment),
        };
        self.add_metadata("general.alignment", value);
    }

    /// Adds a tensor of shape `dims` (`ne0` first) whose bytes `data` are already in `ty`'s layout.
    pub fn add_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        data: Vec<u8>,
    ) -> GgufResult<()> {
        let size = self.check_tensor(name, dims, ty)?;
        if data.len() as u64 != size {
            return Err(invalid(format!(
                "tensor '{name}': {ty} {dims:?} takes {size} bytes, {} given",
                data.len()
            )));
        }
        self.push_tensor(name, dims, ty, size, Some(data));
        Ok(())
    }

    /// Declares a tensor whose bytes are not in memory yet: they are written later, in the
    /// order tensors were added, through the [`crate::TensorStream`] of
    /// [`GgufWriter::into_stream`] (for files larger than memory). [`GgufWriter::to_bytes`]
    /// refuses a writer holding such a tensor.
    pub fn add_tensor_info(&mut self, name: &str, dims: &[u64], ty: GgmlType) -> GgufResult<()> {
        let size = self.check_tensor(name, dims, ty)?;
        self.push_tensor(name, dims, ty, size, None);
        Ok(())
    }

    fn push_tensor(
        &mut self,
        name: &str,
        dims: &[u64],
        ty: GgmlType,
        size: u64,
        data: Option<Vec<u8>>,
    ) {
        self.tensors.push(PendingTensor {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            size,
            data,
        });
    }

    /// Checks a new tensor's name and shape; returns its size in bytes.
    fn check_tensor(&self, name: &str, dims: &[u64], ty: GgmlType) -> GgufResult<u64> {
        if self.tensors.iter().any(|t| t.name == name) {
            return Err(invalid(format!("tensor '{name}' added twice")));
        }
        if dims.len() > MAX_DIMS as usize {
            return Err(invalid(format!(
                "tensor '{name}' has {} dimensions; at most {MAX_DIMS} are allowed",
                dims.len()
            )));
        }
        let n_elements = dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .filter(|n| *n <= i64::MAX as u64)
            .ok_or_else(|| invalid(format!("tensor '{name}': element count overflows")))?;
        let block = ty.block_size() as u64;
        if dims.first().is_some_and(|ne0| ne0 % block != 0) {
            return Err(invalid(format!(
                "tensor '{name}': row length {} is not a multiple of the {ty} block size {block}",
                dims.first().copied().unwrap_or(0)
            )));
        }
        ty.bytes_for(n_elements).ok_or_else(|| {
            invalid(format!(
                "tensor '{name}': {n_elements} elements do not fill whole {ty} blocks"
            ))
        })
    }

    fn alignment(&self) -> GgufResult<u64> {
        let Some(value) = self.metadata.get("general.alignment") else {
            return Ok(DEFAULT_ALIGNMENT);
        };
        match value.as_integer().and_then(|a| u64::try_from(a).ok()) {
            Some(a) if a.is_power_of_two() && a <= MAX_WRITER_ALIGNMENT => Ok(a),
            Some(a) if a.is_power_of_two() => Err(invalid(format!(
                "general.alignment {a} is larger than the writer's limit {MAX_WRITER_ALIGNMENT}"
            ))),
            _ => Err(invalid(format!(
                "general.alignment is {value}, not a nonzero power of two"
            ))),
        }
    }

    /// The complete file.
    pub fn to_bytes(&self) -> GgufResult<Vec<u8>> {
        if let Some(t) = self.tensors.iter().find(|t| t.data.is_none()) {
            return Err(invalid(format!(
                "tensor '{}' was declared without data (add_tensor_info): write the file with into_stream",
                t.name
            )));
        }
        let (mut out, alignment) = self.header()?;
        for t in &self.tensors {
            out.extend_from_slice(t.data.as_deref().unwrap_or_default());
            pad_to(&mut out, alignment);
        }
        Ok(out)
    }

    /// The header (magic, metadata, tensor infos, padding to the data section) and the alignment.
    pub(crate) fn header(&self) -> GgufResult<(Vec<u8>, usize)> {
        let alignment = usize::try_from(self.alignment()?)
            .map_err(|_| invalid("general.alignment does not fit in memory".to_string()))?;
        let mut out = Vec::new();
        out.extend_from_slice(&GGUF_MAGIC);
        out.extend_from_slice(&3u32.to_le_bytes());
        out.extend_from_slice(&(self.tensors.len() as u64).to_le_bytes());
        out.extend_from_slice(&(self.metadata.len() as u64).to_le_bytes());
        for (key, value) in self.metadata.iter() {
            put_string(&mut out, key);
            out.extend_from_slice(&value.value_type().id().to_le_bytes());
            put_value(&mut out, key, value)?;
        }
        let mut offset: u64 = 0;
        for t in &self.tensors {
            put_string(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ty.id().to_le_bytes());
            out.extend_from_slice(&offset.to_le_bytes());
            offset = (offset + t.size).next_multiple_of(alignment as u64);
        }
        pad_to(&mut out, alignment);
        Ok((out, alignment))
    }

    /// Splits the writer into its header and its tensors (for [`crate::TensorStream`]).
    pub(crate) fn into_tensors(self) -> Vec<PendingTensor> {
        self.tensors
    }

    /// Writes the complete file to `path`.
    pub fn write_to(&self, path: impl AsRef<Path>) -> GgufResult<()> {
        let path = path.as_ref();
        let bytes = self.to_bytes()?;
        std::fs::write(path, bytes).map_err(|source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        })
    }
}

fn pad_to(out: &mut Vec<u8>, alignment: usize) {
    let len = out.len().next_multiple_of(alignment);
    out.resize(len, 0);
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_value(out: &mut Vec<u8>, key: &str, value: &MetadataValue) -> GgufResult<()> {
    match value {
        MetadataValue::U8(v) => out.push(*v),
        MetadataValue::I8(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::F32(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::Bool(v) => out.push(u8::from(*v)),
        MetadataValue::String(s) => put_string(out, s),
        MetadataValue::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::F64(v) => out.extend_from_slice(&v.to_le_bytes()),
        MetadataValue::Array(a) => {
            out.extend_from_slice(&a.elem_type.id().to_le_bytes());
            out.extend_from_slice(&(a.values.len() as u64).to_le_bytes());
            for (i, v) in a.values.iter().enumerate() {
                if v.value_type() != a.elem_type {
                    return Err(invalid(format!(
                        "metadata key '{key}': element {i} is {}, but the array holds {}",
                        v.value_type(),
                        a.elem_type
                    )));
                }
                put_value(out, key, v)?;
            }
        }
    }
    Ok(())
}
