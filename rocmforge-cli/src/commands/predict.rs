//! `rocmforge predict`: teacher forcing — the argmax next token after each prefix.

use std::path::PathBuf;

use anyhow::Context;
use rocmforge_model::predict_next;

use super::device::{open_model, select_device};

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
    let device = select_device(args.device.as_deref())?;
    let ids: Vec<u32> = serde_json::from_str(&args.ids).with_context(|| {
        format!(
            "--ids must be a JSON array of token ids, got '{}'",
            args.ids
        )
    })?;
    let model = open_model(&args.model, device, true)?;
    let next = predict_next(&model, &ids)?;
    println!("{}", serde_json::to_string(&next)?);
    Ok(())
}
