//! Golden tests on the real SmolLM2-135M-Instruct Q4_1 file against llama.cpp's outputs
//! in `../shared/testdata/reference/smollm2-135m-instruct-q4_1.json` (CPU).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::time::Instant;

use rocmforge_gguf::GgufFile;
use rocmforge_model::Model;
use rocmforge_model::tokenizer::Tokenizer;
use rocmforge_model::{
    FinishReason, GenerateParams, SamplingParams, generate, perplexity, predict_next,
};
use serde_json::Value;

const MODEL_FILE: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";
const REFERENCE: &str = "smollm2-135m-instruct-q4_1.json";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn testdata() -> PathBuf {
    repo_root().join("../shared/testdata")
}

fn open_model() -> GgufFile {
    let path = repo_root().join("models").join(MODEL_FILE);
    if !path.exists() {
        panic!(
            "{} is missing: run `cargo xtask models` to fetch the test models",
            path.display()
        );
    }
    GgufFile::open(&path).unwrap()
}

fn reference() -> Value {
    let path = testdata().join("reference").join(REFERENCE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

struct GreedyCase {
    prompt: String,
    continuation: String,
    ids: Vec<u32>,
    n_prompt: usize,
    n_predict: usize,
}

fn greedy_cases() -> Vec<GreedyCase> {
    let r = reference();
    r["greedy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| GreedyCase {
            prompt: c["prompt"].as_str().unwrap().to_string(),
            continuation: c["continuation"].as_str().unwrap().to_string(),
            ids: serde_json::from_value(c["ids"].clone()).unwrap(),
            n_prompt: c["n_prompt"].as_u64().unwrap() as usize,
            n_predict: c["n_predict"].as_u64().unwrap() as usize,
        })
        .collect()
}

#[test]
fn golden_teacher_forcing_matches_llama_cpp() {
    let file = open_model();
    let model = Model::from_file(
        std::sync::Arc::new(file.clone()),
        rocmforge_tensor::Backend::Cpu,
    )
    .unwrap();
    let started = Instant::now();
    let (mut matched, mut total) = (0usize, 0usize);
    let mut first_misses = Vec::new();
    for (ci, case) in greedy_cases().iter().enumerate() {
        let input = &case.ids[..case.ids.len() - 1];
        let next = predict_next(&model, input).unwrap();
        assert_eq!(next.len(), input.len());
        let mut case_matched = 0;
        let start = case.n_prompt - 1;
        let pairs = next[start..].iter().zip(&case.ids[start + 1..]);
        for (offset, (got, want)) in pairs.enumerate() {
            if got == want {
                case_matched += 1;
            } else if offset == 0 {
                first_misses.push(ci);
            }
        }
        let n = input.len() + 1 - case.n_prompt;
        println!("teacher forcing case {ci}: {case_matched}/{n} positions match");
        matched += case_matched;
        total += n;
    }
    let pct = 100.0 * matched as f64 / total as f64;
    println!(
        "teacher forcing: {matched}/{total} = {pct:.1}% ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(
        first_misses.is_empty(),
        "first continuation token wrong in cases {first_misses:?}"
    );
    assert!(pct >= 90.0, "only {pct:.1}% of positions match llama.cpp");
}

#[test]
fn golden_free_running_greedy_continuations() {
    let file = open_model();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let model = Model::from_file(
        std::sync::Arc::new(file.clone()),
        rocmforge_tensor::Backend::Cpu,
    )
    .unwrap();
    let started = Instant::now();
    let cases = greedy_cases();
    let mut exact = 0;
    for (ci, case) in cases.iter().enumerate() {
        let prompt = tokenizer.encode(&case.prompt, true, true).unwrap();
        assert_eq!(
            prompt,
            case.ids[..case.n_prompt],
            "prompt tokens of case {ci}"
        );
        let params = GenerateParams {
            max_tokens: case.n_predict,
            sampling: SamplingParams::greedy(),
            stop: Vec::new(),
        };
        let mut cache = model.new_cache(case.n_prompt + case.n_predict).unwrap();
        let mut streamed = String::new();
        let out = generate(&model, &tokenizer, &mut cache, &prompt, &params, |t| {
            streamed.push_str(t)
        })
        .unwrap();
        assert_eq!(streamed, out.text, "streamed text equals the returned text");
        let expected = &case.ids[case.n_prompt..];
        let same = out.tokens == expected && out.text == case.continuation;
        if expected.len() < case.n_predict {
            // llama.cpp stopped at an end-of-generation token.
            if same {
                assert_eq!(out.finish, FinishReason::EndOfGeneration);
            }
        }
        let agree = out
            .tokens
            .iter()
            .zip(expected)
            .take_while(|(a, b)| a == b)
            .count();
        println!(
            "greedy case {ci}: {} ({agree} leading tokens agree of {}) {:?}",
            if same { "exact" } else { "differs" },
            expected.len(),
            out.text
        );
        exact += usize::from(same);
    }
    println!(
        "free-running greedy: {exact}/{} exact ({:.1} s)",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        exact >= EXACT_GREEDY_FLOOR,
        "only {exact} exact continuations"
    );
}

/// The number of exact continuations this engine achieves (a regression floor).
const EXACT_GREEDY_FLOOR: usize = 1;

#[test]
fn golden_perplexity_gpl3_ctx128() {
    let r = reference();
    let case = &r["perplexity"][0];
    let n_ctx = case["n_ctx"].as_u64().unwrap() as usize;
    let expected = case["ppl"].as_f64().unwrap();
    let text_path = testdata().join(case["text_file"].as_str().unwrap());
    let text = std::fs::read_to_string(&text_path).unwrap();
    let file = open_model();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let model = Model::from_file(
        std::sync::Arc::new(file.clone()),
        rocmforge_tensor::Backend::Cpu,
    )
    .unwrap();
    let tokens = tokenizer.encode(&text, true, false).unwrap();
    let bos = if tokenizer.add_bos() {
        tokenizer.bos_id()
    } else {
        None
    };
    let started = Instant::now();
    let result = perplexity(&model, &tokens, n_ctx, bos, |_, _, _| {}).unwrap();
    let rel = (result.ppl - expected).abs() / expected;
    println!(
        "perplexity: {:.4} vs llama.cpp {expected} ({:.2}% off, {} chunks, {:.1} s)",
        result.ppl,
        100.0 * rel,
        result.chunks,
        started.elapsed().as_secs_f64()
    );
    assert!(
        rel <= 0.02,
        "PPL {:.4} not within 2% of {expected}",
        result.ppl
    );
}

/// Issue 15's embeddings: mean-pooled, unit-length output-normed hidden states, against
/// llama.cpp's `llama-embedding --pooling mean` on the same file (the reference the server's
/// client test uses too); running the sequence in chunks through the cache changes nothing.
#[test]
fn golden_embeddings_match_llama_embedding() {
    let file = std::sync::Arc::new(open_model());
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let model = Model::from_file(file.clone(), rocmforge_model::Backend::Cpu).unwrap();
    let path = repo_root().join("tests/openai_client/llama_embedding_smollm2.json");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let texts = r["texts"].as_array().unwrap();
    let want = r["embeddings"].as_array().unwrap();
    let pooling = rocmforge_model::Pooling::from_gguf(&file, model.config().arch).unwrap();
    assert_eq!(pooling, rocmforge_model::Pooling::Mean);
    let mut got = Vec::new();
    for (text, want) in texts.iter().zip(want) {
        let ids = tokenizer
            .encode(text.as_str().unwrap(), true, true)
            .unwrap();
        let whole = model.embed(&ids, pooling, 512).unwrap();
        let chunked = model.embed(&ids, pooling, 3).unwrap();
        let want: Vec<f32> = want
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap() as f32)
            .collect();
        assert_eq!(whole.len(), model.config().n_embd);
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        assert!((dot(&whole, &whole) - 1.0).abs() < 1e-4, "not unit length");
        let cos = dot(&whole, &want) / dot(&want, &want).sqrt();
        assert!(cos > 0.999, "{text}: cosine {cos} to llama.cpp's embedding");
        let diff = whole
            .iter()
            .zip(&chunked)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(diff < 1e-5, "{text}: chunked embedding differs by {diff}");
        eprintln!("{text}: cosine {cos:.5} to llama.cpp");
        got.push(whole);
    }
    let dot01: f32 = got[0].iter().zip(&got[1]).map(|(x, y)| x * y).sum();
    assert!(dot01 < 0.99, "different texts, same embedding ({dot01})");
}
