//! A failing engine step (a kernel error or a lost device on a GPU) seen through the server,
//! on the CPU: `ROCMFORGE_INJECT_STEP_FAULT=1` makes every batched step fail. A non-streamed
//! request gets a 500 with OpenAI's error body naming the fault, a streamed one gets an error
//! event and `[DONE]`, the failed sequences are freed, and the server keeps answering. A step
//! fault is per-request: the engine's worker keeps running, so `/health` stays 200.
//! `ROCMFORGE_INJECT_STEP_FAULT=device` makes the first step fail as a lost device does (a
//! runtime error): the request fails, the engine stops, `/health` turns 503 and later requests
//! get 503 — the server process itself keeps answering.
//!
//! The variable exists only with the `fault-injection` feature: rocmforge-cli's dev-dependency on
//! rocmforge-model turns it on in the binary built for these tests (never in a plain build).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_support;

use std::time::{Duration, Instant};

use serve_support::{Server, chat_body};

#[test]
fn a_failed_step_is_an_error_for_its_requests_and_the_server_keeps_serving() {
    let server = Server::start_with_env(&["--ctx", "128"], &[("ROCMFORGE_INJECT_STEP_FAULT", "1")]);
    let chat = "/v1/chat/completions";

    let r = server.post(chat, &chat_body("Say hi.", 4, false));
    assert_eq!(r.status, 500, "{}", r.text());
    let e = &r.json()["error"];
    assert_eq!(e["type"], "server_error", "{e}");
    assert!(
        e["message"]
            .as_str()
            .unwrap()
            .contains("injected step fault"),
        "{e}"
    );

    let r = server.post(chat, &chat_body("Say hi.", 4, true));
    assert_eq!(r.status, 200, "a stream has started before the step runs");
    let data = r.sse_data();
    assert_eq!(data.last().unwrap(), "[DONE]");
    let error: serde_json::Value = serde_json::from_str(&data[data.len() - 2]).unwrap();
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .contains("injected step fault"),
        "{error}"
    );

    // Concurrent requests all fail cleanly, none hangs, and every sequence is freed.
    let server_ref = &server;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|i| {
                s.spawn(move || {
                    server_ref.post(chat, &chat_body(&format!("Count to {i}."), 4, false))
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap().status, 500);
        }
    });
    // The counters follow the last event of a request within a step.
    let deadline = Instant::now() + Duration::from_secs(30);
    while server.metric("requests_failed_total") < 6.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.metric("requests_failed_total"), 6.0);
    assert_eq!(server.metric("active_sequences"), 0.0);
    assert_eq!(server.metric("http_responses_5xx_total"), 5.0);
    assert_eq!(server.get("/health").status, 200);
    server.get("/v1/models").json();
}

#[test]
fn a_device_fault_fails_the_request_and_turns_health_unhealthy() {
    let server = Server::start_with_env(
        &["--ctx", "128"],
        &[("ROCMFORGE_INJECT_STEP_FAULT", "device")],
    );
    let chat = "/v1/chat/completions";
    assert_eq!(server.get("/health").status, 200, "healthy before any step");

    let r = server.post(chat, &chat_body("Say hi.", 4, false));
    assert_eq!(r.status, 500, "{}", r.text());
    let message = r.json()["error"]["message"].as_str().unwrap().to_string();
    assert!(message.contains("injected device fault"), "{message}");

    // The engine stops after a device fault; the health check says so within a moment.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut health = server.get("/health");
    while health.status != 503 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        health = server.get("/health");
    }
    assert_eq!(health.status, 503, "{}", health.text());
    health.json();

    // Later requests are refused with 503 (OpenAI's error body), not hung or crashed.
    let r = server.post(chat, &chat_body("Say hi again.", 4, false));
    r.assert_error(503);
    server.get("/v1/models").json();
}
