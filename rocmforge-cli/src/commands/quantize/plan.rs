//! Which tensors `rocmforge quantize` converts, and the `general.file_type` it records.

use rocmforge_gguf::{GgmlType, TensorInfo, quants};

/// What happens to one tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TensorAction {
    /// Converted to the target type.
    Quantize(GgmlType),
    /// Norms, biases and other 1-D tensors: written as F32.
    ToF32,
    /// Written byte for byte as it is (the target type cannot hold it, or it is integer data).
    Copy,
}

/// What to do with `info` when the mix's rules chose `chosen` for it
/// ([`super::rules::Rules::type_for`]).
///
/// 1-D tensors (norms) and `*.bias` tensors become F32 (copied when they are F32 already or
/// cannot be decoded); a tensor already in `chosen`, or whose source type cannot be decoded, is
/// copied unchanged; everything else is converted.
pub fn action_for(info: &TensorInfo, chosen: GgmlType) -> TensorAction {
    let decodable = quants::can_dequantize(info.ty);
    let is_vector = info.dims.iter().filter(|&&d| d > 1).count() <= 1;
    if info.name.ends_with(".bias") || is_vector {
        return if decodable && info.ty != GgmlType::F32 {
            TensorAction::ToF32
        } else {
            TensorAction::Copy
        };
    }
    if !decodable || info.ty == chosen {
        return TensorAction::Copy;
    }
    TensorAction::Quantize(chosen)
}

/// Parses a type name given to `--output-tensor-type` / `--token-embedding-type` and checks it
/// can be written.
pub fn parse_type(name: &str) -> anyhow::Result<GgmlType> {
    let ty = GgmlType::from_name(&name.trim().to_ascii_uppercase())
        .ok_or_else(|| anyhow::anyhow!("unknown type '{name}' (try: {})", supported_names()))?;
    if !quants::can_quantize(ty) {
        anyhow::bail!(
            "cannot quantize to {} (supported: {})",
            ty.name(),
            supported_names()
        );
    }
    Ok(ty)
}

/// The names of every type `quantize` can write, comma separated.
pub fn supported_names() -> String {
    GgmlType::ALL
        .iter()
        .filter(|t| quants::can_quantize(**t))
        .map(|t| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;

    fn info(name: &str, dims: &[u64], ty: GgmlType) -> TensorInfo {
        TensorInfo {
            name: name.to_string(),
            dims: dims.to_vec(),
            ty,
            offset: 0,
            size: 0,
        }
    }

    #[test]
    fn norms_and_biases_stay_f32_matrices_are_converted() {
        let t = GgmlType::Q4_K;
        let norm = info("blk.0.attn_norm.weight", &[512], GgmlType::F32);
        assert_eq!(action_for(&norm, GgmlType::F32), TensorAction::Copy);
        let norm16 = info("blk.0.attn_norm.weight", &[512], GgmlType::F16);
        assert_eq!(action_for(&norm16, GgmlType::F16), TensorAction::ToF32);
        let bias = info("blk.0.attn_q.bias", &[512, 1], GgmlType::F16);
        assert_eq!(action_for(&bias, GgmlType::F16), TensorAction::ToF32);
        let w = info("blk.0.attn_q.weight", &[512, 512], GgmlType::F16);
        assert_eq!(action_for(&w, t), TensorAction::Quantize(t));
        assert_eq!(action_for(&w, GgmlType::F16), TensorAction::Copy);
    }

    #[test]
    fn type_names_parse_case_insensitively() {
        assert_eq!(parse_type("q8_0").unwrap(), GgmlType::Q8_0);
        assert_eq!(parse_type("Q6_K").unwrap(), GgmlType::Q6_K);
        assert!(parse_type("Q9_9").is_err());
        assert!(parse_type("I32").is_err());
    }
}
