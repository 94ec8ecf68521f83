//! decode(encode(text)) == text on many seeded random texts, for a byte-level BPE vocabulary and for
//! SPM vocabularies with byte fallback (neither may lose or invent a byte, nor panic).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rocmforge_gguf::GgufFile;
use rocmforge_model::tokenizer::Tokenizer;

fn vocab(name: &str) -> Tokenizer {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../shared/testdata/vocab")
        .join(format!("ggml-vocab-{name}.gguf"));
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    Tokenizer::from_gguf(&file).unwrap()
}

/// A small deterministic generator (64-bit LCG), so failures reproduce.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next()).unwrap() % n
    }
}

const POOL: &[&str] = &[
    "a",
    "Z",
    "7",
    " ",
    "  ",
    "\t",
    "\n",
    "\r\n",
    "'s",
    "'LL",
    ".",
    ",",
    "!?",
    "é",
    "ß",
    "Ä",
    "—",
    "“",
    "日",
    "本",
    "語",
    "ก",
    "ा",
    "🦙",
    "🔥",
    "👩‍💻",
    "\u{0301}",
    "\u{00A0}",
    "\u{3000}",
    "1234",
    "٣",
    "<",
    "|",
    ">",
    "<|im_start|>",
    "\u{0}",
    "\u{7F}",
];

fn random_text(rng: &mut Lcg) -> String {
    let len = rng.below(24);
    (0..len).map(|_| POOL[rng.below(POOL.len())]).collect()
}

fn check(name: &str, seed: u64) {
    let tok = vocab(name);
    let mut rng = Lcg(seed);
    for _ in 0..400 {
        let text = random_text(&mut rng);
        let ids = tok.encode(&text, false, false).unwrap();
        assert_eq!(tok.decode(&ids), text, "{name}: ids {ids:?}");
    }
}

#[test]
fn gpt2_round_trips_random_text() {
    check("gpt-2", 1);
}

#[test]
fn llama_bpe_round_trips_random_text() {
    check("llama-bpe", 2);
}

#[test]
fn llama_spm_round_trips_random_text() {
    check("llama-spm", 3);
}

#[test]
fn phi3_round_trips_random_text() {
    check("phi-3", 4);
}
