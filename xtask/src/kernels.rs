//! `cargo xtask kernels [--platform amd|nvidia|all] [--arch gfx942,sm_90,...] [--out-dir DIR]`
//!
//! Compiles every `kernels/*.hip` once per target:
//! - AMD: `hipcc` when installed, else `clang-19` (or `clang`) with
//!   `-x hip --offload-arch=<gfx> --cuda-device-only --no-gpu-bundle-output -nogpuinc -nogpulib`
//!   → `<out>/amd/<gfx>/<name>.co` (default targets gfx90a, gfx942, gfx1100, gfx1201).
//! - NVIDIA: `nvcc` when installed → `<out>/nvidia/<sm>/<name>.cubin` and `.ptx`; without nvcc,
//!   clang `-x cuda --cuda-device-only -nocudainc -nocudalib -S` → `.ptx` only (the driver compiles
//!   PTX at load). Default targets sm_80, sm_90.
//!
//! `<out>` defaults to `target/kernels`, where rocmforge-hip looks for images (see
//! `rocmforge_hip::kernel_images`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};

use crate::paths;

/// AMD targets built by default: CDNA2, CDNA3, RDNA3, RDNA4.
pub const DEFAULT_AMD_ARCHS: &[&str] = &["gfx90a", "gfx942", "gfx1100", "gfx1201"];
/// NVIDIA targets built by default: Ampere, Hopper.
pub const DEFAULT_NVIDIA_ARCHS: &[&str] = &["sm_80", "sm_90"];

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

    /// Every default target of `platform`, written to `out_dir`.
    pub fn defaults(platform: PlatformChoice, out_dir: Option<PathBuf>) -> Self {
        KernelArgs {
            platform,
            arch: Vec::new(),
            out_dir,
        }
    }
}

/// One compile: source, target, output, and the command line.
struct Job {
    label: String,
    output: PathBuf,
    command: Command,
}

/// The kernel sources (`kernels/*.hip`), sorted.
pub fn kernel_sources() -> Result<Vec<PathBuf>> {
    let dir = paths::repo_root().join("kernels");
    let mut sources: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "hip"))
        .collect();
    sources.sort();
    if sources.is_empty() {
        bail!("no kernel sources (*.hip) in {}", dir.display());
    }
    Ok(sources)
}

fn found(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

fn first_found(candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|c| found(c))
        .map(|c| (*c).to_string())
}

fn stem(source: &Path) -> Result<String> {
    source
        .file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string)
        .with_context(|| format!("kernel file name {} is not UTF-8", source.display()))
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
    let compiler = std::env::var("HIPCC")
        .ok()
        .or_else(|| first_found(&["hipcc", "clang-19", "clang"]));
    let Some(compiler) = compiler else {
        bail!(
            "no AMD kernel compiler: install hipcc (ROCm) or clang-19 and lld-19 (apt-get install clang-19 lld-19)"
        );
    };
    let mut jobs = Vec::new();
    for arch in &archs {
        for src in sources {
            let output = out
                .join("amd")
                .join(arch)
                .join(format!("{}.co", stem(src)?));
            let mut command = Command::new(&compiler);
            command
                .args([
                    "-x",
                    "hip",
                    &format!("--offload-arch={arch}"),
                    "--cuda-device-only",
                ])
                .args([
                    "--no-gpu-bundle-output",
                    "-nogpuinc",
                    "-nogpulib",
                    "-O3",
                    "-std=c++17",
                ])
                .arg("-I")
                .arg(include)
                .arg("-o")
                .arg(&output)
                .arg(src);
            jobs.push(Job {
                label: format!("{arch} {}", src.display()),
                output,
                command,
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
    let nvcc = std::env::var("NVCC")
        .ok()
        .or_else(|| first_found(&["nvcc", "/usr/local/cuda/bin/nvcc"]));
    let clang = first_found(&["clang-19", "clang"]);
    let mut jobs = Vec::new();
    for arch in &archs {
        let number = arch.trim_start_matches("sm_");
        for src in sources {
            let dir = out.join("nvidia").join(arch);
            let name = stem(src)?;
            if let Some(nvcc) = &nvcc {
                for (kind, flag, ext) in [
                    ("cubin", format!("-arch={arch}"), "cubin"),
                    ("ptx", format!("-arch=compute_{number}"), "ptx"),
                ] {
                    let output = dir.join(format!("{name}.{ext}"));
                    let mut command = Command::new(nvcc);
                    command
                        .args([format!("-{kind}"), flag])
                        .args(["-O3", "-std=c++17", "-x", "cu", "-I"])
                        .arg(include);
                    command.arg("-o").arg(&output).arg(src);
                    jobs.push(Job {
                        label: format!("{arch} {ext} {}", src.display()),
                        output,
                        command,
                    });
                }
            } else if let Some(clang) = &clang {
                let output = dir.join(format!("{name}.ptx"));
                let mut command = Command::new(clang);
                command
                    .args([
                        "-x",
                        "cuda",
                        &format!("--cuda-gpu-arch={arch}"),
                        "--cuda-device-only",
                    ])
                    .args([
                        "-nocudainc",
                        "-nocudalib",
                        "-Xclang",
                        "-target-feature",
                        "-Xclang",
                        "+ptx75",
                    ])
                    .args(["-O3", "-std=c++17", "-S", "-I"])
                    .arg(include)
                    .arg("-o")
                    .arg(&output)
                    .arg(src);
                jobs.push(Job {
                    label: format!("{arch} ptx {}", src.display()),
                    output,
                    command,
                });
            } else {
                bail!("no NVIDIA kernel compiler: install nvcc (CUDA toolkit) or clang-19");
            }
        }
    }
    Ok(jobs)
}

fn run_job(job: &mut Job) -> Result<()> {
    if let Some(parent) = job.output.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    let shown = format!("{:?}", job.command);
    let output = job
        .command
        .output()
        .with_context(|| format!("could not start {shown}"))?;
    if !output.status.success() {
        bail!(
            "kernel build failed for {}:\n{shown}\n{}{}",
            job.label,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
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
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let total = jobs.len();
    let mut errors = Vec::new();
    for chunk in jobs.chunks_mut(workers) {
        let results: Vec<Result<()>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter_mut()
                .map(|job| scope.spawn(move || run_job(job)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("kernel build thread panicked")))
                })
                .collect()
        });
        errors.extend(results.into_iter().filter_map(Result::err));
    }
    if !errors.is_empty() {
        let text: Vec<String> = errors.iter().map(|e| format!("{e:#}")).collect();
        bail!(
            "{} of {total} kernel builds failed:\n{}",
            errors.len(),
            text.join("\n")
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
