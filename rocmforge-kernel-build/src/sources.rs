//! The kernel sources and a hash of everything a compile reads.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};

use crate::error::{KernelBuildError, KernelBuildResult};

fn io_error(path: &Path, e: std::io::Error) -> KernelBuildError {
    KernelBuildError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Files of `dir` ending in `.ext`, sorted.
fn files_with(dir: &Path, ext: &str) -> KernelBuildResult<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| io_error(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    files.sort();
    Ok(files)
}

/// The kernel sources `<dir>/*.hip`, sorted; none is an error.
pub fn kernel_sources(dir: &Path) -> KernelBuildResult<Vec<PathBuf>> {
    let sources = files_with(dir, "hip")?;
    if sources.is_empty() {
        return Err(KernelBuildError::NoSources(dir.display().to_string()));
    }
    Ok(sources)
}

/// The family name of a source: its file stem (`norm` for `kernels/norm.hip`).
pub fn family(source: &Path) -> KernelBuildResult<String> {
    source
        .file_stem()
        .and_then(|s| s.to_str())
        .map(str::to_string)
        .ok_or_else(|| KernelBuildError::BadName(source.display().to_string()))
}

/// Every file of the header folder `include`, sorted (what a kernel may `#include`).
pub fn header_files(include: &Path) -> KernelBuildResult<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(include)
        .map_err(|e| io_error(include, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// A hash of the headers in `include` (every file, by name and content): a header change
/// invalidates every cached image.
pub fn headers_hash(include: &Path) -> KernelBuildResult<u64> {
    let mut hasher = DefaultHasher::new();
    for f in header_files(include)? {
        f.file_name().hash(&mut hasher);
        std::fs::read(&f)
            .map_err(|e| io_error(&f, e))?
            .hash(&mut hasher);
    }
    Ok(hasher.finish())
}

/// A cache key for one compile: the source's content, the headers' hash and every word that
/// changes the output (compiler version, target, flags).
pub fn compile_key(source: &Path, headers: u64, words: &[&str]) -> KernelBuildResult<String> {
    let mut hasher = DefaultHasher::new();
    std::fs::read(source)
        .map_err(|e| io_error(source, e))?
        .hash(&mut hasher);
    headers.hash(&mut hasher);
    words.hash(&mut hasher);
    Ok(format!("{:016x}", hasher.finish()))
}
