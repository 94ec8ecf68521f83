//! Which quantized matmuls run the tile kernels of `kernels/mmqt_<type>.hip` (batched decode:
//! a weight tile unpacked to int8 in shared memory once per 32 or 64 tokens, int8 tensor-core
//! products on NVIDIA sm_80+, dp4a/sdot4 elsewhere; `kernels/include/rf_mmqt.h`) instead of the
//! dequantize + vendor-BLAS path (`matmul_blas.rs`), which writes and reads an f16 copy of the
//! whole weight on every call.
//!
//! The choice is one table, [`MMQT_MAX_TOKENS`]: per weight type, the largest token count sent
//! to `mmqt_<type>` (from `MATVEC_MAX_TOKENS + 1`; fewer tokens keep the matvec kernels). Set
//! an entry to 0 to keep that type on the BLAS path; raise it where the kernel measures faster
//! (`examples/bench_matmul.rs` prints both); [`MMQT_MIN_WEIGHT_BYTES`] keeps small weights on
//! the BLAS path. `ROCMFORGE_MMQT=0` turns the kernels off at run time (for comparisons);
//! `ROCMFORGE_MMQT_FROM=N` (2..=9) sends batches of N..=8 tokens to them too, instead of the
//! one-launch matvec kernels (for comparisons; [`MatmulContext::set_mmqt_from`]); weights of
//! [`MMQT_WIDE_MIN_COLS`] columns or more take 8-token batches there by default
//! (`ROCMFORGE_MMQT_WIDE_FROM=N` moves that bound, 9 turns it off);
//! [`MatmulContext::set_mmqt`] selects them for tests and benchmarks.
//!
//! Shapes with few 64-row blocks (4096 rows: 64 blocks on a 132-CU H100) are split along the
//! columns ([`split_k`]) into a scratch of partial sums, added up by `mmqt_reduce_f32` in a fixed
//! order (the same result on every run).

use std::collections::HashMap;
use std::sync::Arc;

use rocmforge_gguf::GgmlType;
use rocmforge_hip::{DeviceBuffer, DevicePtr, HipFunction, HipModule, HipStream, LaunchConfig};

use super::matmul::{MATVEC_MAX_TOKENS, MatmulContext};
use crate::error::{TensorError, TensorResult};

const OP: &str = "hip::matmul (mmqt)";

/// Weight rows and threads of one block of the `mmqt_<type>` kernels; tokens per block of the
/// `_t32` builds (chosen up to that many tokens) and of the others.
const MMQT_ROWS: usize = 64;
const MMQT_THREADS: u32 = 128;
const MMQT_SMALL_TOKENS: usize = 32;
const MMQT_TOKENS: usize = 64;

/// The smallest batch [`MmqtMode::Table`] sends to the tile kernels: `ROCMFORGE_MMQT_FROM`
/// (2..=`MATVEC_MAX_TOKENS + 1`) when set, else `MATVEC_MAX_TOKENS + 1` (one token always
/// keeps the matvec kernels).
fn default_from() -> usize {
    std::env::var("ROCMFORGE_MMQT_FROM")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(MATVEC_MAX_TOKENS + 1, |n| n.clamp(2, MATVEC_MAX_TOKENS + 1))
}

/// Weights of at least this many columns (Llama-3-8B's 4096 and 14336, the 0.5B's 4864-column
/// down projection) take batches of [`default_wide_from`] tokens and more to the tile kernels.
/// Measured on an H100 (`examples/bench_matmul.rs`, `RF_BENCH_SMALL_ONLY=1`, a replayed graph):
/// at 8 tokens the tiles take 0.35-0.82 of the matvec's time on every such weight (Q4_K q/o,
/// k/v, gate/up, down; Q6_K down; the 0.5B's Q8_0 down), and 0.96-1.6x at 896 columns.
pub const MMQT_WIDE_MIN_COLS: usize = 4096;

/// The smallest batch [`MmqtMode::Table`] sends to the tile kernels for weights of
/// [`MMQT_WIDE_MIN_COLS`] columns or more: `ROCMFORGE_MMQT_WIDE_FROM` (2..=`MATVEC_MAX_TOKENS +
/// 1`, the last meaning the same as narrower weights) when set, else `MATVEC_MAX_TOKENS` (8:
/// what the measurements cover; at 2 and 4 tokens the matvec won on most of those weights).
fn default_wide_from() -> usize {
    std::env::var("ROCMFORGE_MMQT_WIDE_FROM")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .map_or(MATVEC_MAX_TOKENS, |n| n.clamp(2, MATVEC_MAX_TOKENS + 1))
}

/// Tokens per block for `n_tokens` tokens (`force`: the tile a benchmark asked for).
fn token_tile(n_tokens: usize, force: Option<usize>) -> usize {
    match force {
        Some(t) if t <= MMQT_SMALL_TOKENS => MMQT_SMALL_TOKENS,
        Some(_) => MMQT_TOKENS,
        None if n_tokens <= MMQT_SMALL_TOKENS => MMQT_SMALL_TOKENS,
        None => MMQT_TOKENS,
    }
}
/// q8_1 blocks (32 columns each) per step of the kernels' column loop.
const STEP_BLOCKS: usize = 8;

/// Per weight type, the largest token count `matmul` sends to `mmqt_<type>` (from
/// `MATVEC_MAX_TOKENS + 1`). Measured on an H100 (Llama-3-8B q/o, gate/up, down; Q4_K, Q6_K,
/// Q8_0, Q4_0; `examples/bench_matmul.rs`, a build before the conversion fix of the epilogue):
/// 1.0-2.8x faster than the BLAS path at 16, 32 and 64 tokens, 0.33-0.81x at 128 and 256, so
/// 64. The other types are untimed and follow their kernels' siblings.
pub const MMQT_MAX_TOKENS: &[(GgmlType, usize)] = &[
    (GgmlType::Q4_K, 64),
    (GgmlType::Q6_K, 64),
    (GgmlType::Q5_K, 64),
    (GgmlType::Q3_K, 64),
    (GgmlType::Q8_0, 64),
    (GgmlType::Q4_0, 64),
    (GgmlType::Q4_1, 64),
    (GgmlType::Q5_0, 64),
    (GgmlType::Q5_1, 64),
    (GgmlType::IQ4_NL, 64),
    (GgmlType::IQ4_XS, 64),
];

/// Weights of fewer bytes keep the BLAS path whatever [`MMQT_MAX_TOKENS`] says (0: none; for
/// small models' matrices, should the tile kernels measure slower there).
pub const MMQT_MIN_WEIGHT_BYTES: usize = 0;

/// Thread blocks per compute unit the column split aims for (a block holds ~43 KB of shared
/// memory with 64 tokens, ~32 KB with 32: 5 or 7 fit an H100 SM by shared memory).
pub const MMQT_BLOCKS_PER_CU: usize = 4;

/// The two builds of the tile product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MmqtKernel {
    /// `mmqt_<type>`: integer tensor cores where the device has them (NVIDIA sm_80+), else
    /// the same as [`MmqtKernel::Portable`].
    TensorCore,
    /// `mmqt_<type>_dp4a`: four-way byte dot products on every target.
    Portable,
}

/// When `matmul` runs the `mmqt` kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MmqtMode {
    /// As [`MMQT_MAX_TOKENS`] says (the default).
    Table,
    /// Never (`ROCMFORGE_MMQT=0`).
    Never,
    /// For every supported type and every token count (tests and benchmarks).
    Always(MmqtKernel),
}

impl Default for MmqtMode {
    fn default() -> Self {
        if std::env::var("ROCMFORGE_MMQT").is_ok_and(|v| v.trim() == "0") {
            MmqtMode::Never
        } else {
            MmqtMode::Table
        }
    }
}

/// Whether `mmqt_<type>` exists for weights of type `ty`.
pub fn supports(ty: GgmlType) -> bool {
    MMQT_MAX_TOKENS.iter().any(|&(t, _)| t == ty)
}

/// The kernel `mode` picks for `n_tokens` tokens of a `ty` weight of `bytes` bytes, if any
/// (`min_bytes`: [`MMQT_MIN_WEIGHT_BYTES`] unless a benchmark set another).
fn choose(
    mode: MmqtMode,
    ty: GgmlType,
    n_tokens: usize,
    bytes: usize,
    min_bytes: usize,
    from: usize,
) -> Option<MmqtKernel> {
    match mode {
        MmqtMode::Never => None,
        MmqtMode::Always(k) => supports(ty).then_some(k),
        MmqtMode::Table => MMQT_MAX_TOKENS
            .iter()
            .any(|&(t, max)| t == ty && n_tokens >= from && n_tokens <= max)
            .then_some(MmqtKernel::TensorCore)
            .filter(|_| bytes >= min_bytes),
    }
}

/// Column split of a `rows x cols` product over `token_blocks` blocks of tokens on `cus`
/// compute units:
/// `(splits, q8_1 blocks per split)`: as many splits as keep the grid within
/// `blocks_per_cu * cus` blocks, each split at least one step of the column loop (small models'
/// 896-column weights: 3 splits).
pub fn split_k(
    rows: usize,
    cols: usize,
    token_blocks: usize,
    cus: usize,
    blocks_per_cu: usize,
) -> (usize, usize) {
    let act_blocks = cols / 32;
    let grid = rows.div_ceil(MMQT_ROWS) * token_blocks;
    // Rounded down: a grid just over what the GPU holds at once would run a second, mostly
    // idle wave of blocks.
    let want = (blocks_per_cu * cus) / grid.max(1);
    let most = (act_blocks / STEP_BLOCKS).max(1);
    let splits = want.clamp(1, most);
    let per = act_blocks
        .div_ceil(splits)
        .next_multiple_of(STEP_BLOCKS)
        .max(STEP_BLOCKS);
    (act_blocks.div_ceil(per).max(1), per)
}

/// The `mmqt` kernels of one [`MatmulContext`], loaded on first use, and their scratch.
#[derive(Debug)]
pub(crate) struct MmqtSlot {
    mode: MmqtMode,
    min_bytes: usize,
    /// The smallest batch the table sends here ([`default_from`]).
    from: usize,
    /// The same for weights of [`MMQT_WIDE_MIN_COLS`] columns or more ([`default_wide_from`]).
    wide_from: usize,
    blocks_per_cu: Option<usize>,
    /// Kernel families loaded so far: `mmqt_<type>` per weight type, `mmqt` (the reduction).
    modules: HashMap<String, Arc<HipModule>>,
    /// Tokens per block forced (benchmarks), else [`token_tile`]'s choice.
    token_tile: Option<usize>,
    functions: HashMap<(GgmlType, MmqtKernel, usize), HipFunction>,
    reduce: Option<HipFunction>,
    partial: Option<DeviceBuffer<f32>>,
}

impl Default for MmqtSlot {
    fn default() -> Self {
        MmqtSlot {
            mode: MmqtMode::default(),
            min_bytes: MMQT_MIN_WEIGHT_BYTES,
            from: default_from(),
            wide_from: default_wide_from(),
            blocks_per_cu: None,
            token_tile: None,
            modules: HashMap::new(),
            functions: HashMap::new(),
            reduce: None,
            partial: None,
        }
    }
}

impl MatmulContext {
    /// When `matmul` and `matmul_q8_1` run the `mmqt` kernels (default [`MmqtMode::Table`],
    /// or [`MmqtMode::Never`] when `ROCMFORGE_MMQT=0`).
    pub fn set_mmqt(&mut self, mode: MmqtMode) {
        self.mmqt.mode = mode;
    }

    /// Weights of fewer bytes keep the BLAS path in [`MmqtMode::Table`] (`None`: the default
    /// [`MMQT_MIN_WEIGHT_BYTES`]). For benchmarks.
    pub fn set_mmqt_min_weight_bytes(&mut self, bytes: Option<usize>) {
        self.mmqt.min_bytes = bytes.unwrap_or(MMQT_MIN_WEIGHT_BYTES);
    }

    /// The smallest batch [`MmqtMode::Table`] sends to the tile kernels (`None`: the default,
    /// `ROCMFORGE_MMQT_FROM` or `MATVEC_MAX_TOKENS + 1`; clamped to 2..=that). For benchmarks.
    pub fn set_mmqt_from(&mut self, tokens: Option<usize>) {
        self.mmqt.from = tokens.map_or_else(default_from, |n| n.clamp(2, MATVEC_MAX_TOKENS + 1));
        // An explicit choice holds for every width; `None` restores both defaults.
        self.mmqt.wide_from = tokens.map_or_else(default_wide_from, |_| self.mmqt.from);
    }

    /// Thread blocks per compute unit the column split aims for (`None`: the default
    /// [`MMQT_BLOCKS_PER_CU`]; `Some(0)`: never split). For benchmarks.
    pub fn set_mmqt_blocks_per_cu(&mut self, blocks: Option<usize>) {
        self.mmqt.blocks_per_cu = blocks;
    }

    /// The kernel family `family` (`mmqt` or `mmqt_<type>`), loaded once.
    fn mmqt_module(&mut self, family: &str) -> TensorResult<Arc<HipModule>> {
        if let Some(m) = self.mmqt.modules.get(family) {
            return Ok(Arc::clone(m));
        }
        let m = self.backend().load_kernels(family)?;
        self.mmqt.modules.insert(family.to_string(), Arc::clone(&m));
        Ok(m)
    }

    /// Tokens per block of the `mmqt` kernels: 32 or 64 (`None`: 32 up to 32 tokens, else 64,
    /// the default). For benchmarks; the results are the same.
    pub fn set_mmqt_token_tile(&mut self, tokens: Option<usize>) {
        self.mmqt.token_tile = tokens;
    }

    fn mmqt_function(
        &mut self,
        ty: GgmlType,
        k: MmqtKernel,
        tile: usize,
    ) -> TensorResult<HipFunction> {
        if let Some(f) = self.mmqt.functions.get(&(ty, k, tile)) {
            return Ok(f.clone());
        }
        let suffix =
            super::matmul::kernel_suffix(ty).ok_or(TensorError::UnsupportedType { op: OP, ty })?;
        let t32 = if tile == MMQT_SMALL_TOKENS {
            "_t32"
        } else {
            ""
        };
        let name = match k {
            MmqtKernel::TensorCore => format!("mmqt_{suffix}{t32}"),
            MmqtKernel::Portable => format!("mmqt_{suffix}{t32}_dp4a"),
        };
        let f = self
            .mmqt_module(&format!("mmqt_{suffix}"))?
            .function(&name)?;
        self.mmqt.functions.insert((ty, k, tile), f.clone());
        Ok(f)
    }

    fn mmqt_reduce(&mut self) -> TensorResult<HipFunction> {
        if let Some(f) = &self.mmqt.reduce {
            return Ok(f.clone());
        }
        let f = self.mmqt_module("mmqt")?.function("mmqt_reduce_f32")?;
        self.mmqt.reduce = Some(f.clone());
        Ok(f)
    }

    /// The partial-sum scratch, grown to at least `n` values.
    fn mmqt_partial(&mut self, n: usize) -> TensorResult<DevicePtr> {
        if self.mmqt.partial.as_ref().is_none_or(|p| p.len() < n) {
            self.mmqt.partial = None; // free the old one before allocating the new one
            self.mmqt.partial = Some(self.backend().alloc::<f32>(n.max(1))?);
            super::bump_scratch_generation();
        }
        self.mmqt
            .partial
            .as_ref()
            .map(|p| p.device_ptr())
            .ok_or(TensorError::Backend {
                op: OP,
                what: "partial-sum scratch missing after allocation".to_string(),
            })
    }
}

impl MmqtSlot {
    /// The smallest batch the table sends to the tiles for a weight of `cols` columns.
    fn smallest_batch_for(&self, cols: usize) -> usize {
        if cols >= MMQT_WIDE_MIN_COLS {
            self.from.min(self.wide_from)
        } else {
            self.from
        }
    }
}

/// Whether [`try_matmul`] runs `n_tokens` tokens of a `ty` weight of `cols` columns and `bytes`
/// bytes (the context's mode and the table).
pub(crate) fn takes(
    ctx: &MatmulContext,
    ty: GgmlType,
    n_tokens: usize,
    cols: usize,
    bytes: usize,
) -> bool {
    choose(
        ctx.mmqt.mode,
        ty,
        n_tokens,
        bytes,
        ctx.mmqt.min_bytes,
        ctx.mmqt.smallest_batch_for(cols),
    )
    .is_some()
}

/// A quantized weight as `matmul` checked it.
pub(crate) struct Weight<'a> {
    pub w: &'a DeviceBuffer<u8>,
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    pub row_bytes: usize,
}

/// The activations: f32 (quantized to q8_1 into the context's scratch first) or already q8_1
/// (device addresses of the values and of the `(d, s)` pairs, laid out as `Q8_1Layout`).
#[derive(Clone, Copy)]
pub(crate) enum Act<'a> {
    F32(&'a DeviceBuffer<f32>),
    Q8_1(DevicePtr, DevicePtr),
}

fn u32_of(what: &str, n: usize) -> TensorResult<u32> {
    u32::try_from(n).map_err(|_| TensorError::Shape {
        op: OP,
        what: format!("{what} {n} exceeds the kernel's 32-bit range"),
    })
}

/// `matmul`'s dispatch: runs the product through `mmqt` and returns true when the mode and
/// table take `n_tokens` tokens of this weight type; else false (nothing queued). Sizes were
/// checked by the caller (weight `rows * row_bytes`, activations `n_tokens x cols`, output
/// `n_tokens * rows`, all within 32-bit indices).
pub(crate) fn try_matmul(
    ctx: &mut MatmulContext,
    weight: &Weight<'_>,
    act: Act<'_>,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
) -> TensorResult<bool> {
    let bytes = weight.rows.saturating_mul(weight.row_bytes);
    let Some(k) = choose(
        ctx.mmqt.mode,
        weight.ty,
        n_tokens,
        bytes,
        ctx.mmqt.min_bytes,
        ctx.mmqt.smallest_batch_for(weight.cols),
    ) else {
        return Ok(false);
    };
    if n_tokens == 0 || weight.rows == 0 {
        return Ok(true); // nothing to compute (and no empty grid to launch)
    }
    let &Weight {
        w,
        ty,
        rows,
        cols,
        row_bytes,
    } = weight;
    let tile = token_tile(n_tokens, ctx.mmqt.token_tile);
    let f = ctx.mmqt_function(ty, k, tile)?;
    let cus = ctx.backend().info().compute_units as usize;
    let per_cu = ctx.mmqt.blocks_per_cu.unwrap_or(MMQT_BLOCKS_PER_CU);
    let token_blocks = n_tokens.div_ceil(tile);
    let (splits, split_blocks) = split_k(rows, cols, token_blocks, cus, per_cu);
    let n_out = n_tokens * rows;
    let (dst, split_stride) = if splits > 1 {
        let need = splits
            .checked_mul(n_out)
            .ok_or_else(|| TensorError::Shape {
                op: OP,
                what: format!("{splits} splits x {n_out} outputs overflow"),
            })?;
        (ctx.mmqt_partial(need)?, n_out as u64)
    } else {
        (out.device_ptr(), 0)
    };
    let (aqs, ads) = match act {
        Act::F32(x) => ctx.quantize_rows(x, n_tokens, cols, stream)?,
        Act::Q8_1(aqs, ads) => (aqs, ads),
    };
    let cfg = LaunchConfig {
        grid_dim: (
            u32_of("row blocks", rows.div_ceil(MMQT_ROWS))?,
            u32_of("token blocks", token_blocks)?,
            u32_of("column splits", splits)?,
        ),
        block_dim: (MMQT_THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let (rows32, cols32, nt32) = (
        u32_of("rows", rows)?,
        u32_of("cols", cols)?,
        u32_of("tokens", n_tokens)?,
    );
    let (row_bytes64, split32) = (row_bytes as u64, u32_of("split", split_blocks)?);
    // SAFETY: `mmqt_<type>[_dp4a](const u8* w, u64 row_bytes, u32 rows, u32 cols, const i8*
    // aqs, const float* ads, u32 n_tokens, float* out, u32 split_blocks, u64 split_stride)`.
    // `w` holds rows * row_bytes bytes and the q8_1 activations n_tokens x cols (checked by the
    // caller, or quantized just above into a scratch of that layout); `dst` is `out` (n_tokens *
    // rows values, checked by the caller) when there is one split, else the partial scratch of
    // splits * n_tokens * rows values; block z writes only at dst + z * split_stride, and
    // z * split_blocks < cols / 32 for every z < splits (`split_k`). The kernels bound every
    // row and token.
    unsafe {
        stream
            .launch_builder(&f)
            .arg(w)
            .arg(&row_bytes64)
            .arg(&rows32)
            .arg(&cols32)
            .arg(&aqs)
            .arg(&ads)
            .arg(&nt32)
            .arg(&dst)
            .arg(&split32)
            .arg(&split_stride)
            .launch(cfg)?;
    }
    if splits > 1 {
        let reduce = ctx.mmqt_reduce()?;
        let (splits32, n64) = (u32_of("splits", splits)?, n_out as u64);
        let cfg = LaunchConfig {
            grid_dim: (
                u32_of("reduce blocks", n_out.div_ceil(256).min(4096))?,
                1,
                1,
            ),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `mmqt_reduce_f32(const float* part, u32 splits, u64 n, float* out)`: the
        // partial scratch holds splits * n values (grown above), `out` at least n = n_tokens *
        // rows (checked by the caller); grid-stride loop bounded by n.
        unsafe {
            stream
                .launch_builder(&reduce)
                .arg(&dst)
                .arg(&splits32)
                .arg(&n64)
                .arg(&*out)
                .launch(cfg)?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_k_fills_the_gpu_and_covers_every_column() {
        // Llama-3-8B on 132 CUs at 32 tokens (one block of tokens).
        assert_eq!(split_k(14336, 4096, 1, 132, 4), (2, 64)); // gate: 224 row blocks
        assert_eq!(split_k(4096, 4096, 1, 132, 4), (8, 16)); // q/o: 64 row blocks
        assert_eq!(split_k(4096, 14336, 1, 132, 4), (8, 56)); // down
        assert_eq!(split_k(4096, 14336, 1, 132, 0), (1, 448));
        assert_eq!(split_k(14336, 4096, 2, 132, 4), (1, 128)); // 448 blocks already
        // Qwen2.5-0.5B gate/up 4864 x 896 (28 q8_1 blocks): 76 row blocks.
        assert_eq!(split_k(4864, 896, 1, 132, 4), (2, 16));
        for rows in [1usize, 37, 4096, 20000] {
            for cols in [32usize, 96, 256, 352, 4096, 14336] {
                for n in [1usize, 2, 4] {
                    for per_cu in [0usize, 1, 4, 8] {
                        let (s, per) = split_k(rows, cols, n, 132, per_cu);
                        let blocks = cols / 32;
                        assert!(s >= 1 && per % STEP_BLOCKS == 0, "{rows} {cols} {n}");
                        assert!(s * per >= blocks, "{rows} {cols} {n}: {s} x {per}");
                        assert!(
                            (s - 1) * per < blocks.max(1),
                            "{rows} {cols} {n}: empty split"
                        );
                    }
                }
            }
        }
    }

    /// [`choose`] with the default smallest batch.
    fn pick(
        mode: MmqtMode,
        ty: GgmlType,
        n: usize,
        bytes: usize,
        min_bytes: usize,
    ) -> Option<MmqtKernel> {
        choose(mode, ty, n, bytes, min_bytes, MATVEC_MAX_TOKENS + 1)
    }

    #[test]
    fn a_lower_smallest_batch_sends_small_batches_to_the_tiles() {
        let m = MmqtMode::Table;
        for n in 2..=MATVEC_MAX_TOKENS {
            assert_eq!(
                choose(m, GgmlType::Q4_K, n, 1 << 20, 0, 2),
                Some(MmqtKernel::TensorCore)
            );
            assert_eq!(choose(m, GgmlType::Q4_K, n, 1 << 20, 0, n + 1), None);
        }
        assert_eq!(choose(m, GgmlType::Q4_K, 1, 1 << 20, 0, 2), None);
    }

    #[test]
    fn wide_weights_take_eight_token_batches_to_the_tiles() {
        let slot = MmqtSlot {
            from: MATVEC_MAX_TOKENS + 1,
            wide_from: MATVEC_MAX_TOKENS,
            ..MmqtSlot::default()
        };
        assert_eq!(slot.smallest_batch_for(896), MATVEC_MAX_TOKENS + 1);
        assert_eq!(
            slot.smallest_batch_for(MMQT_WIDE_MIN_COLS - 32),
            MATVEC_MAX_TOKENS + 1
        );
        assert_eq!(
            slot.smallest_batch_for(MMQT_WIDE_MIN_COLS),
            MATVEC_MAX_TOKENS
        );
        assert_eq!(slot.smallest_batch_for(14336), MATVEC_MAX_TOKENS);
        let m = MmqtMode::Table;
        let wide = slot.smallest_batch_for(4096);
        assert_eq!(
            choose(m, GgmlType::Q4_K, 8, 1 << 20, 0, wide),
            Some(MmqtKernel::TensorCore)
        );
        assert_eq!(choose(m, GgmlType::Q4_K, 7, 1 << 20, 0, wide), None);
        assert_eq!(choose(m, GgmlType::Q4_K, 1, 1 << 20, 0, wide), None);
        // A lower bound for every width still holds for wide weights.
        let low = MmqtSlot { from: 2, ..slot };
        assert_eq!(low.smallest_batch_for(4096), 2);
    }

    #[test]
    fn small_weights_can_be_left_to_the_blas() {
        let m = MmqtMode::Table;
        assert_eq!(pick(m, GgmlType::Q8_0, 32, 999, 1000), None);
        assert!(pick(m, GgmlType::Q8_0, 32, 1000, 1000).is_some());
        let always = MmqtMode::Always(MmqtKernel::TensorCore);
        assert!(pick(always, GgmlType::Q8_0, 32, 999, 1000).is_some());
    }

    #[test]
    fn small_batches_take_the_32_token_tile() {
        assert_eq!(token_tile(9, None), 32);
        assert_eq!(token_tile(32, None), 32);
        assert_eq!(token_tile(33, None), 64);
        assert_eq!(token_tile(100, None), 64);
        assert_eq!(token_tile(16, Some(64)), 64);
        assert_eq!(token_tile(64, Some(32)), 32);
    }

    #[test]
    fn the_table_takes_batched_decode_and_leaves_decode_to_the_matvec() {
        let m = MmqtMode::Table;
        for ty in [
            GgmlType::Q4_K,
            GgmlType::Q6_K,
            GgmlType::Q8_0,
            GgmlType::Q4_0,
        ] {
            assert_eq!(pick(m, ty, 8, 1 << 20, MMQT_MIN_WEIGHT_BYTES), None, "{ty}");
            for n in [9, 16, 32, 33, 64] {
                assert_eq!(
                    pick(m, ty, n, 1 << 20, MMQT_MIN_WEIGHT_BYTES),
                    Some(MmqtKernel::TensorCore),
                    "{ty} {n}"
                );
            }
            assert_eq!(
                pick(m, ty, 65, 1 << 20, MMQT_MIN_WEIGHT_BYTES),
                None,
                "{ty}"
            );
        }
        // No kernel for these: the BLAS path or the float kernels.
        for ty in [GgmlType::Q2_K, GgmlType::F16, GgmlType::F32, GgmlType::BF16] {
            assert!(!supports(ty));
            assert_eq!(pick(m, ty, 32, 1 << 20, MMQT_MIN_WEIGHT_BYTES), None);
            assert_eq!(
                pick(MmqtMode::Always(MmqtKernel::Portable), ty, 32, 0, 0),
                None
            );
        }
        assert_eq!(
            pick(
                MmqtMode::Never,
                GgmlType::Q4_K,
                32,
                1 << 20,
                MMQT_MIN_WEIGHT_BYTES
            ),
            None
        );
        assert_eq!(
            pick(
                MmqtMode::Always(MmqtKernel::Portable),
                GgmlType::Q6_K,
                3,
                0,
                0
            ),
            Some(MmqtKernel::Portable)
        );
    }
}
