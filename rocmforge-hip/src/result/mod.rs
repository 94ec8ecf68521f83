//! The second layer: each runtime call as a function returning [`HipResult`], on either platform.
//!
//! Functions here take and return raw handles ([`RawHandle`], [`DevicePtr`]); ownership and
//! lifetimes are the safe layer's job. Grouped by concern: [`device`], [`context`], [`memory`],
//! [`stream`], [`event`], [`module`], [`graph`].

use core::ffi::{CStr, c_char};

use crate::error::{HipError, HipResult, Platform};
use crate::loader::{Api, Runtime};
use crate::sys::cuda::{CUDA_SUCCESS, CuStatus};
use crate::sys::hip::{hipError_t, hipError_t_hipSuccess};

pub mod context;
pub mod device;
pub mod event;
pub mod graph;
pub mod memory;
pub mod module;
pub mod stream;

/// An opaque runtime handle (stream, event, module, function, graph, context, host pointer).
pub type RawHandle = *mut core::ffi::c_void;

/// A device address (`hipDeviceptr_t` / `CUdeviceptr`), as an integer.
pub type DevicePtr = u64;

/// Calls `$api.$f(args)` and turns its status into a `HipResult<()>`. Must sit in an `unsafe` block.
macro_rules! amd_call {
    ($rt:expr, $api:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $api.$f.as_ref() {
            Ok(f) => $crate::result::check_amd($rt, $api, stringify!($f), f($($arg),*)),
            Err(e) => Err($crate::result::missing($rt, stringify!($f), e)),
        }
    };
}

/// Like [`amd_call`] for the CUDA driver table.
macro_rules! cuda_call {
    ($rt:expr, $api:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $api.$f.as_ref() {
            Ok(f) => $crate::result::check_cuda($api, stringify!($f), f($($arg),*)),
            Err(e) => Err($crate::result::missing($rt, stringify!($f), e)),
        }
    };
}

pub(crate) use {amd_call, cuda_call};

pub(crate) fn missing(rt: &Runtime, symbol: &'static str, e: &libloading::Error) -> HipError {
    HipError::MissingSymbol {
        library: rt.library.to_string(),
        symbol,
        reason: e.to_string(),
    }
}

/// Reads a C string the runtime returned (static storage in both runtimes).
fn c_text(ptr: *const c_char) -> String {
    if ptr.is_null() {
        return "(no description)".to_string();
    }
    // SAFETY: both runtimes return pointers to static NUL-terminated strings.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

pub(crate) fn check_amd(
    _rt: &Runtime,
    api: &crate::sys::hip::HipRuntime,
    call: &'static str,
    code: hipError_t,
) -> HipResult<()> {
    if code == hipError_t_hipSuccess {
        return Ok(());
    }
    let name = match api.hipGetErrorName.as_ref() {
        // SAFETY: hipGetErrorName accepts any code and returns a static string.
        Ok(f) => c_text(unsafe { f(code) }),
        Err(_) => "?".to_string(),
    };
    let message = match api.hipGetErrorString.as_ref() {
        // SAFETY: hipGetErrorString accepts any code and returns a static string.
        Ok(f) => c_text(unsafe { f(code) }),
        Err(_) => "(hipGetErrorString missing)".to_string(),
    };
    Err(HipError::Api {
        call,
        platform: Platform::Amd,
        code,
        name,
        message,
    })
}

pub(crate) fn check_cuda(
    api: &crate::sys::cuda::CudaDriver,
    call: &'static str,
    code: CuStatus,
) -> HipResult<()> {
    if code == CUDA_SUCCESS {
        return Ok(());
    }
    let mut name_ptr: *const c_char = core::ptr::null();
    let mut text_ptr: *const c_char = core::ptr::null();
    if let Ok(f) = api.cuGetErrorName.as_ref() {
        // SAFETY: out-pointer valid for the call; unknown codes leave it null and return an error.
        unsafe { f(code, &mut name_ptr) };
    }
    if let Ok(f) = api.cuGetErrorString.as_ref() {
        // SAFETY: as above.
        unsafe { f(code, &mut text_ptr) };
    }
    Err(HipError::Api {
        call,
        platform: Platform::Nvidia,
        code,
        name: c_text(name_ptr),
        message: c_text(text_ptr),
    })
}

/// The runtime and its function table.
pub(crate) fn api() -> HipResult<(&'static Runtime, &'static Api)> {
    let rt = crate::loader::runtime()?;
    Ok((rt, &rt.api))
}
