//! Finding and opening the vendor BLAS library, once per process.
//!
//! `ROCMFORGE_BLAS_LIB` may name the library file (a path or a bare name); otherwise the usual
//! names are tried: `libcublas.so.13`, `libcublas.so.12`, `libcublas.so` on NVIDIA (the CUDA
//! toolkit's, or the one pip's `nvidia-cublas` wheel puts under `site-packages/nvidia/.../lib`
//! when that folder is on `LD_LIBRARY_PATH`), `librocblas.so.4`, `librocblas.so` on AMD, then
//! the files of a toolkit installed off the search path (`$CUDA_HOME`, `/usr/local/cuda`,
//! `$ROCM_PATH`, `/opt/rocm`). When the
//! named cuBLAS sits in a folder that also holds `libcublasLt`, that one is opened first so that
//! cuBLAS finds its dependency without `LD_LIBRARY_PATH`.

use std::path::Path;
use std::sync::OnceLock;

use super::sys::{Cublas, Rocblas};
use crate::error::{HipError, HipResult, Platform};

/// cuBLAS library names tried, in order (after `ROCMFORGE_BLAS_LIB`).
pub const CUBLAS_LIBRARIES: &[&str] = &["libcublas.so.13", "libcublas.so.12", "libcublas.so"];
/// rocBLAS library names tried, in order (after `ROCMFORGE_BLAS_LIB`).
pub const ROCBLAS_LIBRARIES: &[&str] = &["librocblas.so.4", "librocblas.so.5", "librocblas.so"];
/// The environment variable that names the BLAS library file.
pub const BLAS_LIB_ENV: &str = "ROCMFORGE_BLAS_LIB";

/// An opened vendor BLAS.
pub(crate) enum BlasApi {
    Cublas(Cublas),
    Rocblas(Rocblas),
}

/// The opened library and the file it came from.
pub(crate) struct BlasLibrary {
    pub(crate) api: BlasApi,
    pub(crate) name: String,
}

static CUBLAS: OnceLock<HipResult<BlasLibrary>> = OnceLock::new();
static ROCBLAS: OnceLock<HipResult<BlasLibrary>> = OnceLock::new();

/// The BLAS library for `platform`, opened on first use.
pub(crate) fn blas_library(platform: Platform) -> HipResult<&'static BlasLibrary> {
    let slot = match platform {
        Platform::Nvidia => &CUBLAS,
        Platform::Amd => &ROCBLAS,
    };
    slot.get_or_init(|| open(platform))
        .as_ref()
        .map_err(Clone::clone)
}

fn candidates(platform: Platform) -> Vec<String> {
    let mut names = Vec::new();
    if let Ok(v) = std::env::var(BLAS_LIB_ENV) {
        let v = v.trim();
        if !v.is_empty() {
            names.push(v.to_string());
        }
    }
    let defaults = match platform {
        Platform::Nvidia => CUBLAS_LIBRARIES,
        Platform::Amd => ROCBLAS_LIBRARIES,
    };
    names.extend(defaults.iter().map(|s| (*s).to_string()));
    names.extend(toolkit_files(platform));
    names
}

/// The library files of an installed CUDA toolkit or ROCm that exist but need not be on the
/// loader's search path (`$CUDA_HOME`, `$CUDA_PATH`, `/usr/local/cuda`; `$ROCM_PATH`,
/// `/opt/rocm`).
fn toolkit_files(platform: Platform) -> Vec<String> {
    let (vars, fallback, dirs, files): (&[&str], &str, &[&str], &[&str]) = match platform {
        Platform::Nvidia => (
            &["CUDA_HOME", "CUDA_PATH"],
            "/usr/local/cuda",
            &["lib64", "targets/x86_64-linux/lib"],
            &["libcublas.so.13", "libcublas.so.12"],
        ),
        Platform::Amd => (
            &["ROCM_PATH"],
            "/opt/rocm",
            &["lib"],
            &["librocblas.so.4", "librocblas.so.5", "librocblas.so"],
        ),
    };
    let mut roots: Vec<String> = vars
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .filter(|v| !v.trim().is_empty())
        .collect();
    roots.push(fallback.to_string());
    let mut found = Vec::new();
    for root in &roots {
        for dir in dirs {
            for file in files {
                let path = Path::new(root).join(dir).join(file);
                if path.is_file() {
                    found.push(path.display().to_string());
                }
            }
        }
    }
    found
}

/// Opens `libcublasLt.so*` beside `path` (when `path` names a folder), so that the dynamic
/// loader finds cuBLAS's dependency already loaded.
fn open_lt_beside(path: &str) -> Option<libloading::Library> {
    let dir = Path::new(path).parent()?;
    if dir.as_os_str().is_empty() {
        return None;
    }
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libcublasLt.so"))
        })
        .collect();
    entries.sort();
    // The longest name is the most specific version (libcublasLt.so.13 over libcublasLt.so).
    let lt = entries.iter().max_by_key(|p| p.as_os_str().len())?;
    // SAFETY: loading the vendor's cuBLASLt runs only its initialisers.
    unsafe { libloading::Library::new(lt) }.ok()
}

fn open(platform: Platform) -> HipResult<BlasLibrary> {
    let mut tried = Vec::new();
    for name in candidates(platform) {
        let lt = match platform {
            Platform::Nvidia => open_lt_beside(&name),
            Platform::Amd => None,
        };
        // SAFETY: loading a vendor BLAS library runs its initialisers; these are the libraries
        // the vendors ship for exactly this use (or the file the user named).
        match unsafe { libloading::Library::new(&name) } {
            Ok(library) => {
                let api = match platform {
                    Platform::Nvidia => {
                        // SAFETY: a library named as cuBLAS; every symbol is checked when called.
                        BlasApi::Cublas(unsafe { Cublas::from_library(library, lt) })
                    }
                    // SAFETY: a library named as rocBLAS; as above.
                    Platform::Amd => BlasApi::Rocblas(unsafe { Rocblas::from_library(library) }),
                };
                return Ok(BlasLibrary { api, name });
            }
            Err(e) => tried.push(format!("{name}: {e}")),
        }
    }
    let hint = match platform {
        Platform::Nvidia => format!(
            "install cuBLAS (CUDA toolkit, or pip's nvidia-cublas) or set {BLAS_LIB_ENV} to the path of libcublas.so"
        ),
        Platform::Amd => {
            format!("install rocBLAS (ROCm) or set {BLAS_LIB_ENV} to the path of librocblas.so")
        }
    };
    Err(HipError::LibraryNotFound {
        tried: tried.join("; "),
        hint,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::panic)]
    use super::*;

    #[test]
    fn a_missing_library_is_an_error_naming_every_file_tried() {
        for (platform, names) in [
            (Platform::Nvidia, CUBLAS_LIBRARIES),
            (Platform::Amd, ROCBLAS_LIBRARIES),
        ] {
            match open(platform) {
                Ok(lib) => assert!(!lib.name.is_empty()),
                Err(HipError::LibraryNotFound { tried, hint }) => {
                    for name in names {
                        assert!(tried.contains(name), "{tried} lacks {name}");
                    }
                    assert!(hint.contains(BLAS_LIB_ENV), "{hint}");
                }
                Err(other) => panic!("unexpected error {other}"),
            }
        }
    }

    #[test]
    fn the_default_names_follow_the_environment_variable() {
        for (platform, defaults) in [
            (Platform::Nvidia, CUBLAS_LIBRARIES),
            (Platform::Amd, ROCBLAS_LIBRARIES),
        ] {
            let names = candidates(platform);
            let want: Vec<String> = defaults.iter().map(|s| s.to_string()).collect();
            let extra = toolkit_files(platform);
            assert_eq!(names.len(), names_from_env() + want.len() + extra.len());
            let start = names_from_env();
            assert_eq!(names[start..start + want.len()], want[..], "{names:?}");
            assert!(
                extra.iter().all(|p| Path::new(p).is_absolute()),
                "{extra:?}"
            );
        }
    }

    fn names_from_env() -> usize {
        usize::from(std::env::var(BLAS_LIB_ENV).is_ok_and(|v| !v.trim().is_empty()))
    }

    #[test]
    fn no_cublaslt_is_looked_for_beside_a_bare_name() {
        assert!(open_lt_beside("libcublas.so.13").is_none());
        assert!(open_lt_beside("/nonexistent-folder/libcublas.so.13").is_none());
    }
}
