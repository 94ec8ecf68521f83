//! Kernel image files on disk, as `cargo xtask kernels` writes them:
//!
//! ```text
//! <dir>/amd/<gfx>/<name>.co          AMD code object (gfx90a, gfx942, gfx1100, gfx1201, ...)
//! <dir>/nvidia/<sm>/<name>.cubin     NVIDIA machine code (sm_80, sm_90, ...)
//! <dir>/nvidia/<sm>/<name>.ptx       NVIDIA PTX, compiled by the driver for this or a newer GPU
//! ```

use std::path::{Path, PathBuf};

use super::embedded::sm_number;
use crate::error::Platform;

/// The environment variable that names the kernel image folder searched first.
pub const KERNEL_DIR_ENV: &str = "ROCMFORGE_KERNEL_DIR";

/// `$ROCMFORGE_KERNEL_DIR`, when set and not empty.
pub fn kernel_dir_from_env() -> Option<PathBuf> {
    std::env::var_os(KERNEL_DIR_ENV)
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
}

/// The folders searched after the embedded images: `<exe dir>/kernels`, `<exe dir>/../kernels`,
/// `<exe dir>/../../kernels` (so binaries under `target/<profile>/` and their test binaries under
/// `target/<profile>/deps/` find `target/kernels`), then `./target/kernels`.
pub fn fallback_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(exe_dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        dirs.push(exe_dir.join("kernels"));
        dirs.push(exe_dir.join("..").join("kernels"));
        dirs.push(exe_dir.join("..").join("..").join("kernels"));
    }
    dirs.push(PathBuf::from("target").join("kernels"));
    dirs
}

/// Image files that serve `arch`, best first, relative to a kernel folder.
pub fn candidates(platform: Platform, arch: &str, name: &str) -> Vec<PathBuf> {
    match platform {
        Platform::Amd => vec![Path::new("amd").join(arch).join(format!("{name}.co"))],
        Platform::Nvidia => {
            let mut files = vec![
                Path::new("nvidia").join(arch).join(format!("{name}.cubin")),
                Path::new("nvidia").join(arch).join(format!("{name}.ptx")),
            ];
            // PTX built for an older architecture runs on newer GPUs (the driver compiles it).
            if let Some(sm) = sm_number(arch) {
                for older in [90, 89, 86, 80, 75, 70] {
                    if older < sm {
                        files.push(
                            Path::new("nvidia")
                                .join(format!("sm_{older}"))
                                .join(format!("{name}.ptx")),
                        );
                    }
                }
            }
            files
        }
    }
}

/// The first file of `dirs` that serves `arch`; every path tried is added to `searched`.
pub fn first_file(
    dirs: &[PathBuf],
    platform: Platform,
    arch: &str,
    name: &str,
    searched: &mut Vec<String>,
) -> Option<PathBuf> {
    for dir in dirs {
        for rel in candidates(platform, arch, name) {
            let path = dir.join(rel);
            if path.is_file() {
                return Some(path);
            }
            searched.push(path.display().to_string());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nvidia_candidates_fall_back_to_older_ptx() {
        let c = candidates(Platform::Nvidia, "sm_90", "k");
        assert_eq!(c[0], Path::new("nvidia/sm_90/k.cubin"));
        assert_eq!(c[1], Path::new("nvidia/sm_90/k.ptx"));
        assert!(c.contains(&PathBuf::from("nvidia/sm_80/k.ptx")));
        assert!(!c.contains(&PathBuf::from("nvidia/sm_90/k2.ptx")));
    }

    #[test]
    fn amd_candidate_is_the_exact_target() {
        assert_eq!(
            candidates(Platform::Amd, "gfx942", "k"),
            vec![PathBuf::from("amd/gfx942/k.co")]
        );
    }
}
