//! [`TensorStream`]: writes a GGUF file whose tensors are produced one at a time, so a file
//! larger than memory never has to be held whole (see [`GgufWriter::into_stream`]).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::error::{GgufError, GgufResult};
use crate::writer::{GgufWriter, PendingTensor, invalid};

/// Zero bytes for padding (alignments are at most [`crate::MAX_WRITER_ALIGNMENT`]).
const ZEROS: [u8; 4096] = [0; 4096];

/// The open file of [`GgufWriter::into_stream`]: the header is written; the tensors' bytes
/// follow in the order the tensors were added.
#[derive(Debug)]
pub struct TensorStream {
    path: PathBuf,
    file: BufWriter<File>,
    alignment: u64,
    queue: VecDeque<PendingTensor>,
}

impl GgufWriter {
    /// Creates `path`, writes the header and returns the stream that takes the tensors' bytes.
    ///
    /// Tensors added with [`GgufWriter::add_tensor`] are written by the stream itself when
    /// their turn comes; those declared with [`GgufWriter::add_tensor_info`] must be handed to
    /// [`TensorStream::write_tensor`] in order. The file equals [`GgufWriter::to_bytes`] of the
    /// same tensors.
    pub fn into_stream(self, path: impl AsRef<Path>) -> GgufResult<TensorStream> {
        let path = path.as_ref().to_path_buf();
        let (header, alignment) = self.header()?;
        let file = File::create(&path).map_err(|source| GgufError::Io {
            path: path.clone(),
            source,
        })?;
        let mut stream = TensorStream {
            path,
            file: BufWriter::with_capacity(1 << 20, file),
            alignment: alignment as u64,
            queue: self.into_tensors().into(),
        };
        stream.put(&header)?;
        stream.flush_in_memory()?;
        Ok(stream)
    }
}

impl TensorStream {
    /// The name of the next tensor whose bytes the stream waits for, if any.
    pub fn next_tensor(&self) -> Option<&str> {
        self.queue.front().map(|t| t.name.as_str())
    }

    /// Writes the bytes of the next declared tensor, which must be `name` and take exactly
    /// the size its type and shape give.
    pub fn write_tensor(&mut self, name: &str, data: &[u8]) -> GgufResult<()> {
        let Some(next) = self.queue.front() else {
            return Err(invalid(format!(
                "tensor '{name}': every declared tensor of {} is already written",
                self.path.display()
            )));
        };
        if next.name != name {
            return Err(invalid(format!(
                "tensor '{name}' written out of order: '{}' comes next",
                next.name
            )));
        }
        if data.len() as u64 != next.size {
            return Err(invalid(format!(
                "tensor '{name}' takes {} bytes, {} given",
                next.size,
                data.len()
            )));
        }
        self.queue.pop_front();
        self.put_padded(data)?;
        self.flush_in_memory()
    }

    /// Flushes the file; fails if a declared tensor was never written.
    pub fn finish(mut self) -> GgufResult<()> {
        if let Some(t) = self.queue.front() {
            return Err(invalid(format!(
                "{}: tensor '{}' was declared but never written",
                self.path.display(),
                t.name
            )));
        }
        let path = self.path.clone();
        self.file
            .flush()
            .map_err(|source| GgufError::Io { path, source })
    }

    /// Writes the tensors at the head of the queue whose bytes are already in memory.
    fn flush_in_memory(&mut self) -> GgufResult<()> {
        while self.queue.front().is_some_and(|t| t.data.is_some()) {
            if let Some(data) = self.queue.pop_front().and_then(|t| t.data) {
                self.put_padded(&data)?;
            }
        }
        Ok(())
    }

    fn put_padded(&mut self, data: &[u8]) -> GgufResult<()> {
        self.put(data)?;
        let len = data.len() as u64;
        let mut pad = len.next_multiple_of(self.alignment) - len;
        while pad > 0 {
            let n = pad.min(ZEROS.len() as u64);
            self.put(&ZEROS[..n as usize])?;
            pad -= n;
        }
        Ok(())
    }

    fn put(&mut self, bytes: &[u8]) -> GgufResult<()> {
        self.file.write_all(bytes).map_err(|source| GgufError::Io {
            path: self.path.clone(),
            source,
        })
    }
}
