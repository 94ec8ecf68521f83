//! `inspect --tensor NAME --dequant OUT`: one tensor as raw little-endian f32.

use std::path::Path;

use anyhow::Context;
use rocmforge_gguf::GgufFile;
use rocmforge_gguf::quants::dequantize_to_vec;

/// Dequantizes tensor `name` of `file` and writes it to `out`; returns the number of values.
pub fn write_dequantized(file: &GgufFile, name: &str, out: &Path) -> anyhow::Result<usize> {
    let info = file
        .tensor(name)
        .with_context(|| format!("{}: no tensor named '{name}'", file.path().display()))?;
    let values = dequantize_to_vec(info.ty, file.tensor_data(info)).with_context(|| {
        format!(
            "{}: dequantizing tensor '{name}' ({})",
            file.path().display(),
            info.ty
        )
    })?;
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(out, bytes).with_context(|| format!("writing {}", out.display()))?;
    Ok(values.len())
}
