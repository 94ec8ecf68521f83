//! The GPU op suite of rocmforge-tensor (`cargo xtask test --gpu`, or `bash gpu-bundle/run.sh`).
//!
//! A plain binary (`harness = false`), like rocmforge-hip's GPU suite: it opens GPU 0, runs every
//! check with one test body on both backends (the CPU op is the reference), prints one line per
//! check, a table of each op's largest relative error, and a last line `N passed, M failed`; it
//! exits with status 1 when anything failed. Without a GPU it fails (never skips).
//!
//! Relative error = max |gpu - cpu| / max |cpu| over the op's output. Outputs are filled with NaN
//! before each GPU run, and any NaN where the CPU has a number fails the check.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod argmax;
mod attention;
mod batch_kv;
mod decode_fused;
mod elementwise;
mod embedding;
mod loader;
mod moe;
mod norm;
mod rope;
mod sample;
mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Mutex;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use rocmforge_tensor::Backend;
use support::{Ctx, Rng, TestFn};

const TESTS: &[(&str, TestFn)] = &[
    ("elementwise_add_mul_scale", elementwise::binary_ops),
    (
        "elementwise_silu_mul_gelu_mul_gelu_softcap",
        elementwise::silu_mul_and_gelu,
    ),
    ("softmax_masked_rows", elementwise::softmax_masked),
    (
        "swiglu_oai_add_bias_rows_and_ids",
        elementwise::swiglu_oai_and_add_bias,
    ),
    (
        "mixed_backends_are_errors",
        elementwise::wrong_backend_is_an_error,
    ),
    ("rms_norm", norm::rms_norm),
    ("layer_norm", norm::layer_norm),
    ("add_rms_norm", norm::add_rms_norm),
    ("rope_normal_neox_partial_yarn", rope::rope),
    ("embedding_float_and_quantized", embedding::embedding),
    ("kv_append_f16", attention::kv_append),
    ("attention_decode_prefill_gqa_sinks", attention::attention),
    ("ragged_batch_kv_append_attention", batch_kv::ragged_batch),
    ("copy_rows_f16", batch_kv::copy_rows),
    ("kv_pool_copy_block", batch_kv::copy_block),
    ("argmax_top_k", argmax::argmax_and_top_k),
    ("sample_rows_vs_cpu_chain", sample::sample_rows),
    ("sample_rows_finish_on_host", sample::finish_on_host_flag),
    ("sample_rows_logit_bias", sample::logit_bias_on_the_device),
    ("add_rms_norm_q8_1", decode_fused::add_rms_norm_q8_1),
    ("silu_mul_q8_1", decode_fused::silu_mul_q8_1),
    (
        "kv_append_at_embedding_at",
        decode_fused::kv_append_at_and_embedding_at,
    ),
    ("moe_route_top_k", moe::route),
    ("moe_matmul_id_quantized", moe::matmul_id),
    ("moe_matmul_id_swiglu", moe::matmul_id_swiglu),
    ("moe_weighted_sum_bad_ids", moe::weighted_sum_and_bad_ids),
    (
        "loader_16_threads_one_upload",
        loader::sixteen_threads_one_upload,
    ),
];

fn main() {
    let gpu = match Backend::hip(0) {
        Ok(b) => b,
        Err(err) => {
            println!("GPU op suite: cannot open GPU 0: {err}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    if let Some(info) = gpu.device().map(|d| d.info()) {
        println!(
            "device: {} ({}, {}, warp {})",
            info.name, info.platform, info.arch, info.warp_size
        );
    }
    let seed = std::env::var("ROCMFORGE_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("seed: {seed} (set ROCMFORGE_TEST_SEED to repeat)");
    let ctx = Ctx {
        cpu: Backend::Cpu,
        gpu,
        rng: Mutex::new(Rng::new(seed)),
        rows: Mutex::new(Vec::new()),
    };
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in TESTS {
        let start = Instant::now();
        let result = catch_unwind(AssertUnwindSafe(|| test(&ctx)));
        let ms = start.elapsed().as_secs_f64() * 1e3;
        match result {
            Ok(Ok(())) => {
                passed += 1;
                println!("ok     {name} ({ms:.0} ms)");
            }
            Ok(Err(msg)) => {
                failed += 1;
                println!("FAILED {name}: {msg}");
            }
            Err(_) => {
                failed += 1;
                println!("FAILED {name}: panicked");
            }
        }
    }
    support::table(&ctx.rows.lock().unwrap());
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
