//! `POST /tokenize` and `POST /detokenize`, as llama-server answers them: the served model's own
//! tokenizer, so a client can count tokens or turn ids back into text without loading it.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::app::Shared;
use super::body::read_json;
use super::error::ApiError;

fn yes() -> bool {
    true
}

/// `POST /tokenize`.
#[derive(Debug, Deserialize)]
struct TokenizeRequest {
    /// The text.
    content: String,
    /// Add BOS/EOS where the model asks for them (default false, as llama-server).
    #[serde(default)]
    add_special: bool,
    /// Turn the text of control tokens into those tokens (default true, as llama-server).
    #[serde(default = "yes")]
    parse_special: bool,
    /// Each id with its piece: `{"id", "piece"}`, the piece a string, or its bytes where they
    /// are not UTF-8 on their own (as llama-server answers).
    #[serde(default)]
    with_pieces: bool,
}

/// `POST /detokenize`.
#[derive(Debug, Deserialize)]
struct DetokenizeRequest {
    /// The ids.
    tokens: Vec<i64>,
}

/// `POST /tokenize`: `{"content": "...", "add_special": false}` → `{"tokens": [...]}`.
pub async fn tokenize(State(state): State<Shared>, req: Request) -> Response {
    let result = async {
        let body: TokenizeRequest = read_json(
            req.into_body(),
            state.limits.max_body,
            state.limits.body_timeout,
        )
        .await?;
        let engine = state.engine.clone();
        let ids = tokio::task::spawn_blocking(move || {
            engine
                .tokenizer()
                .encode(&body.content, body.add_special, body.parse_special)
        })
        .await
        .map_err(|e| ApiError::internal(format!("tokenizer task: {e}")))?
        .map_err(|e| ApiError::invalid(Some("content"), format!("tokenizing: {e}")))?;
        if !body.with_pieces {
            return Ok::<_, ApiError>(serde_json::json!({ "tokens": ids }));
        }
        let tokenizer = state.engine.tokenizer();
        let pieces: Vec<serde_json::Value> = ids
            .iter()
            .map(|&id| {
                let bytes = tokenizer.token_to_bytes_special(id);
                let piece = match String::from_utf8(bytes) {
                    Ok(text) => serde_json::json!(text),
                    Err(e) => serde_json::json!(e.into_bytes()),
                };
                serde_json::json!({ "id": id, "piece": piece })
            })
            .collect();
        Ok(serde_json::json!({ "tokens": pieces }))
    }
    .await;
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `POST /detokenize`: `{"tokens": [...]}` → `{"content": "..."}` (control tokens left out, as
/// in generated text). An id outside the vocabulary is a 400 naming it.
pub async fn detokenize(State(state): State<Shared>, req: Request) -> Response {
    let result = async {
        let body: DetokenizeRequest = read_json(
            req.into_body(),
            state.limits.max_body,
            state.limits.body_timeout,
        )
        .await?;
        let vocab = state.engine.tokenizer().vocab_size();
        let mut ids = Vec::with_capacity(body.tokens.len());
        for (i, &t) in body.tokens.iter().enumerate() {
            match u32::try_from(t) {
                Ok(id) if (id as usize) < vocab => ids.push(id),
                _ => {
                    return Err(ApiError::invalid(
                        Some("tokens"),
                        format!("tokens[{i}] = {t} is outside the vocabulary of {vocab} tokens"),
                    ));
                }
            }
        }
        Ok(serde_json::json!({ "content": state.engine.tokenizer().decode(&ids) }))
    }
    .await;
    match result {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}
