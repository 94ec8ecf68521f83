//! The router, the shared state, API-key checking and the 404 fallback.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use rocmforge_model::chat_template::ChatTemplate;
use rocmforge_model::engine::Engine;

use super::error::ApiError;
use super::{embeddings, generation, health, metrics, tokens};

/// Limits of the HTTP layer.
#[derive(Debug, Clone, Copy)]
pub struct HttpLimits {
    /// Largest accepted request body in bytes.
    pub max_body: usize,
    /// Time allowed to receive a request body.
    pub body_timeout: Duration,
}

/// Everything a handler needs.
pub struct AppState {
    /// The engine running the model.
    pub engine: Arc<Engine>,
    /// The chat template of the model.
    pub template: ChatTemplate,
    /// The id clients name the model by.
    pub model_id: String,
    /// The key clients must send, if any.
    pub api_key: Option<String>,
    /// HTTP limits.
    pub limits: HttpLimits,
    /// Unix time the server started.
    pub created: u64,
    /// HTTP responses by class.
    pub http_ok: AtomicU64,
    /// 4xx responses.
    pub http_client_errors: AtomicU64,
    /// 5xx responses.
    pub http_server_errors: AtomicU64,
    /// Counter for response ids.
    pub next_id: AtomicU64,
    /// The grammar compiler for structured output and tool calls (or why it could not be
    /// built): started while the model loads ([`crate::server::structured::prepare`]), else
    /// built on first use.
    pub grammars: crate::server::structured::GrammarSlot,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("model_id", &self.model_id)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Shared state.
pub type Shared = Arc<AppState>;

/// The routes of the server.
pub fn router(state: Shared) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(generation::chat))
        .route("/v1/completions", post(generation::completions))
        .route("/v1/embeddings", post(embeddings::embeddings))
        .route("/v1/models", get(models))
        .route("/tokenize", post(tokens::tokenize))
        .route("/detokenize", post(tokens::detokenize))
        .route("/health", get(health::health))
        .route("/metrics", get(metrics::prometheus))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), guard))
        .with_state(state)
}

/// Checks the API key (except for `/health`) and counts responses by status class.
async fn guard(State(state): State<Shared>, req: Request, next: Next) -> Response {
    let open = req.uri().path() == "/health";
    let authorized = open
        || state.api_key.as_deref().is_none_or(|key| {
            req.headers()
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .is_some_and(|sent| constant_time_eq(sent.trim().as_bytes(), key.as_bytes()))
        });
    let resp = if authorized {
        next.run(req).await
    } else {
        ApiError::unauthorized().into_response()
    };
    let counter = match resp.status().as_u16() {
        500.. => &state.http_server_errors,
        400..500 => &state.http_client_errors,
        _ => &state.http_ok,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    resp
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn not_found(req: Request) -> ApiError {
    ApiError::not_found(req.uri().path())
}

async fn method_not_allowed(req: Request) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        ..ApiError::invalid(
            None,
            format!(
                "method {} is not allowed on {}",
                req.method(),
                req.uri().path()
            ),
        )
    }
}

async fn models(State(state): State<Shared>) -> impl IntoResponse {
    axum::Json(serde_json::json!({
        "object": "list",
        "data": [{
            "id": state.model_id,
            "object": "model",
            "created": state.created,
            "owned_by": "rocmforge",
        }]
    }))
}
