//! Structured output: the request fields that constrain the answer to a grammar, read into
//! a [`Grammar`], and its compilation into the engine's per-sequence constraint.
//!
//! Accepted (at most one of them per request):
//! - `response_format: {"type": "json_object"}` — any JSON object;
//! - `response_format: {"type": "json_schema", "json_schema": {"name", "schema", "strict"}}`
//!   — a document valid against `schema` (`strict` is accepted either way: the schema is
//!   always enforced);
//! - `json_schema: {...}` — llama-server's top-level schema field;
//! - `grammar: "..."` — a grammar in llguidance's Lark syntax
//!   (<https://github.com/guidance-ai/llguidance/blob/main/docs/syntax.md>). llama.cpp's GBNF
//!   is not accepted: llguidance converts it only in Python tooling, and a GBNF text is
//!   refused with a 400 rather than misread.
//!
//! A schema or grammar llguidance rejects is a 400 naming the field.

use std::sync::Arc;

use rocmforge_model::Tokenizer;
use rocmforge_model::constraint::{Constraint, Grammar, GrammarCompiler};
use serde_json::Value;

use super::app::Shared;
use super::error::ApiError;
use super::types::CommonFields;

/// The grammar a request asks for and the field that asked (for error messages).
#[derive(Debug, Clone, PartialEq)]
pub struct Requested {
    /// The grammar.
    pub grammar: Grammar,
    /// The request field it came from.
    pub field: &'static str,
}

fn response_format(v: &Value) -> Result<Option<Grammar>, ApiError> {
    let bad = |m: &str| ApiError::invalid(Some("response_format"), m.to_string());
    match v.get("type").and_then(Value::as_str) {
        Some("text") => Ok(None),
        Some("json_object") => Ok(Some(Grammar::JsonObject)),
        Some("json_schema") => {
            let Some(spec) = v.get("json_schema").filter(|s| s.is_object()) else {
                return Err(bad(
                    "response_format json_schema needs a \"json_schema\" object with a \"schema\"",
                ));
            };
            match spec.get("schema") {
                Some(s @ (Value::Object(_) | Value::Bool(true))) => {
                    Ok(Some(Grammar::JsonSchema(s.clone())))
                }
                None => Ok(Some(Grammar::JsonObject)),
                Some(_) => Err(bad("response_format json_schema.schema must be an object")),
            }
        }
        Some(other) => Err(bad(&format!(
            "response_format type '{other}' is not supported (text, json_object, json_schema)"
        ))),
        None => Err(bad("response_format needs a \"type\"")),
    }
}

/// The grammar `c` asks for, if any.
pub fn requested(c: &CommonFields) -> Result<Option<Requested>, ApiError> {
    let mut found = Vec::new();
    if let Some(v) = c.response_format.as_ref().filter(|v| !v.is_null()) {
        if let Some(g) = response_format(v)? {
            found.push(Requested {
                grammar: g,
                field: "response_format",
            });
        }
    }
    match c.json_schema.as_ref() {
        None | Some(Value::Null) => {}
        Some(s @ Value::Object(_)) => found.push(Requested {
            grammar: Grammar::JsonSchema(s.clone()),
            field: "json_schema",
        }),
        Some(_) => {
            return Err(ApiError::invalid(
                Some("json_schema"),
                "json_schema must be a JSON schema object",
            ));
        }
    }
    match c.grammar.as_ref() {
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.trim().is_empty() => {}
        Some(Value::String(s)) => {
            if looks_like_gbnf(s) {
                return Err(ApiError::invalid(
                    Some("grammar"),
                    "grammar looks like GBNF (`root ::= ...`); only llguidance's Lark syntax is accepted (`start: ...`)",
                ));
            }
            found.push(Requested {
                grammar: Grammar::Lark(s.clone()),
                field: "grammar",
            });
        }
        Some(_) => {
            return Err(ApiError::invalid(
                Some("grammar"),
                "grammar must be a string (Lark syntax)",
            ));
        }
    }
    if found.len() > 1 {
        return Err(ApiError::invalid(
            Some(found[1].field),
            format!(
                "{} and {} both constrain the output; send only one",
                found[0].field, found[1].field
            ),
        ));
    }
    Ok(found.pop())
}

/// GBNF's rule arrow at the start of a line (Lark uses `:`).
fn looks_like_gbnf(s: &str) -> bool {
    s.lines().any(|l| {
        let l = l.trim_start();
        !l.starts_with("//") && !l.starts_with('#') && l.contains("::=")
    })
}

/// Where the server's grammar compiler goes once built (or why it could not be).
pub type GrammarSlot = Arc<std::sync::OnceLock<Result<GrammarCompiler, String>>>;

fn build(tokenizer: Arc<Tokenizer>) -> Result<GrammarCompiler, String> {
    GrammarCompiler::new(tokenizer).map_err(|e| e.to_string())
}

/// The server's grammar compiler (built now if [`prepare`] has not: it indexes the
/// vocabulary; a build under way is waited for).
fn compiler(state: &Shared) -> Result<&GrammarCompiler, ApiError> {
    state
        .grammars
        .get_or_init(|| build(Arc::clone(state.engine.tokenizer())))
        .as_ref()
        .map_err(|e| ApiError::internal(format!("constrained sampling is unavailable: {e}")))
}

/// Starts building the grammar compiler for `file`'s vocabulary into a new slot, on a
/// thread of its own (the tokenizer, ~0.1 s for a 150k vocabulary, then the compiler's index,
/// ~0.3 s), so that it is ready by the time the model has loaded and the first constrained
/// request does not wait. Without a thread or a tokenizer the slot stays empty and the
/// compiler is built on first use (from the engine's tokenizer).
pub fn prepare(file: &rocmforge_gguf::GgufFile) -> GrammarSlot {
    let slot = GrammarSlot::default();
    let target = Arc::clone(&slot);
    let file = file.clone();
    let spawned = std::thread::Builder::new()
        .name("grammar-compiler".to_string())
        .spawn(move || {
            let tokenizer = match Tokenizer::from_gguf(&file) {
                Ok(t) => Arc::new(t),
                Err(e) => {
                    tracing::debug!(error = %e, "no tokenizer for the grammar compiler yet");
                    return;
                }
            };
            drop(file);
            if let Err(e) = target.get_or_init(|| build(tokenizer)) {
                tracing::warn!(error = %e, "constrained sampling is unavailable");
            }
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "could not start the grammar compiler thread; it is built on first use");
    }
    slot
}

/// Compiles `req` off the async threads; a grammar llguidance rejects is a 400 naming the
/// field it came from.
pub async fn compile(state: &Shared, req: Requested) -> Result<Constraint, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || {
        let compiler = compiler(&state)?;
        compiler.compile(&req.grammar).map_err(|e| {
            ApiError::invalid(Some(req.field), format!("{}: {e}", req.field))
                .with_code("invalid_grammar")
        })
    })
    .await
    .map_err(|e| ApiError::internal(format!("grammar task: {e}")))?
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use super::*;
    use crate::server::types::common_fields as fields;

    #[test]
    fn each_field_reads_into_its_grammar() {
        let r = |json: &str| requested(&fields(json)).unwrap().map(|r| r.grammar);
        assert_eq!(r("{}"), None);
        assert_eq!(r(r#"{"response_format":{"type":"text"}}"#), None);
        assert_eq!(
            r(r#"{"response_format":{"type":"json_object"}}"#),
            Some(Grammar::JsonObject)
        );
        assert_eq!(
            r(
                r#"{"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"integer"},"strict":true}}}"#
            ),
            Some(Grammar::JsonSchema(serde_json::json!({"type":"integer"})))
        );
        assert_eq!(
            r(r#"{"json_schema":{"type":"string"}}"#),
            Some(Grammar::JsonSchema(serde_json::json!({"type":"string"})))
        );
        assert_eq!(
            r(r#"{"grammar":"start: \"yes\" | \"no\""}"#),
            Some(Grammar::Lark("start: \"yes\" | \"no\"".to_string()))
        );
    }

    #[test]
    fn malformed_or_conflicting_fields_are_400s_naming_the_field() {
        for (json, param) in [
            (r#"{"response_format":{"type":"xml"}}"#, "response_format"),
            (r#"{"response_format":{}}"#, "response_format"),
            (
                r#"{"response_format":{"type":"json_schema","json_schema":{"schema":3}}}"#,
                "response_format",
            ),
            (r#"{"json_schema":"object"}"#, "json_schema"),
            (r#"{"grammar":"root ::= \"a\""}"#, "grammar"),
            (r#"{"grammar":7}"#, "grammar"),
            (
                r#"{"response_format":{"type":"json_object"},"grammar":"start: \"a\""}"#,
                "grammar",
            ),
        ] {
            let e = requested(&fields(json)).unwrap_err();
            assert_eq!(e.status.as_u16(), 400, "{json}");
            assert_eq!(e.param.as_deref(), Some(param), "{json}");
        }
    }
}
