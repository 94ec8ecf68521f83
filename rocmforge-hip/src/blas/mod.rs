//! The vendor BLAS, loaded at run time: cuBLAS on NVIDIA, rocBLAS on AMD.
//!
//! Layered like the rest of the crate: [`sys`] (hand-written bindings of the few calls used,
//! resolved with libloading), `result` (each call returning [`crate::HipResult`]), and the safe
//! [`BlasHandle`]. The library is found through `ROCMFORGE_BLAS_LIB` (a file name or path) or
//! the usual names ([`CUBLAS_LIBRARIES`], [`ROCBLAS_LIBRARIES`]); when none loads, creating a
//! handle is [`crate::HipError::LibraryNotFound`] naming each file tried, never a panic, so the
//! crate builds and its tests run on a machine without either library.
//!
//! ```
//! use rocmforge_hip::{HipBackend, blas::BlasHandle};
//!
//! match HipBackend::new(0).and_then(|b| BlasHandle::new(&b)) {
//!     Ok(h) => println!("BLAS: {}", h.library()),
//!     Err(e) => println!("no GPU BLAS here: {e}"),
//! }
//! ```

mod handle;
mod loader;
mod result;
pub mod sys;

pub use handle::{BLAS_WORKSPACE_BYTES, BlasHandle};
pub use loader::{BLAS_LIB_ENV, CUBLAS_LIBRARIES, ROCBLAS_LIBRARIES};
