//! `cargo xtask synth-model`: a model of a real shape (Llama-3-8B, Qwen2.5-0.5B) with seeded
//! random weights, quantized the way llama.cpp's `llama-quantize` mixes types, written tensor
//! by tensor (the 8B F16 file is 16 GB). Built for speed: every tensor is generated and
//! quantized in parallel over row ranges (rayon) while the previous one is written.

pub mod harmony;
mod mix;
mod random;
mod shape;
mod tiny;
mod vocab;

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::Args;
use rayon::prelude::*;
use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue, quants};

pub use mix::{FileType, tensor_type};
pub use shape::{Kind, Shape, TensorSpec, VocabSource};
pub use tiny::{TINY, dir as tiny_dir, write_all as write_tiny_models};

/// Standard deviation of the random weight matrices.
pub(crate) const WEIGHT_SD: f32 = 0.02;
/// Elements generated and quantized by one rayon task.
const TASK_ELEMENTS: usize = 1 << 15;

#[derive(Args, Debug, Clone)]
pub struct SynthArgs {
    /// llama3-8b, llama3.1-8b, qwen2.5-0.5b, qwen3-30b-a3b, gemma3-4b, gemma3-1b, gpt-oss-20b,
    /// phi3-mini, or a tiny CI shape (tiny-llama, tiny-llama3, tiny-qwen3, tiny-qwen3moe-kl,
    /// tiny-gemma3, tiny-mistral3, tiny-gpt-oss, tiny-phi3, tiny-qwen3moe).
    #[arg(long)]
    pub shape: String,
    /// Q4_K_M, Q4_0, Q8_0, F16 or MXFP4_MOE (experts MXFP4, other matrices Q8_0).
    #[arg(long = "type")]
    pub ftype: String,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Write only the first N blocks (for timing; the file says N blocks).
    #[arg(long)]
    pub layers: Option<usize>,
    /// Standard deviation of the weight matrices (default: the shape's).
    #[arg(long)]
    pub weight_sd: Option<f32>,
    /// Standard deviation of the output layer (default: the shape's).
    #[arg(long)]
    pub output_sd: Option<f32>,
    /// Standard deviation of the mixture-of-experts routers (default: the shape's; wider
    /// routers pick their experts by larger margins, as trained ones do).
    #[arg(long)]
    pub router_sd: Option<f32>,
    /// Folder holding the ggml-vocab-*.gguf files (default: ../shared/testdata/vocab).
    #[arg(long)]
    pub vocab_dir: Option<PathBuf>,
    /// The GGUF file to write.
    pub out: PathBuf,
}

/// What one synthesis did.
#[derive(Debug, Clone, Copy)]
pub struct SynthStats {
    pub bytes: u64,
    pub tensors: usize,
    pub seconds: f64,
}

pub fn run(args: &SynthArgs) -> Result<()> {
    let mut shape = Shape::by_name(&args.shape).ok_or_else(|| {
        let tiny: Vec<&str> = TINY.iter().map(|t| t.name).collect();
        anyhow!(
            "unknown --shape {} (llama3-8b, llama3.1-8b, qwen2.5-0.5b, qwen3-30b-a3b, gemma3-4b, \
             gemma3-1b, gpt-oss-20b, phi3-mini, {})",
            args.shape,
            tiny.join(", ")
        )
    })?;
    let ftype = FileType::from_name(&args.ftype).ok_or_else(|| {
        anyhow!(
            "unknown --type {} (Q4_K_M, Q4_0, Q8_0, F16, MXFP4_MOE)",
            args.ftype
        )
    })?;
    if let (Some(dir), Some(VocabSource::File(file))) = (&args.vocab_dir, shape.tokenizer.as_mut())
    {
        let name = file
            .file_name()
            .map(|n| n.to_os_string())
            .unwrap_or_default();
        *file = dir.join(name);
    }
    shape.weight_sd = args.weight_sd.unwrap_or(shape.weight_sd);
    shape.output_sd = args.output_sd.unwrap_or(shape.output_sd);
    shape.router_sd = args.router_sd.or(shape.router_sd);
    if let Some(n) = args.layers {
        if n == 0 || n > shape.n_layers {
            bail!("--layers must be 1..={}", shape.n_layers);
        }
        shape.n_layers = n;
    }
    let stats = synthesize(&shape, ftype, args.seed, &args.out)?;
    eprintln!(
        "synth-model: {} {} ({} blocks) -> {}: {} tensors, {:.2} GB in {:.1} s ({} threads)",
        args.shape,
        ftype.name(),
        shape.n_layers,
        args.out.display(),
        stats.tensors,
        stats.bytes as f64 / 1e9,
        stats.seconds,
        rayon::current_num_threads()
    );
    Ok(())
}

/// The metadata keys of `shape` written as `ftype`.
fn model_metadata(w: &mut GgufWriter, shape: &Shape, ftype: FileType) -> Result<()> {
    let a = shape.arch;
    let u = |v: usize| MetadataValue::U32(v as u32);
    w.add_metadata("general.architecture", MetadataValue::String(a.into()));
    w.add_metadata(
        "general.name",
        MetadataValue::String(format!("{} {}", shape.name, ftype.name())),
    );
    w.add_metadata("general.file_type", MetadataValue::U32(ftype.id()));
    w.add_metadata(&format!("{a}.block_count"), u(shape.n_layers));
    w.add_metadata(&format!("{a}.context_length"), u(shape.context));
    w.add_metadata(&format!("{a}.embedding_length"), u(shape.dim));
    w.add_metadata(&format!("{a}.feed_forward_length"), u(shape.ffn));
    w.add_metadata(&format!("{a}.attention.head_count"), u(shape.n_heads));
    w.add_metadata(&format!("{a}.attention.head_count_kv"), u(shape.n_kv_heads));
    w.add_metadata(&format!("{a}.rope.dimension_count"), u(shape.head_dim()));
    w.add_metadata(
        &format!("{a}.rope.freq_base"),
        MetadataValue::F32(shape.rope_base),
    );
    w.add_metadata(
        &format!("{a}.attention.layer_norm_rms_epsilon"),
        MetadataValue::F32(shape.rms_eps),
    );
    w.add_metadata(&format!("{a}.vocab_size"), u(shape.vocab));
    if shape.head_dim_override.is_some() {
        w.add_metadata(&format!("{a}.attention.key_length"), u(shape.head_dim()));
        w.add_metadata(&format!("{a}.attention.value_length"), u(shape.head_dim()));
    }
    if let Some(swa) = shape.swa {
        w.add_metadata(&format!("{a}.attention.sliding_window"), u(swa.window));
        if let Some(p) = swa.pattern {
            w.add_metadata(&format!("{a}.attention.sliding_window_pattern"), u(p));
        }
    }
    if let Some(f) = shape.rope_scale_linear {
        w.add_metadata(
            &format!("{a}.rope.scaling.type"),
            MetadataValue::String("linear".into()),
        );
        w.add_metadata(&format!("{a}.rope.scaling.factor"), MetadataValue::F32(f));
    }
    if let Some(y) = shape.yarn {
        let f = MetadataValue::F32;
        w.add_metadata(
            &format!("{a}.rope.scaling.type"),
            MetadataValue::String("yarn".into()),
        );
        w.add_metadata(&format!("{a}.rope.scaling.factor"), f(y.factor));
        w.add_metadata(
            &format!("{a}.rope.scaling.original_context_length"),
            u(y.original_context),
        );
        // The tuning keys only where llama.cpp reads them (mistral3; gpt-oss takes the
        // defaults 32 / 1 / none).
        if a == "mistral3" {
            w.add_metadata(&format!("{a}.rope.scaling.yarn_beta_fast"), f(y.beta_fast));
            w.add_metadata(&format!("{a}.rope.scaling.yarn_beta_slow"), f(y.beta_slow));
            w.add_metadata(
                &format!("{a}.rope.scaling.yarn_log_multiplier"),
                f(y.log_mul),
            );
            w.add_metadata(
                &format!("{a}.attention.temperature_scale"),
                f(y.temperature_scale),
            );
        }
    }
    if let Some(lr) = shape.long_rope {
        // As the Phi-3 converter writes it: no scaling type, the original context and the
        // attention factor.
        w.add_metadata(
            &format!("{a}.rope.scaling.original_context_length"),
            u(lr.original_context),
        );
        w.add_metadata(
            &format!("{a}.rope.scaling.attn_factor"),
            MetadataValue::F32(lr.attn_factor(shape.context)),
        );
    }
    if let Some(m) = shape.moe {
        w.add_metadata(&format!("{a}.expert_count"), u(m.n_expert));
        w.add_metadata(&format!("{a}.expert_used_count"), u(m.n_expert_used));
        w.add_metadata(&format!("{a}.expert_feed_forward_length"), u(m.ffn_exp));
    }
    let keys = match &shape.tokenizer {
        Some(VocabSource::File(path)) => {
            let file = GgufFile::open(path)
                .with_context(|| format!("opening the vocabulary {}", path.display()))?;
            vocab::tokenizer_metadata(&file, shape.vocab)?
        }
        Some(VocabSource::TinyByteBpe) => vocab::tiny_byte_bpe(shape.vocab)?,
        None => Vec::new(),
    };
    for (key, value) in keys {
        w.add_metadata(&key, value);
    }
    Ok(())
}

/// The bytes of tensor `t` of `shape` in type `ty`: random values generated and quantized in
/// parallel (RoPE frequency factors: the shape's fixed values).
fn tensor_bytes(
    shape: &Shape,
    t: &TensorSpec,
    ty: GgmlType,
    seed: u64,
    weight_sd: f32,
) -> Result<Vec<u8>> {
    let fixed = match (t.kind, shape.long_rope, shape.llama3_rope) {
        (Kind::RopeFactors { long }, Some(lr), _) => Some(lr.factors(long, t.n_elements())),
        (Kind::RopeFreqs, _, Some(l3)) => Some(l3.factors(shape.rope_base, shape.head_dim())),
        _ => None,
    };
    if let Some(values) = fixed {
        let mut out = vec![0u8; ty.bytes_for(values.len() as u64).unwrap_or(0) as usize];
        quants::quantize_into(ty, &values, &mut out)
            .with_context(|| format!("writing {} as {ty}", t.name))?;
        return Ok(out);
    }
    let row = t.row_len();
    let rows = t.n_elements() / row.max(1);
    let row_bytes =
        ty.bytes_for(row as u64)
            .ok_or_else(|| anyhow!("{}: {row} is not whole {ty} blocks", t.name))? as usize;
    let (mean, sd) = match t.kind {
        Kind::Norm => (1.0, 0.0),
        Kind::Sink => (0.0, 1.0),
        _ => (0.0, weight_sd),
    };
    let tensor_seed = random::tensor_seed(seed, &t.name);
    let rows_per_task = (TASK_ELEMENTS / row.max(1)).max(1);
    let mut out = vec![0u8; rows * row_bytes];
    out.par_chunks_mut(rows_per_task * row_bytes)
        .enumerate()
        .try_for_each(|(i, chunk)| {
            let n_rows = chunk.len() / row_bytes;
            let mut values = vec![0.0f32; n_rows * row];
            let first = (i * rows_per_task * row) as u64;
            random::fill_normal(tensor_seed, first, mean, sd, &mut values);
            quants::quantize_into(ty, &values, chunk)
        })
        .with_context(|| format!("quantizing {} to {ty}", t.name))?;
    Ok(out)
}

/// Writes `shape` as `ftype` with weights seeded by `seed` to `out`.
pub fn synthesize(shape: &Shape, ftype: FileType, seed: u64, out: &Path) -> Result<SynthStats> {
    let t0 = Instant::now();
    let mut w = GgufWriter::new();
    model_metadata(&mut w, shape, ftype)?;
    let specs = shape.tensors();
    let mut types = Vec::with_capacity(specs.len());
    for t in &specs {
        let ty = tensor_type(ftype, t, shape.n_layers, shape.tied_output);
        w.add_tensor_info(&t.name, &t.dims, ty)?;
        types.push(ty);
    }
    let mut stream = w
        .into_stream(out)
        .with_context(|| format!("creating {}", out.display()))?;
    // The writer thread writes tensor i while the pool generates tensor i + 1.
    let (tx, rx) = mpsc::sync_channel::<(String, Vec<u8>)>(1);
    let writer = std::thread::spawn(move || -> Result<u64> {
        let mut bytes = 0u64;
        for (name, data) in rx {
            stream.write_tensor(&name, &data)?;
            bytes += data.len() as u64;
        }
        stream.finish()?;
        Ok(bytes)
    });
    let mut produced: Result<()> = Ok(());
    for (t, &ty) in specs.iter().zip(&types) {
        let is_output = t.kind == Kind::Output || (shape.tied_output && t.kind == Kind::TokenEmbd);
        let sd = if is_output {
            shape.output_sd
        } else if t.kind == Kind::Router {
            shape.router_sd.unwrap_or(shape.weight_sd)
        } else {
            shape.weight_sd
        };
        match tensor_bytes(shape, t, ty, seed, sd) {
            Ok(data) => {
                if tx.send((t.name.clone(), data)).is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                produced = Err(e);
                break;
            }
        }
    }
    drop(tx);
    let written = writer
        .join()
        .map_err(|_| anyhow!("the writer thread of {} panicked", out.display()))?;
    produced?;
    let bytes = written.with_context(|| format!("writing {}", out.display()))?;
    Ok(SynthStats {
        bytes,
        tensors: specs.len(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
mod tests;
