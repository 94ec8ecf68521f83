//! `rocmforge quantize IN OUT MIX`: rewrites a GGUF file with its weights quantized as
//! llama-quantize does for the same mix name (`Q4_K_M`, `Q5_K_S`, `Q8_0`, `IQ4_XS`, ...): its
//! per-tensor rules (`rules.rs`), fallbacks for rows that are not whole blocks, and its options
//! (`--pure`, `--output-tensor-type`, `--token-embedding-type`, `--leave-output-tensor`,
//! `--allow-requantize`), and `--imatrix FILE`: llama.cpp's importance matrix weighs each
//! column's error in the block searches (`importance.rs`) and changes the rules where
//! llama-quantize's do.
//!
//! Every metadata key is copied (`general.file_type` set to the mix's); norms and biases are
//! stored as F32.

mod importance;
mod mix;
mod plan;
mod rules;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue, TensorInfo, quants};

use importance::{Importance, requires_importance};
use mix::Mix;
use plan::{TensorAction, action_for, parse_type};
use rules::{ModelFacts, Options, Rules};

use crate::progress;

/// Arguments of `rocmforge quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// The GGUF file to read.
    pub input: PathBuf,
    /// The GGUF file to write.
    pub output: PathBuf,
    /// The mix, as llama-quantize names it: Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, IQ4_XS, Q2_K,
    /// Q2_K_S, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, Q8_0,
    /// MXFP4_MOE (experts MXFP4, the rest Q8_0), F16, BF16, F32.
    #[arg(value_name = "MIX")]
    pub ty: String,
    /// Every quantized weight in the mix's default type (no per-tensor rules).
    #[arg(long)]
    pub pure: bool,
    /// Type of output.weight (and of a token embedding that is also the output).
    #[arg(long, value_name = "TYPE")]
    pub output_tensor_type: Option<String>,
    /// Type of token_embd.weight.
    #[arg(long, value_name = "TYPE")]
    pub token_embedding_type: Option<String>,
    /// Leave output.weight as it is.
    #[arg(long)]
    pub leave_output_tensor: bool,
    /// Allow requantizing weights that are already quantized (quality suffers).
    #[arg(long)]
    pub allow_requantize: bool,
    /// llama.cpp's importance matrix (GGUF, as `llama-imatrix` or `rocmforge imatrix` write
    /// it): weighs each column's error when quantizing.
    #[arg(long, value_name = "FILE")]
    pub imatrix: Option<PathBuf>,
    /// Worker threads (default: all cores).
    #[arg(long, short = 't')]
    pub threads: Option<usize>,
    /// No progress bar or summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// The options of one `quantize` run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QuantizeSpec {
    pub mix: Mix,
    pub options: Options,
    pub allow_requantize: bool,
}

impl QuantizeSpec {
    /// The spec of `args`; unknown names are errors listing the accepted ones.
    pub fn from_args(args: &QuantizeArgs) -> anyhow::Result<Self> {
        let mix = Mix::parse(&args.ty)
            .ok_or_else(|| anyhow::anyhow!("unknown mix '{}' (try: {})", args.ty, Mix::names()))?;
        let opt_type = |v: &Option<String>| v.as_deref().map(parse_type).transpose();
        Ok(Self {
            mix,
            options: Options {
                pure: args.pure,
                output_type: opt_type(&args.output_tensor_type)?,
                token_embedding_type: opt_type(&args.token_embedding_type)?,
                leave_output: args.leave_output_tensor,
                imatrix: args.imatrix.is_some(),
            },
            allow_requantize: args.allow_requantize,
        })
    }
}

/// The facts of `file`'s model the rules look at (layers, GQA ratio, experts, architecture).
fn model_facts(file: &GgufFile) -> ModelFacts {
    let md = file.metadata();
    let arch = md.get_str("general.architecture").unwrap_or("");
    let get = |k: &str| md.get_u32(&format!("{arch}.{k}")).ok().map(|v| v as usize);
    let n_layer = get("block_count").unwrap_or(0);
    let n_head = get("attention.head_count").unwrap_or(1).max(1);
    let n_head_kv = get("attention.head_count_kv").unwrap_or(n_head).max(1);
    ModelFacts {
        falcon: arch == "falcon",
        llama_70b: arch == "llama" && n_layer == 80,
        n_layer,
        n_gqa: n_head / n_head_kv,
        n_expert: get("expert_count").unwrap_or(0),
    }
}

/// Counts of what happened to the tensors.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct QuantizeSummary {
    /// Tensors converted to the target type.
    pub quantized: usize,
    /// Tensors written as F32 (norms, biases).
    pub to_f32: usize,
    /// Tensors copied unchanged.
    pub copied: usize,
    /// Bytes of tensor data read.
    pub bytes_in: u64,
    /// Bytes of tensor data written.
    pub bytes_out: u64,
    /// Weights given a fallback type (rows not whole blocks of the mix's choice).
    pub fallbacks: usize,
    /// Weights quantized without importance because the imatrix has no entry for them.
    pub without_importance: Vec<String>,
}

fn convert(
    file: &GgufFile,
    info: &TensorInfo,
    action: TensorAction,
    importance: Option<&[f32]>,
) -> anyhow::Result<(GgmlType, Vec<u8>)> {
    let data = file.tensor_data(info);
    let decode = || {
        quants::dequantize_to_vec(info.ty, data)
            .with_context(|| format!("dequantizing tensor {} ({})", info.name, info.ty))
    };
    Ok(match action {
        TensorAction::Copy => (info.ty, data.to_vec()),
        TensorAction::ToF32 => {
            let values = decode()?;
            let bytes = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (GgmlType::F32, bytes)
        }
        TensorAction::Quantize(ty) => {
            let values = decode()?;
            let n_per_row = info.dims.first().copied().unwrap_or(0) as usize;
            let bytes = match importance {
                Some(w) => quants::quantize_weighted(ty, &values, n_per_row, w),
                None => quants::quantize(ty, &values),
            }
            .with_context(|| format!("quantizing tensor {} to {ty}", info.name))?;
            (ty, bytes)
        }
    })
}

/// Quantizes the weights of `file` as `spec` says (with `importance` when given) into a writer
/// holding the new file, calling `on_tensor` after each tensor. Errors: a quantized weight to
/// be requantized without `allow_requantize`, a type that needs an importance matrix without
/// one, an imatrix entry of the wrong size, a tensor that cannot be decoded or encoded (each
/// naming the tensor).
pub fn quantize_file(
    file: &GgufFile,
    spec: &QuantizeSpec,
    importance: Option<&Importance>,
    mut on_tensor: impl FnMut(&TensorInfo),
) -> anyhow::Result<(GgufWriter, QuantizeSummary)> {
    let mut rules = Rules::new(spec.mix, spec.options, model_facts(file), file.tensors());
    let actions: Vec<TensorAction> = file
        .tensors()
        .iter()
        .map(|info| action_for(info, rules.type_for(info)))
        .collect();
    if importance.is_none() {
        let q2_k_s = spec.mix == Mix::Q2_K_S;
        let needs = file.tensors().iter().zip(&actions).find(|(i, a)| {
            matches!(a, TensorAction::Quantize(t) if requires_importance(&i.name, *t, q2_k_s))
        });
        if let Some((info, TensorAction::Quantize(t))) = needs {
            anyhow::bail!(
                "this quantization requires an importance matrix (--imatrix): tensor {} would \
                 be {t}",
                info.name
            );
        }
    }
    if !spec.allow_requantize {
        let requant = file.tensors().iter().zip(&actions).find(|(i, a)| {
            matches!(a, TensorAction::Quantize(t) if t.is_quantized()) && i.ty.is_quantized()
        });
        if let Some((info, _)) = requant {
            anyhow::bail!(
                "tensor {} is already quantized ({}); requantizing loses quality, pass \
                 --allow-requantize to do it anyway",
                info.name,
                info.ty
            );
        }
    }
    let mut writer = GgufWriter::new();
    let file_type = MetadataValue::U32(spec.mix.file_type());
    for (key, value) in file.metadata().iter() {
        if key == "general.file_type" {
            writer.add_metadata(key, file_type.clone());
        } else {
            writer.add_metadata(key, value.clone());
        }
    }
    // Kept in place when the input had the key; appended otherwise.
    writer.add_metadata("general.file_type", file_type);
    for (key, value) in importance.iter().flat_map(|i| &i.metadata) {
        writer.add_metadata(key, value.clone());
    }
    let mut summary = QuantizeSummary {
        fallbacks: rules.fallbacks,
        ..QuantizeSummary::default()
    };
    for (info, &action) in file.tensors().iter().zip(&actions) {
        let weights = match (importance, action) {
            (Some(imp), TensorAction::Quantize(_)) => {
                let w = imp.for_tensor(info)?;
                if w.is_none() {
                    summary.without_importance.push(info.name.clone());
                }
                w
            }
            _ => None,
        };
        let (ty, bytes) = convert(file, info, action, weights)?;
        match action {
            TensorAction::Quantize(_) => summary.quantized += 1,
            TensorAction::ToF32 => summary.to_f32 += 1,
            TensorAction::Copy => summary.copied += 1,
        }
        summary.bytes_in += info.size;
        summary.bytes_out += bytes.len() as u64;
        writer
            .add_tensor(&info.name, &info.dims, ty, bytes)
            .with_context(|| format!("adding tensor {} to the output", info.name))?;
        on_tensor(info);
    }
    Ok((writer, summary))
}

/// Runs `rocmforge quantize`.
pub fn run(args: &QuantizeArgs) -> anyhow::Result<()> {
    let spec = QuantizeSpec::from_args(args)?;
    let started = Instant::now();
    let importance = args.imatrix.as_deref().map(Importance::load).transpose()?;
    if let (Some(imp), false) = (&importance, args.quiet) {
        eprintln!("imatrix: {} entries", imp.len());
    }
    let file =
        GgufFile::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let bar = progress::bar(file.tensors().len() as u64, "quantizing", args.quiet);
    let work = || {
        quantize_file(&file, &spec, importance.as_ref(), |info| {
            bar.set_message(info.name.clone());
            bar.inc(1);
        })
    };
    let (writer, summary) = match args.threads {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
            .context("starting the worker threads")?
            .install(work)?,
        None => work()?,
    };
    bar.finish_and_clear();
    writer
        .write_to(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    if !args.quiet {
        for name in &summary.without_importance {
            eprintln!("imatrix: no entry for {name}; quantized without importance");
        }
        eprintln!(
            "{} -> {} ({}): {} quantized ({} with a fallback type), {} as F32, {} copied; {:.1} MiB -> {:.1} MiB in {:.1} s",
            args.input.display(),
            args.output.display(),
            spec.mix.name(),
            summary.quantized,
            summary.fallbacks,
            summary.to_f32,
            summary.copied,
            summary.bytes_in as f64 / 1048576.0,
            summary.bytes_out as f64 / 1048576.0,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
