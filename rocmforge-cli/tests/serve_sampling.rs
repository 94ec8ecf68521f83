//! `rocmforge serve` on the CPU backend with the real test model: request fields that shape
//! the sampling and the choices — `logit_bias` checked against the model's own unbiased
//! distribution (its `top_logprobs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_support;

use serde_json::{Value, json};
use serve_support::{MODEL_ID, Server, chat_body};

/// The id of a token whose text is `piece` (the piece must be one token).
fn token_id(server: &Server, piece: &str) -> u64 {
    let r = server.post(
        "/tokenize",
        &json!({"content": piece, "add_special": false}).to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let ids = r.json()["tokens"].as_array().unwrap().clone();
    assert_eq!(ids.len(), 1, "{piece:?} is not one token: {ids:?}");
    ids[0].as_u64().unwrap()
}

/// A greedy completion of `prompt` with 2 alternatives per token and `bias`.
fn complete(server: &Server, prompt: &str, max_tokens: u32, bias: Value) -> Value {
    let r = server.post(
        "/v1/completions",
        &json!({"model": MODEL_ID, "prompt": prompt, "max_tokens": max_tokens,
                "temperature": 0, "logprobs": 2, "logit_bias": bias})
        .to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()
}

#[test]
fn logit_bias_forces_and_bans_tokens() {
    let server = Server::start(&["--ctx", "256"]);
    let prompt = "The capital of France is";
    let plain = complete(&server, prompt, 6, json!({}));
    let lp = &plain["choices"][0]["logprobs"];
    let first = lp["tokens"][0].as_str().unwrap().to_string();
    // The unbiased runner-up of the first token, and both log-probabilities.
    let top = lp["top_logprobs"][0].as_object().unwrap().clone();
    assert_eq!(top.len(), 2, "{top:?}");
    let (second, second_lp) = top
        .iter()
        .find(|(t, _)| **t != first)
        .map(|(t, v)| (t.clone(), v.as_f64().unwrap()))
        .unwrap();

    // -100 on the greedy token: the greedy choice is the model's runner-up, whose reported
    // log-probability (the model's own, before the bias) is what the unbiased answer gave.
    let id = token_id(&server, &first);
    let banned = complete(&server, prompt, 6, json!({ id.to_string(): -100 }));
    let blp = &banned["choices"][0]["logprobs"];
    assert_eq!(blp["tokens"][0], second.as_str(), "{blp}");
    assert!((blp["token_logprobs"][0].as_f64().unwrap() - second_lp).abs() < 1e-4);
    assert!(
        !blp["tokens"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| *t == first.as_str()),
        "{blp}"
    );
    // A zero bias changes nothing.
    let zero = complete(&server, prompt, 6, json!({ id.to_string(): 0 }));
    assert_eq!(zero["choices"][0]["text"], plain["choices"][0]["text"]);

    // +100 on an unrelated word forces it at every step, on completions and chat, streamed too.
    let forced_id = token_id(&server, " banana");
    let bias = json!({ forced_id.to_string(): 100 });
    let forced = complete(&server, prompt, 5, bias.clone());
    assert_eq!(forced["choices"][0]["text"], " banana".repeat(5));
    for stream in [false, true] {
        let mut body: Value = serde_json::from_str(&chat_body("Hi!", 4, stream)).unwrap();
        body["logit_bias"] = bias.clone();
        let r = server.post("/v1/chat/completions", &body.to_string());
        assert_eq!(r.status, 200, "{}", r.text());
        let text: String = if stream {
            let data = r.sse_data();
            data[..data.len() - 1]
                .iter()
                .map(|d| serde_json::from_str::<Value>(d).unwrap())
                .filter_map(|c| {
                    c["choices"][0]["delta"]["content"]
                        .as_str()
                        .map(str::to_string)
                })
                .collect()
        } else {
            r.json()["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .to_string()
        };
        assert_eq!(
            text.trim_start(),
            " banana".repeat(4).trim_start(),
            "{stream}"
        );
    }
    // Sampled at temperature 1 with a seed, +100 still wins every draw.
    let r = server.post(
        "/v1/completions",
        &json!({"model": MODEL_ID, "prompt": prompt, "max_tokens": 4, "temperature": 1.0,
                "seed": 5, "logit_bias": bias})
        .to_string(),
    );
    assert_eq!(r.json()["choices"][0]["text"], " banana".repeat(4));

    // Bad keys and values: 400 with OpenAI's error body naming the field.
    for bad in [
        json!({"99999999": 1}),
        json!({"abc": 1}),
        json!({"-3": 1}),
        json!({"5": 101}),
        json!({"5": -100.5}),
        json!({"5": "x"}),
        json!([[5, 1]]),
    ] {
        let r = server.post(
            "/v1/completions",
            &json!({"model": MODEL_ID, "prompt": "x", "max_tokens": 2, "logit_bias": bad})
                .to_string(),
        );
        let e = r.assert_error(400);
        assert_eq!(e["param"], "logit_bias", "{bad}: {e}");
        let mut chat: Value = serde_json::from_str(&chat_body("x", 2, false)).unwrap();
        chat["logit_bias"] = bad.clone();
        let e = server
            .post("/v1/chat/completions", &chat.to_string())
            .assert_error(400);
        assert_eq!(e["param"], "logit_bias", "{bad}: {e}");
    }
}
