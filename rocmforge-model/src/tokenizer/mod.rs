//! Text ↔ token ids, built from a model file's `tokenizer.*` metadata, matching llama.cpp.
//!
//! Two vocabulary types are supported:
//! - **SPM** (`tokenizer.ggml.model = llama`): SentencePiece-style score-ordered merges over characters,
//!   spaces written as `▁`, an optional leading space, `<0xXX>` byte fallback;
//! - **BPE** (`tokenizer.ggml.model = gpt2`): byte-level BPE with ranked merges, after a pre-tokenizer
//!   chosen by `tokenizer.ggml.pre` has cut the text into words (every name llama.cpp 0.5.0 knows:
//!   [`KNOWN_PRE_TOKENIZERS`]); `gemma4` is BPE over raw UTF-8 with `▁` for spaces.
//!
//! WordPiece (`bert`), Unigram (`t5`), `rwkv` and `plamo2` vocabularies are refused with an error
//! naming the model.
//!
//! Special tokens (control, user-defined) are matched as whole strings before either algorithm runs.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use rocmforge_model::tokenizer::Tokenizer;
//! let file = rocmforge_gguf::GgufFile::open("model.gguf")?;
//! let tok = Tokenizer::from_gguf(&file)?;
//! let ids = tok.encode("Hello world", true, true)?;
//! assert_eq!(tok.decode(&ids[usize::from(tok.add_bos())..]), "Hello world");
//! # Ok(()) }
//! ```

mod bpe;
mod build;
mod byte_map;
mod data;
mod decode;
mod error;
mod from_gguf;
mod pre_names;
mod pre_patterns;
mod pretokenize;
mod special;
mod spm;
mod vocab;

use std::borrow::Cow;
use std::collections::BTreeSet;

pub use data::TokenizerData;
pub use decode::StreamDecoder;
pub use error::{TokenizerError, TokenizerResult};
pub use pre_names::{KNOWN_NAMES as KNOWN_PRE_TOKENIZERS, PreTokenizerSpec};
pub use pretokenize::PreTokenizerKind;
pub use vocab::TokenType;

use bpe::MergeRanks;
use byte_map::ByteMap;
use pretokenize::PreTokenizer;
use special::Fragment;
use vocab::Vocab;

/// The vocabulary type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VocabKind {
    /// SentencePiece (`tokenizer.ggml.model = llama`).
    Spm,
    /// Byte-level BPE (`tokenizer.ggml.model = gpt2`).
    Bpe,
}

/// The ids of the tokens with a role.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SpecialIds {
    /// Beginning of sequence.
    pub bos: Option<u32>,
    /// End of sequence.
    pub eos: Option<u32>,
    /// End of turn.
    pub eot: Option<u32>,
    /// End of message.
    pub eom: Option<u32>,
    /// Unknown token.
    pub unk: Option<u32>,
    /// Padding.
    pub pad: Option<u32>,
}

/// A ready tokenizer. Cheap to share (`&Tokenizer` is all encoding and decoding need).
#[derive(Debug, Clone)]
pub struct Tokenizer {
    kind: VocabKind,
    vocab: Vocab,
    merges: MergeRanks,
    pre: Option<PreTokenizer>,
    pre_spec: Option<PreTokenizerSpec>,
    byte_map: ByteMap,
    special_order: Vec<u32>,
    /// Bytes of each token as plain text (control and unknown tokens: empty).
    pieces: Vec<Vec<u8>>,
    ids: SpecialIds,
    eog: BTreeSet<u32>,
    add_bos: bool,
    add_eos: bool,
    add_space_prefix: bool,
    chat_template: Option<String>,
}

const SPM_SPACE: &str = "\u{2581}";

impl Tokenizer {
    /// Encodes `text`. With `add_special`, BOS / EOS are added where the model asks for them
    /// ([`Tokenizer::add_bos`], [`Tokenizer::add_eos`]). With `parse_special`, the text of control tokens
    /// (e.g. `<|im_start|>`) becomes that token; user-defined tokens are always matched.
    pub fn encode(
        &self,
        text: &str,
        add_special: bool,
        parse_special: bool,
    ) -> TokenizerResult<Vec<u32>> {
        let fragments = special::partition(&self.vocab, &self.special_order, text, parse_special);
        let mut out = Vec::with_capacity(text.len() / 3 + 2);
        if add_special && self.add_bos {
            out.extend(self.ids.bos);
        }
        match self.kind {
            VocabKind::Spm => {
                let mut prev_special = true;
                for frag in fragments {
                    match frag {
                        Fragment::Token(id) => {
                            out.push(id);
                            prev_special = true;
                        }
                        Fragment::Text(range) => {
                            let mut piece = String::with_capacity(range.len() + 1);
                            if self.add_space_prefix && prev_special {
                                piece.push(' ');
                            }
                            piece.push_str(&text[range]);
                            let escaped = piece.replace(' ', SPM_SPACE);
                            spm::tokenize(&self.vocab, self.ids.unk, &escaped, &mut out)?;
                            prev_special = false;
                        }
                    }
                }
            }
            VocabKind::Bpe => {
                for frag in fragments {
                    match frag {
                        Fragment::Token(id) => out.push(id),
                        Fragment::Text(range) => self.encode_bpe_text(&text[range], &mut out)?,
                    }
                }
            }
        }
        if add_special && self.add_eos {
            out.extend(self.ids.eos);
        }
        Ok(out)
    }

    fn encode_bpe_text(&self, text: &str, out: &mut Vec<u32>) -> TokenizerResult<()> {
        let (Some(pre), Some(spec)) = (&self.pre, self.pre_spec) else {
            return Ok(());
        };
        let escaped;
        let text = if spec.escape_whitespaces {
            escaped = text.replace(' ', SPM_SPACE);
            escaped.as_str()
        } else {
            text
        };
        for range in pre.split(text)? {
            let raw = &text[range];
            let word = if spec.byte_encode {
                Cow::Owned(self.byte_map.encode(raw.as_bytes()))
            } else {
                Cow::Borrowed(raw)
            };
            // llama.cpp takes a newline run of gemma4 whole when it is a token.
            let whole = spec.ignore_merges
                || (spec.kind == PreTokenizerKind::Gemma4 && raw.bytes().all(|b| b == b'\n'));
            let fallback = if spec.byte_encode {
                bpe::Fallback::AsciiChars
            } else {
                bpe::Fallback::ByteTokens
            };
            bpe::tokenize_word(&self.vocab, &self.merges, &word, whole, fallback, out);
        }
        Ok(())
    }

    /// Whether BPE tokens hold raw UTF-8 with `▁` for spaces (gemma4) rather than GPT-2's byte alphabet.
    fn bpe_is_raw_utf8(&self) -> bool {
        self.pre_spec.is_some_and(|s| !s.byte_encode)
    }

    /// Decodes ids to text (invalid UTF-8 becomes U+FFFD). Control tokens render as nothing; a leading
    /// BOS is skipped and, for vocabularies that add a space prefix, the first piece loses one leading
    /// space, so that `decode(encode(t))` gives `t` back. Ids outside the vocabulary are skipped.
    pub fn decode(&self, ids: &[u32]) -> String {
        let ids = match (ids.first(), self.ids.bos) {
            (Some(&first), Some(bos)) if first == bos => &ids[1..],
            _ => ids,
        };
        let mut bytes = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            let piece = self.token_to_bytes(id);
            if i == 0 && self.add_space_prefix && piece.first() == Some(&b' ') {
                bytes.extend_from_slice(&piece[1..]);
            } else {
                bytes.extend_from_slice(piece);
            }
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Like [`Tokenizer::decode`] but control tokens render as their text (`<|im_end|>`) and nothing is
    /// stripped.
    pub fn decode_with_special(&self, ids: &[u32]) -> String {
        let mut bytes = Vec::new();
        for &id in ids {
            bytes.extend_from_slice(&self.token_to_bytes_special(id));
        }
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// The bytes token `id` stands for as plain text (empty for control/unknown tokens and bad ids).
    pub fn token_to_bytes(&self, id: u32) -> &[u8] {
        usize::try_from(id)
            .ok()
            .and_then(|i| self.pieces.get(i))
            .map_or(&[], Vec::as_slice)
    }

    /// The bytes of token `id`, with control and unknown tokens rendered as their text.
    pub fn token_to_bytes_special(&self, id: u32) -> Vec<u8> {
        match self.vocab.get(id) {
            Some(e) if e.ty.is_special() => e.text.as_bytes().to_vec(),
            Some(_) => self.token_to_bytes(id).to_vec(),
            None => Vec::new(),
        }
    }

    fn render_piece(&self, index: usize) -> Vec<u8> {
        let Some(e) = u32::try_from(index).ok().and_then(|id| self.vocab.get(id)) else {
            return Vec::new();
        };
        // SentencePiece-style pieces: `▁` for spaces, `<0xXX>` byte tokens (SPM, gemma4's BPE).
        let spm_style = self.kind == VocabKind::Spm || self.bpe_is_raw_utf8();
        match e.ty {
            TokenType::Control | TokenType::Unknown => Vec::new(),
            TokenType::UserDefined => e.text.as_bytes().to_vec(),
            TokenType::Normal if spm_style => e.text.replace(SPM_SPACE, " ").into_bytes(),
            TokenType::Normal => self.byte_map.decode(&e.text),
            TokenType::Byte if spm_style => {
                parse_byte_token(&e.text).map_or_else(Vec::new, |b| vec![b])
            }
            _ => Vec::new(),
        }
    }

    /// The token's text exactly as stored in the vocabulary.
    pub fn token_text(&self, id: u32) -> Option<&str> {
        self.vocab.get(id).map(|e| e.text.as_str())
    }

    /// The token's type.
    pub fn token_type(&self, id: u32) -> Option<TokenType> {
        self.vocab.get(id).map(|e| e.ty)
    }

    /// The id of the token whose vocabulary text is exactly `text`.
    pub fn token_id(&self, text: &str) -> Option<u32> {
        self.vocab.id_of(text)
    }

    /// A streaming decoder over this vocabulary.
    pub fn stream_decoder(&self) -> StreamDecoder<'_> {
        StreamDecoder::new(self)
    }

    /// The vocabulary type.
    pub fn kind(&self) -> VocabKind {
        self.kind
    }

    /// Number of tokens.
    pub fn vocab_size(&self) -> usize {
        self.vocab.len()
    }

    /// The special-role token ids.
    pub fn special_ids(&self) -> SpecialIds {
        self.ids
    }

    /// Beginning-of-sequence token.
    pub fn bos_id(&self) -> Option<u32> {
        self.ids.bos
    }

    /// End-of-sequence token.
    pub fn eos_id(&self) -> Option<u32> {
        self.ids.eos
    }

    /// Whether generation stops at `id`: EOS, EOT, EOM and tokens like `<|im_end|>` / `<|endoftext|>`.
    pub fn is_eog(&self, id: u32) -> bool {
        self.eog.contains(&id)
    }

    /// All end-of-generation ids.
    pub fn eog_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.eog.iter().copied()
    }

    /// Whether `encode(.., add_special = true, ..)` starts with BOS.
    pub fn add_bos(&self) -> bool {
        self.add_bos && self.ids.bos.is_some()
    }

    /// Whether `encode(.., add_special = true, ..)` ends with EOS.
    pub fn add_eos(&self) -> bool {
        self.add_eos && self.ids.eos.is_some()
    }

    /// Whether SPM encoding puts a space in front of the text.
    pub fn add_space_prefix(&self) -> bool {
        self.add_space_prefix
    }

    /// The model's `tokenizer.chat_template`, if any.
    pub fn chat_template(&self) -> Option<&str> {
        self.chat_template.as_deref()
    }
}

/// `<0xXX>` → the byte.
fn parse_byte_token(text: &str) -> Option<u8> {
    let hex = text.strip_prefix("<0x")?.strip_suffix('>')?;
    u8::from_str_radix(hex, 16).ok()
}
