//! The one place that knows how ROCmForge's GPU kernels (`kernels/*.hip`) are compiled.
//!
//! Place in the stack: a build helper, below everything. `rocmforge-hip`'s `build.rs` uses it to
//! compile and embed the kernel images; `cargo xtask kernels` uses it to write them to
//! `target/kernels/`. Both get the same command lines from [`command`], so a flag changed here
//! changes both. It depends on std and thiserror only, so a build script pays almost nothing for it.
//!
//! - [`targets`] — the default AMD / NVIDIA targets and `ROCMFORGE_AMDGPU_TARGETS`.
//! - [`compiler`] — finding hipcc, clang-19 / clang (with the AMDGPU or NVPTX back end) or nvcc.
//! - [`command`] — the exact command line of each compile.
//! - [`jobs`] — running many compiles on a few threads, longest first.
//! - [`sources`] — the `kernels/*.hip` files and a content hash of the sources and headers.

pub mod command;
pub mod compiler;
mod error;
pub mod jobs;
pub mod sources;
pub mod targets;

pub use compiler::{Compiler, CompilerKind};
pub use error::{KernelBuildError, KernelBuildResult};
pub use jobs::{Job, Outcome, default_workers, run_jobs};
pub use targets::{DEFAULT_AMD_TARGETS, EMBEDDED_NVIDIA_TARGETS, amd_targets_from_env};
