//! `rocmforge predict`: teacher forcing — the argmax next token after each prefix.

use std::path::PathBuf;

use anyhow::Context;
use rocmforge_gguf::GgufFile;
use rocmforge_model::{CpuModel, predict_next};

use super::generate::select_device;

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
    select_device(args.device.as_deref())?;
    let ids: Vec<u32> = serde_json::from_str(&args.ids).with_context(|| {
        format!(
            "--ids must be a JSON array of token ids, got '{}'",
            args.ids
        )
    })?;
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("opening model {}", args.model.display()))?;
    let model = CpuModel::from_gguf(&file)?;
    let next = predict_next(&model, &ids)?;
    println!("{}", serde_json::to_string(&next)?);
    Ok(())
}
