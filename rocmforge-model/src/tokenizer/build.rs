//! Turning [`TokenizerData`] into a ready [`Tokenizer`]: llama.cpp's defaults per vocabulary type,
//! the metadata overrides, and the special tokens it recognises by their text.

use std::collections::BTreeSet;

use super::bpe::MergeRanks;
use super::byte_map::ByteMap;
use super::data::TokenizerData;
use super::error::{TokenizerError, TokenizerResult};
use super::pre_names::PreTokenizerSpec;
use super::pretokenize::{PreTokenizer, PreTokenizerKind};
use super::special::special_match_order;
use super::vocab::{TokenEntry, TokenType, Vocab};
use super::{SpecialIds, Tokenizer, VocabKind};

const EOT_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<EOT>",
    "<｜end▁of▁sentence｜>",
];
const EOM_TEXTS: &[&str] = &["<|eom_id|>"];
const FIM_TEXTS: &[&[&str]] = &[
    &["<|fim_prefix|>", "<fim-prefix>", "<｜fim▁begin｜>", "<PRE>"],
    &["<|fim_suffix|>", "<fim-suffix>", "<｜fim▁hole｜>", "<SUF>"],
    &["<|fim_middle|>", "<fim-middle>", "<｜fim▁end｜>", "<MID>"],
];
/// FIM tokens that also end generation: pad, repo, file separator.
const FIM_EOG_TEXTS: &[&[&str]] = &[
    &["<|fim_pad|>", "<fim-pad>", "<PAD>"],
    &["<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>"],
    &["<|file_sep|>"],
];
/// Tokens that end generation by their text alone.
const EOG_TEXTS: &[&str] = &[
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "<|return|>",
    "<|call|>",
];
/// gpt-oss's harmony markers, which llama.cpp always renders (user-defined tokens) so that the
/// answer's channels can be parsed.
const HARMONY_RENDERED: &[&str] = &["<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"];

fn check_len<T>(key: &str, v: &[T], n: usize) -> TokenizerResult<()> {
    if v.is_empty() || v.len() == n {
        Ok(())
    } else {
        Err(TokenizerError::InvalidMetadata {
            key: key.to_string(),
            reason: format!("has {} entries but tokenizer.ggml.tokens has {n}", v.len()),
        })
    }
}

/// Finds the first of `texts` present in the vocabulary and marks it as a control token.
fn find_and_mark_control(vocab: &mut Vocab, texts: &[&str]) -> Option<u32> {
    let id = texts.iter().find_map(|t| vocab.id_of(t))?;
    if let Some(e) = vocab.get_mut(id) {
        e.ty = TokenType::Control;
    }
    Some(id)
}

fn set_user_defined(vocab: &mut Vocab, id: u32) {
    if let Some(e) = vocab.get_mut(id) {
        e.ty = TokenType::UserDefined;
    }
}

/// llama.cpp's rules for gpt-oss's o200k_harmony vocabulary (`llama-vocab.cpp`): the harmony
/// markers render as text, and where both `<|return|>` and `<|call|>` end generation, `<|end|>`
/// (which only closes one message of an answer) does not, and renders as text too.
fn harmony_markers(vocab: &mut Vocab, eog: &mut BTreeSet<u32>) {
    for text in HARMONY_RENDERED {
        if let Some(id) = vocab.id_of(text) {
            set_user_defined(vocab, id);
        }
    }
    let in_eog = |text: &str| vocab.id_of(text).filter(|id| eog.contains(id));
    if let (Some(_), Some(_), Some(end)) =
        (in_eog("<|return|>"), in_eog("<|call|>"), in_eog("<|end|>"))
    {
        eog.remove(&end);
        set_user_defined(vocab, end);
    }
}

impl Tokenizer {
    /// Builds a tokenizer from its raw description.
    pub fn from_data(data: TokenizerData) -> TokenizerResult<Self> {
        let n = data.tokens.len();
        if n == 0 {
            return Err(TokenizerError::InvalidMetadata {
                key: "tokenizer.ggml.tokens".into(),
                reason: "the vocabulary is empty".into(),
            });
        }
        check_len("tokenizer.ggml.scores", &data.scores, n)?;
        check_len("tokenizer.ggml.token_type", &data.token_types, n)?;

        let (kind, pre) = match data.model.as_str() {
            "llama" => (VocabKind::Spm, None),
            "gpt2" => (
                VocabKind::Bpe,
                Some(PreTokenizerSpec::from_name(data.pre.as_deref())?),
            ),
            // llama.cpp ignores `tokenizer.ggml.pre` here and always uses gemma4's rules.
            "gemma4" => (
                VocabKind::Bpe,
                Some(PreTokenizerSpec::from_name(Some("gemma4"))?),
            ),
            other => return Err(TokenizerError::UnsupportedModel(other.to_string())),
        };
        let in_range = |id: u32| (usize::try_from(id).is_ok_and(|i| i < n)).then_some(id);
        // llama.cpp's defaults per vocabulary type, then the metadata overrides (out-of-range ids ignored).
        let (mut ids, mut add_bos, mut add_space_prefix) = match pre {
            // SentencePiece (the only kind without a pre-tokenizer).
            None => (
                SpecialIds {
                    bos: in_range(1),
                    eos: in_range(2),
                    unk: in_range(0),
                    ..SpecialIds::default()
                },
                true,
                true,
            ),
            Some(spec) => {
                let gpt2_default = (data.model == "gpt2").then_some(11).and_then(in_range);
                (
                    SpecialIds {
                        bos: gpt2_default.filter(|_| !spec.no_default_bos),
                        eos: gpt2_default,
                        ..SpecialIds::default()
                    },
                    spec.add_bos,
                    false,
                )
            }
        };
        let pick = |v: Option<u32>, default: Option<u32>| v.and_then(in_range).or(default);
        ids.bos = pick(data.bos_id, ids.bos);
        ids.eos = pick(data.eos_id, ids.eos);
        ids.eot = pick(data.eot_id, None);
        ids.eom = pick(data.eom_id, None);
        ids.unk = pick(data.unknown_id, ids.unk);
        ids.pad = pick(data.padding_id, None);
        add_bos = data.add_bos.unwrap_or(add_bos);
        let add_eos = data.add_eos.unwrap_or(false);
        add_space_prefix = data.add_space_prefix.unwrap_or(add_space_prefix);

        let entries = (0..n)
            .map(|i| {
                let text = match data.tokens[i].as_str() {
                    "" => format!("[EMPTY_{i}]"),
                    t => t.to_string(),
                };
                TokenEntry {
                    text,
                    score: data.scores.get(i).copied().unwrap_or(0.0),
                    ty: data
                        .token_types
                        .get(i)
                        .map_or(TokenType::Normal, |&t| TokenType::from_i32(t)),
                    lstrip: false,
                    rstrip: false,
                }
            })
            .collect();
        let mut vocab = Vocab::new(entries);

        if ids.eot.is_none() {
            ids.eot = find_and_mark_control(&mut vocab, EOT_TEXTS);
        }
        if ids.eom.is_none() {
            ids.eom = find_and_mark_control(&mut vocab, EOM_TEXTS);
        }
        for texts in FIM_TEXTS {
            find_and_mark_control(&mut vocab, texts);
        }
        let mut eog = BTreeSet::new();
        for texts in FIM_EOG_TEXTS {
            eog.extend(find_and_mark_control(&mut vocab, texts));
        }
        for text in EOG_TEXTS {
            eog.extend(find_and_mark_control(&mut vocab, &[text]));
        }
        eog.extend(ids.eos);
        eog.extend(ids.eot);
        eog.extend(ids.eom);
        harmony_markers(&mut vocab, &mut eog);

        let special_order = special_match_order(&vocab);
        let name = data.model_name.as_deref().unwrap_or("").to_lowercase();
        if name.contains("phi-3") || name.contains("phi3") {
            for &id in &special_order {
                if let Some(e) = vocab.get_mut(id) {
                    e.rstrip = true;
                }
            }
            for (text, rstrip) in [
                ("</s>", true),
                ("<unk>", false),
                ("<s>", false),
                ("<|endoftext|>", false),
            ] {
                if let Some(e) = vocab.id_of(text).and_then(|id| vocab.get_mut(id)) {
                    e.rstrip = rstrip;
                }
            }
        }

        let merges = MergeRanks::from_lines(data.merges.iter().map(String::as_str));
        // Kimi K2 is the one BPE vocabulary llama.cpp loads without merges.
        let needs_merges = pre.is_some_and(|p| p.kind != PreTokenizerKind::KimiK2);
        if kind == VocabKind::Bpe && needs_merges && merges.is_empty() {
            return Err(TokenizerError::InvalidMetadata {
                key: "tokenizer.ggml.merges".into(),
                reason: "a BPE vocabulary needs merges".into(),
            });
        }
        let pre_tokenizer = pre.map(|p| PreTokenizer::new(p.kind)).transpose()?;
        let mut tok = Self {
            kind,
            vocab,
            merges,
            pre: pre_tokenizer,
            pre_spec: pre,
            byte_map: ByteMap::new(),
            special_order,
            pieces: Vec::new(),
            ids,
            eog,
            add_bos,
            add_eos,
            add_space_prefix,
            chat_template: data.chat_template,
        };
        tok.pieces = (0..n).map(|i| tok.render_piece(i)).collect();
        Ok(tok)
    }
}
