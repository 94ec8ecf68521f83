//! The OpenAI-compatible HTTP server behind `rocmforge serve`: axum routes over a hyper
//! HTTP/1 accept loop with header-read timeouts and graceful shutdown on SIGINT/SIGTERM.

pub mod app;
pub mod body;
pub mod embeddings;
pub mod error;
pub mod generation;
pub mod health;
pub mod logit_bias;
pub mod logprobs;
pub mod metrics;
pub mod params;
pub mod sink;
pub mod stream;
pub mod structured;
pub mod tokens;
pub mod tools;
pub mod types;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rocmforge_model::engine::Engine;
use tokio::net::TcpListener;

use app::Shared;

/// Timeouts of the connection layer.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Time allowed for a request's headers to arrive.
    pub header_timeout: Duration,
    /// Time given to open streams to finish after a shutdown signal.
    pub drain_timeout: Duration,
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

/// Serves `state` on `listener` until SIGINT/SIGTERM, then stops accepting, lets open
/// requests finish for up to `drain_timeout`, cancels what is left and returns.
pub async fn serve(listener: TcpListener, state: Shared, limits: ConnLimits) -> anyhow::Result<()> {
    let engine: Arc<Engine> = state.engine.clone();
    let router = app::router(state);
    let graceful = GracefulShutdown::new();
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true);
    let signal = shutdown_signal();
    tokio::pin!(signal);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer): (_, SocketAddr) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let service = TowerToHyperService::new(router.clone());
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = conn.await {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                });
            }
            () = &mut signal => break,
        }
    }
    drop(listener);
    eprintln!(
        "shutting down: finishing open requests (up to {} s)",
        limits.drain_timeout.as_secs()
    );
    let engine_for_drain = engine.clone();
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(limits.drain_timeout) => {
            eprintln!("shutting down: cancelling the requests still open");
        }
    }
    tokio::task::spawn_blocking(move || engine_for_drain.shutdown())
        .await
        .context("stopping the engine")?;
    Ok(())
}
