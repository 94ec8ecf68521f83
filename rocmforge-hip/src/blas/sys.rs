//! Raw bindings of the few vendor BLAS calls ROCmForge makes, written by hand (the handful of
//! signatures below is all that is used), resolved at run time with libloading.
//!
//! NVIDIA: cuBLAS (`libcublas.so.13` / `.12`), whose `cublasGemmEx` runs on the tensor cores.
//! AMD: rocBLAS (`librocblas.so`), whose `rocblas_gemm_ex` runs on the matrix cores (MFMA/WMMA).
//! Each symbol is resolved on its own, so a missing one is an error only when it is called.
//! Enum values are the vendors' header values (`cublas_api.h`, `library_types.h`,
//! `rocblas-types.h`), passed as plain integers.

use core::ffi::{c_int, c_void};

/// `cublasStatus_t` (0 = success).
pub type CublasStatus = c_int;
/// `rocblas_status` (0 = success).
pub type RocblasStatus = c_int;
/// An opaque BLAS handle (`cublasHandle_t` / `rocblas_handle`).
pub type BlasRawHandle = *mut c_void;

/// `CUBLAS_OP_N`.
pub const CUBLAS_OP_N: c_int = 0;
/// `CUBLAS_OP_T`.
pub const CUBLAS_OP_T: c_int = 1;
/// `CUDA_R_32F` (`cudaDataType`).
pub const CUDA_R_32F: c_int = 0;
/// `CUDA_R_16F`.
pub const CUDA_R_16F: c_int = 2;
/// `CUBLAS_COMPUTE_32F` (`cublasComputeType_t`): f32 accumulation.
pub const CUBLAS_COMPUTE_32F: c_int = 68;
/// `CUBLAS_GEMM_DEFAULT` (`cublasGemmAlgo_t`): the library's heuristic.
pub const CUBLAS_GEMM_DEFAULT: c_int = -1;

/// `rocblas_operation_none`.
pub const ROCBLAS_OP_N: c_int = 111;
/// `rocblas_operation_transpose`.
pub const ROCBLAS_OP_T: c_int = 112;
/// `rocblas_datatype_f16_r`.
pub const ROCBLAS_F16_R: c_int = 150;
/// `rocblas_datatype_f32_r`.
pub const ROCBLAS_F32_R: c_int = 151;
/// `rocblas_gemm_algo_standard`.
pub const ROCBLAS_GEMM_ALGO_STANDARD: c_int = 0;

type Sym<F> = Result<F, libloading::Error>;

/// `cublasGemmEx`'s signature.
pub type CublasGemmEx = unsafe extern "C" fn(
    BlasRawHandle,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    *const c_void,
    *const c_void,
    c_int,
    c_int,
    *const c_void,
    c_int,
    c_int,
    *const c_void,
    *mut c_void,
    c_int,
    c_int,
    c_int,
    c_int,
) -> CublasStatus;

/// `rocblas_gemm_ex`'s signature.
pub type RocblasGemmEx = unsafe extern "C" fn(
    BlasRawHandle,
    c_int,
    c_int,
    c_int,
    c_int,
    c_int,
    *const c_void,
    *const c_void,
    c_int,
    c_int,
    *const c_void,
    c_int,
    c_int,
    *const c_void,
    *const c_void,
    c_int,
    c_int,
    *mut c_void,
    c_int,
    c_int,
    c_int,
    c_int,
    i32,
    u32,
) -> RocblasStatus;

/// The cuBLAS calls used.
#[allow(non_snake_case)]
pub struct Cublas {
    /// Keeps `libcublasLt` (cuBLAS's dependency) loaded when it was opened from the same folder.
    _lt: Option<libloading::Library>,
    _library: libloading::Library,
    /// `cublasCreate_v2(cublasHandle_t*)`
    pub cublasCreate_v2: Sym<unsafe extern "C" fn(*mut BlasRawHandle) -> CublasStatus>,
    /// `cublasDestroy_v2(cublasHandle_t)`
    pub cublasDestroy_v2: Sym<unsafe extern "C" fn(BlasRawHandle) -> CublasStatus>,
    /// `cublasSetStream_v2(cublasHandle_t, cudaStream_t)`
    pub cublasSetStream_v2: Sym<unsafe extern "C" fn(BlasRawHandle, *mut c_void) -> CublasStatus>,
    /// `cublasSetWorkspace_v2(cublasHandle_t, void*, size_t)`
    pub cublasSetWorkspace_v2:
        Sym<unsafe extern "C" fn(BlasRawHandle, *mut c_void, usize) -> CublasStatus>,
    /// `cublasGemmEx(...)`
    pub cublasGemmEx: Sym<CublasGemmEx>,
    /// `cublasGetStatusName(cublasStatus_t) -> const char*`
    pub cublasGetStatusName: Sym<unsafe extern "C" fn(CublasStatus) -> *const core::ffi::c_char>,
}

/// The rocBLAS calls used.
pub struct Rocblas {
    _library: libloading::Library,
    /// `rocblas_create_handle(rocblas_handle*)`
    pub rocblas_create_handle: Sym<unsafe extern "C" fn(*mut BlasRawHandle) -> RocblasStatus>,
    /// `rocblas_destroy_handle(rocblas_handle)`
    pub rocblas_destroy_handle: Sym<unsafe extern "C" fn(BlasRawHandle) -> RocblasStatus>,
    /// `rocblas_set_stream(rocblas_handle, hipStream_t)`
    pub rocblas_set_stream: Sym<unsafe extern "C" fn(BlasRawHandle, *mut c_void) -> RocblasStatus>,
    /// `rocblas_set_workspace(rocblas_handle, void*, size_t)`
    pub rocblas_set_workspace:
        Sym<unsafe extern "C" fn(BlasRawHandle, *mut c_void, usize) -> RocblasStatus>,
    /// `rocblas_gemm_ex(...)`
    pub rocblas_gemm_ex: Sym<RocblasGemmEx>,
    /// `rocblas_status_to_string(rocblas_status) -> const char*`
    pub rocblas_status_to_string:
        Sym<unsafe extern "C" fn(RocblasStatus) -> *const core::ffi::c_char>,
}

/// Looks `name` up in `library` as a value of type `F`.
///
/// # Safety
/// `F` must be the symbol's true signature.
unsafe fn sym<F: Copy>(library: &libloading::Library, name: &str) -> Sym<F> {
    // SAFETY: the caller guarantees the signature.
    unsafe { library.get::<F>(name.as_bytes()).map(|s| *s) }
}

impl Cublas {
    /// Resolves the table in `library` (a cuBLAS library); `lt` keeps its dependency loaded.
    ///
    /// # Safety
    /// `library` must be cuBLAS, so that each symbol has the signature declared here.
    pub unsafe fn from_library(
        library: libloading::Library,
        lt: Option<libloading::Library>,
    ) -> Self {
        // SAFETY: for each symbol, the caller guarantees the library is cuBLAS with these signatures.
        unsafe {
            Cublas {
                cublasCreate_v2: sym(&library, "cublasCreate_v2"),
                cublasDestroy_v2: sym(&library, "cublasDestroy_v2"),
                cublasSetStream_v2: sym(&library, "cublasSetStream_v2"),
                cublasSetWorkspace_v2: sym(&library, "cublasSetWorkspace_v2"),
                cublasGemmEx: sym(&library, "cublasGemmEx"),
                cublasGetStatusName: sym(&library, "cublasGetStatusName"),
                _lt: lt,
                _library: library,
            }
        }
    }
}

impl Rocblas {
    /// Resolves the table in `library` (a rocBLAS library).
    ///
    /// # Safety
    /// `library` must be rocBLAS, so that each symbol has the signature declared here.
    pub unsafe fn from_library(library: libloading::Library) -> Self {
        // SAFETY: for each symbol, the caller guarantees the library is rocBLAS with these signatures.
        unsafe {
            Rocblas {
                rocblas_create_handle: sym(&library, "rocblas_create_handle"),
                rocblas_destroy_handle: sym(&library, "rocblas_destroy_handle"),
                rocblas_set_stream: sym(&library, "rocblas_set_stream"),
                rocblas_set_workspace: sym(&library, "rocblas_set_workspace"),
                rocblas_gemm_ex: sym(&library, "rocblas_gemm_ex"),
                rocblas_status_to_string: sym(&library, "rocblas_status_to_string"),
                _library: library,
            }
        }
    }
}

impl core::fmt::Debug for Cublas {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Cublas { .. }")
    }
}

impl core::fmt::Debug for Rocblas {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Rocblas { .. }")
    }
}
