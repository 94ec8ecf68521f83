//! A failing engine step (a kernel error or a lost device on a GPU) seen through the server,
//! on the CPU: `ROCMFORGE_INJECT_STEP_FAULT=1` makes every batched step fail. A non-streamed
//! request gets a 500 with OpenAI's error body naming the fault, a streamed one gets an error
//! event and `[DONE]`, the failed sequences are freed, and the server keeps answering. A step
//! fault is per-request: the engine's worker keeps running, so `/health` stays 200 (it turns
//! 503 only once the engine stops; see the unit test in `server::health`).
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
