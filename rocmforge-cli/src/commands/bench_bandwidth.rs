//! What a decode step streams: the bytes of the weights one token reads, and the host
//! memory bandwidth those bytes are read at best, measured on the threads of the bench.

use std::time::Instant;

use rayon::prelude::*;
use rocmforge_gguf::GgufFile;
use rocmforge_model::ModelConfig;

/// Bytes of weights one decode step reads: every tensor but the token embedding (one row
/// of it is read), which counts when it is also the output projection (no
/// `output.weight`); of the experts' tensors (`*_exps*`) the share of the experts a token
/// uses.
pub fn decode_weight_bytes(file: &GgufFile, config: &ModelConfig) -> u64 {
    let tied = file.tensor("output.weight").is_none();
    let share = config
        .moe
        .as_ref()
        .filter(|m| m.n_expert > 0)
        .map(|m| m.n_expert_used as f64 / m.n_expert as f64);
    file.tensors()
        .iter()
        .filter(|t| tied || t.name != "token_embd.weight")
        .map(|t| match share {
            Some(s) if t.name.contains("_exps") => (t.size as f64 * s) as u64,
            _ => t.size,
        })
        .sum()
}

/// Bytes of the buffer the bandwidth is measured on: well past any last-level cache.
const BUFFER_BYTES: usize = 512 << 20;

/// Host memory read bandwidth in bytes per second: the best of three passes of the current
/// rayon pool's threads summing a 512 MiB buffer, each thread its own slice.
pub fn host_read_bandwidth() -> f64 {
    let words = vec![1u64; BUFFER_BYTES / 8];
    let chunk = words.len().div_ceil(rayon::current_num_threads().max(1));
    let mut best = 0.0f64;
    for _ in 0..3 {
        let t0 = Instant::now();
        let sum: u64 = words
            .par_chunks(chunk)
            .map(|c| c.iter().fold(0u64, |a, &w| a.wrapping_add(w)))
            .sum();
        let secs = t0.elapsed().as_secs_f64();
        if sum == words.len() as u64 && secs > 0.0 {
            best = best.max(BUFFER_BYTES as f64 / secs);
        }
    }
    best
}
