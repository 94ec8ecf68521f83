//! Writes the seed corpus of the `gguf_parse` fuzz target (`fuzz/corpus/gguf_parse`).
//!
//! ```text
//! cargo run -p rocmforge-gguf --example fuzz_seeds -- fuzz/corpus/gguf_parse ../shared/testdata/vocab
//! ```
//!
//! Seeds: tiny valid files built with `GgufWriter` (every metadata type, nested arrays, tensors of
//! several types, a custom alignment), small valid copies of the vocab files (their keys, arrays cut
//! to a few hundred items) and a 4 KiB raw head of each vocab file.

use std::path::{Path, PathBuf};

use rocmforge_gguf::{
    GgmlType, GgufFile, GgufResult, GgufWriter, MetadataArray, MetadataValue, MetadataValueType,
};

/// Items kept of each array in the vocab-derived seeds.
const VOCAB_ARRAY_ITEMS: usize = 300;
/// Bytes kept of each vocab file in the raw-head seeds.
const RAW_HEAD_BYTES: usize = 4096;

fn tiny_model() -> GgufResult<Vec<u8>> {
    let mut w = GgufWriter::new();
    w.add_metadata(
        "general.architecture",
        MetadataValue::String("llama".into()),
    );
    w.add_metadata("general.name", MetadataValue::String("tiny".into()));
    w.add_metadata("llama.block_count", MetadataValue::U32(1));
    w.add_metadata("llama.rope.freq_base", MetadataValue::F32(10000.0));
    let f32s = |n: usize| -> Vec<u8> { (0..n).flat_map(|i| (i as f32).to_le_bytes()).collect() };
    w.add_tensor("token_embd.weight", &[32, 2], GgmlType::Q8_0, vec![1; 68])?;
    w.add_tensor("blk.0.attn_norm.weight", &[8], GgmlType::F32, f32s(8))?;
    w.add_tensor(
        "blk.0.attn_q.weight",
        &[32, 2],
        GgmlType::Q4_1,
        vec![0x35; 40],
    )?;
    w.add_tensor(
        "blk.0.ffn_up.weight",
        &[256],
        GgmlType::Q4_K,
        vec![0x11; 144],
    )?;
    w.add_tensor("output.weight", &[4, 2], GgmlType::F16, vec![0x3c; 16])?;
    w.to_bytes()
}

fn every_value_type() -> GgufResult<Vec<u8>> {
    use MetadataValue as V;
    let mut w = GgufWriter::new();
    w.set_alignment(64);
    w.add_metadata("u8", V::U8(200));
    w.add_metadata("i8", V::I8(-5));
    w.add_metadata("u16", V::U16(60000));
    w.add_metadata("i16", V::I16(-30000));
    w.add_metadata("u32", V::U32(4_000_000_000));
    w.add_metadata("i32", V::I32(-2_000_000_000));
    w.add_metadata("f32", V::F32(1e-5));
    w.add_metadata("bool", V::Bool(true));
    w.add_metadata("string", V::String("héllo".into()));
    w.add_metadata("u64", V::U64(u64::MAX));
    w.add_metadata("i64", V::I64(i64::MIN));
    w.add_metadata("f64", V::F64(-2.5));
    let strings = V::Array(MetadataArray::new(
        MetadataValueType::String,
        vec![V::String("a".into()), V::String("bc".into())],
    ));
    let inner = V::Array(MetadataArray::new(
        MetadataValueType::I32,
        vec![V::I32(1), V::I32(-1)],
    ));
    w.add_metadata("strings", strings);
    w.add_metadata(
        "nested",
        V::Array(MetadataArray::new(
            MetadataValueType::Array,
            vec![inner.clone(), inner],
        )),
    );
    w.add_tensor("x", &[2, 2], GgmlType::BF16, vec![0x40; 8])?;
    w.to_bytes()
}

/// A valid copy of a vocab file with every array cut to its first items.
fn mini_vocab(path: &Path) -> GgufResult<Vec<u8>> {
    let file = GgufFile::open(path)?;
    let mut w = GgufWriter::new();
    for (key, value) in file.metadata().iter() {
        let value = match value {
            MetadataValue::Array(a) => MetadataValue::Array(MetadataArray::new(
                a.elem_type,
                a.values.iter().take(VOCAB_ARRAY_ITEMS).cloned().collect(),
            )),
            other => other.clone(),
        };
        w.add_metadata(key, value);
    }
    w.to_bytes()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), String> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    println!("{} ({} bytes)", path.display(), bytes.len());
    Ok(())
}

fn run() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let out = PathBuf::from(args.next().ok_or("usage: fuzz_seeds OUT_DIR [VOCAB_DIR]")?);
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    write(
        &out,
        "tiny-model.gguf",
        &tiny_model().map_err(|e| e.to_string())?,
    )?;
    write(
        &out,
        "every-value-type.gguf",
        &every_value_type().map_err(|e| e.to_string())?,
    )?;
    write(
        &out,
        "empty-v3.gguf",
        &GgufWriter::new().to_bytes().map_err(|e| e.to_string())?,
    )?;
    if let Some(vocab_dir) = args.next() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(&vocab_dir)
            .map_err(|e| format!("{vocab_dir}: {e}"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "gguf"))
            .collect();
        entries.sort();
        for path in entries {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("vocab");
            write(
                &out,
                &format!("mini-{stem}.gguf"),
                &mini_vocab(&path).map_err(|e| e.to_string())?,
            )?;
            let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
            let head = &bytes[..bytes.len().min(RAW_HEAD_BYTES)];
            write(&out, &format!("head-{stem}.gguf"), head)?;
        }
    }
    Ok(())
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}
