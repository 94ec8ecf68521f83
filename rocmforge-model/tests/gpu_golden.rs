//! GPU golden suite (harness-free; needs a GPU, the compiled kernels and the FULL
//! SmolLM2-135M-Instruct Q4_1 file; fails loudly, never skips, without them): the checks
//! of the CPU golden tests (`golden_smollm2.rs`) against llama.cpp's outputs, run by
//! [`Model`], plus the GPU engine check and GPU tokens/s.
//!
//! The model: `$ROCMFORGE_GOLDEN_MODEL`, else `models/SmolLM2-135M-Instruct.Q4_1.gguf` under
//! the working directory, else under the repository this was built from. The reference
//! (llama.cpp's ids, continuations, perplexity) is the CPU golden test's JSON, compiled in;
//! the perplexity text is `$ROCMFORGE_GOLDEN_TEXT`, else the CPU test's `gpl-3.txt`,
//! compiled in as well (so the binary travels alone).
//!
//! Last line: "N passed, M failed"; exit status 0 only when M = 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "gpu_common/engine_check.rs"]
mod engine_check;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use rocmforge_gguf::GgufFile;
use rocmforge_model::tokenizer::Tokenizer;
use rocmforge_model::{
    GenerateParams, Model, SamplingParams, generate, greedy, perplexity, predict_next,
};
use serde_json::Value;

const REFERENCE_JSON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/reference/smollm2-135m-instruct-q4_1.json"
));
const GPL3_TEXT: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shared/testdata/gpl-3.txt"
));
const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

type Check = Result<String, String>;

struct Ctx {
    path: PathBuf,
    reference: Value,
    tok: Tokenizer,
    gpu: Model,
}

struct GreedyCase {
    prompt: String,
    continuation: String,
    ids: Vec<u32>,
    n_prompt: usize,
    n_predict: usize,
}

fn greedy_cases(r: &Value) -> Result<Vec<GreedyCase>, String> {
    let cases = r["greedy"].as_array().ok_or("reference: no greedy cases")?;
    cases
        .iter()
        .map(|c| {
            Ok(GreedyCase {
                prompt: c["prompt"].as_str().ok_or("prompt")?.to_string(),
                continuation: c["continuation"]
                    .as_str()
                    .ok_or("continuation")?
                    .to_string(),
                ids: serde_json::from_value(c["ids"].clone()).map_err(|e| e.to_string())?,
                n_prompt: c["n_prompt"].as_u64().ok_or("n_prompt")? as usize,
                n_predict: c["n_predict"].as_u64().ok_or("n_predict")? as usize,
            })
        })
        .collect()
}

fn teacher_forcing(c: &Ctx) -> Check {
    let (mut matched, mut total) = (0usize, 0usize);
    let mut first_misses = Vec::new();
    let mut lines = Vec::new();
    for (ci, case) in greedy_cases(&c.reference)?.iter().enumerate() {
        let input = &case.ids[..case.ids.len() - 1];
        let next = predict_next(&c.gpu, input).map_err(|e| e.to_string())?;
        let start = case.n_prompt - 1;
        let mut case_matched = 0;
        for (offset, (got, want)) in next[start..].iter().zip(&case.ids[start + 1..]).enumerate() {
            if got == want {
                case_matched += 1;
            } else if offset == 0 {
                first_misses.push(ci);
            }
        }
        let n = input.len() + 1 - case.n_prompt;
        lines.push(format!("case {ci} {case_matched}/{n}"));
        matched += case_matched;
        total += n;
    }
    let pct = 100.0 * matched as f64 / total.max(1) as f64;
    let msg = format!(
        "{matched}/{total} = {pct:.1}% of positions match llama.cpp ({}); first position wrong in cases {first_misses:?}",
        lines.join(", ")
    );
    if first_misses.is_empty() && pct >= 90.0 {
        Ok(msg)
    } else {
        Err(msg)
    }
}

fn free_running(c: &Ctx) -> Check {
    let cases = greedy_cases(&c.reference)?;
    let mut exact = 0;
    let mut lines = Vec::new();
    for (ci, case) in cases.iter().enumerate() {
        let prompt = c
            .tok
            .encode(&case.prompt, true, true)
            .map_err(|e| e.to_string())?;
        if prompt != case.ids[..case.n_prompt] {
            return Err(format!("case {ci}: prompt tokens differ from llama.cpp's"));
        }
        let params = GenerateParams {
            max_tokens: case.n_predict,
            sampling: SamplingParams::greedy(),
            stop: Vec::new(),
        };
        let mut cache = c
            .gpu
            .new_cache(case.n_prompt + case.n_predict)
            .map_err(|e| e.to_string())?;
        let mut streamed = String::new();
        let out = generate(&c.gpu, &c.tok, &mut cache, &prompt, &params, |t| {
            streamed.push_str(t)
        })
        .map_err(|e| e.to_string())?;
        if streamed != out.text {
            return Err(format!(
                "case {ci}: streamed text differs from the returned text"
            ));
        }
        let expected = &case.ids[case.n_prompt..];
        let same = out.tokens == expected && out.text == case.continuation;
        let agree = out
            .tokens
            .iter()
            .zip(expected)
            .take_while(|(a, b)| a == b)
            .count();
        lines.push(format!(
            "case {ci} {} ({agree}/{} leading)",
            if same { "exact" } else { "differs" },
            expected.len()
        ));
        exact += usize::from(same);
    }
    Ok(format!(
        "{exact}/{} exact: {}",
        cases.len(),
        lines.join(", ")
    ))
}

fn perplexity_gpl3(c: &Ctx) -> Check {
    let case = &c.reference["perplexity"][0];
    let n_ctx = case["n_ctx"]
        .as_u64()
        .ok_or("reference: perplexity n_ctx")? as usize;
    let expected = case["ppl"].as_f64().ok_or("reference: perplexity ppl")?;
    let text = match std::env::var_os("ROCMFORGE_GOLDEN_TEXT") {
        Some(p) => std::fs::read_to_string(&p)
            .map_err(|e| format!("{}: {e}", PathBuf::from(&p).display()))?,
        None => GPL3_TEXT.to_string(),
    };
    let tokens = c
        .tok
        .encode(&text, true, false)
        .map_err(|e| e.to_string())?;
    let bos = if c.tok.add_bos() {
        c.tok.bos_id()
    } else {
        None
    };
    let t0 = Instant::now();
    let r = perplexity(&c.gpu, &tokens, n_ctx, bos, |_, _, _| {}).map_err(|e| e.to_string())?;
    let rel = (r.ppl - expected).abs() / expected;
    let msg = format!(
        "PPL {:.4} vs llama.cpp {expected} at ctx {n_ctx} ({:.2}% off, {} chunks, {:.2} s)",
        r.ppl,
        100.0 * rel,
        r.chunks,
        t0.elapsed().as_secs_f64()
    );
    if rel <= 0.02 { Ok(msg) } else { Err(msg) }
}

fn speed(c: &Ctx) -> Check {
    let prompt: Vec<u32> = c
        .tok
        .encode(
            &GPL3_TEXT.chars().take(4000).collect::<String>(),
            true,
            false,
        )
        .map_err(|e| e.to_string())?
        .into_iter()
        .take(512)
        .collect();
    greedy(&c.gpu, &prompt, 8).map_err(|e| e.to_string())?; // warm-up
    let run = greedy(&c.gpu, &prompt, 128).map_err(|e| e.to_string())?;
    let ok = run.prefill_tokens_per_s.is_finite()
        && run.prefill_tokens_per_s > 0.0
        && run.decode_tokens_per_s.is_finite()
        && run.decode_tokens_per_s > 0.0;
    let msg = format!(
        "prefill {} tokens: {:.0} tokens/s; decode 128 tokens: {:.1} tokens/s",
        prompt.len(),
        run.prefill_tokens_per_s,
        run.decode_tokens_per_s
    );
    if ok { Ok(msg) } else { Err(msg) }
}

/// A batch of 4 one-token rows takes a different matvec kernel than one row alone (the
/// one-launch decode kernel serves a single token), so sums round differently and greedy text
/// can part at a near-tie after a few tokens (the H100 run of 2026-11-27 saw 1 of 4 identical to
/// 32 tokens). The check holds the first token and every request finishing; the identical
/// count is reported.
fn engine(c: &Ctx) -> Check {
    engine_check::concurrent_vs_alone(
        engine_check::Strictness::FirstToken,
        &c.path,
        &[
            "The capital of France is",
            "Once upon a time, in a small village,",
            "def fibonacci(n):",
            "The three primary colors are",
        ],
        32,
    )
}

fn model_path() -> PathBuf {
    if let Some(p) = std::env::var_os("ROCMFORGE_GOLDEN_MODEL") {
        return PathBuf::from(p);
    }
    let here = PathBuf::from("models").join(MODEL_FILE);
    if here.exists() {
        return here;
    }
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models")
        .join(MODEL_FILE)
}

fn setup() -> Result<Ctx, String> {
    let path = model_path();
    let file = GgufFile::open(&path).map_err(|e| {
        format!(
            "the full SmolLM2 model {}: {e} (set ROCMFORGE_GOLDEN_MODEL to the 98 MB \
             SmolLM2-135M-Instruct.Q4_1.gguf; this suite never runs on a cut model)",
            path.display()
        )
    })?;
    let tok = Tokenizer::from_gguf(&file).map_err(|e| e.to_string())?;
    if file
        .tensors()
        .iter()
        .filter(|t| t.name.ends_with("attn_q.weight"))
        .count()
        != 30
    {
        return Err(format!(
            "{} is not the full 30-block SmolLM2 file",
            path.display()
        ));
    }
    let reference: Value = serde_json::from_str(REFERENCE_JSON).map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let gpu = rocmforge_tensor::Backend::hip(0)
        .map_err(|e| e.to_string())
        .and_then(|be| Model::open(&path, be).map_err(|e| e.to_string()))
        .map_err(|e| format!("Model::open: {e}"))?;
    println!(
        "model {} on {} loaded in {:.2} s",
        path.display(),
        gpu.backend().name(),
        t0.elapsed().as_secs_f64()
    );
    Ok(Ctx {
        path,
        reference,
        tok,
        gpu,
    })
}

fn main() -> ExitCode {
    let ctx = match setup() {
        Ok(c) => c,
        Err(e) => {
            println!("FAIL setup: {e}");
            println!("0 passed, 1 failed");
            return ExitCode::FAILURE;
        }
    };
    type Test = fn(&Ctx) -> Check;
    let tests: [(&str, Test); 5] = [
        ("golden_teacher_forcing", teacher_forcing),
        ("golden_free_running_greedy", free_running),
        ("golden_perplexity_gpl3_ctx128", perplexity_gpl3),
        ("gpu_tokens_per_s", speed),
        ("engine_4_concurrent_vs_alone", engine),
    ];
    let (mut passed, mut failed) = (0, 0);
    for (name, t) in tests {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| t(&ctx)))
            .unwrap_or_else(|_| Err("panicked".to_string()));
        match r {
            Ok(msg) => {
                passed += 1;
                println!("PASS {name}: {msg}");
            }
            Err(msg) => {
                failed += 1;
                println!("FAIL {name}: {msg}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
