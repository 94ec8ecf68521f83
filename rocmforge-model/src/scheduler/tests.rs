//! The batched forward and the engine against the one-sequence path, on the real test model.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::mpsc;

use rocmforge_gguf::GgufFile;

use super::fault::{Injected, StepFault, StepFaults};
use super::metrics::EngineMetrics;
use super::{Job, Worker};
use crate::batch::Segment;
use crate::engine::{Engine, EngineConfig, EngineDevice, EngineEvent, EngineRequest};
use crate::forward::LogitsFor;
use crate::generate::{FinishReason, GenerateParams, generate};
use crate::model::Model;
use crate::sampler::SamplingParams;
use crate::tokenizer::Tokenizer;

fn model_file() -> GgufFile {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models` to fetch the test model",
        path.display()
    );
    GgufFile::open(&path).unwrap()
}

/// The test model on the CPU.
fn cpu_model() -> Model {
    Model::from_file(
        std::sync::Arc::new(model_file()),
        rocmforge_tensor::Backend::Cpu,
    )
    .unwrap()
}

/// Waits (bounded) until the counters satisfy `ok`: they are updated right after the last
/// event of a request is sent.
fn settle(engine: &Engine, ok: impl Fn(&crate::engine::MetricsSnapshot) -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ok(&engine.metrics()) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn ragged_batch_equals_sequences_run_alone() {
    let model = cpu_model();
    let a: Vec<u32> = vec![1, 504, 3458, 282, 260, 2114, 30];
    let b: Vec<u32> = vec![1, 19556, 28, 957];
    // Alone: prefill a and b, then one decode token each.
    let mut ca = model.new_cache(32).unwrap();
    let mut cb = model.new_cache(32).unwrap();
    let la = model.forward(&mut ca, &a, 0, LogitsFor::Last).unwrap();
    let lb = model.forward(&mut cb, &b, 0, LogitsFor::Last).unwrap();
    let la2 = model
        .forward(&mut ca, &[42], a.len(), LogitsFor::Last)
        .unwrap();
    let lb2 = model
        .forward(&mut cb, &[43], b.len(), LogitsFor::Last)
        .unwrap();

    // Batched: a prefilled in two chunks, the second riding with b's whole prompt.
    let mut ba = model.new_cache(32).unwrap();
    let mut bb = model.new_cache(32).unwrap();
    let r = model
        .forward_batch(&mut [Segment {
            cache: &mut ba,
            tokens: &a[..3],
            want_logits: false,
        }])
        .unwrap();
    assert!(r[0].is_none());
    let r = model
        .forward_batch(&mut [
            Segment {
                cache: &mut ba,
                tokens: &a[3..],
                want_logits: true,
            },
            Segment {
                cache: &mut bb,
                tokens: &b,
                want_logits: true,
            },
        ])
        .unwrap();
    assert!(max_diff(r[0].as_ref().unwrap(), &la) < 1e-3);
    assert!(max_diff(r[1].as_ref().unwrap(), &lb) < 1e-3);
    // One decode step for both together.
    let r = model
        .forward_batch(&mut [
            Segment {
                cache: &mut ba,
                tokens: &[42],
                want_logits: true,
            },
            Segment {
                cache: &mut bb,
                tokens: &[43],
                want_logits: true,
            },
        ])
        .unwrap();
    assert!(max_diff(r[0].as_ref().unwrap(), &la2) < 1e-3);
    assert!(max_diff(r[1].as_ref().unwrap(), &lb2) < 1e-3);
    assert_eq!((ba.len(), bb.len()), (a.len() + 1, b.len() + 1));
    // A greedy step (ids chosen by the model) gives each sequence the argmax of the logits
    // it has alone; a segment without wanted logits gets none.
    let la3 = model
        .forward(&mut ca, &[7, 8], a.len() + 1, LogitsFor::Last)
        .unwrap();
    let lb3 = model
        .forward(&mut cb, &[9], b.len() + 1, LogitsFor::Last)
        .unwrap();
    let mut bc = model.new_cache(32).unwrap();
    let ids = model
        .forward_batch_greedy(&mut [
            Segment {
                cache: &mut ba,
                tokens: &[7, 8],
                want_logits: true,
            },
            Segment {
                cache: &mut bc,
                tokens: &b[..2],
                want_logits: false,
            },
            Segment {
                cache: &mut bb,
                tokens: &[9],
                want_logits: true,
            },
        ])
        .unwrap();
    let argmax = |l: &[f32]| crate::sampler::argmax(l) as u32;
    assert_eq!(ids, vec![Some(argmax(&la3)), None, Some(argmax(&lb3))]);
    assert_eq!(bc.len(), 2);
}

#[test]
fn engine_batch_gives_each_request_its_greedy_generation() {
    let file = model_file();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let model = cpu_model();
    let prompts = ["The capital of France is", "1, 2, 3,", "Once upon a time"];
    let params = GenerateParams {
        max_tokens: 6,
        sampling: SamplingParams::greedy(),
        stop: Vec::new(),
    };
    let expected: Vec<String> = prompts
        .iter()
        .map(|p| {
            let ids = tokenizer.encode(p, true, true).unwrap();
            let mut cache = model.new_cache(64).unwrap();
            generate(&model, &tokenizer, &mut cache, &ids, &params, |_| {})
                .unwrap()
                .text
        })
        .collect();

    // Small prefill chunks so prompts are split and share steps with running decodes.
    let config = EngineConfig {
        max_batch: 2,
        max_queue: 8,
        ctx: 64,
        prefill_chunk: 3,
        prefix_cache: 0,
    };
    let engine = Engine::start(model_file(), config, EngineDevice::Cpu).unwrap();
    // The second request also asks for log-probabilities (3 alternatives): it then samples
    // from host logits while the others take the model's argmax; the text is the same.
    let receivers: Vec<_> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let ids = engine.tokenizer().encode(p, true, true).unwrap();
            let (tx, rx) = mpsc::channel();
            let mut request = EngineRequest::new(ids, params.clone(), Box::new(tx));
            if i == 1 {
                request = request.with_logprobs(3);
            }
            engine.submit(request).unwrap();
            rx
        })
        .collect();
    for (i, (rx, want)) in receivers.into_iter().zip(&expected).enumerate() {
        let mut text = String::new();
        let mut finished = None;
        let mut logprobs = Vec::new();
        for event in rx {
            match event {
                EngineEvent::Text(t) => text.push_str(&t),
                EngineEvent::Logprob(lp) => logprobs.push(lp),
                EngineEvent::Finished { reason, usage } => {
                    assert!(usage.completion_tokens <= 6);
                    if i == 1 {
                        assert_eq!(logprobs.len(), usage.completion_tokens);
                    }
                    finished = Some(reason);
                    break;
                }
                EngineEvent::Failed(m) => panic!("{m}"),
            }
        }
        assert!(finished.is_some());
        assert_eq!(&text, want);
        if i == 1 {
            assert!(!logprobs.is_empty());
            let mut bytes = Vec::new();
            for lp in &logprobs {
                // Greedy: the chosen token is the most likely one.
                assert_eq!(lp.top.len(), 3);
                assert_eq!(lp.token.id, lp.top[0].id);
                assert_eq!(lp.token.logprob, lp.top[0].logprob);
                assert!(lp.token.logprob <= 0.0 && lp.token.logprob.is_finite());
                assert!(lp.top.windows(2).all(|w| w[0].logprob >= w[1].logprob));
                bytes.extend_from_slice(&lp.token.bytes);
            }
            assert_eq!(String::from_utf8_lossy(&bytes), text.as_str());
        } else {
            assert!(logprobs.is_empty());
        }
    }
    settle(&engine, |m| m.active_sequences == 0);
    let m = engine.metrics();
    assert_eq!(
        (m.requests, m.completed, m.active_sequences, m.queue_depth),
        (3, 3, 0, 0)
    );
    assert!(m.steps > 6 && m.generated_tokens > 0);
    engine.shutdown();
    assert!(!engine.is_healthy());
}

#[test]
fn constrained_and_free_sequences_share_a_batch() {
    let file = model_file();
    let tokenizer = std::sync::Arc::new(Tokenizer::from_gguf(&file).unwrap());
    let model = cpu_model();
    let prompt = "The capital of France is";
    let params = GenerateParams {
        max_tokens: 8,
        sampling: SamplingParams::greedy(),
        stop: Vec::new(),
    };
    let ids = tokenizer.encode(prompt, true, true).unwrap();
    let mut cache = model.new_cache(64).unwrap();
    let free = generate(&model, &tokenizer, &mut cache, &ids, &params, |_| {})
        .unwrap()
        .text;
    let options = [" Paris", " Rome", " Berlin"];
    let compiler = crate::constraint::GrammarCompiler::new(tokenizer.clone()).unwrap();
    let grammar =
        crate::constraint::Grammar::Lark("start: \" Paris\" | \" Rome\" | \" Berlin\"".to_string());
    let config = EngineConfig {
        max_batch: 3,
        max_queue: 8,
        ctx: 64,
        prefill_chunk: 64,
        prefix_cache: 0,
    };
    let engine = Engine::start(model_file(), config, EngineDevice::Cpu).unwrap();
    let run = |constrained: bool| {
        let (tx, rx) = mpsc::channel();
        let mut request = EngineRequest::new(ids.clone(), params.clone(), Box::new(tx));
        if constrained {
            request = request.with_constraint(compiler.compile(&grammar).unwrap());
        }
        engine.submit(request).unwrap();
        rx
    };
    // Two constrained sequences: their grammars advance in parallel in the same step.
    let receivers = [run(true), run(false), run(true)];
    let mut texts = Vec::new();
    for rx in receivers {
        let mut text = String::new();
        for event in rx {
            match event {
                EngineEvent::Text(t) => text.push_str(&t),
                EngineEvent::Finished { reason, .. } => {
                    texts.push((text.clone(), reason));
                    break;
                }
                EngineEvent::Failed(m) => panic!("{m}"),
                EngineEvent::Logprob(_) => {}
            }
        }
    }
    // The free sequence is unchanged by its constrained batch mate.
    assert_eq!(texts[1].0, free);
    // The constrained one is one of the options, ended by the grammar; greedy under a mask
    // is the free greedy answer wherever that answer is allowed.
    let (text, reason) = &texts[0];
    assert_eq!(texts[2], texts[0]);
    assert!(options.contains(&text.as_str()), "{text:?}");
    assert_eq!(*reason, FinishReason::EndOfGeneration);
    if let Some(o) = options.iter().find(|o| free.starts_with(**o)) {
        assert_eq!(text, o, "free greedy answer {free:?}");
    }
    // The metrics count each constrained sequence's answer tokens as grammar steps, and the
    // grammars' time is part of the steps' time.
    let m = engine.metrics();
    let answer_tokens = tokenizer.encode(text, false, false).unwrap().len() as u64;
    assert_eq!(m.grammar_tokens, 2 * answer_tokens, "{m:?}");
    assert!(m.step_seconds > 0.0, "{m:?}");
    assert!(
        m.grammar_seconds > 0.0 && m.grammar_seconds <= m.step_seconds,
        "{m:?}"
    );
    assert!(m.step_host_seconds <= m.step_seconds, "{m:?}");
    engine.shutdown();
}

#[test]
fn dropped_receiver_cancels_and_full_queue_refuses() {
    let config = EngineConfig {
        max_batch: 1,
        max_queue: 1,
        ctx: 256,
        prefill_chunk: 64,
        prefix_cache: 0,
    };
    let engine = Engine::start(model_file(), config, EngineDevice::Cpu).unwrap();
    let ids = engine
        .tokenizer()
        .encode("1, 2, 3, 4, 5,", true, true)
        .unwrap();
    let long = GenerateParams {
        max_tokens: 200,
        sampling: SamplingParams::greedy(),
        stop: Vec::new(),
    };
    let (tx, rx) = mpsc::channel();
    engine
        .submit(EngineRequest::new(ids.clone(), long.clone(), Box::new(tx)))
        .unwrap();
    // Wait until it runs, then fill the queue and overflow it.
    let first = rx.recv().unwrap();
    assert!(matches!(first, EngineEvent::Text(_)), "{first:?}");
    let (tx2, rx2) = mpsc::channel();
    let short = GenerateParams {
        max_tokens: 2,
        ..long.clone()
    };
    engine
        .submit(EngineRequest::new(
            ids.clone(),
            short.clone(),
            Box::new(tx2),
        ))
        .unwrap();
    let (tx3, _rx3) = mpsc::channel();
    let err = engine
        .submit(EngineRequest::new(ids.clone(), short, Box::new(tx3)))
        .unwrap_err();
    assert!(err.to_string().contains("queue is full"), "{err}");
    // The first client goes away: its sequence is freed and the queued one finishes.
    drop(rx);
    let last = rx2.into_iter().last().unwrap();
    assert!(
        matches!(
            last,
            EngineEvent::Finished {
                reason: FinishReason::MaxTokens,
                ..
            }
        ),
        "{last:?}"
    );
    settle(&engine, |m| m.completed >= 1);
    let m = engine.metrics();
    assert_eq!((m.cancelled, m.rejected, m.completed), (1, 1, 1));
    // Bad requests are refused up front.
    let (tx4, _rx4) = mpsc::channel();
    let too_long = vec![1u32; 300];
    assert!(
        engine
            .submit(EngineRequest::new(
                too_long,
                GenerateParams::default(),
                Box::new(tx4)
            ))
            .is_err()
    );
}

/// A worker over the CPU model whose steps fail as `fault` says (no environment involved).
fn worker_with_fault<'t>(
    model: Model,
    tokenizer: &'t Tokenizer,
    metrics: &'t EngineMetrics,
    fault: StepFault,
) -> Worker<'t, Model> {
    worker_with_fault_and_prefix(model, tokenizer, metrics, fault, 0)
}

fn worker_with_fault_and_prefix<'t>(
    model: Model,
    tokenizer: &'t Tokenizer,
    metrics: &'t EngineMetrics,
    fault: StepFault,
    prefix_cache: usize,
) -> Worker<'t, Model> {
    Worker {
        model,
        tokenizer,
        config: EngineConfig {
            max_batch: 4,
            max_queue: 4,
            ctx: 64,
            prefill_chunk: 64,
            prefix_cache,
        },
        metrics,
        active: Vec::new(),
        prefix: super::prefix::PrefixCache::new(prefix_cache),
        device_fault: None,
        kv_trimmed: false,
        faults: StepFaults::new(Some(fault)),
    }
}

/// Admits a greedy request for `prompt` into `worker`; its events arrive on the receiver.
fn admit(worker: &mut Worker<'_, Model>, id: u64, prompt: &str) -> mpsc::Receiver<EngineEvent> {
    let ids = worker.tokenizer.encode(prompt, true, true).unwrap();
    let params = GenerateParams {
        max_tokens: 8,
        sampling: SamplingParams::greedy(),
        stop: Vec::new(),
    };
    let (tx, rx) = mpsc::channel();
    worker.start_sequence(Job {
        id,
        request: EngineRequest::new(ids, params, Box::new(tx)),
    });
    rx
}

/// The message of the last event on `rx`, which must be a failure.
fn failure(rx: &mpsc::Receiver<EngineEvent>) -> String {
    match rx.try_iter().last() {
        Some(EngineEvent::Failed(m)) => m,
        other => panic!("expected a failure, got {other:?}"),
    }
}

#[test]
fn the_fault_setting_parses_device_or_a_positive_period() {
    assert_eq!(StepFault::parse("device"), Some(StepFault::Device));
    assert_eq!(StepFault::parse("oom:3"), Some(StepFault::OutOfMemoryAt(3)));
    assert_eq!(StepFault::parse("oom:0"), None);
    assert_eq!(StepFault::parse("1"), Some(StepFault::Every(1)));
    assert_eq!(StepFault::parse("3"), Some(StepFault::Every(3)));
    for bad in ["", "0", "-1", "x", "Device", " 1"] {
        assert_eq!(StepFault::parse(bad), None, "{bad:?}");
    }
    assert_eq!(StepFault::parse("kernel:2"), Some(StepFault::KernelAt(2)));
    assert_eq!(StepFault::parse("kernel:0"), None);
    let mut none = StepFaults::new(None);
    assert!((0..5).all(|_| matches!(none.next(), Injected::None)));
    let mut third = StepFaults::new(Some(StepFault::Every(3)));
    let failing: Vec<bool> = (0..6)
        .map(|_| matches!(third.next(), Injected::Error(_)))
        .collect();
    assert_eq!(failing, [false, false, true, false, false, true]);
    let mut kernel = StepFaults::new(Some(StepFault::KernelAt(2)));
    let queued: Vec<bool> = (0..4)
        .map(|_| matches!(kernel.next(), Injected::Kernel))
        .collect();
    assert_eq!(queued, [false, true, false, false]);
}

#[test]
fn an_injected_step_fault_fails_its_batch_and_the_worker_keeps_serving() {
    let file = model_file();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let metrics = EngineMetrics::default();
    let model = cpu_model();
    let mut worker = worker_with_fault(model, &tokenizer, &metrics, StepFault::Every(2));
    let a = admit(&mut worker, 1, "The capital of France is");
    let b = admit(&mut worker, 2, "1, 2, 3,");

    // Step 1 runs (both prompts prefilled), step 2 fails both sequences.
    worker.step();
    assert_eq!(worker.active.len(), 2);
    assert_eq!(metrics.snapshot().failed, 0);
    worker.step();
    for rx in [&a, &b] {
        let m = failure(rx);
        assert!(m.contains("injected step fault"), "{m}");
    }
    assert!(worker.active.is_empty(), "the failed sequences are freed");
    assert!(
        worker.device_fault.is_none(),
        "a step fault is not a device fault"
    );
    let m = metrics.snapshot();
    assert_eq!((m.failed, m.steps), (2, 1));

    // The worker goes on: step 3 runs a new request, step 4 fails it.
    let c = admit(&mut worker, 3, "Once upon a time");
    worker.step();
    assert_eq!(worker.active.len(), 1);
    assert_eq!(metrics.snapshot().steps, 2);
    worker.step();
    assert!(failure(&c).contains("injected step fault"));
    assert_eq!(metrics.snapshot().failed, 3);
}

#[test]
fn an_injected_device_fault_fails_the_batch_and_marks_the_device_lost() {
    let file = model_file();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let metrics = EngineMetrics::default();
    let model = cpu_model();
    let mut worker = worker_with_fault(model, &tokenizer, &metrics, StepFault::Device);
    let a = admit(&mut worker, 1, "Say hi.");

    worker.step();
    let m = failure(&a);
    assert!(m.contains("injected device fault"), "{m}");
    assert!(worker.active.is_empty());
    let fault = worker.device_fault.as_deref().unwrap();
    assert!(fault.contains("injected device fault"), "{fault}");
    assert_eq!(metrics.snapshot().failed, 1);
}

/// Requests sharing a long prompt prefix (a system prompt), and a second turn that continues
/// a finished conversation: the shared tokens are shared with the kept caches (their KV blocks), not prefilled
/// again (the metrics count them), and every answer equals the one computed from scratch.
#[test]
fn prompt_prefixes_are_reused_and_answers_unchanged() {
    let file = model_file();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    // Longer than a KV block (64 tokens), so that the conversations share whole blocks.
    let system = "You are a helpful assistant who answers questions about geography, history \
                  and science in one short sentence, without any preamble. You never ask \
                  questions back, never apologise, never repeat the question, never add notes, \
                  and you always name the place or the person first. Answers are in English, \
                  plain text, no lists, no markdown, no emojis, no quotes, no citations.";
    let prompts = [
        format!("{system} Question: What is the capital of France? Answer:"),
        format!("{system} Question: What is the capital of Italy? Answer:"),
    ];
    let params = GenerateParams {
        max_tokens: 5,
        sampling: SamplingParams::greedy(),
        stop: Vec::new(),
    };
    let run = |prefix_cache: usize| {
        let config = EngineConfig {
            max_batch: 1,
            max_queue: 8,
            ctx: 256,
            prefill_chunk: 16,
            prefix_cache,
        };
        let engine = Engine::start(model_file(), config, EngineDevice::Cpu).unwrap();
        let mut answers = Vec::new();
        let mut turns: Vec<String> = prompts.to_vec();
        for i in 0..3 {
            // The third request continues the first conversation with its answer.
            if i == 2 {
                turns.push(format!(
                    "{}{} Question: And of Spain? Answer:",
                    prompts[0], answers[0]
                ));
            }
            let ids = engine.tokenizer().encode(&turns[i], true, true).unwrap();
            let (tx, rx) = mpsc::channel();
            engine
                .submit(EngineRequest::new(ids, params.clone(), Box::new(tx)))
                .unwrap();
            let mut text = String::new();
            for event in rx {
                match event {
                    EngineEvent::Text(t) => text.push_str(&t),
                    EngineEvent::Finished { .. } => break,
                    EngineEvent::Failed(m) => panic!("{m}"),
                    EngineEvent::Logprob(_) => {}
                }
            }
            answers.push(text);
        }
        // Without kept prefixes no block is in use once idle, and the idle engine returns the
        // pool's storage.
        settle(&engine, |m| {
            m.active_sequences == 0 && (prefix_cache > 0 || m.kv_pool_bytes == 0)
        });
        let m = engine.metrics();
        engine.shutdown();
        (answers, m)
    };
    let (plain, m_plain) = run(0);
    let (reused, m_reused) = run(4);
    assert_eq!(plain, reused);
    assert_eq!((m_plain.prefix_hits, m_plain.prefix_reused_tokens), (0, 0));
    // The second prompt shares the system prompt with the first; the third all of the first
    // conversation.
    let shared_system = tokenizer.encode(system, true, true).unwrap().len() - 1;
    assert_eq!(m_reused.prefix_hits, 2, "{m_reused:?}");
    assert!(m_reused.prefix_reused_tokens as usize >= shared_system + shared_system);
    assert_eq!(
        m_plain.prompt_tokens,
        m_reused.prompt_tokens + m_reused.prefix_reused_tokens
    );
    assert!(m_reused.prefix_cache_bytes > 0);
    // The kept conversations share the blocks of the system prompt: the pool holds fewer
    // blocks than the entries together (no copy of a full block), and nothing is held once no
    // entry is kept.
    let c = crate::config::ModelConfig::from_gguf(&file).unwrap();
    let block_bytes = c.n_layers * 2 * rocmforge_tensor::KV_BLOCK_TOKENS * c.k_dim() * 2;
    assert!(shared_system >= rocmforge_tensor::KV_BLOCK_TOKENS);
    let held_by_entries = m_reused.prefix_cache_bytes as usize / block_bytes;
    assert!(
        (m_reused.kv_blocks_used as usize) < held_by_entries,
        "{} blocks in the pool for entries holding {held_by_entries}: {m_reused:?}",
        m_reused.kv_blocks_used
    );
    assert_eq!(m_plain.kv_blocks_used, 0, "{m_plain:?}");
    assert_eq!(m_plain.kv_pool_bytes, 0, "returned when idle: {m_plain:?}");
    assert!(m_plain.kv_blocks_free > 0);
    assert!(
        m_reused.kv_pool_bytes > 0,
        "kept entries keep their storage"
    );
}

/// A step that runs out of device memory while finished caches are kept for prefix reuse frees
/// them and runs again: the request completes, nothing fails.
#[test]
fn out_of_memory_frees_the_prefix_cache_and_the_step_runs_again() {
    let file = model_file();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let metrics = EngineMetrics::default();
    let model = cpu_model();
    let prompt = "A long enough prompt: one, two, three, four, five, six, seven, eight, nine, ten";
    let never = StepFault::OutOfMemoryAt(u64::MAX);
    let mut worker = worker_with_fault_and_prefix(model, &tokenizer, &metrics, never, 4);
    // The first request runs to its end and its cache is kept.
    let a = admit(&mut worker, 1, prompt);
    while !worker.active.is_empty() {
        worker.step();
    }
    drop(a);
    assert!(worker.prefix.size_bytes() > 0);
    // The second request reuses the prefix; its second step is out of memory: the prefix cache
    // is freed and the step repeated.
    worker.faults = StepFaults::new(Some(StepFault::OutOfMemoryAt(2)));
    let b = admit(&mut worker, 2, prompt);
    while !worker.active.is_empty() {
        worker.step();
    }
    assert!(
        worker.prefix.size_bytes() > 0,
        "the finished request is kept again"
    );
    assert!(
        worker.faults.counted() >= 2,
        "the out-of-memory step was reached"
    );
    let m = metrics.snapshot();
    assert_eq!((m.failed, m.completed, m.prefix_hits), (0, 2, 1), "{m:?}");
    let mut finished = false;
    for event in b.try_iter() {
        assert!(!matches!(event, EngineEvent::Failed(_)), "{event:?}");
        finished |= matches!(event, EngineEvent::Finished { .. });
    }
    assert!(finished);
}

/// Sequences admitted together with the same prompt (a request's `n` choices): the first
/// prefills it, the others wait and share its keys and values (KV blocks), running only their
/// last prompt token; every answer equals the one computed alone, and the metrics count the
/// shares.
#[test]
fn live_sequences_sharing_a_prompt_prefill_it_once() {
    let file = model_file();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let open = || cpu_model();
    let shared = "Every answer starts from this prompt: one, two, three, four, five, six, seven";
    let other = "A different prompt about the weather in Paris in the spring, briefly";
    let text = |rx: &mpsc::Receiver<EngineEvent>| -> String {
        let mut text = String::new();
        for event in rx.try_iter() {
            match event {
                EngineEvent::Text(t) => text.push_str(&t),
                EngineEvent::Failed(m) => panic!("{m}"),
                _ => {}
            }
        }
        text
    };
    // Alone, one after the other (nothing shared: no prefix cache, one sequence at a time).
    let alone_metrics = EngineMetrics::default();
    let never = || StepFault::OutOfMemoryAt(u64::MAX);
    let mut alone = worker_with_fault(open(), &tokenizer, &alone_metrics, never());
    let mut want = Vec::new();
    for (id, prompt) in [(1, shared), (2, other)] {
        let rx = admit(&mut alone, id, prompt);
        while !alone.active.is_empty() {
            alone.step();
        }
        want.push(text(&rx));
    }
    // Together: three copies of the shared prompt and the other one.
    let metrics = EngineMetrics::default();
    let mut worker = worker_with_fault(open(), &tokenizer, &metrics, never());
    let rxs: Vec<_> = [shared, other, shared, shared]
        .iter()
        .enumerate()
        .map(|(i, p)| admit(&mut worker, i as u64, p))
        .collect();
    while !worker.active.is_empty() {
        worker.step();
    }
    let got: Vec<String> = rxs.iter().map(text).collect();
    assert!(!want[0].is_empty() && !want[1].is_empty(), "{want:?}");
    let expected = [&want[0], &want[1], &want[0], &want[0]].map(String::clone);
    assert_eq!(got, expected);
    let n_shared = tokenizer.encode(shared, true, true).unwrap().len();
    let n_other = tokenizer.encode(other, true, true).unwrap().len();
    let m = metrics.snapshot();
    assert_eq!(m.prefix_hits, 2, "{m:?}");
    assert_eq!(m.prefix_reused_tokens as usize, 2 * (n_shared - 1), "{m:?}");
    assert_eq!(m.prompt_tokens as usize, n_shared + 2 + n_other, "{m:?}");
    assert_eq!(
        alone_metrics.snapshot().prompt_tokens as usize,
        n_shared + n_other
    );
}

/// A sequence that needs a KV block when the budget's blocks are all held gets a clear error,
/// nothing of its step committed; the sequences holding blocks run on, and the blocks they give
/// back serve it.
#[test]
fn a_sequence_without_a_kv_block_gets_a_clear_error() {
    let model = cpu_model();
    assert_eq!(model.set_kv_budget(64, 1), 1);
    let prompt: Vec<u32> = vec![1, 504, 3458, 282, 260, 2114, 30];
    let mut a = model.new_cache(128).unwrap();
    let mut b = model.new_cache(128).unwrap();
    let alone = model.forward(&mut a, &prompt, 0, LogitsFor::Last).unwrap();
    let err = model
        .forward(&mut b, &prompt, 0, LogitsFor::Last)
        .unwrap_err();
    assert!(err.to_string().contains("KV cache full"), "{err}");
    assert_eq!(b.len(), 0);
    model
        .forward(&mut a, &[28], prompt.len(), LogitsFor::Last)
        .unwrap();
    drop(a);
    let again = model.forward(&mut b, &prompt, 0, LogitsFor::Last).unwrap();
    assert_eq!(alone, again);
}

/// The memory the paged cache takes for sequences sharing a system prompt, from the pool's real
/// allocations, against what contiguous caches of the same context would take.
#[test]
fn kv_memory_follows_the_tokens_held_and_shared_prefixes_are_stored_once() {
    let model = cpu_model();
    let (n_seqs, ctx, shared, own) = (8usize, 2048usize, 80usize, 20usize);
    let system: Vec<u32> = (0..shared as u32).map(|i| 100 + i).collect();
    let mut first = model.new_cache(ctx).unwrap();
    model
        .forward(&mut first, &system, 0, LogitsFor::Last)
        .unwrap();
    let mut caches = Vec::new();
    for s in 0..n_seqs {
        let mut c = model.new_cache(ctx).unwrap();
        c.share_prefix_from(&first, shared).unwrap();
        let tail: Vec<u32> = (0..own as u32).map(|i| 1000 + 37 * s as u32 + i).collect();
        model
            .forward(&mut c, &tail, shared, LogitsFor::Last)
            .unwrap();
        caches.push(c);
    }
    let st = model.kv_pool_stats();
    let per_block = st.block_bytes;
    let contiguous = n_seqs * ctx * model.kv_bytes_per_token();
    let paged_used = st.used * per_block;
    // The system prompt's first block is stored once (held by `first` and all 8); each
    // sequence has its own copy of the partly shared second block.
    assert_eq!(st.used, 1 + 1 + n_seqs, "{st:?}");
    assert!(paged_used * 10 < contiguous);
    eprintln!(
        "KV memory, {n_seqs} sequences of {} tokens ({shared} shared) at ctx {ctx}: paged {} \
         blocks = {paged_used} bytes ({} bytes of storage allocated), contiguous {contiguous} \
         bytes",
        shared + own,
        st.used,
        st.allocated * per_block
    );
}

/// When a sequence finds no free KV block, kept prefixes are evicted oldest first until it
/// gets its blocks; with nothing left to evict that sequence fails alone with the clear error
/// (no crash), the others run on, and the engine serves the next request.
#[test]
fn out_of_kv_blocks_evicts_kept_prefixes_oldest_first_then_fails_cleanly() {
    let file = model_file();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let metrics = EngineMetrics::default();
    let model = cpu_model();
    // Two blocks in all: each short request takes one.
    model.set_kv_budget(64, 2);
    let never = StepFault::OutOfMemoryAt(u64::MAX);
    let mut worker = worker_with_fault_and_prefix(model, &tokenizer, &metrics, never, 4);
    let run = |worker: &mut Worker<'_, Model>, id: u64, prompt: &str| {
        let rx = admit(worker, id, prompt);
        while !worker.active.is_empty() {
            worker.step();
        }
        rx
    };
    let prompts = [
        "The first prompt, about the sea and the ships that sail on it.",
        "A second prompt, about mountains, snow and the people who climb.",
        "Third: a prompt about deserts, their sand, heat and long nights.",
    ];
    for (i, p) in prompts.iter().enumerate() {
        let rx = run(&mut worker, i as u64, p);
        assert!(
            rx.try_iter()
                .any(|e| matches!(e, EngineEvent::Finished { .. })),
            "request {i}"
        );
    }
    // The third needed the block of the first (evicted); the second's is kept.
    let m = metrics.snapshot();
    assert_eq!((m.completed, m.failed), (3, 0), "{m:?}");
    assert_eq!(worker.prefix.clear(), 2);
    // Two sequences in one step with a budget of one block: nothing to evict, the second one
    // fails alone with the pool's error; the first runs to its end.
    worker.model.set_kv_budget(64, 1);
    let a = admit(&mut worker, 10, prompts[1]);
    let b = admit(&mut worker, 11, prompts[2]);
    while !worker.active.is_empty() {
        worker.step();
    }
    let msg = failure(&b);
    assert!(msg.contains("KV cache full"), "{msg}");
    assert!(
        a.try_iter()
            .any(|e| matches!(e, EngineEvent::Finished { .. }))
    );
    let m = metrics.snapshot();
    assert_eq!((m.completed, m.failed), (4, 1), "{m:?}");
    // The engine goes on: a short request runs.
    let rx = run(&mut worker, 12, prompts[0]);
    assert!(
        rx.try_iter()
            .any(|e| matches!(e, EngineEvent::Finished { .. }))
    );
}
