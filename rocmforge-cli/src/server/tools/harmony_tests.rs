//! Harmony answers in the forms llama.cpp's gpt-oss parser accepts (`common/parsers/gpt-oss.cpp`
//! and the gpt-oss cases of its `tests/test-chat.cpp`), whole and streamed in pieces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::super::parse::ToolCall;
use super::*;

/// The deltas of `text` fed `step` bytes at a time (on character boundaries), then finished,
/// added up into an answer.
fn streamed(text: &str, step: usize, calls: bool) -> (ParsedAnswer, Vec<HarmonyDelta>) {
    let mut s = HarmonyStream::new(calls);
    let mut deltas = Vec::new();
    let mut at = 0;
    while at < text.len() {
        let mut end = (at + step).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        deltas.extend(s.push(&text[at..end]));
        at = end;
    }
    deltas.extend(s.finish());
    let answer = super::super::answer_stream::rebuild(deltas.iter().cloned().map(Into::into));
    (answer, deltas)
}

fn call(name: &str, arguments: &str) -> ToolCall {
    ToolCall {
        name: name.into(),
        arguments: arguments.into(),
        id: None,
    }
}

/// Every piece size gives the whole parse.
fn check(text: &str, calls: bool, want: &ParsedAnswer) {
    assert_eq!(&parse(text, calls), want, "whole: {text:?}");
    for step in [1, 2, 3, 5, 7, 11, 64] {
        assert_eq!(
            &streamed(text, step, calls).0,
            want,
            "step {step}: {text:?}"
        );
    }
}

#[test]
fn analysis_then_final() {
    check(
        "<|channel|>analysis<|message|>The user greets.<|end|><|start|>assistant<|channel|>final<|message|>Hello there!",
        false,
        &ParsedAnswer {
            content: Some("Hello there!".into()),
            reasoning: Some("The user greets.".into()),
            calls: vec![],
        },
    );
}

#[test]
fn calls_in_the_channel_and_in_the_role_header() {
    let args = "{\"city\": \"Paris\", \"unit\": \"celsius\"}";
    check(
        &format!(
            "<|channel|>analysis<|message|>Need weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{args}"
        ),
        true,
        &ParsedAnswer {
            content: None,
            reasoning: Some("Need weather.".into()),
            calls: vec![call("get_weather", args)],
        },
    );
    check(
        " to=functions.get_time<|channel|>commentary json<|message|> {} ",
        true,
        &ParsedAnswer {
            content: None,
            reasoning: None,
            calls: vec![call("get_time", "{}")],
        },
    );
}

#[test]
fn a_preamble_is_content_beside_the_call() {
    check(
        "<|channel|>commentary<|message|>Checking the weather.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\":\"Oslo\"}",
        true,
        &ParsedAnswer {
            content: Some("Checking the weather.".into()),
            reasoning: None,
            calls: vec![call("get_weather", "{\"city\":\"Oslo\"}")],
        },
    );
}

#[test]
fn calls_without_tools_and_builtin_recipients_are_dropped() {
    let text = "<|channel|>analysis<|message|>x<|end|><|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>{}";
    check(
        text,
        false,
        &ParsedAnswer {
            content: Some(String::new()),
            reasoning: Some("x".into()),
            calls: vec![],
        },
    );
    check(
        "<|channel|>analysis to=browser.search<|message|>{\"query\": \"q\"}<|end|><|start|>assistant<|channel|>final<|message|>done",
        true,
        &ParsedAnswer {
            content: Some("done".into()),
            reasoning: None,
            calls: vec![],
        },
    );
}

#[test]
fn text_that_is_not_harmony_is_content() {
    for text in ["Just an answer.", "  <|chan", "", "<b>bold</b>"] {
        let want = ParsedAnswer {
            content: Some(text.into()),
            reasoning: None,
            calls: vec![],
        };
        check(text, true, &want);
    }
}

#[test]
fn a_cut_answer_keeps_what_was_read() {
    // The token limit in the reasoning: what came is reasoning, `<|en` included.
    check(
        "<|channel|>analysis<|message|>Thinking <|en",
        true,
        &ParsedAnswer {
            content: Some(String::new()),
            reasoning: Some("Thinking <|en".into()),
            calls: vec![],
        },
    );
    // Cut inside a header: the header is not sent.
    check(
        "<|channel|>analysis<|message|>a<|end|><|start|>assistant<|chan",
        true,
        &ParsedAnswer {
            content: Some(String::new()),
            reasoning: Some("a".into()),
            calls: vec![],
        },
    );
}

#[test]
fn deltas_come_as_the_text_does() {
    let (_, deltas) = streamed(
        "<|channel|>analysis<|message|>abcdef<|end|><|start|>assistant<|channel|>commentary to=functions.f <|constrain|>json<|message|>{\"a\": 1}",
        2,
        true,
    );
    let reasoning = deltas
        .iter()
        .filter(|d| matches!(d, HarmonyDelta::Reasoning(_)))
        .count();
    assert!(reasoning >= 3, "{deltas:?}");
    let head = deltas
        .iter()
        .position(|d| matches!(d, HarmonyDelta::Call(CallDelta::Head { .. })))
        .unwrap();
    let args = deltas
        .iter()
        .filter(|d| matches!(d, HarmonyDelta::Call(CallDelta::Args { .. })))
        .count();
    assert!(args >= 3, "{deltas:?}");
    assert!(
        deltas[..head]
            .iter()
            .all(|d| !matches!(d, HarmonyDelta::Call(_))),
        "{deltas:?}"
    );
}
