//! `cargo xtask kernels [--platform amd|nvidia|all] [--arch gfx942,sm_90,...] [--out-dir DIR]`
//!
//! Compiles every `kernels/*.hip` once per target, with the command lines of
//! `rocmforge-kernel-build` (the same ones rocmforge-hip's build script embeds):
//! - AMD: `hipcc` when installed, else `clang-19` (or `clang`) with
//!   `-x hip --offload-arch=<gfx> --cuda-device-only --no-gpu-bundle-output -nogpuinc -nogpulib`
//!   → `<out>/amd/<gfx>/<name>.co` (default targets: gfx90a, gfx942, gfx1030, gfx1100, gfx1101, gfx1102, gfx1200, gfx1201).
//! - NVIDIA: `nvcc` when installed → `<out>/nvidia/<sm>/<name>.cubin` and `.ptx`; without nvcc,
//!   clang `-x cuda --cuda-device-only -nocudainc -nocudalib -S` → `.ptx` only (the driver compiles
//!   PTX at load). Default targets sm_80, sm_90.
//!
//! `<out>` defaults to `target/kernels`, where rocmforge-hip looks for images (see
//! `rocmforge_hip::kernel_images`).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use clap::{Args, ValueEnum};
use rocmforge_kernel_build::command::{self, NvccOutput};
use rocmforge_kernel_build::{Compiler, Job, compiler, default_workers, run_jobs, sources};

use crate::paths;

/// AMD targets built by default: the targets rocmforge-hip embeds (CDNA2/3, RDNA2/3/4).
pub const DEFAULT_AMD_ARCHS: &[&str] = rocmforge_kernel_build::DEFAULT_AMD_TARGETS;
/// NVIDIA targets built by default: Ampere, Hopper.
pub const DEFAULT_NVIDIA_ARCHS: &[&str] = rocmforge_kernel_build::targets::DEFAULT_NVIDIA_TARGETS;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PlatformChoice {
    Amd,
    Nvidia,
    All,
}

#[derive(Args, Debug, Clone)]
pub struct KernelArgs {
    /// Which GPU platform(s) to build for.
    #[arg(long, value_enum, default_value = "all")]
    pub platform: PlatformChoice,
    /// Targets (comma-separated or repeated): gfx… for AMD, sm_… for NVIDIA. Default: all of the
    /// platform's default targets.
    #[arg(long, value_delimiter = ',')]
    pub arch: Vec<String>,
    /// Output folder (default: target/kernels).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

impl PlatformChoice {
    /// From `ROCMFORGE_PLATFORM` (amd / nvidia), else all.
    pub fn from_env() -> Self {
        match std::env::var("ROCMFORGE_PLATFORM")
            .unwrap_or_default()
            .to_ascii_lowercase()
            .as_str()
        {
            "amd" | "hip" | "rocm" => PlatformChoice::Amd,
            "nvidia" | "cuda" => PlatformChoice::Nvidia,
            _ => PlatformChoice::All,
        }
    }
}

impl KernelArgs {
    /// Platform from `ROCMFORGE_PLATFORM` and targets from `ROCMFORGE_KERNEL_ARCH`
    /// (comma-separated, e.g. `gfx1030` on a runner whose GPU is not a default target).
    pub fn from_env(out_dir: Option<PathBuf>) -> Self {
        let arch = std::env::var("ROCMFORGE_KERNEL_ARCH")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_string)
            .collect();
        KernelArgs {
            platform: PlatformChoice::from_env(),
            arch,
            out_dir,
        }
    }
}

/// The kernel sources (`kernels/*.hip`), sorted.
pub fn kernel_sources() -> Result<Vec<PathBuf>> {
    Ok(sources::kernel_sources(
        &paths::repo_root().join("kernels"),
    )?)
}

fn targets(args: &KernelArgs, prefix: &str, defaults: &[&str]) -> Vec<String> {
    let chosen: Vec<String> = args
        .arch
        .iter()
        .filter(|a| a.starts_with(prefix))
        .cloned()
        .collect();
    if args.arch.is_empty() {
        defaults.iter().map(|s| (*s).to_string()).collect()
    } else {
        chosen
    }
}

fn weight(src: &Path) -> u64 {
    std::fs::metadata(src).map_or(0, |m| m.len())
}

fn amd_jobs(
    args: &KernelArgs,
    out: &Path,
    sources: &[PathBuf],
    include: &Path,
) -> Result<Vec<Job>> {
    let archs = targets(args, "gfx", DEFAULT_AMD_ARCHS);
    if archs.is_empty() {
        return Ok(Vec::new());
    }
    let Some(compiler) = Compiler::find_amd() else {
        bail!("no AMD kernel compiler: {}", compiler::INSTALL_HINT);
    };
    let mut jobs = Vec::new();
    for arch in &archs {
        for src in sources {
            let output = out
                .join("amd")
                .join(arch)
                .join(format!("{}.co", sources::family(src)?));
            jobs.push(Job {
                label: format!("{arch} {}", src.display()),
                command: command::amd_code_object(&compiler, arch, include, src, &output),
                output,
                weight: weight(src),
                rename_to: None,
            });
        }
    }
    Ok(jobs)
}

fn nvidia_jobs(
    args: &KernelArgs,
    out: &Path,
    sources: &[PathBuf],
    include: &Path,
) -> Result<Vec<Job>> {
    let archs = targets(args, "sm_", DEFAULT_NVIDIA_ARCHS);
    if archs.is_empty() {
        return Ok(Vec::new());
    }
    let nvcc = Compiler::find_nvcc();
    let clang = Compiler::find_clang();
    let mut jobs = Vec::new();
    for arch in &archs {
        for src in sources {
            let dir = out.join("nvidia").join(arch);
            let name = sources::family(src)?;
            if let Some(nvcc) = &nvcc {
                for (kind, ext) in [(NvccOutput::Cubin, "cubin"), (NvccOutput::Ptx, "ptx")] {
                    let output = dir.join(format!("{name}.{ext}"));
                    jobs.push(Job {
                        label: format!("{arch} {ext} {}", src.display()),
                        command: command::nvidia_nvcc(nvcc, kind, arch, include, src, &output),
                        output,
                        weight: weight(src),
                        rename_to: None,
                    });
                }
            } else if let Some(clang) = &clang {
                let output = dir.join(format!("{name}.ptx"));
                jobs.push(Job {
                    label: format!("{arch} ptx {}", src.display()),
                    command: command::nvidia_ptx_clang(clang, arch, include, src, &output),
                    output,
                    weight: weight(src),
                    rename_to: None,
                });
            } else {
                bail!("no NVIDIA kernel compiler: install nvcc (CUDA toolkit) or clang-19");
            }
        }
    }
    Ok(jobs)
}

/// Builds the kernel images; returns the output folder.
pub fn build_kernels(args: &KernelArgs) -> Result<PathBuf> {
    let root = paths::repo_root();
    let out = args
        .out_dir
        .clone()
        .unwrap_or_else(|| root.join("target").join("kernels"));
    let sources = kernel_sources()?;
    let include = root.join("kernels").join("include");
    let mut jobs = Vec::new();
    if matches!(args.platform, PlatformChoice::Amd | PlatformChoice::All) {
        jobs.extend(amd_jobs(args, &out, &sources, &include)?);
    }
    match args.platform {
        PlatformChoice::Nvidia => jobs.extend(nvidia_jobs(args, &out, &sources, &include)?),
        // AMD is the primary target and must build; NVIDIA images are built where a compiler is.
        PlatformChoice::All => match nvidia_jobs(args, &out, &sources, &include) {
            Ok(nv) => jobs.extend(nv),
            Err(e) => eprintln!("xtask: warning: skipping NVIDIA kernels: {e:#}"),
        },
        PlatformChoice::Amd => {}
    }
    if jobs.is_empty() {
        bail!(
            "no targets selected: --arch {:?} matches no target of --platform {:?}",
            args.arch,
            args.platform
        );
    }
    let total = jobs.len();
    let errors: Vec<String> = run_jobs(jobs, default_workers())
        .into_iter()
        .filter_map(|o| o.result.err().map(|e| e.to_string()))
        .collect();
    if !errors.is_empty() {
        bail!(
            "{} of {total} kernel builds failed:\n{}",
            errors.len(),
            errors.join("\n")
        );
    }
    eprintln!(
        "xtask: built {total} kernel image(s) under {}",
        out.display()
    );
    Ok(out)
}

/// `cargo xtask kernels`.
pub fn run_kernels(args: &KernelArgs) -> Result<()> {
    build_kernels(args).map(|_| ())
}
