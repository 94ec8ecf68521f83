//! `rocmforge serve`: the OpenAI-compatible HTTP server (see `crate::server`).

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use anyhow::Context;
use rocmforge_gguf::GgufFile;
use rocmforge_model::chat_template::ChatTemplate;
use rocmforge_model::engine::{Engine, EngineConfig};

use crate::progress::BytesBar;
use crate::server::app::{AppState, HttpLimits};
use crate::server::{ConnLimits, generation::unix_now, serve};

/// Arguments of `rocmforge serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// The GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Address to bind (loopback unless told otherwise).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Port to bind (0 = any free port; the bound address is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// cpu, gpu or gpu:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Most sequences decoded together in one batch.
    #[arg(long, default_value_t = 8)]
    pub max_batch: usize,
    /// Most requests waiting for a batch slot (more get 503).
    #[arg(long, default_value_t = 64)]
    pub max_queue: usize,
    /// Context size per sequence in tokens (capped by the model's).
    #[arg(long, default_value_t = 2048)]
    pub ctx: usize,
    /// Most prompt tokens prefilled per batched step.
    #[arg(long, default_value_t = 64)]
    pub prefill_chunk: usize,
    /// Finished requests' KV caches kept for prompt-prefix reuse (a shared system prompt or
    /// the earlier turns of a conversation share their KV blocks, not prefilled again); 0 = off.
    #[arg(long, default_value_t = 8)]
    pub prefix_cache: usize,
    /// Require `Authorization: Bearer KEY` on every route but /health.
    #[arg(long)]
    pub api_key: Option<String>,
    /// The model id clients send (default: the file name without .gguf).
    #[arg(long)]
    pub model_id: Option<String>,
    /// Largest request body in bytes (more gets 413).
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body: usize,
    /// Seconds allowed for a request's headers, and separately its body, to arrive.
    #[arg(long, default_value_t = 10)]
    pub read_timeout: u64,
    /// Seconds open streams get to finish after SIGINT/SIGTERM.
    #[arg(long, default_value_t = 30)]
    pub drain_timeout: u64,
    /// No progress bar while the model loads.
    #[arg(long, short)]
    pub quiet: bool,
}

fn model_id(args: &ServeArgs) -> String {
    args.model_id.clone().unwrap_or_else(|| {
        args.model
            .file_name()
            .map(|n| n.to_string_lossy().trim_end_matches(".gguf").to_string())
            .unwrap_or_else(|| "model".to_string())
    })
}

/// Runs `rocmforge serve`.
pub fn run(args: &ServeArgs) -> anyhow::Result<()> {
    let device = super::device::select_device(args.device.as_deref())?;
    let started = Instant::now();
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("opening model {}", args.model.display()))?;
    let config = EngineConfig {
        max_batch: args.max_batch,
        max_queue: args.max_queue,
        ctx: args.ctx,
        prefill_chunk: args.prefill_chunk,
        prefix_cache: args.prefix_cache,
    };
    // The grammar compiler indexes the vocabulary while the weights load.
    let grammars = crate::server::structured::prepare(&file);
    let bar = BytesBar::new("uploading weights", args.quiet);
    let progress = {
        let bar = bar.clone_handle();
        Box::new(move |done: u64, total: u64| bar.update(done, total))
    };
    let engine = Engine::start_with_progress(file, config, device, progress)
        .context("starting the engine")?;
    bar.finish();
    let engine = Arc::new(engine);
    let template =
        ChatTemplate::for_tokenizer(engine.tokenizer()).context("the model's chat template")?;
    let state = Arc::new(AppState {
        engine: engine.clone(),
        template,
        model_id: model_id(args),
        api_key: args.api_key.clone(),
        limits: HttpLimits {
            max_body: args.max_body,
            body_timeout: Duration::from_secs(args.read_timeout),
        },
        created: unix_now(),
        http_ok: AtomicU64::new(0),
        http_client_errors: AtomicU64::new(0),
        http_server_errors: AtomicU64::new(0),
        next_id: AtomicU64::new(0),
        grammars,
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((args.host.as_str(), args.port))
            .await
            .with_context(|| format!("binding {}:{}", args.host, args.port))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        eprintln!(
            "model {} loaded in {:.2} s (context {}, batch {}); serving http://{addr}/v1",
            state.model_id,
            started.elapsed().as_secs_f64(),
            engine.config().ctx,
            engine.config().max_batch
        );
        let limits = ConnLimits {
            header_timeout: Duration::from_secs(args.read_timeout),
            drain_timeout: Duration::from_secs(args.drain_timeout),
        };
        serve(listener, state, limits).await
    })?;
    runtime.shutdown_timeout(Duration::from_secs(2));
    eprintln!("server stopped");
    Ok(())
}
