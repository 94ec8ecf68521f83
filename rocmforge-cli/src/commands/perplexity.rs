//! `rocmforge perplexity`: llama.cpp's perplexity of a text file.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rocmforge_gguf::GgufFile;
use rocmforge_model::perplexity;
use rocmforge_model::tokenizer::Tokenizer;

use super::device::{load_model, select_device};

/// Arguments of `rocmforge perplexity`.
#[derive(Debug, clap::Args)]
pub struct PerplexityArgs {
    /// The GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// The text file to score.
    #[arg(long)]
    pub file: PathBuf,
    /// Tokens per chunk.
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// cpu, gpu or gpu:N.
    #[arg(long)]
    pub device: Option<String>,
}

/// Runs `rocmforge perplexity`; the last stdout line is `PPL = <value>`.
pub fn run(args: &PerplexityArgs) -> anyhow::Result<()> {
    let device = select_device(args.device.as_deref())?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("opening model {}", args.model.display()))?;
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let tokens = tokenizer.encode(&text, true, false)?;
    let bos = if tokenizer.add_bos() {
        tokenizer.bos_id()
    } else {
        None
    };
    eprintln!(
        "{} tokens, {} chunks of {}",
        tokens.len(),
        tokens.len() / args.ctx.max(1),
        args.ctx
    );
    let started = Instant::now();
    let report = |done: usize, total: usize, ppl: f64| eprintln!("[{done}/{total}] ppl {ppl:.4}");
    let model = load_model(&args.model, std::sync::Arc::new(file), device, true)?;
    let result = perplexity(&model, &tokens, args.ctx, bos, report)?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} tokens scored in {secs:.1} s ({:.1} tokens/s evaluated)",
        result.scored_tokens,
        (result.chunks * args.ctx) as f64 / secs.max(1e-9)
    );
    println!("PPL = {:.4}", result.ppl);
    Ok(())
}
