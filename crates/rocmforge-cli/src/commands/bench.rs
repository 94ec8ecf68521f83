//! `rocmforge bench`: prefill (pp) and decode (tg) tokens per second the way llama-bench
//! reports them — mean ± standard deviation over repetitions after one warm-up — plus the
//! load time, the peak memory, and optionally the aggregate decode rate of N sequences
//! batched together (continuous batching).

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rocmforge_gguf::GgufFile;
use rocmforge_model::batch::{Segment, forward_batch};
use rocmforge_model::{CpuModel, KvCache, LogitsFor};

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
    /// Also measure the aggregate decode rate of this many sequences batched together.
    #[arg(long, default_value_t = 1)]
    pub concurrency: usize,
    /// cpu, gpu or gpu:N.
    #[arg(long)]
    pub device: Option<String>,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
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

fn prefill_rate(model: &CpuModel<'_>, n: usize, salt: usize) -> anyhow::Result<f64> {
    let mut cache = model.new_cache(n + 1)?;
    let ids = tokens(n, model.config().vocab_size, salt);
    let t0 = Instant::now();
    model.forward(&mut cache, &ids, 0, LogitsFor::Last)?;
    Ok(n as f64 / t0.elapsed().as_secs_f64())
}

/// Aggregate decode tokens/s of `batch` sequences each generating `n` tokens after a 1-token prompt.
fn decode_rate(model: &CpuModel<'_>, n: usize, batch: usize, salt: usize) -> anyhow::Result<f64> {
    let vocab = model.config().vocab_size;
    let mut caches: Vec<KvCache> = (0..batch)
        .map(|_| model.new_cache(n + 1))
        .collect::<Result<_, _>>()?;
    let mut next: Vec<[u32; 1]> = (0..batch)
        .map(|b| [tokens(1, vocab, salt + b)[0]])
        .collect();
    let t0 = Instant::now();
    for _ in 0..n {
        let mut segs: Vec<Segment<'_>> = caches
            .iter_mut()
            .zip(&next)
            .map(|(cache, tok)| Segment {
                cache,
                tokens: tok,
                want_logits: true,
            })
            .collect();
        let logits = forward_batch(model, &mut segs)?;
        for (tok, l) in next.iter_mut().zip(logits) {
            let l = l.context("missing logits")?;
            tok[0] = rocmforge_model::sampler::argmax(&l) as u32;
        }
    }
    Ok((n * batch) as f64 / t0.elapsed().as_secs_f64())
}

/// Runs `rocmforge bench`.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let device = super::generate::select_device(args.device.as_deref())?;
    anyhow::ensure!(
        args.n_prompt > 0 && args.n_gen > 0 && args.reps > 0 && args.concurrency > 0,
        "-p, -n, -r and --concurrency must be positive"
    );
    let t0 = Instant::now();
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("opening model {}", args.model.display()))?;
    let model = CpuModel::from_gguf(&file)?;
    let load_s = t0.elapsed().as_secs_f64();
    let ctx = model.config().context_length;
    anyhow::ensure!(
        args.n_prompt < ctx && args.n_gen < ctx,
        "-p and -n must be below the model's context ({ctx})"
    );

    prefill_rate(&model, args.n_prompt.min(32), 0)?;
    decode_rate(&model, args.n_gen.min(8), 1, 0)?;
    let mut pp = Vec::new();
    let mut tg = Vec::new();
    let mut batched = Vec::new();
    for r in 0..args.reps {
        pp.push(prefill_rate(&model, args.n_prompt, r + 1)?);
        tg.push(decode_rate(&model, args.n_gen, 1, r + 1)?);
        if args.concurrency > 1 {
            batched.push(decode_rate(&model, args.n_gen, args.concurrency, r + 1)?);
        }
    }
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
    let dev = format!("{device:?}").to_lowercase();
    if args.json {
        let mut v = serde_json::json!({
            "model": name, "size_bytes": file.file_size(), "device": dev,
            "load_s": load_s, "repetitions": args.reps,
            "pp": {"n_prompt": args.n_prompt, "tokens_per_s_mean": pp_m, "tokens_per_s_sd": pp_sd, "samples": pp},
            "tg": {"n_gen": args.n_gen, "tokens_per_s_mean": tg_m, "tokens_per_s_sd": tg_sd, "samples": tg},
            "peak_memory_bytes": peak,
        });
        if args.concurrency > 1 {
            v["batched_tg"] = serde_json::json!({"sequences": args.concurrency, "n_gen": args.n_gen,
                "tokens_per_s_mean": b_m, "tokens_per_s_sd": b_sd, "samples": batched});
        }
        println!("{v}");
        return Ok(());
    }
    println!("| model | size | device | test | t/s |");
    println!("| --- | ---: | --- | --- | ---: |");
    println!(
        "| {name} | {size_mib:.1} MiB | {dev} | pp{} | {pp_m:.2} ± {pp_sd:.2} |",
        args.n_prompt
    );
    println!(
        "| {name} | {size_mib:.1} MiB | {dev} | tg{} | {tg_m:.2} ± {tg_sd:.2} |",
        args.n_gen
    );
    if args.concurrency > 1 {
        println!(
            "| {name} | {size_mib:.1} MiB | {dev} | tg{} x{} (batched, aggregate) | {b_m:.2} ± {b_sd:.2} |",
            args.n_gen, args.concurrency
        );
    }
    println!();
    println!("load time: {load_s:.3} s");
    match peak {
        Some(b) => println!("peak memory (resident): {:.1} MiB", b as f64 / 1048576.0),
        None => println!("peak memory: unknown on this platform"),
    }
    Ok(())
}
