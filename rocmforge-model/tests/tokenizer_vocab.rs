//! llama.cpp's own vocabulary tests: every case of `../shared/testdata/vocab/*.gguf.inp` must
//! tokenize (no BOS, special parsing off) to the ids of the matching line of `*.gguf.out`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rocmforge_gguf::GgufFile;
use rocmforge_model::tokenizer::Tokenizer;

mod vocab_cases;

fn vocab_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/vocab")
}

/// Returns (cases run, cases passed, descriptions of failures).
fn run_vocab(name: &str) -> (usize, usize, Vec<String>) {
    let dir = vocab_dir();
    let gguf = dir.join(format!("ggml-vocab-{name}.gguf"));
    let file = GgufFile::open(&gguf).unwrap_or_else(|e| panic!("opening {}: {e}", gguf.display()));
    let tok = Tokenizer::from_gguf(&file)
        .unwrap_or_else(|e| panic!("tokenizer of {}: {e}", gguf.display()));
    let (total, failures) = vocab_cases::run_cases(&tok, &dir, name);
    (total, total - failures.len(), failures)
}

fn check(name: &str) {
    let (total, passed, failures) = run_vocab(name);
    eprintln!("vocab {name}: {passed}/{total} cases pass");
    assert!(
        failures.is_empty(),
        "{} of {total} cases fail:\n{}",
        failures.len(),
        failures.join("\n")
    );
    assert!(total > 0);
}

#[test]
fn llama_spm_vocab_matches_llama_cpp() {
    check("llama-spm");
}

#[test]
fn phi3_vocab_matches_llama_cpp() {
    check("phi-3");
}

#[test]
fn gpt2_vocab_matches_llama_cpp() {
    check("gpt-2");
}

#[test]
fn llama_bpe_vocab_matches_llama_cpp() {
    check("llama-bpe");
}
