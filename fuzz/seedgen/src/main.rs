//! Writes the seed corpora of the `tensor_index` and `tokenizer` fuzz targets from the real
//! files, cut small enough to commit:
//!
//! `cargo run --manifest-path fuzz/Cargo.toml -p rocmforge-fuzz-seedgen -- MODEL VOCAB_DIR OUT_DIR`
//!
//! - `OUT_DIR/tensor_index/`: tiny llama models that keep the test model's metadata (minus its
//!   49k-token vocabulary) and tensor names and types, with 2 blocks and small dimensions.
//! - `OUT_DIR/tokenizer/`: `[text length: u8][text][GGUF]` inputs whose GGUF is a vocab-only file
//!   cut to its first tokens (and the merges among them); every seed builds a tokenizer.

use std::path::{Path, PathBuf};

use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, MetadataArray, MetadataValue, quants};
use rocmforge_model::Tokenizer;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Tokens kept of each vocabulary (covers the byte tokens of every vocab type).
const KEPT_TOKENS: usize = 600;

/// Texts paired with the tokenizer seeds.
const TEXTS: &[&str] = &[
    "Hello world! 123 <|im_start|>user\n",
    " \t\n  leading spaces, tabs\tand ünïcødé 日本語 🙂",
    "<s>[INST] don't stop </s> 3.14159",
];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, vocab_dir, out] = args.as_slice() else {
        return Err("usage: seedgen MODEL.gguf VOCAB_DIR OUT_DIR".into());
    };
    let out = PathBuf::from(out);
    write_model_seeds(Path::new(model), &out.join("tensor_index"))?;
    write_tokenizer_seeds(Path::new(vocab_dir), &out.join("tokenizer"))?;
    Ok(())
}

/// Copies `src`'s metadata, with the tokenizer arrays cut to `kept` tokens.
fn copy_metadata(src: &GgufFile, w: &mut GgufWriter, kept: usize) {
    for (key, value) in src.metadata().iter() {
        let value = match value {
            MetadataValue::Array(a) if key.starts_with("tokenizer.ggml.") => {
                MetadataValue::Array(cut_array(key, a, src, kept))
            }
            other => other.clone(),
        };
        w.add_metadata(key, value);
    }
}

fn cut_array(key: &str, a: &MetadataArray, src: &GgufFile, kept: usize) -> MetadataArray {
    let values = if key == "tokenizer.ggml.merges" {
        let tokens: std::collections::HashSet<&str> = src
            .metadata()
            .get_str_array("tokenizer.ggml.tokens")
            .unwrap_or_default()
            .into_iter()
            .take(kept)
            .collect();
        a.values
            .iter()
            .filter(|m| match m {
                MetadataValue::String(s) => {
                    let joined: String = s.split(' ').collect();
                    s.split(' ').all(|p| tokens.contains(p)) && tokens.contains(joined.as_str())
                }
                _ => false,
            })
            .cloned()
            .collect()
    } else {
        a.values.iter().take(kept).cloned().collect()
    };
    MetadataArray {
        elem_type: a.elem_type,
        values,
    }
}

fn small_f32(n: usize, seed: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (((i * 31 + seed * 17) % 29) as f32 - 14.0) * 0.01)
        .collect()
}

fn tensor_bytes(ty: GgmlType, n: usize, seed: usize) -> Result<Vec<u8>> {
    let src = small_f32(n, seed);
    Ok(match ty {
        GgmlType::F32 => src.iter().flat_map(|v| v.to_le_bytes()).collect(),
        t if quants::can_quantize(t) => quants::quantize(t, &src)?,
        _ => quants::quantize(GgmlType::F16, &src)?,
    })
}

/// The test model with 2 blocks, `embd` wide, `vocab` tokens, its tensors in `ty_override`
/// (or their own types when `None`).
fn tiny_model(
    src: &GgufFile,
    embd: u64,
    vocab: u64,
    ty_override: Option<GgmlType>,
) -> Result<Vec<u8>> {
    let mut w = GgufWriter::new();
    copy_metadata(src, &mut w, vocab as usize);
    let arch = src.architecture()?.to_string();
    let ff = embd * 2;
    for (k, v) in [
        ("block_count", 2),
        ("embedding_length", embd),
        ("feed_forward_length", ff),
        ("attention.head_count", 4),
        ("attention.head_count_kv", 2),
        ("context_length", 64),
        ("rope.dimension_count", embd / 4),
    ] {
        w.add_metadata(&format!("{arch}.{k}"), MetadataValue::U32(v as u32));
    }
    let kv = embd / 2;
    let mut seed = 0;
    for t in src.tensors() {
        let block = t
            .name
            .strip_prefix("blk.")
            .and_then(|r| r.split('.').next());
        if block.is_some_and(|b| b.parse::<u32>().is_ok_and(|b| b >= 2)) {
            continue;
        }
        let suffix = t
            .name
            .rsplit_once("blk.")
            .map_or(t.name.as_str(), |(_, r)| {
                r.split_once('.').map_or(r, |(_, s)| s)
            });
        let dims: Vec<u64> = match suffix {
            "token_embd.weight" | "output.weight" => vec![embd, vocab],
            "attn_k.weight" | "attn_v.weight" => vec![embd, kv],
            "attn_q.weight" | "attn_output.weight" => vec![embd, embd],
            "ffn_gate.weight" | "ffn_up.weight" => vec![embd, ff],
            "ffn_down.weight" => vec![ff, embd],
            _ if t.dims.len() == 1 => vec![embd],
            _ => continue,
        };
        let ty = if t.dims.len() == 1 {
            GgmlType::F32
        } else {
            ty_override.unwrap_or(t.ty)
        };
        seed += 1;
        let n = dims.iter().product::<u64>() as usize;
        w.add_tensor(&t.name, &dims, ty, tensor_bytes(ty, n, seed)?)?;
    }
    Ok(w.to_bytes()?)
}

fn write_model_seeds(model: &Path, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let src = GgufFile::open(model)?;
    let stem = model
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("model");
    let variants: [(&str, u64, Option<GgmlType>); 4] = [
        ("own-types", 32, None),
        ("q8_0", 32, Some(GgmlType::Q8_0)),
        ("q5_1", 32, Some(GgmlType::Q5_1)),
        ("f16", 32, Some(GgmlType::F16)),
    ];
    for (name, embd, ty) in variants {
        let bytes = tiny_model(&src, embd, 64, ty)?;
        let parsed = GgufFile::from_bytes(name, bytes.clone())?;
        rocmforge_model::ModelConfig::from_gguf(&parsed)?;
        let path = out.join(format!("tiny-{stem}-{name}.gguf"));
        std::fs::write(&path, &bytes)?;
        println!("{} ({} bytes)", path.display(), bytes.len());
    }
    Ok(())
}

fn write_tokenizer_seeds(vocab_dir: &Path, out: &Path) -> Result<()> {
    std::fs::create_dir_all(out)?;
    let mut files: Vec<PathBuf> = std::fs::read_dir(vocab_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
        .collect();
    files.sort();
    for (i, path) in files.iter().enumerate() {
        let src = GgufFile::open(path)?;
        let mut w = GgufWriter::new();
        copy_metadata(&src, &mut w, KEPT_TOKENS);
        let gguf = w.to_bytes()?;
        let cut = GgufFile::from_bytes("cut", gguf.clone())?;
        let tok = Tokenizer::from_gguf(&cut)?;
        let text = TEXTS[i % TEXTS.len()];
        let ids = tok.encode(text, true, true)?;
        let mut input = vec![u8::try_from(text.len())?];
        input.extend_from_slice(text.as_bytes());
        input.extend_from_slice(&gguf);
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("vocab");
        let dest = out.join(format!("cut-{stem}.bin"));
        std::fs::write(&dest, &input)?;
        println!(
            "{} ({} bytes, {} ids for the text)",
            dest.display(),
            input.len(),
            ids.len()
        );
    }
    Ok(())
}
