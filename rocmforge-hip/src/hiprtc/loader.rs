//! Finding and opening HIP's runtime compiler, once per process.
//!
//! hiprtc lives in `libhiprtc.so.6` on ROCm 6 and inside `libamdhip64.so` on ROCm 5 (Debian 12's
//! `libamdhip64-5`); the names of [`HIPRTC_LIBRARIES`] are tried in that order, and a library
//! that opens but does not export `hiprtcCompileProgram` is passed over. It compiles through
//! `libamd_comgr` (ROCm's code object manager), which the library loads itself.

use std::sync::OnceLock;

use super::sys::{Hiprtc, HiprtcResult};
use crate::error::{HipError, HipResult};

/// Library names tried for hiprtc, in order.
pub const HIPRTC_LIBRARIES: &[&str] = &[
    "libhiprtc.so.6",
    "libhiprtc.so",
    "libamdhip64.so.6",
    "libamdhip64.so.5",
];

/// The opened library: its function table, the name it was opened by and its version.
pub(crate) struct HiprtcLibrary {
    pub(crate) api: Hiprtc,
    pub(crate) name: &'static str,
    /// `major.minor` from `hiprtcVersion`, plus the library file's own name (which carries the
    /// full version on disk, e.g. `libamdhip64.so.5.2.21153`).
    pub(crate) version: String,
}

static HIPRTC: OnceLock<HipResult<HiprtcLibrary>> = OnceLock::new();

/// The process-wide hiprtc, opened on first use.
pub(crate) fn hiprtc() -> HipResult<&'static HiprtcLibrary> {
    HIPRTC.get_or_init(open).as_ref().map_err(Clone::clone)
}

fn open() -> HipResult<HiprtcLibrary> {
    let mut tried = Vec::new();
    for name in HIPRTC_LIBRARIES {
        // SAFETY: loading the vendor's HIP library runs its initialisers; these are the libraries
        // ROCm ships for exactly this use.
        let library = match unsafe { libloading::Library::new(*name) } {
            Ok(library) => library,
            Err(e) => {
                tried.push(format!("{name}: {e}"));
                continue;
            }
        };
        // SAFETY: a library named as hiprtc (or HIP exporting it); every symbol is checked
        // before it is called.
        let api = unsafe { Hiprtc::from_library(library) };
        if let Err(e) = &api.hiprtcCompileProgram {
            tried.push(format!("{name}: no hiprtcCompileProgram ({e})"));
            continue;
        }
        let version = version_of(&api, name);
        return Ok(HiprtcLibrary { api, name, version });
    }
    Err(HipError::LibraryNotFound {
        tried: tried.join("; "),
        hint: "install HIP's runtime compiler: ROCm 6's libhiprtc (hip-runtime-amd), or on Debian \
               12 / Ubuntu the packages libamdhip64-5 and libamd-comgr2"
            .to_string(),
    })
}

fn version_of(api: &Hiprtc, name: &str) -> String {
    let (mut major, mut minor) = (0, 0);
    let reported: Option<HiprtcResult> = api
        .hiprtcVersion
        .as_ref()
        .ok()
        // SAFETY: both out-pointers are valid for the call.
        .map(|f| unsafe { f(&mut major, &mut minor) });
    let api_version = match reported {
        Some(super::sys::HIPRTC_SUCCESS) => format!("{major}.{minor}"),
        _ => "?".to_string(),
    };
    format!("{api_version} ({})", file_of(name))
}

/// The file a library name resolves to on the loader's search path (`libamdhip64.so.5` →
/// `libamdhip64.so.5.2.21153`), by the process's own memory map; the name itself if not found.
fn file_of(name: &str) -> String {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap_or_default();
    maps.lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .filter_map(|path| path.rsplit('/').next())
        .find(|file| file.starts_with(name))
        .unwrap_or(name)
        .to_string()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    #[test]
    fn a_missing_library_is_an_error_naming_every_file_tried() {
        match open() {
            Ok(lib) => assert!(HIPRTC_LIBRARIES.contains(&lib.name), "{}", lib.name),
            Err(HipError::LibraryNotFound { tried, hint }) => {
                for name in HIPRTC_LIBRARIES {
                    assert!(tried.contains(name), "{tried} lacks {name}");
                }
                assert!(hint.contains("libamdhip64-5"), "{hint}");
            }
            Err(other) => panic!("unexpected error {other}"),
        }
    }
}
