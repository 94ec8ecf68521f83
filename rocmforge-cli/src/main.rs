//! `rocmforge`: the command-line front end of ROCmForge.
//!
//! Each subcommand lives in `commands/<name>.rs` (or `commands/<name>/`) with a `clap::Args`
//! struct and a `run(&Args) -> anyhow::Result<()>`; to add one, add a variant to [`Command`] and
//! a line to [`run_command`]. Errors print as one `error: ...` line on stderr, exit code 1.

// This crate's MSRV is 1.87 (llguidance, for constrained sampling), where clippy suggests
// `is_multiple_of`; the workspace's other crates stay at 1.85, so `%` is kept for one style.
#![allow(clippy::manual_is_multiple_of)]

mod commands;
mod progress;
mod server;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ROCmForge: run GGUF language models on AMD GPUs (HIP), NVIDIA GPUs (HIP's CUDA mapping) or the CPU.
#[derive(Debug, Parser)]
#[command(name = "rocmforge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Show a GGUF file's metadata, tensors, totals per type and parameter count.
    Inspect(commands::inspect::InspectArgs),
    /// Rewrite a GGUF file with its weight matrices quantized to another type.
    Quantize(commands::quantize::QuantizeArgs),
    /// Compute an importance matrix over a text (llama.cpp's imatrix GGUF) for `quantize --imatrix`.
    Imatrix(commands::imatrix::ImatrixArgs),
    /// Chat with the model in the terminal (or over piped stdin): /reset, /exit.
    Chat(commands::chat::ChatArgs),
    /// Prefill and decode tokens/s (mean ± sd over repetitions), load time, peak memory.
    Bench(commands::bench::BenchArgs),
    /// Serve the model over an OpenAI-compatible HTTP API (continuous batching).
    Serve(commands::serve::ServeArgs),
    /// Generate a completion of a prompt; prints only the generated text.
    Generate(commands::generate::GenerateArgs),
    /// Print the argmax next token after each prefix of a token sequence (teacher forcing).
    Predict(commands::predict::PredictArgs),
    /// Perplexity of a text file, computed as llama.cpp does.
    Perplexity(commands::perplexity::PerplexityArgs),
    /// Print the token ids of a text as one JSON array.
    Tokenize(commands::tokenize::TokenizeArgs),
    /// List the GPU platform and devices with their attributes (text or --json).
    Devices(commands::devices::DevicesArgs),
}

fn run_command(command: &Command) -> anyhow::Result<()> {
    match command {
        Command::Inspect(args) => commands::inspect::run(args),
        Command::Quantize(args) => commands::quantize::run(args),
        Command::Imatrix(args) => commands::imatrix::run(args),
        Command::Serve(args) => commands::serve::run(args),
        Command::Chat(args) => commands::chat::run(args),
        Command::Bench(args) => commands::bench::run(args),
        Command::Generate(args) => commands::generate::run(args),
        Command::Predict(args) => commands::predict::run(args),
        Command::Perplexity(args) => commands::perplexity::run(args),
        Command::Tokenize(args) => commands::tokenize::run(args),
        Command::Devices(args) => commands::devices::run(args),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    progress::init_tracing();
    match run_command(&cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, "context: cause: cause", leaving out a cause whose
/// text an outer message already contains (many errors print their source themselves).
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}
