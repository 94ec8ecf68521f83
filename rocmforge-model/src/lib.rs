//! Models over GGUF, on the CPU or a GPU: configuration, architectures, weights read in place
//! from the file, the KV cache, the forward pass, sampling and generation.
//!
//! Place in the stack: `rocmforge-cli → rocmforge-model → rocmforge-tensor →
//! {rocmforge-hip, rocmforge-gguf}`. This crate never imports `rocmforge-cli`.
//!
//! The tokenizer is built from a GGUF file's own vocabulary, exactly as llama.cpp tokenizes
//! (here one of llama.cpp's vocabulary-only test files):
//!
//! ```
//! use rocmforge_gguf::GgufFile;
//! use rocmforge_model::Tokenizer;
//!
//! let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/testdata/vocab/ggml-vocab-gpt-2.gguf");
//! let file = GgufFile::open(path)?;
//! let tokenizer = Tokenizer::from_gguf(&file)?;
//! let ids = tokenizer.encode("Hello world", false, false)?;
//! assert_eq!(ids, [15496, 995]);
//! assert_eq!(tokenizer.decode(&ids), "Hello world");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With a full model file, [`Model`] runs the forward pass on a backend (the CPU or a GPU) and
//! [`generate()`] the sampling loop; [`ExecutionPlan`] holds the file's lazily loaded weights.

// This crate's MSRV is 1.87 (llguidance, for constrained sampling), where clippy suggests
// `is_multiple_of`; the workspace's other crates stay at 1.85, so `%` is kept for one style.
#![allow(clippy::manual_is_multiple_of)]

pub mod arch;
pub mod batch;
pub mod chat_template;
pub mod config;
pub mod constraint;
pub mod embedding;
pub mod engine;
pub mod error;
pub mod eval;
pub mod forward;
pub mod generate;
pub mod kld;
pub mod kv_cache;
pub mod layer_plan;
pub mod model;
pub mod plan;
pub mod rng;
mod rope_factors;
pub mod sampler;
pub mod scheduler;
pub mod stop;
pub mod tokenizer;
pub mod weights;

pub use arch::Architecture;
pub use chat_template::{ChatMessage, ChatTemplate};
pub use config::{AttnTemperature, LongRope, ModelConfig, MoeConfig, RopeScaling, SlidingWindow};
pub use embedding::Pooling;
pub use error::{ModelError, ModelResult};
pub use eval::{GreedyRun, Perplexity, for_each_chunk, greedy, perplexity, predict_next};
pub use forward::LogitsFor;
pub use generate::{
    FinishReason, GenerateParams, Generation, GenerationStats, SequenceCache, SequenceModel,
    generate,
};
pub use kv_cache::KvCache;
pub use layer_plan::{LayerPlan, QkvPlan};
pub use model::Model;
pub use plan::{ExecutionPlan, GlmPositionHandler, LoadingStats};
/// Where a [`Model`] runs (the CPU or one GPU), re-exported from `rocmforge-tensor`.
pub use rocmforge_tensor::Backend;
pub use sampler::{Sampler, SamplingParams};
pub use tokenizer::{StreamDecoder, Tokenizer, TokenizerError};
pub use weights::{LOAD_HEADROOM_BYTES, weight_bytes};
