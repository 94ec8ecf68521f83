//! Decode matvec bandwidth of `rocmforge_tensor::hip::matmul` (not a test: prints tables).
//!
//! For each weight type and shape (Llama-3-8B and Qwen2.5-0.5B projections), one `matmul`
//! call = everything the decode step pays for one projection (activation quantization or
//! rounding included). Timed with device events after 10 warm-up calls:
//! - "graph": a graph of back-to-back calls captured once and replayed (as a captured decode
//!   step runs), the median of 30 replays divided by the calls per graph;
//! - "call": the median of 100 single calls, each between two events (launch gaps included).
//!
//! Weights are random bytes (float fields kept finite), rotated among enough copies that they
//! cannot stay in the L2 cache. The two numbers of each shape: bytes = weight bytes (each read
//! once; the activations and outputs are under 0.2% of them), FLOPs = 2 * rows * cols per token,
//! far under any compute rate, so the floor is bytes / 3.0 TB/s (the H100's device-to-device
//! copy rate, bytes read + written, measured with rocmforge-hip's bench_copy). The table also
//! shows this device's own copy rate.
//!
//! Then n_tokens = 2, 4, 8, 16, 32 (continuous batching): up to 8 the weights are read once per
//! call, more tokens take the BLAS path. `RF_BENCH_BATCHED_ONLY=1` skips the one-token table.
//!
//! Then the batched-decode tile kernels against the BLAS path (`RF_BENCH_MMQT_ONLY=1`: only
//! this table): Llama-3-8B q/o, gate/up and down in Q4_K, Q6_K, Q8_0 and Q4_0 at 16, 32 and
//! 64 tokens (Q4_K, Q6_K also 128 and 256), `mmqt_<type>` (tensor cores) beside dequantize +
//! BLAS, both with the activation quantization or conversion included, the portable
//! `mmqt_<type>_dp4a` at 32 tokens, the 64-token tile at 16 and 32 tokens (default there: 32
//! tokens per block), the column split's target of 0 (no split), 2 and 8 thread blocks per CU
//! (default 4), and Qwen2.5-0.5B q/o, gate/up and down (Q8_0; Q4_K where the columns allow) at
//! 16, 32 and 64 tokens, mmqt and BLAS.
//!
//! `RF_BENCH_SMALL_ONLY=1`: only decode batches of 2, 4 and 8 tokens, the matvec kernels
//! beside the tile kernels (`bench_matmul_small.md`).
//!
//! With `$OUT` set the tables are also written to `$OUT/bench_matmul.md` and
//! `$OUT/bench_matmul.json`. `RF_BENCH_QUICK=1` runs fewer shapes; `RF_BENCH_TAG` names the
//! files (`bench_matmul-<tag>.*`) so that two builds can be compared in one run;
//! `RF_BENCH_FUSED=never|always`, `RF_BENCH_BLOCKS_PER_CU=n` and `RF_BENCH_ROWS=1|2|4` (weight
//! rows per thread of the 2..=8-token matvec kernels) select kernel variants.
//!
//! Run: `cargo run --release -p rocmforge-tensor --example bench_matmul` (needs a GPU and the
//! kernel images; `cargo xtask gpu-bundle` packages it as `bin/bench_matmul`).
//!
//! ## Results (NVIDIA H100 80GB HBM3, 2026-11-27, copy rate measured 2989 GB/s read + write)
//!
//! One token, µs per call in a replayed graph, % of 3.0 TB/s; before = the two-launch kernels
//! (q8_1 quantization + `mmvq`), after = what `FusedMode::Auto` picks, both in the same run:
//! Llama-3-8B q/o 4096x4096: Q4_K 37 -> 42%, Q6_K 32 -> 49%, Q4_0 43%, Q8_0 56 -> 59%, F16
//! 76 -> 81%; k/v 1024x4096: 9-46% -> 17-50%; gate/up 14336x4096: Q4_K 55 -> 70%, Q6_K
//! 44 -> 78%, Q4_0 66 -> 70%, Q8_0 83%, F16 94%; down 4096x14336 (two launches, the staged
//! activations do not fit): Q4_K 54%, Q6_K 48%, Q4_0 59%, Q8_0 73%, F16 93%; lm_head: Q4_K
//! 86 -> 94%, Q6_K 59 -> 98%, Q4_0 98%, Q8_0 103%, F16 105%. Qwen2.5-0.5B: the launch-bound
//! shapes drop from 4.2-5.6 to 2.4-3.5 µs per call (q/o, k/v), gate/up 5.8-6.8 -> 5.2-5.7 µs.
//! Two tokens of Q4_K: gate/up 29.9 -> 18.8 µs. 4 and 8 tokens stay on the two-launch kernels
//! (12-53%). The per-launch cost in a graph is ~2.5 µs (a 128x896 weight), which caps
//! matrices of ~10 MB near 55% whatever the kernel.
//!
//! History: v1 (the previous session's kernels) = "before". v2 (one launch, activations
//! quantized per block into shared memory, warp per row streaming blocks through shared memory,
//! 4 blocks/CU): tiny shapes 2x faster, K-quant LM heads faster, everything at 14336 columns
//! and 2-4 tokens slower (every block re-quantizing 14336 values; 4-way shared-memory bank
//! conflicts on the activations; Q6_K's 96 registers allow only 2 blocks/CU). v3 (this code):
//! 48-byte activation slots spread over the banks, staging loads batched, 2 blocks/CU, and
//! `FusedMode::Auto` keeping the shapes where v1 was faster on the two-launch kernels.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fmt::Write as _;
use std::sync::Arc;

use rocmforge_gguf::GgmlType;
use rocmforge_hip::{DeviceBuffer, HipBackend, HipStream};
use rocmforge_tensor::hip::matmul::{MatmulContext, matmul};
use rocmforge_tensor::hip::matmul_mmqt::{MmqtKernel, MmqtMode};
use rocmforge_tensor::hip::matvec_fused::FusedMode;

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The H100's measured device-to-device copy rate (read + write), the reference of issue 7.
const REF_RATE: f64 = 3.0e12;

const SHAPES: [(&str, usize, usize); 10] = [
    ("llama3 q/o", 4096, 4096),
    ("llama3 k/v", 1024, 4096),
    ("llama3 gate/up", 14336, 4096),
    ("llama3 down", 4096, 14336),
    ("llama3 lm_head", 128256, 4096),
    ("qwen0.5 q/o", 896, 896),
    ("qwen0.5 k/v", 128, 896),
    ("qwen0.5 gate/up", 4864, 896),
    ("qwen0.5 down", 896, 4864),
    ("qwen0.5 lm_head", 151936, 896),
];

const TYPES: [GgmlType; 5] = [
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q4_0,
    GgmlType::Q8_0,
    GgmlType::F16,
];

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    let mut v = Vec::with_capacity(n + 8);
    while v.len() < n {
        s ^= s >> 12;
        s ^= s << 25;
        s ^= s >> 27;
        v.extend_from_slice(&s.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    v.truncate(n);
    v
}

/// Random weights that keep float fields finite: every 16-bit word's exponent bits set to a
/// small range (so f16 scales are normal numbers, f16/bf16 weights finite).
fn random_weights(ty: GgmlType, n: usize, seed: u64) -> Vec<u8> {
    let mut v = random_bytes(n, seed);
    if matches!(ty, GgmlType::F32) {
        for w in v.chunks_exact_mut(4) {
            w[3] = (w[3] & 0x80) | 0x3c;
        }
    } else {
        for w in v.chunks_exact_mut(2) {
            w[1] = (w[1] & 0x83) | 0x18;
        }
    }
    v
}

fn median(mut v: Vec<f32>) -> f32 {
    v.sort_by(f32::total_cmp);
    v[v.len() / 2]
}

/// One measured case.
struct Row {
    shape: &'static str,
    /// The kernels that ran (`default`: what `matmul` picks).
    path: &'static str,
    rows: usize,
    cols: usize,
    ty: GgmlType,
    n_tokens: usize,
    bytes: usize,
    us_graph: f64,
    us_call: f64,
}

impl Row {
    fn gbps(&self) -> f64 {
        self.bytes as f64 / (self.us_graph * 1e-6) / 1e9
    }
    fn floor_us(&self) -> f64 {
        self.bytes as f64 / REF_RATE * 1e6
    }
    fn pct_ref(&self) -> f64 {
        100.0 * self.gbps() * 1e9 / REF_RATE
    }
}

struct Bench {
    backend: Arc<HipBackend>,
    stream: HipStream,
    ctx: MatmulContext,
}

impl Bench {
    /// Median microseconds of `matmul` for `n_tokens` over rotating weight copies:
    /// (per call in a replayed graph, per single call).
    fn time(
        &mut self,
        ty: GgmlType,
        rows: usize,
        cols: usize,
        n_tokens: usize,
    ) -> BenchResult<(f64, f64)> {
        let bytes = rows * cols / ty.block_size() * ty.type_size();
        let copies = (256usize << 20).div_ceil(bytes).clamp(1, 256);
        let host = random_weights(ty, bytes, (rows * 31 + cols) as u64);
        let mut ws: Vec<DeviceBuffer<u8>> = Vec::with_capacity(copies);
        for _ in 0..copies {
            ws.push(self.backend.htod(&host)?);
        }
        let xh: Vec<f32> = random_bytes(n_tokens * cols * 4, 7)
            .chunks_exact(4)
            .map(|b| (u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f32 / u32::MAX as f32) - 0.5)
            .collect();
        let x = self.backend.htod(&xh)?;
        let mut out = self.backend.alloc::<f32>(n_tokens * rows)?;
        self.ctx.reserve(n_tokens, cols)?;
        let (start, end) = (self.backend.new_event()?, self.backend.new_event()?);
        let ctx = &mut self.ctx;
        let stream = &self.stream;
        let mut call = |i: usize, out: &mut DeviceBuffer<f32>| {
            matmul(
                ctx,
                &ws[i % copies],
                ty,
                rows,
                cols,
                &x,
                n_tokens,
                out,
                stream,
            )
        };
        for i in 0..10 {
            call(i, &mut out)?;
        }
        let mut times = Vec::with_capacity(100);
        for i in 0..100 {
            start.record(stream)?;
            call(i + 10, &mut out)?;
            end.record(stream)?;
            end.synchronize()?;
            times.push(start.elapsed_ms(&end)?);
        }
        let single = median(times);
        let per_graph = copies.max(16);
        stream.begin_capture()?;
        for i in 0..per_graph {
            call(i, &mut out)?;
        }
        let exec = stream.end_capture()?.instantiate()?;
        exec.launch(stream)?;
        stream.synchronize()?;
        let mut graph_times = Vec::with_capacity(30);
        for _ in 0..30 {
            start.record(stream)?;
            exec.launch(stream)?;
            end.record(stream)?;
            end.synchronize()?;
            graph_times.push(start.elapsed_ms(&end)? / per_graph as f32);
        }
        let got = out.to_vec()?;
        if let Some(i) = got.iter().position(|v| !v.is_finite()) {
            return Err(format!("{ty} {rows}x{cols}: output {i} is {}", got[i]).into());
        }
        Ok((
            f64::from(median(graph_times)) * 1e3,
            f64::from(single) * 1e3,
        ))
    }

    /// Device-to-device copy rate (bytes read + written per second), median of 20.
    fn copy_rate(&self) -> BenchResult<f64> {
        let n = 256usize << 20; // 1 GiB of f32
        let src = self.backend.alloc_zeros::<f32>(n)?;
        let mut dst = self.backend.alloc_zeros::<f32>(n)?;
        let (start, end) = (self.backend.new_event()?, self.backend.new_event()?);
        let mut times = Vec::new();
        for i in 0..23 {
            start.record(&self.stream)?;
            self.stream.memcpy_dtod_async(&src, &mut dst)?;
            end.record(&self.stream)?;
            end.synchronize()?;
            if i >= 3 {
                times.push(start.elapsed_ms(&end)?);
            }
        }
        Ok(2.0 * (n * 4) as f64 / (f64::from(median(times)) * 1e-3))
    }

    /// [`Bench::case`] with `matmul` sending the batch as `mode` says (then back to the
    /// table), the row labelled `path`; appended to `rows` when the shape runs.
    #[allow(clippy::too_many_arguments)]
    fn case_mmqt(
        &mut self,
        rows: &mut Vec<Row>,
        path: &'static str,
        mode: MmqtMode,
        (shape, r, c): (&'static str, usize, usize),
        ty: GgmlType,
        n_tokens: usize,
    ) -> BenchResult<()> {
        self.ctx.set_mmqt(mode);
        let row = self.case(shape, r, c, ty, n_tokens);
        self.ctx.set_mmqt(MmqtMode::Table);
        if let Some(mut row) = row? {
            row.path = path;
            rows.push(row);
        }
        Ok(())
    }

    fn case(
        &mut self,
        shape: &'static str,
        rows: usize,
        cols: usize,
        ty: GgmlType,
        n_tokens: usize,
    ) -> BenchResult<Option<Row>> {
        if !cols.is_multiple_of(ty.block_size()) {
            return Ok(None);
        }
        let bytes = rows * cols / ty.block_size() * ty.type_size();
        let (us_graph, us_call) = self.time(ty, rows, cols, n_tokens)?;
        Ok(Some(Row {
            shape,
            path: "default",
            rows,
            cols,
            ty,
            n_tokens,
            bytes,
            us_graph,
            us_call,
        }))
    }
}

fn table(rows: &[Row], copy: f64) -> String {
    let mut s = String::new();
    s.push_str("| shape | path | rows x cols | type | tokens | MB | floor us | us/call (graph) | GB/s | % of 3.0 TB/s | % of copy | us (single call) |\n");
    s.push_str("|---|---|---|---|---|---|---|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {}x{} | {} | {} | {:.2} | {:.1} | {:.1} | {:.0} | {:.0}% | {:.0}% | {:.1} |",
            r.shape,
            r.path,
            r.rows,
            r.cols,
            r.ty,
            r.n_tokens,
            r.bytes as f64 / 1e6,
            r.floor_us(),
            r.us_graph,
            r.gbps(),
            r.pct_ref(),
            100.0 * r.gbps() * 1e9 / copy,
            r.us_call
        );
    }
    s
}

fn json(rows: &[Row], device: &str, copy: f64) -> String {
    let mut s = format!(
        "{{\"device\": \"{}\", \"copy_gbps\": {:.1}, \"ref_gbps\": {:.1}, \"cases\": [\n",
        device.replace('"', "'"),
        copy / 1e9,
        REF_RATE / 1e9
    );
    for (i, r) in rows.iter().enumerate() {
        let _ = writeln!(
            s,
            "  {{\"shape\": \"{}\", \"path\": \"{}\", \"rows\": {}, \"cols\": {}, \"type\": \"{}\", \"n_tokens\": {}, \"bytes\": {}, \"us_graph\": {:.3}, \"us_call\": {:.3}, \"gbps\": {:.2}, \"pct_of_ref\": {:.2}}}{}",
            r.shape,
            r.path,
            r.rows,
            r.cols,
            r.ty,
            r.n_tokens,
            r.bytes,
            r.us_graph,
            r.us_call,
            r.gbps(),
            r.pct_ref(),
            if i + 1 < rows.len() { "," } else { "" }
        );
    }
    s.push_str("]}\n");
    s
}

fn main() -> BenchResult<()> {
    let backend = HipBackend::new(0)?;
    let stream = backend.new_stream()?;
    let ctx = MatmulContext::new(&backend)?;
    let mut b = Bench {
        backend: Arc::clone(&backend),
        stream,
        ctx,
    };
    let quick = std::env::var("RF_BENCH_QUICK").is_ok_and(|v| v == "1");
    // Tuning knobs: RF_BENCH_FUSED=never|always (default: auto, see hip::matvec_fused),
    // RF_BENCH_BLOCKS_PER_CU=n (grid limit of the one-launch kernels).
    match std::env::var("RF_BENCH_FUSED").as_deref() {
        Ok("never") => b.ctx.set_fused_matvec(FusedMode::Never),
        Ok("always") => b.ctx.set_fused_matvec(FusedMode::Always),
        _ => {}
    }
    b.ctx.set_matvec_blocks_per_cu(
        std::env::var("RF_BENCH_BLOCKS_PER_CU")
            .ok()
            .and_then(|v| v.parse().ok()),
    );
    b.ctx.set_matvec_rows_per_thread(
        std::env::var("RF_BENCH_ROWS")
            .ok()
            .and_then(|v| v.parse().ok()),
    );
    let copy = b.copy_rate()?;
    let device = format!("{} ({})", backend.info().name, backend.arch());
    let header = format!(
        "device: {device}; device-to-device copy here: {:.0} GB/s (read + write); reference 3000 GB/s",
        copy / 1e9
    );
    println!("{header}");
    if std::env::var("RF_BENCH_SMALL_ONLY").is_ok_and(|v| v == "1") {
        let small = small_batch_rows(&mut b)?;
        let text = format!("{}\n{}", table(&small, copy), small_summary(&small));
        println!("{text}");
        if let Ok(dir) = std::env::var("OUT") {
            let tag = std::env::var("RF_BENCH_TAG").map_or(String::new(), |t| format!("-{t}"));
            let dir = std::path::Path::new(&dir);
            std::fs::write(
                dir.join(format!("bench_matmul_small{tag}.md")),
                format!("{header}\n\n{text}"),
            )?;
        }
        return Ok(());
    }
    let batched_only = std::env::var("RF_BENCH_BATCHED_ONLY").is_ok_and(|v| v == "1");
    let mmqt_only = std::env::var("RF_BENCH_MMQT_ONLY").is_ok_and(|v| v == "1");
    let mut results = Vec::new();
    for (name, rows, cols) in SHAPES {
        if batched_only || mmqt_only {
            break;
        }
        if quick && !matches!(name, "llama3 q/o" | "llama3 gate/up" | "qwen0.5 q/o") {
            continue;
        }
        for ty in TYPES {
            if let Some(r) = b.case(name, rows, cols, ty, 1)? {
                results.push(r);
            }
        }
    }
    let single = table(&results, copy);
    println!("\n{single}");
    let mut batched = Vec::new();
    for (name, rows, cols) in [SHAPES[0], SHAPES[2], SHAPES[3]] {
        if mmqt_only {
            break;
        }
        for ty in [GgmlType::Q4_K, GgmlType::Q6_K, GgmlType::Q8_0] {
            for n in [2usize, 4, 8, 16, 32] {
                if let Some(r) = b.case(name, rows, cols, ty, n)? {
                    batched.push(r);
                }
            }
        }
    }
    let multi = table(&batched, copy);
    println!("{multi}");
    let tiles = mmqt_rows(&mut b)?;
    let tile_table = format!("{}\n{}", table(&tiles, copy), mmqt_summary(&tiles));
    println!("{tile_table}");
    if let Ok(dir) = std::env::var("OUT") {
        let tag = std::env::var("RF_BENCH_TAG").map_or(String::new(), |t| format!("-{t}"));
        let dir = std::path::Path::new(&dir);
        let md = format!("{header}\n\n{single}\n{multi}\n{tile_table}");
        std::fs::write(dir.join(format!("bench_matmul{tag}.md")), md)?;
        results.extend(batched);
        results.extend(tiles);
        std::fs::write(
            dir.join(format!("bench_matmul{tag}.json")),
            json(&results, &device, copy),
        )?;
    }
    Ok(())
}

/// Decode batches of 2, 4 and 8 tokens: the matvec kernels `matmul` picks today beside the
/// tile kernels (`ROCMFORGE_MMQT_FROM` would send them there), for the Llama-3-8B and
/// Qwen2.5-0.5B projections in the types of their Q4_K_M files.
fn small_batch_rows(b: &mut Bench) -> BenchResult<Vec<Row>> {
    let mut rows = Vec::new();
    let cases = [
        (SHAPES[0], GgmlType::Q4_K),
        (SHAPES[1], GgmlType::Q4_K),
        (SHAPES[2], GgmlType::Q4_K),
        (SHAPES[3], GgmlType::Q6_K),
        (SHAPES[3], GgmlType::Q4_K),
        (SHAPES[5], GgmlType::Q8_0),
        (SHAPES[7], GgmlType::Q8_0),
        (SHAPES[8], GgmlType::Q8_0),
    ];
    for (shape, ty) in cases {
        for n in [2usize, 4, 8] {
            for (path, mode) in [
                ("matvec", MmqtMode::Table),
                ("mmqt", MmqtMode::Always(MmqtKernel::TensorCore)),
            ] {
                b.case_mmqt(&mut rows, path, mode, shape, ty, n)?;
            }
        }
    }
    Ok(rows)
}

/// matvec against mmqt per shape, type and token count: µs per call in a graph and the ratio.
fn small_summary(rows: &[Row]) -> String {
    let mut s = String::from(
        "| shape | type | tokens | matvec us | mmqt us | matvec / mmqt |\n|---|---|---|---|---|---|\n",
    );
    for m in rows.iter().filter(|r| r.path == "matvec") {
        if let Some(t) = rows.iter().find(|r| {
            r.path == "mmqt" && r.shape == m.shape && r.ty == m.ty && r.n_tokens == m.n_tokens
        }) {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {:.1} | {:.1} | {:.2} |",
                m.shape,
                m.ty,
                m.n_tokens,
                m.us_graph,
                t.us_graph,
                m.us_graph / t.us_graph
            );
        }
    }
    s
}

/// The batched-decode tile kernels beside the BLAS path (Llama-3-8B shapes).
fn mmqt_rows(b: &mut Bench) -> BenchResult<Vec<Row>> {
    let paths = [
        ("mmqt", MmqtMode::Always(MmqtKernel::TensorCore)),
        ("blas", MmqtMode::Never),
        ("mmqt dp4a", MmqtMode::Always(MmqtKernel::Portable)),
    ];
    let mut rows = Vec::new();
    for shape in [SHAPES[0], SHAPES[2], SHAPES[3]] {
        for ty in [
            GgmlType::Q4_K,
            GgmlType::Q6_K,
            GgmlType::Q8_0,
            GgmlType::Q4_0,
        ] {
            for n in [16usize, 32, 64, 128, 256] {
                // Beyond 64 tokens (prefill sizes) only the Q4_K_M types, without dp4a.
                let k_quant = matches!(ty, GgmlType::Q4_K | GgmlType::Q6_K);
                for (path, mode) in paths {
                    if (path == "mmqt dp4a" && n != 32) || (n > 64 && !k_quant) {
                        continue;
                    }
                    b.case_mmqt(&mut rows, path, mode, shape, ty, n)?;
                }
            }
        }
    }
    // Qwen2.5-0.5B (896 columns: Q8_0; Q4_K where the columns allow), where the grid is small.
    for shape in [SHAPES[5], SHAPES[7], SHAPES[8]] {
        for ty in [GgmlType::Q8_0, GgmlType::Q4_K] {
            for n in [16usize, 32, 64] {
                for &(path, mode) in &paths[..2] {
                    b.case_mmqt(&mut rows, path, mode, shape, ty, n)?;
                }
            }
        }
    }
    // 64 tokens per block where 32 would be chosen.
    for (name, r, c) in [SHAPES[0], SHAPES[2], SHAPES[3]] {
        for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
            for n in [16usize, 32] {
                b.ctx.set_mmqt(MmqtMode::Always(MmqtKernel::TensorCore));
                b.ctx.set_mmqt_token_tile(Some(64));
                let row = b.case(name, r, c, ty, n);
                b.ctx.set_mmqt(MmqtMode::Table);
                b.ctx.set_mmqt_token_tile(None);
                if let Some(mut row) = row? {
                    row.path = "mmqt t64";
                    rows.push(row);
                }
            }
        }
    }
    // The column split's target (thread blocks per CU; default 4, 0 = no split).
    for (name, r, c) in [SHAPES[0], SHAPES[2], SHAPES[3]] {
        for ty in [GgmlType::Q4_K, GgmlType::Q6_K] {
            for (path, per_cu) in [("mmqt cu0", 0), ("mmqt cu2", 2), ("mmqt cu8", 8)] {
                b.ctx.set_mmqt(MmqtMode::Always(MmqtKernel::TensorCore));
                b.ctx.set_mmqt_blocks_per_cu(Some(per_cu));
                let row = b.case(name, r, c, ty, 32);
                b.ctx.set_mmqt(MmqtMode::Table);
                b.ctx.set_mmqt_blocks_per_cu(None);
                if let Some(mut row) = row? {
                    row.path = path;
                    rows.push(row);
                }
            }
        }
    }
    Ok(rows)
}

/// mmqt against BLAS per shape, type and token count: µs per call in a graph and the ratio.
fn mmqt_summary(rows: &[Row]) -> String {
    let mut s = String::from(
        "| shape | type | tokens | mmqt us | mmqt % of 3.0 TB/s | blas us | blas / mmqt |\n|---|---|---|---|---|---|---|\n",
    );
    for m in rows.iter().filter(|r| r.path == "mmqt") {
        let blas = rows.iter().find(|r| {
            r.path == "blas" && r.shape == m.shape && r.ty == m.ty && r.n_tokens == m.n_tokens
        });
        let (bu, ratio) = blas.map_or(("-".to_string(), "-".to_string()), |b| {
            (
                format!("{:.1}", b.us_graph),
                format!("{:.2}", b.us_graph / m.us_graph),
            )
        });
        let _ = writeln!(
            s,
            "| {} | {} | {} | {:.1} | {:.0}% | {bu} | {ratio} |",
            m.shape,
            m.ty,
            m.n_tokens,
            m.us_graph,
            m.pct_ref()
        );
    }
    s
}
