//! `rocmforge tokenize`: print the token ids of a text as one JSON array.

use std::path::PathBuf;

use anyhow::Context;
use rocmforge_gguf::GgufFile;
use rocmforge_model::tokenizer::Tokenizer;

use super::output::print_stdout;

/// Arguments of `rocmforge tokenize`.
#[derive(Debug, clap::Args)]
pub struct TokenizeArgs {
    /// The GGUF model file (a vocabulary-only file is enough).
    #[arg(long)]
    pub model: PathBuf,
    /// Do not add BOS, even where the model's `tokenizer.ggml.add_bos_token` asks for it.
    #[arg(long)]
    pub no_bos: bool,
    /// Treat special-token text such as `<|im_start|>` as plain text.
    #[arg(long)]
    pub no_parse_special: bool,
    /// The text to tokenize (put `--` before it when it starts with `-`).
    #[arg(allow_hyphen_values = true)]
    pub text: String,
}

/// The ids `rocmforge tokenize` prints: BOS where the model adds it (unless `no_bos`), the text,
/// EOS where the model adds it.
pub fn tokenize(tokenizer: &Tokenizer, args: &TokenizeArgs) -> anyhow::Result<Vec<u32>> {
    let body = tokenizer.encode(&args.text, false, !args.no_parse_special)?;
    let mut ids = Vec::with_capacity(body.len() + 2);
    if tokenizer.add_bos() && !args.no_bos {
        ids.extend(tokenizer.bos_id());
    }
    ids.extend(body);
    if tokenizer.add_eos() {
        ids.extend(tokenizer.eos_id());
    }
    Ok(ids)
}

/// Runs `rocmforge tokenize`: one line on stdout, a JSON array of ids.
pub fn run(args: &TokenizeArgs) -> anyhow::Result<()> {
    let file = GgufFile::open(&args.model)
        .with_context(|| format!("opening model {}", args.model.display()))?;
    let tokenizer = Tokenizer::from_gguf(&file)
        .with_context(|| format!("reading the tokenizer of {}", args.model.display()))?;
    let ids = tokenize(&tokenizer, args)?;
    print_stdout(&format!("{}\n", serde_json::to_string(&ids)?))?;
    Ok(())
}
