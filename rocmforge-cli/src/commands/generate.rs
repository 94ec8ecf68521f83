//! `rocmforge generate`: a raw (or `--chat`) completion of a prompt, text on stdout.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use rocmforge_gguf::GgufFile;
use rocmforge_model::chat_template::{ChatMessage, ChatTemplate};
use rocmforge_model::tokenizer::Tokenizer;
use rocmforge_model::{GenerateParams, SamplingParams, SequenceCache, SequenceModel, generate};

use super::device::{load_model, select_device};

/// Arguments of `rocmforge generate`.
#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    /// The GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// The prompt (a raw completion unless --chat).
    #[arg(long)]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.8)]
    pub temperature: f32,
    /// Keep the K most likely tokens (0 = off).
    #[arg(long, default_value_t = 40)]
    pub top_k: usize,
    /// Nucleus sampling threshold (1 = off).
    #[arg(long, default_value_t = 0.95)]
    pub top_p: f32,
    /// Drop tokens below this fraction of the best one's probability (0 = off).
    #[arg(long, default_value_t = 0.05)]
    pub min_p: f32,
    /// Repetition penalty over the last 64 tokens (1 = off).
    #[arg(long, default_value_t = 1.0)]
    pub repeat_penalty: f32,
    /// Presence penalty (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub presence_penalty: f32,
    /// Frequency penalty (0 = off).
    #[arg(long, default_value_t = 0.0)]
    pub frequency_penalty: f32,
    /// Seed of the sampler (random when absent; printed on stderr).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop before this string (repeatable).
    #[arg(long)]
    pub stop: Vec<String>,
    /// Context size in tokens (default: prompt + max tokens, capped by the model's).
    #[arg(long)]
    pub ctx: Option<usize>,
    /// cpu, gpu or gpu:N (default: the GPU when usable, else the CPU).
    #[arg(long)]
    pub device: Option<String>,
    /// Wrap the prompt in the model's chat template (ChatML when it has none) as a user message.
    #[arg(long)]
    pub chat: bool,
    /// No progress bar while the model loads.
    #[arg(long, short)]
    pub quiet: bool,
}

fn random_seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

/// Runs `rocmforge generate`.
pub fn run(args: &GenerateArgs) -> anyhow::Result<()> {
    let device = select_device(args.device.as_deref())?;
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("opening model {}", args.model.display()))?;
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let prompt_text = if args.chat {
        ChatTemplate::for_tokenizer(&tokenizer)?
            .render(&[ChatMessage::user(args.prompt.as_str())], true)?
    } else {
        args.prompt.clone()
    };
    let prompt = tokenizer.encode(&prompt_text, true, true)?;
    if prompt.is_empty() {
        bail!("the prompt is empty after tokenization");
    }
    let seed = args.seed.unwrap_or_else(random_seed);
    eprintln!("seed: {seed}");
    let params = GenerateParams {
        max_tokens: args.max_tokens,
        sampling: SamplingParams {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            min_p: args.min_p,
            repeat_penalty: args.repeat_penalty,
            presence_penalty: args.presence_penalty,
            frequency_penalty: args.frequency_penalty,
            seed,
            ..SamplingParams::default()
        },
        stop: args.stop.clone(),
    };
    let wanted_ctx = |model_ctx: usize| {
        args.ctx.unwrap_or_else(|| {
            (prompt.len() + args.max_tokens)
                .min(model_ctx)
                .max(prompt.len())
        })
    };
    let model = load_model(&args.model, std::sync::Arc::new(file), device, args.quiet)?;
    let wanted = wanted_ctx(model.config().context_length);
    let ctx = model.fit_ctx(wanted, 1, prompt.len())?;
    if ctx < wanted {
        eprintln!("context capped to {ctx} tokens (asked {wanted}) to fit the free GPU memory");
    }
    let mut cache = model.new_cache(ctx)?;
    print_generation(&model, &tokenizer, &mut cache, &prompt, &params)
}

/// Generates with `model`, streaming the text to stdout and the timings to stderr.
fn print_generation<M: SequenceModel>(
    model: &M,
    tokenizer: &Tokenizer,
    cache: &mut M::Cache,
    prompt: &[u32],
    params: &GenerateParams,
) -> anyhow::Result<()>
where
    M::Cache: SequenceCache,
{
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut write_err = None;
    let result = generate(model, tokenizer, cache, prompt, params, |text| {
        if write_err.is_none() {
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
                write_err = Some(e);
            }
        }
    })?;
    if let Some(e) = write_err {
        return Err(e).context("writing to stdout");
    }
    writeln!(out).context("writing to stdout")?;
    let s = result.stats;
    eprintln!(
        "prompt: {} tokens, {:.1} tokens/s; generated: {} tokens, decode {:.1} tokens/s; finish: {:?}",
        s.prompt_tokens,
        s.prefill_tokens_per_s(),
        s.generated_tokens,
        s.decode_tokens_per_s(),
        result.finish
    );
    Ok(())
}
