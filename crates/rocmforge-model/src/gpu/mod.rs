//! The forward pass on a GPU: weights uploaded in their file format through an
//! [`crate::ExecutionPlan`], an f16 KV cache in device memory, and the tensor crate's HIP
//! ops (`rocmforge_tensor::ops` on a `Backend::Hip`) with `hip::matmul` for every
//! projection. Prefill runs the prompt as one batch; decode runs one token, reusing the
//! activation buffers of the previous step.

mod cache;
mod decode_graph;
mod eval;
mod forward;
mod ranged;
mod runner;
mod scratch;
mod weights;

pub use cache::GpuKvCache;
pub use eval::{GreedyRun, gpu_greedy, gpu_perplexity, gpu_predict_next};
pub use forward::GpuModel;
pub use weights::{LOAD_HEADROOM_BYTES, weight_bytes};
