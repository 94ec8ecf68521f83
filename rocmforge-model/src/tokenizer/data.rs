//! The raw tokenizer description, as read from `tokenizer.*` metadata, before any defaults apply.

/// Everything the tokenizer needs from a model file. `from_gguf` fills it from GGUF metadata; tests and
/// other formats may fill it by hand.
#[derive(Debug, Clone, Default)]
pub struct TokenizerData {
    /// `tokenizer.ggml.model`: `llama` (SentencePiece) or `gpt2` (byte-level BPE).
    pub model: String,
    /// `tokenizer.ggml.pre`: the BPE pre-tokenizer name.
    pub pre: Option<String>,
    /// `tokenizer.ggml.tokens`.
    pub tokens: Vec<String>,
    /// `tokenizer.ggml.scores` (empty when absent).
    pub scores: Vec<f32>,
    /// `tokenizer.ggml.token_type` (empty when absent: every token is normal).
    pub token_types: Vec<i32>,
    /// `tokenizer.ggml.merges` (BPE only).
    pub merges: Vec<String>,
    /// `tokenizer.ggml.bos_token_id`.
    pub bos_id: Option<u32>,
    /// `tokenizer.ggml.eos_token_id`.
    pub eos_id: Option<u32>,
    /// `tokenizer.ggml.eot_token_id`.
    pub eot_id: Option<u32>,
    /// `tokenizer.ggml.eom_token_id`.
    pub eom_id: Option<u32>,
    /// `tokenizer.ggml.unknown_token_id`.
    pub unknown_id: Option<u32>,
    /// `tokenizer.ggml.padding_token_id`.
    pub padding_id: Option<u32>,
    /// `tokenizer.ggml.add_bos_token`.
    pub add_bos: Option<bool>,
    /// `tokenizer.ggml.add_eos_token`.
    pub add_eos: Option<bool>,
    /// `tokenizer.ggml.add_space_prefix`.
    pub add_space_prefix: Option<bool>,
    /// `general.name` (a few models get per-token whitespace stripping by name, as in llama.cpp).
    pub model_name: Option<String>,
    /// `tokenizer.chat_template`.
    pub chat_template: Option<String>,
}
