//! `rocmforge perplexity`: llama.cpp's perplexity of a text file, and its KL-divergence tool.
//!
//! - `--file TEXT` alone prints `PPL = <value>`.
//! - `--file TEXT --save-logits OUT` also writes the logits file that `llama-perplexity
//!   --kl-divergence-base OUT` writes (llama.cpp uses `--kl-divergence-base` for both writing and
//!   reading, told apart by `--kl-divergence`; here writing has its own name).
//! - `--kl-divergence-base FILE` (with or without llama.cpp's `--kl-divergence`) reads such a file,
//!   written by llama.cpp or by us, runs its tokens through the model and reports what
//!   `llama-perplexity --kl-divergence` reports, plus the base distributions' mean entropy.

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use rocmforge_gguf::GgufFile;
use rocmforge_model::kld::{self, Estimate, KlSummary, LogitsHeader};
use rocmforge_model::perplexity;
use rocmforge_model::tokenizer::Tokenizer;

use super::device::{load_model, select_device};

/// Arguments of `rocmforge perplexity`.
#[derive(Debug, clap::Args)]
pub struct PerplexityArgs {
    /// The GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// The text file to score (not needed with --kl-divergence-base).
    #[arg(long, required_unless_present = "kl_divergence_base")]
    pub file: Option<PathBuf>,
    /// Tokens per chunk (with --kl-divergence-base: the file's own).
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// Evaluate only the first N chunks.
    #[arg(long)]
    pub chunks: Option<usize>,
    /// Write llama-perplexity's logits file (its `--kl-divergence-base` output) to this path.
    #[arg(long, conflicts_with = "kl_divergence_base")]
    pub save_logits: Option<PathBuf>,
    /// Read a logits file (from `llama-perplexity --kl-divergence-base` or --save-logits) and
    /// report the KL divergence of this model from it.
    #[arg(long)]
    pub kl_divergence_base: Option<PathBuf>,
    /// Accepted for llama.cpp's command line; --kl-divergence-base alone already compares.
    #[arg(long)]
    pub kl_divergence: bool,
    /// cpu, gpu or gpu:N.
    #[arg(long)]
    pub device: Option<String>,
}

/// Runs `rocmforge perplexity`; the last stdout line is `PPL = <value>` (or the KL report).
pub fn run(args: &PerplexityArgs) -> anyhow::Result<()> {
    let device = select_device(args.device.as_deref())?;
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("opening model {}", args.model.display()))?;
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let bos = if tokenizer.add_bos() {
        tokenizer.bos_id()
    } else {
        None
    };
    if let Some(base) = &args.kl_divergence_base {
        let model = load_model(&args.model, std::sync::Arc::new(file), device, true)?;
        return compare(args, base, &model, bos);
    }
    if args.kl_divergence {
        bail!("--kl-divergence needs --kl-divergence-base FILE (the logits file to compare with)");
    }
    let Some(text_path) = &args.file else {
        bail!("--file is required without --kl-divergence-base");
    };
    let text = std::fs::read_to_string(text_path)
        .with_context(|| format!("reading {}", text_path.display()))?;
    let tokens = tokenizer.encode(&text, true, false)?;
    let available = tokens.len() / args.ctx.max(1);
    let chunks = args.chunks.map_or(available, |c| c.min(available));
    eprintln!("{} tokens, {chunks} chunks of {}", tokens.len(), args.ctx);
    let started = Instant::now();
    let report = |done: usize, total: usize, ppl: f64| eprintln!("[{done}/{total}] ppl {ppl:.4}");
    let model = load_model(&args.model, std::sync::Arc::new(file), device, true)?;
    let result = match &args.save_logits {
        Some(out) => {
            let what = out.display().to_string();
            let mut w = BufWriter::new(
                File::create(out).with_context(|| format!("creating {}", out.display()))?,
            );
            let plan = kld::Chunks {
                n_ctx: args.ctx,
                count: chunks,
                bos,
            };
            let r = kld::save_logits(&model, &tokens, plan, &mut w, &what, report)?;
            eprintln!("logits of {} positions written to {what}", r.scored_tokens);
            r
        }
        None if args.chunks.is_some() => {
            perplexity(&model, &tokens[..chunks * args.ctx], args.ctx, bos, report)?
        }
        None => perplexity(&model, &tokens, args.ctx, bos, report)?,
    };
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{} tokens scored in {secs:.1} s ({:.1} tokens/s evaluated)",
        result.scored_tokens,
        (result.chunks * args.ctx) as f64 / secs.max(1e-9)
    );
    println!("PPL = {:.4}", result.ppl);
    Ok(())
}

fn compare(
    args: &PerplexityArgs,
    base: &std::path::Path,
    model: &rocmforge_model::Model,
    bos: Option<u32>,
) -> anyhow::Result<()> {
    let what = base.display().to_string();
    let f = File::open(base).with_context(|| format!("opening {what}"))?;
    let len = f
        .metadata()
        .with_context(|| format!("reading {what}"))?
        .len();
    let mut input = BufReader::new(f);
    let header = LogitsHeader::read(&mut input, len, &what)?;
    eprintln!(
        "{what}: n_ctx {}, n_vocab {}, {} chunks",
        header.n_ctx, header.n_vocab, header.n_chunk
    );
    let started = Instant::now();
    let summary = kld::kl_divergence(
        model,
        &header,
        &mut input,
        &what,
        args.chunks,
        bos,
        |done, total, acc| {
            if let Some(s) = acc.summary() {
                eprintln!(
                    "[{done}/{total}] KLD {:.6} ± {:.6}, same top p {:.3} %",
                    s.kld.value,
                    s.kld.err,
                    100.0 * s.same_top.value
                );
            }
        },
    )?;
    eprintln!(
        "{} positions compared in {:.1} s",
        summary.count,
        started.elapsed().as_secs_f64()
    );
    print_summary(&summary);
    Ok(())
}

/// `label: value ± err` (scaled by `k`, with `unit`), as llama.cpp lays its lines out.
fn line(label: &str, e: Estimate, k: f64, unit: &str) {
    println!("{label}: {:10.6} ± {:10.6}{unit}", k * e.value, k * e.err);
}

/// The report, laid out as `llama-perplexity --kl-divergence` prints its final statistics.
fn print_summary(s: &KlSummary) {
    println!("====== Perplexity statistics ======");
    line("Mean PPL(Q)                   ", s.ppl, 1.0, "");
    line("Mean PPL(base)                ", s.ppl_base, 1.0, "");
    println!(
        "Cor(ln(PPL(Q)), ln(PPL(base))): {:6.2}%",
        100.0 * s.log_ppl_correlation
    );
    line("Mean ln(PPL(Q)/PPL(base))     ", s.log_ppl_ratio, 1.0, "");
    line("Mean PPL(Q)/PPL(base)         ", s.ppl_ratio, 1.0, "");
    println!();
    println!("====== KL divergence statistics ======");
    line("Mean    KLD", s.kld, 1.0, "");
    println!("Maximum KLD: {:10.6}", s.kld_max);
    println!("99.0%   KLD: {:10.6}", s.kld_p99);
    println!("Median  KLD: {:10.6}", s.kld_median);
    println!("Minimum KLD: {:10.6}", s.kld_min);
    println!();
    println!("====== Token probability statistics ======");
    line("Mean    Δp", s.p_diff_mean, 100.0, " %");
    println!("Maximum Δp: {:10.6} %", 100.0 * s.p_diff_max);
    line("RMS Δp    ", s.p_diff_rms, 100.0, " %");
    line("Same top p", s.same_top, 100.0, " %");
    println!();
    println!(
        "Mean entropy of the base distributions: {:.4} nats over {} positions",
        s.base_entropy, s.count
    );
}
