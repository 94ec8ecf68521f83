//! The CUDA driver calls rocmforge-hip makes, as a table of function pointers.
//!
//! Types come from cudarc's bindgen-generated driver bindings (`cudarc::driver::sys`); the loader
//! is ours so that a missing `libcuda.so.1` is a [`crate::HipError`], not a panic. Status codes are
//! read as plain integers (`u32`), never as a Rust enum, since a driver may return codes that the
//! bindings do not know. The symbol names are the ones the CUDA 12 headers select (`_v2` suffixes).

use core::ffi::{c_char, c_int, c_uint, c_void};

pub use cudarc::driver::sys::{
    CUcontext, CUdevice, CUdevice_attribute, CUdeviceptr, CUevent, CUfunction,
    CUfunction_attribute, CUgraph, CUgraphExec, CUlaunchAttribute, CUlaunchAttributeID,
    CUlaunchConfig, CUmodule, CUstream, CUstreamCaptureMode,
};

/// A CUDA status code as returned (0 is success).
pub type CuStatus = c_uint;

/// `CUDA_SUCCESS`.
pub const CUDA_SUCCESS: CuStatus = 0;
/// `CUDA_ERROR_OUT_OF_MEMORY`.
pub const CUDA_ERROR_OUT_OF_MEMORY: CuStatus = 2;
/// `CUDA_ERROR_NO_DEVICE`.
pub const CUDA_ERROR_NO_DEVICE: CuStatus = 100;
/// `CU_STREAM_NON_BLOCKING`.
pub const CU_STREAM_NON_BLOCKING: c_uint = 1;
/// `CU_EVENT_DEFAULT`.
pub const CU_EVENT_DEFAULT: c_uint = 0;

macro_rules! driver_table {
    ($( $name:ident : fn($($arg:ty),*); )*) => {
        /// Function pointers of the CUDA driver, each resolved on its own.
        #[allow(non_snake_case)]
        pub struct CudaDriver {
            _library: libloading::Library,
            $(
                #[doc = concat!("`", stringify!($name), "`")]
                pub $name: Result<unsafe extern "C" fn($($arg),*) -> CuStatus, libloading::Error>,
            )*
        }

        impl CudaDriver {
            /// Resolves every symbol of the table in `library`.
            ///
            /// # Safety
            /// `library` must be the CUDA driver library, so that each symbol has the signature
            /// declared here.
            #[allow(non_snake_case)]
            pub unsafe fn from_library(library: libloading::Library) -> Self {
                $(
                    // SAFETY: the caller guarantees the library is libcuda, whose symbol has this type.
                    let $name = unsafe {
                        library
                            .get::<unsafe extern "C" fn($($arg),*) -> CuStatus>(stringify!($name).as_bytes())
                            .map(|symbol| *symbol)
                    };
                )*
                Self { _library: library, $($name,)* }
            }
        }
    };
}

driver_table! {
    cuInit: fn(c_uint);
    cuDriverGetVersion: fn(*mut c_int);
    cuDeviceGetCount: fn(*mut c_int);
    cuDeviceGet: fn(*mut CUdevice, c_int);
    cuDeviceGetName: fn(*mut c_char, c_int, CUdevice);
    cuDeviceTotalMem_v2: fn(*mut usize, CUdevice);
    cuDeviceGetAttribute: fn(*mut c_int, CUdevice_attribute, CUdevice);
    cuDevicePrimaryCtxRetain: fn(*mut CUcontext, CUdevice);
    cuDevicePrimaryCtxRelease_v2: fn(CUdevice);
    cuCtxSetCurrent: fn(CUcontext);
    cuCtxSynchronize: fn();
    cuMemGetInfo_v2: fn(*mut usize, *mut usize);
    cuMemAlloc_v2: fn(*mut CUdeviceptr, usize);
    cuMemFree_v2: fn(CUdeviceptr);
    cuMemAllocHost_v2: fn(*mut *mut c_void, usize);
    cuMemFreeHost: fn(*mut c_void);
    cuMemcpyHtoD_v2: fn(CUdeviceptr, *const c_void, usize);
    cuMemcpyDtoH_v2: fn(*mut c_void, CUdeviceptr, usize);
    cuMemcpyDtoD_v2: fn(CUdeviceptr, CUdeviceptr, usize);
    cuMemcpyHtoDAsync_v2: fn(CUdeviceptr, *const c_void, usize, CUstream);
    cuMemcpyDtoHAsync_v2: fn(*mut c_void, CUdeviceptr, usize, CUstream);
    cuMemcpyDtoDAsync_v2: fn(CUdeviceptr, CUdeviceptr, usize, CUstream);
    cuMemsetD8_v2: fn(CUdeviceptr, u8, usize);
    cuMemsetD8Async: fn(CUdeviceptr, u8, usize, CUstream);
    cuStreamCreate: fn(*mut CUstream, c_uint);
    cuStreamDestroy_v2: fn(CUstream);
    cuStreamSynchronize: fn(CUstream);
    cuStreamWaitEvent: fn(CUstream, CUevent, c_uint);
    cuEventCreate: fn(*mut CUevent, c_uint);
    cuEventDestroy_v2: fn(CUevent);
    cuEventRecord: fn(CUevent, CUstream);
    cuEventSynchronize: fn(CUevent);
    cuEventElapsedTime: fn(*mut f32, CUevent, CUevent);
    cuModuleLoadData: fn(*mut CUmodule, *const c_void);
    cuModuleUnload: fn(CUmodule);
    cuModuleGetFunction: fn(*mut CUfunction, CUmodule, *const c_char);
    cuModuleGetGlobal_v2: fn(*mut CUdeviceptr, *mut usize, CUmodule, *const c_char);
    cuLaunchKernel: fn(CUfunction, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, c_uint, CUstream, *mut *mut c_void, *mut *mut c_void);
    cuLaunchKernelEx: fn(*const CUlaunchConfig, CUfunction, *mut *mut c_void, *mut *mut c_void);
    cuFuncSetAttribute: fn(CUfunction, CUfunction_attribute, c_int);
    cuStreamBeginCapture_v2: fn(CUstream, CUstreamCaptureMode);
    cuStreamEndCapture: fn(CUstream, *mut CUgraph);
    cuGraphInstantiateWithFlags: fn(*mut CUgraphExec, CUgraph, u64);
    cuGraphLaunch: fn(CUgraphExec, CUstream);
    cuGraphDestroy: fn(CUgraph);
    cuGraphExecDestroy: fn(CUgraphExec);
    cuGetErrorString: fn(CuStatus, *mut *const c_char);
    cuGetErrorName: fn(CuStatus, *mut *const c_char);
}

impl core::fmt::Debug for CudaDriver {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("CudaDriver { .. }")
    }
}
