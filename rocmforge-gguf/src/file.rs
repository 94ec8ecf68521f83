//! [`GgufFile`]: a parsed, validated GGUF file over a memory map or an owned buffer.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;

use crate::error::{GgufError, GgufResult};
use crate::layout::check_tensor_layout;
use crate::metadata::Metadata;
use crate::parse::parse_header;
use crate::tensor_info::TensorInfo;

/// Where the file's bytes live (shared by clones of the file).
#[derive(Debug, Clone)]
enum Storage {
    /// A read-only memory map of a file on disk.
    Mmap(Arc<Mmap>),
    /// Bytes handed over by the caller (tests, fuzzing, files built in memory).
    Owned(Arc<Vec<u8>>),
}

impl Storage {
    fn bytes(&self) -> &[u8] {
        match self {
            Storage::Mmap(m) => m,
            Storage::Owned(v) => v,
        }
    }
}

/// A GGUF file whose header, metadata and tensor index have been parsed and validated.
///
/// Tensor data is not copied: [`GgufFile::tensor_data`] returns slices of the map. A clone
/// shares the map (the parsed index is copied).
#[derive(Debug, Clone)]
pub struct GgufFile {
    path: PathBuf,
    storage: Storage,
    version: u32,
    metadata: Metadata,
    tensors: Vec<TensorInfo>,
    tensor_index: HashMap<String, usize>,
    alignment: u64,
    data_offset: u64,
}

impl GgufFile {
    /// Maps and parses the file at `path`.
    pub fn open(path: impl AsRef<Path>) -> GgufResult<GgufFile> {
        let path = path.as_ref();
        let io_err = |source| GgufError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = File::open(path).map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let storage = if len == 0 {
            Storage::Owned(Arc::new(Vec::new()))
        } else {
            // SAFETY: the map is read-only and lives as long as `GgufFile`. Like every reader of
            // memory-mapped model files, we rely on the file not being truncated or rewritten by
            // another process while it is mapped; that is documented on `GgufFile::open`'s
            // caller-facing contract (the crate README) and not something Rust can check.
            let map = unsafe { Mmap::map(&file) }.map_err(io_err)?;
            Storage::Mmap(Arc::new(map))
        };
        GgufFile::parse(path.to_path_buf(), storage)
    }

    /// Parses a GGUF file held in memory; `name` stands for the path in errors and [`GgufFile::path`].
    pub fn from_bytes(name: &str, bytes: Vec<u8>) -> GgufResult<GgufFile> {
        GgufFile::parse(PathBuf::from(name), Storage::Owned(Arc::new(bytes)))
    }

    fn parse(path: PathBuf, storage: Storage) -> GgufResult<GgufFile> {
        let name = path.display().to_string();
        let bytes = storage.bytes();
        let header = parse_header(&name, bytes)?;
        check_tensor_layout(
            &name,
            &header.tensors,
            &header.tensor_info_offsets,
            header.alignment,
            header.data_offset,
            bytes.len() as u64,
        )?;
        let tensor_index = header
            .tensors
            .iter()
            .enumerate()
            .map(|(i, t)| (t.name.clone(), i))
            .collect();
        Ok(GgufFile {
            path,
            storage,
            version: header.version,
            metadata: header.metadata,
            tensors: header.tensors,
            tensor_index,
            alignment: header.alignment,
            data_offset: header.data_offset,
        })
    }

    /// The path the file was opened from (for [`GgufFile::from_bytes`], the name given).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// GGUF format version (2 or 3).
    pub fn version(&self) -> u32 {
        self.version
    }

    /// The key/value metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// Every tensor, in file order.
    pub fn tensors(&self) -> &[TensorInfo] {
        &self.tensors
    }

    /// The tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorInfo> {
        self.tensor_index
            .get(name)
            .and_then(|&i| self.tensors.get(i))
    }

    /// The bytes of `info` inside the file, without copying.
    ///
    /// Infos from [`GgufFile::tensors`] always lie inside the file; for a hand-made info whose
    /// range does not, the result is an empty slice.
    pub fn tensor_data(&self, info: &TensorInfo) -> &[u8] {
        let range = self
            .data_offset
            .checked_add(info.offset)
            .and_then(|start| Some((start, start.checked_add(info.size)?)))
            .and_then(|(s, e)| Some(usize::try_from(s).ok()?..usize::try_from(e).ok()?));
        range
            .and_then(|r| self.storage.bytes().get(r))
            .unwrap_or(&[])
    }

    /// The bytes of the tensor called `name`.
    pub fn tensor_bytes(&self, name: &str) -> GgufResult<&[u8]> {
        let info = self.tensor(name).ok_or_else(|| GgufError::MissingTensor {
            name: name.to_string(),
        })?;
        Ok(self.tensor_data(info))
    }

    /// `general.architecture`.
    pub fn architecture(&self) -> GgufResult<&str> {
        self.metadata.architecture()
    }

    /// Alignment of the data section and of each tensor (`general.alignment`, default 32).
    pub fn alignment(&self) -> u64 {
        self.alignment
    }

    /// Absolute file offset where the data section starts.
    pub fn data_offset(&self) -> u64 {
        self.data_offset
    }

    /// Size of the whole file in bytes.
    pub fn file_size(&self) -> u64 {
        self.storage.bytes().len() as u64
    }

    /// The whole file's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        self.storage.bytes()
    }
}
