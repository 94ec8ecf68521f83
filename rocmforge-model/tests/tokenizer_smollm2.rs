//! The tokenizer of the real SmolLM2-135M-Instruct file against llama.cpp's reference outputs,
//! plus round trips, end-of-generation ids and streaming decode on the same vocabulary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rocmforge_gguf::GgufFile;
use rocmforge_model::tokenizer::{Tokenizer, VocabKind};

const MODEL: &str = "SmolLM2-135M-Instruct.Q4_1.gguf";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn tokenizer() -> Tokenizer {
    let path = repo_root().join("models").join(MODEL);
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models` to fetch the test models",
        path.display()
    );
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    Tokenizer::from_gguf(&file).unwrap()
}

fn reference() -> serde_json::Value {
    let path = repo_root().join("../shared/testdata/reference/smollm2-135m-instruct-q4_1.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

#[test]
fn every_reference_tokenize_case_is_exact() {
    let tok = tokenizer();
    let reference = reference();
    let cases = reference["tokenize"].as_array().unwrap();
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    for case in cases {
        let text = case["text"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| u32::try_from(v.as_u64().unwrap()).unwrap())
            .collect();
        // Reference convention: no BOS added, special-token text parsed.
        let got = tok.encode(text, false, true).unwrap();
        if got != want {
            failures.push(format!("{text:?}\n  got  {got:?}\n  want {want:?}"));
        }
    }
    eprintln!(
        "smollm2 reference tokenize: {}/{} exact",
        cases.len() - failures.len(),
        cases.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn greedy_prompts_tokenize_as_the_reference_ids_begin() {
    let tok = tokenizer();
    let reference = reference();
    for case in reference["greedy"].as_array().unwrap() {
        let prompt = case["prompt"].as_str().unwrap();
        let cont = case["continuation"].as_str().unwrap();
        let want: Vec<u32> = case["ids"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| u32::try_from(v.as_u64().unwrap()).unwrap())
            .collect();
        let got = tok.encode(&format!("{prompt}{cont}"), false, true).unwrap();
        assert_eq!(got, want, "prompt {prompt:?}");
    }
}

#[test]
fn vocabulary_flags_follow_the_file() {
    let tok = tokenizer();
    assert_eq!(tok.kind(), VocabKind::Bpe);
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!(tok.bos_id(), Some(1));
    assert_eq!(tok.eos_id(), Some(2));
    assert!(
        !tok.add_bos(),
        "SmolLM2 sets tokenizer.ggml.add_bos_token = false"
    );
    assert_eq!(tok.encode("Hello world", true, true).unwrap(), [19556, 905]);
}

#[test]
fn end_of_generation_ids_include_im_end_and_endoftext() {
    let tok = tokenizer();
    assert!(tok.is_eog(2), "<|im_end|>");
    assert!(tok.is_eog(0), "<|endoftext|>");
    assert!(!tok.is_eog(1), "<|im_start|> does not end generation");
    assert!(!tok.is_eog(19556));
}

#[test]
fn special_text_is_plain_text_when_parsing_is_off() {
    let tok = tokenizer();
    let parsed = tok.encode("<|im_start|>user", false, true).unwrap();
    assert_eq!(parsed[0], 1);
    let plain = tok.encode("<|im_start|>user", false, false).unwrap();
    assert!(!plain.contains(&1), "{plain:?}");
    assert_eq!(tok.decode(&plain), "<|im_start|>user");
}

#[test]
fn decode_of_encode_gives_the_text_back() {
    let tok = tokenizer();
    let reference = reference();
    let mut texts: Vec<String> = reference["tokenize"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["text"].as_str().unwrap().to_string())
        .collect();
    texts.retain(|t| !t.contains("<|"));
    texts.extend(
        [
            "",
            " ",
            "\n\n",
            "naïve café — 日本語のテキスト 🦙🔥",
            "x = [1, 22, 333]; // ok",
        ]
        .map(String::from),
    );
    for text in &texts {
        let ids = tok.encode(text, false, false).unwrap();
        assert_eq!(&tok.decode(&ids), text);
    }
}

#[test]
fn control_tokens_render_empty_unless_asked() {
    let tok = tokenizer();
    let ids = tok
        .encode("<|im_start|>assistant\nHi<|im_end|>", false, true)
        .unwrap();
    assert_eq!(tok.decode(&ids), "assistant\nHi");
    assert_eq!(
        tok.decode_with_special(&ids),
        "<|im_start|>assistant\nHi<|im_end|>"
    );
    assert!(tok.token_to_bytes(2).is_empty());
}

#[test]
fn stream_decoder_holds_back_split_characters() {
    let tok = tokenizer();
    // The reference tokenizes the llama emoji as three byte-level tokens.
    let ids = tok.encode("emoji 🦙 ok", false, false).unwrap();
    let mut dec = tok.stream_decoder();
    let mut pieces = Vec::new();
    for &id in &ids {
        pieces.push(dec.push(id));
    }
    assert!(!dec.has_pending());
    assert_eq!(pieces.concat(), "emoji 🦙 ok");
    // Every emitted piece is valid UTF-8 on its own (it is a String) and the emoji never arrives in halves.
    assert!(pieces.iter().any(|p| p.contains('🦙')), "{pieces:?}");
    assert!(
        pieces.iter().any(String::is_empty),
        "some token must have been held back: {pieces:?}"
    );
}

#[test]
fn long_texts_round_trip() {
    let tok = tokenizer();
    let gpl = std::fs::read_to_string(repo_root().join("../shared/testdata/gpl-3.txt")).unwrap();
    let ids = tok.encode(&gpl, false, false).unwrap();
    assert!(ids.len() > 1000, "{}", ids.len());
    assert_eq!(tok.decode(&ids), gpl);
    // Pathological runs for the pre-tokenizer's backtracking regexes.
    for text in [
        format!("{}a", " ".repeat(100_000)),
        format!("{}\n", "\t \n".repeat(20_000)),
        "9".repeat(50_000),
        "!?".repeat(30_000),
    ] {
        let ids = tok.encode(&text, false, false).unwrap();
        assert_eq!(tok.decode(&ids), text);
    }
}

#[test]
fn tokenizer_can_be_shared_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Tokenizer>();
    let tok = std::sync::Arc::new(tokenizer());
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let tok = std::sync::Arc::clone(&tok);
            std::thread::spawn(move || {
                tok.encode(&format!("thread {i} says hello"), false, false)
                    .unwrap()
            })
        })
        .collect();
    for (i, h) in handles.into_iter().enumerate() {
        let ids = h.join().unwrap();
        assert_eq!(tok.decode(&ids), format!("thread {i} says hello"));
    }
}
