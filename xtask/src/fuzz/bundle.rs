//! `cargo xtask fuzz --bundle DIR`: the instrumented fuzz binaries, their seed corpora and a
//! `run.sh`, for a long campaign on a many-core x86-64 Linux machine without Rust.
//!
//! On that machine: `DIR/run.sh [SECONDS_PER_TARGET] [JOBS] [TARGET...]` runs each target with
//! libFuzzer's `-fork=JOBS` for the given time, keeps going past crashes (each one is saved
//! under `DIR/artifacts/<target>/`), and writes one summary line per target (executions,
//! coverage, crashes) to stdout and `DIR/logs/summary.txt`.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result};

const RUN_SH: &str = r#"#!/bin/sh
# Long fuzzing campaign over the rocmforge fuzz targets (written by `cargo xtask fuzz --bundle`).
# usage: ./run.sh [SECONDS_PER_TARGET (180)] [JOBS (nproc)] [TARGET...]
# The default runs the three targets in about 9 minutes; on 16 cores that is well over
# 10 million executions in total (gguf_parse alone runs several thousand per second per core).
set -u
cd "$(dirname "$0")"
secs=${1:-180}
jobs=${2:-$(nproc)}
[ $# -ge 1 ] && shift
[ $# -ge 1 ] && shift
targets=${*:-__TARGETS__}
mkdir -p logs
: > logs/summary.txt
status=0
for t in $targets; do
    mkdir -p "work/$t" "artifacts/$t"
    echo "fuzzing $t for $secs s with $jobs processes (log: logs/$t.log)" >&2
    "./bin/$t" -fork="$jobs" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 \
        -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1 \
        -artifact_prefix="artifacts/$t/" "work/$t" "corpus/$t" 2> "logs/$t.log"
    rc=$?
    last=$(grep -E '^#[0-9]+.*cov: ' "logs/$t.log" | tail -n 1)
    crashes=$(find "artifacts/$t" -type f | wc -l)
    line="$t: exit $rc, saved crash/timeout/oom inputs: $crashes, last status: $last"
    echo "$line" | tee -a logs/summary.txt
    [ "$rc" -eq 0 ] && [ "$crashes" -eq 0 ] || status=1
done
exit $status
"#;

/// Copies the binaries of `targets` from `bin_dir` (debug info stripped when `strip` exists)
/// and their seeds from `corpus`, and writes `run.sh`, into `dest`.
pub fn write(bin_dir: &Path, targets: &[String], corpus: &Path, dest: &Path) -> Result<()> {
    let bins = dest.join("bin");
    std::fs::create_dir_all(&bins).with_context(|| format!("creating {}", bins.display()))?;
    for t in targets {
        let to = bins.join(t);
        std::fs::copy(bin_dir.join(t), &to)
            .with_context(|| format!("copying the fuzz binary {t} to {}", to.display()))?;
        let stripped = Command::new("strip").arg("--strip-debug").arg(&to).status();
        if !stripped.is_ok_and(|s| s.success()) {
            eprintln!("xtask: strip failed or is missing; {t} keeps its debug info");
        }
        let seeds_to = dest.join("corpus").join(t);
        std::fs::create_dir_all(&seeds_to)?;
        let seeds_from = corpus.join(t);
        for entry in std::fs::read_dir(&seeds_from)
            .with_context(|| format!("reading the seeds in {}", seeds_from.display()))?
        {
            let path = entry?.path();
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, seeds_to.join(name))?;
            }
        }
    }
    let script = dest.join("run.sh");
    std::fs::write(&script, RUN_SH.replace("__TARGETS__", &targets.join(" ")))
        .with_context(|| format!("writing {}", script.display()))?;
    make_executable(&script)?;
    eprintln!(
        "xtask: fuzz bundle in {}: copy it to the fuzzing machine and run ./run.sh [SECONDS] [JOBS]",
        dest.display()
    );
    Ok(())
}

#[cfg(unix)]
fn make_executable(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
        .with_context(|| format!("making {} executable", path.display()))
}

#[cfg(not(unix))]
fn make_executable(_: &Path) -> Result<()> {
    Ok(())
}
