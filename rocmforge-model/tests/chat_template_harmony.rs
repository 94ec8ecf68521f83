//! gpt-oss's harmony chat template (llama.cpp's `models/templates/openai-gpt-oss-120b.jinja`,
//! kept as `tests/data/chat/gpt-oss.jinja`) rendered by us (minijinja) against Python's jinja2
//! 3.1.6 set up as `transformers` sets it up (`tools/jinja_oracle.py`), given the same variables
//! (ours: [`ChatTemplate::context`], with the messages as llama.cpp adapts them for harmony).
//! The cases cover what the template does: system/developer prompts, reasoning effort, tool
//! definitions of every parameter kind it renders, tool calls with and without reasoning, tool
//! results, the training form of a last assistant turn, built-in tools, and its own errors.
//!
//! Python: `$ROCMFORGE_PYTHON`, else `<repo>/.venv/bin/python`. Missing Python or jinja2 is a
//! failure, never a skip: `cargo xtask test` creates the venv.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use rocmforge_model::chat_template::{ChatMessage, ChatTemplate};
use serde_json::{Map, Value, json};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn python() -> PathBuf {
    match std::env::var_os("ROCMFORGE_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join(".venv/bin/python"),
    }
}

/// Renders every case with `tools/jinja_oracle.py`: `Ok(text)` or `Err(message)` per case.
fn oracle(cases: &[Value]) -> Vec<Result<String, String>> {
    let py = python();
    let script = repo_root().join("tools/jinja_oracle.py");
    let advice = "run `cargo xtask test` (it creates the venv) or \
                  `python3 -m venv .venv && .venv/bin/pip install jinja2==3.1.6` in the repo root, \
                  or point ROCMFORGE_PYTHON at a Python that has jinja2 3.1.6";
    let mut child = Command::new(&py)
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {advice}", py.display()));
    let input = serde_json::to_vec(cases).unwrap();
    child.stdin.take().unwrap().write_all(&input).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{} {} failed ({}):\n{}\n{advice}",
        py.display(),
        script.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let answers: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    answers
        .into_iter()
        .map(|a| match (a.get("text"), a.get("error")) {
            (Some(Value::String(t)), _) => Ok(t.clone()),
            (_, Some(Value::String(e))) => Err(e.clone()),
            _ => panic!("unexpected oracle answer {a}"),
        })
        .collect()
}

fn template() -> ChatTemplate {
    let path = repo_root().join("rocmforge-model/tests/data/chat/gpt-oss.jinja");
    let source =
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let t = ChatTemplate::new(source, "<|startoftext|>", "<|return|>").unwrap();
    assert!(t.is_harmony());
    t
}

/// One conversation to render.
struct Case {
    name: &'static str,
    messages: Vec<ChatMessage>,
    tools: Option<Value>,
    add_generation_prompt: bool,
    extra: Value,
    /// The template refuses it (with this text in its message).
    error: Option<&'static str>,
}

fn case(name: &'static str, messages: Vec<ChatMessage>) -> Case {
    Case {
        name,
        messages,
        tools: None,
        add_generation_prompt: true,
        extra: json!({}),
        error: None,
    }
}

fn tools() -> Value {
    json!([
        {"type": "function", "function": {
            "name": "get_weather",
            "description": "Current weather in a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "default": "celsius"},
                    "days": {"type": "integer", "default": 1},
                    "precise": {"type": "boolean"},
                    "ratio": {"type": "number", "nullable": true},
                    "tags": {"type": "array", "items": {"type": "string"}},
                    "points": {"type": "array", "items": {"type": "object",
                        "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                        "required": ["x"]}},
                    "any_list": {"type": "array"},
                    "where": {"type": "object", "properties": {
                        "lat": {"type": "number"}, "lon": {"type": "number"}}, "required": ["lat", "lon"]},
                    "either": {"oneOf": [{"type": "string", "description": "a name"}, {"type": "integer"}]},
                    "mixed": {"type": ["string", "null"]},
                    "free": {"description": "anything"}
                },
                "required": ["city", "unit"]
            }
        }},
        {"type": "function", "function": {
            "name": "get_time",
            "description": "The time now",
            "parameters": {"type": "object", "properties": {}}
        }},
        {"type": "function", "function": {
            "name": "lookup",
            "description": "Search <docs> & 'notes'",
            "parameters": {"type": "object", "properties": {"q": {"type": "string"}},
                           "required": ["q"]}
        }}
    ])
}

fn call(name: &str, arguments: Value) -> Value {
    json!([{"id": "call_1", "type": "function", "function": {"name": name, "arguments": arguments}}])
}

fn assistant_call(reasoning: Option<&str>, content: &str, calls: Value) -> ChatMessage {
    let mut m = ChatMessage::assistant(content);
    m.tool_calls = Some(calls);
    m.reasoning_content = reasoning.map(str::to_string);
    m
}

fn tool_result(content: &str) -> ChatMessage {
    let mut m = ChatMessage::new("tool", content);
    m.tool_call_id = Some("call_1".into());
    m.name = Some("get_weather".into());
    m
}

fn with_reasoning(content: &str, reasoning: &str) -> ChatMessage {
    let mut m = ChatMessage::assistant(content);
    m.reasoning_content = Some(reasoning.into());
    m
}

fn cases() -> Vec<Case> {
    let weather_args = json!({"city": "Paris", "unit": "celsius", "tags": ["a", "<b>"], "where": {"lon": 2.35, "lat": 48.85}});
    vec![
        case("user only", vec![ChatMessage::user("What is 2+2?")]),
        Case {
            extra: json!({"reasoning_effort": "high"}),
            ..case(
                "system, history with reasoning, effort high",
                vec![
                    ChatMessage::system("Be brief."),
                    ChatMessage::user("Hi"),
                    with_reasoning("Hello! How can I help?", "The user greets me."),
                    ChatMessage::user("Bye"),
                ],
            )
        },
        Case {
            tools: Some(tools()),
            ..case(
                "tools, a call with reasoning, its result, generation prompt",
                vec![
                    ChatMessage::new("developer", "Use the tools."),
                    ChatMessage::user("Weather in Paris? Use °C."),
                    assistant_call(
                        Some("I should call get_weather."),
                        "",
                        call("get_weather", weather_args.clone()),
                    ),
                    tool_result("{\"temp\": 21, \"sky\": \"<clear> & 'dry'\"} — ok"),
                ],
            )
        },
        Case {
            tools: Some(tools()),
            extra: json!({"reasoning_effort": "low"}),
            ..case(
                "a call with content as its analysis, then a final answer and a new question",
                vec![
                    ChatMessage::user("Time?"),
                    assistant_call(None, "Need the time.", call("get_time", json!({}))),
                    tool_result("12:00"),
                    ChatMessage::assistant("It is noon."),
                    ChatMessage::user("And the weather?"),
                    assistant_call(
                        None,
                        "Calling.",
                        call("get_weather", json!({"city": "Oslo", "unit": "celsius"})),
                    ),
                ],
            )
        },
        Case {
            add_generation_prompt: false,
            ..case(
                "the training form of a last assistant turn",
                vec![
                    ChatMessage::user("Hi"),
                    with_reasoning("Hello.", "Say hello."),
                ],
            )
        },
        Case {
            tools: Some(tools()),
            extra: json!({"builtin_tools": ["browser", "python"], "model_identity": "You are a test model."}),
            ..case(
                "built-in tools and a model identity",
                vec![ChatMessage::system("Sys"), ChatMessage::user("Go")],
            )
        },
        Case {
            error: Some("no previous assistant message with a tool call"),
            ..case(
                "a tool result without a call",
                vec![ChatMessage::user("Hi"), tool_result("x")],
            )
        },
        Case {
            error: Some("<|channel|> tags in the content field"),
            ..case(
                "channel tags in an assistant's content",
                vec![
                    ChatMessage::user("Hi"),
                    ChatMessage::assistant("<|channel|>final<|message|>Hello"),
                    ChatMessage::user("Again"),
                ],
            )
        },
    ]
}

#[test]
fn gpt_oss_template_renders_as_jinja2_does() {
    let tmpl = template();
    let cases = cases();
    let payload: Vec<Value> = cases
        .iter()
        .map(|c| {
            let extra: Map<String, Value> = c.extra.as_object().cloned().unwrap_or_default();
            json!({
                "template": tmpl.source(),
                "context": tmpl.context(&c.messages, c.tools.as_ref(), c.add_generation_prompt, &extra),
            })
        })
        .collect();
    let expected = oracle(&payload);
    assert_eq!(expected.len(), cases.len());
    for (c, want) in cases.iter().zip(expected) {
        let extra: Map<String, Value> = c.extra.as_object().cloned().unwrap_or_default();
        let ours = tmpl.render_with_context(
            &c.messages,
            c.tools.as_ref(),
            c.add_generation_prompt,
            &extra,
        );
        match (c.error, want, ours) {
            (None, Ok(want), Ok(got)) => {
                assert_eq!(got, want, "case '{}'", c.name);
                assert!(
                    got.starts_with("<|start|>system<|message|>"),
                    "case '{}'",
                    c.name
                );
            }
            (Some(text), Err(want), Err(got)) => {
                let got = got.to_string();
                assert!(want.contains(text), "case '{}': jinja2 said {want}", c.name);
                assert!(got.contains(text), "case '{}': we said {got}", c.name);
            }
            (_, want, got) => panic!("case '{}': jinja2 {want:?}, ours {got:?}", c.name),
        }
    }
}

/// The pieces the server's parser relies on, in the rendered prompt: the generation prompt,
/// the reasoning of a call turn, the call and its result.
#[test]
fn gpt_oss_template_writes_calls_in_the_harmony_form() {
    let tmpl = template();
    let messages = [
        ChatMessage::user("Weather?"),
        assistant_call(
            Some("Call it."),
            "ignored beside reasoning",
            call("get_weather", json!({"city": "Paris"})),
        ),
        tool_result("sunny"),
    ];
    let out = tmpl
        .render_with_tools(&messages, Some(&tools()), true)
        .unwrap();
    assert!(
        out.contains("<|start|>assistant<|channel|>analysis<|message|>Call it.<|end|>"),
        "{out}"
    );
    assert!(
        out.contains("<|start|>assistant to=functions.get_weather<|channel|>commentary json<|message|>{\"city\": \"Paris\"}<|call|>"),
        "{out}"
    );
    assert!(
        out.ends_with("<|start|>functions.get_weather to=assistant<|channel|>commentary<|message|>\"sunny\"<|end|><|start|>assistant"),
        "{out}"
    );
    assert!(!out.contains("ignored beside reasoning"), "{out}");
}
