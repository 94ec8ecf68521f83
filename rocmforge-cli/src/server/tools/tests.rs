#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use rocmforge_model::chat_template::{ChatMessage, ChatTemplate};
use serde_json::json;

use super::parse::ToolCall;
use super::*;

fn weather() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather",
        "description": "Weather of a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    }}, {"type": "function", "function": {"name": "get_time"}}])
}

#[test]
fn tools_and_choices_are_checked() {
    let tools = weather();
    let req = |choice: Value| requested(Some(&tools), Some(&choice));
    assert_eq!(
        req(json!("auto")).unwrap().unwrap().choice,
        ToolChoice::Auto
    );
    assert!(req(json!("none")).unwrap().is_none());
    let named = req(json!({"type": "function", "function": {"name": "get_time"}}))
        .unwrap()
        .unwrap();
    assert_eq!(named.callable().len(), 1);
    assert_eq!(named.callable()[0].name, "get_time");
    assert_eq!(
        requested(Some(&tools), None).unwrap().unwrap().choice,
        ToolChoice::Auto
    );
    for (tools, choice, param) in [
        (weather(), json!("sometimes"), "tool_choice"),
        (
            weather(),
            json!({"type": "function", "function": {"name": "nope"}}),
            "tool_choice",
        ),
        (json!([]), json!("required"), "tool_choice"),
        (json!([{"type": "code"}]), json!("auto"), "tools[0]"),
        (json!({"a": 1}), json!("auto"), "tools"),
        (
            json!([{"type": "function", "function": {"name": "f"}}, {"type": "function", "function": {"name": "f"}}]),
            json!("auto"),
            "tools[1]",
        ),
    ] {
        let e = requested(Some(&tools), Some(&choice)).unwrap_err();
        assert_eq!(e.param.as_deref(), Some(param), "{tools} {choice}");
    }
}

#[test]
fn each_family_is_recognised_by_its_template() {
    assert_eq!(
        ToolFormat::of_template("{{ '<tool_call>' }}"),
        ToolFormat::Hermes
    );
    assert_eq!(
        ToolFormat::of_template("[TOOL_CALLS] {{ x }}"),
        ToolFormat::Mistral
    );
    assert_eq!(
        ToolFormat::of_template("<|start_header_id|>ipython<|end_header_id|>"),
        ToolFormat::Llama3
    );
    assert_eq!(ToolFormat::of_template("<|im_start|>"), ToolFormat::Generic);
}

#[test]
fn answers_are_parsed_per_family() {
    let call = |name: &str, args: Value| ToolCall {
        name: name.to_string(),
        arguments: args.to_string(),
        id: None,
    };
    let hermes = parse_answer(
        ToolFormat::Hermes,
        "Let me look.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>",
    );
    assert_eq!(
        hermes.calls,
        vec![call("get_weather", json!({"city": "Paris"}))]
    );
    assert_eq!(hermes.content.as_deref(), Some("Let me look."));
    let llama = parse_answer(
        ToolFormat::Llama3,
        "{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
    );
    assert_eq!(
        llama.calls,
        vec![call("get_weather", json!({"city": "Oslo"}))]
    );
    assert_eq!(llama.content, None);
    let mistral = parse_answer(
        ToolFormat::Mistral,
        "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}}, {\"name\": \"get_weather\", \"arguments\": {\"city\": \"Rome\"}}]",
    );
    assert_eq!(
        mistral.calls,
        vec![
            call("get_time", json!({})),
            call("get_weather", json!({"city": "Rome"}))
        ]
    );
    let generic = parse_answer(
        ToolFormat::Generic,
        "{\"tool_call\": {\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}}",
    );
    assert_eq!(generic.calls, vec![call("get_time", json!({"tz": "UTC"}))]);
    // Mistral's own call ids are kept; others get ids of the format's shape.
    let with_id = parse_answer(
        ToolFormat::Mistral,
        "[TOOL_CALLS][{\"name\": \"get_time\", \"arguments\": {}, \"id\": \"a1b2c3d4e\"}]",
    );
    assert_eq!(with_id.calls[0].id.as_deref(), Some("a1b2c3d4e"));
    assert_eq!(
        call_id(ToolFormat::Mistral, "call_3_0", 0, Some("a1b2c3d4e")),
        "a1b2c3d4e"
    );
    let made = call_id(ToolFormat::Mistral, "call_3_0", 1, None);
    assert!(
        made.len() == 9 && made.chars().all(|c| c.is_ascii_alphanumeric()),
        "{made}"
    );
    assert_ne!(made, call_id(ToolFormat::Mistral, "call_3_0", 2, None));
    assert_eq!(
        call_id(ToolFormat::Hermes, "call_3_0", 1, None),
        "call_3_0_1"
    );
    let reply = parse_answer(ToolFormat::Generic, "{\"response\": \"It is noon.\"}");
    assert_eq!(reply.content.as_deref(), Some("It is noon."));
    assert!(reply.calls.is_empty());
    // Text without a well-formed call stays text.
    for format in [
        ToolFormat::Hermes,
        ToolFormat::Llama3,
        ToolFormat::Mistral,
        ToolFormat::Generic,
    ] {
        let p = parse_answer(format, "<tool_call>{not json</tool_call> hi");
        assert!(p.calls.is_empty(), "{format:?}");
        assert_eq!(
            p.content.as_deref(),
            Some("<tool_call>{not json</tool_call> hi")
        );
    }
}

#[test]
fn the_generic_prompt_offers_the_tools_and_replays_calls_as_json() {
    let tools = weather();
    let req = requested(Some(&tools), Some(&json!("required")))
        .unwrap()
        .unwrap();
    let mut call = ChatMessage::assistant("");
    call.tool_calls = Some(json!([{"id": "c1", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]));
    let messages = vec![ChatMessage::user("Weather in Paris?"), call];
    let chatml = ChatTemplate::chatml("", "").unwrap();
    let out = prompt_messages(ToolFormat::Generic, messages.clone(), Some(&req), &chatml);
    assert_eq!(out[0].role, "system");
    assert!(out[0].content.contains("get_weather") && out[0].content.contains("tool_call"));
    let replayed: Value = serde_json::from_str(&out[2].content).unwrap();
    assert_eq!(
        replayed,
        json!({"tool_call": {"name": "get_weather", "arguments": {"city": "Paris"}}})
    );
    // Native formats leave the messages to the template.
    assert_eq!(
        prompt_messages(ToolFormat::Hermes, messages.clone(), Some(&req), &chatml),
        messages
    );
    // A tool result stays a `tool` message for a template that prints any role (ChatML), and
    // becomes a user message with {"tool_response": ...} for one that drops the role.
    let mut result = ChatMessage::new("tool", "sunny");
    result.tool_call_id = Some("c1".to_string());
    result.name = Some("get_weather".to_string());
    let history = vec![ChatMessage::user("Weather?"), result];
    let kept = prompt_messages(ToolFormat::Generic, history.clone(), None, &chatml);
    assert_eq!(kept, history);
    let picky = ChatTemplate::new(
        "{% for m in messages %}{% if m.role == 'user' %}U: {{ m.content }}\n{% elif m.role == 'assistant' %}A: {{ m.content }}\n{% endif %}{% endfor %}",
        "",
        "",
    )
    .unwrap();
    let out = prompt_messages(ToolFormat::Generic, history, None, &picky);
    assert_eq!(out[1].role, "user");
    let v: Value = serde_json::from_str(&out[1].content).unwrap();
    assert_eq!(
        v,
        json!({"tool_response": {"tool": "get_weather", "id": "c1", "content": "sunny"}})
    );
}

/// The grammars of `required` and named choices compile in every family (llguidance accepts
/// the Lark text with its embedded %json) and accept the family's well-formed call, which
/// then parses back into the same call.
#[test]
fn each_family_grammar_accepts_its_call_and_the_call_parses() {
    use std::sync::Arc;

    use rocmforge_model::constraint::GrammarCompiler;

    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing (run `cargo xtask models`)",
        path.display()
    );
    let file = rocmforge_gguf::GgufFile::open(&path).unwrap();
    let tok = Arc::new(rocmforge_model::Tokenizer::from_gguf(&file).unwrap());
    let compiler = GrammarCompiler::new(tok.clone()).unwrap();
    let tools = weather();
    let named = json!({"type": "function", "function": {"name": "get_weather"}});
    let call = |args_key: &str| {
        format!("{{\"name\": \"get_weather\", \"{args_key}\": {{\"city\": \"Paris\"}}}}")
    };
    for (format, text) in [
        (
            ToolFormat::Hermes,
            format!("<tool_call>\n{}\n</tool_call>", call("arguments")),
        ),
        (ToolFormat::Llama3, call("parameters")),
        (
            ToolFormat::Mistral,
            // Mistral's call carries its 9-character id, before the arguments (so that a
            // stream sends the model's id with the call's head).
            "[TOOL_CALLS][{\"name\": \"get_weather\", \"id\": \"a1b2c3d4e\", \"arguments\": {\"city\": \"Paris\"}}]".to_string(),
        ),
        (
            // No harmony markers in this vocabulary: the grammar spells them.
            ToolFormat::Harmony,
            "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}".to_string(),
        ),
        (
            ToolFormat::Generic,
            format!("{{\"tool_call\": {}}}", call("arguments")),
        ),
    ] {
        for choice in [json!("required"), named.clone()] {
            let req = requested(Some(&tools), Some(&choice)).unwrap().unwrap();
            let grammar = constraint_for(format, &req, &tok).unwrap();
            let mut c = compiler.compile(&grammar).unwrap();
            for t in tok.encode(&text, false, false).unwrap() {
                c.accept(t)
                    .unwrap_or_else(|e| panic!("{format:?} {choice}: {e}"));
            }
            assert!(c.is_complete(), "{format:?} {choice}: {text}");
            let parsed = parse_answer(format, &text);
            assert_eq!(parsed.calls.len(), 1, "{format:?}");
            assert_eq!(parsed.calls[0].name, "get_weather");
            let args: Value = serde_json::from_str(&parsed.calls[0].arguments).unwrap();
            assert_eq!(args, json!({"city": "Paris"}));
        }
    }
    // A call of a function the named choice excludes is refused by its grammar.
    let req = requested(
        Some(&tools),
        Some(&json!({"type": "function", "function": {"name": "get_time"}})),
    )
    .unwrap()
    .unwrap();
    let grammar = constraint_for(ToolFormat::Llama3, &req, &tok).unwrap();
    let mut c = compiler.compile(&grammar).unwrap();
    let refused = tok
        .encode(&call("parameters"), false, false)
        .unwrap()
        .into_iter()
        .try_for_each(|t| c.accept(t));
    assert!(refused.is_err());
}

/// The tiny gpt-oss model's tokenizer (harmony's marker tokens included).
fn harmony_tokenizer() -> std::sync::Arc<rocmforge_model::Tokenizer> {
    let path = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../models/tiny/tiny-gpt-oss-harmony.gguf");
    assert!(
        path.exists(),
        "{} is missing (run `cargo xtask models`)",
        path.display()
    );
    let file = rocmforge_gguf::GgufFile::open(&path).unwrap();
    std::sync::Arc::new(rocmforge_model::Tokenizer::from_gguf(&file).unwrap())
}

/// gpt-oss with a `required` or named call: reasoning messages may come first (as llama.cpp's
/// gpt-oss grammar allows), ended by the `<|end|>` token and the next `<|start|>assistant`;
/// the call still has to follow, and the answer parses into the reasoning and the call.
#[test]
fn harmony_grammar_lets_reasoning_come_before_the_required_call() {
    use rocmforge_model::constraint::GrammarCompiler;

    let tok = harmony_tokenizer();
    for marker in ["<|channel|>", "<|message|>", "<|end|>", "<|start|>"] {
        assert!(tok.token_id(marker).is_some(), "{marker}");
    }
    let compiler = GrammarCompiler::new(tok.clone()).unwrap();
    let tools = weather();
    let call = "<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}";
    let thought = "<|channel|>analysis<|message|>The user wants the weather; <b>call</b> the tool.<|end|><|start|>assistant";
    let named = json!({"type": "function", "function": {"name": "get_weather"}});
    for choice in [json!("required"), named] {
        let req = requested(Some(&tools), Some(&choice)).unwrap().unwrap();
        let grammar = constraint_for(ToolFormat::Harmony, &req, &tok).unwrap();
        let feed = |text: &str| -> Result<bool, String> {
            let mut c = compiler.compile(&grammar).map_err(|e| e.to_string())?;
            for t in tok.encode(text, false, true).map_err(|e| e.to_string())? {
                c.accept(t).map_err(|e| e.to_string())?;
            }
            Ok(c.is_complete())
        };
        // Straight to the call, one reasoning message first, or two.
        for text in [
            call.to_string(),
            format!("{thought}{call}"),
            format!("{thought}{thought}{call}"),
        ] {
            assert_eq!(feed(&text), Ok(true), "{choice}: {text}");
            let parsed = parse_answer(ToolFormat::Harmony, &text);
            assert_eq!(parsed.calls.len(), 1, "{text}");
            assert_eq!(parsed.calls[0].name, "get_weather");
        }
        let parsed = parse_answer(ToolFormat::Harmony, &format!("{thought}{call}"));
        assert!(
            parsed
                .reasoning
                .as_deref()
                .is_some_and(|r| r.contains("call</b> the tool")),
            "{parsed:?}"
        );
        // Reasoning alone never completes the answer, and a final message instead of the
        // call is refused.
        assert_eq!(feed(thought), Ok(false));
        assert!(feed(&format!("{thought}<|channel|>final<|message|>Sunny.")).is_err());
    }
}

/// Structured output for gpt-oss: the JSON goes in the final channel, after any reasoning;
/// the harmony parser returns it as the content. A request's own Lark grammar is not wrapped.
#[test]
fn harmony_structured_output_is_the_final_channel_after_any_reasoning() {
    use rocmforge_model::constraint::{Grammar, GrammarCompiler};

    let tok = harmony_tokenizer();
    let compiler = GrammarCompiler::new(tok.clone()).unwrap();
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"], "additionalProperties": false});
    let answer = "<|channel|>final<|message|>{\"city\": \"Paris\"}";
    let thought = "<|channel|>analysis<|message|>Answer in JSON.<|end|><|start|>assistant";
    for asked in [Grammar::JsonSchema(schema), Grammar::JsonObject] {
        let grammar = harmony_structured(&asked, &tok).unwrap();
        let feed = |text: &str| -> Result<bool, String> {
            let mut c = compiler.compile(&grammar).map_err(|e| e.to_string())?;
            for t in tok.encode(text, false, true).map_err(|e| e.to_string())? {
                c.accept(t).map_err(|e| e.to_string())?;
            }
            Ok(c.is_complete())
        };
        for text in [answer.to_string(), format!("{thought}{answer}")] {
            assert_eq!(feed(&text), Ok(true), "{asked:?}: {text}");
            let parsed = parse_answer(ToolFormat::Harmony, &text);
            assert_eq!(parsed.content.as_deref(), Some("{\"city\": \"Paris\"}"));
        }
        // Bare JSON, or JSON in the commentary channel, is refused.
        assert!(feed("{\"city\": \"Paris\"}").is_err());
        assert!(feed("<|channel|>commentary<|message|>{").is_err());
    }
    // The schema is still enforced inside the channel.
    let strict = harmony_structured(
        &Grammar::JsonSchema(
            json!({"type": "object", "properties": {"n": {"type": "integer"}},
                                    "required": ["n"], "additionalProperties": false}),
        ),
        &tok,
    )
    .unwrap();
    let mut c = compiler.compile(&strict).unwrap();
    let refused = tok
        .encode(answer, false, true)
        .unwrap()
        .into_iter()
        .try_for_each(|t| c.accept(t));
    assert!(refused.is_err());
    assert_eq!(
        harmony_structured(&Grammar::Lark("start: \"x\"".into()), &tok),
        None
    );
}
