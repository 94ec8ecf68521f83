//! A short load run in CI (the 32-client, 2-minute run is `tests/load/load.py`, by hand):
//! 8 concurrent streaming clients for 10 seconds, every third request of a client closing its
//! connection after the first chunk. No 5xx, every kept stream ends with `[DONE]`, and once
//! the clients stop, `/metrics` shows every sequence freed and every request accounted for.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serve_support::{Server, chat_body};

const CLIENTS: usize = 8;
const RUN: Duration = Duration::from_secs(10);

#[derive(Default, Debug)]
struct Tally {
    done: u32,
    disconnected: u32,
}

/// One streamed request; with `leave`, the connection closes after the first SSE chunk.
fn stream_once(server: &Server, prompt: &str, leave: bool) -> bool {
    let body = chat_body(prompt, 8, true);
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap();
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got);
        assert!(got.len() < 12 || text.starts_with("HTTP/1.1 200"), "{text}");
        if leave && text.contains("data: {") {
            return false;
        }
        if n == 0 {
            assert!(text.contains("data: [DONE]"), "stream ended early: {text}");
            return true;
        }
    }
}

#[test]
fn eight_streaming_clients_for_ten_seconds() {
    let server = Server::start(&["--ctx", "256", "--max-batch", "8"]);
    let until = Instant::now() + RUN;
    let server_ref = &server;
    let tallies: Vec<Tally> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|c| {
                s.spawn(move || {
                    let mut t = Tally::default();
                    let mut round = 0;
                    while Instant::now() < until {
                        round += 1;
                        let leave = (c + round) % 3 == 0;
                        if stream_once(server_ref, &format!("Count to {c}{round}."), leave) {
                            t.done += 1;
                        } else {
                            t.disconnected += 1;
                        }
                    }
                    t
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let done: u32 = tallies.iter().map(|t| t.done).sum();
    let left: u32 = tallies.iter().map(|t| t.disconnected).sum();
    assert!(done >= CLIENTS as u32 && left >= 1, "{tallies:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let settled = |server: &Server| {
        server.metric("active_sequences") == 0.0
            && server.metric("requests_completed_total") + server.metric("requests_cancelled_total")
                == f64::from(done + left)
    };
    while !settled(&server) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.metric("active_sequences"), 0.0);
    // A stream left after its first chunk may still finish before the engine sees it gone.
    assert!(server.metric("requests_completed_total") >= f64::from(done));
    assert_eq!(
        server.metric("requests_completed_total") + server.metric("requests_cancelled_total"),
        f64::from(done + left)
    );
    assert_eq!(server.metric("requests_failed_total"), 0.0);
    assert_eq!(server.metric("http_responses_5xx_total"), 0.0);
    assert_eq!(server.get("/health").status, 200);
}
