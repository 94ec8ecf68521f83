//! `POST /v1/embeddings`, as OpenAI answers it: one unit-length vector per input (a string, a
//! list of strings, a list of token ids or a list of such lists), pooled from the model's
//! output-normed hidden states (the model's `pooling_type`, else mean), as floats or as
//! base64 of little-endian f32 (what the `openai` client asks for by default).

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use rocmforge_model::engine::SubmitError;
use serde::Deserialize;
use serde_json::{Value, json};

use super::app::Shared;
use super::body::read_json;
use super::error::ApiError;

/// Most inputs one request may carry (OpenAI's limit).
const MAX_INPUTS: usize = 2048;

/// The request body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbeddingsRequest {
    input: Value,
    #[serde(default)]
    model: Option<String>,
    #[serde(default)]
    encoding_format: Option<String>,
    #[serde(default)]
    dimensions: Option<u64>,
    #[serde(default)]
    user: Option<String>,
}

/// One input: text to tokenize or ids as given.
#[derive(Debug)]
enum Input {
    Text(String),
    Ids(Vec<u32>),
}

/// Reads `input` in any of OpenAI's four shapes; ids must be inside the vocabulary.
fn inputs(input: &Value, vocab: usize) -> Result<Vec<Input>, ApiError> {
    let bad = |message: String| ApiError::invalid(Some("input"), message);
    let ids = |items: &[Value], at: &str| -> Result<Vec<u32>, ApiError> {
        items
            .iter()
            .enumerate()
            .map(|(i, v)| match v.as_u64().and_then(|t| u32::try_from(t).ok()) {
                Some(id) if (id as usize) < vocab => Ok(id),
                _ => Err(bad(format!(
                    "input{at}[{i}] = {v} is not a token id of this model (vocabulary of {vocab})"
                ))),
            })
            .collect()
    };
    let list = match input {
        Value::String(s) => return Ok(vec![Input::Text(s.clone())]),
        Value::Array(items) => items,
        other => {
            return Err(bad(format!(
                "input must be a string, a list of strings, a list of token ids or a list of lists of token ids, got {other}"
            )));
        }
    };
    if list.is_empty() {
        return Err(bad("input is an empty list".to_string()));
    }
    if list.len() > MAX_INPUTS {
        return Err(bad(format!(
            "input has {} items; at most {MAX_INPUTS} are accepted",
            list.len()
        )));
    }
    if list.iter().all(Value::is_number) {
        return Ok(vec![Input::Ids(ids(list, "")?)]);
    }
    list.iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(Input::Text(s.clone())),
            Value::Array(inner) => Ok(Input::Ids(ids(inner, &format!("[{i}]"))?)),
            other => Err(bad(format!(
                "input[{i}] must be a string or a list of token ids, got {other}"
            ))),
        })
        .collect()
}

/// Base64 of the vector's little-endian f32 bytes.
fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// `POST /v1/embeddings`.
pub async fn embeddings(State(state): State<Shared>, req: Request) -> Response {
    match embed(state, req).await {
        Ok(v) => axum::Json(v).into_response(),
        Err(e) => e.into_response(),
    }
}

async fn embed(state: Shared, req: Request) -> Result<Value, ApiError> {
    let body: EmbeddingsRequest = read_json(
        req.into_body(),
        state.limits.max_body,
        state.limits.body_timeout,
    )
    .await?;
    if let Some(model) = body.model.as_deref().filter(|m| *m != state.model_id) {
        return Err(ApiError::unknown_model(model));
    }
    let _ = &body.user;
    let base64 = match body.encoding_format.as_deref() {
        None | Some("float") => false,
        Some("base64") => true,
        Some(other) => {
            return Err(ApiError::invalid(
                Some("encoding_format"),
                format!("encoding_format must be \"float\" or \"base64\", got \"{other}\""),
            ));
        }
    };
    let dim = state.engine.model_config().n_embd;
    if let Some(d) = body.dimensions.filter(|&d| d as usize != dim) {
        return Err(ApiError::invalid(
            Some("dimensions"),
            format!("this model's embeddings have {dim} dimensions and cannot be shortened to {d}"),
        ));
    }
    let engine = state.engine.clone();
    let vocab = engine.tokenizer().vocab_size();
    let inputs = inputs(&body.input, vocab)?;
    let vectors = tokio::task::spawn_blocking(move || {
        let mut out = Vec::with_capacity(inputs.len());
        let mut prompt_tokens = 0usize;
        for (i, input) in inputs.into_iter().enumerate() {
            let tokens = match input {
                Input::Ids(ids) => ids,
                Input::Text(text) => engine.tokenizer().encode(&text, true, true).map_err(|e| {
                    ApiError::invalid(Some("input"), format!("tokenizing input[{i}]: {e}"))
                })?,
            };
            prompt_tokens += tokens.len();
            let reply = engine.embed(tokens).map_err(|e| match e {
                SubmitError::Invalid(m) => {
                    ApiError::invalid(Some("input"), format!("input[{i}]: {m}"))
                }
                SubmitError::QueueFull(_) | SubmitError::ShutDown => {
                    ApiError::overloaded(e.to_string())
                }
            })?;
            let vector = reply
                .recv()
                .map_err(|_| ApiError::internal("the engine stopped while embedding"))?
                .map_err(|e| ApiError::internal(format!("embedding input[{i}]: {e}")))?;
            out.push(vector);
        }
        Ok::<_, ApiError>((out, prompt_tokens))
    })
    .await
    .map_err(|e| ApiError::internal(format!("embedding task: {e}")))??;
    let (vectors, prompt_tokens) = vectors;
    let data: Vec<Value> = vectors
        .iter()
        .enumerate()
        .map(|(index, v)| {
            let embedding = if base64 {
                Value::String(base64_f32(v))
            } else {
                json!(v)
            };
            json!({ "object": "embedding", "index": index, "embedding": embedding })
        })
        .collect();
    Ok(json!({
        "object": "list",
        "data": data,
        "model": state.model_id,
        "usage": { "prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens },
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shapes(v: Value) -> Result<Vec<String>, ApiError> {
        inputs(&v, 100).map(|list| {
            list.iter()
                .map(|i| match i {
                    Input::Text(t) => format!("text:{t}"),
                    Input::Ids(ids) => format!("ids:{ids:?}"),
                })
                .collect()
        })
    }

    #[test]
    fn reads_openai_input_shapes() {
        assert_eq!(shapes(json!("hi")).ok(), Some(vec!["text:hi".to_string()]));
        assert_eq!(
            shapes(json!(["a", "b"])).ok(),
            Some(vec!["text:a".to_string(), "text:b".to_string()])
        );
        assert_eq!(
            shapes(json!([1, 2, 3])).ok(),
            Some(vec!["ids:[1, 2, 3]".to_string()])
        );
        assert_eq!(
            shapes(json!([[1], [2, 3]])).ok(),
            Some(vec!["ids:[1]".to_string(), "ids:[2, 3]".to_string()])
        );
    }

    #[test]
    fn refuses_bad_inputs_naming_the_field() {
        for bad in [
            json!([]),
            json!(5),
            json!([1, 100]),
            json!([[1], [-1]]),
            json!([{}]),
        ] {
            let e = shapes(bad.clone()).err();
            assert_eq!(
                e.as_ref().and_then(|e| e.param.as_deref()),
                Some("input"),
                "{bad}"
            );
        }
    }

    #[test]
    fn base64_is_little_endian_f32() {
        // 1.0f32 = 00 00 80 3f; -2.0f32 = 00 00 00 c0.
        assert_eq!(base64_f32(&[1.0, -2.0]), "AACAPwAAAMA=");
    }
}
