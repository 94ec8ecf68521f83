//! A model cut to its first blocks: the same file with `{arch}.block_count` lowered and the
//! tensors of the dropped blocks left out. Every kept tensor and metadata value is copied
//! byte for byte (the tokenizer, the embedding and the LM head are the original ones).
//!
//! Used to carry a real model's shape and weights to machines where the whole file does not
//! fit, e.g. to compare the GPU forward with the CPU one there.

use rocmforge_gguf::{GgufFile, GgufWriter, MetadataValue};

use crate::error::{ModelError, ModelResult};

/// The block index of a `blk.<i>.*` tensor name.
fn block_of(name: &str) -> Option<usize> {
    let rest = name.strip_prefix("blk.")?;
    rest.split('.').next()?.parse().ok()
}

/// The bytes of a GGUF file holding the first `keep` blocks of the model in `file`.
pub fn truncate_layers(file: &GgufFile, keep: usize) -> ModelResult<Vec<u8>> {
    let blocks: Vec<usize> = (0..keep).collect();
    select_layers(file, &blocks)
}

/// The bytes of a GGUF file holding the blocks `blocks` of the model in `file`, renumbered
/// `0..blocks.len()` in the order given (e.g. the first and last few blocks of a model: a
/// smaller model whose outputs still resemble the original's).
pub fn select_layers(file: &GgufFile, blocks: &[usize]) -> ModelResult<Vec<u8>> {
    let arch = file.architecture()?.to_string();
    let count_key = format!("{arch}.block_count");
    let total = file.metadata().get_u64(&count_key)?;
    if let Some(&bad) = blocks.iter().find(|&&b| b as u64 >= total) {
        return Err(ModelError::InvalidInput(format!(
            "block {bad} asked of a model with {total} blocks"
        )));
    }
    let keep_u32 = u32::try_from(blocks.len()).map_err(|_| {
        ModelError::InvalidInput(format!(
            "{} blocks do not fit a u32 block count",
            blocks.len()
        ))
    })?;
    let mut w = GgufWriter::new();
    w.set_alignment(file.alignment());
    for (key, value) in file.metadata().iter() {
        if key == count_key {
            w.add_metadata(key, MetadataValue::U32(keep_u32));
        } else if key != "general.alignment" {
            w.add_metadata(key, value.clone());
        }
    }
    for info in file
        .tensors()
        .iter()
        .filter(|t| block_of(&t.name).is_none())
    {
        w.add_tensor(
            &info.name,
            &info.dims,
            info.ty,
            file.tensor_data(info).to_vec(),
        )?;
    }
    for (new_index, &b) in blocks.iter().enumerate() {
        let src = format!("blk.{b}.");
        for info in file.tensors().iter().filter(|t| t.name.starts_with(&src)) {
            let name = format!("blk.{new_index}.{}", &info.name[src.len()..]);
            w.add_tensor(&name, &info.dims, info.ty, file.tensor_data(info).to_vec())?;
        }
    }
    Ok(w.to_bytes()?)
}

/// The bytes of a GGUF file with `n_layers` blocks, block `b` a copy of block
/// `b % kept` of `file` (which holds `kept` blocks): a model of a larger model's exact shape
/// and byte sizes, for speed measurements where the larger file cannot travel. Its outputs
/// mean nothing.
pub fn cycle_layers(file: &GgufFile, n_layers: usize) -> ModelResult<Vec<u8>> {
    let arch = file.architecture()?.to_string();
    let count_key = format!("{arch}.block_count");
    let kept = file.metadata().get_u64(&count_key)?;
    let kept = usize::try_from(kept).unwrap_or(0);
    let n_u32 = u32::try_from(n_layers).map_err(|_| {
        ModelError::InvalidInput(format!("{n_layers} blocks do not fit a u32 block count"))
    })?;
    if kept == 0 {
        return Err(ModelError::InvalidInput(
            "a model without blocks has nothing to repeat".to_string(),
        ));
    }
    let mut w = GgufWriter::new();
    w.set_alignment(file.alignment());
    for (key, value) in file.metadata().iter() {
        if key == count_key {
            w.add_metadata(key, MetadataValue::U32(n_u32));
        } else if key != "general.alignment" {
            w.add_metadata(key, value.clone());
        }
    }
    for info in file.tensors() {
        if block_of(&info.name).is_none() {
            w.add_tensor(
                &info.name,
                &info.dims,
                info.ty,
                file.tensor_data(info).to_vec(),
            )?;
        }
    }
    for b in 0..n_layers {
        let src = format!("blk.{}.", b % kept);
        for info in file.tensors().iter().filter(|t| t.name.starts_with(&src)) {
            let name = format!("blk.{b}.{}", &info.name[src.len()..]);
            w.add_tensor(&name, &info.dims, info.ty, file.tensor_data(info).to_vec())?;
        }
    }
    Ok(w.to_bytes()?)
}

#[cfg(test)]
mod tests {
    use super::block_of;

    #[test]
    fn block_numbers_are_read_from_block_tensor_names_only() {
        assert_eq!(block_of("blk.12.attn_q.weight"), Some(12));
        assert_eq!(block_of("blk.0.ffn_up.weight"), Some(0));
        assert_eq!(block_of("token_embd.weight"), None);
        assert_eq!(block_of("blk.x.attn_q.weight"), None);
    }
}
