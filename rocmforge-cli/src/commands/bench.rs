//! `rocmforge bench`: prefill (pp) and decode (tg) tokens per second the way llama-bench
//! reports them — mean ± standard deviation over repetitions after one warm-up — plus the
//! load time, the peak memory, and optionally the aggregate decode rate of N sequences
//! batched together (continuous batching). Runs on the GPU (`--device gpu|gpu:N`, the
//! default when one is usable) or the CPU.
//!
//! `--json` prints one object (a stable contract: `cargo xtask bench` reads it):
//! - `model` (file name), `size_bytes` (file size), `device` (`"cpu"` or `"gpu:N"`),
//!   `depth` (tokens in the KV cache before each measured test, `--depth`),
//!   `load_s` (seconds to open the file and, on a GPU, upload every weight),
//!   `repetitions` (measured runs after one warm-up);
//! - `pp`: `n_prompt`, `tokens_per_s_mean`, `tokens_per_s_sd` (sample sd), `samples` (one per
//!   repetition) — one prefill of `n_prompt` tokens, its logits read back;
//! - `tg`: `n_gen`, `tokens_per_s_mean`, `tokens_per_s_sd`, `samples` — `n_gen` one-token
//!   decode steps of one sequence, each step's logits read back and argmax'd;
//! - `peak_memory_bytes`: the process's peak resident memory (Linux VmHWM), or null;
//! - `peak_device_memory_bytes`: on a GPU, the largest drop of the device's free memory below
//!   its value before loading (weights + KV caches + activations, sampled after each test);
//!   null on the CPU;
//! - `decode_weight_bytes`: bytes of weights one decode step reads (every tensor but the
//!   token embedding, unless it is also the output; the used share of MoE experts),
//!   `tg_weight_gb_per_s`: those bytes times the tg rate, in GB/s (1e9 bytes);
//! - `host_read_gb_per_s`: on the CPU, the host memory read bandwidth measured on the
//!   bench's threads (best of three passes over 512 MiB), for comparison; null on a GPU;
//! - `batched_tg` (only with `--concurrency N > 1`): `sequences`, `n_gen`,
//!   `tokens_per_s_mean`, `tokens_per_s_sd`, `samples` — aggregate decode rate of N sequences
//!   stepping together, each step greedy as a server's greedy requests: every row's logits
//!   computed, each argmax chosen where they are (on a GPU only the ids are read back).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rocmforge_gguf::GgufFile;
use rocmforge_model::batch::{BatchModel, Segment};
use rocmforge_model::engine::EngineDevice;
use rocmforge_model::{LogitsFor, SequenceModel};

use super::bench_bandwidth::{decode_weight_bytes, host_read_bandwidth};
use super::device::{device_name, load_model, select_device};

/// Arguments of `rocmforge bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Prompt tokens of the prefill test.
    #[arg(short = 'p', long = "n-prompt", default_value_t = 512)]
    pub n_prompt: usize,
    /// Tokens of the decode test.
    #[arg(short = 'n', long = "n-gen", default_value_t = 128)]
    pub n_gen: usize,
    /// Repetitions (after one warm-up run).
    #[arg(short = 'r', long = "repetitions", default_value_t = 3)]
    pub reps: usize,
    /// Tokens already in the KV cache before each measured prefill and decode (llama-bench's
    /// -d): filled unmeasured, in chunks of 512.
    #[arg(short = 'd', long, default_value_t = 0)]
    pub depth: usize,
    /// Also measure the aggregate decode rate of this many sequences batched together.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// cpu, gpu or gpu:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// No progress bar while the model loads.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Mean and sample standard deviation.
fn mean_sd(xs: &[f64]) -> (f64, f64) {
    let n = xs.len() as f64;
    if xs.is_empty() {
        return (0.0, 0.0);
    }
    let mean = xs.iter().sum::<f64>() / n;
    let var = if xs.len() > 1 {
        xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)
    } else {
        0.0
    };
    (mean, var.sqrt())
}

/// Peak resident memory of this process in bytes (Linux `VmHWM`), if known.
fn peak_rss() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Deterministic token ids below `vocab`.
fn tokens(n: usize, vocab: usize, salt: usize) -> Vec<u32> {
    (0..n)
        .map(|i| ((i * 7919 + salt * 104_729 + 13) % vocab.max(1)) as u32)
        .collect()
}

/// A model `bench` can measure: one sequence's forward and the batched step.
trait Benched: BatchModel + SequenceModel<Cache = <Self as BatchModel>::Cache> {}
impl<M: BatchModel + SequenceModel<Cache = <M as BatchModel>::Cache>> Benched for M {}

/// Fills `cache` with `depth` tokens (unmeasured), in chunks of 512.
fn fill_depth<M: Benched>(
    model: &M,
    cache: &mut <M as BatchModel>::Cache,
    depth: usize,
    salt: usize,
) -> anyhow::Result<()> {
    let ids = tokens(depth, model.config().vocab_size, salt + 7);
    for chunk in ids.chunks(512) {
        model.run_tokens(cache, chunk, LogitsFor::Last)?;
    }
    Ok(())
}

fn prefill_rate<M: Benched>(model: &M, n: usize, depth: usize, salt: usize) -> anyhow::Result<f64> {
    let mut cache = BatchModel::new_cache(model, depth + n + 1)?;
    fill_depth(model, &mut cache, depth, salt)?;
    let ids = tokens(n, model.config().vocab_size, salt);
    let t0 = Instant::now();
    model.run_tokens(&mut cache, &ids, LogitsFor::Last)?;
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

/// Aggregate decode tokens/s of `batch` sequences each generating `n` tokens after a 1-token prompt.
fn decode_rate<M: Benched>(
    model: &M,
    n: usize,
    batch: usize,
    depth: usize,
    salt: usize,
) -> anyhow::Result<f64> {
    let vocab = model.config().vocab_size;
    let mut caches = (0..batch)
        .map(|_| BatchModel::new_cache(model, depth + n + 1))
        .collect::<Result<Vec<_>, _>>()?;
    for (b, cache) in caches.iter_mut().enumerate() {
        fill_depth(model, cache, depth, salt + b)?;
    }
    let mut next: Vec<[u32; 1]> = (0..batch)
        .map(|b| [tokens(1, vocab, salt + b)[0]])
        .collect();
    let t0 = Instant::now();
    for _ in 0..n {
        if batch == 1 {
            // One sequence: the single-sequence forward (the decode path `generate` takes).
            let logits = model.run_tokens(&mut caches[0], &next[0], LogitsFor::Last)?;
            next[0][0] = rocmforge_model::sampler::argmax(&logits) as u32;
            continue;
        }
        let mut segs: Vec<Segment<'_, _>> = caches
            .iter_mut()
            .zip(&next)
            .map(|(cache, tok)| Segment {
                cache,
                tokens: tok,
                want_logits: true,
            })
            .collect();
        // Greedy, as a server's greedy requests: the logits of every row are computed and the
        // model picks each argmax where they are (on a GPU only the ids come back).
        let ids = model.forward_segments_greedy(&mut segs)?;
        for (tok, id) in next.iter_mut().zip(ids) {
            tok[0] = id.context("missing token")?;
        }
    }
    Ok((n * batch) as f64 / t0.elapsed().as_secs_f64())
}

/// The rates of one bench run.
#[derive(Default)]
struct Rates {
    pp: Vec<f64>,
    tg: Vec<f64>,
    batched: Vec<f64>,
}

/// Warm-up, then `reps` measured repetitions; `sample` runs after each test.
fn measure<M: Benched>(
    model: &M,
    args: &BenchArgs,
    sample: &mut dyn FnMut(),
) -> anyhow::Result<Rates> {
    let ctx = model.config().context_length;
    anyhow::ensure!(
        args.depth + args.n_prompt < ctx && args.depth + args.n_gen < ctx,
        "--depth + -p and --depth + -n must be below the model's context ({ctx})"
    );
    // Warm-up at full prompt length: buffers sized by the token count are allocated here,
    // not in the first measured repetition (on an H100 that repetition ran at half speed).
    prefill_rate(model, args.n_prompt, 0, 0)?;
    decode_rate(model, args.n_gen.min(8), 1, 0, 0)?;
    let mut r = Rates::default();
    for rep in 0..args.reps {
        r.pp.push(prefill_rate(model, args.n_prompt, args.depth, rep + 1)?);
        sample();
        r.tg.push(decode_rate(model, args.n_gen, 1, args.depth, rep + 1)?);
        sample();
        if args.concurrency > 1 {
            r.batched.push(decode_rate(
                model,
                args.n_gen,
                args.concurrency,
                args.depth,
                rep + 1,
            )?);
            sample();
        }
    }
    Ok(r)
}

/// Runs `rocmforge bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let device = select_device(args.device.as_deref())?;
    anyhow::ensure!(
        args.n_prompt > 0 && args.n_gen > 0 && args.reps > 0 && args.concurrency > 0,
        "-p, -n, -r and --concurrency must be positive"
    );
    let t0 = Instant::now();
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("opening model {}", args.model.display()))?;
    let file = std::sync::Arc::new(file);
    let free_before = match device {
        EngineDevice::Cpu => None,
        EngineDevice::Gpu(_) => {
            let backend = device.backend()?;
            let d = backend.device().context("a GPU backend without a device")?;
            Some(d.mem_info().context("reading the device memory")?.0)
        }
    };
    let t_load = if free_before.is_some() {
        Instant::now()
    } else {
        t0
    };
    let model = load_model(
        &args.model,
        std::sync::Arc::clone(&file),
        device,
        args.quiet,
    )?;
    let load_s = t_load.elapsed().as_secs_f64();
    let mut lowest = model.memory_info()?.map(|(free, _)| free);
    let rates = measure(&model, args, &mut || {
        if let Ok(Some((free, _))) = model.memory_info() {
            lowest = lowest.map(|l| l.min(free));
        }
    })?;
    let weight_bytes = decode_weight_bytes(&file, model.config());
    let host_bw = free_before.is_none().then(host_read_bandwidth);
    let peak_device = free_before
        .zip(lowest)
        .map(|(before, low)| before.saturating_sub(low) as u64);
    let (pp, tg, batched) = (rates.pp, rates.tg, rates.batched);
    let (pp_m, pp_sd) = mean_sd(&pp);
    let (tg_m, tg_sd) = mean_sd(&tg);
    let (b_m, b_sd) = mean_sd(&batched);
    let peak = peak_rss();
    let name = args
        .model
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let size_mib = file.file_size() as f64 / 1048576.0;
    let dev = device_name(device);
    if args.json {
        let mut v = serde_json::json!({
            "model": name, "size_bytes": file.file_size(), "device": dev,
            "depth": args.depth, "load_s": load_s, "repetitions": args.reps,
            "pp": {"n_prompt": args.n_prompt, "tokens_per_s_mean": pp_m, "tokens_per_s_sd": pp_sd, "samples": pp},
            "tg": {"n_gen": args.n_gen, "tokens_per_s_mean": tg_m, "tokens_per_s_sd": tg_sd, "samples": tg},
            "peak_memory_bytes": peak,
            "peak_device_memory_bytes": peak_device,
            "decode_weight_bytes": weight_bytes,
            "tg_weight_gb_per_s": weight_bytes as f64 * tg_m / 1e9,
            "host_read_gb_per_s": host_bw.map(|b| b / 1e9),
        });
        if args.concurrency > 1 {
            v["batched_tg"] = serde_json::json!({"sequences": args.concurrency, "n_gen": args.n_gen,
                "tokens_per_s_mean": b_m, "tokens_per_s_sd": b_sd, "samples": batched});
        }
        println!("{v}");
        return Ok(());
    }
    let at = if args.depth > 0 {
        format!(" @ d{}", args.depth)
    } else {
        String::new()
    };
    println!("| model | size | device | test | t/s |");
    println!("| --- | ---: | --- | --- | ---: |");
    println!(
        "| {name} | {size_mib:.1} MiB | {dev} | pp{}{at} | {pp_m:.2} ± {pp_sd:.2} |",
        args.n_prompt
    );
    println!(
        "| {name} | {size_mib:.1} MiB | {dev} | tg{}{at} | {tg_m:.2} ± {tg_sd:.2} |",
        args.n_gen
    );
    if args.concurrency > 1 {
        println!(
            "| {name} | {size_mib:.1} MiB | {dev} | tg{} x{} (batched, aggregate) | {b_m:.2} ± {b_sd:.2} |",
            args.n_gen, args.concurrency
        );
    }
    println!();
    println!(
        "decode weights: {:.1} MiB per token, {:.1} GB/s at tg{}",
        weight_bytes as f64 / 1048576.0,
        weight_bytes as f64 * tg_m / 1e9,
        args.n_gen
    );
    if let Some(b) = host_bw {
        println!(
            "host memory read bandwidth on these threads: {:.1} GB/s",
            b / 1e9
        );
    }
    println!("load time: {load_s:.3} s");
    match peak {
        Some(b) => println!("peak memory (resident): {:.1} MiB", b as f64 / 1048576.0),
        None => println!("peak memory: unknown on this platform"),
    }
    if let Some(b) = peak_device {
        println!("peak device memory: {:.1} MiB", b as f64 / 1048576.0);
    }
    Ok(())
}
