//! Running many compiles on a few threads.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

use crate::error::{KernelBuildError, KernelBuildResult};

/// One compile.
#[derive(Debug)]
pub struct Job {
    /// What it builds, for messages: `gfx942 kernels/norm.hip`.
    pub label: String,
    /// The file it writes (its folder is created first).
    pub output: PathBuf,
    /// The command line.
    pub command: Command,
    /// Expected cost; the biggest start first so that the last one to finish is short.
    pub weight: u64,
    /// Where the output is moved once the compiler succeeded (a cache then never holds a
    /// half-written image, and each image is kept as soon as it is done).
    pub rename_to: Option<PathBuf>,
}

/// A finished job: its label, output and result.
#[derive(Debug)]
pub struct Outcome {
    /// The job's label.
    pub label: String,
    /// The job's output file.
    pub output: PathBuf,
    /// `Ok` when the compiler succeeded.
    pub result: KernelBuildResult<()>,
}

fn run_one(job: &mut Job) -> KernelBuildResult<()> {
    if let Some(parent) = job.output.parent() {
        std::fs::create_dir_all(parent).map_err(|e| KernelBuildError::Io {
            path: parent.display().to_string(),
            message: e.to_string(),
        })?;
    }
    let shown = format!("{:?}", job.command);
    let output = job.command.output().map_err(|e| KernelBuildError::Spawn {
        command: shown.clone(),
        message: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(KernelBuildError::Compile {
            label: job.label.clone(),
            command: shown,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    if let Some(to) = &job.rename_to {
        std::fs::rename(&job.output, to).map_err(|e| KernelBuildError::Io {
            path: to.display().to_string(),
            message: e.to_string(),
        })?;
    }
    Ok(())
}

/// Runs `jobs` on `workers` threads (at least one), heaviest first; one [`Outcome`] per job.
pub fn run_jobs(mut jobs: Vec<Job>, workers: usize) -> Vec<Outcome> {
    jobs.sort_by_key(|j| std::cmp::Reverse(j.weight));
    let queue = Mutex::new(VecDeque::from(jobs));
    let done = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..workers.max(1) {
            scope.spawn(|| {
                loop {
                    let next = match queue.lock() {
                        Ok(mut q) => q.pop_front(),
                        Err(_) => None,
                    };
                    let Some(mut job) = next else { break };
                    let result = run_one(&mut job);
                    if let Ok(mut d) = done.lock() {
                        d.push(Outcome {
                            label: job.label,
                            output: job.output,
                            result,
                        });
                    }
                }
            });
        }
    });
    done.into_inner().unwrap_or_default()
}

/// Worker threads: `NUM_JOBS` (set by cargo for build scripts) or the machine's parallelism.
pub fn default_workers() -> usize {
    std::env::var("NUM_JOBS")
        .ok()
        .and_then(|n| n.parse().ok())
        .or_else(|| std::thread::available_parallelism().ok().map(|n| n.get()))
        .unwrap_or(2)
}
