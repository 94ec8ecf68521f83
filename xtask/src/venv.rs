//! The Python virtual environment (`.venv/`) holding the test oracles (`gguf`, `openai`, `jsonschema`, `jinja2`).

use std::path::PathBuf;
use std::process::Command;

use anyhow::{Context, Result};

use crate::{paths, process};

/// Pinned Python packages the tests use as independent oracles.
const PACKAGES: &[&str] = &[
    "gguf==0.19.0",
    "openai==3.57.0",
    "jsonschema==4.26.0",
    "jinja2==3.1.6",
];

/// Path of the venv's interpreter.
pub fn python() -> PathBuf {
    paths::repo_root().join(".venv").join("bin").join("python")
}

/// Creates `.venv` (if missing) and installs the oracle packages (if missing). Returns the interpreter.
pub fn ensure() -> Result<PathBuf> {
    let py = python();
    if !py.exists() {
        let venv_dir = paths::repo_root().join(".venv");
        process::run(Command::new("python3").arg("-m").arg("venv").arg(&venv_dir))
            .context("creating the Python venv needs python3 with the venv module (Debian: apt-get install python3-venv)")?;
    }
    let have_all = Command::new(&py)
        .args(["-c", "import gguf, numpy, openai, jsonschema, jinja2"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have_all {
        process::run(
            Command::new(&py)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args(PACKAGES),
        )
        .context("installing the test oracles from PyPI (is the registry reachable?)")?;
    }
    Ok(py)
}
