//! `tokenizer.ggml.pre` names → the pre-tokenizer and the flags llama.cpp 0.5.0 sets with it
//! (`llama_vocab::impl::load` in its `src/llama-vocab.cpp`): every name it knows is listed here.

use super::error::{TokenizerError, TokenizerResult};
use super::pretokenize::PreTokenizerKind as K;

/// A resolved `tokenizer.ggml.pre`: the split rules and the flags that come with the name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreTokenizerSpec {
    /// The regex list / split rules.
    pub kind: K,
    /// A whole pre-tokenized word that is itself a token is taken as is, without running merges.
    pub ignore_merges: bool,
    /// BOS is added by default (before `tokenizer.ggml.add_bos_token` is read).
    pub add_bos: bool,
    /// llama.cpp's `clean_spaces` (a detokenizer option: drop the space before punctuation). Recorded
    /// for completeness; [`super::Tokenizer::decode`] does not apply it.
    pub clean_spaces: bool,
    /// Spaces are written as `▁` before splitting (SentencePiece-style BPE: gemma4, sarvam-moe).
    pub escape_whitespaces: bool,
    /// Words are mapped to GPT-2's byte alphabet before merges (false: merges run on raw UTF-8 and
    /// bytes without a token fall back to `<0xXX>` tokens).
    pub byte_encode: bool,
    /// The default BOS id of the BPE vocabulary (11) is dropped (chatglm / glm4 / glm5).
    pub no_default_bos: bool,
}

impl PreTokenizerSpec {
    const fn of(kind: K) -> Self {
        Self {
            kind,
            ignore_merges: false,
            add_bos: false,
            clean_spaces: true,
            escape_whitespaces: false,
            byte_encode: true,
            no_default_bos: false,
        }
    }
    const fn unclean(self) -> Self {
        Self {
            clean_spaces: false,
            ..self
        }
    }
    const fn ignoring_merges(self) -> Self {
        Self {
            ignore_merges: true,
            ..self
        }
    }
    const fn with_bos(self) -> Self {
        Self {
            add_bos: true,
            ..self
        }
    }
    const fn spm_style(self) -> Self {
        Self {
            escape_whitespaces: true,
            byte_encode: false,
            ..self
        }
    }

    /// Resolves a `tokenizer.ggml.pre` value (absent: llama.cpp's `default`, with its warning).
    pub fn from_name(name: Option<&str>) -> TokenizerResult<Self> {
        let of = Self::of;
        let name = name.unwrap_or("default");
        Ok(match name {
            "" | "default" => of(K::Default),
            "minicpm5" => of(K::Minicpm5).ignoring_merges(),
            "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral"
            | "midm-2.0" | "lfm2" | "jina-v5-nano" => of(K::Llama3).ignoring_merges().with_bos(),
            "deepseek-llm" => of(K::DeepseekLlm).unclean(),
            "deepseek-coder" => of(K::DeepseekCoder).unclean(),
            "deepseek-v3" | "hunyuan-dense" | "hy_v4" | "joyai-llm" => {
                of(K::Deepseek3Llm).unclean()
            }
            "spark2_5" => of(K::Spark25).unclean(),
            "youtu" => of(K::Youtu).unclean().ignoring_merges(),
            "falcon" => of(K::Falcon),
            "mpt" | "starcoder" | "refact" | "codeshell" | "exaone" | "minerva-7b" | "mellum2" => {
                of(if name == "mpt" {
                    K::Gpt2
                } else {
                    K::DigitsThenGpt2
                })
            }
            "command-r" | "smollm" => of(K::DigitsThenGpt2).unclean(),
            "gpt-2" | "phi-2" | "jina-es" | "jina-de" | "gigachat" | "jina-v2-es"
            | "jina-v2-de" | "a.x-4.0" | "mellum" | "modern-bert" | "jina-v1-en"
            | "jina-v2-code" | "roberta-bpe" | "olmo" | "jais" | "exaone4" => of(K::Gpt2),
            "trillion" | "granite-docling" => of(K::Gpt2).unclean(),
            "jais-2" => of(K::Jais2),
            "gemma4" | "granite-embed-multi-311m" => of(K::Gemma4).spm_style(),
            "sarvam-moe" => of(K::SarvamMoe).spm_style().unclean(),
            "whitespace" => Self {
                byte_encode: false,
                ..of(K::Whitespace)
            },
            "qwen2" | "deepseek-r1-qwen" | "kormo" | "f2llmv2" => of(K::Qwen2).unclean(),
            "megrez" | "stablelm2" => of(K::Qwen2),
            "hunyuan" | "solar-open" | "grok-2" => of(K::Qwen2).unclean(),
            "qwen35" => of(K::Qwen35).unclean(),
            "dbrx" | "smaug-bpe" => of(K::Llama3),
            "poro-chat" | "viking" => of(if name == "viking" {
                K::Viking
            } else {
                K::Bloom
            })
            .unclean(),
            "bloom" | "gpt3-finnish" => of(K::Bloom),
            "chatglm-bpe" => Self {
                no_default_bos: true,
                ..of(K::Llama3)
            },
            "glm4" | "glm5" => Self {
                no_default_bos: true,
                ..of(K::Llama3).ignoring_merges()
            },
            "tekken" => of(K::Tekken).unclean().ignoring_merges().with_bos(),
            "exaone-moe" => of(K::ExaoneMoe),
            "chameleon" => of(K::Chameleon).with_bos().unclean(),
            "gpt-4o" | "llama4" | "kanana2" | "talkie" | "minimax-m2" => of(K::Gpt4o).unclean(),
            "granite-embed-multi-97m" => of(K::GraniteEmbMulti).unclean().ignoring_merges(),
            "tiny_aya" | "cohere2moe" => of(K::TinyAya).unclean(),
            "superbpe" => of(K::SuperBpe).unclean(),
            "bailingmoe" | "bailingmoe2" | "llada-moe" => of(K::BailingMoe).unclean(),
            "seed-coder" => of(K::SeedCoder).unclean(),
            "kimi-k2" => of(K::KimiK2).unclean(),
            "ufakzeka" => of(K::Ufakzeka).unclean(),
            "afmoe" => of(K::Afmoe).unclean(),
            "laguna" => of(K::Laguna).unclean(),
            other => return Err(TokenizerError::UnsupportedPreTokenizer(other.to_string())),
        })
    }
}

/// Every `tokenizer.ggml.pre` name llama.cpp 0.5.0 accepts (its `llama-vocab.cpp`).
pub const KNOWN_NAMES: &[&str] = &[
    "default",
    "minicpm5",
    "llama3",
    "llama-v3",
    "llama-bpe",
    "falcon3",
    "falcon-h1",
    "pixtral",
    "midm-2.0",
    "lfm2",
    "jina-v5-nano",
    "deepseek-llm",
    "deepseek-coder",
    "deepseek-v3",
    "spark2_5",
    "youtu",
    "falcon",
    "mpt",
    "starcoder",
    "gpt-2",
    "phi-2",
    "jina-es",
    "jina-de",
    "gigachat",
    "jina-v2-es",
    "jina-v2-de",
    "a.x-4.0",
    "mellum",
    "modern-bert",
    "jais-2",
    "gemma4",
    "granite-embed-multi-311m",
    "sarvam-moe",
    "jina-v1-en",
    "jina-v2-code",
    "roberta-bpe",
    "whitespace",
    "refact",
    "command-r",
    "qwen2",
    "deepseek-r1-qwen",
    "kormo",
    "f2llmv2",
    "qwen35",
    "stablelm2",
    "olmo",
    "dbrx",
    "smaug-bpe",
    "poro-chat",
    "chatglm-bpe",
    "glm4",
    "glm5",
    "viking",
    "jais",
    "tekken",
    "smollm",
    "codeshell",
    "bloom",
    "gpt3-finnish",
    "exaone",
    "exaone4",
    "exaone-moe",
    "chameleon",
    "minerva-7b",
    "megrez",
    "gpt-4o",
    "llama4",
    "kanana2",
    "talkie",
    "granite-embed-multi-97m",
    "tiny_aya",
    "cohere2moe",
    "superbpe",
    "trillion",
    "granite-docling",
    "bailingmoe",
    "bailingmoe2",
    "llada-moe",
    "seed-coder",
    "hunyuan",
    "hunyuan-dense",
    "hy_v4",
    "joyai-llm",
    "kimi-k2",
    "ufakzeka",
    "grok-2",
    "afmoe",
    "laguna",
    "minimax-m2",
    "solar-open",
    "mellum2",
];
