//! `cargo xtask bench`: issue 7's benchmark table.
//!
//! - `--gpu`: builds `bench-bundle/` (git-ignored) for the GPU machine, which has no Rust:
//!   ```text
//!   bench-bundle/
//!     run.sh            synthesizes each model into /tmp, runs `rocmforge bench` per row, prints the table
//!     bin/rocmforge     the release CLI (stripped)
//!     bin/xtask         this tool, release (stripped): synth-model, bench-rows, bench-report
//!     vocab/            the tokenizers synth-model copies
//!     kernels-src/ build-cubins.sh   as in gpu-bundle/: the NVIDIA host builds cubins with
//!                       nvcc (run.sh stops without them); the binary embeds no kernels. With
//!                       ROCMFORGE_PLATFORM set: also kernels/ for those targets and a binary
//!                       with embedded kernels (too large to travel to the GPU machine whole)
//!     llama-src.tgz     with `--llama`: llama.cpp's source (tools/llama_src.py, ~3.5 MB), built
//!                       there in the background while ROCmForge's rows run, then measured on
//!                       the same files: the table's ratios come from the same call
//!   ```
//! - without `--gpu`: a CPU smoke test of the same rows' 0.5B models (-p 64 -n 16 -r 1).

mod report;
mod rows;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

pub use report::ReportArgs;

use crate::gpu_bundle::{self, cargo, copy_file, executables, json_output};
use crate::kernels::KernelArgs;
use crate::{paths, synth};

#[derive(Args, Debug, Clone)]
pub struct BenchArgs {
    /// Build the GPU bundle instead of running the CPU smoke test.
    #[arg(long)]
    pub gpu: bool,
    /// Output folder of the bundle (default: bench-bundle/ in the repository root).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
    /// Also bundle llama.cpp's source (from the package index) so that run.sh builds it and
    /// measures llama.cpp on the same files in the same call.
    #[arg(long)]
    pub llama: bool,
    /// With --llama: an llama_cpp_python-*.tar.gz already downloaded (else pip fetches it).
    #[arg(long)]
    pub llama_sdist: Option<PathBuf>,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    if args.gpu {
        let out = bundle(args.out_dir.clone())?;
        if args.llama {
            bundle_llama_src(&out, args.llama_sdist.as_deref())?;
        }
        Ok(())
    } else {
        cpu_smoke()
    }
}

/// Prints the invocations for run.sh (tab-separated).
pub fn print_rows() -> Result<()> {
    print!("{}", rows::invocations_tsv());
    Ok(())
}

pub fn report(args: &ReportArgs) -> Result<()> {
    report::run(args)
}

/// Builds the release binary `bin` of package `package` (without embedded kernel images when
/// `no_embed`); returns its path.
fn release_binary(package: &str, bin: &str, no_embed: bool) -> Result<PathBuf> {
    let mut cmd = cargo();
    if no_embed {
        cmd.env("ROCMFORGE_NO_EMBED_KERNELS", "1");
    }
    let msgs = json_output(cmd.args([
        "build",
        "--release",
        "--message-format=json",
        "-p",
        package,
        "--bin",
        bin,
    ]))?;
    executables(&msgs, "bin", bin)
        .into_iter()
        .find(|(name, _)| name == bin)
        .map(|(_, exe)| exe)
        .with_context(|| format!("cargo built no binary {bin} in {package}"))
}

/// Copies `exe` to `dest` without symbols (`strip`, else a plain copy).
fn copy_stripped(exe: &Path, dest: &Path) -> Result<()> {
    copy_file(exe, dest)?;
    match Command::new("strip").arg(dest).status() {
        Ok(s) if s.success() => {}
        _ => eprintln!(
            "xtask: strip unavailable or failed; {} keeps its symbols",
            dest.display()
        ),
    }
    Ok(())
}

/// Builds the bundle; returns its folder.
pub fn bundle(out_dir: Option<PathBuf>) -> Result<PathBuf> {
    let root = paths::repo_root();
    let out = out_dir.unwrap_or_else(|| root.join("bench-bundle"));
    if out.exists() {
        if !out.join("run.sh").exists() && std::fs::read_dir(&out)?.next().is_some() {
            bail!(
                "{} exists and is not a bench bundle (no run.sh): refusing to replace it",
                out.display()
            );
        }
        std::fs::remove_dir_all(&out).with_context(|| format!("removing old {}", out.display()))?;
    }
    // The table is an H100 table: NVIDIA unless ROCMFORGE_PLATFORM says otherwise, and then
    // the bundle carries kernel sources only (nvcc builds cubins on the GPU host) and a binary
    // without embedded images, so that it stays under the 64 MiB that travel there (the PTX
    // of every family and the embedded images are ~90 and ~28 MB).
    let nvidia = std::env::var_os("ROCMFORGE_PLATFORM").is_none();
    let rocmforge = release_binary("rocmforge-cli", "rocmforge", nvidia)?;
    let xtask = release_binary("xtask", "xtask", nvidia)?;
    copy_stripped(&rocmforge, &out.join("bin/rocmforge"))?;
    copy_stripped(&xtask, &out.join("bin/xtask"))?;
    for shape in ["llama3-8b", "qwen2.5-0.5b"] {
        if let Some(synth::VocabSource::File(file)) =
            synth::Shape::by_name(shape).and_then(|s| s.tokenizer)
        {
            let name = file.file_name().context("vocabulary without a file name")?;
            copy_file(&file, &out.join("vocab").join(name))?;
        }
    }
    if nvidia {
        gpu_bundle::bundle_kernel_sources(&out)?;
    } else {
        gpu_bundle::bundle_kernels(&out, &KernelArgs::from_env(Some(out.join("kernels"))))?;
    }
    std::fs::write(out.join("run.sh"), include_str!("run.sh"))
        .with_context(|| format!("writing {}/run.sh", out.display()))?;
    eprintln!(
        "xtask: bench bundle ready: {}; on the GPU machine run `bash {}/run.sh [all|0.5b|8b|TAG...]`",
        out.display(),
        out.display()
    );
    Ok(out)
}

/// Writes `llama-src.tgz` into the bundle with tools/llama_src.py.
fn bundle_llama_src(out: &Path, sdist: Option<&Path>) -> Result<()> {
    let script = paths::repo_root().join("tools/llama_src.py");
    let mut cmd = Command::new("python3");
    cmd.arg(&script).arg(out.join("llama-src.tgz"));
    if let Some(sdist) = sdist {
        cmd.arg("--sdist").arg(sdist);
    }
    let status = cmd
        .status()
        .with_context(|| format!("could not start python3 {}", script.display()))?;
    if !status.success() {
        bail!("{} failed ({status})", script.display());
    }
    Ok(())
}

/// Without a GPU: the 0.5B rows on the CPU with -p 64 -n 16 -r 1, same files and report.
fn cpu_smoke() -> Result<()> {
    let rocmforge = release_binary("rocmforge-cli", "rocmforge", false)?;
    let work = std::env::temp_dir().join(format!("rocmforge-bench-smoke-{}", std::process::id()));
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = smoke_rows(&rocmforge, &work);
    let report = report::run(&ReportArgs {
        results: work.clone(),
        out: Some(work.clone()),
        machine: "CPU smoke test (-p 64 -n 16 -r 1): not comparable with the GPU references".into(),
    });
    let _ = std::fs::remove_dir_all(&work);
    result.and(report)
}

fn smoke_rows(rocmforge: &Path, work: &Path) -> Result<()> {
    let mut failed = Vec::new();
    for m in rows::MODELS.iter().filter(|m| m.shape == "qwen2.5-0.5b") {
        let shape = synth::Shape::by_name(m.shape).context("unknown shape")?;
        let model = work.join(format!("{}.gguf", m.tag));
        let stats = synth::synthesize(&shape, m.ftype, 42, &model)?;
        std::fs::write(
            work.join(format!("{}.synth_s", m.tag)),
            format!("{:.1}", stats.seconds),
        )?;
        let file = |ext: &str| work.join(format!("{}-base.{ext}", m.tag));
        let out = Command::new(rocmforge)
            .args(["bench", "--model"])
            .arg(&model)
            .args([
                "-p", "64", "-n", "16", "-r", "1", "--device", "cpu", "--json",
            ])
            .output()
            .with_context(|| format!("could not start {}", rocmforge.display()))?;
        std::fs::write(file("json"), &out.stdout)?;
        let code = out.status.code().unwrap_or(-1);
        std::fs::write(file("status"), code.to_string())?;
        if !out.status.success() {
            eprintln!("{}", String::from_utf8_lossy(&out.stderr));
            failed.push(m.tag);
        }
        std::fs::remove_file(&model).with_context(|| format!("removing {}", model.display()))?;
    }
    if !failed.is_empty() {
        bail!(
            "rocmforge bench failed on the CPU for {}",
            failed.join(", ")
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests;
