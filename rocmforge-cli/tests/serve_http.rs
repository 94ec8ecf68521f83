//! `rocmforge serve` on the CPU backend with the real test model: the OpenAI routes, streaming,
//! concurrency, and every bad input answered with a clear 4xx while the server keeps serving.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serve_support::{MODEL_ID, Server, chat_body};

fn still_serving(server: &Server) {
    let r = server.post("/v1/chat/completions", &chat_body("Say hi.", 2, false));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(server.get("/health").status, 200);
}

#[test]
fn routes_streaming_and_hostile_requests() {
    let server = Server::start(&[
        "--ctx",
        "256",
        "--max-body",
        "262144",
        "--read-timeout",
        "2",
    ]);

    // Models, health, metrics.
    let models = server.get("/v1/models").json();
    assert_eq!(models["data"][0]["id"], MODEL_ID);
    assert_eq!(server.get("/health").json()["status"], "ok");

    // Token endpoints: the served model's tokenizer, round trip; bad ids are a 400 naming them.
    let t = server.post("/tokenize", r#"{"content":"Hello world, 12 apples"}"#);
    assert_eq!(t.status, 200, "{}", t.text());
    let ids = t.json()["tokens"].clone();
    assert!(ids.as_array().unwrap().len() >= 4, "{ids}");
    let d = server.post(
        "/detokenize",
        &serde_json::json!({ "tokens": ids }).to_string(),
    );
    assert_eq!(d.status, 200, "{}", d.text());
    assert_eq!(d.json()["content"], "Hello world, 12 apples");
    let bad = server.post("/detokenize", r#"{"tokens":[1,99999999]}"#);
    assert_eq!(bad.status, 400);
    assert_eq!(bad.json()["error"]["param"], "tokens");
    // With pieces: the same ids, each with its text; the pieces spell the input.
    let p = server.post(
        "/tokenize",
        r#"{"content":"Hello world, 12 apples","with_pieces":true}"#,
    );
    assert_eq!(p.status, 200, "{}", p.text());
    let pieces = p.json()["tokens"].as_array().unwrap().clone();
    let piece_ids: Vec<serde_json::Value> = pieces.iter().map(|t| t["id"].clone()).collect();
    assert_eq!(serde_json::json!(piece_ids), ids);
    let spelled: String = pieces
        .iter()
        .map(|t| t["piece"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(spelled, "Hello world, 12 apples");

    // Embeddings: the model's width, unit length, one per input in order; bad inputs are 400s
    // naming the field (values against llama.cpp: golden_smollm2 and the openai client test).
    let e = server.post(
        "/v1/embeddings",
        r#"{"input":["Hello world","Hello world","12 apples"]}"#,
    );
    assert_eq!(e.status, 200, "{}", e.text());
    let data = e.json()["data"].as_array().unwrap().clone();
    let vecs: Vec<Vec<f64>> = data
        .iter()
        .map(|d| {
            d["embedding"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect()
        })
        .collect();
    assert_eq!(vecs.len(), 3);
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    for (i, v) in vecs.iter().enumerate() {
        assert_eq!(data[i]["index"], i);
        assert_eq!(v.len(), 576);
        assert!((dot(v, v) - 1.0).abs() < 1e-4);
    }
    assert_eq!(vecs[0], vecs[1]);
    assert!(dot(&vecs[0], &vecs[2]) < 0.99);
    for (body, param) in [
        (r#"{"input":[]}"#, "input"),
        (r#"{"input":[1,99999999]}"#, "input"),
        (r#"{"input":"x","dimensions":3}"#, "dimensions"),
        (
            r#"{"input":"x","encoding_format":"hex"}"#,
            "encoding_format",
        ),
    ] {
        let r = server.post("/v1/embeddings", body);
        assert_eq!(r.status, 400, "{body}: {}", r.text());
        assert_eq!(r.json()["error"]["param"], param, "{body}");
    }
    assert_eq!(server.post("/tokenize", r#"{"text":"x"}"#).status, 400);

    // n = 3: three choices, indexed, usage summed over them. Greedy: the same text three times;
    // sampled with a seed: the same three answers when asked again.
    let mut body: serde_json::Value =
        serde_json::from_str(&chat_body("Name a color.", 6, false)).unwrap();
    body["n"] = serde_json::json!(3);
    let r = server.post("/v1/chat/completions", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let choices = v["choices"].as_array().unwrap();
    assert_eq!(choices.len(), 3, "{v}");
    let texts: Vec<&str> = choices
        .iter()
        .map(|c| c["message"]["content"].as_str().unwrap())
        .collect();
    for (i, c) in choices.iter().enumerate() {
        assert_eq!(c["index"], i, "{v}");
    }
    assert!(
        texts.iter().all(|t| *t == texts[0] && !t.is_empty()),
        "{texts:?}"
    );
    let one: serde_json::Value = server
        .post(
            "/v1/chat/completions",
            &chat_body("Name a color.", 6, false),
        )
        .json();
    assert_eq!(one["choices"][0]["message"]["content"], texts[0]);
    let per = one["usage"]["completion_tokens"].as_u64().unwrap();
    assert_eq!(v["usage"]["completion_tokens"].as_u64().unwrap(), 3 * per);
    assert_eq!(v["usage"]["prompt_tokens"], one["usage"]["prompt_tokens"]);
    body["temperature"] = serde_json::json!(1.0);
    body["seed"] = serde_json::json!(42);
    body["max_tokens"] = serde_json::json!(12);
    let sampled = |s: &Server| -> Vec<String> {
        let r = s.post("/v1/chat/completions", &body.to_string());
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["message"]["content"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(sampled(&server), sampled(&server));

    // A chat completion, then the same request streamed: the same text at temperature 0.
    let r = server.post(
        "/v1/chat/completions",
        &chat_body("What is the capital of France?", 12, false),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "chat.completion");
    let text = v["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(!text.is_empty());
    let usage = &v["usage"];
    assert!(usage["prompt_tokens"].as_u64().unwrap() > 5);
    let completion = usage["completion_tokens"].as_u64().unwrap();
    assert!((1..=12).contains(&completion), "{usage}");
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + completion
    );

    let mut body: serde_json::Value =
        serde_json::from_str(&chat_body("What is the capital of France?", 12, true)).unwrap();
    body["stream_options"] = serde_json::json!({"include_usage": true});
    let r = server.post("/v1/chat/completions", &body.to_string());
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-type")
            .unwrap()
            .starts_with("text/event-stream")
    );
    let data = r.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let chunks: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    let streamed: String = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .filter_map(|c| c["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed, text);
    let last = chunks.last().unwrap();
    assert_eq!(last["choices"].as_array().unwrap().len(), 0);
    assert_eq!(
        last["usage"]["completion_tokens"].as_u64().unwrap(),
        completion
    );
    let finish = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0))
        .filter_map(|c| c["finish_reason"].as_str())
        .collect::<Vec<_>>();
    assert_eq!(finish.len(), 1);

    // The same chat with log-probabilities: one entry per generated token, the chosen token
    // the most likely one at temperature 0, the tokens spelling the text; streamed, the chunks
    // carry the same entries.
    let mut body: serde_json::Value =
        serde_json::from_str(&chat_body("What is the capital of France?", 12, false)).unwrap();
    body["logprobs"] = serde_json::json!(true);
    body["top_logprobs"] = serde_json::json!(2);
    let r = server.post("/v1/chat/completions", &body.to_string());
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["choices"][0]["message"]["content"], text.as_str());
    let content = v["choices"][0]["logprobs"]["content"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(content.len() as u64, completion, "{content:?}");
    let mut spelled = String::new();
    for entry in &content {
        let lp = entry["logprob"].as_f64().unwrap();
        let top = entry["top_logprobs"].as_array().unwrap();
        assert_eq!(top.len(), 2);
        assert!(lp <= 0.0 && lp >= top[1]["logprob"].as_f64().unwrap());
        assert_eq!(entry["token"], top[0]["token"]);
        spelled.push_str(entry["token"].as_str().unwrap());
    }
    assert_eq!(spelled, text);
    body["stream"] = serde_json::json!(true);
    let data = server
        .post("/v1/chat/completions", &body.to_string())
        .sse_data();
    let streamed_entries: Vec<serde_json::Value> = data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<serde_json::Value>(d).unwrap())
        .filter_map(|c| c["choices"].get(0).cloned())
        .filter_map(|c| c["logprobs"]["content"].as_array().cloned())
        .flatten()
        .collect();
    assert_eq!(streamed_entries, content);
    // Completions' legacy form: logprobs as the number of alternatives.
    let r = server.post(
        "/v1/completions",
        &serde_json::json!({"model": MODEL_ID, "prompt": "1, 2, 3, 4,", "max_tokens": 4,
                            "temperature": 0, "logprobs": 3})
        .to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    let lp = &v["choices"][0]["logprobs"];
    let n = v["usage"]["completion_tokens"].as_u64().unwrap() as usize;
    assert_eq!(lp["tokens"].as_array().unwrap().len(), n, "{lp}");
    assert_eq!(lp["token_logprobs"].as_array().unwrap().len(), n);
    assert_eq!(lp["top_logprobs"][0].as_object().unwrap().len(), 3);
    assert_eq!(lp["text_offset"][0], 0);
    let r = server.post(
        "/v1/chat/completions",
        &serde_json::json!({"model": MODEL_ID, "messages": [{"role": "user", "content": "hi"}],
                            "top_logprobs": 3})
        .to_string(),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["param"], "top_logprobs");

    // A raw completion with a stop string.
    let r = server.post(
        "/v1/completions",
        &serde_json::json!({"model": MODEL_ID, "prompt": "1, 2, 3, 4,", "max_tokens": 8,
                            "temperature": 0, "stop": ["7"]})
        .to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["object"], "text_completion");
    assert!(!v["choices"][0]["text"].as_str().unwrap().contains('7'));

    hostile_requests(&server);
    still_serving(&server);

    // Concurrent requests all succeed, and the batch saw them together.
    let addr_server = &server;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                s.spawn(move || {
                    addr_server.post(
                        "/v1/chat/completions",
                        &chat_body(&format!("Count to {i}."), 6, i % 2 == 0),
                    )
                })
            })
            .collect();
        for h in handles {
            let r = h.join().unwrap();
            assert_eq!(r.status, 200, "{}", r.text());
        }
    });
    // The counters follow the last event of each request within a step.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("active_sequences") > 0.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(server.metric("requests_completed_total") >= 8.0);
    // The repeated "capital of France" chats started from the kept cache of the first one.
    assert!(server.metric("prefix_cache_hits_total") >= 1.0);
    assert!(server.metric("prefix_reused_tokens_total") >= 16.0);
    assert!(server.metric("prefix_cache_bytes") > 0.0);
    // The kept prefixes hold KV blocks (the active sequences none); the pool's storage covers
    // them, and the budget has room left.
    assert!(server.metric("kv_blocks_used") >= 1.0);
    assert!(server.metric("kv_blocks_free") >= 1.0);
    assert!(server.metric("kv_pool_bytes") > 0.0);
    // Where the steps' time went; the CPU captures no decode graphs.
    assert!(server.metric("step_seconds_total") > 0.0);
    assert!(server.metric("step_host_seconds_total") < server.metric("step_seconds_total"));
    assert_eq!(server.metric("decode_graph_captures_total"), 0.0);
    assert_eq!(server.metric("decode_graph_replays_total"), 0.0);
    assert_eq!(server.metric("http_responses_5xx_total"), 0.0);
    assert_eq!(server.metric("active_sequences"), 0.0);
}

fn hostile_requests(server: &Server) {
    let chat = "/v1/chat/completions";
    // Malformed JSON and wrong types.
    server
        .post(chat, r#"{"messages": [{"role": "user", "content": "hi"}"#)
        .assert_error(400);
    server.post(chat, r#"{"messages": "hi"}"#).assert_error(400);
    server
        .post(
            chat,
            r#"{"messages": [{"role": "user", "content": "hi"}], "max_tokens": "ten"}"#,
        )
        .assert_error(400);
    server
        .post(
            chat,
            r#"{"messages": [{"role": "wizard", "content": "hi"}]}"#,
        )
        .assert_error(400);
    server.post(chat, r#"{"messages": []}"#).assert_error(400);
    server.post(chat, "").assert_error(400);
    // Token limits.
    for max in ["0", "-1", "2147483648", "1e9"] {
        let body = format!(
            r#"{{"messages": [{{"role": "user", "content": "hi"}}], "max_tokens": {max}}}"#
        );
        let e = server.post(chat, &body).assert_error(400);
        assert!(
            e["param"].as_str().unwrap_or("").starts_with("max")
                || e["message"].as_str().unwrap().contains("max_tokens")
                || max == "1e9",
            "{e}"
        );
    }
    // n out of range, bad sampling values, unknown model.
    for n in [r#""n": 0"#, r#""n": 99"#] {
        let e = server
            .post(
                chat,
                &format!(r#"{{"messages": [{{"role": "user", "content": "hi"}}], {n}}}"#),
            )
            .assert_error(400);
        assert_eq!(e["param"], "n", "{e}");
    }
    server
        .post(
            chat,
            r#"{"messages": [{"role": "user", "content": "hi"}], "temperature": -1}"#,
        )
        .assert_error(400);
    let e = server
        .post(
            chat,
            r#"{"model": "gpt-9", "messages": [{"role": "user", "content": "hi"}]}"#,
        )
        .assert_error(400);
    assert_eq!(e["code"], "model_not_found");
    // A prompt longer than the context (256), and 10x the context.
    for words in [300, 2560] {
        let prompt = "hello ".repeat(words);
        let body = serde_json::json!({"prompt": prompt, "max_tokens": 4}).to_string();
        let e = server.post("/v1/completions", &body).assert_error(400);
        assert_eq!(e["code"], "context_length_exceeded", "{e}");
    }
    // 10,000 stop strings.
    let stops: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
    let body = serde_json::json!({"messages": [{"role": "user", "content": "hi"}], "stop": stops})
        .to_string();
    let e = server.post(chat, &body).assert_error(400);
    assert_eq!(e["param"], "stop");
    // A body over the limit (262144 bytes).
    let big = format!(r#"{{"prompt": "{}"}}"#, "a".repeat(400_000));
    server.post("/v1/completions", &big).assert_error(413);
    // Invalid UTF-8.
    let mut bad = br#"{"prompt": ""#.to_vec();
    bad.extend_from_slice(&[0xff, 0xfe, 0xc3]);
    bad.extend_from_slice(br#""}"#);
    let e = server
        .request(
            "POST",
            "/v1/completions",
            &[("Content-Type", "application/json")],
            &bad,
        )
        .assert_error(400);
    assert!(e["message"].as_str().unwrap().contains("UTF-8"), "{e}");
    // Deeply nested JSON, at the top and inside a field.
    let deep = "[".repeat(50_000);
    server.post(chat, &deep).assert_error(400);
    let deep_field = format!(
        r#"{{"messages": [{{"role": "user", "content": {}}}]}}"#,
        "[".repeat(30_000)
    );
    server.post(chat, &deep_field).assert_error(400);
    // Unknown route, wrong method.
    server.get("/v1/nothing").assert_error(404);
    server.get(chat).assert_error(405);
    // Slow headers: the connection is closed after the read timeout (2 s).
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(15),
        "slow client held the connection {waited:?}"
    );
    let text = String::from_utf8_lossy(&buf);
    assert!(buf.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
}

#[test]
fn api_key_is_required_except_for_health() {
    let server = Server::start(&["--api-key", "sekret", "--ctx", "128"]);
    server.get("/v1/models").assert_error(401);
    let wrong = server.request(
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer nope")],
        b"",
    );
    wrong.assert_error(401);
    let right = server.request(
        "GET",
        "/v1/models",
        &[("Authorization", "Bearer sekret")],
        b"",
    );
    assert_eq!(right.status, 200);
    assert_eq!(server.get("/health").status, 200);
    let body = chat_body("hi", 2, false);
    let r = server.request(
        "POST",
        "/v1/chat/completions",
        &[
            ("Authorization", "Bearer sekret"),
            ("Content-Type", "application/json"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
}
