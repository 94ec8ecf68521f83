//! `rocmforge imatrix`: the importance matrix of a model over a text, as llama.cpp's
//! llama-imatrix computes it, written in its GGUF format (readable by `llama-quantize
//! --imatrix` and `rocmforge quantize --imatrix`).
//!
//! The text is tokenized once and cut into chunks of `--ctx` tokens (the first of each replaced
//! by BOS when the model adds one); each chunk runs through the forward from an empty cache.
//! For every weight matrix of the blocks the forward's matrix-product input is seen
//! ([`MatmulObserver`]) and each column's squared values are summed over every token of every
//! chunk, with the token count. As in llama-imatrix: the output matrix is not collected, nor
//! are steps of fewer than 16 tokens; the sums are f32 added token by token.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::Context;
use rocmforge_gguf::GgufFile;
use rocmforge_gguf::imatrix::{Imatrix, ImatrixEntry};
use rocmforge_model::model::{MatmulObserver, MatmulSite};
use rocmforge_model::tokenizer::Tokenizer;
use rocmforge_model::{LogitsFor, Model};

use super::device::{load_model, select_device};

/// Arguments of `rocmforge imatrix`.
#[derive(Debug, clap::Args)]
pub struct ImatrixArgs {
    /// The GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// The text to run.
    #[arg(long)]
    pub file: PathBuf,
    /// The imatrix file to write.
    #[arg(short, long, default_value = "imatrix.gguf")]
    pub output: PathBuf,
    /// Tokens per chunk.
    #[arg(long, default_value_t = 512)]
    pub ctx: usize,
    /// At most this many chunks (default: all of the text).
    #[arg(long)]
    pub chunks: Option<usize>,
    /// cpu, gpu or gpu:N.
    #[arg(long)]
    pub device: Option<String>,
}

/// llama-imatrix ignores matrix products over fewer tokens than this.
const MIN_ROWS: usize = 16;

/// The weight names each site feeds in block `layer`, those the file has.
fn weight_names(file: &GgufFile, layer: usize) -> BTreeMap<SiteKey, Vec<String>> {
    let names = |site: MatmulSite, parts: &[&str]| {
        let found: Vec<String> = parts
            .iter()
            .map(|p| format!("blk.{layer}.{p}.weight"))
            .filter(|n| file.tensor(n).is_some())
            .collect();
        (SiteKey(layer, site as u8), found)
    };
    [
        names(
            MatmulSite::AttnIn,
            &["attn_q", "attn_k", "attn_v", "attn_qkv"],
        ),
        names(MatmulSite::AttnOut, &["attn_output"]),
        names(MatmulSite::FfnIn, &["ffn_gate", "ffn_up"]),
        names(MatmulSite::FfnDown, &["ffn_down"]),
    ]
    .into_iter()
    .collect()
}

/// A block and a site, as a map key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct SiteKey(usize, u8);

/// Sums of squares and token counts per site.
struct Collector {
    sums: Mutex<BTreeMap<SiteKey, (Vec<f32>, u64)>>,
}

impl MatmulObserver for Collector {
    fn observe(&self, layer: usize, site: MatmulSite, input: &[f32], cols: usize, rows: usize) {
        if rows < MIN_ROWS || cols == 0 {
            return;
        }
        let mut sums = self.sums.lock().unwrap_or_else(PoisonError::into_inner);
        let (acc, count) = sums
            .entry(SiteKey(layer, site as u8))
            .or_insert_with(|| (vec![0.0; cols], 0));
        if acc.len() != cols {
            return;
        }
        for row in input.chunks_exact(cols).take(rows) {
            for (a, &x) in acc.iter_mut().zip(row) {
                *a += x * x;
            }
        }
        *count += rows as u64;
    }
}

/// Runs `rocmforge imatrix`.
pub fn run(args: &ImatrixArgs) -> anyhow::Result<()> {
    let device = select_device(args.device.as_deref())?;
    let text = std::fs::read_to_string(&args.file)
        .with_context(|| format!("reading {}", args.file.display()))?;
    let file = Arc::new(
        GgufFile::open(&args.model)
            .with_context(|| format!("opening model {}", args.model.display()))?,
    );
    let tokenizer = Tokenizer::from_gguf(&file)?;
    let tokens = tokenizer.encode(&text, true, false)?;
    let ctx = args.ctx;
    if ctx < MIN_ROWS || tokens.len() < 2 * ctx {
        anyhow::bail!(
            "{} tokenizes to {} tokens: need at least 2 chunks of --ctx {ctx} (at least {MIN_ROWS})",
            args.file.display(),
            tokens.len()
        );
    }
    let n_chunks = (tokens.len() / ctx).min(args.chunks.unwrap_or(usize::MAX));
    let bos = tokenizer.bos_id().filter(|_| tokenizer.add_bos());
    let model = load_model(&args.model, file.clone(), device, true)?;
    if model.config().moe.is_some() {
        anyhow::bail!(
            "{}: the importance matrix of a mixture-of-experts model (per-expert statistics) is not supported yet",
            args.model.display()
        );
    }
    let collector = Arc::new(Collector {
        sums: Mutex::new(BTreeMap::new()),
    });
    model.set_matmul_observer(Some(collector.clone()));
    let started = Instant::now();
    run_chunks(&model, &tokens, ctx, n_chunks, bos)?;
    model.set_matmul_observer(None);
    let secs = started.elapsed().as_secs_f64();
    let mut m = Imatrix {
        datasets: vec![args.file.display().to_string()],
        chunk_count: n_chunks as u32,
        chunk_size: ctx as u32,
        ..Imatrix::default()
    };
    let sums = std::mem::take(
        &mut *collector
            .sums
            .lock()
            .unwrap_or_else(PoisonError::into_inner),
    );
    let n_layers = model.config().n_layers;
    let names: BTreeMap<SiteKey, Vec<String>> =
        (0..n_layers).flat_map(|l| weight_names(&file, l)).collect();
    for (key, (acc, count)) in sums {
        for name in names.get(&key).into_iter().flatten() {
            m.entries.insert(
                name.clone(),
                ImatrixEntry {
                    sums: acc.clone(),
                    counts: vec![count as f32],
                },
            );
        }
    }
    m.to_writer()?
        .write_to(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    eprintln!(
        "{} entries from {n_chunks} chunks of {ctx} tokens in {secs:.1} s -> {}",
        m.entries.len(),
        args.output.display()
    );
    Ok(())
}

/// Runs chunk after chunk through `model`, each from an empty cache.
fn run_chunks(
    model: &Model,
    tokens: &[u32],
    ctx: usize,
    n_chunks: usize,
    bos: Option<u32>,
) -> anyhow::Result<()> {
    let mut cache = model.new_cache(ctx)?;
    for chunk in 0..n_chunks {
        let mut batch = tokens[chunk * ctx..(chunk + 1) * ctx].to_vec();
        if let Some(b) = bos {
            batch[0] = b;
        }
        cache.clear();
        model.forward(&mut cache, &batch, 0, LogitsFor::Last)?;
        eprintln!("[{}/{n_chunks}]", chunk + 1);
    }
    Ok(())
}
