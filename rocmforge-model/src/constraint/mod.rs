//! Constrained sampling (structured output): a grammar — a JSON schema, any JSON object, or a
//! Lark grammar — compiled by [llguidance](https://github.com/guidance-ai/llguidance) into a
//! per-sequence [`Constraint`] that masks the logits before the sampler at every step and
//! consumes each sampled token. Constrained and unconstrained sequences share one batch; the
//! mask is computed on the host from the sequence's parser state (see `examples/mask_cost.rs`
//! for its cost per token).
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use rocmforge_model::constraint::{Grammar, GrammarCompiler};
//! let file = rocmforge_gguf::GgufFile::open("model.gguf")?;
//! let tokenizer = Arc::new(rocmforge_model::Tokenizer::from_gguf(&file)?);
//! let compiler = GrammarCompiler::new(tokenizer)?;
//! let schema = serde_json::json!({"type": "object", "properties": {"ok": {"type": "boolean"}}});
//! let constraint = compiler.compile(&Grammar::JsonSchema(schema))?;
//! # let _ = constraint; Ok(()) }
//! ```

mod tok_env;

use std::sync::Arc;

use llguidance::api::TopLevelGrammar;
use llguidance::toktrie::{SimpleVob, TokEnv};
use llguidance::{Matcher, ParserFactory};
use serde_json::Value;

use crate::error::{ModelError, ModelResult};
use crate::tokenizer::Tokenizer;

/// What a sequence's output must match.
#[derive(Debug, Clone, PartialEq)]
pub enum Grammar {
    /// A JSON document valid against this JSON schema.
    JsonSchema(Value),
    /// Any JSON object.
    JsonObject,
    /// A grammar in llguidance's Lark syntax (which may embed `%json { schema }`).
    Lark(String),
}

/// JSON layout the schema grammars produce unless a schema sets its own `x-guidance`
/// options: `", "` and `": "` separators and no other whitespace, so that a model cannot
/// spend its tokens on blank space between values.
fn compact_json_options() -> Value {
    serde_json::json!({
        "whitespace_flexible": false,
        "item_separator": ", ",
        "key_separator": ": ",
    })
}

impl Grammar {
    fn to_llguidance(&self) -> TopLevelGrammar {
        match self {
            Grammar::JsonSchema(schema) => {
                let mut schema = schema.clone();
                if let Some(obj) = schema.as_object_mut() {
                    obj.entry("x-guidance").or_insert_with(compact_json_options);
                }
                TopLevelGrammar::from_json_schema(schema)
            }
            Grammar::JsonObject => TopLevelGrammar::from_json_schema(serde_json::json!({
                "type": "object",
                "x-guidance": compact_json_options(),
            })),
            Grammar::Lark(text) => TopLevelGrammar::from_lark(text.clone()),
        }
    }
}

/// Compiles grammars against one tokenizer's vocabulary. Build it once per model (building
/// the token trie takes a moment) and share it: compiling is `&self`.
#[derive(Clone)]
pub struct GrammarCompiler {
    factory: Arc<ParserFactory>,
    vocab: usize,
}

impl std::fmt::Debug for GrammarCompiler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GrammarCompiler")
            .field("vocab", &self.vocab)
            .finish_non_exhaustive()
    }
}

impl GrammarCompiler {
    /// A compiler for `tokenizer`'s vocabulary.
    pub fn new(tokenizer: Arc<Tokenizer>) -> ModelResult<Self> {
        let vocab = tokenizer.vocab_size();
        let env: TokEnv = Arc::new(tok_env::TokenEnv::new(tokenizer)?);
        let mut factory = ParserFactory::new_simple(&env).map_err(|e| ModelError::Grammar {
            what: "the token environment".to_string(),
            reason: e.to_string(),
        })?;
        factory.quiet();
        Ok(Self {
            factory: Arc::new(factory),
            vocab,
        })
    }

    /// A fresh constraint for `grammar`; a grammar llguidance rejects (bad syntax, a schema
    /// feature it does not support) is a [`ModelError::Grammar`] with its reason.
    pub fn compile(&self, grammar: &Grammar) -> ModelResult<Constraint> {
        let what = match grammar {
            Grammar::JsonSchema(_) => "the JSON schema",
            Grammar::JsonObject => "the JSON object grammar",
            Grammar::Lark(_) => "the Lark grammar",
        };
        let parser = self.factory.create_parser(grammar.to_llguidance());
        let mut matcher = Matcher::new(parser);
        let bad = |reason: String| ModelError::Grammar {
            what: what.to_string(),
            reason,
        };
        if let Some(e) = matcher.get_error() {
            return Err(bad(e));
        }
        let mask = matcher
            .compute_mask_or_eos()
            .map_err(|e| bad(e.to_string()))?;
        let eos = self.factory.tok_env().tok_trie().eos_tokens().to_vec();
        Ok(Constraint {
            matcher,
            mask,
            eos,
            vocab: self.vocab,
        })
    }
}

/// One sequence's grammar state: the mask of the tokens allowed next, kept up to date as the
/// sampled tokens are consumed.
#[derive(Clone)]
pub struct Constraint {
    matcher: Matcher,
    /// Tokens allowed at the next step.
    mask: SimpleVob,
    /// Token ids that end generation (allowed once the grammar accepts).
    eos: Vec<u32>,
    vocab: usize,
}

impl std::fmt::Debug for Constraint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Constraint")
            .field("allowed", &self.mask.num_set())
            .field("complete", &self.is_complete())
            .finish_non_exhaustive()
    }
}

impl Constraint {
    /// Sets every logit of a token the grammar does not allow next to minus infinity
    /// (including ids past the tokenizer's vocabulary, where the output layer is padded).
    pub fn mask_logits(&self, logits: &mut [f32]) {
        let words = self.mask.as_slice();
        for (w, chunk) in logits.chunks_mut(32).enumerate() {
            let bits = words.get(w).copied().unwrap_or(0);
            if bits == u32::MAX {
                continue;
            }
            if bits == 0 {
                chunk.fill(f32::NEG_INFINITY);
                continue;
            }
            for (b, l) in chunk.iter_mut().enumerate() {
                if bits & (1 << b) == 0 {
                    *l = f32::NEG_INFINITY;
                }
            }
        }
        if let Some(tail) = logits.get_mut(self.vocab..) {
            tail.fill(f32::NEG_INFINITY);
        }
    }

    /// The tokens allowed next as `ceil(vocab / 32)` bit-mask words over a model vocabulary of
    /// `vocab` entries (bit `t % 32` of word `t / 32`), ids past the tokenizer's vocabulary
    /// cleared: the sampling op's grammar mask, what [`Constraint::mask_logits`] applies.
    pub fn allowed_words(&self, vocab: usize) -> Vec<u32> {
        let words = self.mask.as_slice();
        let mut out: Vec<u32> = (0..vocab.div_ceil(32))
            .map(|w| words.get(w).copied().unwrap_or(0))
            .collect();
        let limit = self.vocab.min(vocab);
        for (w, word) in out.iter_mut().enumerate().skip(limit / 32) {
            let first = w * 32;
            for b in 0..32 {
                if first + b >= limit {
                    *word &= !(1u32 << b);
                }
            }
        }
        out
    }

    /// Whether `token` is allowed next.
    pub fn allows(&self, token: u32) -> bool {
        (token as usize) < self.vocab && self.mask.is_allowed(token)
    }

    /// Consumes the sampled `token` and computes the next step's mask.
    pub fn accept(&mut self, token: u32) -> ModelResult<()> {
        let bad = |reason: String| ModelError::Grammar {
            what: format!("token {token}"),
            reason,
        };
        if !self.allows(token) {
            return Err(bad("the grammar does not allow this token here".to_string()));
        }
        self.matcher
            .consume_token(token)
            .map_err(|e| bad(e.to_string()))?;
        self.mask = self
            .matcher
            .compute_mask_or_eos()
            .map_err(|e| bad(e.to_string()))?;
        Ok(())
    }

    /// Whether the grammar is complete: only end-of-generation tokens are allowed next.
    pub fn is_complete(&self) -> bool {
        let allowed_eos = self.eos.iter().filter(|&&t| self.allows(t)).count();
        allowed_eos > 0 && self.mask.num_set() == allowed_eos
    }
}
