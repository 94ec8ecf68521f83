//! The tiny synthetic models of every architecture (`models/tiny/*.gguf`, written by `cargo xtask
//! models`) against llama.cpp's logits on the same files (`tests/data/kld/*.kld`, from
//! `llama-perplexity --kl-divergence-base`): mean KL divergence ≤ 0.005 and top-1 agreement ≥ 99 %
//! over ≥ 256 positions, on distributions far from uniform (mean entropy reported and bounded).
//! Our tokenizer must also reproduce the tokens llama.cpp evaluated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::sync::Arc;

use rocmforge_gguf::GgufFile;
use rocmforge_model::Model;
use rocmforge_model::kld::{Chunks, CompressedRow, LogitsHeader, kl_divergence, save_logits};
use rocmforge_model::tokenizer::Tokenizer;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The references present (one per tiny shape).
fn references() -> Vec<String> {
    let dir = root().join("tests/data/kld");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.unwrap().file_name().to_string_lossy().into_owned();
            name.strip_suffix(".kld").map(str::to_string)
        })
        .collect();
    names.sort();
    names
}

fn check(name: &str) {
    let model_path = root().join("../models/tiny").join(format!("{name}.gguf"));
    let file = GgufFile::open(&model_path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run `cargo xtask models`, which synthesizes the tiny models)",
            model_path.display()
        )
    });
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let model = Model::from_file(Arc::new(file), rocmforge_tensor::Backend::Cpu).unwrap();
    let base = root().join("tests/data/kld").join(format!("{name}.kld"));
    let what = base.display().to_string();
    let f = File::open(&base).unwrap();
    let len = f.metadata().unwrap().len();
    let mut input = BufReader::new(f);
    let header = LogitsHeader::read(&mut input, len, &what).unwrap();

    // The text llama.cpp scored: our tokenizer gives the same tokens.
    let text = std::fs::read_to_string(root().join("../../shared/testdata/gpl-3.txt")).unwrap();
    let ours = tokenizer.encode(&text, true, false).unwrap();
    assert_eq!(
        &ours[..header.tokens.len()],
        &header.tokens[..],
        "{name}: our tokens differ from the ones llama.cpp evaluated"
    );

    let bos = tokenizer.add_bos().then(|| tokenizer.bos_id()).flatten();
    let s = kl_divergence(&model, &header, &mut input, &what, None, bos, |_, _, _| {}).unwrap();
    let uniform = (header.n_vocab as f64).ln();
    eprintln!(
        "{name}: {} positions, mean KL {:.6} ± {:.6}, top-1 {:.2} %, mean base entropy {:.3} nats \
         (uniform {:.3}), PPL {:.1} vs base {:.1}",
        s.count,
        s.kld.value,
        s.kld.err,
        100.0 * s.same_top.value,
        s.base_entropy,
        uniform,
        s.ppl.value,
        s.ppl_base.value
    );
    assert!(s.count >= 256, "{name}: only {} positions", s.count);
    assert!(s.kld.value <= 0.005, "{name}: mean KL {}", s.kld.value);
    assert!(
        s.same_top.value >= 0.99,
        "{name}: top-1 {}",
        s.same_top.value
    );
    assert!(
        s.base_entropy <= 0.5 * uniform,
        "{name}: base entropy {} is too close to uniform ({uniform})",
        s.base_entropy
    );
    check_written_file(name, &model, &header, bos, &base);
}

/// The file we write for the same tokens has llama.cpp's layout byte for byte in its header and
/// size, and rows that say what llama.cpp's say.
fn check_written_file(
    name: &str,
    model: &Model,
    header: &LogitsHeader,
    bos: Option<u32>,
    base: &std::path::Path,
) {
    let reference = std::fs::read(base).unwrap();
    let mut ours = Vec::new();
    let chunks = Chunks {
        n_ctx: header.n_ctx,
        count: header.n_chunk,
        bos,
    };
    save_logits(
        model,
        &header.tokens,
        chunks,
        &mut ours,
        "memory",
        |_, _, _| {},
    )
    .unwrap();
    assert_eq!(ours.len(), reference.len(), "{name}: written file size");
    let head = 20 + header.tokens.len() * 4;
    assert_eq!(
        ours[..head],
        reference[..head],
        "{name}: written header/tokens"
    );
    let (mut a, mut b) = (&ours[head..], &reference[head..]);
    let (mut worst, mut sum, mut rows) = (0.0f32, 0.0f32, 0usize);
    while !a.is_empty() {
        let ra = CompressedRow::read(&mut a, header.n_vocab).unwrap();
        let rb = CompressedRow::read(&mut b, header.n_vocab).unwrap();
        let top = (0..header.n_vocab).max_by(|&i, &j| rb.log_prob(i).total_cmp(&rb.log_prob(j)));
        let top = top.unwrap();
        let diff = (ra.log_prob(top) - rb.log_prob(top)).abs();
        (worst, sum, rows) = (worst.max(diff), sum + diff, rows + 1);
    }
    let mean = sum / rows.max(1) as f32;
    eprintln!(
        "{name}: written file: {rows} rows, top-token log-prob difference mean {mean:.5}, max {worst:.5}"
    );
    assert!(
        mean < 0.01 && worst < 0.25,
        "{name}: written rows differ from llama.cpp's (mean {mean}, max {worst})"
    );
}

#[test]
fn tiny_synthetic_models_match_llama_cpp_logits() {
    let names = references();
    assert!(
        names.len() >= 2,
        "expected a reference per tiny shape, found {names:?}"
    );
    for name in &names {
        check(name);
    }
}
