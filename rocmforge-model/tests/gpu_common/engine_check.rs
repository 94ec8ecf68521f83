//! The GPU engine check shared by the GPU suites: greedy requests run concurrently through
//! one GPU engine (one batched step for all) give exactly the text each gives alone.

use std::path::Path;
use std::sync::mpsc::{self, Receiver};

use rocmforge_gguf::GgufFile;
use rocmforge_model::engine::{Engine, EngineConfig, EngineDevice, EngineEvent, EngineRequest};
use rocmforge_model::{FinishReason, GenerateParams, SamplingParams};

type Outcome = Result<(String, FinishReason), String>;

fn collect(rx: Receiver<EngineEvent>) -> Outcome {
    let mut text = String::new();
    for event in rx {
        match event {
            EngineEvent::Text(piece) => text.push_str(&piece),
            EngineEvent::Finished { reason, .. } => return Ok((text, reason)),
            EngineEvent::Failed(message) => return Err(message),
            EngineEvent::Logprob(_) => {}
        }
    }
    Err("the engine dropped the request".to_string())
}

fn submit(
    engine: &Engine,
    prompt: &str,
    max_tokens: usize,
) -> Result<Receiver<EngineEvent>, String> {
    let ids = engine
        .tokenizer()
        .encode(prompt, true, true)
        .map_err(|e| e.to_string())?;
    let params = GenerateParams {
        max_tokens,
        sampling: SamplingParams::greedy(),
        stop: Vec::new(),
    };
    let (tx, rx) = mpsc::channel();
    engine
        .submit(EngineRequest::new(ids, params, Box::new(tx)))
        .map_err(|e| e.to_string())?;
    Ok(rx)
}

/// How closely the concurrent run must follow the requests run alone.
#[derive(Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // each suite including this file uses one of them
pub enum Strictness {
    /// Same text and finish reason.
    Exact,
    /// Same first generated token (the batch may round differently after it), every
    /// request finished without failing.
    FirstToken,
}

/// The id of the first token of `text` (its first piece as the tokenizer splits it).
fn first_token(engine: &Engine, text: &str) -> Option<u32> {
    engine
        .tokenizer()
        .encode(text, false, false)
        .ok()?
        .first()
        .copied()
}

/// Runs `prompts` one at a time, then all at once, on a GPU engine over the model at `path`
/// and compares the two runs as `strictness` says.
pub fn concurrent_vs_alone(
    strictness: Strictness,
    path: &Path,
    prompts: &[&str],
    max_tokens: usize,
) -> Result<String, String> {
    let file = GgufFile::open(path).map_err(|e| e.to_string())?;
    let config = EngineConfig {
        max_batch: prompts.len(),
        max_queue: 2 * prompts.len(),
        ctx: 256,
        prefill_chunk: 64,
        prefix_cache: 0,
    };
    let engine = Engine::start(file, config, EngineDevice::Gpu(0))
        .map_err(|e| format!("Engine::start: {e}"))?;
    let t0 = std::time::Instant::now();
    let mut alone = Vec::new();
    for p in prompts {
        alone.push(collect(submit(&engine, p, max_tokens)?)?);
    }
    let alone_s = t0.elapsed().as_secs_f64();
    let t1 = std::time::Instant::now();
    let receivers = prompts
        .iter()
        .map(|p| submit(&engine, p, max_tokens))
        .collect::<Result<Vec<_>, _>>()?;
    let together = receivers
        .into_iter()
        .map(collect)
        .collect::<Result<Vec<_>, _>>()?;
    let together_s = t1.elapsed().as_secs_f64();
    let metrics = engine.metrics();
    engine.shutdown();
    let mut differ = Vec::new();
    let mut exact = 0;
    for (i, (a, t)) in alone.iter().zip(&together).enumerate() {
        exact += usize::from(a == t);
        let ok = match strictness {
            Strictness::Exact => a == t,
            Strictness::FirstToken => first_token(&engine, &a.0) == first_token(&engine, &t.0),
        };
        if !ok {
            differ.push(format!("request {i}: alone {a:?}, concurrent {t:?}"));
        }
    }
    if !differ.is_empty() {
        return Err(differ.join("; "));
    }
    let tokens: usize = alone.iter().map(|(t, _)| t.len()).sum();
    Ok(format!(
        "{} greedy requests of {max_tokens} tokens: {exact}/{} identical concurrent and alone ({} chars; alone {alone_s:.2} s, concurrent {together_s:.2} s; engine ctx {}; metrics {metrics:?})",
        prompts.len(),
        prompts.len(),
        tokens,
        engine.config().ctx
    ))
}
