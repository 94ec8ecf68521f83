//! The kernel images compiled into this crate by `build.rs` (issue 17): AMD code objects for the
//! built targets and NVIDIA PTX that the driver compiles for the device at load.

use crate::error::{HipError, HipResult, Platform};

/// One embedded image, zlib-compressed.
#[derive(Debug)]
pub(super) struct EmbeddedImage {
    pub(super) platform: Platform,
    pub(super) arch: &'static str,
    pub(super) family: &'static str,
    /// Bytes once unpacked.
    pub(super) size: usize,
    pub(super) zlib: &'static [u8],
}

impl EmbeddedImage {
    /// The image unpacked.
    pub(super) fn unpack(&self) -> HipResult<Vec<u8>> {
        let bytes = miniz_oxide::inflate::decompress_to_vec_zlib_with_limit(self.zlib, self.size)
            .map_err(|e| HipError::EmbeddedImage {
            name: self.family.to_string(),
            arch: self.arch.to_string(),
            message: format!("{:?}", e.status),
        })?;
        if bytes.len() != self.size {
            return Err(HipError::EmbeddedImage {
                name: self.family.to_string(),
                arch: self.arch.to_string(),
                message: format!("{} bytes unpacked, {} expected", bytes.len(), self.size),
            });
        }
        Ok(bytes)
    }
}

include!(concat!(env!("OUT_DIR"), "/embedded_kernels.rs"));

/// NVIDIA `sm_XY` as a number (90 for sm_90); `None` for anything else.
pub(super) fn sm_number(arch: &str) -> Option<u32> {
    arch.strip_prefix("sm_")
        .and_then(|n| n.trim_end_matches(['a', 'f']).parse().ok())
}

/// The embedded image of family `name` for a device of `arch`: the exact target on AMD; on
/// NVIDIA the PTX of the newest embedded target not newer than the device.
pub(super) fn lookup(platform: Platform, arch: &str, name: &str) -> Option<&'static EmbeddedImage> {
    let of_family = IMAGES
        .iter()
        .filter(move |i| i.platform == platform && i.family == name);
    match platform {
        Platform::Amd => of_family.into_iter().find(|i| i.arch == arch),
        Platform::Nvidia => {
            let device = sm_number(arch)?;
            of_family
                .filter_map(|i| sm_number(i.arch).map(|sm| (sm, i)))
                .filter(|(sm, _)| *sm <= device)
                .max_by_key(|(sm, _)| *sm)
                .map(|(_, i)| i)
        }
    }
}

/// The embedded targets, in build order without repeats: `gfx90a`, ..., `sm_80`.
pub fn targets() -> Vec<(Platform, &'static str)> {
    let mut out: Vec<(Platform, &'static str)> = Vec::new();
    for i in IMAGES {
        if !out.contains(&(i.platform, i.arch)) {
            out.push((i.platform, i.arch));
        }
    }
    out
}

/// Bytes embedded in all: (compressed, unpacked).
pub fn total_bytes() -> (usize, usize) {
    IMAGES
        .iter()
        .fold((0, 0), |(z, u), i| (z + i.zlib.len(), u + i.size))
}

/// The kernel families (`kernels/*.hip` stems) the crate was built with; empty when the build
/// found no sources.
pub fn families() -> &'static [&'static str] {
    FAMILIES
}

/// Why targets are missing from the embedded set (no compiler, a compiler without a back end,
/// `ROCMFORGE_NO_EMBED_KERNELS=1`); empty when every default target was built.
pub fn build_notes() -> &'static [&'static str] {
    NOTES
}

/// One line for people: `gfx90a, gfx942, ..., ptx sm_80`, or `none (why)`.
pub fn summary() -> String {
    let targets = targets();
    if targets.is_empty() {
        let why = NOTES
            .first()
            .copied()
            .unwrap_or("the build compiled no kernel");
        return format!("none ({why})");
    }
    targets
        .iter()
        .map(|(p, a)| match p {
            Platform::Amd => (*a).to_string(),
            Platform::Nvidia => format!("ptx {a}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_image_unpacks_to_a_kernel_image_of_a_family_of_the_build() {
        for i in IMAGES {
            assert!(FAMILIES.contains(&i.family), "{}", i.family);
            let bytes = i.unpack().map_err(|e| e.to_string());
            let ok = match (&bytes, i.platform) {
                (Ok(b), Platform::Amd) => b.starts_with(b"\x7fELF"),
                (Ok(b), Platform::Nvidia) => String::from_utf8_lossy(b).contains(".target sm_"),
                (Err(_), _) => false,
            };
            assert!(ok, "{} {}: {:?}", i.arch, i.family, bytes.map(|b| b.len()));
        }
    }

    #[test]
    fn nvidia_takes_the_newest_ptx_not_newer_than_the_device() {
        for (platform, arch) in targets() {
            if platform != Platform::Nvidia {
                continue;
            }
            let Some(family) = FAMILIES.first() else {
                continue;
            };
            let found = lookup(Platform::Nvidia, "sm_90", family).map(|i| i.arch);
            assert!(
                found.is_some_and(|a| sm_number(a) <= Some(90)),
                "{arch}: {found:?}"
            );
            assert!(lookup(Platform::Nvidia, "sm_50", family).is_none());
        }
    }

    #[test]
    fn summary_names_every_target_or_why_none() {
        let s = summary();
        for (_, arch) in targets() {
            assert!(s.contains(arch), "{s}");
        }
        if targets().is_empty() {
            assert!(s.starts_with("none ("), "{s}");
        }
    }
}
