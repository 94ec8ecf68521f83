//! The hiprtc calls as functions returning [`HipResult`]: a failed call is
//! [`HipError::Api`] naming the call, the status and (for a failed compile) the program log.
//!
//! Raw handles in, raw handles out; ownership is [`super::Program`]'s job.

use core::ffi::{CStr, c_char, c_int};

use super::loader::HiprtcLibrary;
use super::sys::{HIPRTC_SUCCESS, HiprtcProgram, HiprtcResult};
use crate::error::{HipError, HipResult, Platform};

fn missing(lib: &HiprtcLibrary, symbol: &'static str, e: &libloading::Error) -> HipError {
    HipError::MissingSymbol {
        library: lib.name.to_string(),
        symbol,
        reason: e.to_string(),
    }
}

/// The error of a failed call; `detail` is the program log where there is one.
fn failure(
    lib: &HiprtcLibrary,
    call: &'static str,
    code: HiprtcResult,
    detail: String,
) -> HipError {
    let name = match lib.api.hiprtcGetErrorString.as_ref() {
        Ok(f) => {
            // SAFETY: hiprtcGetErrorString accepts any status and returns a static string (or null).
            let ptr = unsafe { f(code) };
            if ptr.is_null() {
                "?".to_string()
            } else {
                // SAFETY: non-null, static, NUL-terminated.
                unsafe { CStr::from_ptr(ptr) }
                    .to_string_lossy()
                    .into_owned()
            }
        }
        Err(_) => "?".to_string(),
    };
    let message = if detail.is_empty() {
        format!("returned by {}", lib.name)
    } else {
        format!("returned by {}; log:\n{detail}", lib.name)
    };
    HipError::Api {
        call,
        platform: Platform::Amd,
        code: code as u32,
        name,
        message,
    }
}

macro_rules! rtc_call {
    ($lib:expr, $f:ident($($arg:expr),* $(,)?)) => {
        match $lib.api.$f.as_ref() {
            Ok(f) => {
                let code = f($($arg),*);
                if code == HIPRTC_SUCCESS {
                    Ok(())
                } else {
                    Err(failure($lib, stringify!($f), code, String::new()))
                }
            }
            Err(e) => Err(missing($lib, stringify!($f), e)),
        }
    };
}

/// `hiprtcCreateProgram`: `headers[i]` is the text of the file `names[i]` names in `#include`.
pub(crate) fn create_program(
    lib: &HiprtcLibrary,
    source: &CStr,
    name: &CStr,
    headers: &[*const c_char],
    names: &[*const c_char],
) -> HipResult<HiprtcProgram> {
    if headers.len() != names.len() {
        return Err(HipError::LengthMismatch {
            op: "hiprtcCreateProgram headers and names",
            expected: headers.len(),
            actual: names.len(),
        });
    }
    let count = c_int::try_from(headers.len()).map_err(|_| HipError::SizeOverflow {
        op: "hiprtcCreateProgram headers",
        len: headers.len(),
        elem_size: 1,
    })?;
    let mut program: HiprtcProgram = core::ptr::null_mut();
    // SAFETY: `program` is a valid out-pointer; `source` and `name` are NUL-terminated; the two
    // arrays hold `count` NUL-terminated strings each, alive for the call (hiprtc copies them).
    unsafe {
        rtc_call!(
            lib,
            hiprtcCreateProgram(
                &mut program,
                source.as_ptr(),
                name.as_ptr(),
                count,
                headers.as_ptr(),
                names.as_ptr(),
            )
        )
    }?;
    Ok(program)
}

/// `hiprtcCompileProgram`; a failure carries the program log.
///
/// # Safety
/// `program` came from [`create_program`] and is not destroyed.
pub(crate) unsafe fn compile_program(
    lib: &HiprtcLibrary,
    program: HiprtcProgram,
    options: &[*const c_char],
) -> HipResult<()> {
    let count = c_int::try_from(options.len()).map_err(|_| HipError::SizeOverflow {
        op: "hiprtcCompileProgram options",
        len: options.len(),
        elem_size: 1,
    })?;
    let f = lib
        .api
        .hiprtcCompileProgram
        .as_ref()
        .map_err(|e| missing(lib, "hiprtcCompileProgram", e))?;
    // SAFETY: `program` is live (caller); `options` holds `count` NUL-terminated strings alive
    // for the call.
    let code = unsafe { f(program, count, options.as_ptr()) };
    if code == HIPRTC_SUCCESS {
        return Ok(());
    }
    // SAFETY: as above.
    let log =
        unsafe { program_log(lib, program) }.unwrap_or_else(|e| format!("(no program log: {e})"));
    Err(failure(lib, "hiprtcCompileProgram", code, log))
}

/// The compiler's messages (warnings, errors) for `program`.
///
/// # Safety
/// `program` came from [`create_program`] and is not destroyed.
pub(crate) unsafe fn program_log(lib: &HiprtcLibrary, program: HiprtcProgram) -> HipResult<String> {
    let mut size = 0usize;
    // SAFETY: `program` is live (caller); `size` a valid out-pointer.
    unsafe { rtc_call!(lib, hiprtcGetProgramLogSize(program, &mut size)) }?;
    let mut log = vec![0u8; size.max(1)];
    // SAFETY: `log` holds the `size` bytes (NUL included) the library said it writes.
    unsafe { rtc_call!(lib, hiprtcGetProgramLog(program, log.as_mut_ptr().cast())) }?;
    let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
    Ok(String::from_utf8_lossy(&log[..end]).trim_end().to_string())
}

/// The compiled code object of `program`.
///
/// # Safety
/// `program` came from [`create_program`], was compiled successfully and is not destroyed.
pub(crate) unsafe fn code(lib: &HiprtcLibrary, program: HiprtcProgram) -> HipResult<Vec<u8>> {
    let mut size = 0usize;
    // SAFETY: `program` is live (caller); `size` a valid out-pointer.
    unsafe { rtc_call!(lib, hiprtcGetCodeSize(program, &mut size)) }?;
    let mut code = vec![0u8; size];
    // SAFETY: `code` holds the `size` bytes the library said it writes.
    unsafe { rtc_call!(lib, hiprtcGetCode(program, code.as_mut_ptr().cast())) }?;
    Ok(code)
}

/// `hiprtcDestroyProgram`.
///
/// # Safety
/// `program` came from [`create_program`] and is destroyed once.
pub(crate) unsafe fn destroy_program(lib: &HiprtcLibrary, program: HiprtcProgram) -> HipResult<()> {
    let mut program = program;
    // SAFETY: guaranteed by the caller.
    unsafe { rtc_call!(lib, hiprtcDestroyProgram(&mut program)) }
}
