//! `cargo xtask fuzz [--seconds N]`: a bounded, coverage-guided libFuzzer run of the GGUF parser.
//!
//! Builds `fuzz/` (a cargo-fuzz project) with the stable toolchain and the same SanitizerCoverage
//! instrumentation cargo-fuzz passes (no AddressSanitizer: the parser has no `unsafe`, so what a
//! run looks for is a panic or an arithmetic overflow, both caught with debug assertions and overflow
//! checks on). No nightly toolchain and no `cargo install cargo-fuzz` are needed, so CI can afford it.
//! New inputs go to `fuzz/corpus-run/` (git-ignored); the committed seeds are only read.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::Args;

use crate::{paths, process};

#[derive(Args, Debug)]
pub struct FuzzArgs {
    /// Wall-clock seconds of fuzzing (after the build).
    #[arg(long, default_value_t = 60)]
    pub seconds: u32,
    /// The fuzz target (a binary of fuzz/Cargo.toml).
    #[arg(long, default_value = "gguf_parse")]
    pub target: String,
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

/// Builds and runs the target for `args.seconds`; a crash is an error. Returns the execution count.
pub fn run(args: &FuzzArgs) -> Result<u64> {
    let fuzz_dir = paths::repo_root().join("fuzz");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    // An explicit --target keeps RUSTFLAGS off build scripts (as cargo-fuzz does).
    let host = host_triple()?;
    process::run(
        Command::new(cargo)
            .current_dir(&fuzz_dir)
            .args([
                "build",
                "--release",
                "--bin",
                &args.target,
                "--target",
                &host,
            ])
            .env("RUSTFLAGS", SANCOV_FLAGS.join(" "))
            .env("CARGO_TARGET_DIR", fuzz_dir.join("target")),
    )
    .context("building the fuzz target (libfuzzer-sys needs a C++ compiler)")?;
    let binary = fuzz_dir
        .join("target")
        .join(&host)
        .join("release")
        .join(&args.target);
    let work_corpus = fuzz_dir.join("corpus-run");
    std::fs::create_dir_all(&work_corpus)
        .with_context(|| format!("creating {}", work_corpus.display()))?;
    let seeds = fuzz_dir.join("corpus").join(&args.target);
    let artifacts = fuzz_dir.join("artifacts").join(&args.target);
    std::fs::create_dir_all(&artifacts)?;
    run_fuzzer(&binary, &work_corpus, &seeds, &artifacts, args.seconds)
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

fn run_fuzzer(
    binary: &Path,
    work: &Path,
    seeds: &Path,
    artifacts: &Path,
    secs: u32,
) -> Result<u64> {
    eprintln!("xtask: fuzzing {} for {secs} s", binary.display());
    let output = Command::new(binary)
        .arg(format!("-max_total_time={secs}"))
        .arg("-print_final_stats=1")
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .arg(work)
        .arg(seeds)
        .output()
        .with_context(|| format!("starting {}", binary.display()))?;
    let log = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        bail!(
            "the fuzzer found a crash (input saved under {}):\n{}",
            artifacts.display(),
            tail.join("\n")
        );
    }
    let runs = log
        .lines()
        .find_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let coverage = log
        .lines()
        .rev()
        .find(|l| l.contains(" cov: "))
        .unwrap_or("")
        .to_string();
    eprintln!("xtask: fuzz: {runs} executions in {secs} s, no crash; last status: {coverage}");
    Ok(runs)
}
