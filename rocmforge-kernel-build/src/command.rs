//! The exact command line of each kernel compile. `rocmforge-hip`'s build script and
//! `cargo xtask kernels` both build their commands here and nowhere else.

use std::path::Path;
use std::process::Command;

use crate::compiler::Compiler;

/// An AMD code object for `arch` (hipcc or clang; no HIP headers or device libraries needed):
///
/// `clang-19 -x hip --offload-arch=<gfx> --cuda-device-only --no-gpu-bundle-output -nogpuinc
/// -nogpulib -O3 -std=c++17 -I <include> -o <out>.co <src>`
pub fn amd_code_object(
    compiler: &Compiler,
    arch: &str,
    include: &Path,
    src: &Path,
    out: &Path,
) -> Command {
    let mut command = Command::new(&compiler.program);
    command
        .args([
            "-x",
            "hip",
            &format!("--offload-arch={arch}"),
            "--cuda-device-only",
        ])
        .args([
            "--no-gpu-bundle-output",
            "-nogpuinc",
            "-nogpulib",
            "-O3",
            "-std=c++17",
        ])
        .arg("-I")
        .arg(include)
        .arg("-o")
        .arg(out)
        .arg(src);
    command
}

/// NVIDIA PTX (ISA 7.5) for `arch` with clang, without the CUDA toolkit:
///
/// `clang-19 -x cuda --cuda-gpu-arch=<sm> --cuda-device-only -nocudainc -nocudalib
/// -Xclang -target-feature -Xclang +ptx75 -O3 -std=c++17 -S -I <include> -o <out>.ptx <src>`
pub fn nvidia_ptx_clang(
    clang: &Compiler,
    arch: &str,
    include: &Path,
    src: &Path,
    out: &Path,
) -> Command {
    let mut command = Command::new(&clang.program);
    command
        .args([
            "-x",
            "cuda",
            &format!("--cuda-gpu-arch={arch}"),
            "--cuda-device-only",
        ])
        .args([
            "-nocudainc",
            "-nocudalib",
            "-Xclang",
            "-target-feature",
            "-Xclang",
            "+ptx75",
        ])
        .args(["-O3", "-std=c++17", "-S", "-I"])
        .arg(include)
        .arg("-o")
        .arg(out)
        .arg(src);
    command
}

/// What nvcc writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NvccOutput {
    /// Machine code for exactly `arch` (`-cubin -arch=sm_XY`).
    Cubin,
    /// PTX for `arch` and newer (`-ptx -arch=compute_XY`).
    Ptx,
}

/// nvcc: `nvcc -cubin -arch=sm_XY` or `nvcc -ptx -arch=compute_XY`, then
/// `-O3 -std=c++17 -x cu -I <include> -o <out> <src>`.
pub fn nvidia_nvcc(
    nvcc: &Compiler,
    output: NvccOutput,
    arch: &str,
    include: &Path,
    src: &Path,
    out: &Path,
) -> Command {
    let number = arch.trim_start_matches("sm_");
    let (kind, flag) = match output {
        NvccOutput::Cubin => ("-cubin", format!("-arch={arch}")),
        NvccOutput::Ptx => ("-ptx", format!("-arch=compute_{number}")),
    };
    let mut command = Command::new(&nvcc.program);
    command
        .args([kind.to_string(), flag])
        .args(["-O3", "-std=c++17", "-x", "cu", "-I"])
        .arg(include)
        .arg("-o")
        .arg(out)
        .arg(src);
    command
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compiler::CompilerKind;

    fn clang() -> Compiler {
        Compiler {
            program: "clang-19".into(),
            kind: CompilerKind::Clang,
            version: String::new(),
        }
    }

    fn words(c: &Command) -> Vec<String> {
        c.get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn amd_command_is_the_documented_one() {
        let c = amd_code_object(
            &clang(),
            "gfx942",
            Path::new("inc"),
            Path::new("k.hip"),
            Path::new("k.co"),
        );
        assert_eq!(
            words(&c).join(" "),
            "-x hip --offload-arch=gfx942 --cuda-device-only --no-gpu-bundle-output -nogpuinc \
             -nogpulib -O3 -std=c++17 -I inc -o k.co k.hip"
        );
    }

    #[test]
    fn ptx_command_pins_the_ptx_isa() {
        let c = nvidia_ptx_clang(
            &clang(),
            "sm_80",
            Path::new("inc"),
            Path::new("k.hip"),
            Path::new("k.ptx"),
        );
        let w = words(&c).join(" ");
        assert!(w.contains("--cuda-gpu-arch=sm_80"), "{w}");
        assert!(w.contains("-Xclang -target-feature -Xclang +ptx75"), "{w}");
        assert!(w.ends_with("-S -I inc -o k.ptx k.hip"), "{w}");
    }
}
