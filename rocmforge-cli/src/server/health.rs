//! `GET /health`: 200 `{"status":"ok"}` while the engine runs; once the engine has marked
//! itself unhealthy (its worker stopped: shut down, or a fault it cannot recover from), 503
//! with `{"status":"unhealthy","error":{...}}` in OpenAI's error shape, so load balancers and
//! clients both get a reason.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::app::Shared;
use super::error::ApiError;

/// The answer of `/health` for the engine's current state.
pub async fn health(State(state): State<Shared>) -> Response {
    if state.engine.is_healthy() {
        return axum::Json(serde_json::json!({"status": "ok"})).into_response();
    }
    let error = ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        ..ApiError::internal(
            "the inference engine is not running (stopped, or failed and marked itself unhealthy); \
             requests cannot be served",
        )
    }
    .with_code("engine_unhealthy");
    let mut body = error.body();
    body["status"] = serde_json::json!("unhealthy");
    (StatusCode::SERVICE_UNAVAILABLE, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use std::path::PathBuf;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use rocmforge_gguf::GgufFile;
    use rocmforge_model::chat_template::ChatTemplate;
    use rocmforge_model::engine::{Engine, EngineConfig, EngineDevice};
    use tower::ServiceExt;

    use super::super::app::{AppState, HttpLimits, router};

    async fn call(app: &axum::Router, req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let resp = app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap())
    }

    fn chat() -> Request<Body> {
        let body =
            r#"{"messages":[{"role":"user","content":"Hi"}],"max_tokens":2,"temperature":0}"#;
        Request::post("/v1/chat/completions")
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    }

    /// Once the engine stops, `/health` turns 503 with a JSON reason and generation requests
    /// get 503 too (with Retry-After), instead of hanging or a 500.
    #[tokio::test]
    async fn health_reports_a_stopped_engine_as_unhealthy() {
        let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
        assert!(
            path.exists(),
            "{} is missing: run `cargo xtask models`",
            path.display()
        );
        let file = GgufFile::open(&path).unwrap();
        let config = EngineConfig {
            ctx: 128,
            ..EngineConfig::default()
        };
        let engine = Arc::new(Engine::start(file, config, EngineDevice::Cpu).unwrap());
        let state = Arc::new(AppState {
            template: ChatTemplate::for_tokenizer(engine.tokenizer()).unwrap(),
            engine: Arc::clone(&engine),
            model_id: "test".to_string(),
            api_key: None,
            limits: HttpLimits {
                max_body: 1 << 16,
                body_timeout: Duration::from_secs(5),
            },
            created: 0,
            http_ok: AtomicU64::new(0),
            http_client_errors: AtomicU64::new(0),
            http_server_errors: AtomicU64::new(0),
            next_id: AtomicU64::new(0),
            grammars: Default::default(),
        });
        let app = router(state);
        let health = || Request::get("/health").body(Body::empty()).unwrap();

        let (status, body) = call(&app, health()).await;
        assert_eq!(
            (status, body["status"].as_str()),
            (StatusCode::OK, Some("ok"))
        );
        let (status, body) = call(&app, chat()).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        let stopping = Arc::clone(&engine);
        tokio::task::spawn_blocking(move || stopping.shutdown())
            .await
            .unwrap();
        let (status, body) = call(&app, health()).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body["status"], "unhealthy");
        assert_eq!(body["error"]["code"], "engine_unhealthy");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("engine")
        );
        let resp = app.clone().oneshot(chat()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().contains_key("retry-after"));
    }
}
