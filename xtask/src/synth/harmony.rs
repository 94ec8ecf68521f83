//! A copy of the tiny gpt-oss model that speaks harmony, for the server's tests
//! (`rocmforge-cli/tests/serve_harmony.rs`, the `openai` client script): seven byte tokens take
//! the texts of harmony's markers (bytes 1 to 7, which no test text uses; control tokens, as
//! gpt-oss's GGUFs mark them) and `tokenizer.chat_template` is gpt-oss's template from
//! llama.cpp's source tree (`rocmforge-model/tests/data/chat/gpt-oss.jinja`). The weights are
//! the tiny model's, untouched; the KL oracle's file is not this copy.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use rocmforge_gguf::{GgufFile, GgufWriter, MetadataArray, MetadataValue, MetadataValueType};

use crate::paths;

/// The markers, written over the tokens of bytes 1, 2, ...
pub const MARKERS: [&str; 7] = [
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|constrain|>",
    "<|return|>",
    "<|call|>",
];

/// llama.cpp's token type "control".
const CONTROL: i32 = 3;

/// The copy's file name in the tiny models' folder.
pub const FILE: &str = "tiny-gpt-oss-harmony.gguf";

/// gpt-oss's chat template as kept for the template tests.
pub fn template_path() -> PathBuf {
    paths::repo_root().join("rocmforge-model/tests/data/chat/gpt-oss.jinja")
}

/// Writes the harmony copy of the tiny gpt-oss model `src` to `dst`.
pub fn write_copy(src: &Path, dst: &Path) -> Result<()> {
    let file = GgufFile::open(src).with_context(|| format!("opening {}", src.display()))?;
    let template = std::fs::read_to_string(template_path())
        .with_context(|| format!("reading {}", template_path().display()))?;
    let mut w = GgufWriter::new();
    for (key, value) in file.metadata().iter() {
        let value = match (key, value) {
            ("tokenizer.ggml.tokens", MetadataValue::Array(a)) => {
                let mut values = a.values.clone();
                if values.len() <= MARKERS.len() {
                    bail!("{}: too few tokens for the markers", src.display());
                }
                for (i, m) in MARKERS.iter().enumerate() {
                    values[i + 1] = MetadataValue::String(m.to_string());
                }
                MetadataValue::Array(MetadataArray::new(MetadataValueType::String, values))
            }
            ("tokenizer.ggml.token_type", MetadataValue::Array(a)) => {
                let mut values = a.values.clone();
                for v in values.iter_mut().skip(1).take(MARKERS.len()) {
                    *v = MetadataValue::I32(CONTROL);
                }
                MetadataValue::Array(MetadataArray::new(MetadataValueType::I32, values))
            }
            _ => value.clone(),
        };
        w.add_metadata(key, value);
    }
    w.add_metadata("tokenizer.chat_template", MetadataValue::String(template));
    for t in file.tensors() {
        w.add_tensor(&t.name, &t.dims, t.ty, file.tensor_data(t).to_vec())
            .with_context(|| format!("copying {}", t.name))?;
    }
    w.write_to(dst)
        .with_context(|| format!("writing {}", dst.display()))?;
    Ok(())
}
