//! Tool calling: the request's `tools` and `tool_choice`, the prompt that offers the tools
//! (through the chat template, in the model family's format), the grammar that enforces
//! `required` and named choices, and the parsing of the answer into `tool_calls`.
//!
//! Families, told apart by the chat template as llama-server does ([`ToolFormat`]):
//! Hermes/Qwen `<tool_call>{json}</tool_call>`, Llama 3.x `{"name", "parameters"}`, Mistral
//! `[TOOL_CALLS][{...}]`, and llama-server's generic JSON format for templates without tool
//! support (the tools described in a system message; the model answers
//! `{"tool_call": {"name", "arguments"}}` or `{"response": ...}`, always under a grammar), and
//! gpt-oss's harmony channels ([`harmony`]: reasoning, content and calls; read for every chat
//! answer of a harmony template, tools or not).

mod answer_stream;
mod call_stream;
mod format;
mod harmony;
mod json_scan;
mod parse;

pub use answer_stream::{AnswerDelta, AnswerStream, read_answer};
pub use call_stream::CallDelta;
pub use format::{ToolFormat, constraint_for, harmony_structured, prompt_messages};
pub use parse::parse_answer;

use serde_json::Value;

use super::error::ApiError;

/// One function the model may call.
#[derive(Debug, Clone, PartialEq)]
pub struct Tool {
    /// Its name.
    pub name: String,
    /// Its description (may be empty).
    pub description: String,
    /// JSON schema of its arguments.
    pub parameters: Value,
}

/// `tool_choice`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolChoice {
    /// The model chooses between answering and calling.
    Auto,
    /// No call: the tools are not offered.
    None,
    /// The model must call one (or more) of the tools.
    Required,
    /// The model must call this function.
    Named(String),
}

/// The tools of a request with the choice, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolRequest {
    /// The functions offered.
    pub tools: Vec<Tool>,
    /// The request's `tools` as sent (passed to the chat template).
    pub raw: Value,
    /// What the model may do.
    pub choice: ToolChoice,
}

impl ToolRequest {
    /// The tools the model may call under the choice.
    pub fn callable(&self) -> Vec<&Tool> {
        match &self.choice {
            ToolChoice::None => Vec::new(),
            ToolChoice::Named(n) => self.tools.iter().filter(|t| &t.name == n).collect(),
            ToolChoice::Auto | ToolChoice::Required => self.tools.iter().collect(),
        }
    }
}

fn tool_at(i: usize, v: &Value) -> Result<Tool, ApiError> {
    let param = format!("tools[{i}]");
    let bad = |m: &str| ApiError::invalid(Some(&param), format!("{param}: {m}"));
    if v.get("type").and_then(Value::as_str) != Some("function") {
        return Err(bad("only {\"type\": \"function\"} tools are supported"));
    }
    let Some(f) = v.get("function").filter(|f| f.is_object()) else {
        return Err(bad("needs a \"function\" object"));
    };
    let Some(name) = f
        .get("name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
    else {
        return Err(bad("function.name must be a non-empty string"));
    };
    let parameters = match f.get("parameters") {
        None | Some(Value::Null) => serde_json::json!({"type": "object", "properties": {}}),
        Some(p @ Value::Object(_)) => p.clone(),
        Some(_) => return Err(bad("function.parameters must be a JSON schema object")),
    };
    Ok(Tool {
        name: name.to_string(),
        description: f
            .get("description")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        parameters,
    })
}

fn choice(v: Option<&Value>, has_tools: bool) -> Result<ToolChoice, ApiError> {
    let bad = |m: String| ApiError::invalid(Some("tool_choice"), m);
    let choice = match v {
        None | Some(Value::Null) => {
            return Ok(if has_tools {
                ToolChoice::Auto
            } else {
                ToolChoice::None
            });
        }
        Some(Value::String(s)) => match s.as_str() {
            "auto" => ToolChoice::Auto,
            "none" => ToolChoice::None,
            "required" => ToolChoice::Required,
            other => {
                return Err(bad(format!(
                    "tool_choice '{other}' is not one of auto, none, required"
                )));
            }
        },
        Some(obj) => match (
            obj.get("type").and_then(Value::as_str),
            obj.pointer("/function/name").and_then(Value::as_str),
        ) {
            (Some("function"), Some(name)) => ToolChoice::Named(name.to_string()),
            _ => {
                return Err(bad(
                    "tool_choice must be auto, none, required or {\"type\": \"function\", \"function\": {\"name\": ...}}"
                        .to_string(),
                ));
            }
        },
    };
    if !has_tools && matches!(choice, ToolChoice::Required | ToolChoice::Named(_)) {
        return Err(bad(
            "tool_choice asks for a call but no tools were given".to_string()
        ));
    }
    Ok(choice)
}

/// The tools and choice of a request; `None` when it offers none (or `tool_choice` is
/// `none`).
pub fn requested(
    tools: Option<&Value>,
    tool_choice: Option<&Value>,
) -> Result<Option<ToolRequest>, ApiError> {
    let list = match tools {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                Some("tools"),
                "tools must be a list of functions",
            ));
        }
    };
    let tools = list
        .iter()
        .enumerate()
        .map(|(i, t)| tool_at(i, t))
        .collect::<Result<Vec<_>, _>>()?;
    for (i, t) in tools.iter().enumerate() {
        if tools[..i].iter().any(|u| u.name == t.name) {
            return Err(ApiError::invalid(
                Some(&format!("tools[{i}]")),
                format!("tool name '{}' appears twice", t.name),
            ));
        }
    }
    let choice = choice(tool_choice, !tools.is_empty())?;
    if let ToolChoice::Named(name) = &choice {
        if !tools.iter().any(|t| &t.name == name) {
            return Err(ApiError::invalid(
                Some("tool_choice"),
                format!("tool_choice names '{name}', which is not among the tools"),
            ));
        }
    }
    if tools.is_empty() || choice == ToolChoice::None {
        return Ok(None);
    }
    Ok(Some(ToolRequest {
        tools,
        raw: Value::Array(list),
        choice,
    }))
}

/// The id of the `k`-th call of an answer: the model's own where it wrote one; Mistral's
/// templates demand 9 alphanumeric characters, made here from `prefix` and `k`; other
/// formats get `<prefix>_<k>`.
pub fn call_id(format: ToolFormat, prefix: &str, k: usize, given: Option<&str>) -> String {
    if let Some(id) = given.filter(|id| !id.is_empty()) {
        return id.to_string();
    }
    if format != ToolFormat::Mistral {
        return format!("{prefix}_{k}");
    }
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (prefix, k).hash(&mut h);
    let mut x = h.finish();
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    (0..9)
        .map(|_| {
            let c = DIGITS[(x % 62) as usize] as char;
            x /= 62;
            c
        })
        .collect()
}

#[cfg(test)]
mod tests;
