//! `quantize --imatrix FILE`: the per-column importance llama-quantize hands its quantizers,
//! read from llama.cpp's GGUF imatrix file, and the checks it makes with it.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::Context;
use rocmforge_gguf::imatrix::Imatrix;
use rocmforge_gguf::{GgmlType, MetadataValue, TensorInfo};

/// The importance of each weight's input columns (`in_sum2 / count`), by weight name.
#[derive(Debug, Clone)]
pub struct Importance {
    weights: BTreeMap<String, Vec<f32>>,
    /// Metadata llama-quantize records in the output (`quantize.imatrix.*`).
    pub metadata: Vec<(String, MetadataValue)>,
}

/// The longest string llama-quantize stores in a metadata override.
const MAX_OVERRIDE_BYTES: usize = 127;

fn truncated(s: &str) -> String {
    let mut end = s.len().min(MAX_OVERRIDE_BYTES);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_string()
}

impl Importance {
    /// Reads `path`. Errors: not an imatrix file, or a value that is not finite (llama-quantize
    /// refuses both).
    pub fn load(path: &Path) -> anyhow::Result<Importance> {
        let m = Imatrix::open(path)
            .with_context(|| format!("reading the importance matrix {}", path.display()))?;
        let weights = m.importance();
        for (name, w) in &weights {
            if let Some(v) = w.iter().find(|v| !v.is_finite()) {
                anyhow::bail!(
                    "{}: entry {name} holds a non-finite value ({v})",
                    path.display()
                );
            }
        }
        let mut metadata = vec![(
            "quantize.imatrix.file".to_string(),
            MetadataValue::String(truncated(&path.display().to_string())),
        )];
        if let Some(d) = m.datasets.first() {
            metadata.push((
                "quantize.imatrix.dataset".to_string(),
                MetadataValue::String(truncated(d)),
            ));
        }
        metadata.push((
            "quantize.imatrix.entries_count".to_string(),
            MetadataValue::U32(weights.len() as u32),
        ));
        if m.chunk_count > 0 {
            metadata.push((
                "quantize.imatrix.chunks_count".to_string(),
                MetadataValue::U32(m.chunk_count),
            ));
        }
        Ok(Importance { weights, metadata })
    }

    /// Number of weights the file has an entry for.
    pub fn len(&self) -> usize {
        self.weights.len()
    }

    /// The importance of `info`'s columns, or `None` when the file has no entry for it (the
    /// tensor is then quantized without). An entry of another size than the tensor's columns
    /// (times experts) is an error, except for the token embedding, as in llama-quantize.
    pub fn for_tensor(&self, info: &TensorInfo) -> anyhow::Result<Option<&[f32]>> {
        let Some(w) = self.weights.get(&info.name) else {
            return Ok(None);
        };
        let cols = info.dims.first().copied().unwrap_or(0);
        let experts = info.dims.get(2).copied().unwrap_or(1);
        if cols.checked_mul(experts) == Some(w.len() as u64) {
            return Ok(Some(w));
        }
        if is_token_embedding(&info.name) {
            return Ok(None);
        }
        anyhow::bail!(
            "imatrix size {} is different from tensor size {} for {}",
            w.len(),
            cols.saturating_mul(experts),
            info.name
        )
    }
}

fn is_token_embedding(name: &str) -> bool {
    name == "token_embd.weight" || name == "per_layer_token_embd.weight"
}

/// Whether llama-quantize refuses to write `ty` for tensor `name` without an importance matrix
/// (its `tensor_requires_imatrix`: the 1- and 2-bit IQ types, and Q2_K in a Q2_K_S file).
pub fn requires_importance(name: &str, ty: GgmlType, q2_k_s: bool) -> bool {
    if is_token_embedding(name) || name == "output.weight" {
        return false;
    }
    ty == GgmlType::Q2_K && q2_k_s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_q2_k_of_a_q2_k_s_file_needs_an_imatrix() {
        assert!(requires_importance(
            "blk.0.ffn_up.weight",
            GgmlType::Q2_K,
            true
        ));
        assert!(!requires_importance(
            "blk.0.ffn_up.weight",
            GgmlType::Q2_K,
            false
        ));
        assert!(!requires_importance("output.weight", GgmlType::Q2_K, true));
        assert!(!requires_importance(
            "blk.0.ffn_up.weight",
            GgmlType::Q4_K,
            true
        ));
    }

    #[test]
    fn long_paths_are_cut_at_127_bytes() {
        let long = "é".repeat(100);
        let t = truncated(&long);
        assert!(t.len() <= 127 && long.starts_with(&t));
    }
}
