//! Where things live in the repository.

use std::path::{Path, PathBuf};

/// The repository root (the parent of xtask/).
pub fn repo_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// `models/` in the repository root (git-ignored).
pub fn models_dir() -> PathBuf {
    repo_root().join("models")
}
