//! The real vocabulary-only GGUF files from llama.cpp's tokenizer tests all parse.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rocmforge_gguf::GgufFile;

fn vocab_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/testdata/vocab")
}

fn open(name: &str) -> GgufFile {
    let path = vocab_dir().join(name);
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_vocab_file_parses_with_zero_tensors() {
    let mut seen = 0;
    for entry in std::fs::read_dir(vocab_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "gguf") {
            let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(file.tensors().is_empty(), "{}", path.display());
            assert!(file.metadata().len() > 5, "{}", path.display());
            assert!(file.version() == 2 || file.version() == 3);
            let tokens = file
                .metadata()
                .get_str_array("tokenizer.ggml.tokens")
                .unwrap();
            assert!(
                tokens.len() > 1000,
                "{}: {} tokens",
                path.display(),
                tokens.len()
            );
            seen += 1;
        }
    }
    assert_eq!(seen, 4, "expected the four vocab files");
}

#[test]
fn llama_spm_vocab_keys() {
    let file = open("ggml-vocab-llama-spm.gguf");
    let md = file.metadata();
    assert_eq!(md.get_str("tokenizer.ggml.model").unwrap(), "llama");
    assert_eq!(file.architecture().unwrap(), "llama");
    let tokens = md.get_str_array("tokenizer.ggml.tokens").unwrap();
    assert_eq!(tokens.len(), 32000);
    assert_eq!(tokens[0], "<unk>");
    assert_eq!(tokens[1], "<s>");
    assert_eq!(
        md.get_f32_array("tokenizer.ggml.scores").unwrap().len(),
        32000
    );
    assert_eq!(
        md.get_i32_array("tokenizer.ggml.token_type").unwrap().len(),
        32000
    );
    assert_eq!(md.get_u32("tokenizer.ggml.bos_token_id").unwrap(), 1);
    assert_eq!(file.alignment(), 32);
}

#[test]
fn gpt2_vocab_keys() {
    let file = open("ggml-vocab-gpt-2.gguf");
    let md = file.metadata();
    assert_eq!(md.get_str("tokenizer.ggml.model").unwrap(), "gpt2");
    let merges = md.get_str_array("tokenizer.ggml.merges").unwrap();
    assert!(merges.len() > 40000, "{} merges", merges.len());
    assert_eq!(
        md.get_str_array("tokenizer.ggml.tokens").unwrap().len(),
        50257
    );
}

#[test]
fn wrong_type_errors_name_key_and_types() {
    let file = open("ggml-vocab-llama-spm.gguf");
    let err = file.metadata().get_u32("tokenizer.ggml.model").unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("tokenizer.ggml.model"), "{msg}");
    assert!(msg.contains("u32") && msg.contains("string"), "{msg}");
    let err = file.metadata().get_str("no.such.key").unwrap_err();
    assert!(err.to_string().contains("no.such.key"));
    assert_eq!(file.metadata().opt_u32("no.such.key").unwrap(), None);
}
