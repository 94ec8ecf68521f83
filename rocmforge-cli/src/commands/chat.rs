//! `rocmforge chat`: an interactive conversation in the terminal (or over piped stdin) with the
//! model's chat template, the history of the conversation, streamed answers, `/reset`, `/exit`.
//! With gpt-oss's harmony template the answer's channels are read as they come: the reasoning
//! goes to stderr (unless `--quiet`), the final answer to stdout, and the history keeps them
//! apart (the template refuses channel markers in a message's content).

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::sync::mpsc;

use anyhow::{Context, bail};
use rocmforge_gguf::GgufFile;
use rocmforge_model::chat_template::{ChatMessage, ChatTemplate};
use rocmforge_model::engine::{Engine, EngineConfig, EngineEvent, EngineRequest};
use rocmforge_model::{GenerateParams, SamplingParams};

use crate::progress::BytesBar;
use crate::server::tools::{AnswerDelta, AnswerStream, ToolFormat, read_answer};

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

/// Streams one answer to stdout (a harmony answer's reasoning to stderr unless `quiet`);
/// returns its text.
fn answer(
    engine: &Engine,
    prompt: Vec<u32>,
    params: &GenerateParams,
    harmony: bool,
    quiet: bool,
) -> anyhow::Result<String> {
    let (tx, rx) = mpsc::channel();
    engine.submit(EngineRequest::new(prompt, params.clone(), Box::new(tx)))?;
    let mut out = std::io::stdout().lock();
    let mut reader = harmony.then(|| AnswerStream::new(ToolFormat::Harmony, false));
    let show = |deltas: Vec<AnswerDelta>, out: &mut std::io::StdoutLock| -> std::io::Result<()> {
        for d in deltas {
            match d {
                AnswerDelta::Content(t) => out.write_all(t.as_bytes())?,
                AnswerDelta::Reasoning(t) if !quiet => eprint!("{t}"),
                AnswerDelta::Reasoning(_) | AnswerDelta::Call(_) => {}
            }
        }
        out.flush()
    };
    let mut text = String::new();
    for event in rx {
        match event {
            EngineEvent::Text(piece) => {
                match reader.as_mut() {
                    Some(r) => show(r.push(&piece), &mut out)?,
                    None => {
                        out.write_all(piece.as_bytes())?;
                        out.flush()?;
                    }
                }
                text.push_str(&piece);
            }
            EngineEvent::Finished { .. } => break,
            EngineEvent::Logprob(_) => {}
            EngineEvent::Failed(message) => bail!("generation failed: {message}"),
        }
    }
    if let Some(r) = reader.as_mut() {
        show(r.finish().0, &mut out)?;
    }
    writeln!(out)?;
    Ok(text)
}

/// The assistant turn the history keeps of an answer: a harmony answer's final text as its
/// content and its analysis as its reasoning.
fn assistant_turn(text: String, harmony: bool) -> ChatMessage {
    if !harmony {
        return ChatMessage::assistant(text);
    }
    let parsed = read_answer(ToolFormat::Harmony, false, &text);
    let mut m = ChatMessage::assistant(parsed.content.unwrap_or_default());
    m.reasoning_content = parsed.reasoning;
    m
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
        let harmony = template.is_harmony();
        let text = answer(&engine, prompt, &params, harmony, args.quiet)?;
        conv.turns.push(assistant_turn(text, harmony));
    }
    engine.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    /// A harmony answer kept raw would make gpt-oss's template refuse the next turn; kept as
    /// llama.cpp keeps it (final text, reasoning apart) the conversation goes on.
    #[test]
    fn a_harmony_answer_goes_back_as_content_and_reasoning() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../rocmforge-model/tests/data/chat/gpt-oss.jinja");
        let template = ChatTemplate::new(std::fs::read_to_string(path).unwrap(), "", "").unwrap();
        let text = "<|channel|>analysis<|message|>Greet.<|end|><|start|>assistant<|channel|>final<|message|>Hello!";
        let raw = [
            ChatMessage::user("Hi"),
            ChatMessage::assistant(text),
            ChatMessage::user("Bye"),
        ];
        assert!(template.render(&raw, true).is_err());
        let turn = assistant_turn(text.to_string(), true);
        assert_eq!(turn.content, "Hello!");
        assert_eq!(turn.reasoning_content.as_deref(), Some("Greet."));
        let kept = [ChatMessage::user("Hi"), turn, ChatMessage::user("Bye")];
        let out = template.render(&kept, true).unwrap();
        assert!(
            out.contains("<|start|>assistant<|channel|>final<|message|>Hello!<|end|><|start|>user<|message|>Bye"),
            "{out}"
        );
    }
}
