//! `rocmforge quantize IN OUT TYPE`: rewrites a GGUF file with its weight matrices in another type.
//!
//! Every metadata key is copied (`general.file_type` updated); norms and biases are stored as
//! F32; a matrix whose rows are not whole blocks of the target type is copied unchanged.

mod plan;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue, TensorInfo, quants};

use plan::{TensorAction, action_for, file_type_for, parse_target};

use crate::progress;

/// Arguments of `rocmforge quantize`.
#[derive(Debug, clap::Args)]
pub struct QuantizeArgs {
    /// The GGUF file to read.
    pub input: PathBuf,
    /// The GGUF file to write.
    pub output: PathBuf,
    /// The target type: Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q2_K .. Q6_K, IQ4_NL, IQ4_XS, F16, BF16, F32.
    #[arg(value_name = "TYPE")]
    pub ty: String,
    /// No progress bar or summary.
    #[arg(long, short)]
    pub quiet: bool,
}

/// Counts of what happened to the tensors.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
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
}

fn convert(
    file: &GgufFile,
    info: &TensorInfo,
    action: TensorAction,
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
            let bytes = quants::quantize(ty, &values)
                .with_context(|| format!("quantizing tensor {} to {ty}", info.name))?;
            (ty, bytes)
        }
    })
}

/// Quantizes the weights of `file` to `target` into a writer holding the new file,
/// calling `on_tensor` after each tensor.
pub fn quantize_file(
    file: &GgufFile,
    target: GgmlType,
    mut on_tensor: impl FnMut(&TensorInfo),
) -> anyhow::Result<(GgufWriter, QuantizeSummary)> {
    let mut writer = GgufWriter::new();
    let file_type = file_type_for(target).map(MetadataValue::U32);
    for (key, value) in file.metadata().iter() {
        match (key, &file_type) {
            ("general.file_type", Some(ft)) => writer.add_metadata(key, ft.clone()),
            ("general.file_type", None) => {}
            _ => writer.add_metadata(key, value.clone()),
        }
    }
    if let Some(ft) = file_type {
        // Kept in place when the input had the key; appended otherwise.
        writer.add_metadata("general.file_type", ft);
    }
    let mut summary = QuantizeSummary::default();
    for info in file.tensors() {
        let action = action_for(info, target);
        let (ty, bytes) = convert(file, info, action)?;
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
    let target = parse_target(&args.ty)?;
    let started = Instant::now();
    let file =
        GgufFile::open(&args.input).with_context(|| format!("opening {}", args.input.display()))?;
    let bar = progress::bar(file.tensors().len() as u64, "quantizing", args.quiet);
    let (writer, summary) = quantize_file(&file, target, |info| {
        bar.set_message(info.name.clone());
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    writer
        .write_to(&args.output)
        .with_context(|| format!("writing {}", args.output.display()))?;
    if !args.quiet {
        eprintln!(
            "{} -> {} ({target}): {} quantized, {} as F32, {} copied; {:.1} MiB -> {:.1} MiB in {:.1} s",
            args.input.display(),
            args.output.display(),
            summary.quantized,
            summary.to_f32,
            summary.copied,
            summary.bytes_in as f64 / 1048576.0,
            summary.bytes_out as f64 / 1048576.0,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}
