//! Pre-tokenization of BPE vocabularies: the text is cut into words by a list of regexes chosen by
//! `tokenizer.ggml.pre`, before merges run inside each word.
//!
//! The regexes are applied one after the other. Each one refines the current list of pieces: inside a
//! piece, every match becomes a piece and so does every stretch of text between matches. A piece's
//! boundaries act as the ends of the text for the next regex (so `\s+(?!\S)` at the end of a piece
//! sees no following character).

use std::ops::Range;

use fancy_regex::Regex;

use super::error::{TokenizerError, TokenizerResult};
use super::pre_patterns::steps;

/// The split rules llama.cpp 0.5.0 knows (`LLAMA_VOCAB_PRE_TYPE_*`); several names share one
/// (the name table is in the `pre_names` module).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum PreTokenizerKind {
    /// No or `default` name: punctuation runs, GPT-2's split, digit runs, digit triples.
    Default,
    Gpt2,
    Llama3,
    Jais2,
    Qwen2,
    Qwen35,
    Ufakzeka,
    /// Single digits, then GPT-2's split (starcoder, refact, command-r, smollm, ...).
    DigitsThenGpt2,
    DeepseekLlm,
    DeepseekCoder,
    Deepseek3Llm,
    Spark25,
    Youtu,
    Falcon,
    Bloom,
    Viking,
    Tekken,
    Chameleon,
    Gpt4o,
    GraniteEmbMulti,
    TinyAya,
    KimiK2,
    SuperBpe,
    BailingMoe,
    SeedCoder,
    Afmoe,
    Laguna,
    ExaoneMoe,
    Gemma4,
    SarvamMoe,
    Minicpm5,
    Whitespace,
}

/// One split step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Every match (an empty one too, as a split point) and every stretch between matches is a piece.
    Regex(&'static str),
    /// Each run of digits (`\p{N}`) is cut into groups of three counted from its end (llama.cpp's
    /// custom `AFMoE_digits` splitter, also used for Tiny Aya's `\d{1,3}(?=(?:\d{3})*\b)`).
    DigitGroupsFromRight,
}

/// llama.cpp matches category classes on a text where every non-ASCII code point is replaced by
/// its category, and maps `\p{Lu}`, `\p{Ll}`, `\p{Lt}`, `\p{Lm}`, `\p{Lo}` to "any letter": do the same.
fn as_llama_cpp_matches(pattern: &str) -> String {
    ["Lu", "Ll", "Lt", "Lm", "Lo"]
        .iter()
        .fold(pattern.to_string(), |p, c| {
            p.replace(&format!("\\p{{{c}}}"), "\\p{L}")
        })
}

#[derive(Debug, Clone)]
enum Compiled {
    Regex(Regex),
    DigitGroupsFromRight,
}

/// A compiled pre-tokenizer.
#[derive(Debug, Clone)]
pub struct PreTokenizer {
    steps: Vec<Compiled>,
}

impl PreTokenizer {
    /// Compiles the steps of `kind`.
    pub fn new(kind: PreTokenizerKind) -> TokenizerResult<Self> {
        let steps = steps(kind)
            .into_iter()
            .map(|step| match step {
                Step::Regex(p) => Regex::new(&as_llama_cpp_matches(p))
                    .map(Compiled::Regex)
                    .map_err(|e| TokenizerError::Regex {
                        pattern: p.to_string(),
                        reason: e.to_string(),
                    }),
                Step::DigitGroupsFromRight => Ok(Compiled::DigitGroupsFromRight),
            })
            .collect::<TokenizerResult<Vec<_>>>()?;
        Ok(Self { steps })
    }

    /// Cuts `text` into words, returned as byte ranges into `text` in order, covering all of it.
    pub fn split(&self, text: &str) -> TokenizerResult<Vec<Range<usize>>> {
        let mut pieces: Vec<Range<usize>> = if text.is_empty() {
            Vec::new()
        } else {
            std::iter::once(0..text.len()).collect()
        };
        for step in &self.steps {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let sub = &text[piece.clone()];
                let cuts = match step {
                    Compiled::Regex(re) => regex_cuts(re, sub)?,
                    Compiled::DigitGroupsFromRight => digit_group_cuts(sub),
                };
                let mut last = 0;
                for cut in cuts.into_iter().chain(std::iter::once(sub.len())) {
                    if cut > last {
                        next.push(piece.start + last..piece.start + cut);
                        last = cut;
                    }
                }
            }
            pieces = next;
        }
        Ok(pieces)
    }
}

/// The boundaries (byte offsets into `sub`, ascending) that the matches of `re` put into `sub`.
fn regex_cuts(re: &Regex, sub: &str) -> TokenizerResult<Vec<usize>> {
    let mut cuts = Vec::new();
    for m in re.find_iter(sub) {
        let m = m.map_err(|e| TokenizerError::Regex {
            pattern: re.as_str().to_string(),
            reason: e.to_string(),
        })?;
        cuts.push(m.start());
        cuts.push(m.end());
    }
    Ok(cuts)
}

/// The boundaries of groups of three digits counted from the end of each digit run.
fn digit_group_cuts(sub: &str) -> Vec<usize> {
    let mut cuts = Vec::new();
    let mut run: Vec<usize> = Vec::new();
    let flush = |run: &mut Vec<usize>, end: usize, cuts: &mut Vec<usize>| {
        if let Some(&start) = run.first() {
            cuts.push(start);
            let lead = run.len() % 3;
            let mut i = if lead == 0 { 3 } else { lead };
            while i < run.len() {
                cuts.push(run[i]);
                i += 3;
            }
            cuts.push(end);
        }
        run.clear();
    };
    for (i, c) in sub.char_indices() {
        if is_number(c) {
            run.push(i);
        } else {
            flush(&mut run, i, &mut cuts);
        }
    }
    flush(&mut run, sub.len(), &mut cuts);
    cuts
}

/// Unicode `\p{N}`.
fn is_number(c: char) -> bool {
    c.is_numeric()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::super::pre_names::{KNOWN_NAMES, PreTokenizerSpec};
    use super::{PreTokenizer, PreTokenizerKind};

    fn words(kind: PreTokenizerKind, text: &str) -> Vec<String> {
        let p = PreTokenizer::new(kind).unwrap();
        p.split(text)
            .unwrap()
            .into_iter()
            .map(|r| text[r].to_string())
            .collect()
    }

    #[test]
    fn gpt2_keeps_the_last_space_with_the_next_word() {
        assert_eq!(
            words(PreTokenizerKind::Gpt2, "Hello   world"),
            ["Hello", "  ", " world"]
        );
    }

    #[test]
    fn llama3_groups_digits_by_three() {
        assert_eq!(
            words(PreTokenizerKind::Llama3, "12345 I'M"),
            ["123", "45", " I", "'M"]
        );
    }

    #[test]
    fn smollm_splits_every_digit() {
        assert_eq!(
            words(PreTokenizerKind::DigitsThenGpt2, "a 123"),
            ["a", " ", "1", "2", "3"]
        );
    }

    #[test]
    fn every_name_llama_cpp_knows_resolves_and_compiles() {
        for &name in KNOWN_NAMES {
            let spec = PreTokenizerSpec::from_name(Some(name)).unwrap();
            assert!(PreTokenizer::new(spec.kind).is_ok(), "{name}");
        }
        assert!(PreTokenizerSpec::from_name(Some("no-such-thing")).is_err());
    }

    #[test]
    fn digit_groups_are_counted_from_the_right() {
        assert_eq!(
            words(PreTokenizerKind::TinyAya, "1234567 x"),
            ["1", "234", "567", " x"]
        );
        assert_eq!(
            words(PreTokenizerKind::SuperBpe, "a1234567"),
            ["a", "1", "234", "567"]
        );
    }

    #[test]
    fn cased_classes_mean_any_letter_as_in_llama_cpp() {
        // llama.cpp maps \p{Lu} and \p{Ll} to "any letter": "HeLLo" stays one word.
        assert_eq!(words(PreTokenizerKind::Youtu, "HeLLo"), ["HeLLo"]);
        // Tekken's look-ahead form does keep the case split.
        assert_eq!(words(PreTokenizerKind::Tekken, "HeLLo"), ["He", "LLo"]);
    }
}
