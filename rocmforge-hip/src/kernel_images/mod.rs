//! Finding the compiled kernel image of a family (`kernels/<name>.hip`) for a device, in order:
//!
//! 1. `$ROCMFORGE_KERNEL_DIR` ([`KERNEL_DIR_ENV`]), laid out as `cargo xtask kernels` writes it
//!    (see [`disk`]) — to try kernels without rebuilding the binary;
//! 2. the images embedded in this crate by its build script ([`embedded`]): AMD code objects for
//!    the exact gfx target, NVIDIA PTX that the driver compiles for the device at load (cached by
//!    the driver in `~/.nv/ComputeCache`);
//! 3. `<exe dir>/kernels`, `<exe dir>/../kernels`, `<exe dir>/../../kernels`, `./target/kernels`;
//! 4. AMD only: the image compiled on this machine by hiprtc from the embedded sources
//!    ([`runtime`]), read from its cache (`~/.cache/rocmforge/kernels/<gfx>/`) or compiled now
//!    (seconds to minutes per family, once) — so any gfx target ROCm supports gets kernels.
//!
//! Which one served a device is [`locate`]'s [`KernelOrigin`]; `rocmforge devices` prints it, and
//! every load logs it at `info` level (`RUST_LOG=rocmforge_hip=info`).

pub mod disk;
pub mod embedded;
pub mod runtime;
pub mod sources;

use std::fmt;
use std::path::PathBuf;

use crate::error::{HipError, HipResult, Platform};

pub use disk::{KERNEL_DIR_ENV, candidates};

/// Where a kernel image comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KernelOrigin {
    /// A file under `$ROCMFORGE_KERNEL_DIR`.
    KernelDir(PathBuf),
    /// Compiled into the binary for `arch` (on NVIDIA, PTX for `arch` or an older target).
    Embedded {
        /// The platform of the image.
        platform: Platform,
        /// The target the image was built for.
        arch: &'static str,
    },
    /// A file in one of the fallback folders (`<exe dir>/kernels`, ..., `./target/kernels`).
    File(PathBuf),
    /// Compiled on this machine by hiprtc from the embedded sources (AMD), kept in
    /// `cache_path` (compiled at load when the file is not there yet).
    RuntimeCompiled {
        /// The AMD target compiled for.
        arch: String,
        /// The cache file.
        cache_path: PathBuf,
    },
}

impl fmt::Display for KernelOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KernelOrigin::KernelDir(p) => write!(f, "{KERNEL_DIR_ENV} ({})", p.display()),
            KernelOrigin::Embedded {
                platform: Platform::Amd,
                arch,
            } => {
                write!(f, "embedded ({arch} code object)")
            }
            KernelOrigin::Embedded {
                platform: Platform::Nvidia,
                arch,
            } => {
                write!(f, "embedded ({arch} PTX, compiled by the driver at load)")
            }
            KernelOrigin::File(p) => write!(f, "file ({})", p.display()),
            KernelOrigin::RuntimeCompiled { arch, cache_path } => write!(
                f,
                "compiled for {arch} by hiprtc ({})",
                cache_path.display()
            ),
        }
    }
}

/// A kernel image and where it came from.
#[derive(Debug, Clone)]
pub struct KernelImage {
    /// Where it came from.
    pub origin: KernelOrigin,
    /// The image: a code object, a cubin or PTX text.
    pub bytes: Vec<u8>,
}

/// Where the image of family `name` for `arch` would come from; `Err` lists every path tried.
pub fn locate(platform: Platform, arch: &str, name: &str) -> Result<KernelOrigin, Vec<String>> {
    let mut searched = Vec::new();
    if let Some(dir) = disk::kernel_dir_from_env() {
        if let Some(path) = disk::first_file(&[dir], platform, arch, name, &mut searched) {
            return Ok(KernelOrigin::KernelDir(path));
        }
    }
    if let Some(image) = embedded::lookup(platform, arch, name) {
        return Ok(KernelOrigin::Embedded {
            platform,
            arch: image.arch,
        });
    }
    searched.push(format!("embedded: {}", embedded::summary()));
    if let Some(path) =
        disk::first_file(&disk::fallback_dirs(), platform, arch, name, &mut searched)
    {
        return Ok(KernelOrigin::File(path));
    }
    if platform == Platform::Amd {
        match runtime::cache_path(&runtime::cache_root(), name, arch) {
            Ok(cache_path) => {
                return Ok(KernelOrigin::RuntimeCompiled {
                    arch: arch.to_string(),
                    cache_path,
                });
            }
            Err(why) => searched.push(why),
        }
    }
    Err(searched)
}

/// What to do about a missing image (a sentence naming the packages and commands).
pub fn build_command(platform: Platform, arch: &str) -> String {
    match platform {
        Platform::Amd => format!(
            "install HIP's runtime compiler so that the kernels are compiled at first use (ROCm's \
             libhiprtc, or Debian 12's libamdhip64-5 with libamd-comgr2); or rebuild rocmforge \
             with ROCMFORGE_AMDGPU_TARGETS={arch} set and a kernel compiler installed (clang-19 \
             and lld-19: apt-get install clang-19 lld-19; or ROCm's hipcc), or run `cargo xtask \
             kernels --platform amd --arch {arch}` in the repository and set \
             ROCMFORGE_KERNEL_DIR=target/kernels"
        ),
        Platform::Nvidia => format!(
            "rebuild rocmforge with a kernel compiler installed (clang-19 and lld-19: apt-get \
             install clang-19 lld-19; or the CUDA toolkit's nvcc) so that PTX is embedded, or run \
             `cargo xtask kernels --platform nvidia --arch {arch}` in the repository and set \
             ROCMFORGE_KERNEL_DIR=target/kernels"
        ),
    }
}

/// Reads the image of kernel family `name` for `arch`.
pub fn find(platform: Platform, arch: &str, name: &str) -> HipResult<KernelImage> {
    let origin =
        locate(platform, arch, name).map_err(|searched| HipError::KernelImageNotFound {
            name: name.to_string(),
            platform,
            arch: arch.to_string(),
            searched: searched.join(", "),
            command: build_command(platform, arch),
        })?;
    let bytes = match &origin {
        KernelOrigin::Embedded { .. } => embedded::lookup(platform, arch, name)
            .ok_or_else(|| HipError::InvalidUse(format!("embedded image {name} vanished")))?
            .unpack()?,
        KernelOrigin::KernelDir(path) | KernelOrigin::File(path) => {
            std::fs::read(path).map_err(|e| HipError::Io {
                path: path.display().to_string(),
                message: e.to_string(),
            })?
        }
        KernelOrigin::RuntimeCompiled { .. } => {
            runtime::load_or_compile(&runtime::cache_root(), name, arch)?.0
        }
    };
    Ok(KernelImage { origin, bytes })
}

/// The kernel folder of an image path `<dir>/<platform>/<arch>/<name>.<ext>`.
fn root_of(path: &std::path::Path) -> String {
    path.ancestors()
        .nth(3)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Where a device's kernels come from, for people: one origin when every family comes from the
/// same place, else each distinct origin with a family it serves; `None` found: what to do.
pub fn describe(platform: Platform, arch: &str) -> String {
    let families = embedded::families();
    if families.is_empty() {
        return format!(
            "unknown (this binary was built without the kernel sources: {})",
            embedded::summary()
        );
    }
    let mut origins: Vec<String> = Vec::new();
    let mut missing = Vec::new();
    for family in families {
        match locate(platform, arch, family) {
            Ok(o) => {
                let text = match &o {
                    KernelOrigin::KernelDir(p) => format!("{KERNEL_DIR_ENV} ({})", root_of(p)),
                    KernelOrigin::File(p) => format!("file ({})", root_of(p)),
                    KernelOrigin::Embedded { .. } => o.to_string(),
                    KernelOrigin::RuntimeCompiled { arch, .. } => format!(
                        "compiled for {arch} by hiprtc at first use (cached in {})",
                        runtime::cache_root().join(arch.as_str()).display()
                    ),
                };
                if !origins.contains(&text) {
                    origins.push(text);
                }
            }
            Err(_) => missing.push(*family),
        }
    }
    if !missing.is_empty() {
        origins.push(format!(
            "MISSING for {} of {} families ({}); build them with: {}",
            missing.len(),
            families.len(),
            missing.join(", "),
            build_command(platform, arch)
        ));
    }
    origins.join("; ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_image_names_arch_embedded_targets_and_command() {
        let err = find(Platform::Amd, "gfx_nonexistent", "no_such_family").err();
        let text = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(text.contains("gfx_nonexistent"), "{text}");
        assert!(text.contains("embedded: "), "{text}");
        assert!(
            text.contains("cargo xtask kernels --platform amd --arch gfx_nonexistent"),
            "{text}"
        );
    }

    #[test]
    fn embedded_images_are_found_when_no_kernel_dir_is_set() {
        if disk::kernel_dir_from_env().is_some() {
            return; // the variable wins by design; checked where it is unset (CI)
        }
        for (platform, arch) in embedded::targets() {
            for family in embedded::families() {
                let image = find(platform, arch, family).map_err(|e| e.to_string());
                assert!(
                    matches!(&image, Ok(KernelImage { origin: KernelOrigin::Embedded { .. }, bytes }) if !bytes.is_empty()),
                    "{arch} {family}: {:?}",
                    image.map(|i| i.origin)
                );
            }
            assert!(describe(platform, arch).starts_with("embedded ("), "{arch}");
        }
    }
}
