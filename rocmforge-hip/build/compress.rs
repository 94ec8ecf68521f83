//! Compressing the embedded images (zlib through miniz_oxide, pure Rust): AMD code objects shrink
//! to about a quarter, PTX text to a tenth, which keeps the binary small with eight AMD targets.

use std::path::{Path, PathBuf};

use crate::compile::Image;

/// The zlib level: 6 (the default) is within a few percent of 9 and much faster.
const LEVEL: u8 = 6;

/// `<image>.z` beside the cached image, made once: (compressed file, uncompressed size).
pub fn compressed(image: &Image) -> std::io::Result<(PathBuf, u64)> {
    let raw = std::fs::read(&image.path)?;
    let mut name = image.path.clone().into_os_string();
    name.push(".z");
    let target = PathBuf::from(name);
    if !target.is_file() {
        let packed = miniz_oxide::deflate::compress_to_vec_zlib(&raw, LEVEL);
        write_atomically(&target, &packed)?;
    }
    Ok((target, raw.len() as u64))
}

fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}", std::process::id()));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
