//! `rocmforge serve`: a full queue answers 503 with Retry-After, a client that disconnects has
//! its sequence cancelled and freed, and SIGTERM drains open streams and exits 0.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod serve_support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serve_support::{Server, chat_body};

/// Opens a streaming request and returns the connection once the first bytes arrived.
fn open_stream(server: &Server, max_tokens: u32) -> TcpStream {
    let body = chat_body("Write a long story about a dragon.", max_tokens, true);
    let req = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.write_all(req.as_bytes()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let mut first = [0u8; 64];
    let n = s.read(&mut first).unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));
    s
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn full_queue_gets_503_and_disconnects_free_sequences() {
    let server = Server::start(&["--ctx", "512", "--max-batch", "1", "--max-queue", "1"]);
    let running = open_stream(&server, 400);
    wait_for("one active sequence", || {
        server.metric("active_sequences") == 1.0
    });
    let queued = open_stream_async(&server, 3);
    wait_for("one queued request", || server.metric("queue_depth") == 1.0);
    let r = server.post("/v1/chat/completions", &chat_body("hi", 2, false));
    r.assert_error(503);
    assert_eq!(r.header("retry-after"), Some("1"));
    assert_eq!(server.metric("requests_rejected_total"), 1.0);

    // The running client goes away: its sequence is cancelled, the queued one runs.
    drop(running);
    wait_for("the cancellation", || {
        server.metric("requests_cancelled_total") >= 1.0
    });
    let r = queued.join().unwrap();
    assert!(r.contains("[DONE]"), "{r}");
    wait_for("an empty batch", || {
        server.metric("active_sequences") == 0.0
    });
    assert_eq!(server.metric("kv_cache_bytes"), 0.0);
    let r = server.post("/v1/chat/completions", &chat_body("hi", 2, false));
    assert_eq!(r.status, 200, "{}", r.text());
}

fn open_stream_async(server: &Server, max_tokens: u32) -> std::thread::JoinHandle<String> {
    let addr = server.addr;
    let body = chat_body("Say one word.", max_tokens, true);
    std::thread::spawn(move || {
        let req = format!(
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(req.as_bytes()).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(300))).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        String::from_utf8_lossy(&out).to_string()
    })
}

#[cfg(unix)]
#[test]
fn sigterm_finishes_open_streams_and_exits_zero() {
    let mut server = Server::start(&["--ctx", "256"]);
    let stream = open_stream_async(&server, 48);
    wait_for("the stream to start", || {
        server.metric("active_sequences") == 1.0
    });
    let pid = server.child.id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = server.child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the server did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status}");
    let body = stream.join().unwrap();
    assert!(body.contains("data: [DONE]"), "{body}");
    assert!(
        TcpStream::connect(server.addr).is_err(),
        "still accepting after shutdown"
    );
}
