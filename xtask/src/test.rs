//! `cargo xtask test`: the CPU suite run by CI (and by anyone, with one command).

use std::process::Command;

use anyhow::Result;
use clap::Args;

use crate::kernels::{self, KernelArgs, PlatformChoice};
use crate::{fuzz, models, paths, process, venv};

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Run the GPU suite instead (bundles it, then runs gpu-bundle/run.sh here; fails without a GPU).
    #[arg(long)]
    pub gpu: bool,
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    cmd.current_dir(paths::repo_root());
    cmd
}

/// The CPU suite: oracles and model set up, then fmt, clippy, every kernel compiled for every
/// AMD target (and NVIDIA PTX), every test and doctest, and a 60-second fuzz run of the parser.
pub fn run(args: &TestArgs) -> Result<()> {
    if args.gpu {
        return crate::gpu_bundle::run_gpu_suite();
    }
    let python = venv::ensure()?;
    models::fetch_all()?;
    process::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    process::run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
    // An AMD (or NVIDIA) compile break fails the suite.
    kernels::build_kernels(&KernelArgs::defaults(PlatformChoice::All, None))?;
    process::run(
        cargo()
            .args(["test", "--workspace", "--no-fail-fast"])
            .env("ROCMFORGE_PYTHON", &python),
    )?;
    // `rocmforge serve` driven by the real `openai` Python client (CPU backend, test model).
    process::run(cargo().args([
        "build",
        "--profile",
        "test",
        "-p",
        "rocmforge-cli",
        "--bin",
        "rocmforge",
    ]))?;
    let root = paths::repo_root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |d| root.join(d));
    process::run(
        Command::new(&python)
            .arg(root.join("tests/openai_client/test_openai_client.py"))
            .arg("--bin")
            .arg(target.join("debug").join("rocmforge"))
            .arg("--model")
            .arg(root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf")),
    )?;
    // Bounded coverage-guided runs of every fuzz target (90 s in all): any crash fails the suite.
    fuzz::run_ci()?;
    eprintln!("xtask: CPU suite passed");
    Ok(())
}
