//! A borrowed weight matrix in its GGUF block format.

use rocmforge_gguf::GgmlType;

use crate::error::{TensorError, TensorResult};

/// A weight matrix `[rows][cols]` stored in its GGUF format, borrowed (for example straight
/// from a memory map). Row `r` is the bytes `[r * row_bytes .. (r + 1) * row_bytes]`, where
/// `row_bytes` is the size of `cols` elements of `ty`; `cols` is GGUF's `ne0`.
#[derive(Debug, Clone, Copy)]
pub struct WeightView<'a> {
    /// Element / block type.
    pub ty: GgmlType,
    /// The raw bytes, `rows * row_bytes` long.
    pub data: &'a [u8],
    /// Number of rows (GGUF `ne1`, output features of a linear layer).
    pub rows: usize,
    /// Elements per row (GGUF `ne0`, input features of a linear layer).
    pub cols: usize,
}

impl WeightView<'_> {
    /// Bytes per row, after checking that `cols` is a whole number of blocks and that
    /// `data` holds exactly `rows` rows.
    pub fn checked_row_bytes(&self, op: &'static str) -> TensorResult<usize> {
        let bs = self.ty.block_size();
        if self.cols % bs != 0 {
            return Err(TensorError::Shape {
                op,
                what: format!(
                    "weight of type {} has {} columns, not a multiple of its block size {bs}",
                    self.ty, self.cols
                ),
            });
        }
        let row_bytes = self.cols / bs * self.ty.type_size();
        let expected = row_bytes.checked_mul(self.rows);
        if expected != Some(self.data.len()) {
            return Err(TensorError::Shape {
                op,
                what: format!(
                    "weight of type {} with {} rows x {} columns needs {} bytes, got {}",
                    self.ty,
                    self.rows,
                    self.cols,
                    expected
                        .map_or_else(|| "an overflowing number of".to_string(), |e| e.to_string()),
                    self.data.len()
                ),
            });
        }
        Ok(row_bytes)
    }
}
