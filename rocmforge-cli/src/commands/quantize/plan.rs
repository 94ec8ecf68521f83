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

/// Decides what to do with `info` when the target type is `target`.
///
/// 1-D tensors (norms) and `*.bias` tensors become F32; a tensor whose row length (`ne0`)
/// is not a multiple of the target's block size, or whose source type cannot be decoded,
/// is copied unchanged; everything else is quantized.
pub fn action_for(info: &TensorInfo, target: GgmlType) -> TensorAction {
    let decodable = quants::can_dequantize(info.ty);
    let is_vector = info.dims.iter().filter(|&&d| d > 1).count() <= 1;
    if info.name.ends_with(".bias") || is_vector {
        return if decodable && info.ty != GgmlType::F32 {
            TensorAction::ToF32
        } else {
            TensorAction::Copy
        };
    }
    let row = info.dims.first().copied().unwrap_or(0);
    if !decodable || row % target.block_size() as u64 != 0 || info.ty == target {
        return TensorAction::Copy;
    }
    TensorAction::Quantize(target)
}

/// llama.cpp's `llama_ftype` for a file whose weights are mostly `ty`, if it has one.
pub fn file_type_for(ty: GgmlType) -> Option<u32> {
    use GgmlType::*;
    Some(match ty {
        F32 => 0,
        F16 => 1,
        Q4_0 => 2,
        Q4_1 => 3,
        Q8_0 => 7,
        Q5_0 => 8,
        Q5_1 => 9,
        Q2_K => 10,
        Q3_K => 12,
        Q4_K => 15,
        Q5_K => 17,
        Q6_K => 18,
        IQ4_NL => 25,
        IQ4_XS => 30,
        BF16 => 32,
        _ => return None,
    })
}

/// Parses a target type name (`Q4_K`, `q8_0`, `f16`, ...) and checks it can be written.
pub fn parse_target(name: &str) -> anyhow::Result<GgmlType> {
    let upper = name.to_ascii_uppercase();
    let ty = GgmlType::from_name(&upper)
        .or_else(|| GgmlType::from_name(upper.trim_end_matches("_M")))
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
    fn norms_and_biases_stay_f32_matrices_are_quantized() {
        let t = GgmlType::Q4_K;
        let norm = info("blk.0.attn_norm.weight", &[512], GgmlType::F32);
        assert_eq!(action_for(&norm, t), TensorAction::Copy);
        let norm16 = info("blk.0.attn_norm.weight", &[512], GgmlType::F16);
        assert_eq!(action_for(&norm16, t), TensorAction::ToF32);
        let bias = info("blk.0.attn_q.bias", &[512, 1], GgmlType::F16);
        assert_eq!(action_for(&bias, t), TensorAction::ToF32);
        let w = info("blk.0.attn_q.weight", &[512, 512], GgmlType::F16);
        assert_eq!(action_for(&w, t), TensorAction::Quantize(t));
        let odd = info("blk.0.ffn_down.weight", &[576, 512], GgmlType::F16);
        assert_eq!(action_for(&odd, t), TensorAction::Copy);
        assert_eq!(
            action_for(&odd, GgmlType::Q8_0),
            TensorAction::Quantize(GgmlType::Q8_0)
        );
    }

    #[test]
    fn target_names_parse_case_insensitively() {
        assert_eq!(parse_target("q4_k_m").unwrap(), GgmlType::Q4_K);
        assert_eq!(parse_target("Q8_0").unwrap(), GgmlType::Q8_0);
        assert!(parse_target("Q9_9").is_err());
        assert!(parse_target("I32").is_err());
        assert_eq!(file_type_for(GgmlType::Q4_1), Some(3));
    }
}
