//! Running child processes with readable errors.

use std::process::Command;

use anyhow::{Context, Result, bail};

/// Runs `cmd`, inheriting stdio; an exit status other than 0 is an error naming the command.
pub fn run(cmd: &mut Command) -> Result<()> {
    let shown = format!("{cmd:?}");
    eprintln!("xtask: running {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed with {status}");
    }
    Ok(())
}
