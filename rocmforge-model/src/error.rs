//! The error type of this crate.

use rocmforge_gguf::GgufError;
use rocmforge_tensor::TensorError;

use crate::tokenizer::TokenizerError;

/// Result alias used across `rocmforge-model`.
pub type ModelResult<T> = Result<T, ModelError>;

/// Everything that can go wrong while building or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// Reading the GGUF file or its metadata failed.
    #[error(transparent)]
    Gguf(#[from] GgufError),
    /// A tensor op rejected its inputs.
    #[error(transparent)]
    Tensor(#[from] TensorError),
    /// Building the tokenizer or encoding text failed.
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    /// `general.architecture` names an architecture this crate cannot run.
    #[error("unsupported architecture '{name}' (supported: {supported})")]
    UnsupportedArchitecture {
        /// The name found in the file.
        name: String,
        /// Comma-separated list of supported names.
        supported: String,
    },
    /// A metadata value is present but unusable.
    #[error("invalid model metadata '{key}': {reason}")]
    InvalidConfig {
        /// The metadata key (or derived quantity) at fault.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A tensor the architecture needs is not in the file.
    #[error("tensor '{name}' is missing from the model file")]
    MissingTensor {
        /// GGUF tensor name.
        name: String,
    },
    /// A tensor has a shape other than the configuration implies.
    #[error("tensor '{name}' has dims {found:?}, expected {expected:?}")]
    TensorShape {
        /// GGUF tensor name.
        name: String,
        /// Dims found in the file (ne0 first).
        found: Vec<u64>,
        /// Dims the configuration implies (ne0 first).
        expected: Vec<u64>,
    },
    /// The KV cache has no room for the tokens asked to be appended.
    #[error("context full: the KV cache holds {ctx} tokens, {needed} were needed")]
    ContextFull {
        /// Capacity of the cache in tokens.
        ctx: usize,
        /// Tokens the request would have needed in total.
        needed: usize,
    },
    /// A forward call that cannot be run as asked (empty batch, gap in positions, ...).
    #[error("invalid forward call: {0}")]
    InvalidInput(String),
    /// A grammar or JSON schema for constrained sampling that cannot be compiled, or a token
    /// it does not allow.
    #[error("grammar error in {what}: {reason}")]
    Grammar {
        /// The grammar (or token) at fault.
        what: String,
        /// llguidance's reason.
        reason: String,
    },
    /// Sampling parameters outside their domain.
    #[error("invalid sampling parameter {name} = {value}: {reason}")]
    InvalidSampling {
        /// Parameter name as on the command line.
        name: &'static str,
        /// The offending value.
        value: String,
        /// What the allowed range is.
        reason: &'static str,
    },
    /// A llama-perplexity logits file (KL-divergence base) that cannot be read or written.
    #[error("logits file {path}: {reason}")]
    LogitsFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
}
