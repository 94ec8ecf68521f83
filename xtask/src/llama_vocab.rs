//! llama.cpp's vocabulary test files (`models/ggml-vocab-*.gguf` with `.inp`/`.out`), taken from the
//! `llama-cpp-python==0.3.36` source distribution on PyPI (sha256-pinned) into `models/ggml-vocab/`
//! for `rocmforge-model/tests/tokenizer_llama_cpp_vocab_files.rs`. The sdist (74 MB) is kept in
//! `models/` and the extraction is stamped with its hash, so repeated runs download nothing.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::models::sha256_of;
use crate::{paths, process, venv};

const PACKAGE: &str = "llama-cpp-python==0.3.36";
const SDIST: &str = "llama_cpp_python-0.3.36.tar.gz";
const SDIST_SHA256: &str = "832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e";
/// Written into the folder once the extraction is complete.
const STAMP: &str = ".sdist-sha256";

/// The folder the vocabulary files are extracted to.
pub fn dir() -> PathBuf {
    paths::models_dir().join("ggml-vocab")
}

/// Makes sure `models/ggml-vocab/` holds the sdist's vocabulary files. Returns the folder.
pub fn fetch() -> Result<PathBuf> {
    let dir = dir();
    if fs::read_to_string(dir.join(STAMP)).is_ok_and(|s| s.trim() == SDIST_SHA256) {
        eprintln!(
            "xtask: {} present (llama.cpp vocabulary files)",
            dir.display()
        );
        return Ok(dir);
    }
    let sdist = sdist()?;
    if dir.exists() {
        fs::remove_dir_all(&dir).with_context(|| format!("clearing {}", dir.display()))?;
    }
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    // Only the vocabulary files, flattened into the folder (names checked by Python's tarfile).
    let script = "import os, sys, tarfile\n\
                  n = 0\n\
                  with tarfile.open(sys.argv[1]) as t:\n    \
                  for m in t.getmembers():\n        \
                  base = os.path.basename(m.name)\n        \
                  if m.isfile() and '/vendor/llama.cpp/models/' in m.name and base.startswith('ggml-vocab-'):\n            \
                  with t.extractfile(m) as src, open(os.path.join(sys.argv[2], base), 'wb') as dst:\n                \
                  dst.write(src.read())\n            \
                  n += 1\n\
                  print(n, 'vocabulary files')\n";
    let py = venv::ensure()?;
    process::run(
        Command::new(&py)
            .arg("-c")
            .arg(script)
            .arg(&sdist)
            .arg(&dir),
    )
    .with_context(|| format!("extracting the vocabulary files of {}", sdist.display()))?;
    fs::write(dir.join(STAMP), SDIST_SHA256)?;
    eprintln!(
        "xtask: extracted llama.cpp's vocabulary files into {}",
        dir.display()
    );
    Ok(dir)
}

/// The sdist in `models/`, downloaded with pip when missing or damaged.
fn sdist() -> Result<PathBuf> {
    let dest = paths::models_dir().join(SDIST);
    if dest.exists() && sha256_of(&dest)? == SDIST_SHA256 {
        return Ok(dest);
    }
    let download = paths::repo_root()
        .join("target")
        .join("llama-sdist-download");
    if download.exists() {
        fs::remove_dir_all(&download)?;
    }
    fs::create_dir_all(&download)?;
    let py = venv::ensure()?;
    // `--no-binary` for this package only: its build backend's own dependencies may come as wheels
    // (with `:all:` pip would build them from source just to read the sdist's metadata).
    process::run(
        Command::new(&py)
            .args(["-m", "pip", "download", "--no-deps", "--quiet"])
            .args([
                "--disable-pip-version-check",
                "--no-binary",
                "llama-cpp-python",
            ])
            .arg("-d")
            .arg(&download)
            .arg(PACKAGE),
    )
    .with_context(|| format!("downloading the {PACKAGE} sdist with pip (is PyPI reachable?)"))?;
    let got_path = download.join(SDIST);
    check(&got_path)?;
    fs::create_dir_all(paths::models_dir())?;
    fs::rename(&got_path, &dest)
        .with_context(|| format!("moving the sdist to {}", dest.display()))?;
    let _ = fs::remove_dir_all(&download);
    Ok(dest)
}

fn check(path: &Path) -> Result<()> {
    if !path.exists() {
        bail!("pip download left no {SDIST} in {}", path.display());
    }
    let got = sha256_of(path)?;
    if got != SDIST_SHA256 {
        bail!(
            "{} has sha256 {got}, expected {SDIST_SHA256}",
            path.display()
        );
    }
    Ok(())
}
