//! Finding and opening the GPU runtime library, once per process.
//!
//! `ROCMFORGE_PLATFORM=amd|nvidia|auto` (default `auto`) picks the platform. `auto` tries AMD first,
//! then NVIDIA, and keeps the first runtime that reports a device; when none does, it keeps the
//! first one that loaded, so that callers get a clean "no device" answer from it.

use std::sync::OnceLock;

use crate::error::{HipError, HipResult, Platform};
use crate::sys::cuda::{CUDA_SUCCESS, CudaDriver};
use crate::sys::hip::{HipRuntime, hipError_t_hipSuccess};

/// Library names tried for AMD, in order.
pub const AMD_LIBRARIES: &[&str] = &["libamdhip64.so", "libamdhip64.so.6", "libamdhip64.so.5"];
/// Library names tried for NVIDIA, in order.
pub const NVIDIA_LIBRARIES: &[&str] = &["libcuda.so.1", "libcuda.so"];

/// The runtime's function table.
pub(crate) enum Api {
    Amd(HipRuntime),
    Nvidia(CudaDriver),
}

/// An opened runtime library.
pub(crate) struct Runtime {
    pub(crate) api: Api,
    /// The library file name that was opened.
    pub(crate) library: &'static str,
    /// Devices the runtime reported at start, or why it reported none.
    pub(crate) devices: Result<usize, String>,
}

impl Runtime {
    pub(crate) fn platform(&self) -> Platform {
        match self.api {
            Api::Amd(_) => Platform::Amd,
            Api::Nvidia(_) => Platform::Nvidia,
        }
    }
}

static RUNTIME: OnceLock<HipResult<Runtime>> = OnceLock::new();

/// The process-wide runtime, opened on first use.
pub(crate) fn runtime() -> HipResult<&'static Runtime> {
    RUNTIME
        .get_or_init(open_runtime)
        .as_ref()
        .map_err(Clone::clone)
}

fn open_runtime() -> HipResult<Runtime> {
    let choice = std::env::var("ROCMFORGE_PLATFORM").unwrap_or_default();
    let mut tried = Vec::new();
    match choice.trim().to_ascii_lowercase().as_str() {
        "amd" | "hip" | "rocm" => {
            open_amd(&mut tried).ok_or_else(|| not_found(&tried, Some(Platform::Amd)))
        }
        "nvidia" | "cuda" => {
            open_nvidia(&mut tried).ok_or_else(|| not_found(&tried, Some(Platform::Nvidia)))
        }
        "" | "auto" => {
            let amd = match open_amd(&mut tried) {
                Some(rt) if has_devices(&rt) => return Ok(rt),
                other => other,
            };
            let nvidia = match open_nvidia(&mut tried) {
                Some(rt) if has_devices(&rt) => return Ok(rt),
                other => other,
            };
            amd.or(nvidia).ok_or_else(|| not_found(&tried, None))
        }
        other => Err(HipError::InvalidPlatform(other.to_string())),
    }
}

fn has_devices(rt: &Runtime) -> bool {
    matches!(rt.devices, Ok(n) if n > 0)
}

fn not_found(tried: &[String], platform: Option<Platform>) -> HipError {
    let hint = match platform {
        Some(Platform::Amd) => {
            "install ROCm (or Debian's libamdhip64-5) or set ROCMFORGE_PLATFORM=nvidia"
        }
        Some(Platform::Nvidia) => {
            "install the NVIDIA driver (libcuda.so.1) or set ROCMFORGE_PLATFORM=amd"
        }
        None => {
            "install ROCm (libamdhip64) for AMD GPUs or the NVIDIA driver (libcuda.so.1) for NVIDIA GPUs"
        }
    };
    HipError::LibraryNotFound {
        tried: tried.join("; "),
        hint: hint.to_string(),
    }
}

fn open_library(
    names: &'static [&'static str],
    tried: &mut Vec<String>,
) -> Option<(libloading::Library, &'static str)> {
    for name in names {
        // SAFETY: loading a vendor runtime runs its initialisers; these are the libraries named
        // by the vendors for exactly this use.
        match unsafe { libloading::Library::new(*name) } {
            Ok(library) => return Some((library, name)),
            Err(e) => tried.push(format!("{name}: {e}")),
        }
    }
    None
}

fn open_amd(tried: &mut Vec<String>) -> Option<Runtime> {
    let (library, name) = open_library(AMD_LIBRARIES, tried)?;
    // SAFETY: the library is libamdhip64, whose symbols have the bindgen-generated signatures.
    let api = match unsafe { HipRuntime::from_library(library) } {
        Ok(api) => api,
        Err(e) => {
            tried.push(format!("{name}: {e}"));
            return None;
        }
    };
    let devices = amd_device_count(&api);
    tried.push(format!("{name}: loaded"));
    Some(Runtime {
        api: Api::Amd(api),
        library: name,
        devices,
    })
}

fn amd_device_count(api: &HipRuntime) -> Result<usize, String> {
    let init = api
        .hipInit
        .as_ref()
        .map_err(|e| format!("hipInit missing: {e}"))?;
    let count = api
        .hipGetDeviceCount
        .as_ref()
        .map_err(|e| format!("hipGetDeviceCount missing: {e}"))?;
    // SAFETY: hipInit takes flags (must be 0) and has no other precondition.
    let code = unsafe { init(0) };
    if code != hipError_t_hipSuccess {
        return Err(format!(
            "hipInit returned {code} ({})",
            amd_error_name(api, code)
        ));
    }
    let mut n = 0;
    // SAFETY: `n` is a valid out-pointer for the duration of the call.
    let code = unsafe { count(&mut n) };
    if code != hipError_t_hipSuccess {
        return Err(format!(
            "hipGetDeviceCount returned {code} ({})",
            amd_error_name(api, code)
        ));
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

fn amd_error_name(api: &HipRuntime, code: crate::sys::hip::hipError_t) -> String {
    match api.hipGetErrorName.as_ref() {
        Ok(name) => {
            // SAFETY: hipGetErrorName accepts any code and returns a static NUL-terminated string.
            let ptr = unsafe { name(code) };
            if ptr.is_null() {
                return "?".to_string();
            }
            // SAFETY: non-null, static, NUL-terminated (as above).
            unsafe { std::ffi::CStr::from_ptr(ptr) }
                .to_string_lossy()
                .into_owned()
        }
        Err(_) => "?".to_string(),
    }
}

fn open_nvidia(tried: &mut Vec<String>) -> Option<Runtime> {
    let (library, name) = open_library(NVIDIA_LIBRARIES, tried)?;
    // SAFETY: the library is libcuda, whose symbols have the signatures of the table.
    let api = unsafe { CudaDriver::from_library(library) };
    let devices = nvidia_device_count(&api);
    tried.push(format!("{name}: loaded"));
    Some(Runtime {
        api: Api::Nvidia(api),
        library: name,
        devices,
    })
}

fn nvidia_device_count(api: &CudaDriver) -> Result<usize, String> {
    let init = api
        .cuInit
        .as_ref()
        .map_err(|e| format!("cuInit missing: {e}"))?;
    let count = api
        .cuDeviceGetCount
        .as_ref()
        .map_err(|e| format!("cuDeviceGetCount missing: {e}"))?;
    // SAFETY: cuInit takes flags (must be 0) and has no other precondition.
    let code = unsafe { init(0) };
    if code != CUDA_SUCCESS {
        return Err(format!("cuInit returned {code}"));
    }
    let mut n = 0;
    // SAFETY: `n` is a valid out-pointer for the duration of the call.
    let code = unsafe { count(&mut n) };
    if code != CUDA_SUCCESS {
        return Err(format!("cuDeviceGetCount returned {code}"));
    }
    Ok(usize::try_from(n).unwrap_or(0))
}

/// The platform of the runtime this process uses (opening it if needed).
pub fn platform() -> HipResult<Platform> {
    Ok(runtime()?.platform())
}

/// The library file that was opened, e.g. `libamdhip64.so.5`.
pub fn library_name() -> HipResult<&'static str> {
    Ok(runtime()?.library)
}

/// Number of devices the runtime reports; no device is [`HipError::NoDevice`].
pub fn device_count() -> HipResult<usize> {
    let rt = runtime()?;
    match &rt.devices {
        Ok(n) if *n > 0 => Ok(*n),
        Ok(_) => Err(HipError::NoDevice {
            platform: rt.platform(),
            detail: format!("{} reports 0 devices", rt.library),
        }),
        Err(detail) => Err(HipError::NoDevice {
            platform: rt.platform(),
            detail: format!("{}: {detail}", rt.library),
        }),
    }
}
