//! Hostile requests in bursts against `rocmforge serve` (CPU backend, the test model): every
//! kind gets a clear 4xx, slow clients are cut off by the read timeouts, the server answers
//! `/health` and a real completion after each burst, and its resident memory stays bounded.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serve_support::{Server, chat_body};

/// Allowed growth of the server's resident memory over all the bursts (the model is mapped,
/// so the baseline already holds it; a leak of the hostile bodies would be hundreds of MB).
const RSS_GROWTH_LIMIT_MB: f64 = 150.0;

fn rss_mb(server: &Server) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.child.id())).unwrap();
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb / 1024.0
}

fn still_serving(server: &Server, after: &str) {
    assert_eq!(server.get("/health").status, 200, "health after {after}");
    let r = server.post("/v1/chat/completions", &chat_body("Say hi.", 2, false));
    assert_eq!(r.status, 200, "completion after {after}: {}", r.text());
}

fn chat_with(extra: &str) -> String {
    format!(r#"{{"messages": [{{"role": "user", "content": "hi"}}]{extra}}}"#)
}

/// Sends `prefix` at once, then `drip` one byte every `gap` (cycling), until the server
/// answers or closes the connection; returns how long that took and what it answered.
fn dribble(server: &Server, prefix: &[u8], drip: &[u8], gap: Duration) -> (Duration, String) {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
    s.write_all(prefix).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    for b in drip.iter().cycle() {
        if started.elapsed() > Duration::from_secs(30) || s.write_all(&[*b]).is_err() {
            break;
        }
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
        std::thread::sleep(gap);
    }
    (
        started.elapsed(),
        String::from_utf8_lossy(&answer).into_owned(),
    )
}

#[test]
fn hostile_bursts_get_4xx_keep_serving_and_keep_memory_bounded() {
    let server = Server::start(&[
        "--ctx",
        "256",
        "--max-body",
        "262144",
        "--read-timeout",
        "2",
    ]);
    let chat = "/v1/chat/completions";
    // Warm up (first allocations of the engine, the tokenizer and the runtime).
    for _ in 0..3 {
        still_serving(&server, "warm-up");
    }
    let before = rss_mb(&server);

    // Bodies over the limit: 413, and the body is not kept.
    let huge = format!(r#"{{"prompt": "{}"}}"#, "a".repeat(4 << 20));
    for _ in 0..10 {
        server.post("/v1/completions", &huge).assert_error(413);
    }
    still_serving(&server, "huge bodies");

    // Invalid UTF-8 inside a string and as the whole body.
    for bad in [
        &b"{\"prompt\": \"\xff\xfe\xc3\"}"[..],
        &[0xc0, 0x80, 0xff][..],
    ] {
        for _ in 0..20 {
            let e = server
                .request(
                    "POST",
                    "/v1/completions",
                    &[("Content-Type", "application/json")],
                    bad,
                )
                .assert_error(400);
            assert!(e["message"].as_str().unwrap().contains("UTF-8"), "{e}");
        }
    }
    still_serving(&server, "invalid UTF-8");

    // Deeply nested JSON (just under the body limit): 400, no stack overflow.
    let deep_array = "[".repeat(250_000);
    let deep_object = r#"{"a":"#.repeat(40_000);
    for body in [&deep_array, &deep_object] {
        for _ in 0..5 {
            server.post(chat, body).assert_error(400);
        }
    }
    still_serving(&server, "deeply nested JSON");

    // 10,000 stop strings: a clear limit on `stop`.
    let stops: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
    let body = chat_with(&format!(
        r#", "stop": {}"#,
        serde_json::to_string(&stops).unwrap()
    ));
    for _ in 0..10 {
        let e = server.post(chat, &body).assert_error(400);
        assert_eq!(e["param"], "stop", "{e}");
        assert!(
            e["message"].as_str().unwrap().contains("stop strings"),
            "{e}"
        );
    }
    still_serving(&server, "10,000 stop strings");

    // max_tokens at and past 2^31, and just under it: an error naming the parameter
    // (as OpenAI and vLLM answer a limit beyond the context), never a clamp or a 500.
    for max in [
        "2147483648",
        "2147483647",
        "9223372036854775807",
        "4294967296",
    ] {
        for field in ["max_tokens", "max_completion_tokens"] {
            let e = server
                .post(chat, &chat_with(&format!(r#", "{field}": {max}"#)))
                .assert_error(400);
            assert_eq!(e["param"], field, "{e}");
        }
    }
    still_serving(&server, "max_tokens 2^31");

    // A prompt 10x the context (256 tokens), as a completion and as a chat message.
    let long = "hello ".repeat(2560);
    for _ in 0..5 {
        let e = server
            .post(
                "/v1/completions",
                &serde_json::json!({"prompt": long, "max_tokens": 4}).to_string(),
            )
            .assert_error(400);
        assert_eq!(e["code"], "context_length_exceeded", "{e}");
        let body = serde_json::json!({"messages": [{"role": "user", "content": long}]});
        let e = server.post(chat, &body.to_string()).assert_error(400);
        assert_eq!(e["code"], "context_length_exceeded", "{e}");
    }
    still_serving(&server, "prompts 10x the context");

    // Slow clients, 8 at once: headers dribbled a byte every 200 ms are cut off by the 2 s
    // header timeout even though bytes keep coming; a dribbled body gets 408.
    let head = b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| s.spawn(|| dribble(&server, b"", head, Duration::from_millis(200))))
            .collect();
        for h in handles {
            let (held, answer) = h.join().unwrap();
            assert!(
                held < Duration::from_secs(8),
                "slow headers held the connection {held:?}"
            );
            assert!(
                answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
                "{answer}"
            );
        }
    });
    let body_head = b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n";
    let (held, answer) = dribble(
        &server,
        body_head,
        b"{\"prompt\": \"aaaaaaaa",
        Duration::from_millis(200),
    );
    assert!(
        held < Duration::from_secs(8),
        "a slow body held the connection {held:?}"
    );
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    still_serving(&server, "slow clients");

    let after = rss_mb(&server);
    assert!(
        after - before < RSS_GROWTH_LIMIT_MB,
        "resident memory grew from {before:.1} MB to {after:.1} MB over the hostile bursts"
    );
    assert_eq!(server.metric("http_responses_5xx_total"), 0.0);
    // 10 bodies over the limit, 40 invalid UTF-8, 10 nested, 10 stop lists, 8 max_tokens,
    // 10 long prompts, 1 slow body (the cut-off slow headers never reach the router).
    assert_eq!(server.metric("http_responses_4xx_total"), 89.0);
    eprintln!("server RSS: {before:.1} MB before the bursts, {after:.1} MB after");
}
