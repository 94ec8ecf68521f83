#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::*;

/// What a client rebuilds from the deltas of `text` fed `size` characters at a time: the
/// answer, and how much content arrived before the end.
fn client(format: ToolFormat, text: &str, size: usize) -> (ParsedAnswer, String) {
    let mut s = AnswerStream::new(format, true);
    let chars: Vec<char> = text.chars().collect();
    let mut deltas = Vec::new();
    for chunk in chars.chunks(size) {
        deltas.extend(s.push(&chunk.iter().collect::<String>()));
    }
    let mut early = String::new();
    for d in &deltas {
        if let AnswerDelta::Content(t) = d {
            early.push_str(t);
        }
    }
    let (rest, _) = s.finish();
    deltas.extend(rest);
    (rebuild(deltas), early)
}

/// The deltas add up to the parser's answer whatever the piece size, and `early` content
/// (at least) arrives before the end.
fn check(format: ToolFormat, text: &str, early: &str) {
    let want = parse_answer(format, text);
    for size in [1, 2, 3, 7, 1000] {
        let (got, sent_early) = client(format, text, size);
        assert_eq!(got, want, "{format:?} size {size}: {text:?}");
        assert_eq!(
            read_answer(format, true, text),
            want,
            "{format:?} whole: {text:?}"
        );
        assert!(
            sent_early.starts_with(early),
            "{format:?} size {size}: early {sent_early:?}, wanted {early:?}"
        );
    }
}

#[test]
fn content_beside_calls_streams_as_generated() {
    check(
        ToolFormat::Hermes,
        "I'll check the weather.\n<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\"}}\n</tool_call>\nDone.",
        "I'll check the weather.",
    );
    check(
        ToolFormat::Mistral,
        "Let me look. [TOOL_CALLS][{\"name\": \"a\", \"arguments\": {\"q\": 1}, \"id\": \"abcdefghi\"}]",
        "Let me look.",
    );
    check(
        ToolFormat::Hermes,
        "\n\nLeading blanks stay. <tool_call>{\"name\": \"f\", \"arguments\": {}}</tool_call>",
        "\n\nLeading blanks stay.",
    );
}

#[test]
fn plain_answers_stream_whole() {
    for format in [ToolFormat::Hermes, ToolFormat::Mistral, ToolFormat::Llama3] {
        check(
            format,
            "  Paris is sunny <today>.\n",
            "  Paris is sunny <today>.",
        );
    }
    // A marker begun but never finished is text, sent at the end at the latest.
    check(ToolFormat::Hermes, "Almost <tool_ca", "Almost");
    check(
        ToolFormat::Llama3,
        "The answer is {42}.",
        "The answer is {42}.",
    );
    // A broken call is text too.
    check(
        ToolFormat::Hermes,
        "x <tool_call> not json </tool_call>",
        "x",
    );
}

#[test]
fn calls_alone_send_no_content() {
    for (format, text) in [
        (
            ToolFormat::Llama3,
            "<|python_tag|>{\"name\": \"f\", \"parameters\": {}}",
        ),
        (
            ToolFormat::Mistral,
            "[{\"name\": \"f\", \"arguments\": {}}]",
        ),
        (
            ToolFormat::Generic,
            "{\"tool_call\": {\"name\": \"f\", \"arguments\": {}}}",
        ),
    ] {
        check(format, text, "");
        assert_eq!(client(format, text, 1).1, "", "{format:?}");
    }
    // The generic format's response comes at the end.
    check(ToolFormat::Generic, "{\"response\": \"Hi\"}", "");
}

#[test]
fn harmony_streams_reasoning_content_and_calls() {
    check(
        ToolFormat::Harmony,
        "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>commentary<|message|>On it.<|end|><|start|>assistant<|channel|>commentary to=functions.get_weather <|constrain|>json<|message|>{\"city\": \"Paris\"}",
        "On it.",
    );
    let (answer, _) = client(
        ToolFormat::Harmony,
        "<|channel|>analysis<|message|>Think.<|end|><|start|>assistant<|channel|>final<|message|>Hi!",
        2,
    );
    assert_eq!(answer.reasoning.as_deref(), Some("Think."));
    assert_eq!(answer.content.as_deref(), Some("Hi!"));
}
