//! `rocmforge serve` on the CPU backend with the real test model: request fields that shape
//! the sampling and the choices — `logit_bias` checked against the model's own unbiased
//! distribution (its `top_logprobs`), `n > 1` streamed against the non-streamed answer, tool-call
//! arguments streamed as they are generated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_support;

use serde_json::{Value, json};
use serve_support::{MODEL_ID, Server, chat_body, chunks};

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

/// Per choice index: the streamed text (chat `delta.content` or completions `text`) and its
/// finish reasons.
fn by_index(chunks: &[Value], n: usize) -> Vec<(String, Vec<String>)> {
    let mut out = vec![(String::new(), Vec::new()); n];
    for c in chunks {
        for choice in c["choices"].as_array().unwrap() {
            let i = choice["index"].as_u64().unwrap() as usize;
            assert!(i < n, "{c}");
            let text = choice["delta"]["content"]
                .as_str()
                .or_else(|| choice["text"].as_str());
            out[i].0.push_str(text.unwrap_or(""));
            if let Some(f) = choice["finish_reason"].as_str() {
                out[i].1.push(f.to_string());
            }
        }
    }
    out
}

#[test]
fn n_choices_streamed() {
    let server = Server::start(&["--ctx", "256"]);
    // Greedy chat, n = 3 streamed: three copies of the non-streamed answer, each choice with
    // its role delta and one finish_reason; usage counts the three.
    let one = server
        .post(
            "/v1/chat/completions",
            &chat_body("Name a color.", 8, false),
        )
        .json();
    let text = one["choices"][0]["message"]["content"].as_str().unwrap();
    let per = one["usage"]["completion_tokens"].as_u64().unwrap();
    let mut body: Value = serde_json::from_str(&chat_body("Name a color.", 8, true)).unwrap();
    body["n"] = json!(3);
    body["stream_options"] = json!({"include_usage": true});
    let c = chunks(&server.post("/v1/chat/completions", &body.to_string()));
    for (i, (streamed, finish)) in by_index(&c, 3).into_iter().enumerate() {
        assert_eq!(streamed, text, "choice {i}");
        assert_eq!(finish.len(), 1, "choice {i}: {finish:?}");
        assert_eq!(
            finish[0],
            one["choices"][0]["finish_reason"].as_str().unwrap()
        );
        let roles = c
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .filter(|ch| ch["index"] == i && ch["delta"]["role"] == "assistant")
            .count();
        assert_eq!(roles, 1, "choice {i}");
    }
    let last = c.last().unwrap();
    assert_eq!(last["choices"].as_array().unwrap().len(), 0, "{last}");
    assert_eq!(
        last["usage"]["completion_tokens"].as_u64().unwrap(),
        3 * per
    );
    assert_eq!(
        last["usage"]["prompt_tokens"],
        one["usage"]["prompt_tokens"]
    );

    // Sampled completions with a seed: the streamed choice i is the non-streamed choice i
    // (seed + i each), log-probabilities streamed with their choice.
    let ask = |stream: bool| {
        json!({"model": MODEL_ID, "prompt": "Once upon a time", "max_tokens": 10,
               "temperature": 1.0, "seed": 42, "n": 3, "stream": stream, "logprobs": 1})
        .to_string()
    };
    let whole = server.post("/v1/completions", &ask(false)).json();
    let c = chunks(&server.post("/v1/completions", &ask(true)));
    let streamed = by_index(&c, 3);
    let texts: Vec<&str> = (0..3)
        .map(|i| whole["choices"][i]["text"].as_str().unwrap())
        .collect();
    assert!(texts[0] != texts[1] || texts[1] != texts[2], "{texts:?}");
    for i in 0..3 {
        assert_eq!(streamed[i].0, texts[i], "choice {i}");
        assert_eq!(
            streamed[i].1,
            vec![whole["choices"][i]["finish_reason"].as_str().unwrap()]
        );
        let tokens: Vec<Value> = c
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .filter(|ch| ch["index"] == i)
            .filter_map(|ch| ch["logprobs"]["tokens"].as_array().cloned())
            .flatten()
            .collect();
        assert_eq!(
            json!(tokens),
            whole["choices"][i]["logprobs"]["tokens"],
            "choice {i}"
        );
    }
}

/// A tool call streamed as it is generated: per choice, the first delta carries the id and
/// name, the argument deltas (several: sent token by token) add up to exactly the
/// non-streamed answer's arguments; n = 2 streams both choices' calls with their own ids.
#[test]
fn tool_call_arguments_stream_as_generated() {
    let server = Server::start(&["--ctx", "512"]);
    let tools = json!([{"type": "function", "function": {
        "name": "get_weather", "description": "Current weather",
        "parameters": {"type": "object",
                       "properties": {"city": {"type": "string", "maxLength": 16},
                                      "unit": {"enum": ["celsius", "fahrenheit"]}},
                       "required": ["city", "unit"], "additionalProperties": false}}}]);
    let body = |stream: bool, n: u32| {
        json!({"model": MODEL_ID, "max_tokens": 80, "temperature": 0, "stream": stream, "n": n,
               "messages": [{"role": "user", "content": "What is the weather in Paris?"}],
               "tools": tools, "tool_choice": "required"})
        .to_string()
    };
    let whole = server.post("/v1/chat/completions", &body(false, 1)).json();
    let call = &whole["choices"][0]["message"]["tool_calls"][0];
    assert_eq!(
        whole["choices"][0]["finish_reason"], "tool_calls",
        "{whole}"
    );
    let arguments = call["function"]["arguments"].as_str().unwrap();
    let parsed: Value = serde_json::from_str(arguments).unwrap();
    assert!(parsed["city"].is_string(), "{parsed}");
    let c = chunks(&server.post("/v1/chat/completions", &body(true, 2)));
    let mut ids = Vec::new();
    for i in 0..2u64 {
        let deltas: Vec<&Value> = c
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .filter(|ch| ch["index"] == i)
            .filter_map(|ch| ch["delta"]["tool_calls"].get(0))
            .collect();
        let head = deltas.first().unwrap();
        assert_eq!(head["function"]["name"], "get_weather", "{head}");
        assert_eq!(head["type"], "function");
        ids.push(head["id"].as_str().unwrap().to_string());
        let pieces: Vec<&str> = deltas
            .iter()
            .filter_map(|d| d["function"]["arguments"].as_str())
            .filter(|a| !a.is_empty())
            .collect();
        assert!(pieces.len() > 3, "choice {i}: {pieces:?}");
        assert_eq!(pieces.concat(), arguments, "choice {i}");
        assert!(deltas.iter().all(|d| d["index"] == 0));
        let finish: Vec<&Value> = c
            .iter()
            .filter_map(|c| c["choices"].get(0))
            .filter(|ch| ch["index"] == i && !ch["finish_reason"].is_null())
            .map(|ch| &ch["finish_reason"])
            .collect();
        assert_eq!(finish, vec!["tool_calls"], "choice {i}");
    }
    assert_ne!(ids[0], ids[1]);
}
