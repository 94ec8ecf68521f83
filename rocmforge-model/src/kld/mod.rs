//! llama.cpp-compatible KL divergence: write the logits file of `llama-perplexity
//! --kl-divergence-base` ([`save_logits`]) and compare a model against one ([`kl_divergence`]),
//! whichever program wrote it.

mod file;
mod stats;

use std::io::{Read, Write};

pub use file::{CompressedRow, LogitsHeader, MAGIC, row_len, rows_per_chunk};
pub use stats::{Estimate, KlAccumulator, KlSummary};

use crate::error::{ModelError, ModelResult};
use crate::eval::{Perplexity, for_each_chunk, negative_log_likelihood};
use crate::model::Model;

fn io_err(what: &str, doing: &str, e: &std::io::Error) -> ModelError {
    ModelError::LogitsFile {
        path: what.to_string(),
        reason: format!("{doing}: {e}"),
    }
}

/// Which chunks of a token list are evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunks {
    /// Tokens per chunk.
    pub n_ctx: usize,
    /// Number of chunks.
    pub count: usize,
    /// The token that replaces each chunk's first (the model's BOS, where it adds one).
    pub bos: Option<u32>,
}

/// Evaluates `chunks` of `tokens` (as [`crate::perplexity`] does) and writes the logits file to
/// `out` (`what` names it in errors). Returns the perplexity of those chunks.
pub fn save_logits(
    model: &Model,
    tokens: &[u32],
    chunks: Chunks,
    out: &mut impl Write,
    what: &str,
    mut progress: impl FnMut(usize, usize, f64),
) -> ModelResult<Perplexity> {
    let Chunks {
        n_ctx,
        count: chunks,
        bos,
    } = chunks;
    let vocab = model.config().vocab_size;
    let header = LogitsHeader {
        n_ctx,
        n_vocab: vocab,
        n_chunk: chunks,
        tokens: tokens
            .get(..n_ctx.saturating_mul(chunks))
            .unwrap_or(tokens)
            .to_vec(),
    };
    header
        .write(out)
        .map_err(|e| io_err(what, "writing the header", &e))?;
    let (mut nll, mut count) = (0.0f64, 0usize);
    for_each_chunk(model, tokens, n_ctx, chunks, bos, |chunk, span, rows| {
        for (p, row) in rows.chunks_exact(vocab).enumerate() {
            CompressedRow::from_logits(row)
                .write(out)
                .map_err(|e| io_err(what, "writing log-probabilities", &e))?;
            nll += negative_log_likelihood(row, span[n_ctx / 2 + p + 1] as usize);
            count += 1;
        }
        progress(chunk + 1, chunks, (nll / count as f64).exp());
        Ok(())
    })?;
    out.flush().map_err(|e| io_err(what, "flushing", &e))?;
    Ok(Perplexity {
        ppl: (nll / count.max(1) as f64).exp(),
        chunks,
        scored_tokens: count,
    })
}

/// Compares `model` with the base distributions of a logits file whose header was read from
/// `input` (the rows follow): the first `chunks` chunks (all when `None`). `progress(done, total,
/// running summary)` is called after each chunk.
pub fn kl_divergence(
    model: &Model,
    header: &LogitsHeader,
    input: &mut impl Read,
    what: &str,
    chunks: Option<usize>,
    bos: Option<u32>,
    mut progress: impl FnMut(usize, usize, &KlAccumulator),
) -> ModelResult<KlSummary> {
    let vocab = model.config().vocab_size;
    if header.n_vocab != vocab {
        return Err(ModelError::LogitsFile {
            path: what.to_string(),
            reason: format!(
                "was written for a vocabulary of {} tokens, the model has {vocab}",
                header.n_vocab
            ),
        });
    }
    let n_ctx = header.n_ctx;
    let chunks = chunks.map_or(header.n_chunk, |c| c.min(header.n_chunk));
    let mut acc = KlAccumulator::default();
    for_each_chunk(
        model,
        &header.tokens,
        n_ctx,
        chunks,
        bos,
        |chunk, span, rows| {
            for (p, row) in rows.chunks_exact(vocab).enumerate() {
                let base = CompressedRow::read(input, vocab)
                    .map_err(|e| io_err(what, &format!("reading chunk {chunk}"), &e))?;
                acc.add(row, &base, span[n_ctx / 2 + p + 1] as usize);
            }
            progress(chunk + 1, chunks, &acc);
            Ok(())
        },
    )?;
    acc.summary().ok_or_else(|| ModelError::LogitsFile {
        path: what.to_string(),
        reason: "has no scored positions".into(),
    })
}
