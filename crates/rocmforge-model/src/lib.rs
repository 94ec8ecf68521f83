//! Models over GGUF, on the CPU: configuration, architectures, weights read in place
//! from the file, the KV cache, the forward pass, sampling and generation.
//!
//! Place in the stack: `rocmforge-cli → rocmforge-model → rocmforge-tensor →
//! {rocmforge-hip, rocmforge-gguf}`. This crate never imports `rocmforge-cli`.

pub mod arch;
pub mod batch;
pub mod chat_template;
pub mod config;
pub mod engine;
pub mod error;
pub mod eval;
pub mod forward;
pub mod generate;
pub mod gpu;
pub mod kv_cache;
pub mod layer_plan;
pub mod plan;
pub mod rng;
pub mod sampler;
pub mod scheduler;
pub mod stop;
pub mod tokenizer;
pub mod weights;

pub use arch::Architecture;
pub use chat_template::{ChatMessage, ChatTemplate};
pub use config::{ModelConfig, RopeScaling};
pub use error::{ModelError, ModelResult};
pub use eval::{Perplexity, perplexity, predict_next};
pub use forward::{CpuModel, LogitsFor};
pub use generate::{FinishReason, GenerateParams, Generation, GenerationStats, generate};
pub use gpu::{GpuKvCache, GpuModel};
pub use kv_cache::KvCache;
pub use layer_plan::{LayerPlan, QkvPlan};
pub use plan::{ExecutionPlan, GlmPositionHandler, LoadingStats};
pub use sampler::{Sampler, SamplingParams};
pub use tokenizer::{StreamDecoder, Tokenizer, TokenizerError};
