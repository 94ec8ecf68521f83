//! `cargo xtask gpu-bundle`: the GPU suite packaged for a machine without a Rust toolchain.
//!
//! ```text
//! gpu-bundle/
//!   run.sh            runs everything; last line "N passed, M failed"; exit status 0 only if M = 0
//!   bin/gpu-*         GPU test binaries (test targets named gpu* of crates with a `gpu-tests` feature)
//!   bin/bench_*       benchmark binaries (examples named bench_*), run after the tests
//!   kernels/          images from `cargo xtask kernels` (AMD code objects, NVIDIA PTX)
//!   kernels-src/      kernels/*.hip + include/, so run.sh can build cubins with nvcc on the GPU host
//!   build-cubins.sh   that nvcc step (shared with `cargo xtask bench --gpu`)
//! ```
//!
//! Copy the folder to the GPU machine and run `bash gpu-bundle/run.sh [results-dir]`.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;
use serde_json::Value;

use crate::kernels::{self, KernelArgs};
use crate::paths;

/// The feature that turns on a crate's GPU test binaries.
pub const GPU_TEST_FEATURE: &str = "gpu-tests";

#[derive(Args, Debug, Clone, Default)]
pub struct BundleArgs {
    /// Output folder (default: gpu-bundle/ in the repository root, git-ignored).
    #[arg(long)]
    pub out_dir: Option<PathBuf>,
}

pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    cmd.current_dir(paths::repo_root());
    cmd
}

pub(crate) fn json_output(cmd: &mut Command) -> Result<Vec<Value>> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let out = cmd
        .stderr(Stdio::inherit())
        .output()
        .with_context(|| format!("could not start {shown}"))?;
    if !out.status.success() {
        bail!("{shown} failed with {}", out.status);
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Workspace packages that declare the `gpu-tests` feature.
fn gpu_test_packages() -> Result<Vec<String>> {
    let meta = json_output(cargo().args(["metadata", "--no-deps", "--format-version", "1"]))?;
    let packages = meta
        .first()
        .and_then(|m| m["packages"].as_array())
        .context("cargo metadata: no packages")?;
    Ok(packages
        .iter()
        .filter(|p| p["features"].get(GPU_TEST_FEATURE).is_some())
        .filter_map(|p| p["name"].as_str().map(str::to_string))
        .collect())
}

/// (target name, executable) of every artifact of `kind` whose name starts with `prefix`.
pub(crate) fn executables(messages: &[Value], kind: &str, prefix: &str) -> Vec<(String, PathBuf)> {
    messages
        .iter()
        .filter(|m| m["reason"] == "compiler-artifact")
        .filter(|m| {
            m["target"]["kind"]
                .as_array()
                .is_some_and(|k| k.iter().any(|x| x == kind))
        })
        .filter_map(|m| {
            let name = m["target"]["name"].as_str()?;
            let exe = m["executable"].as_str()?;
            name.starts_with(prefix)
                .then(|| (name.to_string(), PathBuf::from(exe)))
        })
        .collect()
}

pub(crate) fn copy_file(from: &Path, to: &Path) -> Result<()> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    std::fs::copy(from, to)
        .with_context(|| format!("copying {} to {}", from.display(), to.display()))?;
    Ok(())
}

fn copy_kernel_sources(dest: &Path) -> Result<()> {
    let root = paths::repo_root().join("kernels");
    for src in kernels::kernel_sources()? {
        let name = src
            .file_name()
            .context("kernel source without a file name")?;
        copy_file(&src, &dest.join(name))?;
    }
    let include = root.join("include");
    for entry in
        std::fs::read_dir(&include).with_context(|| format!("reading {}", include.display()))?
    {
        let path = entry?.path();
        if path.is_file() {
            let name = path.file_name().context("header without a file name")?;
            copy_file(&path, &dest.join("include").join(name))?;
        }
    }
    Ok(())
}

/// The shell step both bundles run first: cubins for the GPU at hand, built with nvcc there.
pub const BUILD_CUBINS_SH: &str = include_str!("build_cubins.sh");

/// Puts the kernels in `out`: `kernels/` (the targets `args` names), `kernels-src/` and
/// `build-cubins.sh`, which builds cubins for the NVIDIA GPU it runs on.
pub(crate) fn bundle_kernels(out: &Path, args: &KernelArgs) -> Result<()> {
    kernels::build_kernels(args)?;
    bundle_kernel_sources(out)
}

/// Puts `kernels-src/` and `build-cubins.sh` in `out` (no prebuilt images: the NVIDIA host
/// builds cubins with nvcc).
pub(crate) fn bundle_kernel_sources(out: &Path) -> Result<()> {
    copy_kernel_sources(&out.join("kernels-src"))?;
    std::fs::write(out.join("build-cubins.sh"), BUILD_CUBINS_SH)
        .with_context(|| format!("writing {}/build-cubins.sh", out.display()))
}

/// With `ROCMFORGE_BUNDLE_MODEL=1`: rocmforge-model's `gpu_model` suite gets its model,
/// SmolLM2-135M-Instruct Q4_1 cut to its first 8 blocks (47 MiB; the whole file is too large
/// for what travels to the GPU machine), written by the test binary's own `--write-truncated`,
/// with `gpl-3.txt` beside it. Opt-in because it more than doubles the bundle; without it
/// that suite fails on the GPU host (it never skips) and says how to give it the model.
fn bundle_gpu_test_model(root: &Path, out: &Path, bin: &Path) -> Result<()> {
    if std::env::var("ROCMFORGE_BUNDLE_MODEL").as_deref() != Ok("1") {
        return Ok(());
    }
    let exe = bin.join("gpu_model");
    let src = root.join("models").join("SmolLM2-135M-Instruct.Q4_1.gguf");
    if !exe.exists() || !src.exists() {
        bail!(
            "ROCMFORGE_BUNDLE_MODEL=1 needs {} and {} (run `cargo xtask models`)",
            exe.display(),
            src.display()
        );
    }
    let dest = out.join("models");
    std::fs::create_dir_all(&dest).with_context(|| format!("creating {}", dest.display()))?;
    let status = Command::new(&exe)
        .arg("--write-truncated")
        .arg(&src)
        .arg(dest.join("smollm2-gpu-test.gguf"))
        .arg("0,1,2,3,4,5,6,7")
        .status()
        .with_context(|| format!("could not start {}", exe.display()))?;
    if !status.success() {
        bail!("{} --write-truncated failed with {status}", exe.display());
    }
    copy_file(
        &root.join("../shared/testdata/gpl-3.txt"),
        &dest.join("gpl-3.txt"),
    )
}

/// Builds the bundle; returns its folder.
pub fn bundle_gpu_tests(args: &BundleArgs) -> Result<PathBuf> {
    let root = paths::repo_root();
    let out = args
        .out_dir
        .clone()
        .unwrap_or_else(|| root.join("gpu-bundle"));
    if out.exists() {
        if !out.join("run.sh").exists() && std::fs::read_dir(&out)?.next().is_some() {
            bail!(
                "{} exists and is not a GPU bundle (no run.sh): refusing to replace it",
                out.display()
            );
        }
        std::fs::remove_dir_all(&out).with_context(|| format!("removing old {}", out.display()))?;
    }
    let packages = gpu_test_packages()?;
    if packages.is_empty() {
        bail!("no workspace crate declares the `{GPU_TEST_FEATURE}` feature");
    }
    let mut test_cmd = cargo();
    test_cmd.args([
        "test",
        "--release",
        "--no-run",
        "--message-format=json",
        "--test",
        "gpu*",
    ]);
    for p in &packages {
        test_cmd.args(["-p", p, "--features", &format!("{p}/{GPU_TEST_FEATURE}")]);
    }
    let tests = executables(&json_output(&mut test_cmd)?, "test", "gpu");
    if tests.is_empty() {
        bail!(
            "no GPU test binaries (test targets named gpu*) were built in {}",
            packages.join(", ")
        );
    }
    let mut bench_cmd = cargo();
    bench_cmd.args([
        "build",
        "--release",
        "--message-format=json",
        "--example",
        "bench_*",
    ]);
    for p in &packages {
        bench_cmd.args(["-p", p]);
    }
    let benches = executables(&json_output(&mut bench_cmd)?, "example", "bench_");
    let bin = out.join("bin");
    for (name, exe) in &tests {
        copy_file(exe, &bin.join(name))?;
    }
    for (name, exe) in &benches {
        copy_file(exe, &bin.join(name))?;
    }
    bundle_gpu_test_model(&root, &out, &bin)?;
    // Default: every target of every platform with a compiler here; ROCMFORGE_PLATFORM and
    // ROCMFORGE_KERNEL_ARCH narrow it (a self-hosted runner builds for its own GPU).
    bundle_kernels(&out, &KernelArgs::from_env(Some(out.join("kernels"))))?;
    std::fs::write(out.join("run.sh"), RUN_SH)
        .with_context(|| format!("writing {}/run.sh", out.display()))?;
    eprintln!(
        "xtask: GPU bundle ready: {} ({} test binaries, {} benchmarks); run it with `bash {}/run.sh`",
        out.display(),
        tests.len(),
        benches.len(),
        out.display()
    );
    Ok(out)
}

/// `cargo xtask test --gpu`: builds the bundle and runs it here. Fails without a GPU.
pub fn run_gpu_suite() -> Result<()> {
    let out = bundle_gpu_tests(&BundleArgs::default())?;
    let status = Command::new("bash")
        .arg(out.join("run.sh"))
        .arg(out.join("results"))
        .status()
        .context("could not start bash for run.sh")?;
    if !status.success() {
        bail!(
            "GPU suite failed ({status}); logs under {}",
            out.join("results").display()
        );
    }
    Ok(())
}

const RUN_SH: &str = r#"#!/usr/bin/env bash
# Runs the ROCmForge GPU suite bundled by `cargo xtask gpu-bundle`.
# Usage: bash gpu-bundle/run.sh [results-dir]   (default: $OUT if set, else gpu-bundle/results)
# Last line: "N passed, M failed". Exit status 0 only when every test binary ran and M = 0.
set -u
here="$(cd "$(dirname "$0")" && pwd)"
results="${1:-${OUT:-$here/results}}"
mkdir -p "$results"
export ROCMFORGE_KERNEL_DIR="$here/kernels"

# On an NVIDIA host with nvcc, build cubins for this GPU (the bundled PTX is the fallback).
bash "$here/build-cubins.sh" "$results"

# rocmforge-model's gpu_model suite: its model (bundled with ROCMFORGE_BUNDLE_MODEL=1) and a
# 30-block model of SmolLM2's exact shape for its speed check.
if [ -f "$here/models/smollm2-gpu-test.gguf" ] && [ -x "$here/bin/gpu_model" ]; then
  export ROCMFORGE_GPU_TEST_MODEL="$here/models/smollm2-gpu-test.gguf"
  export ROCMFORGE_GPU_SPEED_MODEL="${TMPDIR:-/tmp}/rocmforge-smollm2-30-cycled.gguf"
  "$here/bin/gpu_model" --write-cycled "$ROCMFORGE_GPU_TEST_MODEL" "$ROCMFORGE_GPU_SPEED_MODEL" 30
fi

# rocmforge-model's gpu_golden suite needs the FULL SmolLM2 file (too large to travel with the
# bundle): put it at models/golden.gguf on the GPU host.
if [ -f "$here/models/golden.gguf" ]; then
  export ROCMFORGE_GOLDEN_MODEL="$here/models/golden.gguf"
fi

passed=0; failed=0
for t in "$here"/bin/gpu*; do
  [ -x "$t" ] || continue
  name="$(basename "$t")"
  echo "=== $name"
  timeout "${RF_TEST_TIMEOUT:-400}" "$t" 2>&1 | tee "$results/$name.log"
  status=${PIPESTATUS[0]}
  line="$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$results/$name.log" | tail -n1)"
  if [ -n "$line" ]; then
    p="${line%% passed*}"; f="${line#*passed, }"; f="${f%% failed}"
    passed=$((passed + p)); failed=$((failed + f))
    if [ "$status" -ne 0 ] && [ "$f" -eq 0 ]; then failed=$((failed + 1)); fi
  else
    echo "$name exited with status $status without a summary line"
    failed=$((failed + 1))
  fi
done
for b in "$here"/bin/bench_*; do
  [ -x "$b" ] || continue
  name="$(basename "$b")"
  echo "=== $name"
  timeout "${RF_TEST_TIMEOUT:-400}" "$b" 2>&1 | tee "$results/$name.log"
done
echo "$passed passed, $failed failed" | tee "$results/summary.txt"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
"#;
