//! llama.cpp's own vocabulary tests: every case of `../shared/testdata/vocab/*.gguf.inp` must
//! tokenize (no BOS, special parsing off) to the ids of the matching line of `*.gguf.out`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rocmforge_gguf::GgufFile;
use rocmforge_model::tokenizer::Tokenizer;

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
    let inp = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.inp"))).unwrap();
    let out = std::fs::read_to_string(dir.join(format!("ggml-vocab-{name}.gguf.out"))).unwrap();
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    // The text after the last separator is empty and not a case.
    assert_eq!(
        texts.pop(),
        Some(""),
        "{name}: the .inp file should end with a separator"
    );
    let expected: Vec<Vec<u32>> = out
        .lines()
        .map(|l| l.split_whitespace().map(|t| t.parse().unwrap()).collect())
        .collect();
    assert_eq!(
        texts.len(),
        expected.len(),
        "{name}: .inp and .out disagree on the number of cases"
    );
    let mut failures = Vec::new();
    for (text, want) in texts.iter().zip(&expected) {
        let got = tok.encode(text, false, false).unwrap();
        if &got != want {
            failures.push(format!("{name}: {text:?}\n  got  {got:?}\n  want {want:?}"));
        }
    }
    (texts.len(), texts.len() - failures.len(), failures)
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
