//! `rocmforge inspect MODEL [--json] [--tensor NAME --dequant OUT]`.

mod dequant;
mod json;
mod summary;
mod text;

use std::path::PathBuf;

use rocmforge_gguf::GgufFile;

use super::output::print_stdout;

/// Arguments of `rocmforge inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The GGUF file to inspect.
    pub model: PathBuf,
    /// Print one JSON document instead of text.
    #[arg(long, conflicts_with = "tensor")]
    pub json: bool,
    /// Name of a tensor to dequantize (with --dequant).
    #[arg(long, requires = "dequant")]
    pub tensor: Option<String>,
    /// Write --tensor dequantized to this file as raw little-endian f32, ne0 fastest.
    #[arg(long, requires = "tensor")]
    pub dequant: Option<PathBuf>,
}

/// Runs `inspect`.
pub fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let file = GgufFile::open(&args.model)?;
    if let (Some(tensor), Some(out)) = (&args.tensor, &args.dequant) {
        let n = dequant::write_dequantized(&file, tensor, out)?;
        eprintln!("wrote {n} f32 values of '{tensor}' to {}", out.display());
        return Ok(());
    }
    let report = if args.json {
        let mut doc = serde_json::to_string_pretty(&json::document(&file))?;
        doc.push('\n');
        doc
    } else {
        text::report(&file)
    };
    print_stdout(&report)
}
