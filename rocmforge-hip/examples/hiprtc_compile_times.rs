//! Compiles every embedded kernel family with hiprtc for one AMD target and prints the time each
//! takes (the first-use cost on a GPU outside the embedded list). Needs no GPU, only hiprtc.
//!
//! ```sh
//! cargo run --release -p rocmforge-hip --example hiprtc_compile_times -- gfx1031 [family ...]
//! ```
//!
//! Images go to a fresh temporary cache folder, so every family is really compiled. Besides the
//! wall time it prints the CPU time of the compiling thread (`/proc/thread-self/schedstat`; hiprtc
//! compiles in the calling thread), which a machine shared with other work does not inflate.

use rocmforge_hip::hiprtc;
use rocmforge_hip::kernel_images::{runtime, sources};

/// Nanoseconds this thread has run on a CPU (Linux), if known.
fn cpu_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

fn main() {
    let mut args = std::env::args().skip(1);
    let arch = args.next().unwrap_or_else(|| "gfx1031".to_string());
    let only: Vec<String> = args.collect();
    match hiprtc::version() {
        Ok(v) => println!("hiprtc {v}, target {arch}"),
        Err(e) => {
            eprintln!("no hiprtc: {e}");
            std::process::exit(1);
        }
    }
    let root = std::env::temp_dir().join(format!("rocmforge-hiprtc-times-{}", std::process::id()));
    let mut failed = 0;
    let mut total = 0.0;
    let mut total_cpu = 0.0;
    for family in sources::families() {
        if !only.is_empty() && !only.iter().any(|f| f == family) {
            continue;
        }
        let cpu_before = cpu_ns();
        match runtime::load_or_compile(&root, family, &arch) {
            Ok((code, _, runtime::Provenance::Compiled { seconds })) => {
                let cpu = match (cpu_before, cpu_ns()) {
                    (Some(a), Some(b)) => b.saturating_sub(a) as f64 / 1e9,
                    _ => f64::NAN,
                };
                total += seconds;
                total_cpu += cpu;
                println!(
                    "{family:<24} {seconds:8.1} s wall {cpu:8.1} s cpu {:>10} bytes",
                    code.len()
                );
            }
            Ok((_, path, how)) => println!("{family:<24} {how:?} {}", path.display()),
            Err(e) => {
                failed += 1;
                println!("{family:<24} FAILED: {e}");
            }
        }
    }
    println!("total {total:.1} s wall, {total_cpu:.1} s cpu, {failed} failed");
    let _ = std::fs::remove_dir_all(&root);
    if failed > 0 {
        std::process::exit(1);
    }
}
