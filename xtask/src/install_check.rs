//! Issue 17's checks in `cargo xtask test`: kernels travel with the crates.
//!
//! 1. `cargo install --path rocmforge-cli --root <tmp> --locked --profile test`: the install path
//!    users take (the `test` profile, not `release`, so that it reuses the suite's build: same
//!    build script, same embedded kernels, a fraction of the time on CI's 2 cores).
//! 2. The installed `rocmforge generate --device cpu` run from another folder, with no
//!    `ROCMFORGE_KERNEL_DIR`: it must work without the repository.
//! 3. The installed `rocmforge devices` must list every default embedded target.
//! 4. `examples/downstream` (a crate using rocmforge-gguf + rocmforge-tensor by path) run on the
//!    test model and on a made-up matrix.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use rocmforge_kernel_build::{DEFAULT_AMD_TARGETS, EMBEDDED_NVIDIA_TARGETS};

use crate::{paths, process, test::cargo};

/// The test model's file name under `models/`.
pub const TEST_MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

/// Runs `cmd`, returns its stdout; a failure shows stderr.
fn output(cmd: &mut Command) -> Result<String> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let out = cmd
        .output()
        .with_context(|| format!("could not start {shown}"))?;
    if !out.status.success() {
        bail!(
            "{shown} failed with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Every check above; `model` is the test model (absolute path).
pub fn run(model: &Path) -> Result<()> {
    let start = Instant::now();
    let root = paths::repo_root();
    let scratch = root.join("target").join("install-check");
    let _ = std::fs::remove_dir_all(&scratch);
    let elsewhere = scratch.join("elsewhere");
    std::fs::create_dir_all(&elsewhere)
        .with_context(|| format!("creating {}", elsewhere.display()))?;
    process::run(
        cargo()
            .args([
                "install",
                "--quiet",
                "--locked",
                "--profile",
                "test",
                "--path",
            ])
            .arg(root.join("rocmforge-cli"))
            .arg("--root")
            .arg(&scratch),
    )?;
    let bin = scratch.join("bin").join("rocmforge");
    let installed = |args: &[&str]| {
        let mut cmd = Command::new(&bin);
        cmd.args(args)
            .current_dir(&elsewhere)
            .env_remove("ROCMFORGE_KERNEL_DIR");
        cmd
    };
    let model_arg = model.to_string_lossy();
    let text = output(&mut installed(&[
        "generate",
        "--device",
        "cpu",
        "--model",
        &model_arg,
        "--prompt",
        "The capital of France is",
        "--max-tokens",
        "8",
    ]))?;
    if text.trim().is_empty() {
        bail!("the installed rocmforge generate printed nothing");
    }
    eprintln!(
        "xtask: installed rocmforge generate (from {}): {}",
        elsewhere.display(),
        text.trim()
    );
    let devices = output(&mut installed(&["devices"]))?;
    let first = devices.lines().next().unwrap_or_default();
    for target in DEFAULT_AMD_TARGETS.iter().chain(EMBEDDED_NVIDIA_TARGETS) {
        if !first.contains(target) {
            bail!(
                "the installed rocmforge devices does not list the embedded target {target}:\n{devices}"
            );
        }
    }
    eprintln!("xtask: installed rocmforge devices: {first}");
    for args in [vec![model_arg.to_string()], Vec::new()] {
        let out = output(
            cargo()
                .args([
                    "run",
                    "--quiet",
                    "--profile",
                    "test",
                    "-p",
                    "rocmforge-downstream-example",
                    "--",
                ])
                .args(&args),
        )?;
        if !out.contains("downstream: ok") {
            bail!("the downstream example did not finish with `downstream: ok`:\n{out}");
        }
    }
    eprintln!(
        "xtask: install and downstream checks passed in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}
