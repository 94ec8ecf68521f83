//! Running llama.cpp's vocabulary test cases (`ggml-vocab-X.gguf.inp` / `.out`) through our
//! tokenizer: shared by the test of the four files in `../shared/testdata/vocab/` and the test of
//! every file of llama.cpp's source tree.

use std::path::Path;

use rocmforge_model::tokenizer::Tokenizer;

/// Runs every case of `dir/ggml-vocab-{name}.gguf.inp` (no BOS, special parsing off) against the
/// ids of `.out`. Returns (cases, descriptions of the failures).
pub fn run_cases(tok: &Tokenizer, dir: &Path, name: &str) -> (usize, Vec<String>) {
    let read = |ext: &str| {
        let path = dir.join(format!("ggml-vocab-{name}.gguf.{ext}"));
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
    };
    let (inp, out) = (read("inp"), read("out"));
    // As llama.cpp's test-tokenizer-0 reads it: texts separated by the marker line; an empty text
    // after the last marker is not a case (most files end with one, gemma-4's does not).
    let mut texts: Vec<&str> = inp.split("\n__ggml_vocab_test__\n").collect();
    if texts.last() == Some(&"") {
        texts.pop();
    }
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
        match tok.encode(text, false, false) {
            Ok(got) if &got == want => {}
            Ok(got) => failures.push(format!("{name}: {text:?}\n  got  {got:?}\n  want {want:?}")),
            Err(e) => failures.push(format!("{name}: {text:?}: {e}")),
        }
    }
    (texts.len(), failures)
}
