//! The benchmark table: rows, floors, and the report over a results folder.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use super::report;
use super::rows::{self, Metric};

#[test]
fn the_table_has_issue_7s_fourteen_numbers_and_issue_12s_four_batched_ones() {
    let rows = rows::rows();
    assert_eq!(rows.len(), 18);
    let names: Vec<String> = rows
        .iter()
        .map(|r| format!("{} {}", r.invocation.model.label, r.test_name()))
        .collect();
    assert_eq!(names[0], "8B Q4_K_M pp512");
    assert_eq!(names[12], "8B Q4_K_M tg128 @ d4096");
    assert_eq!(names[13], "8B Q4_K_M pp2048");
    assert_eq!(names[14], "0.5B Q4_K_M tg128 x8 streams");
    assert_eq!(names[17], "8B Q4_K_M tg128 x32 streams");
    assert_eq!(rows::invocations_tsv().lines().count(), 12);
    let tsv = rows::invocations_tsv();
    assert!(tsv.contains("8b-q4_k_m\tllama3-8b\tQ4_K_M\td4096\t512\t128\t4096\t1\n"));
    assert!(tsv.contains("0.5b-q4_k_m\tqwen2.5-0.5b\tQ4_K_M\tc32\t16\t128\t128\t32\n"));
}

#[test]
fn decode_floors_match_the_issue() {
    // Issue 7: about 650 t/s for 8B Q4_K_M, 690 for Q4_0, 376 for Q8_0, 200 for F16.
    for (tag, want) in [
        ("8b-q4_k_m", 650.0),
        ("8b-q4_0", 690.0),
        ("8b-q8_0", 376.0),
        ("8b-f16", 200.0),
    ] {
        let m = rows::MODELS.iter().find(|m| m.tag == tag).unwrap();
        let got = rows::decode_floor(m, 0);
        assert!(
            (got - want).abs() / want < 0.01,
            "{tag}: {got:.1} vs {want}"
        );
    }
    // At depth 4096 the f16 KV cache (32 layers x 8 heads x 128 x K,V) adds 537 MB per token.
    let m = rows::MODELS.iter().find(|m| m.tag == "8b-q4_k_m").unwrap();
    assert_eq!(
        rows::decode_bytes(m, 4096) - rows::decode_bytes(m, 0),
        536_870_912
    );
}

#[test]
fn report_fills_measured_rows_and_names_the_missing() {
    let dir = std::env::temp_dir().join(format!("xtask-bench-report-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("8b-q4_k_m-base.json"),
        r#"{"model":"x","pp":{"tokens_per_s_mean":9298.0,"tokens_per_s_sd":12.0},"tg":{"tokens_per_s_mean":402.0,"tokens_per_s_sd":1.5}}"#,
    )
    .unwrap();
    std::fs::write(dir.join("8b-q4_k_m-base.status"), "0\n").unwrap();
    std::fs::write(dir.join("8b-q4_0-base.status"), "1\n").unwrap();
    std::fs::write(dir.join("8b-f16-base.status"), "skipped\n").unwrap();
    std::fs::write(dir.join("8b-q4_k_m.synth_s"), "41\n").unwrap();
    let (md, json) = report::build(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(lines.len(), 2 + 18);
    assert_eq!(
        lines[2],
        "| 8B Q4_K_M | pp512 | 9,298 | recorded | 9,298 ± 12 | 1.00× | — | — |"
    );
    assert_eq!(
        lines[3],
        "| 8B Q4_K_M | tg128 | 268 | recorded | 402 ± 2 | 1.50× | 650 | 62% |"
    );
    assert!(lines[4].contains("failed (exit 1)"), "{}", lines[4]);
    assert!(lines[8].contains("skipped (time budget)"), "{}", lines[8]);
    assert!(lines[10].contains("not run"), "{}", lines[10]);
    let rows = json.as_array().unwrap();
    assert_eq!(rows[1]["tokens_per_s_mean"], 402.0);
    assert_eq!(rows[1]["synth_seconds"], 41.0);
    assert!(rows[2]["tokens_per_s_mean"].is_null());
    assert_eq!(rows::rows()[1].metric, Metric::Decode);
}

#[test]
fn report_takes_llama_cpp_from_the_same_call_where_run_sh_measured_it() {
    let dir = std::env::temp_dir().join(format!("xtask-bench-llama-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("0.5b-q4_k_m-base.json"),
        r#"{"pp":{"tokens_per_s_mean":69000.0,"tokens_per_s_sd":500.0},"tg":{"tokens_per_s_mean":630.0,"tokens_per_s_sd":3.0}}"#,
    )
    .unwrap();
    // llama-bench -o json: one entry per test (abridged to the fields the report reads).
    std::fs::write(
        dir.join("0.5b-q4_k_m-base.llama.json"),
        r#"[
  {"model_type": "qwen2 1B Q4_K - Medium", "n_prompt": 512, "n_gen": 0, "n_depth": 0, "avg_ts": 44134.24, "stddev_ts": 14578.55},
  {"model_type": "qwen2 1B Q4_K - Medium", "n_prompt": 0, "n_gen": 128, "n_depth": 0, "avg_ts": 901.34, "stddev_ts": 8.08}
]"#,
    )
    .unwrap();
    // llama-batched-bench's JSON lines: the line of the row's stream count.
    std::fs::write(
        dir.join("0.5b-q4_k_m-c8.json"),
        r#"{"tg":{"tokens_per_s_mean":600.0},"batched_tg":{"sequences":8,"tokens_per_s_mean":3081.0,"tokens_per_s_sd":0.0}}"#,
    )
    .unwrap();
    std::fs::write(
        dir.join("0.5b-q4_k_m-c8.llama.jsonl"),
        "{\"pp\": 128, \"tg\": 128, \"pl\": 32, \"speed_tg\": 7300.4}\n{\"pp\": 128, \"tg\": 128, \"pl\": 8, \"speed_tg\": 3967.38}\n",
    )
    .unwrap();
    // A depth that does not match the row is not taken.
    std::fs::write(
        dir.join("8b-q4_k_m-d4096.llama.json"),
        r#"[{"n_prompt": 0, "n_gen": 128, "n_depth": 0, "avg_ts": 271.1, "stddev_ts": 0.3}]"#,
    )
    .unwrap();
    let (md, json) = report::build(&dir);
    std::fs::remove_dir_all(&dir).unwrap();
    let lines: Vec<&str> = md.lines().collect();
    assert_eq!(
        lines[2 + 10],
        "| 0.5B Q4_K_M | pp512 | 44,134 | same call | 69,000 ± 500 | 1.56× | — | — |"
    );
    assert_eq!(
        lines[2 + 11],
        "| 0.5B Q4_K_M | tg128 | 901 | same call | 630 ± 3 | 0.70× | 7,656 | 8% |"
    );
    assert!(
        lines[2 + 12].contains("| 246 | recorded |"),
        "{}",
        lines[2 + 12]
    );
    let rows = json.as_array().unwrap();
    assert_eq!(rows[11]["llama_cpp_source"], "same call");
    assert_eq!(rows[11]["llama_cpp_tokens_per_s"], 901.34);
    assert_eq!(rows[11]["llama_cpp_recorded_tokens_per_s"], 863.0);
    assert_eq!(rows[12]["llama_cpp_source"], "recorded");
}
