//! The prefill path of [`super::matmul::matmul`]: the weight decoded to f16, the activations
//! rounded to f16, and one f16 × f16 → f32 GEMM of the vendor BLAS (cuBLAS on NVIDIA, rocBLAS on
//! AMD, loaded at run time by `rocmforge_hip::blas`) on the matrix cores.
//!
//! From [`BLAS_MIN_TOKENS`] tokens on, `matmul` takes this path when the library loads; else (no
//! library, or fewer tokens) it runs its own kernels. The f16 scratch is allocated once and
//! reused: activations `[n_tokens][cols]`, and the weight decoded in slices of at most
//! [`MAX_WEIGHT_SLICE_VALUES`] values (every weight of an 8B model in one slice; the
//! 128k-vocabulary LM head in a few), each slice multiplied into its columns of the output.
//! Everything is queued on the caller's stream, so it can be captured into a graph once the
//! scratch is reserved ([`BlasMatmul::reserve`]).

use half::f16;
use rocmforge_gguf::GgmlType;
use rocmforge_hip::blas::BlasHandle;
use rocmforge_hip::{DeviceBuffer, HipBackend, HipStream};
use std::sync::Arc;

use super::dequant_f16::{self, DequantKernels, checked_row_bytes};
use super::matmul::MatmulContext;
use crate::error::{TensorError, TensorResult};

/// Token count from which `matmul` uses the BLAS path: wherever it would otherwise run the
/// tiled mmq kernels (more than [`super::matmul::MATVEC_MAX_TOKENS`] tokens). Measured on an
/// H100 with one Llama-3-8B Q4_K layer (7 matmuls, `examples/bench_prefill_blas.rs`): the BLAS
/// path took 1.07 ms at 9 tokens against 1.24 ms for mmq, 1.10 against 2.67 ms at 128; the
/// matvec kernels keep 1..=8 tokens (0.37 ms at 8 tokens, against 1.06 ms for the BLAS).
pub const BLAS_MIN_TOKENS: usize = super::matmul::MATVEC_MAX_TOKENS + 1;
/// Largest weight slice decoded at once (f16 values): 64 Mi values, 128 MiB of scratch.
pub const MAX_WEIGHT_SLICE_VALUES: usize = 64 << 20;

const OP: &str = "hip::matmul (BLAS)";

/// Whether the BLAS path takes weights of type `ty`.
pub fn supports(ty: GgmlType) -> bool {
    dequant_f16::supports(ty)
}

/// A BLAS handle, the conversion kernels and the f16 scratch of one stream.
#[derive(Debug)]
pub struct BlasMatmul {
    handle: BlasHandle,
    kernels: DequantKernels,
    backend: Arc<HipBackend>,
    weight16: Option<DeviceBuffer<f16>>,
    act16: Option<DeviceBuffer<f16>>,
}

/// Grows `slot` to at least `need` values (freeing the old buffer first).
fn grow(
    backend: &Arc<HipBackend>,
    slot: &mut Option<DeviceBuffer<f16>>,
    need: usize,
) -> TensorResult<()> {
    if slot.as_ref().is_none_or(|b| b.len() < need) {
        *slot = None;
        *slot = Some(backend.alloc::<f16>(need.max(1))?);
        super::bump_scratch_generation();
    }
    Ok(())
}

/// Rows of a `cols`-wide weight decoded per slice.
fn slice_rows(rows: usize, cols: usize) -> usize {
    (MAX_WEIGHT_SLICE_VALUES / cols.max(1)).clamp(1, rows.max(1))
}

impl BlasMatmul {
    /// Opens the vendor BLAS and loads the conversion kernels for `backend`'s device. No BLAS
    /// library is an error naming the files tried.
    pub fn new(backend: &Arc<HipBackend>) -> TensorResult<Self> {
        Ok(Self {
            handle: BlasHandle::new(backend)?,
            kernels: DequantKernels::new(backend)?,
            backend: Arc::clone(backend),
            weight16: None,
            act16: None,
        })
    }

    /// The BLAS library file in use.
    pub fn library(&self) -> &str {
        self.handle.library()
    }

    /// The conversion kernels (for benchmarks that time the decode on its own).
    pub fn kernels(&mut self) -> &mut DequantKernels {
        &mut self.kernels
    }

    /// Allocates the scratch for weights up to `weight_values` values and activations up to
    /// `act_values` values, so that later calls of at most that size allocate nothing.
    pub fn reserve(&mut self, weight_values: usize, act_values: usize) -> TensorResult<()> {
        grow(
            &self.backend,
            &mut self.weight16,
            weight_values.min(MAX_WEIGHT_SLICE_VALUES),
        )?;
        grow(&self.backend, &mut self.act16, act_values)
    }

    /// `out[t][r] = Σ_c W[r][c] · x[t][c]` through the BLAS: same arguments and meaning as
    /// [`super::matmul::matmul`], f16 operands, f32 accumulation.
    #[allow(clippy::too_many_arguments)]
    pub fn matmul(
        &mut self,
        w: &DeviceBuffer<u8>,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        x: &DeviceBuffer<f32>,
        n_tokens: usize,
        out: &mut DeviceBuffer<f32>,
        stream: &HipStream,
    ) -> TensorResult<()> {
        if !supports(ty) {
            return Err(TensorError::UnsupportedType { op: OP, ty });
        }
        let row_bytes = checked_row_bytes(ty, rows, cols, w.len())?;
        let size = |what: &str, a: usize, b: usize, have: usize| match a.checked_mul(b) {
            Some(n) if n <= have => Ok(n),
            _ => Err(TensorError::Shape {
                op: OP,
                what: format!("{what}: {a} x {b} values needed, buffer holds {have}"),
            }),
        };
        let n_act = size("activations", n_tokens, cols, x.len())?;
        size("output", n_tokens, rows, out.len())?;
        if n_tokens == 0 || rows == 0 {
            return Ok(());
        }
        grow(&self.backend, &mut self.act16, n_act)?;
        let act16 = self
            .act16
            .as_ref()
            .map(|b| b.device_ptr())
            .ok_or_else(|| missing("activation"))?;
        // SAFETY: x holds n_act f32 (checked), the scratch at least n_act f16; both outlive
        // the queued work (the scratch lives in self; freeing it waits for the stream).
        unsafe {
            self.kernels
                .convert_raw(stream, x.device_ptr(), false, n_act, act16)
        }?;
        if ty == GgmlType::F16 {
            // SAFETY: an F16 weight is rows * cols f16 (checked by checked_row_bytes), the
            // activations n_tokens * cols f16, out n_tokens * rows f32 (checked).
            return Ok(unsafe {
                self.handle.gemm_f16_f32_raw(
                    stream,
                    w.device_ptr(),
                    act16,
                    out.device_ptr(),
                    rows,
                    cols,
                    n_tokens,
                    rows,
                )
            }?);
        }
        let per_slice = slice_rows(rows, cols);
        grow(&self.backend, &mut self.weight16, per_slice * cols)?;
        let w16 = self
            .weight16
            .as_ref()
            .map(|b| b.device_ptr())
            .ok_or_else(|| missing("weight"))?;
        let mut r0 = 0;
        while r0 < rows {
            let n_rows = per_slice.min(rows - r0);
            let w_at = w
                .device_ptr()
                .byte_offset(r0 * row_bytes)
                .ok_or_else(|| missing("weight offset"))?;
            let out_at = out.device_ptr_at(r0)?;
            // SAFETY: rows r0..r0+n_rows of the weight lie inside `w` (checked_row_bytes); the
            // scratch holds per_slice * cols >= n_rows * cols f16; stream order keeps the next
            // slice's decode behind this slice's GEMM.
            unsafe {
                self.kernels
                    .weight_raw(stream, w_at, ty, row_bytes, n_rows, cols, w16)
            }?;
            // SAFETY: out_at + (n_tokens - 1) * rows + n_rows <= n_tokens * rows values of out
            // (checked); the slice and activations as above.
            unsafe {
                self.handle
                    .gemm_f16_f32_raw(stream, w16, act16, out_at, n_rows, cols, n_tokens, rows)
            }?;
            r0 += n_rows;
        }
        Ok(())
    }
}

fn missing(what: &str) -> TensorError {
    TensorError::Backend {
        op: OP,
        what: format!("{what} scratch missing after allocation"),
    }
}

/// Whether `matmul` may use the BLAS, and the handle once opened.
#[derive(Debug)]
pub(crate) struct BlasSlot {
    state: State,
    /// Smallest token count sent to the BLAS (`usize::MAX`: never).
    min_tokens: usize,
}

#[derive(Debug)]
enum State {
    Untried,
    Ready(Box<BlasMatmul>),
    Unavailable(String),
}

impl Default for BlasSlot {
    fn default() -> Self {
        let off = std::env::var("ROCMFORGE_BLAS").is_ok_and(|v| v.trim() == "0");
        BlasSlot {
            state: State::Untried,
            min_tokens: if off { usize::MAX } else { BLAS_MIN_TOKENS },
        }
    }
}

impl MatmulContext {
    /// From how many tokens on `matmul` multiplies through the vendor BLAS (`None`: never).
    /// Default [`BLAS_MIN_TOKENS`], or never when `ROCMFORGE_BLAS=0`.
    pub fn set_blas_min_tokens(&mut self, min_tokens: Option<usize>) {
        self.blas.min_tokens = min_tokens.unwrap_or(usize::MAX);
    }

    /// The BLAS path, opened on first use; the reason when it cannot be.
    pub fn blas(&mut self) -> TensorResult<&mut BlasMatmul> {
        if matches!(self.blas.state, State::Untried) {
            self.blas.state = match BlasMatmul::new(self.backend()) {
                Ok(b) => State::Ready(Box::new(b)),
                Err(e) => {
                    tracing::info!("vendor BLAS unavailable, prefill uses the mmq kernels: {e}");
                    State::Unavailable(e.to_string())
                }
            };
        }
        match &mut self.blas.state {
            State::Ready(b) => Ok(b),
            State::Unavailable(why) => Err(TensorError::Backend {
                op: OP,
                what: why.clone(),
            }),
            State::Untried => Err(missing("BLAS handle")),
        }
    }
}

/// `matmul`'s dispatch: runs the product through the BLAS and returns true when `n_tokens`
/// reaches the threshold, the type is supported and the library loads; else false (nothing
/// queued).
#[allow(clippy::too_many_arguments)]
pub(crate) fn try_matmul(
    ctx: &mut MatmulContext,
    w: &DeviceBuffer<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
) -> TensorResult<bool> {
    if n_tokens < ctx.blas.min_tokens
        || !supports(ty)
        || matches!(ctx.blas.state, State::Unavailable(_))
    {
        return Ok(false);
    }
    let Ok(blas) = ctx.blas() else {
        return Ok(false);
    };
    blas.matmul(w, ty, rows, cols, x, n_tokens, out, stream)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_cover_every_row_and_fit_the_scratch() {
        for (rows, cols) in [
            (1, 32),
            (4096, 4096),
            (14336, 4096),
            (128_256, 4096),
            (7, 1 << 27),
        ] {
            let per = slice_rows(rows, cols);
            assert!(per >= 1 && per <= rows);
            assert!(
                per == 1 || per * cols <= MAX_WEIGHT_SLICE_VALUES,
                "{rows} x {cols}"
            );
        }
        assert_eq!(slice_rows(14336, 4096), 14336);
        assert_eq!(slice_rows(128_256, 4096), 16384);
    }

    #[test]
    fn the_types_of_the_issue_are_supported() {
        use GgmlType::*;
        for ty in [
            Q4_K, Q6_K, Q4_0, Q8_0, Q4_1, Q5_0, Q5_1, Q5_K, F16, BF16, F32,
        ] {
            assert!(supports(ty), "{ty}");
        }
        assert!(!supports(Q8_K));
    }
}
