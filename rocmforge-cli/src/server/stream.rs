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
use super::tools::{self, AnswerDelta, ToolFormat};
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
    /// The answer read for reasoning and calls as it comes (tools offered, or a harmony
    /// template).
    answer: Option<tools::AnswerStream>,
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
    /// How answers are read: content, reasoning and each call sent as their parts are
    /// generated (a call: a delta with the id, type and name, then the arguments as written);
    /// what the parser finds at the end that was not sent goes then.
    answer: Option<AnswerParsing>,
}

/// How a chat answer is read, when it is: tools were offered, or the template is harmony.
#[derive(Debug, Clone)]
pub struct AnswerParsing {
    /// The model family's format.
    pub format: ToolFormat,
    /// Tools were offered (calls are read; harmony drops calls otherwise).
    pub calls: bool,
    /// The prefix of call ids: choice `i`'s calls are `<prefix>_<i>_<k>`.
    pub id_prefix: String,
}

impl ChunkStream {
    fn chunk(
        &mut self,
        index: usize,
        text: Option<&str>,
        role: bool,
        finish: Option<&str>,
    ) -> Event {
        self.chunk_with(index, "content", text, role, finish)
    }

    /// A chunk whose delta carries `text` under `field` (`content` or `reasoning_content`).
    fn chunk_with(
        &mut self,
        index: usize,
        field: &str,
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
                    delta.insert(field.to_string(), json!(t));
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

    /// The chunk of one delta of choice `index`'s answer.
    fn answer_delta(&mut self, index: usize, delta: AnswerDelta) -> Option<Event> {
        let parsing = self.answer.clone()?;
        let call = match delta {
            AnswerDelta::Content(t) => return Some(self.chunk(index, Some(&t), false, None)),
            AnswerDelta::Reasoning(t) => {
                return Some(self.chunk_with(index, "reasoning_content", Some(&t), false, None));
            }
            AnswerDelta::Call(tools::CallDelta::Head { k, name, id }) => {
                let ids = format!("{}_{index}", parsing.id_prefix);
                let id = tools::call_id(parsing.format, &ids, k, id.as_deref());
                json!({"index": k, "id": id, "type": "function",
                       "function": {"name": name, "arguments": ""}})
            }
            AnswerDelta::Call(tools::CallDelta::Args { k, piece }) => {
                json!({"index": k, "function": {"arguments": piece}})
            }
        };
        Some(self.tool_delta(index, call))
    }

    /// At choice `index`'s end: sends what its answer's reader held back or missed. Returns
    /// whether it called.
    fn release_answer(&mut self, index: usize) -> bool {
        let Some(mut answer) = self.choices.get_mut(index).and_then(|c| c.answer.take()) else {
            return false;
        };
        let (deltas, called) = answer.finish();
        for d in deltas {
            if let Some(e) = self.answer_delta(index, d) {
                self.pending.push_back(e);
            }
        }
        called
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
                Some(EngineEvent::Text(t)) if self.answer.is_some() => {
                    let deltas = match self.choices[i].answer.as_mut() {
                        Some(answer) => answer.push(&t),
                        None => Vec::new(),
                    };
                    for d in deltas {
                        if let Some(e) = self.answer_delta(i, d) {
                            self.pending.push_back(e);
                        }
                    }
                }
                Some(EngineEvent::Text(t)) => return Some(self.chunk(i, Some(&t), false, None)),
                Some(EngineEvent::Logprob(lp)) => self.choices[i].held.push(lp),
                Some(EngineEvent::Finished { reason, usage }) => {
                    let called = self.release_answer(i);
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
    /// Each answer is read in this format as it comes (see [`AnswerParsing`]).
    pub answer: Option<AnswerParsing>,
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
        answer,
    } = options;
    let choices: Vec<Choice> = receivers
        .into_iter()
        .map(|rx| Choice {
            rx,
            held: Vec::new(),
            offset: 0,
            answer: answer
                .as_ref()
                .map(|a| tools::AnswerStream::new(a.format, a.calls)),
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
        answer,
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
