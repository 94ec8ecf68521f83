//! gpt-oss's harmony format through `rocmforge serve` on the CPU backend: the tiny gpt-oss model
//! copied with a harmony vocabulary and gpt-oss's chat template from llama.cpp's source tree
//! (`models/tiny/tiny-gpt-oss-harmony.gguf`, written by `cargo xtask models`: see
//! `xtask/src/synth/harmony.rs`; seven byte tokens take the markers' texts, the weights are the
//! tiny model's).
//!
//! Its random weights answer nothing sensible, so the answers are shaped by grammars: a
//! `required` tool call (the server's own harmony grammar) and a `grammar` request that writes
//! an analysis message then a final one. Checked: the call comes back as `tool_calls` with
//! arguments that follow the schema, streamed as generated (the head first, the arguments in
//! several pieces adding up to the non-streamed ones); the analysis comes back as
//! `reasoning_content` and the final message as `content`, streamed as they are generated and
//! equal to the non-streamed answer; generation ends at the end-of-generation tokens
//! (`finish_reason` not `length`); a conversation with a call, its reasoning and its result
//! renders through the template; bad `reasoning_effort` / `chat_template_kwargs` get 400s.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_support;

use std::path::Path;

use serde_json::{Value, json};
use serve_support::{Server, chunks};

fn start() -> Server {
    let model =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tiny/tiny-gpt-oss-harmony.gguf");
    assert!(
        model.exists(),
        "{} is missing: run `cargo xtask models` (it writes the tiny models and this copy)",
        model.display()
    );
    Server::start_model(model.to_str().unwrap(), &["--ctx", "1024"], &[])
}

/// The deltas of choice 0 under `field` of a streamed answer.
fn deltas<'a>(c: &'a [Value], field: &str) -> Vec<&'a Value> {
    c.iter()
        .filter_map(|c| c["choices"].get(0))
        .filter_map(|ch| ch["delta"].get(field))
        .filter(|v| !v.is_null())
        .collect()
}

fn finish_reasons(c: &[Value]) -> Vec<String> {
    c.iter()
        .filter_map(|c| c["choices"].get(0))
        .filter_map(|ch| ch["finish_reason"].as_str())
        .map(str::to_string)
        .collect()
}

fn weather_tools() -> Value {
    json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string", "maxLength": 12},
                                      "unit": {"enum": ["celsius", "fahrenheit"]}},
                       "required": ["city", "unit"], "additionalProperties": false}}}])
}

#[test]
fn harmony_answers_through_the_server() {
    let s = &start();
    let model = s.get("/v1/models").json()["data"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();

    let tokens = |text: &str| -> Vec<u64> {
        let r = s.post(
            "/tokenize",
            &json!({"content": text, "add_special": false, "parse_special": true}).to_string(),
        );
        let ids = r.json()["tokens"].as_array().unwrap().clone();
        ids.iter().map(|t| t.as_u64().unwrap()).collect()
    };
    let id = |text: &str| -> u64 {
        let ids = tokens(text);
        assert_eq!(ids.len(), 1, "{text}: {ids:?}");
        ids[0]
    };

    // A required call: the harmony grammar writes it, the parser reads it. The grammar lets
    // reasoning messages come first (tools::tests covers that path); these random weights
    // would reason until max_tokens, so a logit bias against every token that can start
    // "analysis" (the single-token prefixes: the grammar's other choices start with "c" or
    // "f") takes the call.
    let no_analysis: serde_json::Map<String, Value> = (1..="analysis".len())
        .filter_map(|n| match tokens(&"analysis"[..n])[..] {
            [t] => Some((t.to_string(), json!(-100))),
            _ => None,
        })
        .collect();
    assert!(!no_analysis.is_empty());
    let tool_body = |stream: bool| {
        json!({"model": model, "max_tokens": 120, "temperature": 0, "stream": stream,
               "messages": [{"role": "user", "content": "Weather in Paris?"}],
               "tools": weather_tools(), "tool_choice": "required",
               "reasoning_effort": "low", "logit_bias": no_analysis.clone()})
        .to_string()
    };
    let whole = s.post("/v1/chat/completions", &tool_body(false));
    assert_eq!(whole.status, 200, "{}", whole.text());
    let whole = whole.json();
    let choice = &whole["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls", "{whole}");
    assert!(choice["message"]["content"].is_null(), "{whole}");
    let call = &choice["message"]["tool_calls"][0];
    assert_eq!(call["function"]["name"], "get_weather", "{whole}");
    let arguments = call["function"]["arguments"].as_str().unwrap();
    let args: Value = serde_json::from_str(arguments).unwrap();
    assert!(args["city"].is_string(), "{args}");
    assert!(["celsius", "fahrenheit"].contains(&args["unit"].as_str().unwrap()));
    let c = chunks(&s.post("/v1/chat/completions", &tool_body(true)));
    let calls = deltas(&c, "tool_calls");
    let head = &calls[0][0];
    assert_eq!(head["function"]["name"], "get_weather");
    assert!(head["id"].is_string());
    let pieces: Vec<&str> = calls
        .iter()
        .filter_map(|d| d[0]["function"]["arguments"].as_str())
        .filter(|a| !a.is_empty())
        .collect();
    assert!(pieces.len() > 2, "{pieces:?}");
    assert_eq!(pieces.concat(), arguments);
    assert!(deltas(&c, "content").iter().all(|t| t.as_str() == Some("")));
    assert_eq!(finish_reasons(&c), vec!["tool_calls"]);

    // Structured output: the JSON comes in the final channel and back as the content (the
    // same bias keeps the random weights from reasoning to max_tokens).
    let r = s.post(
        "/v1/chat/completions",
        &json!({"model": model, "max_tokens": 120, "temperature": 0,
                "messages": [{"role": "user", "content": "Weather in Paris, as JSON?"}],
                "logit_bias": no_analysis.clone(),
                "response_format": {"type": "json_schema", "json_schema": {"name": "w",
                    "schema": {"type": "object", "properties": {"unit": {"enum": ["celsius", "fahrenheit"]}},
                               "required": ["unit"], "additionalProperties": false}}}})
        .to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let r = r.json();
    let content = r["choices"][0]["message"]["content"]
        .as_str()
        .unwrap_or_default();
    let doc: Value = serde_json::from_str(content).unwrap_or_else(|e| panic!("{content}: {e}"));
    assert!(
        ["celsius", "fahrenheit"].contains(&doc["unit"].as_str().unwrap()),
        "{r}"
    );
    assert_eq!(r["choices"][0]["finish_reason"], "stop", "{r}");

    // Reasoning then a final message, written by a grammar over the marker tokens.
    let (ch, msg, end, start) = (
        id("<|channel|>"),
        id("<|message|>"),
        id("<|end|>"),
        id("<|start|>"),
    );
    let grammar = format!(
        "start: <[{ch}]> \"analysis\" <[{msg}]> THINK <[{end}]> <[{start}]> \"assistant\" <[{ch}]> \"final\" <[{msg}]> ANSWER\n\
         THINK: /[a-z]{{6,12}}( [a-z]{{2,8}}){{2,4}}/\nANSWER: /[A-Z][a-z]{{3,10}}!/\n"
    );
    let body = |stream: bool| {
        json!({"model": model, "max_tokens": 120, "temperature": 0, "stream": stream,
               "messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": "Hi"}],
               "grammar": grammar})
        .to_string()
    };
    let whole = s.post("/v1/chat/completions", &body(false));
    assert_eq!(whole.status, 200, "{}", whole.text());
    let whole = whole.json();
    let message = &whole["choices"][0]["message"];
    let reasoning = message["reasoning_content"].as_str().unwrap();
    let content = message["content"].as_str().unwrap();
    assert!(
        reasoning.len() >= 6
            && reasoning
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b' '),
        "{whole}"
    );
    assert!(content.ends_with('!') && content.len() >= 5, "{whole}");
    assert_eq!(whole["choices"][0]["finish_reason"], "stop", "{whole}");
    let c = chunks(&s.post("/v1/chat/completions", &body(true)));
    let streamed_reasoning: Vec<&str> = deltas(&c, "reasoning_content")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert!(streamed_reasoning.len() > 1, "{streamed_reasoning:?}");
    assert_eq!(streamed_reasoning.concat(), reasoning);
    let streamed_content: String = deltas(&c, "content")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    assert_eq!(streamed_content, content);
    assert_eq!(finish_reasons(&c), vec!["stop"]);

    // The round trip: the call with its reasoning and the tool's result, rendered by the
    // template (which refuses malformed histories) and answered.
    let history = json!([
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": null, "reasoning_content": "Need the weather.",
         "tool_calls": [{"id": call["id"], "type": "function",
                         "function": {"name": "get_weather", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": call["id"], "content": "Sunny, 21 degrees."}
    ]);
    let r = s.post(
        "/v1/chat/completions",
        &json!({"model": model, "max_tokens": 4, "temperature": 0, "messages": history,
                "tools": weather_tools(), "tool_choice": "none",
                "chat_template_kwargs": {"reasoning_effort": "high"}})
        .to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // A tool result without a call: the template's own error, as a 400.
    let r = s.post(
        "/v1/chat/completions",
        &json!({"model": model, "max_tokens": 4, "messages": [
            {"role": "user", "content": "Hi"}, {"role": "tool", "content": "x"}]})
        .to_string(),
    );
    assert!(
        r.assert_error(400)["message"]
            .as_str()
            .unwrap()
            .contains("no previous assistant message with a tool call")
    );
    for (field, value) in [
        ("reasoning_effort", json!(3)),
        ("chat_template_kwargs", json!("high")),
    ] {
        let mut req = json!({"model": model, "max_tokens": 4,
                             "messages": [{"role": "user", "content": "Hi"}]});
        req[field] = value;
        let e = s
            .post("/v1/chat/completions", &req.to_string())
            .assert_error(400);
        assert_eq!(e["param"], field);
    }
}
