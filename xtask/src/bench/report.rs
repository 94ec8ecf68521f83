//! `xtask bench-report`: reads what `run.sh` left in its work folder (`<tag>-<key>.json`,
//! the JSON line of `rocmforge bench`; `<tag>-<key>.status`, its exit status;
//! `<tag>.synth_s`, the synthesis time; `<tag>-<key>.llama.json`, llama-bench's `-o json`
//! output for the same file and arguments when the bundle built llama.cpp in the call) and
//! prints issue 7's table with our numbers, the ratio to llama.cpp (its number from the same
//! call where there is one, else the recorded reference, and the table says which) and the
//! share of the decode floor; writes `bench-results.json` and `bench-results.md`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::{Value, json};

use super::rows::{self, Metric, Row};

#[derive(Args, Debug, Clone)]
pub struct ReportArgs {
    /// The folder run.sh wrote the raw results to.
    #[arg(long)]
    pub results: PathBuf,
    /// Where bench-results.json and bench-results.md go (default: --results).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// What the numbers were measured on (printed in the header).
    #[arg(long, default_value = "")]
    pub machine: String,
}

/// What one row measured, or why not.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Measured { mean: f64, sd: f64 },
    Missing(String),
}

fn read_json(path: &Path) -> Option<Value> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
}

fn status_of(results: &Path, stem: &str) -> String {
    match std::fs::read_to_string(results.join(format!("{stem}.status"))) {
        Ok(s) => match s.trim() {
            "124" => "timed out".to_string(),
            "skipped" => "skipped (time budget)".to_string(),
            "0" => "no result".to_string(),
            code => format!("failed (exit {code})"),
        },
        Err(_) => "not run".to_string(),
    }
}

/// The outcome of `row` in `results`, and the raw JSON if any.
pub fn outcome(results: &Path, row: &Row) -> (Outcome, Option<Value>) {
    let stem = format!("{}-{}", row.invocation.model.tag, row.invocation.key);
    let Some(v) = read_json(&results.join(format!("{stem}.json"))) else {
        return (Outcome::Missing(status_of(results, &stem)), None);
    };
    let part = match row.metric {
        Metric::Prefill => &v["pp"],
        Metric::Decode => &v["tg"],
        Metric::Batched => &v["batched_tg"],
    };
    let outcome = match (
        part["tokens_per_s_mean"].as_f64(),
        part["tokens_per_s_sd"].as_f64(),
    ) {
        (Some(mean), sd) => Outcome::Measured {
            mean,
            sd: sd.unwrap_or(0.0),
        },
        _ => Outcome::Missing("no rate in the JSON".to_string()),
    };
    (outcome, Some(v))
}

/// llama.cpp's rate for `row` from the same call, if run.sh measured it: llama-bench's JSON
/// (`<tag>-<key>.llama.json`, one entry per test: the entry with the row's prompt (prefill) or
/// generated (decode) tokens and depth), or for a batched row llama-batched-bench's JSON lines
/// (`<tag>-<key>.llama.jsonl`: the line of the row's stream count, its `speed_tg`).
pub fn llama_same_call(results: &Path, row: &Row) -> Option<(f64, f64)> {
    let i = &row.invocation;
    let stem = format!("{}-{}", i.model.tag, i.key);
    if row.metric == Metric::Batched {
        let text = std::fs::read_to_string(results.join(format!("{stem}.llama.jsonl"))).ok()?;
        return text.lines().find_map(|l| {
            let v: Value = serde_json::from_str(l).ok()?;
            let rate = v["speed_tg"]
                .as_f64()
                .filter(|r| r.is_finite() && *r > 0.0)?;
            (v["pl"].as_u64() == Some(i.streams as u64)).then_some((rate, 0.0))
        });
    }
    let text = std::fs::read_to_string(results.join(format!("{stem}.llama.json"))).ok()?;
    let tests: Value = serde_json::from_str(&text).ok()?;
    let (n_prompt, n_gen) = match row.metric {
        Metric::Prefill => (i.n_prompt, 0),
        _ => (0, i.n_gen),
    };
    let field = |t: &Value, k: &str| t[k].as_u64().unwrap_or(0);
    tests.as_array()?.iter().find_map(|t| {
        let matches = field(t, "n_prompt") == n_prompt as u64
            && field(t, "n_gen") == n_gen as u64
            && field(t, "n_depth") == i.depth as u64;
        let mean = t["avg_ts"].as_f64().filter(|m| m.is_finite() && *m > 0.0)?;
        matches.then(|| (mean, t["stddev_ts"].as_f64().unwrap_or(0.0)))
    })
}

fn thousands(x: f64) -> String {
    let s = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// The markdown table and the JSON array of every row.
pub fn build(results: &Path) -> (String, Value) {
    let mut md = String::from(
        "| model | test | llama.cpp t/s | llama.cpp from | ROCmForge t/s | ratio | decode floor t/s | % of floor |\n\
         |---|---|---:|---|---:|---:|---:|---:|\n",
    );
    let mut all = Vec::new();
    for row in rows::rows() {
        let m = row.invocation.model;
        let (outcome, raw) = outcome(results, &row);
        let same_call = llama_same_call(results, &row);
        let (reference, source) = match same_call {
            Some((mean, _)) => (mean, "same call"),
            None => (row.reference, "recorded"),
        };
        let floor =
            (row.metric == Metric::Decode).then(|| rows::decode_floor(&m, row.invocation.depth));
        let (ours, ratio, pct) = match &outcome {
            Outcome::Measured { mean, sd } => (
                format!("{} ± {}", thousands(*mean), thousands(*sd)),
                format!("{:.2}×", mean / reference),
                floor.map_or("—".to_string(), |f| format!("{:.0}%", 100.0 * mean / f)),
            ),
            Outcome::Missing(why) => (why.clone(), "—".to_string(), "—".to_string()),
        };
        let floor_s = floor.map_or("—".to_string(), thousands);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {source} | {ours} | {ratio} | {floor_s} | {pct} |",
            m.label,
            row.test_name(),
            thousands(reference)
        );
        let synth_s = std::fs::read_to_string(results.join(format!("{}.synth_s", m.tag)))
            .ok()
            .and_then(|s| s.trim().parse::<f64>().ok());
        all.push(json!({
            "model": m.label, "tag": m.tag, "test": row.test_name(),
            "llama_cpp_tokens_per_s": reference,
            "llama_cpp_sd": same_call.map(|(_, sd)| sd),
            "llama_cpp_source": source,
            "llama_cpp_recorded_tokens_per_s": row.reference,
            "tokens_per_s_mean": match &outcome { Outcome::Measured { mean, .. } => json!(mean), Outcome::Missing(_) => Value::Null },
            "tokens_per_s_sd": match &outcome { Outcome::Measured { sd, .. } => json!(sd), Outcome::Missing(_) => Value::Null },
            "missing": match &outcome { Outcome::Missing(w) => json!(w), Outcome::Measured { .. } => Value::Null },
            "decode_floor_tokens_per_s": floor,
            "decode_bytes_per_token": (row.metric == Metric::Decode).then(|| rows::decode_bytes(&m, row.invocation.depth)),
            "synth_seconds": synth_s,
            "raw": raw,
        }));
    }
    (md, Value::Array(all))
}

pub fn run(args: &ReportArgs) -> Result<()> {
    let (md, json) = build(&args.results);
    let out = args.out.clone().unwrap_or_else(|| args.results.clone());
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let header = if args.machine.is_empty() {
        String::new()
    } else {
        format!("Measured on: {}\n\n", args.machine)
    };
    let text = format!("{header}{md}");
    std::fs::write(out.join("bench-results.md"), &text)
        .with_context(|| format!("writing {}/bench-results.md", out.display()))?;
    let pretty = serde_json::to_string_pretty(&json)?;
    std::fs::write(out.join("bench-results.json"), pretty)
        .with_context(|| format!("writing {}/bench-results.json", out.display()))?;
    print!("{text}");
    Ok(())
}
