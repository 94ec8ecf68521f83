//! Issue 7's benchmark table: the models, the `rocmforge bench` invocations that measure
//! them, llama.cpp's reference numbers (one H100, llama.cpp 0.5.0, flash attention on) and
//! the decode floor of each row.

use crate::synth::{FileType, Shape, tensor_type};

/// Device-to-device copy rate of the H100 (bytes read + written per second), issue 7.
pub const COPY_BYTES_PER_S: f64 = 3.0e12;

/// One synthetic model of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Model {
    /// Short name used for files and on `run.sh`'s command line.
    pub tag: &'static str,
    /// `synth-model --shape`.
    pub shape: &'static str,
    pub ftype: FileType,
    /// How the table names it.
    pub label: &'static str,
}

/// One `rocmforge bench` run of a model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Invocation {
    pub model: Model,
    /// Names the run among the model's runs (and its result file `<tag>-<key>.json`).
    pub key: &'static str,
    pub n_prompt: usize,
    pub n_gen: usize,
    /// Tokens already in the KV cache before the measured runs (llama-bench's -d).
    pub depth: usize,
    /// Sequences decoded together (`--concurrency`; 1: the single-sequence rows).
    pub streams: usize,
}

/// Which of an invocation's rates a row reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    Prefill,
    Decode,
    /// Aggregate decode of the invocation's `streams` sequences (issue 12's batched rows).
    Batched,
}

/// One number of the table.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Row {
    pub invocation: Invocation,
    pub metric: Metric,
    /// llama.cpp's tokens per second.
    pub reference: f64,
}

const fn model(
    tag: &'static str,
    shape: &'static str,
    ftype: FileType,
    label: &'static str,
) -> Model {
    Model {
        tag,
        shape,
        ftype,
        label,
    }
}

/// The models in the order `run.sh` synthesizes them (small and fast first).
pub const MODELS: [Model; 6] = [
    model("0.5b-q8_0", "qwen2.5-0.5b", FileType::Q8_0, "0.5B Q8_0"),
    model("0.5b-q4_k_m", "qwen2.5-0.5b", FileType::Q4KM, "0.5B Q4_K_M"),
    model("8b-q4_0", "llama3-8b", FileType::Q4_0, "8B Q4_0"),
    model("8b-q4_k_m", "llama3-8b", FileType::Q4KM, "8B Q4_K_M"),
    model("8b-q8_0", "llama3-8b", FileType::Q8_0, "8B Q8_0"),
    model("8b-f16", "llama3-8b", FileType::F16, "8B F16"),
];

fn find(tag: &str) -> Model {
    MODELS
        .iter()
        .copied()
        .find(|m| m.tag == tag)
        .unwrap_or(MODELS[0])
}

fn inv(tag: &str, key: &'static str, n_prompt: usize, n_gen: usize, depth: usize) -> Invocation {
    Invocation {
        model: find(tag),
        key,
        n_prompt,
        n_gen,
        depth,
        streams: 1,
    }
}

/// Issue 12's batched rows: `streams` sequences of a 16-token prompt after 128 cached tokens,
/// 128 tokens each, one repetition (llama.cpp: `llama-batched-bench -npp 128 -ntg 128`).
fn batched(tag: &str, key: &'static str, streams: usize) -> Invocation {
    Invocation {
        streams,
        ..inv(tag, key, 16, 128, 128)
    }
}

/// Every invocation, grouped by model in [`MODELS`] order.
pub fn invocations() -> Vec<Invocation> {
    let mut out = Vec::new();
    for m in MODELS {
        out.push(inv(m.tag, "base", 512, 128, 0));
        if m.tag == "8b-q4_k_m" {
            out.push(inv(m.tag, "pp2048", 2048, 16, 0));
            out.push(inv(m.tag, "d4096", 512, 128, 4096));
        }
        if m.tag == "8b-q4_k_m" || m.tag == "0.5b-q4_k_m" {
            out.push(batched(m.tag, "c8", 8));
            out.push(batched(m.tag, "c32", 32));
        }
    }
    out
}

/// The table, in its order.
pub fn rows() -> Vec<Row> {
    let table: [(&str, &str, Metric, f64); 18] = [
        ("8b-q4_k_m", "base", Metric::Prefill, 9298.0),
        ("8b-q4_k_m", "base", Metric::Decode, 268.0),
        ("8b-q4_0", "base", Metric::Prefill, 10843.0),
        ("8b-q4_0", "base", Metric::Decode, 320.0),
        ("8b-q8_0", "base", Metric::Prefill, 10415.0),
        ("8b-q8_0", "base", Metric::Decode, 230.0),
        ("8b-f16", "base", Metric::Prefill, 20334.0),
        ("8b-f16", "base", Metric::Decode, 165.0),
        ("0.5b-q8_0", "base", Metric::Prefill, 47027.0),
        ("0.5b-q8_0", "base", Metric::Decode, 909.0),
        ("0.5b-q4_k_m", "base", Metric::Prefill, 40057.0),
        ("0.5b-q4_k_m", "base", Metric::Decode, 863.0),
        ("8b-q4_k_m", "d4096", Metric::Decode, 246.0),
        ("8b-q4_k_m", "pp2048", Metric::Prefill, 9682.0),
        // Issue 12's table (llama-batched-bench S_TG, same H100, 2026-12-06).
        ("0.5b-q4_k_m", "c8", Metric::Batched, 3877.0),
        ("0.5b-q4_k_m", "c32", Metric::Batched, 7395.0),
        ("8b-q4_k_m", "c8", Metric::Batched, 970.0),
        ("8b-q4_k_m", "c32", Metric::Batched, 3312.0),
    ];
    let all = invocations();
    table
        .iter()
        .filter_map(|&(tag, key, metric, reference)| {
            let invocation = *all.iter().find(|i| i.model.tag == tag && i.key == key)?;
            Some(Row {
                invocation,
                metric,
                reference,
            })
        })
        .collect()
}

impl Row {
    /// "pp512", "tg128", "tg128 @ d4096".
    pub fn test_name(&self) -> String {
        let i = &self.invocation;
        let base = match self.metric {
            Metric::Prefill => format!("pp{}", i.n_prompt),
            Metric::Decode => format!("tg{}", i.n_gen),
            Metric::Batched => return format!("tg{} x{} streams", i.n_gen, i.streams),
        };
        if i.depth > 0 {
            format!("{base} @ d{}", i.depth)
        } else {
            base
        }
    }
}

/// Bytes one decode step reads: every weight except the embedding rows (unless the
/// embedding is also the LM head), plus the f16 K and V of `depth` cached tokens.
pub fn decode_bytes(m: &Model, depth: usize) -> u64 {
    let Some(shape) = Shape::by_name(m.shape) else {
        return 0;
    };
    let weights: u64 = shape
        .tensors()
        .iter()
        .filter(|t| shape.tied_output || t.name != "token_embd.weight")
        .map(|t| {
            let ty = tensor_type(m.ftype, t, shape.n_layers, shape.tied_output);
            ty.bytes_for(t.n_elements() as u64).unwrap_or(0)
        })
        .sum();
    let kv = (shape.n_layers * depth * shape.n_kv_heads * shape.head_dim() * 2 * 2) as u64;
    weights + kv
}

/// The decode floor in tokens per second: [`decode_bytes`] at [`COPY_BYTES_PER_S`].
pub fn decode_floor(m: &Model, depth: usize) -> f64 {
    COPY_BYTES_PER_S / decode_bytes(m, depth).max(1) as f64
}

/// The invocations as tab-separated lines for `run.sh`:
/// `tag shape type key n_prompt n_gen depth streams`.
pub fn invocations_tsv() -> String {
    invocations()
        .iter()
        .map(|i| {
            format!(
                "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
                i.model.tag,
                i.model.shape,
                i.model.ftype.name(),
                i.key,
                i.n_prompt,
                i.n_gen,
                i.depth,
                i.streams
            )
        })
        .collect()
}
