//! One entry of a file's tensor index.

use crate::types::GgmlType;

/// Name, shape, type and place of one tensor in a GGUF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TensorInfo {
    /// The tensor's name (`"blk.0.attn_q.weight"`).
    pub name: String,
    /// Dimensions, `ne0` (the fastest-varying, contiguous one) first.
    pub dims: Vec<u64>,
    /// Element type.
    pub ty: GgmlType,
    /// Start of the tensor's bytes, relative to the data section.
    pub offset: u64,
    /// Size of the tensor's bytes.
    pub size: u64,
}

impl TensorInfo {
    /// Number of elements: the product of `dims` (1 for zero dimensions). Saturates at
    /// `u64::MAX` for a hand-made info whose product overflows; parsed infos never do.
    pub fn n_elements(&self) -> u64 {
        self.dims
            .iter()
            .try_fold(1u64, |acc, &d| acc.checked_mul(d))
            .unwrap_or(u64::MAX)
    }

    /// The shape written as `[ne0, ne1, ...]`.
    pub fn shape_string(&self) -> String {
        let parts: Vec<String> = self.dims.iter().map(u64::to_string).collect();
        format!("[{}]", parts.join(", "))
    }
}
