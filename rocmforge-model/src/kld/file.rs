//! The logits file of `llama-perplexity --kl-divergence-base` (llama.cpp's `tools/perplexity`),
//! read and written byte for byte as llama.cpp does, little-endian:
//!
//! | field | type |
//! |---|---|
//! | magic `_logits_` | 8 bytes |
//! | `n_ctx` | u32 |
//! | `n_vocab` | i32 |
//! | `n_chunk` | i32 |
//! | the evaluated tokens | `n_chunk * n_ctx` × i32 |
//! | per chunk, per position `n_ctx/2 ..= n_ctx-2`: one [`CompressedRow`] | `nv` × u16 |
//!
//! with `nv = 2 * ((n_vocab + 1) / 2) + 4`: a row starts with two f32 (`scale`, `min_log_prob`) and
//! holds each token's log-probability as `min_log_prob + scale * q` (q a u16; log-probabilities more
//! than 16 below the top one are clipped).

use std::io::{Read, Write};

use crate::error::{ModelError, ModelResult};

/// The file's first 8 bytes.
pub const MAGIC: &[u8; 8] = b"_logits_";

/// The header of a logits file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogitsHeader {
    /// Tokens per chunk.
    pub n_ctx: usize,
    /// Vocabulary size of the model that wrote it.
    pub n_vocab: usize,
    /// Number of chunks.
    pub n_chunk: usize,
    /// The `n_chunk * n_ctx` evaluated tokens (BOS not substituted).
    pub tokens: Vec<u32>,
}

impl LogitsHeader {
    /// u16 values per row (`nv`).
    pub fn row_len(&self) -> usize {
        row_len(self.n_vocab)
    }

    /// Scored positions per chunk (`n_ctx - 1 - n_ctx/2`).
    pub fn rows_per_chunk(&self) -> usize {
        rows_per_chunk(self.n_ctx)
    }

    /// The exact size in bytes of a file with this header.
    pub fn file_len(&self) -> Option<u64> {
        let tokens = (self.n_ctx as u64)
            .checked_mul(self.n_chunk as u64)?
            .checked_mul(4)?;
        let rows = (self.rows_per_chunk() as u64).checked_mul(self.n_chunk as u64)?;
        let row_bytes = (self.row_len() as u64).checked_mul(2)?;
        20u64
            .checked_add(tokens)?
            .checked_add(rows.checked_mul(row_bytes)?)
    }

    /// Writes the header (magic, sizes, tokens).
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let as_i32 = |v: usize| i32::try_from(v).unwrap_or(i32::MAX);
        out.write_all(MAGIC)?;
        out.write_all(&u32::try_from(self.n_ctx).unwrap_or(u32::MAX).to_le_bytes())?;
        out.write_all(&as_i32(self.n_vocab).to_le_bytes())?;
        out.write_all(&as_i32(self.n_chunk).to_le_bytes())?;
        let mut bytes = Vec::with_capacity(self.tokens.len() * 4);
        for &t in &self.tokens {
            bytes.extend_from_slice(&t.to_le_bytes());
        }
        out.write_all(&bytes)
    }

    /// Reads and checks the header of a file of `file_len` bytes (`what` names it in errors).
    pub fn read(input: &mut impl Read, file_len: u64, what: &str) -> ModelResult<Self> {
        let err = |reason: String| ModelError::LogitsFile {
            path: what.to_string(),
            reason,
        };
        let mut head = [0u8; 20];
        input
            .read_exact(&mut head)
            .map_err(|e| err(format!("reading the 20-byte header: {e}")))?;
        if &head[..8] != MAGIC {
            return Err(err(
                "does not start with `_logits_` (not a llama-perplexity logits file)".into(),
            ));
        }
        let word = |i: usize| [head[i], head[i + 1], head[i + 2], head[i + 3]];
        let n_ctx = u32::from_le_bytes(word(8));
        let n_vocab = i32::from_le_bytes(word(12));
        let n_chunk = i32::from_le_bytes(word(16));
        if n_ctx < 4 || n_vocab < 1 || n_chunk < 1 {
            return Err(err(format!(
                "bad header: n_ctx {n_ctx}, n_vocab {n_vocab}, n_chunk {n_chunk}"
            )));
        }
        let mut header = Self {
            n_ctx: n_ctx as usize,
            n_vocab: n_vocab as usize,
            n_chunk: n_chunk as usize,
            tokens: Vec::new(),
        };
        // Sizes are checked against the file before anything is allocated from them.
        let want = header.file_len();
        if want != Some(file_len) {
            return Err(err(format!(
                "is {file_len} bytes, but its header (n_ctx {n_ctx}, n_vocab {n_vocab}, n_chunk \
                 {n_chunk}) needs {}",
                want.map_or_else(|| "more than 2^64".to_string(), |w| w.to_string())
            )));
        }
        let mut bytes = vec![0u8; header.n_ctx * header.n_chunk * 4];
        input
            .read_exact(&mut bytes)
            .map_err(|e| err(format!("reading the tokens: {e}")))?;
        header.tokens = bytes
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(header)
    }
}

/// u16 values per row for a vocabulary of `n_vocab`.
pub fn row_len(n_vocab: usize) -> usize {
    2 * n_vocab.div_ceil(2) + 4
}

/// Scored positions per chunk of `n_ctx`.
pub fn rows_per_chunk(n_ctx: usize) -> usize {
    n_ctx - 1 - n_ctx / 2
}

/// One position's compressed log-probabilities.
#[derive(Debug, Clone, PartialEq)]
pub struct CompressedRow {
    /// Step between two quantized values.
    pub scale: f32,
    /// The log-probability quantized value 0 stands for.
    pub min_log_prob: f32,
    /// One value per token.
    pub q: Vec<u16>,
}

impl CompressedRow {
    /// Compresses a row of logits as llama.cpp does (log-softmax, clipped 16 below the top).
    pub fn from_logits(logits: &[f32]) -> Self {
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let min = logits
            .iter()
            .copied()
            .fold(f32::INFINITY, f32::min)
            .max(max - 16.0);
        let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
        let log_sum_exp = sum_exp.ln() as f32;
        let scale = (max - min) / 65535.0;
        let q = if scale != 0.0 {
            let inv = 1.0 / scale;
            logits
                .iter()
                .map(|&l| {
                    if l > min {
                        (inv * (l - min)).round_ties_even().clamp(0.0, 65535.0) as u16
                    } else {
                        0
                    }
                })
                .collect()
        } else {
            vec![0; logits.len()]
        };
        Self {
            scale,
            min_log_prob: min - max - log_sum_exp,
            q,
        }
    }

    /// The log-probability of token `i`.
    pub fn log_prob(&self, i: usize) -> f32 {
        self.scale * f32::from(self.q.get(i).copied().unwrap_or(0)) + self.min_log_prob
    }

    /// Writes the row (`nv` u16, padding included).
    pub fn write(&self, out: &mut impl Write) -> std::io::Result<()> {
        let nv = row_len(self.q.len());
        let mut bytes = Vec::with_capacity(nv * 2);
        bytes.extend_from_slice(&self.scale.to_le_bytes());
        bytes.extend_from_slice(&self.min_log_prob.to_le_bytes());
        for &v in &self.q {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        bytes.resize(nv * 2, 0);
        out.write_all(&bytes)
    }

    /// Reads one row of a vocabulary of `n_vocab`.
    pub fn read(input: &mut impl Read, n_vocab: usize) -> std::io::Result<Self> {
        let mut bytes = vec![0u8; row_len(n_vocab) * 2];
        input.read_exact(&mut bytes)?;
        let f = |i: usize| f32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let q = bytes[8..8 + 2 * n_vocab]
            .chunks_exact(2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .collect();
        Ok(Self {
            scale: f(0),
            min_log_prob: f(4),
            q,
        })
    }
}
