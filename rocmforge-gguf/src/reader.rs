//! A bounds-checked little-endian cursor over a file's bytes.
//!
//! Every read checks the bytes remaining first and reports a [`GgufError::Malformed`] naming the
//! file and the offset where the bad field starts.

use crate::error::{GgufError, GgufResult};

/// Reads little-endian fields from a byte slice, never past its end.
#[derive(Debug)]
pub(crate) struct ByteReader<'a> {
    file: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> ByteReader<'a> {
    pub(crate) fn new(file: &'a str, bytes: &'a [u8]) -> ByteReader<'a> {
        ByteReader {
            file,
            bytes,
            pos: 0,
        }
    }

    /// The file name used in errors.
    pub(crate) fn file(&self) -> &'a str {
        self.file
    }

    /// Current absolute offset.
    pub(crate) fn pos(&self) -> u64 {
        self.pos as u64
    }

    /// Bytes left after the current offset.
    pub(crate) fn remaining(&self) -> u64 {
        self.bytes.len().saturating_sub(self.pos) as u64
    }

    /// A `Malformed` error at `offset`.
    pub(crate) fn error_at(&self, offset: u64, what: impl Into<String>) -> GgufError {
        GgufError::Malformed {
            file: self.file.to_string(),
            offset,
            what: what.into(),
        }
    }

    /// The next `n` bytes; `what` names the field for the error when fewer remain.
    pub(crate) fn take(&mut self, n: u64, what: &str) -> GgufResult<&'a [u8]> {
        let start = self.pos;
        if n > self.remaining() {
            return Err(self.error_at(
                start as u64,
                format!(
                    "{what} needs {n} bytes but only {} remain in the file",
                    self.remaining()
                ),
            ));
        }
        // n <= remaining, which is a usize, so the conversion and the addition are exact.
        let end = start + n as usize;
        let slice = self
            .bytes
            .get(start..end)
            .ok_or_else(|| self.error_at(start as u64, format!("{what} lies past the end")))?;
        self.pos = end;
        Ok(slice)
    }

    fn array<const N: usize>(&mut self, what: &str) -> GgufResult<[u8; N]> {
        let slice = self.take(N as u64, what)?;
        let mut out = [0u8; N];
        out.copy_from_slice(slice);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &str) -> GgufResult<u8> {
        Ok(self.array::<1>(what)?[0])
    }
    pub(crate) fn i8(&mut self, what: &str) -> GgufResult<i8> {
        Ok(i8::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u16(&mut self, what: &str) -> GgufResult<u16> {
        Ok(u16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i16(&mut self, what: &str) -> GgufResult<i16> {
        Ok(i16::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u32(&mut self, what: &str) -> GgufResult<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i32(&mut self, what: &str) -> GgufResult<i32> {
        Ok(i32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn u64(&mut self, what: &str) -> GgufResult<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn i64(&mut self, what: &str) -> GgufResult<i64> {
        Ok(i64::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f32(&mut self, what: &str) -> GgufResult<f32> {
        Ok(f32::from_le_bytes(self.array(what)?))
    }
    pub(crate) fn f64(&mut self, what: &str) -> GgufResult<f64> {
        Ok(f64::from_le_bytes(self.array(what)?))
    }

    /// A bool byte, which must be 0 or 1.
    pub(crate) fn bool(&mut self, what: &str) -> GgufResult<bool> {
        let at = self.pos();
        match self.u8(what)? {
            0 => Ok(false),
            1 => Ok(true),
            other => Err(self.error_at(at, format!("{what}: bool byte is {other}, not 0 or 1"))),
        }
    }

    /// A GGUF string: u64 byte length, then that many bytes of UTF-8.
    pub(crate) fn string(&mut self, what: &str) -> GgufResult<String> {
        let at = self.pos();
        let len = self.u64(&format!("length of {what}"))?;
        if len > self.remaining() {
            return Err(self.error_at(
                at,
                format!(
                    "{what} has length {len} but only {} bytes remain in the file",
                    self.remaining()
                ),
            ));
        }
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec())
            .map_err(|e| self.error_at(at, format!("{what} is not valid UTF-8 ({e})")))
    }

    /// A u64 element count where each element needs at least `min_each` bytes (≥ 1): refused
    /// when more elements are claimed than the rest of the file could hold.
    pub(crate) fn count(&mut self, what: &str, min_each: u64) -> GgufResult<usize> {
        let at = self.pos();
        let n = self.u64(what)?;
        let limit = self.remaining() / min_each.max(1);
        if n > limit {
            return Err(self.error_at(
                at,
                format!(
                    "{what} is {n}, but the {} bytes left in the file hold at most {limit}",
                    self.remaining()
                ),
            ));
        }
        usize::try_from(n)
            .map_err(|_| self.error_at(at, format!("{what} {n} does not fit in memory")))
    }
}
