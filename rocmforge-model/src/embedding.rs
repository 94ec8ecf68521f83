//! Sentence embeddings from a model's last hidden states: the output-normed state of every token
//! (the LM head's input, as llama.cpp's embeddings of a decoder model), pooled over the sequence
//! and scaled to unit length (llama-server's default Euclidean normalisation).

use rocmforge_gguf::{GgufFile, MetadataValue};

use crate::arch::Architecture;
use crate::error::{ModelError, ModelResult};
use crate::model::Model;

/// How the per-token hidden states of a sequence become one vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    /// The mean over every token (BOS and EOS included where the tokenizer adds them).
    Mean,
    /// The first token's state (BERT's CLS).
    Cls,
    /// The last token's state.
    Last,
}

impl Pooling {
    /// The pooling `<arch>.pooling_type` names (llama.cpp's ids: 1 mean, 2 cls, 3 last); a file
    /// without the key, or with 0 ("none", a plain decoder model), gets mean pooling. Rank
    /// pooling (4, rerankers) is refused.
    pub fn from_gguf(file: &GgufFile, arch: Architecture) -> ModelResult<Self> {
        let key = format!("{}.pooling_type", arch.name());
        let id = match file.metadata().get(&key) {
            None => return Ok(Self::Mean),
            Some(MetadataValue::U8(v)) => i64::from(*v),
            Some(MetadataValue::I8(v)) => i64::from(*v),
            Some(MetadataValue::U16(v)) => i64::from(*v),
            Some(MetadataValue::I16(v)) => i64::from(*v),
            Some(MetadataValue::U32(v)) => i64::from(*v),
            Some(MetadataValue::I32(v)) => i64::from(*v),
            Some(MetadataValue::I64(v)) => *v,
            Some(MetadataValue::U64(v)) => i64::try_from(*v).unwrap_or(i64::MAX),
            Some(other) => {
                return Err(ModelError::InvalidConfig {
                    key,
                    reason: format!("expected an integer, found {other:?}"),
                });
            }
        };
        match id {
            0 | 1 => Ok(Self::Mean),
            2 => Ok(Self::Cls),
            3 => Ok(Self::Last),
            other => Err(ModelError::InvalidConfig {
                key,
                reason: format!(
                    "pooling type {other} is not supported (1 mean, 2 cls, 3 last; 4 rank is for rerankers)"
                ),
            }),
        }
    }

    /// The name llama.cpp prints for it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Cls => "cls",
            Self::Last => "last",
        }
    }
}

/// Accumulates the pooled vector over the chunks of a sequence.
struct Pooler {
    pooling: Pooling,
    sum: Vec<f64>,
    rows: usize,
}

impl Pooler {
    fn new(pooling: Pooling, dim: usize) -> Self {
        Self {
            pooling,
            sum: vec![0.0; dim],
            rows: 0,
        }
    }

    /// Takes the next `hidden.len() / dim` rows of the sequence.
    fn add(&mut self, hidden: &[f32]) {
        let dim = self.sum.len().max(1);
        for row in hidden.chunks_exact(dim) {
            let keep = match self.pooling {
                Pooling::Mean => {
                    for (s, &h) in self.sum.iter_mut().zip(row) {
                        *s += f64::from(h);
                    }
                    false
                }
                Pooling::Cls => self.rows == 0,
                Pooling::Last => true,
            };
            if keep {
                for (s, &h) in self.sum.iter_mut().zip(row) {
                    *s = f64::from(h);
                }
            }
            self.rows += 1;
        }
    }

    /// The pooled vector scaled to unit Euclidean length (a zero vector stays zero).
    fn finish(self) -> Vec<f32> {
        let scale = match self.pooling {
            Pooling::Mean => 1.0 / self.rows.max(1) as f64,
            Pooling::Cls | Pooling::Last => 1.0,
        };
        let pooled: Vec<f64> = self.sum.iter().map(|s| s * scale).collect();
        let norm = pooled.iter().map(|v| v * v).sum::<f64>().sqrt();
        let inv = if norm > 0.0 { 1.0 / norm } else { 0.0 };
        pooled.iter().map(|v| (v * inv) as f32).collect()
    }
}

impl Model {
    /// The unit-length embedding of `tokens` (`[n_embd]`), pooled as `pooling` says. The
    /// sequence runs in chunks of at most `chunk` tokens through a cache of its own.
    pub fn embed(&self, tokens: &[u32], pooling: Pooling, chunk: usize) -> ModelResult<Vec<f32>> {
        if tokens.is_empty() {
            return Err(ModelError::InvalidInput(
                "nothing to embed: the input has no tokens".to_string(),
            ));
        }
        let _span = tracing::debug_span!("embed", tokens = tokens.len()).entered();
        let mut cache = self.new_cache(tokens.len())?;
        let mut pooler = Pooler::new(pooling, self.config().n_embd);
        for part in tokens.chunks(chunk.max(1)) {
            pooler.add(&self.forward_hidden(&mut cache, part)?);
        }
        Ok(pooler.finish())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pooled(pooling: Pooling, rows: &[[f32; 2]]) -> Vec<f32> {
        let mut p = Pooler::new(pooling, 2);
        let flat: Vec<f32> = rows.iter().flatten().copied().collect();
        // Fed in two chunks, as a long sequence is.
        let (a, b) = flat.split_at(2);
        p.add(a);
        p.add(b);
        p.finish()
    }

    #[test]
    fn pools_then_scales_to_unit_length() {
        let rows = [[3.0, 0.0], [1.0, 4.0], [2.0, 2.0]];
        // Mean (2, 2) → (0.7071, 0.7071).
        let m = pooled(Pooling::Mean, &rows);
        assert!((m[0] - 0.70710677).abs() < 1e-6 && (m[1] - 0.70710677).abs() < 1e-6);
        assert_eq!(pooled(Pooling::Cls, &rows), [1.0, 0.0]);
        let l = pooled(Pooling::Last, &rows);
        assert!((l[0] - 0.70710677).abs() < 1e-6 && (l[1] - 0.70710677).abs() < 1e-6);
        let mid = pooled(Pooling::Last, &[[3.0, 0.0], [0.0, 5.0]]);
        assert_eq!(mid, [0.0, 1.0]);
    }

    #[test]
    fn a_zero_state_stays_zero() {
        assert_eq!(pooled(Pooling::Mean, &[[0.0, 0.0], [0.0, 0.0]]), [0.0, 0.0]);
    }
}
