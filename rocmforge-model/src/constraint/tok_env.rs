//! The token environment llguidance computes masks over, built from our tokenizer: each
//! token id's bytes (control tokens marked with toktrie's special-token byte, so grammars
//! never spell them as text) and the end-of-generation ids.

use std::sync::Arc;

use llguidance::toktrie::{TokRxInfo, TokTrie, TokenId, TokenizerEnv};

use crate::error::{ModelError, ModelResult};
use crate::tokenizer::Tokenizer;

/// Our tokenizer as llguidance's [`TokenizerEnv`].
pub(crate) struct TokenEnv {
    trie: TokTrie,
    tokenizer: Arc<Tokenizer>,
}

impl TokenEnv {
    /// The trie of `tokenizer`'s vocabulary; every end-of-generation token counts as EOS.
    pub fn new(tokenizer: Arc<Tokenizer>) -> ModelResult<Self> {
        let vocab = tokenizer.vocab_size();
        let vocab_size = u32::try_from(vocab).map_err(|_| ModelError::InvalidConfig {
            key: "tokenizer.ggml.tokens".to_string(),
            reason: format!("{vocab} tokens do not fit a u32 token id"),
        })?;
        let eog: Vec<u32> = tokenizer.eog_ids().filter(|&t| t < vocab_size).collect();
        let Some(&eos) = tokenizer
            .eos_id()
            .filter(|&t| t < vocab_size)
            .as_ref()
            .or(eog.first())
        else {
            return Err(ModelError::InvalidConfig {
                key: "tokenizer.ggml.eos_token_id".to_string(),
                reason: "constrained sampling needs an end-of-generation token".to_string(),
            });
        };
        let words: Vec<Vec<u8>> = (0..vocab_size)
            .map(|id| token_bytes(&tokenizer, id))
            .collect();
        let ids = tokenizer.special_ids();
        let info = TokRxInfo {
            vocab_size,
            tok_eos: eos,
            tok_bos: ids.bos,
            tok_pad: ids.pad,
            tok_unk: ids.unk,
            tok_end_of_turn: ids.eot,
        };
        let mut eos_all = vec![eos];
        eos_all.extend(eog.iter().copied().filter(|&t| t != eos));
        let trie = TokTrie::from(&info, &words).with_eos_tokens(&eos_all);
        Ok(Self { trie, tokenizer })
    }
}

/// The bytes llguidance sees for token `id`: its text, or for control and unknown tokens the
/// special marker byte followed by the token's vocabulary text.
fn token_bytes(tokenizer: &Tokenizer, id: u32) -> Vec<u8> {
    let plain = tokenizer.token_to_bytes(id);
    let special = tokenizer.token_type(id).is_some_and(|t| t.is_special());
    if !special && !plain.is_empty() {
        return plain.to_vec();
    }
    let mut bytes = vec![TokTrie::SPECIAL_TOKEN_MARKER];
    bytes.extend_from_slice(tokenizer.token_text(id).unwrap_or_default().as_bytes());
    bytes
}

impl TokenizerEnv for TokenEnv {
    fn tok_trie(&self) -> &TokTrie {
        &self.trie
    }

    fn tokenize_bytes(&self, s: &[u8]) -> Vec<TokenId> {
        match std::str::from_utf8(s) {
            Ok(text) => match self.tokenizer.encode(text, false, false) {
                Ok(ids) => ids,
                Err(_) => self.trie.greedy_tokenize(s),
            },
            Err(_) => self.trie.greedy_tokenize(s),
        }
    }
}
