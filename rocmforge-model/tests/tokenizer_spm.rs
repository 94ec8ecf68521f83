//! SentencePiece vocabularies (llama-spm, phi-3): byte fallback, streaming, round trips, BOS and
//! user-defined tokens.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rocmforge_gguf::GgufFile;
use rocmforge_model::tokenizer::{TokenType, Tokenizer, VocabKind};

fn vocab(name: &str) -> Tokenizer {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata/vocab")
        .join(format!("ggml-vocab-{name}.gguf"));
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    Tokenizer::from_gguf(&file).unwrap()
}

#[test]
fn spm_flags_and_bos() {
    let tok = vocab("llama-spm");
    assert_eq!(tok.kind(), VocabKind::Spm);
    assert!(tok.add_bos());
    assert!(tok.add_space_prefix());
    assert_eq!(
        tok.encode("Hello world", true, false).unwrap(),
        [1, 15043, 3186]
    );
    assert_eq!(
        tok.encode("Hello world", false, false).unwrap(),
        [15043, 3186]
    );
    assert_eq!(tok.encode("", true, false).unwrap(), [1]);
    assert!(tok.encode("", false, false).unwrap().is_empty());
}

#[test]
fn emoji_falls_back_to_byte_tokens_and_streams_whole() {
    let tok = vocab("llama-spm");
    let ids = tok.encode("🦙", false, false).unwrap();
    let bytes: Vec<TokenType> = ids.iter().map(|&id| tok.token_type(id).unwrap()).collect();
    assert!(
        bytes.iter().filter(|&&t| t == TokenType::Byte).count() >= 4,
        "{ids:?}"
    );
    let mut dec = tok.stream_decoder();
    let pieces: Vec<String> = ids.iter().map(|&id| dec.push(id)).collect();
    // Nothing but whole characters comes out: the four bytes of the emoji arrive together.
    assert_eq!(
        pieces.concat(),
        " 🦙",
        "the SPM space prefix is part of the stream: {pieces:?}"
    );
    assert_eq!(pieces.iter().filter(|p| p.contains('🦙')).count(), 1);
    assert!(!dec.has_pending());
    assert_eq!(dec.finish(), "");
}

#[test]
fn stream_decoder_flushes_an_unfinished_character_as_replacement() {
    let tok = vocab("llama-spm");
    let first_byte = tok.token_id("<0xF0>").unwrap();
    let mut dec = tok.stream_decoder();
    assert_eq!(dec.push(first_byte), "");
    assert!(dec.has_pending());
    assert_eq!(dec.finish(), "\u{FFFD}");
    // A byte that can never start a character is replaced at once.
    let bad = tok.token_id("<0xFF>").unwrap();
    assert_eq!(dec.push(bad), "\u{FFFD}");
}

#[test]
fn spm_round_trips() {
    for name in ["llama-spm", "phi-3"] {
        let tok = vocab(name);
        for text in [
            "Hello world",
            " leading space",
            "multiple   spaces\tand\ttabs\n\nnewlines",
            "Ünïcödé — “quotes” and emoji 🦙🔥 ok?",
            "日本語のテキスト",
            "",
        ] {
            let ids = tok.encode(text, true, false).unwrap();
            assert_eq!(tok.decode(&ids), text, "{name}: {ids:?}");
        }
    }
}

#[test]
fn phi3_user_defined_tokens_are_matched_even_without_special_parsing() {
    let tok = vocab("phi-3");
    let eos_text = tok.token_text(2).unwrap();
    assert_eq!(eos_text, "</s>");
    assert_eq!(tok.token_type(2), Some(TokenType::UserDefined));
    let ids = tok.encode("a</s>b", false, false).unwrap();
    assert!(ids.contains(&2), "{ids:?}");
    // Control tokens stay text unless parsing is on.
    let plain = tok.encode("<|end|>", false, false).unwrap();
    assert!(
        !plain.contains(&tok.token_id("<|end|>").unwrap()),
        "{plain:?}"
    );
    let parsed = tok.encode("<|end|>", false, true).unwrap();
    assert_eq!(parsed, [tok.token_id("<|end|>").unwrap()]);
}

#[test]
fn phi3_end_of_generation_tokens() {
    let tok = vocab("phi-3");
    let end = tok.token_id("<|end|>").unwrap();
    let endoftext = tok.token_id("<|endoftext|>").unwrap();
    assert_eq!(tok.eos_id(), Some(endoftext));
    assert!(tok.is_eog(end));
    assert!(tok.is_eog(endoftext));
    assert!(!tok.is_eog(tok.token_id("<|user|>").unwrap()));
}
