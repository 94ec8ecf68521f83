//! Constrained sampling over the real SmolLM2 vocabulary: the masks llguidance computes from
//! our token environment let through only tokens that keep the output valid, and a walk that
//! always takes an allowed token ends in a document that an independent parser (serde_json)
//! reads and that meets the schema.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use rocmforge_gguf::GgufFile;
use rocmforge_model::ModelError;
use rocmforge_model::constraint::{Constraint, Grammar, GrammarCompiler};
use rocmforge_model::tokenizer::Tokenizer;
use serde_json::{Value, json};

fn smollm2() -> Arc<Tokenizer> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing (run `cargo xtask models`)",
        path.display()
    );
    let file = GgufFile::open(&path).unwrap();
    Arc::new(Tokenizer::from_gguf(&file).unwrap())
}

/// The ids a constraint allows next (found through `mask_logits` on a padded row).
fn allowed(c: &Constraint, vocab: usize) -> Vec<u32> {
    let mut logits = vec![0.0f32; vocab + 64];
    c.mask_logits(&mut logits);
    assert!(
        logits[vocab..].iter().all(|l| *l == f32::NEG_INFINITY),
        "padding rows past the vocabulary must be masked"
    );
    (0..vocab as u32)
        .filter(|&t| logits[t as usize].is_finite())
        .collect()
}

/// Walks the grammar taking pseudo-random allowed tokens (never an end token before the
/// grammar is complete); returns the generated text.
fn walk(tok: &Tokenizer, mut c: Constraint, seed: u64) -> String {
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut ids = Vec::new();
    for _ in 0..400 {
        if c.is_complete() {
            return tok.decode(&ids);
        }
        let ok: Vec<u32> = allowed(&c, tok.vocab_size())
            .into_iter()
            .filter(|&t| !tok.is_eog(t))
            .collect();
        assert!(
            !ok.is_empty(),
            "no token allowed after {:?}",
            tok.decode(&ids)
        );
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        let t = ok[(state >> 33) as usize % ok.len()];
        c.accept(t).unwrap();
        ids.push(t);
    }
    panic!(
        "grammar not complete after 400 tokens: {:?}",
        tok.decode(&ids)
    );
}

#[test]
fn json_schema_walks_end_in_valid_documents() {
    let tok = smollm2();
    let compiler = GrammarCompiler::new(tok.clone()).unwrap();
    let schema = json!({
        "type": "object",
        "properties": {
            "color": {"enum": ["red", "green", "blue"]},
            "count": {"type": "integer", "minimum": 0, "maximum": 9},
            "tags": {"type": "array", "items": {"type": "string", "maxLength": 4}, "maxItems": 2}
        },
        "required": ["color", "count", "tags"],
        "additionalProperties": false
    });
    let first = compiler
        .compile(&Grammar::JsonSchema(schema.clone()))
        .unwrap();
    // Every token allowed first starts the object.
    for t in allowed(&first, tok.vocab_size()) {
        let bytes = tok.token_to_bytes(t);
        assert!(
            bytes.first() == Some(&b'{'),
            "token {t} {bytes:?} allowed first"
        );
    }
    for seed in 0..10 {
        let c = compiler
            .compile(&Grammar::JsonSchema(schema.clone()))
            .unwrap();
        let text = walk(&tok, c, seed);
        let doc: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert!(
            ["red", "green", "blue"].contains(&doc["color"].as_str().unwrap()),
            "{text}"
        );
        assert!(doc["count"].as_u64().unwrap() <= 9, "{text}");
        let tags = doc["tags"].as_array().unwrap();
        assert!(tags.len() <= 2, "{text}");
        assert!(
            tags.iter()
                .all(|t| t.as_str().unwrap().chars().count() <= 4),
            "{text}"
        );
        assert_eq!(doc.as_object().unwrap().len(), 3, "{text}");
    }
}

#[test]
fn a_completed_grammar_allows_only_end_tokens_and_lark_is_accepted() {
    let tok = smollm2();
    let compiler = GrammarCompiler::new(tok.clone()).unwrap();
    let mut c = compiler
        .compile(&Grammar::Lark("start: \"yes\" | \"no\"".to_string()))
        .unwrap();
    let yes = tok.encode("yes", false, false).unwrap();
    assert_eq!(yes.len(), 1, "'yes' is one token of SmolLM2");
    assert!(!c.is_complete());
    c.accept(yes[0]).unwrap();
    assert!(c.is_complete());
    let next = allowed(&c, tok.vocab_size());
    assert!(
        !next.is_empty() && next.iter().all(|&t| tok.is_eog(t)),
        "{next:?}"
    );
    // A token the grammar does not allow is refused.
    let mut c = compiler
        .compile(&Grammar::Lark("start: \"yes\"".to_string()))
        .unwrap();
    let no = tok.encode("no", false, false).unwrap();
    assert!(matches!(c.accept(no[0]), Err(ModelError::Grammar { .. })));
    // json_object: any object, in the compact layout (", " and ": " separators); a
    // document that is not an object is refused from its first token.
    let mut c = compiler.compile(&Grammar::JsonObject).unwrap();
    for t in tok
        .encode("{\"a\": [1, true], \"b\": \"x\"}", false, false)
        .unwrap()
    {
        assert!(!c.is_complete());
        c.accept(t).unwrap();
    }
    assert!(c.is_complete());
    let c = compiler.compile(&Grammar::JsonObject).unwrap();
    let array = tok.encode("[", false, false).unwrap();
    assert!(!c.allows(array[0]));
}

#[test]
fn grammars_llguidance_rejects_are_grammar_errors() {
    let compiler = GrammarCompiler::new(smollm2()).unwrap();
    for bad in [
        Grammar::Lark("start: ( \"a\"".to_string()),
        Grammar::JsonSchema(json!({"type": "object", "minProperties": "many"})),
        Grammar::JsonSchema(json!({"type": "frobnicate"})),
    ] {
        match compiler.compile(&bad) {
            Err(ModelError::Grammar { reason, .. }) => assert!(!reason.is_empty()),
            other => panic!("{bad:?}: {other:?}"),
        }
    }
}
