//! The error type of the tokenizer.

use rocmforge_gguf::GgufError;

/// Result alias used by the tokenizer and the chat templates.
pub type TokenizerResult<T> = Result<T, TokenizerError>;

/// Everything that can go wrong while building a tokenizer, encoding text or rendering a chat template.
#[derive(Debug, thiserror::Error)]
pub enum TokenizerError {
    /// Reading a `tokenizer.*` metadata key failed (missing key or wrong type).
    #[error("tokenizer metadata: {0}")]
    Gguf(#[from] GgufError),
    /// `tokenizer.ggml.model` names a vocabulary type this crate cannot run.
    #[error(
        "unsupported tokenizer model '{0}' in tokenizer.ggml.model (supported: llama, gpt2, gemma4; \
         not supported: bert (WordPiece), t5 (Unigram), rwkv, plamo2)"
    )]
    UnsupportedModel(String),
    /// `tokenizer.ggml.pre` names a pre-tokenizer this crate does not know.
    #[error(
        "unsupported pre-tokenizer '{0}' in tokenizer.ggml.pre (not one llama.cpp 0.5.0 knows)"
    )]
    UnsupportedPreTokenizer(String),
    /// A metadata array or value is inconsistent with the vocabulary.
    #[error("invalid tokenizer metadata '{key}': {reason}")]
    InvalidMetadata {
        /// The metadata key at fault.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A token id outside the vocabulary was passed in.
    #[error("token id {id} is out of range (vocabulary size {vocab_size})")]
    InvalidTokenId {
        /// The offending id.
        id: u32,
        /// Number of tokens in the vocabulary.
        vocab_size: usize,
    },
    /// A byte of the input has no token, not even a byte-fallback one, and the vocabulary has no unknown token.
    #[error("no token for byte 0x{byte:02X} and the vocabulary has no unknown token")]
    UnencodableByte {
        /// The byte that could not be encoded.
        byte: u8,
    },
    /// A pre-tokenizer regex failed to compile or to run.
    #[error("pre-tokenizer regex {pattern:?}: {reason}")]
    Regex {
        /// The pattern.
        pattern: String,
        /// The regex engine's message.
        reason: String,
    },
    /// A chat template failed to parse or render.
    #[error("chat template: {0}")]
    ChatTemplate(String),
}
