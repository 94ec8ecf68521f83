//! `cargo xtask test`: the CPU suite run by CI (and by anyone, with one command).

use std::process::Command;

use anyhow::Result;
use clap::Args;

use crate::{fuzz, install_check, models, paths, process, venv};

#[derive(Args, Debug)]
pub struct TestArgs {
    /// Run the GPU suite instead (bundles it, then runs gpu-bundle/run.sh here; fails without a GPU).
    #[arg(long)]
    pub gpu: bool,
}

/// `cargo` in the repository root. Every build embeds the kernels (rocmforge-hip's build script)
/// and must embed all of them: an AMD or NVIDIA compile break, or a missing compiler, fails the
/// suite instead of leaving a warning. The runtime compile's tests (`rocmforge-hip/tests/hiprtc.rs`)
/// must run too: without hiprtc (Debian's libamdhip64-5) they fail instead of saying "not run".
pub(crate) fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()));
    cmd.current_dir(paths::repo_root())
        .env("ROCMFORGE_REQUIRE_EMBEDDED_KERNELS", "1")
        .env("ROCMFORGE_REQUIRE_HIPRTC", "1")
        .env_remove("ROCMFORGE_NO_EMBED_KERNELS")
        .env_remove("ROCMFORGE_AMDGPU_TARGETS");
    cmd
}

/// The CPU suite: oracles and model set up, then fmt, clippy (whose build compiles and embeds
/// every kernel for every default AMD target and NVIDIA PTX), every test and doctest, the
/// `openai` client against `rocmforge serve`, `cargo install` + the installed binary run from
/// elsewhere, the downstream example crate, and a bounded fuzz run.
pub fn run(args: &TestArgs) -> Result<()> {
    if args.gpu {
        return crate::gpu_bundle::run_gpu_suite();
    }
    let python = venv::ensure()?;
    models::fetch_test_data()?;
    process::run(cargo().args(["fmt", "--all", "--", "--check"]))?;
    process::run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))?;
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
            .arg(root.join("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
            .arg("--harmony-model")
            .arg(crate::synth::tiny_dir().join(crate::synth::harmony::FILE)),
    )?;
    // Issue 17: an installed binary carries its kernels and runs from anywhere; a downstream
    // crate uses the library by path.
    install_check::run(&paths::models_dir().join(install_check::TEST_MODEL))?;
    // Bounded coverage-guided runs of every fuzz target (90 s in all): any crash fails the suite.
    fuzz::run_ci()?;
    eprintln!("xtask: CPU suite passed");
    Ok(())
}
