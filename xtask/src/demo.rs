//! `cargo xtask demo`: the README's main job. Fetches the test model if missing, builds the
//! `rocmforge` binary in release mode and runs a short generation on the best device
//! (the GPU when one is usable, else the CPU; `rocmforge generate` says which on stderr).

use std::process::Command;

use anyhow::Result;
use clap::Args;

use crate::{models, paths, process};

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// The prompt to complete.
    #[arg(long, default_value = "The capital of France is")]
    prompt: String,
    /// How many tokens to generate.
    #[arg(long, default_value_t = 48)]
    max_tokens: u32,
    /// Format the prompt with the model's chat template.
    #[arg(long)]
    chat: bool,
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let model = models::fetch_all()?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("no test model is registered"))?;
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(paths::repo_root())
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "rocmforge-cli",
            "--",
            "generate",
            "--model",
        ])
        .arg(&model)
        .arg("--prompt")
        .arg(&args.prompt)
        .arg("--max-tokens")
        .arg(args.max_tokens.to_string());
    if args.chat {
        cmd.arg("--chat");
    }
    process::run(&mut cmd)
}
