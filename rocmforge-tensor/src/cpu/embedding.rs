//! Embedding lookup: rows of a float or quantized table, dequantized to f32.

use rayon::prelude::*;

use super::dot::dequantize_row;
use super::weight::WeightView;
use crate::error::{TensorError, TensorResult};

/// Copies row `ids[i]` of `table` (`[vocab][dim]`, any type [`matmul`](super::matmul)
/// accepts), dequantized, into `out[i]` (`out: [ids.len()][dim]`).
///
/// Errors: an id `>= table.rows` (naming the id, its index and the vocabulary size), an
/// unsupported type, or sizes that do not fit.
pub fn embedding(table: &WeightView, ids: &[u32], out: &mut [f32]) -> TensorResult<()> {
    const OP: &str = "embedding";
    let row_bytes = table.checked_row_bytes(OP)?;
    let dim = table.cols;
    if Some(out.len()) != ids.len().checked_mul(dim) {
        return Err(TensorError::Shape {
            op: OP,
            what: format!(
                "output holds {} values, expected {} ids x {dim} columns",
                out.len(),
                ids.len()
            ),
        });
    }
    if let Some((index, &id)) = ids
        .iter()
        .enumerate()
        .find(|(_, id)| **id as usize >= table.rows)
    {
        return Err(TensorError::TokenOutOfRange {
            op: OP,
            id,
            index,
            vocab: table.rows,
        });
    }
    if dim == 0 {
        return Ok(());
    }
    out.par_chunks_exact_mut(dim)
        .zip(ids.par_iter())
        .try_for_each(|(o, &id)| {
            let r = id as usize;
            dequantize_row(table.ty, &table.data[r * row_bytes..(r + 1) * row_bytes], o)
        })
}
