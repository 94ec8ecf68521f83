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
    let arch = file.architecture()?.to_string();
    let count_key = format!("{arch}.block_count");
    let blocks = file.metadata().get_u64(&count_key)?;
    if keep as u64 > blocks {
        return Err(ModelError::InvalidInput(format!(
            "cannot keep {keep} blocks of a model with {blocks}"
        )));
    }
    let keep_u32 = u32::try_from(keep).map_err(|_| {
        ModelError::InvalidInput(format!("{keep} blocks do not fit a u32 block count"))
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
    for info in file.tensors() {
        if block_of(&info.name).is_some_and(|b| b >= keep) {
            continue;
        }
        w.add_tensor(
            &info.name,
            &info.dims,
            info.ty,
            file.tensor_data(info).to_vec(),
        )?;
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
