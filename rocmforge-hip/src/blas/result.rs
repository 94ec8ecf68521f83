//! The BLAS calls as functions returning [`HipResult`], for cuBLAS and rocBLAS alike.
//!
//! Raw handles in, raw handles out; ownership is [`super::BlasHandle`]'s job.

use core::ffi::{CStr, c_char, c_int, c_void};

use super::loader::{BlasApi, BlasLibrary};
use super::sys::{self, BlasRawHandle};
use crate::error::{HipError, HipResult, Platform};

fn missing(lib: &BlasLibrary, symbol: &'static str, e: &libloading::Error) -> HipError {
    HipError::MissingSymbol {
        library: lib.name.clone(),
        symbol,
        reason: e.to_string(),
    }
}

fn text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return "?".to_string();
    }
    // SAFETY: both libraries return pointers to static NUL-terminated strings.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

/// Turns a BLAS status into a `HipResult`, naming the call and the status.
fn check(lib: &BlasLibrary, call: &'static str, code: c_int) -> HipResult<()> {
    if code == 0 {
        return Ok(());
    }
    let (platform, name) = match &lib.api {
        BlasApi::Cublas(api) => (
            Platform::Nvidia,
            match api.cublasGetStatusName.as_ref() {
                // SAFETY: accepts any status and returns a static string.
                Ok(f) => text(unsafe { f(code) }),
                Err(_) => "?".to_string(),
            },
        ),
        BlasApi::Rocblas(api) => (
            Platform::Amd,
            match api.rocblas_status_to_string.as_ref() {
                // SAFETY: accepts any status and returns a static string.
                Ok(f) => text(unsafe { f(code) }),
                Err(_) => "?".to_string(),
            },
        ),
    };
    Err(HipError::Api {
        call,
        platform,
        code: code as u32,
        name,
        message: format!("returned by {}", lib.name),
    })
}

macro_rules! blas_call {
    ($lib:expr, $api:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $api.$f.as_ref() {
            Ok(f) => check($lib, stringify!($f), f($($arg),*)),
            Err(e) => Err(missing($lib, stringify!($f), e)),
        }
    };
}

/// Creates a handle on the current device (the caller made the context current).
pub(crate) fn create(lib: &BlasLibrary) -> HipResult<BlasRawHandle> {
    let mut h: BlasRawHandle = core::ptr::null_mut();
    // SAFETY: `h` is a valid out-pointer for the call.
    unsafe {
        match &lib.api {
            BlasApi::Cublas(api) => blas_call!(lib, api, cublasCreate_v2(&mut h)),
            BlasApi::Rocblas(api) => blas_call!(lib, api, rocblas_create_handle(&mut h)),
        }
    }?;
    Ok(h)
}

/// Destroys a handle.
///
/// # Safety
/// `h` came from [`create`] with `lib` and is not used again.
pub(crate) unsafe fn destroy(lib: &BlasLibrary, h: BlasRawHandle) -> HipResult<()> {
    // SAFETY: the caller's promise.
    unsafe {
        match &lib.api {
            BlasApi::Cublas(api) => blas_call!(lib, api, cublasDestroy_v2(h)),
            BlasApi::Rocblas(api) => blas_call!(lib, api, rocblas_destroy_handle(h)),
        }
    }
}

/// Makes later calls on `h` run on `stream` (null: the default stream).
///
/// # Safety
/// `h` is a live handle of `lib`; `stream` a live stream of the handle's device (or null).
pub(crate) unsafe fn set_stream(
    lib: &BlasLibrary,
    h: BlasRawHandle,
    stream: *mut c_void,
) -> HipResult<()> {
    // SAFETY: the caller's promise.
    unsafe {
        match &lib.api {
            BlasApi::Cublas(api) => blas_call!(lib, api, cublasSetStream_v2(h, stream)),
            BlasApi::Rocblas(api) => blas_call!(lib, api, rocblas_set_stream(h, stream)),
        }
    }
}

/// Gives `h` a workspace of `bytes` at `ptr`, so that its GEMMs allocate nothing (which also
/// makes them capturable into a graph).
///
/// # Safety
/// `h` is a live handle of `lib`; `ptr` holds `bytes` device bytes that outlive the handle.
pub(crate) unsafe fn set_workspace(
    lib: &BlasLibrary,
    h: BlasRawHandle,
    ptr: u64,
    bytes: usize,
) -> HipResult<()> {
    let p = ptr as usize as *mut c_void;
    // SAFETY: the caller's promise.
    unsafe {
        match &lib.api {
            BlasApi::Cublas(api) => blas_call!(lib, api, cublasSetWorkspace_v2(h, p, bytes)),
            BlasApi::Rocblas(api) => blas_call!(lib, api, rocblas_set_workspace(h, p, bytes)),
        }
    }
}

/// Column-major `C (m x n, leading dimension ldc >= m) = op(A) · B`, `A` f16 stored `k x m`
/// (lda = k) and used transposed, `B` f16 `k x n` (ldb = k), `C` f32, accumulation in f32 —
/// which is, read row-major, `out[n][ldc] (first m of each row) = x[n][k] · W[m][k]ᵀ`.
///
/// # Safety
/// `h` is a live handle of `lib`; `a` holds `m * k` f16, `b` `k * n` f16, `c` `m * n` f32 on
/// the handle's device (`c`: `ldc * (n - 1) + m`), alive until the stream reaches the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_f16_tn_f32(
    lib: &BlasLibrary,
    h: BlasRawHandle,
    m: c_int,
    n: c_int,
    k: c_int,
    ldc: c_int,
    a: u64,
    b: u64,
    c: u64,
) -> HipResult<()> {
    let (alpha, beta) = (1.0f32, 0.0f32);
    let alpha_p = (&alpha as *const f32).cast::<c_void>();
    let beta_p = (&beta as *const f32).cast::<c_void>();
    let (a, b, c) = (
        a as usize as *const c_void,
        b as usize as *const c_void,
        c as usize as *mut c_void,
    );
    // SAFETY: the caller's promise; alpha and beta are host scalars (the default pointer mode)
    // alive for the call.
    unsafe {
        match &lib.api {
            BlasApi::Cublas(api) => blas_call!(
                lib,
                api,
                cublasGemmEx(
                    h,
                    sys::CUBLAS_OP_T,
                    sys::CUBLAS_OP_N,
                    m,
                    n,
                    k,
                    alpha_p,
                    a,
                    sys::CUDA_R_16F,
                    k,
                    b,
                    sys::CUDA_R_16F,
                    k,
                    beta_p,
                    c,
                    sys::CUDA_R_32F,
                    ldc,
                    sys::CUBLAS_COMPUTE_32F,
                    sys::CUBLAS_GEMM_DEFAULT,
                )
            ),
            BlasApi::Rocblas(api) => blas_call!(
                lib,
                api,
                rocblas_gemm_ex(
                    h,
                    sys::ROCBLAS_OP_T,
                    sys::ROCBLAS_OP_N,
                    m,
                    n,
                    k,
                    alpha_p,
                    a,
                    sys::ROCBLAS_F16_R,
                    k,
                    b,
                    sys::ROCBLAS_F16_R,
                    k,
                    beta_p,
                    c.cast_const(),
                    sys::ROCBLAS_F32_R,
                    ldc,
                    c,
                    sys::ROCBLAS_F32_R,
                    ldc,
                    sys::ROCBLAS_F32_R,
                    sys::ROCBLAS_GEMM_ALGO_STANDARD,
                    0,
                    0,
                )
            ),
        }
    }
}
