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

/// One choice of a stream: its sequence's events and what is held back for its chunks.
struct Choice {
    rx: UnboundedReceiver<EngineEvent>,
    /// Log-probabilities of tokens whose text has not been sent yet.
    held: Vec<TokenLogprob>,
    /// Byte offset of the next token in the generated text (completions' `text_offset`).
    offset: usize,
    /// Tools were offered: the answer read for calls as it comes (its text is kept for the
    /// parser at the end).
    calls: Option<tools::CallStream>,
    /// Its `Finished` event has been read.
    finished: bool,
}

struct ChunkStream {
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    include_usage: bool,
    /// Whether the request asked for log-probabilities (each chunk carries those of its tokens).
    logprobs: bool,
    /// The choices, by `index`.
    choices: Vec<Choice>,
    /// The choice read first next time (turns rotate so no choice waits behind another).
    turn: usize,
    /// Tokens of the finished choices (the prompt counted once, as non-streamed).
    usage: UsageBody,
    pending: VecDeque<Event>,
    done: bool,
    /// Tools were offered: each call is sent as its parts are generated (a delta with the id,
    /// type and name, then the arguments as written); the rest of the text is parsed at the
    /// end and sent as content (format and the prefix of the call ids; choice `i`'s calls are
    /// `<prefix>_<i>_<k>`).
    tools: Option<(ToolFormat, String)>,
}

/// Bytes of arguments per `tool_calls` delta sent from the parsed answer.
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
    fn chunk(
        &mut self,
        index: usize,
        text: Option<&str>,
        role: bool,
        finish: Option<&str>,
    ) -> Event {
        // The tokens received so far go with this chunk's text (a token's text can be held
        // back by a stop-string check or an incomplete character; it then comes later).
        let logprobs = match self.choices.get_mut(index) {
            Some(c) if self.logprobs && !role => {
                let held = std::mem::take(&mut c.held);
                logprobs::render(self.kind, &held, &mut c.offset)
            }
            _ => Value::Null,
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
                json!({"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish})
            }
            Kind::Completion => {
                json!({"index": index, "text": text.unwrap_or(""), "logprobs": logprobs, "finish_reason": finish})
            }
        };
        self.event(vec![choice], None)
    }

    /// The chunk of one `tool_calls` delta of choice `index`.
    fn tool_delta(&mut self, index: usize, call: Value) -> Event {
        let choice = json!({"index": index, "delta": {"tool_calls": [call]},
                            "logprobs": Value::Null, "finish_reason": Value::Null});
        self.event(vec![choice], None)
    }

    /// The chunk of a call delta of choice `index`.
    fn call_delta(&mut self, index: usize, delta: tools::CallDelta) -> Option<Event> {
        let (format, prefix) = self.tools.clone()?;
        let call = match delta {
            tools::CallDelta::Head { k, name, id } => {
                let ids = format!("{prefix}_{index}");
                let id = tools::call_id(format, &ids, k, id.as_deref());
                json!({"index": k, "id": id, "type": "function",
                       "function": {"name": name, "arguments": ""}})
            }
            tools::CallDelta::Args { k, piece } => {
                json!({"index": k, "function": {"arguments": piece}})
            }
        };
        Some(self.tool_delta(index, call))
    }

    /// At choice `index`'s end: parses its whole text and sends what the stream has not: the
    /// content, calls (or the rest of their arguments) the streamed reading missed. Returns
    /// whether it called.
    fn release_tool_calls(&mut self, index: usize) -> bool {
        let Some((format, prefix)) = self.tools.clone() else {
            return false;
        };
        let Some(stream) = self.choices.get_mut(index).and_then(|c| c.calls.take()) else {
            return false;
        };
        let text = stream.text().to_string();
        let parsed = tools::parse_answer(format, &text);
        if parsed.calls.is_empty() {
            if stream.calls_sent() > 0 {
                // A call cut short (the token limit): its deltas are out, as far as it went.
                return true;
            }
            let content = parsed.content.unwrap_or(text);
            if !content.is_empty() {
                let e = self.chunk(index, Some(&content), false, None);
                self.pending.push_back(e);
            }
            return false;
        }
        if let Some(content) = parsed.content {
            let e = self.chunk(index, Some(&content), false, None);
            self.pending.push_back(e);
        }
        let ids = format!("{prefix}_{index}");
        for (k, call) in parsed.calls.iter().enumerate() {
            let rest = if stream.head_sent(k) {
                match call.arguments.strip_prefix(stream.sent(k)) {
                    Some(rest) => rest,
                    None => {
                        tracing::warn!(
                            call = k,
                            "streamed tool-call arguments differ from the parsed ones"
                        );
                        ""
                    }
                }
            } else {
                let id = tools::call_id(format, &ids, k, call.id.as_deref());
                let head = json!({"index": k, "id": id, "type": "function",
                                  "function": {"name": call.name, "arguments": ""}});
                let e = self.tool_delta(index, head);
                self.pending.push_back(e);
                &call.arguments
            };
            for piece in pieces(rest, ARGUMENT_PIECE) {
                let e =
                    self.tool_delta(index, json!({"index": k, "function": {"arguments": piece}}));
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

    /// The next event of any unfinished choice, with its index (`None`: its channel closed).
    async fn recv_any(&mut self) -> (usize, Option<EngineEvent>) {
        let n = self.choices.len();
        let start = self.turn;
        let (index, event) = std::future::poll_fn(|cx| {
            for k in 0..n {
                let i = (start + k) % n;
                let c = &mut self.choices[i];
                if c.finished {
                    continue;
                }
                if let std::task::Poll::Ready(e) = c.rx.poll_recv(cx) {
                    return std::task::Poll::Ready((i, e));
                }
            }
            std::task::Poll::Pending
        })
        .await;
        self.turn = (index + 1) % n.max(1);
        (index, event)
    }

    async fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            if self.done {
                return None;
            }
            let (i, event) = self.recv_any().await;
            match event {
                Some(EngineEvent::Text(t)) if self.tools.is_some() => {
                    let deltas = match self.choices[i].calls.as_mut() {
                        Some(calls) => calls.push(&t),
                        None => Vec::new(),
                    };
                    for d in deltas {
                        if let Some(e) = self.call_delta(i, d) {
                            self.pending.push_back(e);
                        }
                    }
                }
                Some(EngineEvent::Text(t)) => return Some(self.chunk(i, Some(&t), false, None)),
                Some(EngineEvent::Logprob(lp)) => self.choices[i].held.push(lp),
                Some(EngineEvent::Finished { reason, usage }) => {
                    let called = self.release_tool_calls(i);
                    let finish = match (called, reason) {
                        (true, FinishReason::EndOfGeneration | FinishReason::StopString) => {
                            "tool_calls"
                        }
                        _ => finish_reason_name(reason),
                    };
                    let last = self.chunk(i, None, false, Some(finish));
                    self.pending.push_back(last);
                    self.choices[i].finished = true;
                    self.usage.prompt_tokens = usage.prompt_tokens;
                    self.usage.completion_tokens += usage.completion_tokens;
                    if self.choices.iter().all(|c| c.finished) {
                        if self.include_usage {
                            let mut total = self.usage;
                            total.total_tokens = total.prompt_tokens + total.completion_tokens;
                            let e = self.event(Vec::new(), Some(total));
                            self.pending.push_back(e);
                        }
                        self.finish();
                    }
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
    /// Tools were offered: each answer is parsed in this format and its calls streamed as
    /// `tool_calls` deltas, with ids `<prefix>_<choice>_<k>`.
    pub tools: Option<(ToolFormat, String)>,
}

/// The streamed answer of the choices whose events `receivers` give (choice `i` reads
/// `receivers[i]`): their chunks interleave as their tokens come, each with its `index` and its
/// own `finish_reason`; usage and `[DONE]` follow the last one.
pub fn sse_response(
    kind: Kind,
    id: String,
    created: u64,
    model: String,
    options: ChunkOptions,
    receivers: Vec<UnboundedReceiver<EngineEvent>>,
) -> Response {
    let ChunkOptions {
        include_usage,
        logprobs,
        tools,
    } = options;
    let choices: Vec<Choice> = receivers
        .into_iter()
        .map(|rx| Choice {
            rx,
            held: Vec::new(),
            offset: 0,
            calls: tools.as_ref().map(|(f, _)| tools::CallStream::new(*f)),
            finished: false,
        })
        .collect();
    let mut state = ChunkStream {
        kind,
        id,
        created,
        model,
        include_usage,
        logprobs,
        done: choices.is_empty(),
        choices,
        turn: 0,
        usage: UsageBody {
            prompt_tokens: 0,
            completion_tokens: 0,
            total_tokens: 0,
        },
        pending: VecDeque::new(),
        tools,
    };
    if kind == Kind::Chat {
        for i in 0..state.choices.len() {
            let first = state.chunk(i, Some(""), true, None);
            state.pending.push_back(first);
        }
    }
    let stream = futures_util::stream::unfold(state, |mut s| async move {
        s.next_event().await.map(|e| (Ok::<_, Infallible>(e), s))
    });
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}
