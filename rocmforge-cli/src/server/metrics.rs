//! `GET /metrics`: the engine's counters in the Prometheus text format.

use std::fmt::Write;
use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

use super::app::Shared;

fn metric(out: &mut String, name: &str, kind: &str, help: &str, value: f64) {
    let _ = writeln!(out, "# HELP rocmforge_{name} {help}");
    let _ = writeln!(out, "# TYPE rocmforge_{name} {kind}");
    let _ = writeln!(out, "rocmforge_{name} {value}");
}

/// The Prometheus text of the current counters.
pub fn render(state: &Shared) -> String {
    let m = state.engine.metrics();
    let mut out = String::new();
    let c = |v: u64| v as f64;
    metric(
        &mut out,
        "requests_total",
        "counter",
        "Generation requests accepted.",
        c(m.requests),
    );
    metric(
        &mut out,
        "requests_rejected_total",
        "counter",
        "Requests refused because the queue was full.",
        c(m.rejected),
    );
    metric(
        &mut out,
        "requests_completed_total",
        "counter",
        "Requests that reached a finish reason.",
        c(m.completed),
    );
    metric(
        &mut out,
        "requests_cancelled_total",
        "counter",
        "Requests whose client disconnected (sequence freed).",
        c(m.cancelled),
    );
    metric(
        &mut out,
        "requests_failed_total",
        "counter",
        "Requests ended by an error.",
        c(m.failed),
    );
    metric(
        &mut out,
        "prompt_tokens_total",
        "counter",
        "Prompt tokens prefilled.",
        c(m.prompt_tokens),
    );
    metric(
        &mut out,
        "generated_tokens_total",
        "counter",
        "Tokens generated.",
        c(m.generated_tokens),
    );
    metric(
        &mut out,
        "batch_steps_total",
        "counter",
        "Batched forward steps.",
        c(m.steps),
    );
    metric(
        &mut out,
        "queue_depth",
        "gauge",
        "Requests waiting for a batch slot.",
        c(m.queue_depth),
    );
    metric(
        &mut out,
        "active_sequences",
        "gauge",
        "Sequences in the running batch.",
        c(m.active_sequences),
    );
    metric(
        &mut out,
        "kv_cache_bytes",
        "gauge",
        "KV cache bytes in active sequences' block tables, summed over sequences (a block shared by several counts once per holder; kv_blocks_used counts distinct blocks).",
        c(m.kv_cache_bytes),
    );
    metric(
        &mut out,
        "kv_blocks_used",
        "gauge",
        "KV cache blocks held by sequences and kept prefixes (a shared block counted once).",
        c(m.kv_blocks_used),
    );
    metric(
        &mut out,
        "kv_blocks_free",
        "gauge",
        "KV cache blocks the budget still allows.",
        c(m.kv_blocks_free),
    );
    metric(
        &mut out,
        "kv_pool_bytes",
        "gauge",
        "Bytes of KV block storage allocated (grows with the tokens held, up to the budget; storage no block uses is returned when the engine goes idle).",
        c(m.kv_pool_bytes),
    );
    metric(
        &mut out,
        "prefix_cache_hits_total",
        "counter",
        "Requests that started from a cached prompt prefix.",
        c(m.prefix_hits),
    );
    metric(
        &mut out,
        "prefix_reused_tokens_total",
        "counter",
        "Prompt tokens taken from cached prefixes (KV blocks shared) instead of prefilled.",
        c(m.prefix_reused_tokens),
    );
    metric(
        &mut out,
        "prefix_cache_bytes",
        "gauge",
        "KV cache bytes in the prefix cache's entries, summed over entries (blocks shared with sequences or other entries count again; kv_blocks_used counts distinct blocks).",
        c(m.prefix_cache_bytes),
    );
    metric(
        &mut out,
        "sampling_rows_on_host_total",
        "counter",
        "Sampled tokens whose sampling the host finished (GPU rows: a top-p prefix longer than \
         the kernel's 1,024 sorted candidates, or a logit bias beside a repeat penalty).",
        c(m.sampled_on_host),
    );
    metric(
        &mut out,
        "step_seconds_total",
        "counter",
        "Seconds spent in batched steps.",
        m.step_seconds,
    );
    metric(
        &mut out,
        "step_host_seconds_total",
        "counter",
        "Seconds of the batched steps spent on the engine's host work outside the model's forward \
         and sampling (planning, sampling rows, delivering tokens).",
        m.step_host_seconds,
    );
    metric(
        &mut out,
        "grammar_seconds_total",
        "counter",
        "Seconds grammars spent consuming sampled tokens and computing their next masks \
         (structured output), while the step's forward pass runs.",
        m.grammar_seconds,
    );
    metric(
        &mut out,
        "grammar_tokens_total",
        "counter",
        "Sampled tokens consumed by grammars (each followed by a mask computation).",
        c(m.grammar_tokens),
    );
    metric(
        &mut out,
        "decode_graph_captures_total",
        "counter",
        "Decode-only steps captured as GPU graphs (a batch size's second step, or one after its \
         KV tables moved).",
        c(m.decode_graph_captures),
    );
    metric(
        &mut out,
        "decode_graph_replays_total",
        "counter",
        "Decode-only steps replayed from a captured GPU graph.",
        c(m.decode_graph_replays),
    );
    metric(
        &mut out,
        "decode_steps_eager_total",
        "counter",
        "Decode-only steps on the GPU graph path launched op by op (a batch size's first step, \
         a failed capture).",
        c(m.decode_steps_eager),
    );
    metric(
        &mut out,
        "tokens_per_second",
        "gauge",
        "Smoothed tokens per second of the batched steps.",
        m.tokens_per_s,
    );
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed) as f64;
    metric(
        &mut out,
        "http_responses_ok_total",
        "counter",
        "HTTP responses below 400.",
        load(&state.http_ok),
    );
    metric(
        &mut out,
        "http_responses_4xx_total",
        "counter",
        "HTTP 4xx responses.",
        load(&state.http_client_errors),
    );
    metric(
        &mut out,
        "http_responses_5xx_total",
        "counter",
        "HTTP 5xx responses.",
        load(&state.http_server_errors),
    );
    out
}

/// The handler.
pub async fn prometheus(State(state): State<Shared>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&state),
    )
}
