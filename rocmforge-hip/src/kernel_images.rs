//! Finding the compiled kernel image for a device.
//!
//! `cargo xtask kernels` writes one image per kernel family (`kernels/<name>.hip`) and target:
//!
//! ```text
//! <dir>/amd/<gfx>/<name>.co          AMD code object (gfx90a, gfx942, gfx1100, gfx1201, ...)
//! <dir>/nvidia/<sm>/<name>.cubin     NVIDIA machine code (sm_80, sm_90, ...)
//! <dir>/nvidia/<sm>/<name>.ptx       NVIDIA PTX, compiled by the driver for this or a newer GPU
//! ```
//!
//! `<dir>` is `$ROCMFORGE_KERNEL_DIR` when set; otherwise the first of these that exists:
//! `<exe dir>/kernels`, `<exe dir>/../kernels`, `<exe dir>/../../kernels` (so binaries under
//! `target/<profile>/` and their test binaries under `target/<profile>/deps/` find
//! `target/kernels`), then `./target/kernels`.

use std::path::{Path, PathBuf};

use crate::error::{HipError, HipResult, Platform};

/// The environment variable that names the kernel image folder.
pub const KERNEL_DIR_ENV: &str = "ROCMFORGE_KERNEL_DIR";

/// Folders searched for images, in order.
pub fn search_dirs() -> Vec<PathBuf> {
    if let Some(dir) = std::env::var_os(KERNEL_DIR_ENV).filter(|d| !d.is_empty()) {
        return vec![PathBuf::from(dir)];
    }
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

/// NVIDIA `sm_XY` as a number (90 for sm_90); `None` for anything else.
fn sm_number(arch: &str) -> Option<u32> {
    arch.strip_prefix("sm_")
        .and_then(|n| n.trim_end_matches(['a', 'f']).parse().ok())
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

/// The command that builds the missing image.
pub fn build_command(platform: Platform, arch: &str) -> String {
    format!("cargo xtask kernels --platform {platform} --arch {arch}")
}

/// Reads the image of kernel family `name` for `arch`: `(path, bytes)`.
pub fn find(platform: Platform, arch: &str, name: &str) -> HipResult<(PathBuf, Vec<u8>)> {
    let mut searched = Vec::new();
    for dir in search_dirs() {
        for rel in candidates(platform, arch, name) {
            let path = dir.join(rel);
            match std::fs::read(&path) {
                Ok(bytes) => return Ok((path, bytes)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    searched.push(path.display().to_string())
                }
                Err(e) => {
                    return Err(HipError::Io {
                        path: path.display().to_string(),
                        message: e.to_string(),
                    });
                }
            }
        }
    }
    Err(HipError::KernelImageNotFound {
        name: name.to_string(),
        platform,
        arch: arch.to_string(),
        searched: searched.join(", "),
        command: build_command(platform, arch),
    })
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
        assert!(!c.contains(&PathBuf::from("nvidia/sm_90/k.cubin").with_file_name("k2.ptx")));
    }

    #[test]
    fn amd_candidate_is_the_exact_target() {
        assert_eq!(
            candidates(Platform::Amd, "gfx942", "k"),
            vec![PathBuf::from("amd/gfx942/k.co")]
        );
    }

    #[test]
    fn missing_image_names_arch_and_command() {
        let err = find(Platform::Amd, "gfx_nonexistent", "no_such_family").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("gfx_nonexistent"), "{text}");
        assert!(
            text.contains("cargo xtask kernels --platform amd --arch gfx_nonexistent"),
            "{text}"
        );
    }
}
