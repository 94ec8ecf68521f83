//! The safe layer: one call that compiles a kernel source for an AMD target and returns the code
//! object.

use std::ffi::CString;
use std::sync::Mutex;

use super::loader::{HiprtcLibrary, hiprtc};
use super::result;
use super::sys::HiprtcProgram;
use crate::error::{HipError, HipResult};

/// The options every compile gets besides `--offload-arch=<arch>`: those of the build-time
/// compile (`rocmforge-kernel-build`'s `amd_code_object`), so both make the same code.
pub const OPTIONS: &[&str] = &["-O3", "-std=c++17"];

/// One compile at a time in this process: ROCm 5's comgr is not safe to drive from several
/// threads, and a compile already keeps a core busy.
static COMPILE: Mutex<()> = Mutex::new(());

/// A hiprtc program, destroyed when dropped.
struct Program {
    lib: &'static HiprtcLibrary,
    raw: HiprtcProgram,
}

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: `raw` came from create_program and is destroyed only here.
        let _ = unsafe { result::destroy_program(self.lib, self.raw) };
    }
}

fn c_string(what: &'static str, text: &str) -> HipResult<CString> {
    CString::new(text).map_err(|_| HipError::InvalidName {
        what,
        name: text.chars().take(60).collect(),
    })
}

/// An AMD target name as the device reports it: `gfx` and letters, digits, `:`, `+`, `-`
/// (`gfx1031`, `gfx90a:sramecc+:xnack-`).
fn valid_arch(arch: &str) -> bool {
    arch.strip_prefix("gfx").is_some_and(|rest| {
        !rest.is_empty()
            && rest
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '+' | '-'))
    })
}

/// Compiles `source` (the text of the file `name`, e.g. `argmax.hip`) for the AMD target `arch`
/// (e.g. `gfx1031`) and returns the code object, ready for [`crate::HipBackend::load_module`].
/// `headers` are the `(include name, text)` pairs its `#include "..."` lines may name; nothing
/// is read from disk. Needs no GPU: only hiprtc and comgr.
///
/// A compile error is [`HipError::Api`] for `hiprtcCompileProgram` with the compiler's log; no
/// hiprtc library is [`HipError::LibraryNotFound`] naming every file tried.
pub fn compile(
    name: &str,
    source: &str,
    headers: &[(&str, &str)],
    arch: &str,
) -> HipResult<Vec<u8>> {
    if !valid_arch(arch) {
        return Err(HipError::InvalidName {
            what: "AMD target",
            name: arch.to_string(),
        });
    }
    let lib = hiprtc()?;
    let source = c_string("kernel source", source)?;
    let name = c_string("kernel source name", name)?;
    let texts = headers
        .iter()
        .map(|(_, text)| c_string("header", text))
        .collect::<HipResult<Vec<_>>>()?;
    let names = headers
        .iter()
        .map(|(n, _)| c_string("header name", n))
        .collect::<HipResult<Vec<_>>>()?;
    let mut options = vec![c_string("option", &format!("--offload-arch={arch}"))?];
    for o in OPTIONS {
        options.push(c_string("option", o)?);
    }
    let text_ptrs: Vec<_> = texts.iter().map(|t| t.as_ptr()).collect();
    let name_ptrs: Vec<_> = names.iter().map(|n| n.as_ptr()).collect();
    let option_ptrs: Vec<_> = options.iter().map(|o| o.as_ptr()).collect();
    let _one_at_a_time = COMPILE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let program = Program {
        lib,
        raw: result::create_program(lib, &source, &name, &text_ptrs, &name_ptrs)?,
    };
    // SAFETY: `program.raw` is live until `program` drops, after these calls.
    unsafe {
        result::compile_program(lib, program.raw, &option_ptrs)?;
        result::code(lib, program.raw)
    }
}

/// The hiprtc in use: its version and library file (`5.2 (libamdhip64.so.5.2.21153)`), opening
/// it if needed. Part of the key of every runtime-compiled image.
pub fn version() -> HipResult<&'static str> {
    Ok(hiprtc()?.version.as_str())
}

/// The library name hiprtc was opened by (`libhiprtc.so.6`, `libamdhip64.so.5`, ...).
pub fn library_name() -> HipResult<&'static str> {
    Ok(hiprtc()?.name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_are_gfx_names_only() {
        for ok in ["gfx1031", "gfx90a", "gfx90a:sramecc+:xnack-", "gfx1036"] {
            assert!(valid_arch(ok), "{ok}");
        }
        for bad in [
            "",
            "gfx",
            "sm_90",
            "gfx1031 -O0",
            "gfx1031\0",
            "--offload-arch=gfx1",
        ] {
            assert!(!valid_arch(bad), "{bad:?}");
        }
    }
}
