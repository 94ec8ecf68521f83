//! `rocmforge predict`: teacher forcing — the argmax next token after each prefix.

use std::path::PathBuf;

use anyhow::Context;
use rocmforge_gguf::GgufFile;
use rocmforge_model::gpu::gpu_predict_next;
use rocmforge_model::{CpuModel, GpuModel, predict_next};

use super::generate::{Device, select_gpu_capable_device};

/// Arguments of `rocmforge predict`.
#[derive(Debug, clap::Args)]
pub struct PredictArgs {
    /// The GGUF model file.
    #[arg(long)]
    pub model: PathBuf,
    /// Token ids as a JSON array, run as one sequence.
    #[arg(long)]
    pub ids: String,
    /// cpu, gpu or gpu:N.
    #[arg(long)]
    pub device: Option<String>,
}

/// Runs `rocmforge predict`: prints one JSON array, element i = argmax after ids[..=i].
pub fn run(args: &PredictArgs) -> anyhow::Result<()> {
    let device = select_gpu_capable_device(args.device.as_deref())?;
    let ids: Vec<u32> = serde_json::from_str(&args.ids).with_context(|| {
        format!(
            "--ids must be a JSON array of token ids, got '{}'",
            args.ids
        )
    })?;
    let next = if let Device::Gpu(n) = device {
        let model = GpuModel::open(&args.model, n)
            .with_context(|| format!("loading model {} on gpu:{n}", args.model.display()))?;
        gpu_predict_next(&model, &ids)?
    } else {
        let file = GgufFile::open(&args.model)
            .with_context(|| format!("opening model {}", args.model.display()))?;
        let model = CpuModel::from_gguf(&file)?;
        predict_next(&model, &ids)?
    };
    println!("{}", serde_json::to_string(&next)?);
    Ok(())
}
