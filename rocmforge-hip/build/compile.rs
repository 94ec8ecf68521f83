//! Compiling every kernel family for every embedded target, with a content-addressed cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use rocmforge_kernel_build::command::{self, NvccOutput};
use rocmforge_kernel_build::{
    Compiler, CompilerKind, EMBEDDED_NVIDIA_TARGETS, Job, KernelBuildResult, amd_targets_from_env,
    compiler, default_workers, run_jobs, sources,
};

/// One embedded image: `platform` is `Amd` or `Nvidia` (the variant of `Platform`).
#[derive(Debug)]
pub struct Image {
    pub platform: &'static str,
    pub arch: String,
    pub family: String,
    pub path: PathBuf,
}

/// What the build embeds, and why anything is missing.
#[derive(Debug, Default)]
pub struct Built {
    pub images: Vec<Image>,
    pub families: Vec<String>,
    pub notes: Vec<String>,
}

/// A target with the compiler that builds it.
struct Target {
    platform: &'static str,
    arch: String,
    compiler: Compiler,
    ext: &'static str,
}

/// Smallest kernel through the real header: does this compiler build this target at all?
const PROBE: &str =
    "#include \"rf_platform.h\"\nRF_KERNEL(64) void rf_probe(float* x) { x[0] = 1.0f; }\n";

fn cache_dir(out_dir: &Path) -> PathBuf {
    if let Some(dir) = std::env::var_os("ROCMFORGE_KERNEL_BUILD_CACHE").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    // OUT_DIR is <target dir>/<profile>/build/rocmforge-hip-<hash>/out.
    out_dir.ancestors().nth(4).map_or_else(
        || out_dir.join("cache"),
        |t| t.join("rocmforge-kernel-cache"),
    )
}

fn command_for(t: &Target, include: &Path, src: &Path, out: &Path) -> Command {
    match (t.platform, t.compiler.kind) {
        ("Amd", _) => command::amd_code_object(&t.compiler, &t.arch, include, src, out),
        (_, CompilerKind::Nvcc) => {
            command::nvidia_nvcc(&t.compiler, NvccOutput::Ptx, &t.arch, include, src, out)
        }
        _ => command::nvidia_ptx_clang(&t.compiler, &t.arch, include, src, out),
    }
}

fn first_lines(text: &str, n: usize) -> String {
    text.lines().take(n).collect::<Vec<_>>().join("\n")
}

/// The targets to embed, each with its compiler; notes say what is left out and why.
fn targets(notes: &mut Vec<String>) -> Vec<Target> {
    let mut out = Vec::new();
    let amd = amd_targets_from_env();
    if !amd.is_empty() {
        match Compiler::find_amd() {
            Some(c) => out.extend(amd.into_iter().map(|arch| Target {
                platform: "Amd",
                arch,
                compiler: c.clone(),
                ext: "co",
            })),
            None => notes.push(format!(
                "no AMD kernel compiler found ($HIPCC, {}): no AMD kernel image is embedded; {}",
                compiler::AMD_COMPILERS.join(", "),
                compiler::INSTALL_HINT
            )),
        }
    }
    match Compiler::find_nvcc().or_else(Compiler::find_clang) {
        Some(c) => out.extend(EMBEDDED_NVIDIA_TARGETS.iter().map(|arch| Target {
            platform: "Nvidia",
            arch: (*arch).to_string(),
            compiler: c.clone(),
            ext: "ptx",
        })),
        None => notes.push(format!(
            "no NVIDIA PTX compiler found ($NVCC, nvcc, {}): no NVIDIA kernel image is embedded; {}",
            compiler::CLANG_COMPILERS.join(", "),
            compiler::INSTALL_HINT
        )),
    }
    out
}

/// Keeps the targets whose compiler builds the probe kernel (a clang without the AMDGPU back end,
/// without lld, or too old for gfx1201 is found out here, in a fraction of a second).
fn probe(
    targets: Vec<Target>,
    include: &Path,
    out_dir: &Path,
    notes: &mut Vec<String>,
) -> Vec<Target> {
    let dir = out_dir.join("probe");
    let src = dir.join("probe.hip");
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&src, PROBE)) {
        notes.push(format!("writing {}: {e}", src.display()));
        return Vec::new();
    }
    let jobs = targets
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let output = dir.join(format!("{}.{}", t.arch, t.ext));
            Job {
                label: i.to_string(),
                command: command_for(t, include, &src, &output),
                output,
                weight: 0,
                rename_to: None,
            }
        })
        .collect();
    let mut ok = vec![false; targets.len()];
    for o in run_jobs(jobs, default_workers()) {
        let Ok(i) = o.label.parse::<usize>() else {
            continue;
        };
        match o.result {
            Ok(()) => ok[i] = true,
            Err(e) => notes.push(format!(
                "{} cannot build {} {}, so it is not embedded: {}",
                targets[i].compiler.program,
                targets[i].platform,
                targets[i].arch,
                first_lines(&e.to_string(), 12)
            )),
        }
    }
    targets
        .into_iter()
        .zip(ok)
        .filter(|(_, ok)| *ok)
        .map(|(t, _)| t)
        .collect()
}

/// Compiles (or takes from the cache) every family for every target that works here.
pub fn compile_all(kernel_dir: &Path, out_dir: &Path) -> KernelBuildResult<Built> {
    let start = Instant::now();
    let include = kernel_dir.join("include");
    let srcs = sources::kernel_sources(kernel_dir)?;
    let headers = sources::headers_hash(&include)?;
    let cache = cache_dir(out_dir);
    let mut built = Built::default();
    for s in &srcs {
        built.families.push(sources::family(s)?);
    }
    let targets = targets(&mut built.notes);
    let targets = probe(targets, &include, out_dir, &mut built.notes);
    let mut jobs = Vec::new();
    let mut planned = Vec::new(); // (target index, family, cached image)
    let mut pending = HashMap::new(); // compiler output -> target index
    for (ti, t) in targets.iter().enumerate() {
        for (src, family) in srcs.iter().zip(&built.families) {
            let words = [
                t.compiler.version.as_str(),
                t.platform,
                &t.arch,
                t.ext,
                "v1",
            ];
            let key = sources::compile_key(src, headers, &words)?;
            let name = format!("{family}-{}-{key}", t.arch);
            let cached = cache.join(format!("{name}.{}", t.ext));
            if !cached.is_file() {
                let partial = cache.join(format!("{name}.{}.{}", std::process::id(), t.ext));
                jobs.push(Job {
                    label: format!("{} {} {}", t.platform, t.arch, src.display()),
                    command: command_for(t, &include, src, &partial),
                    output: partial.clone(),
                    weight: std::fs::metadata(src).map_or(0, |m| m.len()),
                    rename_to: Some(cached.clone()),
                });
                pending.insert(partial, ti);
            }
            planned.push((ti, family.clone(), cached));
        }
    }
    let compiled = jobs.len();
    let mut failed = vec![false; targets.len()];
    for o in run_jobs(jobs, default_workers()) {
        let Some(ti) = pending.get(&o.output) else {
            continue;
        };
        if let Err(e) = o.result {
            failed[*ti] = true;
            built
                .notes
                .push(format!("{}: {}", o.label, first_lines(&e.to_string(), 40)));
        }
    }
    for (ti, family, path) in planned {
        if failed[ti] {
            continue;
        }
        built.images.push(Image {
            platform: targets[ti].platform,
            arch: targets[ti].arch.clone(),
            family,
            path,
        });
    }
    eprintln!(
        "rocmforge-hip: {} kernel image(s) ready ({compiled} compiled, the rest from {}) in {:.1} s",
        built.images.len(),
        cache.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(built)
}
