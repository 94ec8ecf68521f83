//! The tool-calling format of a model family: how the tools reach the prompt and which
//! grammar makes a `required` or named call always parse.

use rocmforge_model::Tokenizer;
use rocmforge_model::chat_template::{ChatMessage, ChatTemplate};
use rocmforge_model::constraint::Grammar;
use serde_json::{Value, json};

use super::{Tool, ToolChoice, ToolRequest};

/// How a model family writes tool calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolFormat {
    /// Hermes 2 Pro / Qwen 2.5+: `<tool_call>\n{"name", "arguments"}\n</tool_call>`.
    Hermes,
    /// Llama 3.x: a bare `{"name", "parameters"}` object.
    Llama3,
    /// Mistral: `[TOOL_CALLS][{"name", "arguments"}, ...]`.
    Mistral,
    /// gpt-oss's harmony: `<|channel|>commentary to=functions.NAME <|constrain|>json<|message|>{..}`
    /// (see `super::harmony`); its template renders `tools` and `tool_calls` itself.
    Harmony,
    /// llama-server's generic format for templates without tool support: the tools are
    /// described in a system message and the answer is `{"tool_call": {...}}` or
    /// `{"response": ...}`.
    Generic,
}

impl ToolFormat {
    /// The format of the chat template `source`, recognised by the markers llama-server
    /// looks for.
    pub fn of_template(source: &str) -> Self {
        if rocmforge_model::chat_template::harmony::is_harmony(source) {
            ToolFormat::Harmony
        } else if source.contains("[TOOL_CALLS]") {
            ToolFormat::Mistral
        } else if source.contains("<tool_call>") {
            ToolFormat::Hermes
        } else if source.contains("<|start_header_id|>") && source.contains("ipython") {
            ToolFormat::Llama3
        } else {
            ToolFormat::Generic
        }
    }
}

/// The schema of one call `{"name": <name>, <args_key>: <parameters>}`.
fn call_schema(tool: &Tool, args_key: &str) -> Value {
    json!({
        "type": "object",
        "properties": {
            "name": {"const": tool.name},
            args_key: tool.parameters,
        },
        "required": ["name", args_key],
        "additionalProperties": false,
    })
}

fn any_call(tools: &[&Tool], args_key: &str) -> Value {
    match tools {
        [one] => call_schema(one, args_key),
        _ => json!({"anyOf": tools.iter().map(|t| call_schema(t, args_key)).collect::<Vec<_>>()}),
    }
}

/// The generic format's answer schema: a call, or (under `auto`) a response.
fn generic_schema(req: &ToolRequest) -> Value {
    let calls = req.callable();
    let call = json!({
        "type": "object",
        "properties": {"tool_call": any_call(&calls, "arguments")},
        "required": ["tool_call"],
        "additionalProperties": false,
    });
    if req.choice != ToolChoice::Auto {
        return call;
    }
    let response = json!({
        "type": "object",
        "properties": {"response": {"type": "string"}},
        "required": ["response"],
        "additionalProperties": false,
    });
    json!({"anyOf": [call, response]})
}

/// The grammar the answer must match: always for the generic format, and for `required` or
/// named choices in the native formats (`auto` leaves a native model free, and its answer is
/// parsed).
pub fn constraint_for(
    format: ToolFormat,
    req: &ToolRequest,
    tokenizer: &Tokenizer,
) -> Option<Grammar> {
    if format == ToolFormat::Generic {
        return Some(Grammar::JsonSchema(generic_schema(req)));
    }
    if req.choice == ToolChoice::Auto {
        return None;
    }
    let calls = req.callable();
    Some(match format {
        ToolFormat::Llama3 => Grammar::JsonSchema(any_call(&calls, "parameters")),
        ToolFormat::Hermes => Grammar::Lark(format!(
            "start: \"<tool_call>\\n\" call \"\\n</tool_call>\"\ncall: %json {}\n",
            any_call(&calls, "arguments")
        )),
        ToolFormat::Mistral => {
            // Mistral's calls carry their own 9-character id, which its templates check; it
            // comes before the arguments so that a stream can send it with the call's head.
            let with_id: Vec<Value> = calls
                .iter()
                .map(|t| {
                    json!({
                        "type": "object",
                        "properties": {
                            "name": {"const": t.name},
                            "id": {"type": "string", "pattern": "^[a-zA-Z0-9]{9}$"},
                            "arguments": t.parameters,
                        },
                        "required": ["name", "id", "arguments"],
                        "additionalProperties": false,
                    })
                })
                .collect();
            let items = match with_id.as_slice() {
                [one] => one.clone(),
                _ => json!({"anyOf": with_id}),
            };
            let list = json!({"type": "array", "items": items, "minItems": 1});
            let marker = match tokenizer.token_id("[TOOL_CALLS]") {
                Some(id) => format!("<[{id}]>"),
                None => "\"[TOOL_CALLS]\"".to_string(),
            };
            Grammar::Lark(format!("start: {marker} calls\ncalls: %json {list}\n"))
        }
        ToolFormat::Harmony => harmony_grammar(&calls, tokenizer),
        ToolFormat::Generic => return None,
    })
}

/// `text` as a Lark string literal (JSON's escapes).
fn lark_string(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_default()
}

/// A harmony marker in a Lark grammar: its token where the vocabulary has one, else its text.
fn lark_marker(tokenizer: &Tokenizer, text: &str) -> String {
    match tokenizer.token_id(text) {
        Some(id) => format!("<[{id}]>"),
        None => lark_string(text),
    }
}

/// The Lark rules of one harmony reasoning message (`analysis`: the analysis channel, free
/// text to the `<|end|>` token, then the next message's `<|start|>assistant`), or `None` where
/// the vocabulary lacks the marker tokens: the free text ends where the model writes the
/// `<|end|>` token, and a spelled `<|end|>` would be text the reasoning could go on matching
/// (every harmony model has the tokens).
fn harmony_reasoning_rules(tokenizer: &Tokenizer) -> Option<String> {
    let markers = ["<|channel|>", "<|message|>", "<|end|>", "<|start|>"];
    if !markers.iter().all(|m| tokenizer.token_id(m).is_some()) {
        return None;
    }
    let channel = lark_marker(tokenizer, "<|channel|>");
    let message = lark_marker(tokenizer, "<|message|>");
    let end = lark_marker(tokenizer, "<|end|>");
    let start = lark_marker(tokenizer, "<|start|>");
    Some(format!(
        "analysis: {channel} \"analysis\" {message} REASONING {end} {start} \"assistant\"\n\
         REASONING: /(?s:.*)/\n"
    ))
}

/// Structured output (`response_format` / `json_schema`) for a harmony (gpt-oss) model, as
/// llama.cpp's gpt-oss grammar has it: reasoning messages may come first, then the `final`
/// channel holds the JSON document (`<|channel|>final<|message|>{...}`), which the harmony
/// parser returns as the content. `None` (the grammar stays as asked) where the vocabulary
/// lacks the marker tokens or the grammar is a request's own Lark text.
pub fn harmony_structured(grammar: &Grammar, tokenizer: &Tokenizer) -> Option<Grammar> {
    let mut schema = match grammar {
        Grammar::JsonSchema(Value::Object(m)) => Value::Object(m.clone()),
        Grammar::JsonSchema(_) => json!({}),
        Grammar::JsonObject => json!({"type": "object"}),
        Grammar::Lark(_) => return None,
    };
    let rules = harmony_reasoning_rules(tokenizer)?;
    if let Value::Object(m) = &mut schema {
        m.entry("x-guidance").or_insert_with(
            || json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
        );
    }
    let channel = lark_marker(tokenizer, "<|channel|>");
    let message = lark_marker(tokenizer, "<|message|>");
    Some(Grammar::Lark(format!(
        "start: analysis* {channel} \"final\" {message} answer\n{rules}answer: %json {schema}\n"
    )))
}

/// A `required` or named call in harmony: any number of reasoning messages first (as
/// llama.cpp's gpt-oss grammar allows: `analysis` channel, free text, `<|end|>`, then the next
/// message's `<|start|>assistant`), then the commentary channel with one of the callable
/// functions and arguments that match its schema (`<|call|>` then ends generation). The
/// arguments are laid out as the template writes past calls (`{"a": 1, "b": 2}`: no other
/// whitespace, so a model cannot pad them without end).
fn harmony_grammar(calls: &[&Tool], tokenizer: &Tokenizer) -> Grammar {
    let channel = lark_marker(tokenizer, "<|channel|>");
    let constrain = lark_marker(tokenizer, "<|constrain|>");
    let message = lark_marker(tokenizer, "<|message|>");
    let mut lark = match harmony_reasoning_rules(tokenizer) {
        Some(rules) => format!("start: analysis* call\n{rules}"),
        None => String::from("start: call\n"),
    };
    let names: Vec<String> = (0..calls.len()).map(|i| format!("call_{i}")).collect();
    lark.push_str(&format!("call: {}\n", names.join(" | ")));
    for (i, tool) in calls.iter().enumerate() {
        let head = lark_string(&format!("commentary to=functions.{} ", tool.name));
        let mut schema = tool.parameters.clone();
        if let Value::Object(m) = &mut schema {
            m.insert(
                "x-guidance".to_string(),
                json!({"whitespace_flexible": false, "item_separator": ", ", "key_separator": ": "}),
            );
        }
        lark.push_str(&format!(
            "call_{i}: {channel} {head} {constrain} \"json\" {message} args_{i}\nargs_{i}: %json {schema}\n"
        ));
    }
    Grammar::Lark(lark)
}

/// The system text of the generic format: the tools and the answer's JSON schema.
fn generic_system_text(req: &ToolRequest) -> String {
    let tools: Vec<Value> = req
        .callable()
        .iter()
        .map(|t| json!({"name": t.name, "description": t.description, "parameters": t.parameters}))
        .collect();
    let how = match req.choice {
        ToolChoice::Auto => {
            "Answer in JSON: either {\"tool_call\": {\"name\": ..., \"arguments\": {...}}} to call a tool, or {\"response\": \"...\"} to reply to the user."
        }
        _ => {
            "Answer in JSON with a tool call: {\"tool_call\": {\"name\": ..., \"arguments\": {...}}}."
        }
    };
    format!(
        "You can call these tools:\n{}\n{how}\nThe answer's JSON schema:\n{}",
        serde_json::to_string(&tools).unwrap_or_default(),
        serde_json::to_string(&generic_schema(req)).unwrap_or_default()
    )
}

/// An assistant turn's tool calls in the generic format's own answer form.
fn generic_call_text(calls: &Value) -> Option<String> {
    let list: Vec<Value> = calls
        .as_array()?
        .iter()
        .filter_map(|c| {
            let f = c.get("function")?;
            Some(json!({"name": f.get("name")?, "arguments": f.get("arguments")?}))
        })
        .collect();
    match list.as_slice() {
        [] => None,
        [one] => Some(json!({"tool_call": one}).to_string()),
        many => Some(json!({"tool_calls": many}).to_string()),
    }
}

/// Whether `template` prints a `tool` message's content (some templates drop unknown roles
/// or refuse them): probed by rendering one.
fn renders_tool_role(template: &ChatTemplate) -> bool {
    const PROBE: &str = "tool-response-probe-7f3a";
    let probe = [ChatMessage::user("q"), ChatMessage::new("tool", PROBE)];
    template
        .render(&probe, false)
        .is_ok_and(|out| out.contains(PROBE))
}

/// A tool message as a user message carrying `{"tool_response": {...}}`, for templates that
/// do not print the `tool` role (llama-server does the same).
fn tool_message_as_user(m: &ChatMessage) -> ChatMessage {
    let mut response = serde_json::Map::new();
    if let Some(name) = &m.name {
        response.insert("tool".to_string(), json!(name));
    }
    if let Some(id) = &m.tool_call_id {
        response.insert("id".to_string(), json!(id));
    }
    response.insert("content".to_string(), json!(m.content));
    ChatMessage::user(json!({"tool_response": response}).to_string())
}

/// The conversation as the template gets it. In the generic format a system message offers
/// the tools (merged into the first system message), assistant tool calls become their JSON
/// answers, and tool results stay `tool` messages where the template prints that role (else
/// they become user messages with `{"tool_response": ...}`); native formats get the messages
/// as they are (the template renders `tool_calls` and `tools` itself).
pub fn prompt_messages(
    format: ToolFormat,
    mut messages: Vec<ChatMessage>,
    req: Option<&ToolRequest>,
    template: &ChatTemplate,
) -> Vec<ChatMessage> {
    if format != ToolFormat::Generic {
        return messages;
    }
    for m in &mut messages {
        if let Some(text) = m.tool_calls.take().as_ref().and_then(generic_call_text) {
            m.content = text;
        }
    }
    if messages.iter().any(|m| m.role == "tool") && !renders_tool_role(template) {
        for m in &mut messages {
            if m.role == "tool" {
                *m = tool_message_as_user(m);
            }
        }
    }
    let Some(req) = req else {
        return messages;
    };
    let text = generic_system_text(req);
    match messages.first_mut() {
        Some(first) if first.role == "system" => {
            first.content = format!("{}\n\n{text}", first.content);
        }
        _ => messages.insert(0, ChatMessage::system(text)),
    }
    messages
}
