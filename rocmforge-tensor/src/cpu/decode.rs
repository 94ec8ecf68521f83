//! One token against one or several weights (a block's q/k/v or gate/up projections) through
//! the SIMD decode rows, in **one** parallel loop over all their rows: the token's activations
//! are quantized once per scheme (not once per weight), and a decode step pays one fork/join
//! where it paid one per weight. Each row's result is the kernel's as [`super::matmul`] gives
//! it alone (the same bits: only the schedule differs).

use rayon::prelude::*;

use super::dot::avx2::{self, Avx2, KKind, LegacyKind};
use super::dot::avx512::{self, Vnni};
use super::matmul::{CpuKernels, ROWS_PER_TASK};
use super::quantize_act::{Q8Blocks, Q8KBlocks, quantize_q8_0, quantize_q8_1, quantize_q8_k};
use super::weight::WeightView;

// Each task's rows are whole batches of the kernels' rows but the last.
const _: () = assert!(ROWS_PER_TASK % avx2::ROWS == 0);

/// Which kernel multiplies a weight's rows, and against which activations.
#[derive(Clone, Copy)]
enum Kernel {
    Legacy {
        isa: Avx2,
        /// The VNNI kernel for Q8_0 rows.
        vnni: Option<Vnni>,
        kind: LegacyKind,
        q8_1: bool,
    },
    K {
        isa: Avx2,
        kind: KKind,
    },
}

impl Kernel {
    /// The decode kernel of `ty` at `kernels`, if the running CPU has one.
    fn of(w: &WeightView, kernels: CpuKernels) -> Option<Kernel> {
        if kernels < CpuKernels::Avx2 {
            return None;
        }
        let isa = Avx2::detect()?;
        if let Some(kind) = LegacyKind::of(w.ty) {
            let vnni = (kernels >= CpuKernels::Avx512Vnni && kind == LegacyKind::Q8_0)
                .then(Vnni::detect)
                .flatten();
            let q8_1 = matches!(kind, LegacyKind::Q4_1 | LegacyKind::Q5_1);
            return Some(Kernel::Legacy {
                isa,
                vnni,
                kind,
                q8_1,
            });
        }
        KKind::of(w.ty).map(|kind| Kernel::K { isa, kind })
    }
}

/// One token's activations in every scheme the weights need, each quantized once, with the
/// block sums the kernels read.
#[derive(Default)]
struct Acts {
    q8_0: Option<(Q8Blocks, Vec<i32>)>,
    q8_1: Option<(Q8Blocks, Vec<i32>)>,
    q8_k: Option<Q8KBlocks>,
    /// Q8_K block sums as the Q4_K / Q5_K kernels read them, and as the Q6_K kernel does.
    k_sums: Option<Vec<i32>>,
    k6_sums: Option<Vec<i32>>,
}

impl Acts {
    fn prepare(&mut self, k: Kernel, x: &[f32]) {
        match k {
            Kernel::Legacy { q8_1: false, .. } => {
                self.q8_0.get_or_insert_with(|| with_sums(quantize_q8_0(x)));
            }
            Kernel::Legacy { q8_1: true, .. } => {
                self.q8_1.get_or_insert_with(|| with_sums(quantize_q8_1(x)));
            }
            Kernel::K { kind, .. } => {
                let act = self.q8_k.get_or_insert_with(|| quantize_q8_k(x));
                let sums = match kind {
                    KKind::Q6K => &mut self.k6_sums,
                    KKind::Q4K | KKind::Q5K => &mut self.k_sums,
                };
                sums.get_or_insert_with(|| avx2::k_act_sums(kind, act));
            }
        }
    }

    /// `rows · x` into `res` with `k` against these activations (prepared for `k`); `next`
    /// (the bytes multiplied after these) is asked for while they are computed.
    fn run(&self, k: Kernel, rows: [&[u8]; avx2::ROWS], next: &[u8], res: &mut [f32]) {
        match k {
            Kernel::Legacy {
                isa,
                vnni,
                kind,
                q8_1,
            } => {
                let Some((act, asum)) = (if q8_1 { &self.q8_1 } else { &self.q8_0 }) else {
                    return;
                };
                match vnni {
                    Some(v) => avx512::q8_0_rows(v, rows, act, asum, next, res),
                    None => avx2::legacy_rows(isa, kind, rows, act, asum, next, res),
                }
            }
            Kernel::K { isa, kind } => {
                let sums = match kind {
                    KKind::Q6K => &self.k6_sums,
                    KKind::Q4K | KKind::Q5K => &self.k_sums,
                };
                if let (Some(act), Some(sums)) = (&self.q8_k, sums) {
                    avx2::k_rows(isa, kind, rows, act, sums, next, res);
                }
            }
        }
    }
}

fn with_sums(act: Q8Blocks) -> (Q8Blocks, Vec<i32>) {
    let sums = avx2::block_sums(&act);
    (act, sums)
}

/// `jobs[i].1 = x · jobs[i].0ᵀ` for one token `x` (`cols` values, the same for every weight,
/// whose sizes the caller has checked: `jobs[i].1` holds `rows` values, the weight's data
/// `rows * row_bytes`), all rows of all weights in one parallel loop. Returns `false`, with
/// nothing written, when a weight has no decode kernel at `kernels` on this CPU.
pub(super) fn decode_many(
    kernels: CpuKernels,
    x: &[f32],
    jobs: &mut [(&WeightView, usize, &mut [f32])],
) -> bool {
    let Some(kinds) = jobs
        .iter()
        .map(|(w, _, _)| Kernel::of(w, kernels))
        .collect::<Option<Vec<_>>>()
    else {
        return false;
    };
    let mut acts = Acts::default();
    for &k in &kinds {
        acts.prepare(k, x);
    }
    let acts = &acts;
    let mut tasks = Vec::new();
    for ((w, row_bytes, out), &k) in jobs.iter_mut().zip(&kinds) {
        let (w, row_bytes) = (&**w, *row_bytes);
        for (c, chunk) in out.chunks_mut(ROWS_PER_TASK).enumerate() {
            tasks.push((w, row_bytes, k, c * ROWS_PER_TASK, chunk));
        }
    }
    tasks
        .into_par_iter()
        .for_each(|(w, row_bytes, k, first, chunk)| {
            let row = |r: usize| &w.data[r * row_bytes..(r + 1) * row_bytes];
            // A short last batch repeats its first row in the missing places; `res.len()`
            // says how many count.
            for (i, res) in chunk.chunks_mut(avx2::ROWS).enumerate() {
                let r0 = first + i * avx2::ROWS;
                let rows = std::array::from_fn(|j| row(if j < res.len() { r0 + j } else { r0 }));
                // The next batch's rows, asked for while the kernel reads these (it reads
                // the 8 rows' blocks interleaved, which the hardware prefetcher follows
                // poorly): a part per block, not one burst.
                let next = (r0 + avx2::ROWS) * row_bytes;
                let next = w
                    .data
                    .get(next..(next + avx2::ROWS * row_bytes).min(w.data.len()))
                    .unwrap_or(&[]);
                acts.run(k, rows, next, res);
            }
        });
    true
}
