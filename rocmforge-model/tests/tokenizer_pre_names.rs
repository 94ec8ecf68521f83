//! Every `tokenizer.ggml.pre` name llama.cpp 0.5.0 knows, against llama.cpp itself: GPT-2's
//! vocabulary (`../shared/testdata/vocab/ggml-vocab-gpt-2.gguf`) with `tokenizer.ggml.pre` set to each
//! name tokenizes a multilingual text exactly as `llama-tokenize` did
//! (`tests/data/pre_tokenizers/llama_tokenize_gpt2_vocab.json`, 19 distinct outputs over 90 names).
//! `whitespace` is the one name left out: llama.cpp crashes on it with a `gpt2` vocabulary (it is
//! meant for the `whitespace` tokenizer model, which we refuse).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use rocmforge_gguf::GgufFile;
use rocmforge_model::tokenizer::{KNOWN_PRE_TOKENIZERS, Tokenizer, TokenizerData};
use serde_json::Value;

#[test]
fn every_pre_tokenizer_name_splits_as_llama_cpp_does() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let reference: Value = serde_json::from_str(
        &std::fs::read_to_string(
            root.join("tests/data/pre_tokenizers/llama_tokenize_gpt2_vocab.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let text = reference["text"].as_str().unwrap();
    let vocab =
        GgufFile::open(root.join("../../shared/testdata/vocab/ggml-vocab-gpt-2.gguf")).unwrap();
    let data = TokenizerData::from_metadata(vocab.metadata()).unwrap();
    let mut covered = BTreeSet::new();
    let mut failures = Vec::new();
    for case in reference["cases"].as_array().unwrap() {
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as u32)
            .collect();
        for name in case["pre"].as_array().unwrap() {
            let name = name.as_str().unwrap();
            covered.insert(name.to_string());
            let tok = Tokenizer::from_data(TokenizerData {
                pre: Some(name.to_string()),
                ..data.clone()
            })
            .unwrap_or_else(|e| panic!("{name}: {e}"));
            let got = tok.encode(text, false, false).unwrap();
            if got != want {
                let at = got.iter().zip(&want).take_while(|(a, b)| a == b).count();
                failures.push(format!(
                    "{name}: differs at token {at}: got {:?}, llama.cpp {:?}",
                    &got[at..(at + 6).min(got.len())],
                    &want[at..(at + 6).min(want.len())]
                ));
            }
        }
    }
    let expected: BTreeSet<String> = KNOWN_PRE_TOKENIZERS
        .iter()
        .filter(|&&n| n != "whitespace")
        .map(|n| n.to_string())
        .collect();
    assert_eq!(covered, expected, "names covered by the reference");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
