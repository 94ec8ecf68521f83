//! `POST /v1/chat/completions` and `POST /v1/completions`: check, tokenize, queue, answer.

use std::sync::atomic::Ordering;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use rocmforge_model::FinishReason;
use rocmforge_model::chat_template::ChatMessage;
use rocmforge_model::constraint::Constraint;
use rocmforge_model::engine::{EngineEvent, EngineRequest, SubmitError};
use serde_json::{Value, json};

use super::app::Shared;
use super::body::read_json;
use super::error::ApiError;
use super::logprobs;
use super::params::{Checked, ModelLimits, check};
use super::sink;
use super::stream::{AnswerParsing, ChunkOptions, Kind, sse_response};
use super::structured;
use super::tools::{self, ToolFormat};
use super::types::{ChatRequest, CompletionRequest, RequestMessage, UsageBody};

/// OpenAI's name of a finish reason.
pub fn finish_reason_name(r: FinishReason) -> &'static str {
    match r {
        FinishReason::EndOfGeneration | FinishReason::StopString => "stop",
        FinishReason::MaxTokens | FinishReason::ContextFull => "length",
    }
}

fn message_text(i: usize, m: &RequestMessage) -> Result<String, ApiError> {
    let param = format!("messages[{i}].content");
    match &m.content {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(Value::Array(parts)) => {
            let mut text = String::new();
            for p in parts {
                match (
                    p.get("type").and_then(Value::as_str),
                    p.get("text").and_then(Value::as_str),
                ) {
                    (Some("text"), Some(t)) => text.push_str(t),
                    _ => {
                        return Err(ApiError::invalid(
                            Some(&param),
                            "only text content parts ({\"type\":\"text\",\"text\":...}) are supported",
                        ));
                    }
                }
            }
            Ok(text)
        }
        Some(_) => Err(ApiError::invalid(
            Some(&param),
            "content must be a string or a list of text parts",
        )),
    }
}

fn chat_messages(req: &ChatRequest) -> Result<Vec<ChatMessage>, ApiError> {
    if req.messages.is_empty() {
        return Err(ApiError::invalid(
            Some("messages"),
            "messages must not be empty",
        ));
    }
    req.messages
        .iter()
        .enumerate()
        .map(|(i, m)| {
            let role = match m.role.as_str() {
                "system" | "developer" => "system",
                "user" => "user",
                "assistant" => "assistant",
                "tool" => "tool",
                other => {
                    return Err(ApiError::invalid(
                        Some(&format!("messages[{i}].role")),
                        format!(
                            "unknown role '{other}' (expected system, user, assistant or tool)"
                        ),
                    ));
                }
            };
            let mut message = ChatMessage::new(role, message_text(i, m)?);
            message.tool_calls = template_tool_calls(i, m.tool_calls.as_ref())?;
            message.tool_call_id = m.tool_call_id.clone();
            message.name = m.name.clone();
            message.reasoning_content = match &m.reasoning_content {
                None | Some(Value::Null) => None,
                Some(Value::String(r)) => Some(r.clone()),
                Some(_) => {
                    return Err(ApiError::invalid(
                        Some(&format!("messages[{i}].reasoning_content")),
                        "reasoning_content must be a string",
                    ));
                }
            };
            Ok(message)
        })
        .collect()
}

/// An assistant message's `tool_calls` as templates expect them: each call's `arguments`
/// JSON string parsed into an object (Hugging Face's convention; a string that is not JSON
/// stays a string).
fn template_tool_calls(i: usize, calls: Option<&Value>) -> Result<Option<Value>, ApiError> {
    let list = match calls {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::Array(list)) if list.is_empty() => return Ok(None),
        Some(Value::Array(list)) => list,
        Some(_) => {
            return Err(ApiError::invalid(
                Some(&format!("messages[{i}].tool_calls")),
                "tool_calls must be a list",
            ));
        }
    };
    let mut out = list.clone();
    for call in &mut out {
        if let Some(args) = call.pointer_mut("/function/arguments") {
            if let Some(parsed) = args.as_str().and_then(|s| serde_json::from_str(s).ok()) {
                *args = parsed;
            }
        }
    }
    Ok(Some(Value::Array(out)))
}

/// The extra chat-template variables of a request: `chat_template_kwargs`, then
/// `reasoning_effort` (dropped when `none`, as llama-server drops it).
fn template_extra(req: &ChatRequest) -> Result<serde_json::Map<String, Value>, ApiError> {
    let mut extra = match &req.chat_template_kwargs {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(_) => {
            return Err(ApiError::invalid(
                Some("chat_template_kwargs"),
                "chat_template_kwargs must be an object",
            ));
        }
    };
    match &req.reasoning_effort {
        None | Some(Value::Null) => {}
        Some(Value::String(e)) if e == "none" || e.is_empty() => {
            extra.remove("reasoning_effort");
        }
        Some(Value::String(e)) => {
            extra.insert("reasoning_effort".to_string(), json!(e));
        }
        Some(_) => {
            return Err(ApiError::invalid(
                Some("reasoning_effort"),
                "reasoning_effort must be a string (low, medium, high, ...)",
            ));
        }
    }
    Ok(extra)
}

/// What the served model bounds a request by.
fn limits(state: &Shared) -> ModelLimits<'_> {
    ModelLimits {
        id: &state.model_id,
        ctx: state.engine.config().ctx,
        vocab: state.engine.model_config().vocab_size,
    }
}

/// Tokenizes `text` off the async threads and checks it against the context.
async fn tokenize(state: &Shared, text: String, max_tokens: usize) -> Result<Vec<u32>, ApiError> {
    let ctx = state.engine.config().ctx;
    // A token is at least one byte: text far beyond the context cannot fit whatever it holds,
    // and is refused before spending time on it.
    if text.len() > ctx.saturating_mul(64) {
        return Err(context_error(format!(
            "the prompt is {} bytes, far more than a context of {ctx} tokens can hold",
            text.len()
        )));
    }
    let engine = state.engine.clone();
    let ids = tokio::task::spawn_blocking(move || engine.tokenizer().encode(&text, true, true))
        .await
        .map_err(|e| ApiError::internal(format!("tokenizer task: {e}")))?
        .map_err(|e| ApiError::invalid(None, format!("tokenizing the prompt: {e}")))?;
    state
        .engine
        .validate(ids.len(), max_tokens)
        .map_err(|e| context_error(e.to_string()))?;
    Ok(ids)
}

fn context_error(message: String) -> ApiError {
    ApiError::invalid(None, message).with_code("context_length_exceeded")
}

/// One finished completion of a non-streamed answer.
struct Completed {
    text: String,
    token_logprobs: Vec<rocmforge_model::engine::TokenLogprob>,
    reason: FinishReason,
    usage: rocmforge_model::engine::Usage,
}

/// Reads one sequence's events to its end.
async fn collect(
    rx: &mut tokio::sync::mpsc::UnboundedReceiver<EngineEvent>,
) -> Result<Completed, ApiError> {
    let (mut text, mut token_logprobs) = (String::new(), Vec::new());
    while let Some(event) = rx.recv().await {
        match event {
            EngineEvent::Text(piece) => text.push_str(&piece),
            EngineEvent::Logprob(lp) => token_logprobs.push(lp),
            EngineEvent::Finished { reason, usage } => {
                return Ok(Completed {
                    text,
                    token_logprobs,
                    reason,
                    usage,
                });
            }
            EngineEvent::Failed(message) => return Err(ApiError::internal(message)),
        }
    }
    Err(ApiError::internal(
        "the engine stopped before the answer was complete",
    ))
}

/// What shapes the answer besides the sampling fields.
#[derive(Default)]
struct Shaping {
    /// The grammar every sequence's output must match.
    constraint: Option<Constraint>,
    /// The answer is read in this format (tools offered, or a harmony template), and
    /// whether calls are read.
    answer: Option<(ToolFormat, bool)>,
}

/// A chat choice's `message`: the text, or the text, reasoning and tool calls read from it.
fn chat_message(text: String, answer: Option<(ToolFormat, bool)>, call_ids: &str) -> (Value, bool) {
    let Some((format, calls_allowed)) = answer else {
        return (json!({"role": "assistant", "content": text}), false);
    };
    let parsed = tools::read_answer(format, calls_allowed, &text);
    if parsed.calls.is_empty() {
        let mut message = json!({"role": "assistant", "content": parsed.content.unwrap_or(text)});
        if let Some(r) = parsed.reasoning {
            message["reasoning_content"] = json!(r);
        }
        return (message, false);
    }
    let calls: Vec<Value> = parsed
        .calls
        .iter()
        .enumerate()
        .map(|(k, c)| {
            let id = tools::call_id(format, call_ids, k, c.id.as_deref());
            json!({"id": id, "type": "function",
                   "function": {"name": c.name, "arguments": c.arguments}})
        })
        .collect();
    let mut message = json!({"role": "assistant", "content": parsed.content, "tool_calls": calls});
    if let Some(r) = parsed.reasoning {
        message["reasoning_content"] = json!(r);
    }
    (message, true)
}

/// Runs a checked request and answers it (JSON or SSE). `n` completions are `n` sequences of
/// the engine's batch with seeds `seed`, `seed + 1`, ...
async fn answer(
    state: Shared,
    kind: Kind,
    prompt: Vec<u32>,
    checked: Checked,
    shaping: Shaping,
) -> Response {
    if !state.engine.is_healthy() {
        return ApiError::overloaded("the inference engine is not running; see /health")
            .with_code("engine_unhealthy")
            .into_response();
    }
    let mut receivers = Vec::with_capacity(checked.n);
    for i in 0..checked.n.max(1) {
        let (sink, rx) = sink::channel();
        let mut params = checked.params.clone();
        params.sampling.seed = params.sampling.seed.wrapping_add(i as u64);
        let mut request = EngineRequest::new(prompt.clone(), params, sink);
        if let Some(top) = checked.logprobs {
            request = request.with_logprobs(top);
        }
        if let Some(c) = &shaping.constraint {
            request = request.with_constraint(c.clone());
        }
        if let Err(e) = state.engine.submit(request) {
            // Sequences already queued finish unread: their receivers are dropped here.
            return match e {
                SubmitError::QueueFull(_) | SubmitError::ShutDown => {
                    ApiError::overloaded(e.to_string())
                }
                SubmitError::Invalid(m) => context_error(m),
            }
            .into_response();
        }
        receivers.push(rx);
    }
    let serial = state.next_id.fetch_add(1, Ordering::Relaxed);
    let id = format!("{}-{serial}", kind.id_prefix());
    let created = unix_now();
    if checked.stream {
        return sse_response(
            kind,
            id,
            created,
            state.model_id.clone(),
            ChunkOptions {
                include_usage: checked.include_usage,
                logprobs: checked.logprobs.is_some(),
                answer: shaping.answer.map(|(format, calls)| AnswerParsing {
                    format,
                    calls,
                    id_prefix: format!("call_{serial}"),
                }),
            },
            receivers,
        );
    }
    let mut choices = Vec::with_capacity(receivers.len());
    let mut usage = UsageBody {
        prompt_tokens: 0,
        completion_tokens: 0,
        total_tokens: 0,
    };
    for (index, rx) in receivers.iter_mut().enumerate() {
        let done = match collect(rx).await {
            Ok(d) => d,
            Err(e) => return e.into_response(),
        };
        usage.prompt_tokens = done.usage.prompt_tokens;
        usage.completion_tokens += done.usage.completion_tokens;
        let logprobs = match checked.logprobs {
            Some(_) => logprobs::render(kind, &done.token_logprobs, &mut 0),
            None => Value::Null,
        };
        choices.push(match kind {
            Kind::Chat => {
                let ids = format!("call_{serial}_{index}");
                let (message, called) = chat_message(done.text, shaping.answer, &ids);
                let finish = match (called, done.reason) {
                    (true, FinishReason::EndOfGeneration | FinishReason::StopString) => {
                        "tool_calls"
                    }
                    _ => finish_reason_name(done.reason),
                };
                json!({
                    "index": index,
                    "message": message,
                    "logprobs": logprobs,
                    "finish_reason": finish,
                })
            }
            Kind::Completion => json!({
                "index": index,
                "text": done.text,
                "logprobs": logprobs,
                "finish_reason": finish_reason_name(done.reason),
            }),
        });
    }
    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens;
    axum::Json(json!({
        "id": id,
        "object": kind.object(),
        "created": created,
        "model": state.model_id,
        "choices": choices,
        "usage": usage,
    }))
    .into_response()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

async fn read<T: serde::de::DeserializeOwned>(state: &Shared, body: Body) -> Result<T, ApiError> {
    read_json(body, state.limits.max_body, state.limits.body_timeout).await
}

/// `POST /v1/chat/completions`.
pub async fn chat(State(state): State<Shared>, req: Request) -> Response {
    let result = async {
        let req: ChatRequest = read(&state, req.into_body()).await?;
        let checked = check(&req.common, limits(&state))?;
        let offered = tools::requested(req.common.tools.as_ref(), req.common.tool_choice.as_ref())?;
        let asked = structured::requested(&req.common)?;
        if let (Some(_), Some(asked)) = (&offered, &asked) {
            return Err(ApiError::invalid(
                Some(asked.field),
                format!(
                    "{} cannot be combined with tools (use tool_choice \"none\" or drop the tools)",
                    asked.field
                ),
            ));
        }
        let format = ToolFormat::of_template(state.template.source());
        let messages = tools::prompt_messages(
            format,
            chat_messages(&req)?,
            offered.as_ref(),
            &state.template,
        );
        let extra = template_extra(&req)?;
        let text = state
            .template
            .render_with_context(&messages, offered.as_ref().map(|t| &t.raw), true, &extra)
            .map_err(|e| ApiError::invalid(Some("messages"), format!("chat template: {e}")))?;
        let grammar = match &offered {
            Some(t) => tools::constraint_for(format, t, state.engine.tokenizer()).map(|grammar| {
                structured::Requested {
                    grammar,
                    field: "tools",
                }
            }),
            // A harmony model writes structured output in its final channel, after any
            // reasoning (a request's own Lark grammar is kept as sent).
            None => asked.map(|a| {
                let wrapped = (format == ToolFormat::Harmony)
                    .then(|| tools::harmony_structured(&a.grammar, state.engine.tokenizer()))
                    .flatten();
                match wrapped {
                    Some(grammar) => structured::Requested {
                        grammar,
                        field: a.field,
                    },
                    None => a,
                }
            }),
        };
        let prompt = tokenize(&state, text, checked.params.max_tokens).await?;
        let constraint = match grammar {
            Some(g) => Some(structured::compile(&state, g).await?),
            None => None,
        };
        let answer = (offered.is_some() || format == ToolFormat::Harmony)
            .then_some((format, offered.is_some()));
        let shaping = Shaping { constraint, answer };
        Ok::<_, ApiError>((prompt, checked, shaping))
    }
    .await;
    match result {
        Ok((prompt, checked, shaping)) => answer(state, Kind::Chat, prompt, checked, shaping).await,
        Err(e) => e.into_response(),
    }
}

/// `POST /v1/completions`.
pub async fn completions(State(state): State<Shared>, req: Request) -> Response {
    let result = async {
        let req: CompletionRequest = read(&state, req.into_body()).await?;
        let checked = check(&req.common, limits(&state))?;
        for (field, v) in [
            ("tools", &req.common.tools),
            ("tool_choice", &req.common.tool_choice),
        ] {
            if v.as_ref().is_some_and(|v| !v.is_null()) {
                return Err(ApiError::invalid(
                    Some(field),
                    format!("{field} is for /v1/chat/completions; completions take no tools"),
                ));
            }
        }
        let asked = structured::requested(&req.common)?;
        let text = match &req.prompt {
            Value::String(s) => s.clone(),
            Value::Array(v) if v.len() == 1 && v[0].is_string() => {
                v[0].as_str().unwrap_or_default().to_string()
            }
            _ => {
                return Err(ApiError::invalid(
                    Some("prompt"),
                    "prompt must be a string (or a list of exactly one string)",
                ));
            }
        };
        let prompt = tokenize(&state, text, checked.params.max_tokens).await?;
        let constraint = match asked {
            Some(g) => Some(structured::compile(&state, g).await?),
            None => None,
        };
        let shaping = Shaping {
            constraint,
            answer: None,
        };
        Ok::<_, ApiError>((prompt, checked, shaping))
    }
    .await;
    match result {
        Ok((prompt, checked, shaping)) => {
            answer(state, Kind::Completion, prompt, checked, shaping).await
        }
        Err(e) => e.into_response(),
    }
}
