#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::super::parse_answer;
use super::*;

/// Feeds `text` in pieces of `size` characters; returns the calls rebuilt from the deltas as a
/// client does (name, id, concatenated arguments) and the deltas sent before the end.
fn stream(
    format: ToolFormat,
    text: &str,
    size: usize,
) -> (Vec<(String, Option<String>, String)>, usize) {
    let mut s = CallStream::new(format);
    let mut calls: Vec<(String, Option<String>, String)> = Vec::new();
    let chars: Vec<char> = text.chars().collect();
    let mut early = 0;
    for chunk in chars.chunks(size) {
        let piece: String = chunk.iter().collect();
        for d in s.push(&piece) {
            early += 1;
            match d {
                CallDelta::Head { k, name, id } => {
                    assert_eq!(k, calls.len(), "heads in order");
                    calls.push((name, id, String::new()));
                }
                CallDelta::Args { k, piece } => calls[k].2.push_str(&piece),
            }
        }
    }
    assert_eq!(s.text(), text);
    for (k, c) in calls.iter().enumerate() {
        assert_eq!(s.sent(k), c.2);
        assert!(s.head_sent(k));
    }
    assert_eq!(s.calls_sent(), calls.len());
    (calls, early)
}

/// Every call the parser finds is streamed, complete, before the answer ends, with exactly
/// the parser's arguments string, whatever the piece size.
fn streams_like_the_parser(format: ToolFormat, text: &str, calls: usize) {
    let parsed = parse_answer(format, text);
    assert_eq!(parsed.calls.len(), calls, "{text}");
    for size in [1, 2, 3, 7, 1000] {
        let (got, _) = stream(format, text, size);
        assert_eq!(got.len(), calls, "{format:?} size {size}: {got:?}");
        for (g, p) in got.iter().zip(&parsed.calls) {
            assert_eq!(g.0, p.name);
            assert_eq!(g.2, p.arguments, "{format:?} size {size}");
            serde_json::from_str::<Value>(&g.2).unwrap();
        }
    }
}

#[test]
fn generic_calls_stream_their_arguments() {
    streams_like_the_parser(
        ToolFormat::Generic,
        r#"{"tool_call": {"name": "get_weather", "arguments": {"city": "Paris \"Île\"\u00e9", "unit": "celsius", "n": 1.50, "d": [1, -2e1, true, null, {}]}}}"#,
        1,
    );
    streams_like_the_parser(
        ToolFormat::Generic,
        r#" {"tool_calls": [{"name": "a", "arguments": {}}, {"name": "b", "arguments": {"x": [ ]}}]}"#,
        2,
    );
    // Plain answers stream no call.
    for text in [r#"{"response": "Hello {there}"}"#, "Just text.", ""] {
        assert_eq!(stream(ToolFormat::Generic, text, 1).0, vec![]);
    }
}

#[test]
fn arguments_are_sent_while_they_are_written() {
    let text = r#"{"tool_call": {"name": "f", "arguments": {"a": "x", "b": "y"}}}"#;
    let mut s = CallStream::new(ToolFormat::Generic);
    let cut = text.find(r#", "b""#).unwrap();
    let first = s.push(&text[..cut]);
    assert_eq!(
        first,
        vec![
            CallDelta::Head {
                k: 0,
                name: "f".to_string(),
                id: None
            },
            CallDelta::Args {
                k: 0,
                piece: r#"{"a":"x""#.to_string()
            }
        ]
    );
    let rest = s.push(&text[cut..]);
    assert_eq!(
        rest,
        vec![CallDelta::Args {
            k: 0,
            piece: r#","b":"y"}"#.to_string()
        }]
    );
}

#[test]
fn native_formats_stream_their_calls() {
    streams_like_the_parser(
        ToolFormat::Hermes,
        "I'll check.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\n<tool_call>\n{\"name\": \"get_time\", \"arguments\": {\"tz\": \"UTC\"}}\n</tool_call>",
        2,
    );
    streams_like_the_parser(
        ToolFormat::Llama3,
        "<|python_tag|>{\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
        1,
    );
    streams_like_the_parser(
        ToolFormat::Llama3,
        "  {\"name\": \"get_weather\", \"parameters\": {\"city\": \"Oslo\"}}",
        1,
    );
    // Mistral writes the id after the arguments: the head waits for it (the arguments come
    // with it), so the streamed id is the model's; a call without an id sends its head at its
    // end (the caller makes the id, as for the non-streamed answer).
    let text = "[TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"q\": 1}, \"id\": \"abcdefghi\"}, {\"name\": \"b\", \"arguments\": {}}]";
    streams_like_the_parser(ToolFormat::Mistral, text, 2);
    let (calls, _) = stream(ToolFormat::Mistral, text, 1);
    assert_eq!(calls[0].1.as_deref(), Some("abcdefghi"));
    assert_eq!(calls[1].1, None);
    // An id written before the arguments comes with the head.
    let (calls, _) = stream(
        ToolFormat::Mistral,
        "[{\"id\": \"abcdefghi\", \"name\": \"a\", \"arguments\": {}}]",
        3,
    );
    assert_eq!(calls[0].1.as_deref(), Some("abcdefghi"));
    // Arguments before the name: sent with the head once the name is read.
    streams_like_the_parser(
        ToolFormat::Hermes,
        "<tool_call>{\"arguments\": {\"x\": 1}, \"name\": \"late\"}</tool_call>",
        1,
    );
    // Arguments written as a JSON string: its content, as the parser reads it.
    streams_like_the_parser(
        ToolFormat::Hermes,
        "<tool_call>{\"name\": \"s\", \"arguments\": \"{\\\"x\\\": 1}\"}</tool_call>",
        1,
    );
}

#[test]
fn text_that_is_not_a_call_sends_nothing() {
    for (format, text) in [
        (ToolFormat::Hermes, "No tools needed. <tool_ca"),
        (ToolFormat::Hermes, "<tool_call> not json </tool_call>"),
        (ToolFormat::Llama3, "The answer is {42}."),
        (ToolFormat::Mistral, "Sure [TOOL_CALLS"),
        (ToolFormat::Generic, "[1, 2]"),
    ] {
        assert_eq!(stream(format, text, 1).0, vec![], "{format:?} {text}");
    }
}
