//! The GPU suite (`cargo xtask test --gpu`, or `bash gpu-bundle/run.sh` on a GPU machine).
//!
//! A plain binary (`harness = false`): it opens device 0, runs every check, prints one line per
//! check and a last line `N passed, M failed`, and exits with status 1 when anything failed. With
//! no GPU it fails loudly (1 failed), never skips.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod kernels;
mod memory;
mod replay_threads;
mod streams;
mod support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use rocmforge_hip::HipBackend;
use support::{Ctx, TestFn};

const TESTS: &[(&str, TestFn)] = &[
    ("device_attributes", memory::device_attributes),
    ("alloc_free", memory::alloc_free),
    ("round_trip_1gib_h2d_d2d_d2h", memory::round_trip_1gib),
    ("pinned_async_copies", memory::pinned_async_copies),
    ("out_of_memory_is_an_error", memory::out_of_memory),
    ("kernel_fill_f32", kernels::fill_f32),
    ("kernel_add_f32", kernels::add_f32),
    ("kernel_reduce_sum_f32", kernels::reduce_sum_f32),
    ("kernel_cast_f32_f16", kernels::cast_f32_f16),
    ("kernel_cast_f32_bf16", kernels::cast_f32_bf16),
    ("kernel_warp_size_u32", kernels::warp_size_u32),
    ("kernel_copy_u32x4", kernels::copy_u32x4),
    ("kernel_spin_u64_and_event_timing", streams::event_timing),
    ("launch_errors", kernels::launch_errors),
    ("two_streams_overlap", streams::two_streams_overlap),
    ("graph_capture_1000_replays", replay_threads::graph_replays),
    ("eight_threads_at_once", replay_threads::eight_threads),
];

fn main() {
    let backend = match HipBackend::new(0) {
        Ok(b) => b,
        Err(e) => {
            println!("GPU suite: cannot open GPU 0: {e}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    let info = backend.info();
    println!(
        "device: {} ({}, {}, {} compute units, warp {}, {:.1} GiB)",
        info.name,
        info.platform,
        info.arch,
        info.compute_units,
        info.warp_size,
        info.total_memory as f64 / (1u64 << 30) as f64
    );
    let module = match backend.load_kernels("test_kernels") {
        Ok(m) => m,
        Err(e) => {
            println!("GPU suite: cannot load the test kernels: {e}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    println!("kernels: {}", module.source());
    let ctx = Ctx { backend, module };
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in TESTS {
        let start = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| test(&ctx)))
            .unwrap_or_else(|p| Err(format!("panicked: {}", support::panic_text(&p))));
        let ms = start.elapsed().as_secs_f64() * 1e3;
        match outcome {
            Ok(note) => {
                passed += 1;
                println!(
                    "test {name} ... ok ({ms:.0} ms){}",
                    if note.is_empty() {
                        String::new()
                    } else {
                        format!(" {note}")
                    }
                );
            }
            Err(msg) => {
                failed += 1;
                println!("test {name} ... FAILED ({ms:.0} ms): {msg}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
