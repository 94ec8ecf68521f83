//! Finding a kernel compiler on this machine.

use std::path::Path;
use std::process::Command;

/// Which program a [`Compiler`] is; they take different flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompilerKind {
    /// ROCm's `hipcc` (clang underneath; takes clang's flags).
    Hipcc,
    /// A clang with the AMDGPU and/or NVPTX back ends (Debian's `clang-19`).
    Clang,
    /// NVIDIA's `nvcc`.
    Nvcc,
}

/// A compiler that answered `--version`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compiler {
    /// The program as it is run (a name on `PATH` or a path).
    pub program: String,
    /// What it is.
    pub kind: CompilerKind,
    /// Its `--version` output (part of cache keys: another compiler, another image).
    pub version: String,
}

/// AMD compilers tried, in order, when `HIPCC` is not set.
pub const AMD_COMPILERS: &[&str] = &["hipcc", "clang-19", "clang"];
/// clang names tried for NVIDIA PTX when nvcc is absent.
pub const CLANG_COMPILERS: &[&str] = &["clang-19", "clang"];
/// nvcc locations tried when `NVCC` is not set.
pub const NVCC_COMPILERS: &[&str] = &["nvcc", "/usr/local/cuda/bin/nvcc"];

/// What to install when no compiler is found (Debian / Ubuntu package names).
pub const INSTALL_HINT: &str = "install clang-19 and lld-19 (Debian/Ubuntu: apt-get install clang-19 lld-19), \
     or ROCm's hipcc, or the CUDA toolkit's nvcc";

fn kind_of(program: &str) -> CompilerKind {
    let name = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program);
    if name.starts_with("hipcc") {
        CompilerKind::Hipcc
    } else if name.starts_with("nvcc") {
        CompilerKind::Nvcc
    } else {
        CompilerKind::Clang
    }
}

impl Compiler {
    /// `program` if it runs and answers `--version`.
    pub fn probe(program: &str) -> Option<Compiler> {
        let out = Command::new(program).arg("--version").output().ok()?;
        if !out.status.success() {
            return None;
        }
        Some(Compiler {
            program: program.to_string(),
            kind: kind_of(program),
            version: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        })
    }

    /// The first of `candidates` that runs.
    pub fn first_of(candidates: &[&str]) -> Option<Compiler> {
        candidates.iter().find_map(|c| Compiler::probe(c))
    }

    /// The AMD compiler: `$HIPCC` when set, else the first of [`AMD_COMPILERS`].
    pub fn find_amd() -> Option<Compiler> {
        match std::env::var("HIPCC") {
            Ok(p) if !p.is_empty() => Compiler::probe(&p),
            _ => Compiler::first_of(AMD_COMPILERS),
        }
    }

    /// nvcc: `$NVCC` when set, else the first of [`NVCC_COMPILERS`].
    pub fn find_nvcc() -> Option<Compiler> {
        match std::env::var("NVCC") {
            Ok(p) if !p.is_empty() => Compiler::probe(&p),
            _ => Compiler::first_of(NVCC_COMPILERS),
        }
    }

    /// clang for NVIDIA PTX: the first of [`CLANG_COMPILERS`].
    pub fn find_clang() -> Option<Compiler> {
        Compiler::first_of(CLANG_COMPILERS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_follow_the_program_name() {
        assert_eq!(kind_of("/opt/rocm/bin/hipcc"), CompilerKind::Hipcc);
        assert_eq!(kind_of("clang-19"), CompilerKind::Clang);
        assert_eq!(kind_of("/usr/local/cuda/bin/nvcc"), CompilerKind::Nvcc);
    }

    #[test]
    fn a_missing_program_is_none() {
        assert!(Compiler::probe("rocmforge-no-such-compiler").is_none());
    }
}
