//! `sample_rows`: the sampling chain ([`crate::cpu::sample_row`]) over a batch of logit rows on
//! the backend, one token id per row. On a GPU only the ids come back; a row whose top-p prefix
//! is longer than the kernel's sorted candidates is finished on the host from that row's
//! logits alone (same chain, same uniform: the result does not depend on where it ran), and so
//! is a row whose logit bias the kernel cannot apply exactly ([`SampleRow::scales_bias`]: a
//! repeat penalty beside a biased token that has no penalty).

use rayon::prelude::*;

use crate::backend::Backend;
use crate::cpu::{self, SampleRow};
use crate::error::{TensorError, TensorResult};
use crate::hip;
use crate::tensor::{Ids, Tensor};

/// The ids `sample_rows` chose, and which rows the host finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sampled {
    /// One token id per row.
    pub ids: Vec<u32>,
    /// Per row: finished on the host (its logits read back); never on the CPU backend.
    pub on_host: Vec<bool>,
}

impl Sampled {
    /// How many rows the host finished.
    pub fn host_rows(&self) -> usize {
        self.on_host.iter().filter(|&&h| h).count()
    }
}

/// Checks what a kernel could not: finite parameters in range, distinct penalty tokens.
fn check_row(r: usize, row: &SampleRow<'_>) -> TensorResult<()> {
    const OP: &str = "sample_rows";
    let p = &row.params;
    let bad = |what: String| {
        Err(TensorError::Shape {
            op: OP,
            what: format!("row {r}: {what}"),
        })
    };
    if !p.temperature.is_finite() {
        return bad(format!("temperature {}", p.temperature));
    }
    if !(p.top_p > 0.0 && p.top_p <= 1.0 && (0.0..=1.0).contains(&p.min_p)) {
        return bad(format!("top_p {} / min_p {}", p.top_p, p.min_p));
    }
    let pen = [p.repeat_penalty, p.presence_penalty, p.frequency_penalty];
    if !pen.iter().all(|v| v.is_finite()) || p.repeat_penalty <= 0.0 {
        return bad(format!("penalties {pen:?}"));
    }
    if !(0.0..1.0).contains(&row.u) {
        return bad(format!("uniform {} outside [0, 1)", row.u));
    }
    let mut tokens: Vec<u32> = row.penalties.iter().map(|p| p.0).collect();
    tokens.sort_unstable();
    if tokens.windows(2).any(|w| w[0] == w[1]) {
        return bad("penalty tokens are not distinct".to_string());
    }
    if let Some(b) = row.bias.iter().find(|b| !b.1.is_finite()) {
        return bad(format!("logit bias {} of token {}", b.1, b.0));
    }
    let mut tokens: Vec<u32> = row.bias.iter().map(|b| b.0).collect();
    tokens.sort_unstable();
    if tokens.windows(2).any(|w| w[0] == w[1]) {
        return bad("logit bias tokens are not distinct".to_string());
    }
    Ok(())
}

/// The chain for row `i` of `rows` over row `i` of `logits` (F32 `[..][vocab]`, at least
/// `rows.len()` rows). `out` (at least `rows.len()` ids, on this backend) is the device-side
/// output; the ids are returned after the backend has finished.
pub fn sample_rows(
    be: &Backend,
    logits: &Tensor,
    vocab: usize,
    rows: &[SampleRow<'_>],
    out: &mut Ids,
) -> TensorResult<Sampled> {
    const OP: &str = "sample_rows";
    for (r, row) in rows.iter().enumerate() {
        check_row(r, row)?;
    }
    match (be, out) {
        (Backend::Cpu, Ids::Cpu(out)) => {
            let x = logits.cpu_f32(OP)?;
            let fits = vocab
                .checked_mul(rows.len())
                .is_some_and(|n| n <= x.len() && vocab > 0);
            if !fits || out.len() < rows.len() {
                return Err(TensorError::Shape {
                    op: OP,
                    what: format!(
                        "{} rows of {vocab} in {} values into {} ids",
                        rows.len(),
                        x.len(),
                        out.len()
                    ),
                });
            }
            // Rows are independent: one rayon task each (a 152k-token row takes milliseconds).
            out[..rows.len()]
                .par_iter_mut()
                .zip(x.par_chunks_exact(vocab))
                .zip(rows.par_iter())
                .for_each(|((o, l), row)| *o = cpu::sample_row(l, row));
            Ok(Sampled {
                ids: out[..rows.len()].to_vec(),
                on_host: vec![false; rows.len()],
            })
        }
        (Backend::Hip(ops), Ids::Hip(out)) => {
            hip::sample::sample_rows_queued(ops, logits.hip(OP)?, vocab, rows, out)?;
            ops.synchronize()?;
            let mut ids = vec![0u32; rows.len()];
            out.copy_range_to_host(0, &mut ids)?;
            let mut on_host = vec![false; rows.len()];
            for (r, id) in ids.iter_mut().enumerate() {
                if *id == hip::sample::FINISH_ON_HOST || rows[r].scales_bias() {
                    let l = logits.rows_to_f32_vec(vocab, r, 1)?;
                    *id = cpu::sample_row(&l, &rows[r]);
                    on_host[r] = true;
                }
            }
            Ok(Sampled { ids, on_host })
        }
        _ => Err(TensorError::Backend {
            op: OP,
            what: "ids on another backend".to_string(),
        }),
    }
}
