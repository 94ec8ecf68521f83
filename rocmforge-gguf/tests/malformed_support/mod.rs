//! Builds GGUF bytes field by field, so tests can write exactly the broken file they mean.
#![allow(dead_code)]

use rocmforge_gguf::{GgufError, GgufFile};

/// A little-endian byte builder for hand-made GGUF files.
#[derive(Debug, Default)]
pub struct RawGguf {
    pub bytes: Vec<u8>,
}

impl RawGguf {
    /// Magic, `version`, tensor count and key/value count.
    pub fn header(version: u32, n_tensors: u64, n_kv: u64) -> RawGguf {
        let mut raw = RawGguf::default();
        raw.bytes.extend_from_slice(b"GGUF");
        raw.u32(version).u64(n_tensors).u64(n_kv);
        raw
    }

    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.bytes.extend_from_slice(&v.to_le_bytes());
        self
    }

    pub fn string(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.bytes.extend_from_slice(s.as_bytes());
        self
    }

    /// A u32 key/value pair (value type 4).
    pub fn kv_u32(&mut self, key: &str, v: u32) -> &mut Self {
        self.string(key).u32(4).u32(v)
    }

    /// A string key/value pair (value type 8).
    pub fn kv_str(&mut self, key: &str, v: &str) -> &mut Self {
        self.string(key).u32(8).string(v)
    }

    /// One tensor info record.
    pub fn tensor(&mut self, name: &str, dims: &[u64], type_id: u32, offset: u64) -> &mut Self {
        self.string(name).u32(dims.len() as u32);
        for d in dims {
            self.u64(*d);
        }
        self.u32(type_id).u64(offset)
    }

    /// Zero bytes up to a multiple of `alignment`.
    pub fn pad(&mut self, alignment: usize) -> &mut Self {
        let len = self.bytes.len().next_multiple_of(alignment);
        self.bytes.resize(len, 0);
        self
    }

    /// `n` data bytes.
    pub fn data(&mut self, n: usize) -> &mut Self {
        self.bytes.extend((0..n).map(|i| i as u8));
        self
    }

    pub fn parse(&self) -> Result<GgufFile, GgufError> {
        GgufFile::from_bytes("test.gguf", self.bytes.clone())
    }
}

/// The error of parsing `bytes`; fails the test when parsing succeeds.
pub fn parse_err(bytes: &[u8]) -> GgufError {
    match GgufFile::from_bytes("test.gguf", bytes.to_vec()) {
        Ok(_) => panic!("a malformed file parsed without error"),
        Err(e) => e,
    }
}

/// Asserts `err` is `Malformed` at `offset` with `needle` in its message, and that the message
/// names the file.
pub fn assert_malformed(err: &GgufError, offset: u64, needle: &str) {
    let msg = err.to_string();
    match err {
        GgufError::Malformed { offset: at, .. } => {
            assert_eq!(*at, offset, "wrong offset in: {msg}");
        }
        other => panic!("expected Malformed, got {other:?}"),
    }
    assert!(msg.contains("test.gguf"), "file not named: {msg}");
    assert!(msg.contains(needle), "'{needle}' not in: {msg}");
}
