//! The file types `synth-model` writes and the type each tensor gets, following llama.cpp's
//! `llama-quantize` (with its default options) on an F16 model.

use rocmforge_gguf::GgmlType;

use super::shape::{Kind, TensorSpec};

/// A whole-file quantization (llama.cpp's `LLAMA_FTYPE_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileType {
    Q4KM,
    Q4_0,
    Q8_0,
    F16,
    /// llama.cpp's `MXFP4_MOE` (ggml-org's gpt-oss files): 3-D expert tensors MXFP4, the other
    /// matrices Q8_0.
    Mxfp4Moe,
}

impl FileType {
    /// Parses the command-line name (Q4_K_M, Q4_0, Q8_0, F16, MXFP4_MOE; any case).
    pub fn from_name(name: &str) -> Option<FileType> {
        match name.to_ascii_uppercase().as_str() {
            "Q4_K_M" => Some(FileType::Q4KM),
            "Q4_0" => Some(FileType::Q4_0),
            "Q8_0" => Some(FileType::Q8_0),
            "F16" => Some(FileType::F16),
            "MXFP4_MOE" => Some(FileType::Mxfp4Moe),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            FileType::Q4KM => "Q4_K_M",
            FileType::Q4_0 => "Q4_0",
            FileType::Q8_0 => "Q8_0",
            FileType::F16 => "F16",
            FileType::Mxfp4Moe => "MXFP4_MOE",
        }
    }

    /// `general.file_type` (llama.cpp's ftype number).
    pub fn id(self) -> u32 {
        match self {
            FileType::Q4KM => 15,
            FileType::Q4_0 => 2,
            FileType::Q8_0 => 7,
            FileType::F16 => 1,
            FileType::Mxfp4Moe => 38,
        }
    }

    /// The type of most weight matrices.
    fn base(self) -> GgmlType {
        match self {
            FileType::Q4KM => GgmlType::Q4_K,
            FileType::Q4_0 => GgmlType::Q4_0,
            FileType::Q8_0 | FileType::Mxfp4Moe => GgmlType::Q8_0,
            FileType::F16 => GgmlType::F16,
        }
    }
}

/// llama.cpp's `use_more_bits`: the first and last eighth of the layers and every third in between.
pub fn use_more_bits(layer: usize, n_layers: usize) -> bool {
    let eighth = n_layers / 8;
    layer < eighth || layer >= 7 * n_layers / 8 || (layer - eighth) % 3 == 2
}

/// The type of tensor `t` of a model with `n_layers` blocks written as `ftype`; `tied`: the
/// model has no `output.weight`, so the token embedding is treated as the output layer.
///
/// Norms and biases stay F32. For quantized file types the output layer is Q6_K (Q8_0 files
/// keep Q8_0); Q4_K_M puts attn_v and ffn_down in Q6_K for the layers [`use_more_bits`]
/// picks. A row length that is not a multiple of the chosen type's block takes llama.cpp's
/// fallback (Q4_K → Q5_0, Q6_K → Q8_0): Qwen2.5-0.5B's 896-wide rows.
pub fn tensor_type(ftype: FileType, t: &TensorSpec, n_layers: usize, tied: bool) -> GgmlType {
    if matches!(t.kind, Kind::Norm | Kind::Bias | Kind::Router) || t.dims.len() < 2 {
        return GgmlType::F32;
    }
    let base = ftype.base();
    if ftype == FileType::F16 {
        return base;
    }
    if ftype == FileType::Mxfp4Moe && t.dims.len() == 3 && t.row_len().is_multiple_of(32) {
        return GgmlType::MXFP4;
    }
    let is_output = t.kind == Kind::Output || (tied && t.kind == Kind::TokenEmbd);
    let more_bits = t.layer.is_some_and(|l| use_more_bits(l, n_layers));
    // (A fused attn_qkv counts as attn_v, as llama-quantize's `category_is_attn_v`.)
    let more_bits_kind = matches!(t.kind, Kind::AttnV | Kind::AttnQkv | Kind::FfnDown);
    let chosen = if (is_output && base != GgmlType::Q8_0)
        || (ftype == FileType::Q4KM && more_bits && more_bits_kind)
    {
        GgmlType::Q6_K
    } else {
        base
    };
    let (row, block) = (t.row_len(), chosen.block_size());
    if row / block * block != row {
        fallback(chosen)
    } else {
        chosen
    }
}

/// llama.cpp's type for rows that are not whole blocks of `ty`.
fn fallback(ty: GgmlType) -> GgmlType {
    match ty {
        GgmlType::Q4_K => GgmlType::Q5_0,
        _ => GgmlType::Q8_0,
    }
}
