//! Server-sent events in OpenAI's chunk format, ending with `data: [DONE]`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use rocmforge_model::FinishReason;
use rocmforge_model::engine::{EngineEvent, TokenLogprob};
use serde_json::{Value, json};
use tokio::sync::mpsc::UnboundedReceiver;

use super::error::ApiError;
use super::generation::finish_reason_name;
use super::logprobs;
use super::tools::{self, ToolFormat};
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
    /// Tools were offered: the text is held and parsed at the end, then sent as content or
    /// as `tool_calls` deltas (format and the prefix of the call ids).
    tools: Option<(ToolFormat, String)>,
    /// The text held for parsing.
    held_text: String,
}

/// Bytes of arguments per streamed `tool_calls` delta.
const ARGUMENT_PIECE: usize = 24;

/// `text` cut into pieces of about `n` bytes on character boundaries.
fn pieces(text: &str, n: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let mut end = (start + n).min(text.len());
        while !text.is_char_boundary(end) {
            end += 1;
        }
        out.push(&text[start..end]);
        start = end;
    }
    out
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

    /// The chunk of one `tool_calls` delta.
    fn tool_delta(&mut self, call: Value) -> Event {
        let choice = json!({"index": 0, "delta": {"tool_calls": [call]}, "logprobs": Value::Null,
                            "finish_reason": Value::Null});
        self.event(vec![choice], None)
    }

    /// Parses the held text: queues its content, or each call as OpenAI streams it (a delta
    /// with the id, type and name, then the arguments in pieces); returns whether it called.
    fn release_tool_calls(&mut self) -> bool {
        let Some((format, ids)) = self.tools.clone() else {
            return false;
        };
        let text = std::mem::take(&mut self.held_text);
        let parsed = tools::parse_answer(format, &text);
        if parsed.calls.is_empty() {
            let content = parsed.content.unwrap_or(text);
            if !content.is_empty() {
                let e = self.chunk(Some(&content), false, None);
                self.pending.push_back(e);
            }
            return false;
        }
        if let Some(content) = parsed.content {
            let e = self.chunk(Some(&content), false, None);
            self.pending.push_back(e);
        }
        for (k, call) in parsed.calls.iter().enumerate() {
            let id = tools::call_id(format, &ids, k, call.id.as_deref());
            let head = json!({"index": k, "id": id, "type": "function",
                              "function": {"name": call.name, "arguments": ""}});
            let e = self.tool_delta(head);
            self.pending.push_back(e);
            for piece in pieces(&call.arguments, ARGUMENT_PIECE) {
                let e = self.tool_delta(json!({"index": k, "function": {"arguments": piece}}));
                self.pending.push_back(e);
            }
        }
        true
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
                Some(EngineEvent::Text(t)) if self.tools.is_some() => self.held_text.push_str(&t),
                Some(EngineEvent::Text(t)) => return Some(self.chunk(Some(&t), false, None)),
                Some(EngineEvent::Logprob(lp)) => self.held.push(lp),
                Some(EngineEvent::Finished { reason, usage }) => {
                    let called = self.release_tool_calls();
                    let finish = match (called, reason) {
                        (true, FinishReason::EndOfGeneration | FinishReason::StopString) => {
                            "tool_calls"
                        }
                        _ => finish_reason_name(reason),
                    };
                    let last = self.chunk(None, false, Some(finish));
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

/// What a stream's chunks carry besides the text.
#[derive(Debug, Clone)]
pub struct ChunkOptions {
    /// Send usage in a last chunk.
    pub include_usage: bool,
    /// Each chunk carries its tokens' log-probabilities.
    pub logprobs: bool,
    /// Tools were offered: the answer is parsed in this format and its calls streamed as
    /// `tool_calls` deltas, with ids `<prefix>_<k>`.
    pub tools: Option<(ToolFormat, String)>,
}

/// The streamed answer read from `rx`.
pub fn sse_response(
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    options: ChunkOptions,
    rx: UnboundedReceiver<EngineEvent>,
) -> Response {
    let ChunkOptions {
        include_usage,
        logprobs,
        tools,
    } = options;
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
        tools,
        held_text: String::new(),
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
