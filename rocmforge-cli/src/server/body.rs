//! Reading a JSON request body: size limit, read timeout, UTF-8 and JSON errors as 4xx.

use std::time::Duration;

use axum::body::Body;
use axum::http::StatusCode;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;

use super::error::ApiError;

/// Bytes of an oversized body read and dropped before answering 413, so that the client has
/// finished sending and sees the answer rather than a reset connection.
const DISCARD_LIMIT: usize = 64 << 20;

/// Reads `body` (at most `limit` bytes kept) within `timeout`.
async fn read_bytes(body: Body, limit: usize, timeout: Duration) -> Result<Vec<u8>, ApiError> {
    let mut stream = body.into_data_stream();
    let mut kept = Vec::new();
    let mut total = 0usize;
    let read = async {
        while let Some(chunk) = stream.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::invalid(None, format!("reading the request body: {e}")))?;
            total = total.saturating_add(chunk.len());
            if total <= limit {
                kept.extend_from_slice(&chunk);
            } else if total > DISCARD_LIMIT {
                break;
            }
        }
        Ok::<_, ApiError>(())
    };
    match tokio::time::timeout(timeout, read).await {
        Err(_) => Err(ApiError {
            status: StatusCode::REQUEST_TIMEOUT,
            ..ApiError::invalid(
                None,
                format!(
                    "the request body was not received within {} s",
                    timeout.as_secs()
                ),
            )
        }),
        Ok(Err(e)) => Err(e),
        Ok(Ok(())) if total > limit => Err(ApiError::too_large(limit)),
        Ok(Ok(())) => Ok(kept),
    }
}

/// Reads at most `limit` bytes of `body` within `timeout` and parses them as `T`.
pub async fn read_json<T: DeserializeOwned>(
    body: Body,
    limit: usize,
    timeout: Duration,
) -> Result<T, ApiError> {
    let bytes = read_bytes(body, limit, timeout).await?;
    if bytes.is_empty() {
        return Err(ApiError::invalid(
            None,
            "the request body is empty; send a JSON object",
        ));
    }
    if let Err(e) = std::str::from_utf8(&bytes) {
        return Err(ApiError::invalid(
            None,
            format!(
                "the request body is not valid UTF-8 (at byte {})",
                e.valid_up_to()
            ),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        let what = if e.is_data() {
            "invalid request"
        } else {
            "malformed JSON"
        };
        ApiError::invalid(None, format!("{what}: {e}"))
    })
}
