//! The tokenizer of a synthetic model: the `tokenizer.*` keys of a `ggml-vocab-*.gguf` file,
//! padded to the model's vocabulary with unused `[PAD{i}]` tokens (as llama.cpp's converter
//! pads Qwen's vocabulary).

use anyhow::{Context, Result, bail};
use rocmforge_gguf::{GgufFile, MetadataArray, MetadataValue, MetadataValueType};

/// llama.cpp's token type "unused".
const TOKEN_TYPE_UNUSED: i32 = 5;

/// `(key, value)` of every `tokenizer.*` key of `file`, with the token list (and its types
/// and scores, when present) padded to `vocab` entries.
pub fn tokenizer_metadata(file: &GgufFile, vocab: usize) -> Result<Vec<(String, MetadataValue)>> {
    let n = file
        .metadata()
        .get_array("tokenizer.ggml.tokens")
        .with_context(|| format!("{}: no token list", file.path().display()))?
        .len();
    if n > vocab {
        bail!(
            "{} has {n} tokens, more than the model's {vocab}",
            file.path().display()
        );
    }
    let mut out = Vec::new();
    for (key, value) in file.metadata().iter() {
        if !key.starts_with("tokenizer.") {
            continue;
        }
        let padded = match (key, value) {
            ("tokenizer.ggml.tokens", MetadataValue::Array(a)) => {
                pad(a, n, vocab, |i| MetadataValue::String(format!("[PAD{i}]")))
            }
            ("tokenizer.ggml.token_type", MetadataValue::Array(a)) => {
                pad(a, n, vocab, |_| MetadataValue::I32(TOKEN_TYPE_UNUSED))
            }
            ("tokenizer.ggml.scores", MetadataValue::Array(a)) => {
                pad(a, n, vocab, |_| MetadataValue::F32(-1e9))
            }
            _ => value.clone(),
        };
        out.push((key.to_string(), padded));
    }
    Ok(out)
}

fn pad(
    a: &MetadataArray,
    from: usize,
    to: usize,
    filler: impl Fn(usize) -> MetadataValue,
) -> MetadataValue {
    let mut values = a.values.clone();
    values.extend((from..to).map(filler));
    let elem_type: MetadataValueType = a.elem_type;
    MetadataValue::Array(MetadataArray { elem_type, values })
}

/// Letter pairs merged by the tiny vocabulary (common English bigrams), after `Ġ` + letter.
const TINY_PAIRS: &[&str] = &[
    "th", "he", "in", "er", "an", "re", "on", "at", "en", "nd", "ti", "es", "or", "te", "of", "ed",
    "is", "it", "al", "ar", "st", "to", "nt", "ng", "se", "ha", "as", "ou", "io", "le", "ve", "co",
    "me", "de", "hi", "ri", "ro", "ic", "ne", "ea", "ra", "ce", "li", "ch", "ll", "be", "ma", "si",
    "om", "ur",
];
/// Letters merged with a leading space (`Ġ`).
const TINY_SPACED: &str = "taoswicbpfmhdre";

/// Size of the tiny vocabulary: 256 byte tokens, the merges, `<|endoftext|>`.
pub const TINY_VOCAB: usize = 256 + TINY_PAIRS.len() + TINY_SPACED.len() + 1;

/// GPT-2's byte-to-character map: printable bytes keep their code point, the others take
/// 256, 257, ... in byte order.
fn gpt2_byte_char(b: u8) -> char {
    let keeps = |x: u8| (33..=126).contains(&x) || (161..=172).contains(&x) || x >= 174;
    if keeps(b) {
        return char::from(b);
    }
    let rank = (0..b).filter(|&x| !keeps(x)).count() as u32;
    char::from_u32(256 + rank).unwrap_or('?')
}

/// The `tokenizer.*` keys of a tiny GPT-2-style byte-level BPE (`tokenizer.ggml.pre = gpt-2`)
/// that llama.cpp loads: every byte, a few merges, and `<|endoftext|>` as BOS/EOS.
pub fn tiny_byte_bpe(vocab: usize) -> Result<Vec<(String, MetadataValue)>> {
    if vocab != TINY_VOCAB {
        bail!("the tiny vocabulary has {TINY_VOCAB} tokens, the shape asks for {vocab}");
    }
    let mut tokens: Vec<String> = (0..=255u8).map(|b| gpt2_byte_char(b).to_string()).collect();
    let space = gpt2_byte_char(b' ');
    let mut merges = Vec::new();
    for c in TINY_SPACED.chars() {
        merges.push(format!("{space} {c}"));
        tokens.push(format!("{space}{c}"));
    }
    for pair in TINY_PAIRS {
        let (a, b) = pair.split_at(1);
        merges.push(format!("{a} {b}"));
        tokens.push(pair.to_string());
    }
    let eos = tokens.len() as u32;
    tokens.push("<|endoftext|>".into());
    let mut types = vec![MetadataValue::I32(1); tokens.len()];
    types[eos as usize] = MetadataValue::I32(3);
    let strings = |v: Vec<String>| {
        MetadataValue::Array(MetadataArray {
            elem_type: MetadataValueType::String,
            values: v.into_iter().map(MetadataValue::String).collect(),
        })
    };
    Ok(vec![
        (
            "tokenizer.ggml.model".into(),
            MetadataValue::String("gpt2".into()),
        ),
        (
            "tokenizer.ggml.pre".into(),
            MetadataValue::String("gpt-2".into()),
        ),
        ("tokenizer.ggml.tokens".into(), strings(tokens)),
        (
            "tokenizer.ggml.token_type".into(),
            MetadataValue::Array(MetadataArray {
                elem_type: MetadataValueType::I32,
                values: types,
            }),
        ),
        ("tokenizer.ggml.merges".into(), strings(merges)),
        (
            "tokenizer.ggml.bos_token_id".into(),
            MetadataValue::U32(eos),
        ),
        (
            "tokenizer.ggml.eos_token_id".into(),
            MetadataValue::U32(eos),
        ),
        (
            "tokenizer.ggml.add_bos_token".into(),
            MetadataValue::Bool(false),
        ),
    ])
}
