//! `rocmforge chat`: an interactive conversation in the terminal (or over piped stdin) with the
//! model's chat template, the history of the conversation, streamed answers, `/reset`, `/exit`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::{Context, bail};
use rocmforge_gguf::GgufFile;
use rocmforge_model::chat_template::{ChatMessage, ChatTemplate};
use rocmforge_model::engine::{Engine, EngineConfig, EngineEvent, EngineRequest};
use rocmforge_model::{GenerateParams, SamplingParams};

use crate::progress::BytesBar;

/// Arguments of `rocmforge chat`.
#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    /// The GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// A system message opening the conversation.
    #[arg(long)]
    pub system: Option<String>,
    /// Most tokens per answer.
    #[arg(long, default_value_t = 512)]
    pub max_tokens: usize,
    /// Sampling temperature; 0 = greedy.
    #[arg(long, default_value_t = 0.7)]
    pub temperature: f32,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Context size in tokens (older turns are dropped to fit).
    #[arg(long, default_value_t = 4096)]
    pub ctx: usize,
    /// cpu, gpu or gpu:N.
    #[arg(long)]
    pub device: Option<String>,
    /// No banner, prompts or progress bar on stderr.
    #[arg(long, short)]
    pub quiet: bool,
}

struct Conversation {
    system: Option<String>,
    turns: Vec<ChatMessage>,
}

impl Conversation {
    fn messages(&self) -> Vec<ChatMessage> {
        let mut m: Vec<ChatMessage> = self.system.iter().map(ChatMessage::system).collect();
        m.extend(self.turns.iter().cloned());
        m
    }
}

/// Renders and tokenizes the conversation, dropping the oldest turns until it fits.
fn prompt_ids(
    engine: &Engine,
    template: &ChatTemplate,
    conv: &mut Conversation,
    room: usize,
) -> anyhow::Result<Vec<u32>> {
    loop {
        let text = template.render(&conv.messages(), true)?;
        let ids = engine.tokenizer().encode(&text, true, true)?;
        if ids.len() < room {
            return Ok(ids);
        }
        if conv.turns.len() <= 1 {
            bail!(
                "the message is {} tokens, more than the context of {room} allows",
                ids.len()
            );
        }
        // Drop the oldest user/assistant pair.
        let n = conv.turns.len().min(2);
        conv.turns.drain(..n);
    }
}

/// Streams one answer to stdout; returns its text.
fn answer(engine: &Engine, prompt: Vec<u32>, params: &GenerateParams) -> anyhow::Result<String> {
    let (tx, rx) = mpsc::channel();
    engine.submit(EngineRequest::new(prompt, params.clone(), Box::new(tx)))?;
    let mut out = std::io::stdout().lock();
    let mut text = String::new();
    for event in rx {
        match event {
            EngineEvent::Text(piece) => {
                out.write_all(piece.as_bytes())?;
                out.flush()?;
                text.push_str(&piece);
            }
            EngineEvent::Finished { .. } => break,
            EngineEvent::Logprob(_) => {}
            EngineEvent::Failed(message) => bail!("generation failed: {message}"),
        }
    }
    writeln!(out)?;
    Ok(text)
}

/// Runs `rocmforge chat`.
pub fn run(args: &ChatArgs) -> anyhow::Result<()> {
    let device = super::device::select_device(args.device.as_deref())?;
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("opening model {}", args.model.display()))?;
    let config = EngineConfig {
        max_batch: 1,
        max_queue: 1,
        ctx: args.ctx,
        ..EngineConfig::default()
    };
    let bar = BytesBar::new("uploading weights", args.quiet);
    let progress = {
        let bar = bar.clone_handle();
        Box::new(move |done: u64, total: u64| bar.update(done, total))
    };
    let engine = Engine::start_with_progress(file, config, device, progress)
        .context("starting the engine")?;
    bar.finish();
    let template = ChatTemplate::for_tokenizer(engine.tokenizer())?;
    let ctx = engine.config().ctx;
    let params = GenerateParams {
        max_tokens: args.max_tokens.min(ctx.saturating_sub(1)).max(1),
        sampling: SamplingParams {
            temperature: args.temperature,
            seed: args.seed,
            ..SamplingParams::default()
        },
        stop: Vec::new(),
    };
    let interactive = std::io::stdin().is_terminal() && !args.quiet;
    if interactive {
        eprintln!(
            "chatting with {} (context {ctx}); /reset clears the history, /exit quits",
            args.model.display()
        );
    }
    let mut conv = Conversation {
        system: args.system.clone(),
        turns: Vec::new(),
    };
    let stdin = std::io::stdin();
    let mut lines = stdin.lock().lines();
    loop {
        if interactive {
            eprint!("> ");
            std::io::stderr().flush()?;
        }
        let Some(line) = lines.next() else { break };
        let line = line.context("reading stdin")?;
        let input = line.trim();
        match input {
            "" => continue,
            "/exit" | "/quit" => break,
            "/reset" => {
                conv.turns.clear();
                if interactive {
                    eprintln!("(history cleared)");
                }
                continue;
            }
            _ => {}
        }
        conv.turns.push(ChatMessage::user(input));
        let room = ctx.saturating_sub(params.max_tokens.min(ctx / 2));
        let prompt = match prompt_ids(&engine, &template, &mut conv, room.max(1)) {
            Ok(p) => p,
            Err(e) => {
                conv.turns.pop();
                eprintln!("error: {e}");
                continue;
            }
        };
        let text = answer(&engine, prompt, &params)?;
        conv.turns.push(ChatMessage::assistant(text));
    }
    engine.shutdown();
    Ok(())
}
