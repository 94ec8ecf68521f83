//! Chat templates: the models' own templates (SmolLM2, Phi-3) and the ChatML fallback.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use rocmforge_gguf::GgufFile;
use rocmforge_model::chat_template::{CHATML_TEMPLATE, ChatMessage, ChatTemplate};
use rocmforge_model::tokenizer::Tokenizer;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn open(path: PathBuf) -> Tokenizer {
    assert!(
        path.exists(),
        "{} is missing (models/: run `cargo xtask models` to fetch the test models)",
        path.display()
    );
    let file = GgufFile::open(&path).unwrap_or_else(|e| panic!("opening {}: {e}", path.display()));
    Tokenizer::from_gguf(&file).unwrap()
}

fn smollm2() -> Tokenizer {
    open(repo_root().join("models/SmolLM2-135M-Instruct.Q4_1.gguf"))
}

fn vocab(name: &str) -> Tokenizer {
    open(repo_root().join(format!("../shared/testdata/vocab/ggml-vocab-{name}.gguf")))
}

const SMOL_DEFAULT_SYSTEM: &str = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n";

#[test]
fn smollm2_template_adds_its_default_system_prompt() {
    let tok = smollm2();
    assert!(tok.chat_template().is_some_and(|t| t.contains("SmolLM")));
    let tmpl = ChatTemplate::for_tokenizer(&tok).unwrap();
    let out = tmpl
        .render(&[ChatMessage::user("What is 2+2?")], true)
        .unwrap();
    assert_eq!(
        out,
        format!(
            "{SMOL_DEFAULT_SYSTEM}<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        )
    );
}

#[test]
fn smollm2_template_keeps_a_given_system_prompt_and_history() {
    let tmpl = ChatTemplate::for_tokenizer(&smollm2()).unwrap();
    let msgs = [
        ChatMessage::system("Be brief."),
        ChatMessage::user("Hi"),
        ChatMessage::assistant("Hello!"),
        ChatMessage::user("Bye"),
    ];
    let out = tmpl.render(&msgs, false).unwrap();
    assert_eq!(
        out,
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n\
         <|im_start|>assistant\nHello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
    );
}

#[test]
fn rendered_prompt_tokenizes_with_special_tokens() {
    let tok = smollm2();
    let tmpl = ChatTemplate::for_tokenizer(&tok).unwrap();
    let prompt = tmpl
        .render(&[ChatMessage::user("What is 2+2?")], true)
        .unwrap();
    let ids = tok.encode(&prompt, true, true).unwrap();
    assert_eq!(ids[0], 1, "<|im_start|>");
    assert_eq!(
        ids.iter().filter(|&&id| id == 2).count(),
        2,
        "two <|im_end|>: {ids:?}"
    );
    // The tail is "<|im_start|>assistant\n", as in the reference tokenization.
    assert_eq!(&ids[ids.len() - 4..], [1, 520, 9531, 198]);
}

/// The conversation llama.cpp renders as its "chat template example".
fn example_conversation() -> [ChatMessage; 4] {
    [
        ChatMessage::system("You are a helpful assistant"),
        ChatMessage::user("Hello"),
        ChatMessage::assistant("Hi there"),
        ChatMessage::user("How are you?"),
    ]
}

/// Phi-3's template (from its vocabulary) as llama.cpp 0.5.0 renders it
/// (tests/data/chat/README.md): it has no system role, so the system text is folded into the
/// first user message; the `<s>` it prints is dropped since the tokenizer adds BOS itself.
#[test]
fn phi3_template_renders_as_llama_cpp() {
    let tmpl = ChatTemplate::for_tokenizer(&vocab("phi-3")).unwrap();
    let out = tmpl.render(&[ChatMessage::user("Hi")], true).unwrap();
    assert_eq!(out, "<|user|>\nHi<|end|>\n<|assistant|>\n");
    let example = example_conversation();
    assert_eq!(
        tmpl.render(&example, true).unwrap(),
        chat_data("phi3-example.llama-cpp.txt")
    );
}

#[test]
fn models_without_a_template_get_chatml() {
    let tok = vocab("gpt-2");
    assert!(tok.chat_template().is_none());
    let tmpl = ChatTemplate::for_tokenizer(&tok).unwrap();
    assert_eq!(tmpl.source(), CHATML_TEMPLATE);
    let out = tmpl.render(&[ChatMessage::user("Hi")], true).unwrap();
    assert_eq!(
        out,
        "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
    );
}

#[test]
fn raise_exception_becomes_an_error_with_its_message() {
    let src = "{% if messages[0]['role'] != 'user' %}{{ raise_exception('Conversation must start with user') }}{% endif %}ok";
    let tmpl = ChatTemplate::new(src, "<s>", "</s>").unwrap();
    assert_eq!(tmpl.render(&[ChatMessage::user("x")], false).unwrap(), "ok");
    let err = tmpl
        .render(&[ChatMessage::assistant("x")], false)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Conversation must start with user"), "{err}");
}

#[test]
fn python_string_methods_and_block_whitespace_work_like_jinja2() {
    let src = "{% for m in messages %}\n  {% if m.role.startswith('us') %}\n[{{ m.content.strip() | upper }}]{{ eos_token }}\n  {% endif %}\n{% endfor %}";
    let tmpl = ChatTemplate::new(src, "<s>", "</s>").unwrap();
    let out = tmpl
        .render(
            &[ChatMessage::user("  hi  "), ChatMessage::system("no")],
            false,
        )
        .unwrap();
    assert_eq!(out, "[HI]</s>\n");
}

#[test]
fn strftime_now_renders_a_date() {
    let tmpl = ChatTemplate::new("{{ strftime_now('%Y-%m-%d') }}", "", "").unwrap();
    let out = tmpl.render(&[], false).unwrap();
    let parts: Vec<&str> = out.split('-').collect();
    assert_eq!(parts.len(), 3, "{out}");
    assert!(
        parts[0].len() == 4 && parts[0].parse::<u32>().unwrap() >= 2024,
        "{out}"
    );
    assert!(
        (1..=12).contains(&parts[1].parse::<u32>().unwrap()),
        "{out}"
    );
}

#[test]
fn a_broken_template_is_an_error_not_a_panic() {
    let err = ChatTemplate::new("{% for m in messages %}", "", "")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("chat template:"), "{err}");
}

#[test]
fn tools_and_tool_calls_reach_the_template() {
    // A Hermes-style template in miniature: the tools listed in the system turn, an assistant
    // call rendered from `tool_calls` (arguments as an object, printed with `tojson`), the
    // tool's answer from its own role.
    let source = "{% if tools %}<tools>{% for t in tools %}{{ t.function.name }};{% endfor %}</tools>\n{% endif %}\
{% for m in messages %}{% if m.tool_calls %}<call>{% for c in m.tool_calls %}{{ c.function.name }}{{ c.function.arguments | tojson }}{% endfor %}</call>\n\
{% elif m.role == 'tool' %}<response id={{ m.tool_call_id }}>{{ m.content }}</response>\n\
{% else %}{{ m.role }}: {{ m.content }}\n{% endif %}{% endfor %}";
    let tmpl = ChatTemplate::new(source, "", "").unwrap();
    let tools = serde_json::json!([{"type": "function", "function": {"name": "get_weather"}}]);
    let mut call = ChatMessage::assistant("");
    call.tool_calls = Some(serde_json::json!([{"id": "c1", "type": "function",
        "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]));
    let mut answer = ChatMessage::new("tool", "sunny");
    answer.tool_call_id = Some("c1".to_string());
    let messages = [ChatMessage::user("Weather?"), call, answer];
    let out = tmpl
        .render_with_tools(&messages, Some(&tools), false)
        .unwrap();
    assert_eq!(
        out,
        "<tools>get_weather;</tools>\nuser: Weather?\n<call>get_weather{\"city\": \"Paris\"}</call>\n<response id=c1>sunny</response>\n"
    );
    // Without tools the template sees none.
    let plain = tmpl.render(&messages[..1], false).unwrap();
    assert_eq!(plain, "user: Weather?\n");
}

fn chat_data(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/chat")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Gemma 3's template as llama.cpp 0.5.0 renders it (tests/data/chat/README.md): the system
/// prompt folded into the first user turn, "assistant" spoken as "model", contents trimmed.
#[test]
fn gemma3_template_renders_as_llama_cpp() {
    let tmpl =
        ChatTemplate::new(chat_data("gemma3.jinja"), "<|endoftext|>", "<|endoftext|>").unwrap();
    let example = example_conversation();
    assert_eq!(
        tmpl.render(&example, true).unwrap(),
        chat_data("gemma3-example.llama-cpp.txt")
    );
    let sys_user = [
        ChatMessage::system("You are terse."),
        ChatMessage::user("  Hi there  "),
    ];
    assert_eq!(
        tmpl.render(&sys_user, true).unwrap(),
        chat_data("gemma3-system-user.llama-cpp.txt")
    );
    // Roles out of turn: the template's own error.
    let err = tmpl
        .render(&[ChatMessage::assistant("x")], true)
        .unwrap_err()
        .to_string();
    assert!(err.contains("Conversation roles must alternate"), "{err}");
}
