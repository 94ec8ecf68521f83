//! Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use rocmforge_model::engine::{EngineEvent, TokenLogprob};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use super::error::ApiError;
use super::generation::finish_reason_name;
use super::logprobs;
use super::types::UsageBody;

/// Which endpoint's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `chat.completion(.chunk)`.
    Chat,
    /// `text_completion`.
    Completion,
}

impl Kind {
    /// The `object` of a full response.
    pub fn object(self) -> &'static str {
        match self {
            Kind::Chat => "chat.completion",
            Kind::Completion => "text_completion",
        }
    }

    /// The prefix of response ids.
    pub fn id_prefix(self) -> &'static str {
        match self {
            Kind::Chat => "chatcmpl",
            Kind::Completion => "cmpl",
        }
    }

    fn chunk_object(self) -> &'static str {
        match self {
            Kind::Chat => "chat.completion.chunk",
            Kind::Completion => "text_completion",
        }
    }
}

struct ChunkStream {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// Whether the request asked for log-probabilities (each chunk carries those of its tokens).
    logprobs: bool,
    /// Log-probabilities of tokens whose text has not been sent yet.
    held: Vec<TokenLogprob>,
    /// Byte offset of the next token in the generated text (completions' `text_offset`).
    offset: usize,
    rx: UnboundedReceiver<EngineEvent>,
    pending: VecDeque<Event>,
    done: bool,
}

impl ChunkStream {
    fn chunk(&mut self, text: Option<&str>, role: bool, finish: Option<&str>) -> Event {
        // The tokens received so far go with this chunk's text (a token's text can be held
        // back by a stop-string check or an incomplete character; it then comes later).
        let logprobs = if self.logprobs && !role {
            let held = std::mem::take(&mut self.held);
            logprobs::render(self.kind, &held, &mut self.offset)
        } else {
            Value::Null
        };
        let choice = match self.kind {
            Kind::Chat => {
                let mut delta = serde_json::Map::new();
                if role {
                    delta.insert("role".to_string(), json!("assistant"));
                }
                if let Some(t) = text {
                    delta.insert("content".to_string(), json!(t));
                }
                json!({"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish})
            }
            Kind::Completion => {
                json!({"index": 0, "text": text.unwrap_or(""), "logprobs": logprobs, "finish_reason": finish})
            }
        };
        self.event(vec![choice], None)
    }

    fn event(&self, choices: Vec<Value>, usage: Option<UsageBody>) -> Event {
        let mut body = json!({
            "id": self.id,
            "object": self.kind.chunk_object(),
            "created": self.created,
            "model": self.model,
            "choices": choices,
        });
        if self.include_usage {
            body["usage"] = json!(usage);
        }
        Event::default().data(body.to_string())
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            match self.rx.recv().await {
                Some(EngineEvent::Text(t)) => return Some(self.chunk(Some(&t), false, None)),
                Some(EngineEvent::Logprob(lp)) => self.held.push(lp),
                Some(EngineEvent::Finished { reason, usage }) => {
                    let last = self.chunk(None, false, Some(finish_reason_name(reason)));
                    self.pending.push_back(last);
                    if self.include_usage {
                        let e = self.event(Vec::new(), Some(UsageBody::from(usage)));
                        self.pending.push_back(e);
                    }
                    self.finish();
                }
                Some(EngineEvent::Failed(message)) => {
                    let body = ApiError::internal(message).body();
                    self.pending
                        .push_back(Event::default().data(body.to_string()));
                    self.finish();
                }
                None => {
                    let body = ApiError::internal("the engine stopped mid-answer").body();
                    self.pending
                        .push_back(Event::default().data(body.to_string()));
                    self.finish();
                }
            }
        }
    }

    fn finish(&mut self) {
        self.pending.push_back(Event::default().data("[DONE]"));
        self.done = true;
    }
}

/// The streamed answer read from `rx`.
pub fn sse_response(
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    logprobs: bool,
    rx: UnboundedReceiver<EngineEvent>,
) -> Response {
    let mut state = ChunkStream {
        kind,
        id,
        created,
        model,
        include_usage,
        logprobs,
        held: Vec::new(),
        offset: 0,
        rx,
        pending: VecDeque::new(),
        done: false,
    };
    if kind == Kind::Chat {
        let first = state.chunk(Some(""), true, None);
        state.pending.push_back(first);
    }
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        s.next_event().await.map(|e| (Ok::<_, Infallible>(e), s))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
