//! CPU ops over plain slices: row-major, f32 activations, f16 KV cache.
//!
//! Each op mirrors the numerics of llama.cpp's CPU backend (ggml) closely enough that a
//! model run through these ops picks the same tokens: sums of squares in f64 where ggml
//! uses `ggml_float`, `x / (1 + exp(-x))` for SiLU, the RoPE cache built by repeated
//! multiplication, f16-rounded queries and probabilities in attention, and quantized
//! weights multiplied against 8-bit-quantized activations with integer dot products.
//!
//! Functions that cannot fail take slices whose lengths the caller is responsible for;
//! they never panic on mismatched lengths but only process the rows that fit.
//! Functions that take a weight ([`matmul`], [`embedding`]) check every size and return a
//! [`TensorError`](crate::TensorError) naming the op and the sizes.

mod attention;
mod attention_flash;
#[cfg(target_arch = "x86_64")]
mod decode;
mod dot;
mod elementwise;
mod embedding;
mod hot_team;
mod matmul;
mod moe;
mod norm;
pub mod quantize_act;
mod rope;
mod sample;
mod softmax;
mod weight;

pub use attention::{AttentionParams, KvRows, attention, attention_over, attention_with_sinks};
pub use attention_flash::attention_flash_f16;
pub use dot::dequantize_row;
pub use elementwise::{
    add, add_bias, attn_temperature, gelu, gelu_mul, mul, scale, silu_mul, softcap, swiglu_oai,
};
pub use embedding::embedding;
pub use hot_team::run_with_hot_team;
pub use matmul::{
    CpuKernels, PANEL_GEMM_TYPES, matmul, matmul_f32_reference, matmul_many, matmul_portable,
    matmul_with,
};
pub use moe::{MIN_WEIGHT_SUM, MatmulIdShape, matmul_id, moe_route, moe_weighted_sum};
pub use norm::{layer_norm, rms_norm};
pub use rope::{RopeMode, RopeParams, YarnParams, rope, rope_with_freq_factors};
pub use sample::{SampleParams, SampleRow, prepared_logits, sample_row};
pub use softmax::{argmax, softmax, top_k};
pub use weight::WeightView;
