//! Compiles `kernels/*.hip` and embeds the images in the crate (issue 17: kernels travel with the
//! crates, so `cargo install` users and downstream crates have them).
//!
//! - AMD code objects for `ROCMFORGE_AMDGPU_TARGETS` (default: gfx90a, gfx942, gfx1030, gfx1100,
//!   gfx1101, gfx1102, gfx1200, gfx1201) with hipcc or clang-19 / clang;
//! - NVIDIA PTX for sm_80 (the driver compiles it for sm_80 and every newer GPU) with nvcc or clang.
//!
//! The images are zlib-compressed (miniz_oxide) and unpacked at load. The sources themselves
//! (`kernels/*.hip` and `kernels/include/*`) are embedded too, in every build, for the AMD
//! targets without an image: hiprtc compiles them at first use (`src/kernel_images/runtime.rs`).
//! The command lines come from `rocmforge-kernel-build` (the same ones `cargo xtask kernels` runs).
//! Compiles run in parallel and are cached by content (source, headers, compiler version, target)
//! under `<target dir>/rocmforge-kernel-cache/` (or `$ROCMFORGE_KERNEL_BUILD_CACHE`), so another
//! profile or a `cargo install` in the same target folder compiles nothing again.
//!
//! The sources are found in `$ROCMFORGE_KERNEL_SOURCE_DIR`, else `<crate>/kernels` (a packaged
//! copy), else `<crate>/../kernels` (the repository: `cargo install --path` and path dependencies
//! build in place). No compiler, or no sources: the crate still builds, with a `cargo:warning`, and
//! the run-time error names what to install. `ROCMFORGE_NO_EMBED_KERNELS=1` skips the compile (fast
//! development builds); `ROCMFORGE_REQUIRE_EMBEDDED_KERNELS=1` (set by `cargo xtask test`) turns
//! every missing target into a build error.

#[path = "build/compile.rs"]
mod compile;
#[path = "build/compress.rs"]
mod compress;
#[path = "build/sources.rs"]
mod sources;
#[path = "build/table.rs"]
mod table;

use std::path::{Path, PathBuf};

const ENV_VARS: &[&str] = &[
    "ROCMFORGE_AMDGPU_TARGETS",
    "ROCMFORGE_NO_EMBED_KERNELS",
    "ROCMFORGE_REQUIRE_EMBEDDED_KERNELS",
    "ROCMFORGE_KERNEL_SOURCE_DIR",
    "ROCMFORGE_KERNEL_BUILD_CACHE",
    "HIPCC",
    "NVCC",
];

fn flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The kernel source folder, if there is one.
fn kernel_dir(manifest: &Path) -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ROCMFORGE_KERNEL_SOURCE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    [
        manifest.join("kernels"),
        manifest.join("..").join("kernels"),
    ]
    .into_iter()
    .find(|d| d.join("include").is_dir())
}

fn run() -> Result<(), String> {
    for var in ENV_VARS {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=build");
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    let manifest = PathBuf::from(
        std::env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?,
    );
    let strict = flag("ROCMFORGE_REQUIRE_EMBEDDED_KERNELS");
    let dir = kernel_dir(&manifest);
    if let Some(dir) = &dir {
        println!("cargo:rerun-if-changed={}", dir.display());
    }
    // The sources travel with the crate in every build (hiprtc compiles them at run time for
    // AMD targets without an embedded image); they cost a few hundred kilobytes.
    let families = sources::write(&out_dir, dir.as_deref()).map_err(|e| e.to_string())?;
    let mut built = compile::Built::default();
    if flag("ROCMFORGE_NO_EMBED_KERNELS") {
        built
            .notes
            .push("built with ROCMFORGE_NO_EMBED_KERNELS=1: no kernel image is embedded".into());
    } else if let Some(dir) = &dir {
        built = compile::compile_all(dir, &out_dir).map_err(|e| e.to_string())?;
    } else {
        built.notes.push(format!(
            "no kernels/ folder beside the crate ({}/kernels or {}/../kernels) and \
             ROCMFORGE_KERNEL_SOURCE_DIR is not set: no kernel image is embedded",
            manifest.display(),
            manifest.display()
        ));
    }
    if strict && !built.notes.is_empty() {
        return Err(format!(
            "ROCMFORGE_REQUIRE_EMBEDDED_KERNELS=1 but not every kernel target was embedded:\n{}",
            built.notes.join("\n")
        ));
    }
    for note in &built.notes {
        // A warning shows the first line well; the rest goes to the build script's output.
        let first = note.lines().next().unwrap_or_default();
        println!("cargo:warning=rocmforge-hip: {first}");
        eprintln!("{note}");
    }
    built.families = families;
    let (packed, unpacked) =
        table::write(&out_dir, &built).map_err(|e| format!("writing the kernel table: {e}"))?;
    eprintln!(
        "rocmforge-hip: embedded {} image(s): {:.1} MB, {:.1} MB compressed",
        built.images.len(),
        unpacked as f64 / 1e6,
        packed as f64 / 1e6
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
