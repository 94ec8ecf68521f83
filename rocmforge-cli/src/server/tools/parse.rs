//! Reading tool calls (and harmony's reasoning) out of a model's answer, per [`ToolFormat`].

use serde_json::Value;

use super::ToolFormat;

/// One call the model made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCall {
    /// The function's name.
    pub name: String,
    /// Its arguments as a JSON string (OpenAI's form).
    pub arguments: String,
    /// The id the model wrote for it (Mistral's 9-character ids), if any.
    pub id: Option<String>,
}

/// An answer split into its text and its calls.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParsedAnswer {
    /// The text for the user (`content`); `None` when the answer is only calls.
    pub content: Option<String>,
    /// The reasoning (harmony's `analysis` channel), if any.
    pub reasoning: Option<String>,
    /// The calls, in order.
    pub calls: Vec<ToolCall>,
}

/// `{"name": .., <args>: {..}}` (args under `arguments` or `parameters`, an object or a
/// JSON string) as a call.
fn call_of(v: &Value) -> Option<ToolCall> {
    let name = v.get("name")?.as_str()?.to_string();
    let args = v.get("arguments").or_else(|| v.get("parameters"))?;
    let arguments = match args {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let id = v.get("id").and_then(Value::as_str).map(str::to_string);
    Some(ToolCall {
        name,
        arguments,
        id,
    })
}

/// The text beside calls: `None` when blank, else without trailing blanks (a stream sends it as
/// it comes, so what begins it stays).
fn text_or_none(s: &str) -> Option<String> {
    (!s.trim().is_empty()).then(|| s.trim_end().to_string())
}

fn plain(text: &str) -> ParsedAnswer {
    ParsedAnswer {
        content: Some(text.to_string()),
        reasoning: None,
        calls: Vec::new(),
    }
}

fn generic(text: &str) -> ParsedAnswer {
    let Ok(v) = serde_json::from_str::<Value>(text.trim()) else {
        return plain(text);
    };
    if let Some(call) = v.get("tool_call").and_then(call_of) {
        return ParsedAnswer {
            content: None,
            reasoning: None,
            calls: vec![call],
        };
    }
    if let Some(list) = v.get("tool_calls").and_then(Value::as_array) {
        let calls: Vec<ToolCall> = list.iter().filter_map(call_of).collect();
        if !calls.is_empty() {
            return ParsedAnswer {
                content: None,
                reasoning: None,
                calls,
            };
        }
    }
    match v.get("response") {
        Some(Value::String(s)) => plain(s),
        Some(other) => plain(&other.to_string()),
        None => plain(text),
    }
}

fn hermes(text: &str) -> ParsedAnswer {
    const OPEN: &str = "<tool_call>";
    const CLOSE: &str = "</tool_call>";
    let mut calls = Vec::new();
    let mut content = String::new();
    let mut rest = text;
    while let Some(at) = rest.find(OPEN) {
        let after = &rest[at + OPEN.len()..];
        let (body, next) = match after.find(CLOSE) {
            Some(end) => (&after[..end], &after[end + CLOSE.len()..]),
            None => (after, ""),
        };
        match serde_json::from_str::<Value>(body.trim())
            .ok()
            .as_ref()
            .and_then(call_of)
        {
            Some(call) => {
                content.push_str(&rest[..at]);
                calls.push(call);
            }
            None => content.push_str(&rest[..at + OPEN.len() + body.len()]),
        }
        rest = next;
    }
    content.push_str(rest);
    ParsedAnswer {
        content: if calls.is_empty() {
            Some(text.to_string())
        } else {
            text_or_none(&content)
        },
        reasoning: None,
        calls,
    }
}

fn llama3(text: &str) -> ParsedAnswer {
    let body = text.trim();
    let body = body.strip_prefix("<|python_tag|>").unwrap_or(body).trim();
    if body.starts_with('{') {
        if let Some(call) = serde_json::from_str::<Value>(body)
            .ok()
            .as_ref()
            .and_then(call_of)
        {
            return ParsedAnswer {
                content: None,
                reasoning: None,
                calls: vec![call],
            };
        }
    }
    plain(text)
}

fn mistral(text: &str) -> ParsedAnswer {
    let (before, body) = match text.find("[TOOL_CALLS]") {
        Some(at) => (&text[..at], &text[at + "[TOOL_CALLS]".len()..]),
        None => ("", text),
    };
    let body = body.trim();
    if body.starts_with('[') {
        if let Ok(Value::Array(list)) = serde_json::from_str::<Value>(body) {
            let calls: Vec<ToolCall> = list.iter().filter_map(call_of).collect();
            if !calls.is_empty() {
                return ParsedAnswer {
                    content: text_or_none(before),
                    reasoning: None,
                    calls,
                };
            }
        }
    }
    plain(text)
}

/// The text and the calls of a model's `text` in `format`; an answer that holds no
/// well-formed call is all text.
pub fn parse_answer(format: ToolFormat, text: &str) -> ParsedAnswer {
    match format {
        ToolFormat::Generic => generic(text),
        ToolFormat::Hermes => hermes(text),
        ToolFormat::Llama3 => llama3(text),
        ToolFormat::Mistral => mistral(text),
        ToolFormat::Harmony => super::harmony::parse(text, true),
    }
}
