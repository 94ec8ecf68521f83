//! The tokenizer of a synthetic model: the `tokenizer.*` keys of a `ggml-vocab-*.gguf` file,
//! padded to the model's vocabulary with unused `[PAD{i}]` tokens (as llama.cpp's converter
//! pads Qwen's vocabulary).

use anyhow::{Context, Result, bail};
use rocmforge_gguf::{GgufFile, MetadataArray, MetadataValue, MetadataValueType};

/// llama.cpp's token type "unused".
const TOKEN_TYPE_UNUSED: i32 = 5;

/// `(key, value)` of every `tokenizer.*` key of `file`, with the token list (and its types
/// and scores, when present) padded to `vocab` entries.
pub fn tokenizer_metadata(file: &GgufFile, vocab: usize) -> Result<Vec<(String, MetadataValue)>> {
    let n = file
        .metadata()
        .get_array("tokenizer.ggml.tokens")
        .with_context(|| format!("{}: no token list", file.path().display()))?
        .len();
    if n > vocab {
        bail!(
            "{} has {n} tokens, more than the model's {vocab}",
            file.path().display()
        );
    }
    let mut out = Vec::new();
    for (key, value) in file.metadata().iter() {
        if !key.starts_with("tokenizer.") {
            continue;
        }
        let padded = match (key, value) {
            ("tokenizer.ggml.tokens", MetadataValue::Array(a)) => {
                pad(a, n, vocab, |i| MetadataValue::String(format!("[PAD{i}]")))
            }
            ("tokenizer.ggml.token_type", MetadataValue::Array(a)) => {
                pad(a, n, vocab, |_| MetadataValue::I32(TOKEN_TYPE_UNUSED))
            }
            ("tokenizer.ggml.scores", MetadataValue::Array(a)) => {
                pad(a, n, vocab, |_| MetadataValue::F32(-1e9))
            }
            _ => value.clone(),
        };
        out.push((key.to_string(), padded));
    }
    Ok(out)
}

fn pad(
    a: &MetadataArray,
    from: usize,
    to: usize,
    filler: impl Fn(usize) -> MetadataValue,
) -> MetadataValue {
    let mut values = a.values.clone();
    values.extend((from..to).map(filler));
    let elem_type: MetadataValueType = a.elem_type;
    MetadataValue::Array(MetadataArray { elem_type, values })
}
