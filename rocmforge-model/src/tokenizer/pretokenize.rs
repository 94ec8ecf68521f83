//! Pre-tokenization of BPE vocabularies: the text is cut into words by a list of regexes chosen by
//! `tokenizer.ggml.pre`, before merges run inside each word.
//!
//! The regexes are applied one after the other. Each one refines the current list of pieces: inside a
//! piece, every match becomes a piece and so does every stretch of text between matches. A piece's
//! boundaries act as the ends of the text for the next regex (so `\s+(?!\S)` at the end of a piece
//! sees no following character).

use fancy_regex::Regex;

use super::error::{TokenizerError, TokenizerResult};

/// GPT-2's own split: contractions, letters, numbers, other symbols, whitespace.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// Llama 3's split (case-insensitive contractions, numbers in groups of up to three digits).
const LLAMA3: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's split: as Llama 3's but one digit per piece.
const QWEN2: &str = r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The letter ranges of DeepSeek LLM's tokenizer.json (written as escapes: several of these code
/// points change under Unicode normalization, which editors and tools like to apply).
const DEEPSEEK_LLM_LETTERS: &str = r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+";

/// CJK ranges shared by the DeepSeek pre-tokenizers.
const DEEPSEEK_CJK: &str = r"[\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+";

/// Bloom / Poro style split on a fixed set of separators.
const BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";

/// The pre-tokenizers known by name, each a list of regexes applied in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreTokenizerKind {
    /// No or unknown-but-`default` name: punctuation runs, GPT-2's split, digit runs, digit triples.
    Default,
    /// GPT-2 (also mpt, olmo, jais, phi-2, roberta-bpe, ...).
    Gpt2,
    /// Llama 3 (`llama-bpe`, `llama3`, `llama-v3`, `falcon3`, dbrx, smaug-bpe).
    Llama3,
    /// Qwen2 (also stablelm2, megrez).
    Qwen2,
    /// Single digits, then GPT-2's split (starcoder, refact, command-r, smollm, codeshell, exaone, minerva).
    DigitsThenGpt2,
    /// DeepSeek LLM.
    DeepseekLlm,
    /// DeepSeek Coder.
    DeepseekCoder,
    /// Falcon.
    Falcon,
    /// Bloom, poro-chat, gpt3-finnish.
    Bloom,
    /// Viking.
    Viking,
}

impl PreTokenizerKind {
    /// Resolves a `tokenizer.ggml.pre` value.
    pub fn from_name(name: Option<&str>) -> TokenizerResult<Self> {
        let Some(name) = name else {
            return Ok(Self::Default);
        };
        Ok(match name {
            "" | "default" => Self::Default,
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "dbrx" | "smaug-bpe" => Self::Llama3,
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v1-en"
            | "jina-v2-es" | "jina-v2-de" | "jina-v2-code" | "roberta-bpe" | "mpt" | "olmo"
            | "jais" => Self::Gpt2,
            "qwen2" | "stablelm2" | "megrez" => Self::Qwen2,
            "starcoder" | "refact" | "command-r" | "smollm" | "codeshell" | "exaone"
            | "minerva-7b" => Self::DigitsThenGpt2,
            "deepseek-llm" => Self::DeepseekLlm,
            "deepseek-coder" => Self::DeepseekCoder,
            "falcon" => Self::Falcon,
            "poro-chat" | "bloom" | "gpt3-finnish" => Self::Bloom,
            "viking" => Self::Viking,
            other => return Err(TokenizerError::UnsupportedPreTokenizer(other.to_string())),
        })
    }

    /// Whether a whole word that is itself a token is taken as is, without running merges.
    pub fn ignores_merges(self) -> bool {
        self == Self::Llama3
    }

    /// Whether BOS is added by default (before `tokenizer.ggml.add_bos_token` is read).
    pub fn adds_bos_by_default(self) -> bool {
        self == Self::Llama3
    }

    fn patterns(self) -> Vec<&'static str> {
        match self {
            Self::Default => vec![r"[\p{P}\$\+<=>\^~\|]+", GPT2, r"\p{N}+", "[0-9][0-9][0-9]"],
            Self::Gpt2 => vec![GPT2],
            Self::Llama3 => vec![LLAMA3],
            Self::Qwen2 => vec![QWEN2],
            Self::DigitsThenGpt2 => vec![r"\p{N}", GPT2],
            Self::DeepseekLlm => vec![
                "[\r\n]",
                DEEPSEEK_LLM_LETTERS,
                r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+",
                r"\s+$",
                DEEPSEEK_CJK,
                r"\p{N}+",
            ],
            Self::DeepseekCoder => {
                vec!["[\r\n]", r"\s?\p{L}+", r"\s?\p{P}+", DEEPSEEK_CJK, r"\p{N}"]
            }
            Self::Falcon => vec![r"[\p{P}\$\+<=>\^~\|`]+", GPT2, "[0-9][0-9][0-9]"],
            Self::Bloom => vec![BLOOM],
            Self::Viking => vec![BLOOM, r"\p{N}"],
        }
    }
}

/// A compiled pre-tokenizer.
#[derive(Debug, Clone)]
pub struct PreTokenizer {
    kind: PreTokenizerKind,
    regexes: Vec<Regex>,
}

impl PreTokenizer {
    /// Compiles the regexes of `kind`.
    pub fn new(kind: PreTokenizerKind) -> TokenizerResult<Self> {
        let regexes = kind
            .patterns()
            .into_iter()
            .map(|p| {
                Regex::new(p).map_err(|e| TokenizerError::Regex {
                    pattern: p.to_string(),
                    reason: e.to_string(),
                })
            })
            .collect::<TokenizerResult<Vec<_>>>()?;
        Ok(Self { kind, regexes })
    }

    /// The kind this pre-tokenizer was built from.
    pub fn kind(&self) -> PreTokenizerKind {
        self.kind
    }

    /// Cuts `text` into words, returned as byte ranges into `text` in order, covering all of it.
    pub fn split(&self, text: &str) -> TokenizerResult<Vec<std::ops::Range<usize>>> {
        let mut pieces: Vec<std::ops::Range<usize>> = if text.is_empty() {
            Vec::new()
        } else {
            std::iter::once(0..text.len()).collect()
        };
        for re in &self.regexes {
            let mut next = Vec::with_capacity(pieces.len() * 2);
            for piece in pieces {
                let sub = &text[piece.clone()];
                let mut last = 0;
                for m in re.find_iter(sub) {
                    let m = m.map_err(|e| TokenizerError::Regex {
                        pattern: re.as_str().to_string(),
                        reason: e.to_string(),
                    })?;
                    if m.start() == m.end() {
                        continue;
                    }
                    if m.start() > last {
                        next.push(piece.start + last..piece.start + m.start());
                    }
                    next.push(piece.start + m.start()..piece.start + m.end());
                    last = m.end();
                }
                if last < sub.len() {
                    next.push(piece.start + last..piece.end);
                }
            }
            pieces = next;
        }
        Ok(pieces)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
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
    fn every_named_pre_tokenizer_compiles() {
        for name in [
            "default",
            "gpt-2",
            "llama-bpe",
            "qwen2",
            "smollm",
            "deepseek-llm",
            "deepseek-coder",
            "starcoder",
            "falcon",
            "refact",
            "command-r",
            "mpt",
            "bloom",
            "viking",
        ] {
            let kind = PreTokenizerKind::from_name(Some(name)).unwrap();
            assert!(PreTokenizer::new(kind).is_ok(), "{name}");
        }
        assert!(PreTokenizerKind::from_name(Some("no-such-thing")).is_err());
    }
}
