//! Log-probabilities in OpenAI's two shapes: chat's `logprobs.content` list and the legacy
//! completions object (`tokens`, `token_logprobs`, `top_logprobs`, `text_offset`).

use rocmforge_model::engine::{TokenLogprob, TopLogprob};
use serde_json::{Map, Value, json};

use super::stream::Kind;

fn text(t: &TopLogprob) -> String {
    String::from_utf8_lossy(&t.bytes).into_owned()
}

fn chat_entry(t: &TopLogprob) -> Value {
    json!({"token": text(t), "logprob": t.logprob, "bytes": t.bytes})
}

/// The tokens' log-probabilities for one response or chunk of `kind`; `offset` is the byte
/// offset of the first token in the generated text (completions' `text_offset`), advanced past
/// these tokens.
pub fn render(kind: Kind, tokens: &[TokenLogprob], offset: &mut usize) -> Value {
    match kind {
        Kind::Chat => {
            let content: Vec<Value> = tokens
                .iter()
                .map(|lp| {
                    let mut entry = chat_entry(&lp.token);
                    entry["top_logprobs"] = lp.top.iter().map(chat_entry).collect();
                    entry
                })
                .collect();
            json!({"content": content})
        }
        Kind::Completion => {
            let mut words = Vec::new();
            let mut logprobs = Vec::new();
            let mut tops = Vec::new();
            let mut offsets = Vec::new();
            for lp in tokens {
                let word = text(&lp.token);
                offsets.push(*offset);
                *offset += word.len();
                words.push(word);
                logprobs.push(lp.token.logprob);
                let top: Map<String, Value> =
                    lp.top.iter().map(|t| (text(t), json!(t.logprob))).collect();
                tops.push(Value::Object(top));
            }
            json!({
                "tokens": words,
                "token_logprobs": logprobs,
                "top_logprobs": tops,
                "text_offset": offsets,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn tok(id: u32, s: &str, logprob: f32) -> TopLogprob {
        TopLogprob {
            id,
            bytes: s.as_bytes().to_vec(),
            logprob,
        }
    }

    #[test]
    fn both_shapes() {
        let tokens = vec![
            TokenLogprob {
                token: tok(5, "Hi", -0.5),
                top: vec![tok(5, "Hi", -0.5), tok(7, "Yo", -1.5)],
            },
            TokenLogprob {
                token: tok(9, " there", -0.25),
                top: vec![tok(9, " there", -0.25), tok(3, "!", -2.0)],
            },
        ];
        let mut offset = 0;
        let chat = render(Kind::Chat, &tokens, &mut offset);
        assert_eq!(chat["content"][1]["token"], " there");
        assert_eq!(chat["content"][1]["logprob"], -0.25);
        assert_eq!(chat["content"][0]["bytes"], json!([72, 105]));
        assert_eq!(chat["content"][0]["top_logprobs"][1]["token"], "Yo");
        let mut offset = 10;
        let legacy = render(Kind::Completion, &tokens, &mut offset);
        assert_eq!(legacy["tokens"], json!(["Hi", " there"]));
        assert_eq!(legacy["token_logprobs"], json!([-0.5, -0.25]));
        assert_eq!(legacy["top_logprobs"][1]["!"], -2.0);
        assert_eq!(legacy["text_offset"], json!([10, 12]));
        assert_eq!(offset, 18);
    }
}
