//! gpt-oss's harmony format on the template side: how llama.cpp recognises the template and
//! what it changes in the messages before rendering (`common/parsers/gpt-oss.cpp`).
//!
//! The gpt-oss template reads an assistant turn's reasoning from `thinking`, and refuses a
//! turn with tool calls that carries both `content` and `thinking`. llama.cpp copies
//! `reasoning_content` (OpenAI-style clients send it back in the history) to `thinking` and,
//! where the turn also has tool calls, drops `content`.

use serde_json::{Map, Value};

/// Whether `source` is a harmony template (llama.cpp's test: it mentions `<|channel|>`).
pub fn is_harmony(source: &str) -> bool {
    source.contains("<|channel|>")
}

/// One message as the harmony template gets it: `reasoning_content` also as `thinking`, and
/// no `content` beside tool calls when reasoning is given.
pub fn adapt_message(mut m: Map<String, Value>) -> Map<String, Value> {
    let Some(reasoning) = m
        .get("reasoning_content")
        .filter(|r| r.is_string())
        .cloned()
    else {
        return m;
    };
    m.insert("thinking".to_string(), reasoning);
    let has_calls = m
        .get("tool_calls")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    if has_calls {
        m.remove("content");
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn reasoning_becomes_thinking_and_drops_content_beside_calls() {
        let plain = obj(json!({"role": "assistant", "content": "Hi", "reasoning_content": "r"}));
        let out = adapt_message(plain);
        assert_eq!(out["thinking"], "r");
        assert_eq!(out["content"], "Hi");
        let call = obj(
            json!({"role": "assistant", "content": "", "reasoning_content": "r",
                              "tool_calls": [{"function": {"name": "f", "arguments": {}}}]}),
        );
        let out = adapt_message(call);
        assert_eq!(out["thinking"], "r");
        assert!(!out.contains_key("content"));
        // Without reasoning nothing changes.
        let bare = obj(json!({"role": "assistant", "content": "", "tool_calls": [{}]}));
        assert_eq!(adapt_message(bare.clone()), bare);
    }

    #[test]
    fn recognised_by_the_channel_marker() {
        assert!(is_harmony("{{ '<|start|>assistant<|channel|>final' }}"));
        assert!(!is_harmony("<|im_start|>assistant"));
    }
}
