//! HIP's runtime compiler (hiprtc): kernel sources compiled to AMD code objects in the process,
//! for GPUs whose target is not among the images embedded at build time (see
//! [`crate::kernel_images`], which caches what it compiles).
//!
//! Layered like the rest of the crate: [`sys`] (hand-written bindings of the few calls used,
//! resolved with libloading), `result` (each call returning [`crate::HipResult`], a failed compile
//! carrying the compiler's log) and the safe [`compile`]. The library is found under the names of
//! [`HIPRTC_LIBRARIES`] (ROCm 6's `libhiprtc.so.6`, or ROCm 5's `libamdhip64.so.5`, which exports
//! hiprtc itself); none is [`crate::HipError::LibraryNotFound`], never a panic. A compile needs no
//! GPU.
//!
//! ```
//! use rocmforge_hip::hiprtc;
//!
//! let source = "extern \"C\" __global__ void fill(float* x) { x[0] = 1.0f; }";
//! match hiprtc::compile("fill.hip", source, &[], "gfx1031") {
//!     Ok(code) => assert!(code.starts_with(b"\x7fELF")),
//!     Err(e) => println!("no hiprtc here: {e}"),
//! }
//! ```

mod loader;
mod program;
mod result;
pub mod sys;

pub use loader::HIPRTC_LIBRARIES;
pub use program::{OPTIONS, compile, library_name, version};
