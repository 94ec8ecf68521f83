//! Every vocabulary test file that ships in llama.cpp's source tree (`models/ggml-vocab-*.gguf` with
//! `.inp`/`.out`, from the `llama-cpp-python==0.3.36` source distribution, put in
//! `models/ggml-vocab/` by `cargo xtask models`): each file either tokenizes every case exactly as
//! llama.cpp does (no BOS, special parsing off) or is one of [`REFUSED`], whose tokenizer model we do
//! not implement and must refuse with an error naming it. The set of files found must be exactly the
//! set listed here, so a file that starts failing, or a refused one that starts loading, fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use rocmforge_gguf::GgufFile;
use rocmforge_model::tokenizer::Tokenizer;

mod vocab_cases;

/// Files that must pass every case.
const PASSING: &[&str] = &[
    "command-r",
    "deepseek-coder",
    "deepseek-llm",
    "falcon",
    "gemma-4",
    "gpt-2",
    "llama-bpe",
    "llama-spm",
    "mpt",
    "phi-3",
    "qwen2",
    "qwen35",
    "refact",
    "starcoder",
];

/// Files whose tokenizer model is not implemented: (file, text the error must contain).
const REFUSED: &[(&str, &str)] = &[
    // WordPiece (BERT): `tokenizer.ggml.model = bert`.
    ("bert-bge", "unsupported tokenizer model 'bert'"),
];

fn vocab_dir() -> PathBuf {
    match std::env::var_os("ROCMFORGE_LLAMA_VOCAB_DIR") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/ggml-vocab"),
    }
}

/// The names `X` of every `ggml-vocab-X.gguf` in the folder that has both `.inp` and `.out`.
fn files_with_cases() -> BTreeSet<String> {
    let dir = vocab_dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| {
        panic!(
            "reading {}: {e} (run `cargo xtask models`, which extracts llama.cpp's vocabulary files there)",
            dir.display()
        )
    });
    let mut names = BTreeSet::new();
    for entry in entries {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if let Some(stem) = name
            .strip_prefix("ggml-vocab-")
            .and_then(|n| n.strip_suffix(".gguf"))
            && dir.join(format!("{name}.inp")).exists()
            && dir.join(format!("{name}.out")).exists()
        {
            names.insert(stem.to_string());
        }
    }
    names
}

#[test]
fn every_llama_cpp_vocab_file_passes_or_is_a_listed_refusal() {
    let found = files_with_cases();
    let listed: BTreeSet<String> = PASSING
        .iter()
        .copied()
        .chain(REFUSED.iter().map(|(n, _)| *n))
        .map(str::to_string)
        .collect();
    assert_eq!(
        found,
        listed,
        "the vocabulary files in {} differ from the ones this test lists",
        vocab_dir().display()
    );
    let mut failures = Vec::new();
    for name in PASSING {
        let path = vocab_dir().join(format!("ggml-vocab-{name}.gguf"));
        let file = GgufFile::open(&path).unwrap();
        let tok = match Tokenizer::from_gguf(&file) {
            Ok(t) => t,
            Err(e) => {
                failures.push(format!("{name}: refused: {e}"));
                continue;
            }
        };
        let (total, fails) = vocab_cases::run_cases(&tok, &vocab_dir(), name);
        eprintln!("vocab {name}: {}/{total} cases pass", total - fails.len());
        assert!(total > 0, "{name}: no cases");
        failures.extend(fails);
    }
    for (name, message) in REFUSED {
        let path = vocab_dir().join(format!("ggml-vocab-{name}.gguf"));
        let file = GgufFile::open(&path).unwrap();
        match Tokenizer::from_gguf(&file) {
            Ok(_) => failures.push(format!("{name}: listed as refused but it loads")),
            Err(e) if e.to_string().contains(message) => {
                eprintln!("vocab {name}: refused as expected: {e}");
            }
            Err(e) => failures.push(format!("{name}: refused with '{e}', expected '{message}'")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
