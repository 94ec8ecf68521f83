//! `BlasHandle`: a vendor BLAS handle with its own device workspace.

use std::sync::Arc;

use half::f16;

use super::loader::{BlasLibrary, blas_library};
use super::result;
use super::sys::BlasRawHandle;
use crate::backend::HipBackend;
use crate::buffer::DeviceBuffer;
use crate::error::{HipError, HipResult, Platform};
use crate::repr::DevicePtr;
use crate::stream::HipStream;

/// Workspace given to every handle: 32 MiB, what cuBLAS asks for on Hopper.
pub const BLAS_WORKSPACE_BYTES: usize = 32 << 20;

/// A cuBLAS (NVIDIA) or rocBLAS (AMD) handle bound to one device, with a workspace allocated once
/// so that its GEMMs allocate nothing and can be captured into a graph.
///
/// Calls take `&mut self`: a BLAS handle must not be used by two threads at once.
pub struct BlasHandle {
    raw: BlasRawHandle,
    lib: &'static BlasLibrary,
    platform: Platform,
    // Dropped after the handle (see Drop): the library may use it until it is destroyed.
    workspace: DeviceBuffer<u8>,
    backend: Arc<HipBackend>,
}

impl std::fmt::Debug for BlasHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlasHandle")
            .field("library", &self.lib.name)
            .field("platform", &self.platform)
            .field("workspace_bytes", &self.workspace.len())
            .finish()
    }
}

// SAFETY: the handle is only used through `&mut self` (one thread at a time), and both vendors
// allow a handle to move between threads as long as calls do not overlap.
unsafe impl Send for BlasHandle {}

fn to_int(what: &'static str, n: usize) -> HipResult<i32> {
    i32::try_from(n).map_err(|_| HipError::SizeOverflow {
        op: what,
        len: n,
        elem_size: 1,
    })
}

fn need(op: &'static str, have: usize, a: usize, b: usize) -> HipResult<()> {
    let n = a.checked_mul(b).ok_or(HipError::SizeOverflow {
        op,
        len: a,
        elem_size: b,
    })?;
    if have < n {
        return Err(HipError::LengthMismatch {
            op,
            expected: n,
            actual: have,
        });
    }
    Ok(())
}

impl BlasHandle {
    /// Opens the vendor BLAS for `backend`'s platform (cuBLAS on NVIDIA, rocBLAS on AMD) and
    /// creates a handle on its device. A missing library is [`HipError::LibraryNotFound`]
    /// naming every file tried (set `ROCMFORGE_BLAS_LIB` to point at one).
    pub fn new(backend: &Arc<HipBackend>) -> HipResult<BlasHandle> {
        let platform = backend.platform();
        let lib = blas_library(platform)?;
        backend.bind()?;
        let workspace = backend.alloc::<u8>(BLAS_WORKSPACE_BYTES)?;
        let raw = result::create(lib)?;
        let handle = BlasHandle {
            raw,
            lib,
            platform,
            workspace,
            backend: Arc::clone(backend),
        };
        // SAFETY: live handle; the workspace lives as long as the handle (dropped after it).
        unsafe {
            result::set_workspace(
                lib,
                raw,
                handle.workspace.device_ptr().0,
                handle.workspace.len(),
            )
        }?;
        Ok(handle)
    }

    /// The library file that was opened (e.g. `libcublas.so.13`).
    pub fn library(&self) -> &str {
        &self.lib.name
    }

    /// The platform of the library.
    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// Queues `out[t][r] = Σ_c w[r][c] · x[t][c]` on `stream`: `w: [rows][cols]` f16,
    /// `x: [n_tokens][cols]` f16, `out: [n_tokens][rows]` f32, row-major, f32 accumulation (the
    /// convention of `rocmforge-tensor`'s matmul). Buffers may be longer than needed.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul_f16_f32(
        &mut self,
        stream: &HipStream,
        w: &DeviceBuffer<f16>,
        x: &DeviceBuffer<f16>,
        out: &mut DeviceBuffer<f32>,
        rows: usize,
        cols: usize,
        n_tokens: usize,
    ) -> HipResult<()> {
        const OP: &str = "blas matmul_f16_f32";
        need(OP, w.len(), rows, cols)?;
        need(OP, x.len(), n_tokens, cols)?;
        need(OP, out.len(), n_tokens, rows)?;
        for b in [w.backend(), x.backend(), out.backend(), stream.backend()] {
            if !Arc::ptr_eq(b, &self.backend) {
                return Err(HipError::InvalidUse(format!(
                    "{OP}: a buffer or stream of another device than the BLAS handle's"
                )));
            }
        }
        // SAFETY: sizes checked above (w holds rows*cols, x n_tokens*cols, out n_tokens*rows
        // elements) and every buffer belongs to the handle's device; borrowed for the call, and
        // freeing them waits for queued work.
        unsafe {
            self.gemm_f16_f32_raw(
                stream,
                w.device_ptr(),
                x.device_ptr(),
                out.device_ptr(),
                rows,
                cols,
                n_tokens,
                rows,
            )
        }
    }

    /// [`BlasHandle::matmul_f16_f32`] on raw device addresses, with an output row stride:
    /// `out[t * out_stride + r] = Σ_c w[r * cols + c] · x[t * cols + c]` for `r < rows`.
    ///
    /// # Safety
    /// `w` holds `rows * cols` f16, `x` `n_tokens * cols` f16 and `out`
    /// `(n_tokens - 1) * out_stride + rows` f32 on this handle's device, `stream` belongs to
    /// that device, and none is freed before the stream reaches the call.
    #[allow(clippy::too_many_arguments)]
    pub unsafe fn gemm_f16_f32_raw(
        &mut self,
        stream: &HipStream,
        w: DevicePtr,
        x: DevicePtr,
        out: DevicePtr,
        rows: usize,
        cols: usize,
        n_tokens: usize,
        out_stride: usize,
    ) -> HipResult<()> {
        const OP: &str = "blas gemm_f16_f32";
        if out_stride < rows {
            return Err(HipError::InvalidUse(format!(
                "{OP}: output row stride {out_stride} shorter than its {rows} rows"
            )));
        }
        let (m, n, k, ldc) = (
            to_int(OP, rows)?,
            to_int(OP, n_tokens)?,
            to_int(OP, cols)?,
            to_int(OP, out_stride)?,
        );
        if m == 0 || n == 0 {
            return Ok(());
        }
        self.backend.bind()?;
        // SAFETY: live handle; the stream is of the handle's device (the caller's promise).
        unsafe { result::set_stream(self.lib, self.raw, stream.raw()) }?;
        // SAFETY: the caller's promise on the sizes and lifetimes of w, x and out.
        unsafe { result::gemm_f16_tn_f32(self.lib, self.raw, m, n, k, ldc, w.0, x.0, out.0) }
    }
}

impl Drop for BlasHandle {
    fn drop(&mut self) {
        if self.backend.bind().is_ok() {
            // SAFETY: created in `new`, destroyed once here, before the workspace is freed.
            let _ = unsafe { result::destroy(self.lib, self.raw) };
        }
    }
}
