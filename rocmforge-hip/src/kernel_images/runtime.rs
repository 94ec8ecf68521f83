//! Kernel images compiled on this machine by HIP's runtime compiler ([`crate::hiprtc`]) from the
//! embedded sources ([`super::sources`]), for AMD GPUs whose target has no embedded image (any
//! gfx target ROCm supports, e.g. gfx1031, gfx1036, gfx1151). Each image is compiled once and
//! kept in the cache folder:
//!
//! ```text
//! $XDG_CACHE_HOME/rocmforge/kernels/<gfx>/<family>-<key>.co   (else ~/.cache/rocmforge/kernels/...)
//! ```
//!
//! `<key>` hashes everything that changes the code: the family's source, every header, the
//! hiprtc version and library file, the target and the options, so an upgrade of either the
//! binary or ROCm compiles afresh instead of loading a stale image.

use std::path::{Path, PathBuf};
use std::time::Instant;

use sha2::{Digest, Sha256};

use super::sources;
use crate::error::{HipError, HipResult};
use crate::hiprtc;

/// The cache folder: `$XDG_CACHE_HOME/rocmforge/kernels`, else `$HOME/.cache/rocmforge/kernels`,
/// else `<temp dir>/rocmforge-kernels`.
pub fn cache_root() -> PathBuf {
    let var = |v: &str| std::env::var_os(v).map(PathBuf::from);
    cache_root_from(var("XDG_CACHE_HOME"), var("HOME"))
}

fn cache_root_from(xdg_cache_home: Option<PathBuf>, home: Option<PathBuf>) -> PathBuf {
    let set = |d: &Option<PathBuf>| d.clone().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = set(&xdg_cache_home) {
        return dir.join("rocmforge").join("kernels");
    }
    if let Some(home) = set(&home) {
        return home.join(".cache").join("rocmforge").join("kernels");
    }
    std::env::temp_dir().join("rocmforge-kernels")
}

/// The cache key of family `family` for `arch` compiled by the hiprtc `hiprtc_version`: 16 bytes
/// of a SHA-256 as hex. `None` when the family's source is not embedded.
pub fn cache_key(family: &str, arch: &str, hiprtc_version: &str) -> Option<String> {
    let source = sources::source(family)?;
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        // Length-prefixed, so that no two different inputs hash the same bytes.
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    field(b"rocmforge hiprtc v1");
    field(family.as_bytes());
    field(source.as_bytes());
    for (name, text) in sources::headers() {
        field(name.as_bytes());
        field(text.as_bytes());
    }
    field(hiprtc_version.as_bytes());
    field(arch.as_bytes());
    for option in hiprtc::OPTIONS {
        field(option.as_bytes());
    }
    let digest = h.finalize();
    Some(digest[..16].iter().map(|b| format!("{b:02x}")).collect())
}

/// Where the image of `family` for `arch` is (or will be) cached under `root`, with the hiprtc
/// in use; `Err` says why there is none (no hiprtc library, no embedded source).
pub fn cache_path(root: &Path, family: &str, arch: &str) -> Result<PathBuf, String> {
    let version = hiprtc::version().map_err(|e| format!("hiprtc: {e}"))?;
    let key = cache_key(family, arch, version).ok_or_else(|| {
        format!("hiprtc: this binary carries no source of the kernel family `{family}`")
    })?;
    Ok(root.join(arch).join(format!("{family}-{key}.co")))
}

/// One line for people: `hiprtc 5.2 (libamdhip64.so.5.2.21153), cached in <dir>`, or
/// `unavailable (why)`.
pub fn summary() -> String {
    match hiprtc::version() {
        Ok(v) => format!("hiprtc {v}, cached in {}", cache_root().display()),
        Err(e) => format!("unavailable ({e})"),
    }
}

/// How [`load_or_compile`] got its image.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Provenance {
    /// Read from the cache file.
    CacheHit,
    /// Compiled now (and written to the cache file, unless that failed: see the log).
    Compiled {
        /// Seconds the compile took.
        seconds: f64,
    },
}

/// An AMD code object: at least an ELF header.
fn is_code_object(bytes: &[u8]) -> bool {
    bytes.len() > 64 && bytes.starts_with(b"\x7fELF")
}

/// The image of `family` for the AMD target `arch` from the cache under `root`, or compiled with
/// hiprtc (one line on stderr says so, as a first compile can take minutes) and cached there.
/// A cache that cannot be written is logged, not an error: the image is still returned.
pub fn load_or_compile(
    root: &Path,
    family: &str,
    arch: &str,
) -> HipResult<(Vec<u8>, PathBuf, Provenance)> {
    let fail = |detail: String| HipError::RuntimeCompile {
        family: family.to_string(),
        arch: arch.to_string(),
        detail,
    };
    let path = cache_path(root, family, arch).map_err(fail)?;
    if let Ok(bytes) = std::fs::read(&path) {
        if is_code_object(&bytes) {
            return Ok((bytes, path, Provenance::CacheHit));
        }
        tracing::warn!(path = %path.display(), "damaged cached kernel image: compiling again");
    }
    let source =
        sources::source(family).ok_or_else(|| fail(format!("no embedded source of `{family}`")))?;
    eprintln!(
        "rocmforge: compiling GPU kernels for {arch} with hiprtc (first use; cached in {}): {family}",
        root.display()
    );
    let start = Instant::now();
    let bytes = hiprtc::compile(&format!("{family}.hip"), source, sources::headers(), arch)
        .map_err(|e| fail(e.to_string()))?;
    let seconds = start.elapsed().as_secs_f64();
    tracing::info!(family, arch, seconds, "compiled GPU kernels with hiprtc");
    if let Err(e) = write_atomically(&path, &bytes) {
        tracing::warn!(path = %path.display(), error = %e, "could not cache the compiled kernels");
    }
    Ok((bytes, path, Provenance::Compiled { seconds }))
}

/// Writes `bytes` to a temporary file beside `path`, then renames it: a reader (another process)
/// sees the whole image or none.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}.tmp", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_changes_with_each_input_and_only_then() {
        let Some(family) = sources::families().next() else {
            return; // no embedded source: checked by sources' own test
        };
        let key = |f: &str, a: &str, v: &str| cache_key(f, a, v).unwrap_or_default();
        let base = key(family, "gfx1031", "5.2");
        assert_eq!(base.len(), 32);
        assert_eq!(base, key(family, "gfx1031", "5.2"));
        assert_ne!(base, key(family, "gfx1036", "5.2"));
        assert_ne!(base, key(family, "gfx1031", "6.4"));
        let other = sources::families().nth(1).unwrap_or(family);
        if other != family {
            assert_ne!(base, key(other, "gfx1031", "5.2"));
        }
        assert!(cache_key("no_such_family", "gfx1031", "5.2").is_none());
    }

    #[test]
    fn the_cache_follows_xdg_cache_home_then_home() {
        let p = |s: &str| Some(PathBuf::from(s));
        assert_eq!(
            cache_root_from(p("/x/cache"), p("/home/u")),
            Path::new("/x/cache/rocmforge/kernels")
        );
        assert_eq!(
            cache_root_from(p(""), p("/home/u")),
            Path::new("/home/u/.cache/rocmforge/kernels")
        );
        assert_eq!(
            cache_root_from(None, None),
            std::env::temp_dir().join("rocmforge-kernels")
        );
    }
}
