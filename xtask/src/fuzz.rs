//! `cargo xtask fuzz`: bounded, coverage-guided libFuzzer runs of the fuzz targets in `fuzz/`
//! (the GGUF parser, the tensor index behind the loader, tokenizer construction + encode/decode).
//!
//! Builds `fuzz/` (a cargo-fuzz project) with the stable toolchain and the same SanitizerCoverage
//! instrumentation cargo-fuzz passes (no AddressSanitizer: the code under test has no `unsafe` on
//! these paths, so what a run looks for is a panic, an arithmetic overflow (debug assertions and
//! overflow checks are on), a hang or a runaway allocation). No nightly toolchain and no `cargo
//! install cargo-fuzz` are needed, so CI can afford it.
//!
//! - `--target T` (repeatable; default: every target), `--seconds N` per target, `--jobs N`
//!   (libFuzzer `-fork=N`: N worker processes sharing one corpus).
//! - Each run ends with a line `xtask: fuzz T: E executions in S s, cov C ft F, no crash`.
//! - `--bundle DIR` instead builds the instrumented binaries and writes them with the seeds and a
//!   `run.sh` into DIR, for a long campaign on a machine without Rust (see [`bundle`]).
//!
//! New inputs go to `fuzz/corpus-run/<target>/` (git-ignored); the committed seeds in
//! `fuzz/corpus/<target>/` are only read. A crash leaves its input in `fuzz/artifacts/<target>/`.

mod bundle;
mod stats;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{paths, process};

pub use stats::FuzzStats;

/// Every fuzz target (a binary of fuzz/Cargo.toml).
pub const TARGETS: &[&str] = &["gguf_parse", "tensor_index", "tokenizer"];

/// CI's budget: seconds of fuzzing per target (90 s in all).
const CI_SECONDS: &[(&str, u32)] = &[("gguf_parse", 40), ("tensor_index", 25), ("tokenizer", 25)];

/// A libFuzzer input that runs longer than this is reported as a hang (a crash).
const INPUT_TIMEOUT_S: u32 = 20;

#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// Wall-clock seconds of fuzzing per target (after the build).
    #[arg(long, default_value_t = 60)]
    pub seconds: u32,
    /// A fuzz target (repeatable); default: every target.
    #[arg(long = "target")]
    pub targets: Vec<String>,
    /// Parallel fuzzing processes per target (libFuzzer -fork=N); 1 runs in-process.
    #[arg(long, default_value_t = 1)]
    pub jobs: u32,
    /// Build the instrumented binaries, seeds and a run script into this folder instead of
    /// fuzzing here.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
}

const SANCOV_FLAGS: &[&str] = &[
    "-Cpasses=sancov-module",
    "-Cllvm-args=-sanitizer-coverage-level=4",
    "-Cllvm-args=-sanitizer-coverage-inline-8bit-counters",
    "-Cllvm-args=-sanitizer-coverage-pc-table",
    "-Cllvm-args=-sanitizer-coverage-trace-compares",
    "--cfg=fuzzing",
    "-Cdebug-assertions",
    "-Coverflow-checks",
];

fn fuzz_dir() -> PathBuf {
    paths::repo_root().join("fuzz")
}

fn check_targets(targets: &[String]) -> Result<Vec<String>> {
    if targets.is_empty() {
        return Ok(TARGETS.iter().map(|t| t.to_string()).collect());
    }
    for t in targets {
        if !TARGETS.contains(&t.as_str()) {
            bail!(
                "unknown fuzz target '{t}'; the targets are {}",
                TARGETS.join(", ")
            );
        }
    }
    Ok(targets.to_vec())
}

/// Builds `targets` with coverage instrumentation; returns the folder holding the binaries.
fn build(targets: &[String]) -> Result<PathBuf> {
    let dir = fuzz_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    // An explicit --target keeps RUSTFLAGS off build scripts (as cargo-fuzz does).
    let host = host_triple()?;
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&dir)
        .args([
            "build",
            "--release",
            "-p",
            "rocmforge-fuzz",
            "--target",
            &host,
        ])
        .env("RUSTFLAGS", SANCOV_FLAGS.join(" "))
        .env("CARGO_TARGET_DIR", dir.join("target"))
        // The fuzzers never touch a GPU: no kernel compile in this separate target folder.
        .env("ROCMFORGE_NO_EMBED_KERNELS", "1");
    for t in targets {
        cmd.args(["--bin", t]);
    }
    process::run(&mut cmd)
        .context("building the fuzz targets (libfuzzer-sys needs a C++ compiler)")?;
    Ok(dir.join("target").join(&host).join("release"))
}

/// Builds and runs each target for `args.seconds` (or writes the bundle); a crash is an
/// error. Returns the statistics of each run.
pub fn run(args: &FuzzArgs) -> Result<Vec<FuzzStats>> {
    let targets = check_targets(&args.targets)?;
    let bin_dir = build(&targets)?;
    if let Some(dest) = &args.bundle {
        bundle::write(&bin_dir, &targets, &fuzz_dir().join("corpus"), dest)?;
        return Ok(Vec::new());
    }
    let mut all = Vec::new();
    for t in &targets {
        all.push(run_target(&bin_dir, t, args.seconds, args.jobs)?);
    }
    Ok(all)
}

/// CI's bounded run: every target for its share of 90 seconds, one process each.
pub fn run_ci() -> Result<()> {
    let targets: Vec<String> = CI_SECONDS.iter().map(|(t, _)| t.to_string()).collect();
    let bin_dir = build(&targets)?;
    for (t, secs) in CI_SECONDS {
        run_target(&bin_dir, t, *secs, 1)?;
    }
    Ok(())
}

fn run_target(bin_dir: &Path, target: &str, secs: u32, jobs: u32) -> Result<FuzzStats> {
    let dir = fuzz_dir();
    let work = dir.join("corpus-run").join(target);
    let seeds = dir.join("corpus").join(target);
    let artifacts = dir.join("artifacts").join(target);
    for d in [&work, &artifacts] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let binary = bin_dir.join(target);
    eprintln!("xtask: fuzzing {target} for {secs} s with {jobs} process(es)");
    let mut cmd = Command::new(&binary);
    cmd.arg(format!("-max_total_time={secs}"))
        .arg(format!("-timeout={INPUT_TIMEOUT_S}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()));
    if jobs > 1 {
        cmd.arg(format!("-fork={jobs}"));
    }
    let output = cmd
        .arg(&work)
        .arg(&seeds)
        .output()
        .with_context(|| format!("starting {}", binary.display()))?;
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "fuzz target {target} found a crash (input saved under {}):\n{}",
            artifacts.display(),
            tail.join("\n")
        );
    }
    let stats = FuzzStats::from_log(target, secs, &log);
    eprintln!("xtask: {stats}");
    Ok(stats)
}

/// The host's target triple, from `rustc -vV`.
fn host_triple() -> Result<String> {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let out = Command::new(&rustc)
        .arg("-vV")
        .output()
        .with_context(|| format!("running {rustc} -vV"))?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .map(|h| h.trim().to_string())
        .context("rustc -vV printed no host triple")
}
