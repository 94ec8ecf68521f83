//! The split rules of each pre-tokenizer, as llama.cpp 0.5.0 runs them (`llm_tokenizer_bpe` in its
//! `src/llama-vocab.cpp`, `unicode_regex_split` in `src/unicode.cpp`).
//!
//! llama.cpp runs most regexes with `std::regex` over a "collapsed" text in which every non-ASCII
//! code point stands for its category, and `\p{Lu}`, `\p{Ll}`, `\p{Lt}`, `\p{Lm}`, `\p{Lo}` all
//! become "any letter". [`super::pretokenize`] rewrites those classes the same way, so the case
//! distinctions of the original tokenizer.json regexes are dropped exactly where llama.cpp drops them.

use super::pretokenize::{PreTokenizerKind as K, Step};

/// `'s|'t|...` case-insensitively, written out (`std::regex` has no inline `(?i:)`).
macro_rules! contractions {
    () => {
        r"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
    };
}

/// GPT-2's own split: contractions, letters, numbers, other symbols, whitespace.
const GPT2: &str = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)";

/// Llama 3's split (numbers in groups of up to three digits).
const LLAMA3: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// Jais 2: Llama 3's split with a cascade of whitespace-run lengths.
const JAIS2: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+",
    r"|\s{512}(?!\S)|\s{256}(?!\S)|\s{128}(?!\S)|\s{64}(?!\S)|\s{32}(?!\S)|\s{16}(?!\S)",
    r"|\s{8}(?!\S)|\s{4}(?!\S)|\s{1,2}(?!\S)|\s{1}"
);

/// Qwen2's split: as Llama 3's but one digit per piece.
const QWEN2: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// Qwen 3.5: Qwen2's split with combining marks kept inside words.
const QWEN35: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?[\p{L}\p{M}]+|\p{N}| ?[^\s\p{L}\p{M}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// Qwen2's split without the contractions (Turkish suffixes stay attached).
const UFAKZEKA: &str =
    r"[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The letter ranges of DeepSeek LLM's tokenizer.json (written as escapes: several of these code
/// points change under Unicode normalization, which editors and tools like to apply).
const DEEPSEEK_LLM_LETTERS: &str = r"\s?[A-Za-z\x{B5}\x{C0}-\x{D6}\x{D8}-\x{F6}\x{F8}-\x{1BA}\x{1BC}-\x{1BF}\x{1C4}-\x{293}\x{295}-\x{2AF}\x{370}-\x{373}\x{376}\x{377}\x{37B}-\x{37D}\x{37F}\x{386}\x{388}-\x{38A}\x{38C}\x{38E}-\x{3A1}\x{3A3}-\x{3F5}\x{3F7}-\x{481}\x{48A}-\x{52F}\x{531}-\x{556}\x{10A0}-\x{10C5}\x{13A0}-\x{13F5}\x{13F8}-\x{13FD}\x{1C90}-\x{1CBA}\x{1CBD}-\x{1CBF}\x{1D00}-\x{1D2B}\x{1D6B}-\x{1D77}\x{1D79}-\x{1D9A}\x{1E00}-\x{1F15}\x{1F18}-\x{1F1D}\x{1F20}-\x{1F45}\x{1F48}-\x{1F4D}\x{1F50}-\x{1F57}\x{1F59}\x{1F5B}\x{1F5D}\x{1F5F}-\x{1F7D}\x{1F80}-\x{1FB4}\x{1FB6}-\x{1FBC}\x{1FBE}\x{1FC2}-\x{1FC4}\x{1FC6}-\x{1FCC}\x{1FD0}-\x{1FD3}\x{1FD6}-\x{1FDB}\x{1FE0}-\x{1FEC}\x{1FF2}-\x{1FF4}\x{1FF6}-\x{1FFC}\x{2102}\x{2107}\x{210A}-\x{2113}\x{2115}\x{2119}-\x{211D}\x{2124}\x{2126}\x{2128}\x{212A}-\x{212D}\x{212F}-\x{2134}\x{2139}\x{213C}-\x{213F}\x{2145}-\x{2149}\x{214E}\x{2183}\x{2184}\x{2C00}-\x{2C7B}\x{2C7E}-\x{2CE4}\x{2CEB}-\x{2CEE}\x{2CF2}\x{2CF3}\x{A640}-\x{A66D}\x{A680}-\x{A69B}\x{A722}-\x{A76F}\x{A771}-\x{A787}\x{A78B}-\x{A78E}\x{AB70}-\x{ABBF}\x{FB00}-\x{FB06}\x{FB13}-\x{FB17}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}\x{10400}-\x{1044F}\x{104B0}-\x{104D3}\x{104D8}-\x{104FB}\x{10C80}-\x{10CB2}\x{10CC0}-\x{10CF2}\x{118A0}-\x{118DF}\x{1E900}-\x{1E943}]+";

/// CJK ranges shared by the DeepSeek pre-tokenizers.
const DEEPSEEK_CJK: &str = r"[\x{4E00}-\x{9FA5}\x{0800}-\x{4E00}\x{AC00}-\x{D7FF}]+";

/// CJK ideographs, hiragana, katakana (DeepSeek V3 and its relatives).
const CJK_KANA: &str = r"[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+";

/// DeepSeek V3's main split (punctuation + ASCII word, letters with marks, punctuation runs).
const DEEPSEEK3_MAIN: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"##;

/// Spark 2.5's main split: as DeepSeek V3's, newlines one by one.
const SPARK25_MAIN: &str = r##"[!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^\r\n\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+|[\r\n]|\s+(?!\S)|\s+"##;

/// Youtu's first split: Hangul, CJK punctuation, bopomofo, CJK + kana.
const YOUTU_CJK: &str = r"[\x{AC00}-\x{D7A3}\x{3131}-\x{318E}]+|[\x{FF01}\x{2026}\x{201C}\x{201D}\x{2018}\x{2019}\x{2014}\x{FF1A}\x{FF1B}\x{FF0C}\x{3001}-\x{303F}\x{FE30}-\x{FE4F}]+|[\x{3105}-\x{312F}]+|[\x{4E00}-\x{9FA5}\x{3040}-\x{309F}\x{30A0}-\x{30FF}]+";

/// The cased-word split of GPT-4o-style tokenizers with optional contractions, digit groups `$digits`.
macro_rules! cased_words {
    ($digits:literal, $tail:literal) => {
        concat!(
            r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+",
            contractions!(),
            r"?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*",
            contractions!(),
            "?|",
            $digits,
            $tail
        )
    };
}

/// Youtu's word split.
const YOUTU_MAIN: &str = cased_words!(
    r"\p{N}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// Tiny Aya's word split.
const TINY_AYA_MAIN: &str = cased_words!(
    r"\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// Upper-then-lower letter runs as llama.cpp writes them for `std::regex` (`(?=\p{L})[^a-z]` is "a
/// letter that is not ASCII lowercase"); `$letter` is the class a "letter" is drawn from.
macro_rules! lookahead_cased {
    ($letter:literal, $suffix:expr, $digits:literal, $tail:literal) => {
        concat!(
            r"[^\r\n\p{L}\p{N}]?((?=",
            $letter,
            r")([^a-z]))*((?=",
            $letter,
            r")([^A-Z]))+",
            $suffix,
            r"|[^\r\n\p{L}\p{N}]?((?=",
            $letter,
            r")([^a-z]))+((?=",
            $letter,
            r")([^A-Z]))*",
            $suffix,
            "|",
            $digits,
            $tail
        )
    };
}

/// Mistral's Tekken.
const TEKKEN: &str = lookahead_cased!(
    r"[\p{L}]",
    "",
    r"\p{N}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// GPT-4o (also Llama 4, MiniMax M2).
const GPT4O: &str = lookahead_cased!(
    r"[\p{L}]",
    concat!(contractions!(), "?"),
    r"\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// Granite embedding (multilingual, 97m): GPT-4o's split with marks counted as letters.
const GRANITE_EMB_MULTI: &str = lookahead_cased!(
    r"[\p{L}\p{M}]",
    concat!(contractions!(), "?"),
    r"\p{N}{1,3}",
    r"| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// Kimi K2: Han runs, then Llama 3's split over non-Han letters (llama.cpp's custom splitter).
const KIMI_K2: &str = concat!(
    r"\p{Han}+|[^\r\n\p{L}\p{N}]?[\p{L}&&\P{Han}]+",
    contractions!(),
    r"?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// Ling / Bailing MoE.
const BAILINGMOE: &str = r"'(?:[sSdDmMtT]|[lL][lL]|[vV][eE]|[rR][eE])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+";

/// Seed-Coder.
const SEED_CODER: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1}| ?[^\s\p{L}\p{N}\r\n]+|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// AFMoE's Asian scripts (the range `\x{8C48}-\x{FAFF}` is what llama.cpp's source holds after
/// Unicode normalization of U+F900).
const AFMOE_ASIAN: &str = r"[\x{4E00}-\x{9FFF}\x{3400}-\x{4DBF}\x{8C48}-\x{FAFF}\x{3040}-\x{309F}\x{30A0}-\x{30FF}\x{FF65}-\x{FF9F}\x{2F00}-\x{2FDF}\x{E40}-\x{E7F}\x{E80}-\x{EFF}\x{1780}-\x{17FF}\x{1000}-\x{109F}\x{AA60}-\x{AA7F}\x{A9E0}-\x{A9FF}\x{AC00}-\x{D7AF}\x{1100}-\x{11FF}]+";

/// EXAONE MoE: letter runs may hold single spaces.
const EXAONE_MOE: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?(?:\p{L}\p{M}*(?: \p{L}\p{M}*)*)+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]?|\s*[\r\n]|\s+(?!\S)|\s+"
);

/// MiniCPM 5's word split.
const MINICPM5: &str = concat!(
    contractions!(),
    r"|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}+| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
);

/// Bloom / Poro style split on a fixed set of separators.
const BLOOM: &str = r" ?[^(\s|.,!?…。，、।۔،)]+";

/// Runs of non-newlines and runs of newlines (SentencePiece-style BPE: merges see whole lines).
const LINES: &str = r"[^\n]+|[\n]+";

/// Chameleon's steps (special-token shapes, whitespace, digits, punctuation, GPT-2's split).
const CHAMELEON: &[Step] = &[
    Step::Regex("<sentinel:[0-9]+>"),
    Step::Regex("(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z"),
    Step::Regex("([\\t\\n]|    |  )"),
    Step::Regex(r"\p{N}"),
    Step::Regex(r"[\p{P}!-/:-@\[-`{-~]"),
    Step::Regex(GPT2),
];

/// The steps of `kind`, applied in order.
pub fn steps(kind: K) -> Vec<Step> {
    use Step::{DigitGroupsFromRight as Groups, Regex as R};
    match kind {
        K::Default => vec![
            R(r"[\p{P}\$\+<=>\^~\|]+"),
            R(GPT2),
            R(r"\p{N}+"),
            R("[0-9][0-9][0-9]"),
        ],
        K::Gpt2 => vec![R(GPT2)],
        K::Llama3 => vec![R(LLAMA3)],
        K::Jais2 => vec![R(JAIS2)],
        K::Qwen2 => vec![R(QWEN2)],
        K::Qwen35 => vec![R(QWEN35)],
        K::Ufakzeka => vec![R(UFAKZEKA)],
        K::DigitsThenGpt2 => vec![R(r"\p{N}"), R(GPT2)],
        K::DeepseekLlm => vec![
            R("[\r\n]"),
            R(DEEPSEEK_LLM_LETTERS),
            R(r"\s?[!-/:-~\x{FF01}-\x{FF0F}\x{FF1A}-\x{FF5E}\x{2018}-\x{201F}\x{3000}-\x{3002}]+"),
            R(r"\s+$"),
            R(DEEPSEEK_CJK),
            R(r"\p{N}+"),
        ],
        K::DeepseekCoder => vec![
            R("[\r\n]"),
            R(r"\s?\p{L}+"),
            R(r"\s?\p{P}+"),
            R(DEEPSEEK_CJK),
            R(r"\p{N}"),
        ],
        K::Deepseek3Llm => vec![R(r"\p{N}{1,3}"), R(CJK_KANA), R(DEEPSEEK3_MAIN)],
        K::Spark25 => vec![R(r"\p{N}{1,3}"), R(CJK_KANA), R(SPARK25_MAIN), R(r"\p{N}")],
        K::Youtu => vec![R(YOUTU_CJK), R(YOUTU_MAIN)],
        K::Falcon => vec![R(r"[\p{P}\$\+<=>\^~\|`]+"), R(GPT2), R("[0-9][0-9][0-9]")],
        K::Bloom => vec![R(BLOOM)],
        K::Viking => vec![R(BLOOM), R(r"\p{N}")],
        K::Tekken => vec![R(TEKKEN)],
        K::Chameleon => CHAMELEON.to_vec(),
        K::Gpt4o => vec![R(GPT4O)],
        K::GraniteEmbMulti => vec![R(GRANITE_EMB_MULTI)],
        K::TinyAya => vec![Groups, R(TINY_AYA_MAIN)],
        K::KimiK2 => vec![R(KIMI_K2)],
        // Empty matches before each group of three digits that ends a digit run: split points.
        K::SuperBpe => vec![R(r"\p{N}+"), R("(?=([0-9]{3})+(?![0-9]))")],
        K::BailingMoe => vec![R(BAILINGMOE)],
        K::SeedCoder => vec![R(SEED_CODER)],
        K::Afmoe => vec![Groups, R(AFMOE_ASIAN), R(DEEPSEEK3_MAIN)],
        K::Laguna => vec![R(LINES), R(QWEN2)],
        K::ExaoneMoe => vec![R(EXAONE_MOE)],
        K::Gemma4 | K::SarvamMoe => vec![R(LINES)],
        K::Minicpm5 => vec![R(r"\p{N}{1,3}"), R(MINICPM5)],
        K::Whitespace => vec![R(r"\S+")],
    }
}
