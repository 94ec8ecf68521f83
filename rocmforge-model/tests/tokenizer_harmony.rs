//! gpt-oss's o200k_harmony markers, as llama.cpp 0.5.0's `llama-vocab.cpp` treats them: the GPT-2
//! test vocabulary with seven tokens renamed to the markers (control tokens, as gpt-oss's GGUFs
//! mark them). `<|return|>` and `<|call|>` end generation; `<|end|>`, which only closes one
//! message of an answer, does not where both exist; `<|channel|>`, `<|message|>`, `<|start|>`,
//! `<|constrain|>` and `<|end|>` render as text (user-defined) so that the server can read the
//! answer's channels, and are matched in any input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rocmforge_gguf::GgufFile;
use rocmforge_model::tokenizer::{TokenType, Tokenizer, TokenizerData};

const MARKERS: [&str; 7] = [
    "<|start|>",
    "<|end|>",
    "<|message|>",
    "<|channel|>",
    "<|constrain|>",
    "<|return|>",
    "<|call|>",
];

fn gpt2_with(markers: &[&str]) -> Tokenizer {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata/vocab/ggml-vocab-gpt-2.gguf");
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut data = TokenizerData::from_metadata(file.metadata()).unwrap();
    // Ids far from the bytes and merges the texts below use.
    let base = 50_000;
    if data.token_types.is_empty() {
        data.token_types = vec![1; data.tokens.len()];
    }
    for (i, m) in markers.iter().enumerate() {
        data.tokens[base + i] = m.to_string();
        data.token_types[base + i] = 3;
    }
    Tokenizer::from_data(data).unwrap()
}

#[test]
fn harmony_markers_end_and_render_as_llama_cpp_does() {
    let tok = gpt2_with(&MARKERS);
    let id = |t: &str| tok.token_id(t).unwrap();
    assert!(tok.is_eog(id("<|return|>")));
    assert!(tok.is_eog(id("<|call|>")));
    assert!(!tok.is_eog(id("<|end|>")));
    for m in [
        "<|start|>",
        "<|end|>",
        "<|message|>",
        "<|channel|>",
        "<|constrain|>",
    ] {
        assert_eq!(tok.token_type(id(m)), Some(TokenType::UserDefined), "{m}");
    }
    let answer = "<|channel|>final<|message|>Hi<|end|><|start|>assistant<|return|>";
    let ids = tok.encode(answer, false, true).unwrap();
    assert_eq!(ids[0], id("<|channel|>"));
    assert_eq!(*ids.last().unwrap(), id("<|return|>"));
    // Decoded as generated text: every marker but the end-of-generation one is there.
    assert_eq!(
        tok.decode(&ids),
        "<|channel|>final<|message|>Hi<|end|><|start|>assistant"
    );
    // User-defined markers are matched even without special-token parsing.
    let plain = tok.encode("<|channel|>x", false, false).unwrap();
    assert_eq!(plain[0], id("<|channel|>"));
}

#[test]
fn end_stays_an_end_without_return_and_call() {
    // Phi-3's `<|end|>` ends generation: only harmony's trio changes it.
    let tok = gpt2_with(&["<|end|>", "<|channel|>"]);
    assert!(tok.is_eog(tok.token_id("<|end|>").unwrap()));
    assert_eq!(
        tok.token_type(tok.token_id("<|end|>").unwrap()),
        Some(TokenType::Control)
    );
}
