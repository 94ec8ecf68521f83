//! Reading [`TokenizerData`] from GGUF metadata.

use rocmforge_gguf::{GgufFile, Metadata};

use super::Tokenizer;
use super::data::TokenizerData;
use super::error::TokenizerResult;

fn opt_array<T>(
    md: &Metadata,
    key: &str,
    get: impl Fn(&Metadata, &str) -> rocmforge_gguf::GgufResult<Vec<T>>,
) -> TokenizerResult<Vec<T>> {
    if md.contains_key(key) {
        Ok(get(md, key)?)
    } else {
        Ok(Vec::new())
    }
}

impl TokenizerData {
    /// Reads the `tokenizer.*` keys (and `general.name`) of a GGUF file's metadata.
    pub fn from_metadata(md: &Metadata) -> TokenizerResult<Self> {
        let owned = |v: Vec<&str>| v.into_iter().map(str::to_string).collect::<Vec<_>>();
        Ok(Self {
            model: md.get_str("tokenizer.ggml.model")?.to_string(),
            pre: md.opt_str("tokenizer.ggml.pre")?.map(str::to_string),
            tokens: owned(md.get_str_array("tokenizer.ggml.tokens")?),
            scores: opt_array(md, "tokenizer.ggml.scores", Metadata::get_f32_array)?,
            token_types: opt_array(md, "tokenizer.ggml.token_type", Metadata::get_i32_array)?,
            merges: if md.contains_key("tokenizer.ggml.merges") {
                owned(md.get_str_array("tokenizer.ggml.merges")?)
            } else {
                Vec::new()
            },
            bos_id: md.opt_u32("tokenizer.ggml.bos_token_id")?,
            eos_id: md.opt_u32("tokenizer.ggml.eos_token_id")?,
            eot_id: md.opt_u32("tokenizer.ggml.eot_token_id")?,
            eom_id: md.opt_u32("tokenizer.ggml.eom_token_id")?,
            unknown_id: md.opt_u32("tokenizer.ggml.unknown_token_id")?,
            padding_id: md.opt_u32("tokenizer.ggml.padding_token_id")?,
            add_bos: md.opt_bool("tokenizer.ggml.add_bos_token")?,
            add_eos: md.opt_bool("tokenizer.ggml.add_eos_token")?,
            add_space_prefix: md.opt_bool("tokenizer.ggml.add_space_prefix")?,
            model_name: md.opt_str("general.name")?.map(str::to_string),
            chat_template: md.opt_str("tokenizer.chat_template")?.map(str::to_string),
        })
    }
}

impl Tokenizer {
    /// Builds the tokenizer of a GGUF file (a vocabulary-only file is enough).
    pub fn from_gguf(file: &GgufFile) -> TokenizerResult<Self> {
        Self::from_data(TokenizerData::from_metadata(file.metadata())?)
    }
}
