//! The batched-decode tile kernels (`mmqt_<type>` on tensor cores, `mmqt_<type>_dp4a`
//! portable) against the CPU matmul: every type they serve, the token counts around their
//! 8-token tiles and 64-token blocks (9..=64, and 65 / 100 for a second block of tokens; 2, 5
//! and 8, the decode batches `ROCMFORGE_MMQT_FROM` can send them), odd
//! row counts (1, 37, 257 and 4160: partial 64-row blocks and 16-row groups), and columns of
//! several super-blocks (for the 32-value formats also a step of 8 blocks cut short). Each
//! case runs the tensor-core build through `matmul` (with the column split and token tile
//! `matmul` picks: several splits where the grid is small, 32 tokens per block up to 32
//! tokens) and through `matmul_q8_1` (pre-quantized activations), and the portable build
//! without a split and with the other token tile (64 or 32); outputs poisoned with NaN first;
//! bounds as the rest of the suite (see the top of `gpu_matmul.rs`), and the two builds must
//! agree to 1e-5 (same integer sums, the float sums in another order when split).

use rocmforge_gguf::GgmlType;
use rocmforge_tensor::hip::matmul_mmqt::{MmqtKernel, supports};

use super::{Gpu, Mode, SCHEME_BOUND, bound, rel_err, run_modes};

/// The types `mmqt` serves, Q4_K_M's first.
pub const TYPES: [GgmlType; 11] = [
    GgmlType::Q4_K,
    GgmlType::Q6_K,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q5_K,
    GgmlType::Q5_0,
    GgmlType::Q4_1,
    GgmlType::Q5_1,
    GgmlType::Q3_K,
    GgmlType::IQ4_NL,
    GgmlType::IQ4_XS,
];

/// (rows, cols, n_tokens) of the cases of `ty`.
pub fn shapes(ty: GgmlType) -> Vec<(usize, usize, usize)> {
    let bs = ty.block_size();
    // Several super-blocks; for the 32-value formats 11 blocks (one full step of 8 and a short
    // one) and 43 (two column splits on a large GPU, the second ending in a short step).
    let (cols_a, cols_b) = if bs == 256 {
        (256 * 3, 256 * 8)
    } else {
        (32 * 11, 32 * 43)
    };
    let rows = [1usize, 37, 257];
    let mut v = Vec::new();
    for (i, n) in [9usize, 16, 17, 31, 32, 33, 48, 63, 64]
        .into_iter()
        .enumerate()
    {
        v.push((rows[i % 3], if i % 2 == 0 { cols_a } else { cols_b }, n));
    }
    v.push((4160, cols_a, 9));
    v.push((4160, cols_b, 64));
    v.push((37, cols_a, 65));
    v.push((257, cols_b, 100));
    // Decode-sized batches (`matmul` sends them here with ROCMFORGE_MMQT_FROM below 9).
    v.push((37, cols_b, 2));
    v.push((257, cols_a, 5));
    v.push((4160, cols_b, 8));
    v
}

/// One case: the worst relative error against the CPU over the runs, against the same-scheme
/// f64 reference (256-value formats), and between the two builds.
pub fn run_case(
    gpu: &mut Gpu,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    seed: u64,
) -> Result<(f32, Option<f32>, f32), String> {
    if !supports(ty) {
        return Err(format!("mmqt does not serve {ty}"));
    }
    let modes = [
        Mode::Mmqt(MmqtKernel::TensorCore, true, None),
        // The other token tile than matmul picks (32 or 64 tokens per block).
        Mode::Mmqt(
            MmqtKernel::Portable,
            false,
            Some(if n_tokens <= 32 { 64 } else { 32 }),
        ),
        Mode::MmqtQ8_1,
    ];
    let (cpu, scheme, outs) = run_modes(gpu, ty, rows, cols, n_tokens, seed, &modes)?;
    Ok((cpu, scheme, rel_err(&outs[1], &outs[0])))
}

/// Runs every case; returns (passed, failed) and prints a line per failure and a table.
pub fn run_all(gpu: &mut Gpu, seed: &mut u64) -> (usize, usize) {
    let (mut passed, mut failed) = (0, 0);
    let mut table = Vec::new();
    for ty in TYPES {
        let (mut worst, mut worst_scheme, mut worst_pair) = (0.0f32, None::<f32>, 0.0f32);
        let mut n = 0;
        for (rows, cols, n_tokens) in shapes(ty) {
            *seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            n += 1;
            let case = format!("mmqt {ty} {rows}x{cols} n_tokens={n_tokens}");
            match run_case(gpu, ty, rows, cols, n_tokens, *seed) {
                Ok((c, s, pair)) => {
                    worst = worst.max(c);
                    worst_pair = worst_pair.max(pair);
                    if let Some(s) = s {
                        worst_scheme = Some(worst_scheme.unwrap_or(0.0).max(s));
                    }
                    if c < bound(ty) && s.is_none_or(|s| s < SCHEME_BOUND) && pair < 1e-5 {
                        passed += 1;
                    } else {
                        failed += 1;
                        println!(
                            "FAIL {case}: rel err {c:.3e} (bound {:.0e}), same-scheme {s:?} (bound {SCHEME_BOUND:.0e}), tensor-core vs portable {pair:.3e} (bound 1e-5)",
                            bound(ty)
                        );
                    }
                }
                Err(e) => {
                    failed += 1;
                    worst = f32::NAN;
                    println!("FAIL {case}: {e}");
                }
            }
        }
        table.push((ty, n, worst, worst_scheme, worst_pair));
    }
    println!(
        "\n| mmqt type | cases | max rel err vs cpu::matmul | vs same-scheme f64 ref | tensor-core vs portable |\n|---|---|---|---|---|"
    );
    for (ty, n, w, s, p) in table {
        let s = s.map_or("-".to_string(), |e| format!("{e:.3e}"));
        println!("| {ty} | {n} | {w:.3e} | {s} | {p:.3e} |");
    }
    (passed, failed)
}
