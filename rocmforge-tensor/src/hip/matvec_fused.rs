//! The decode path of [`super::matmul::matmul`]: one launch per call (`kernels/mmvq_fused_<type>.hip`,
//! one kernel family per weight type over `kernels/include/rf_mmvq_fused.h`).
//!
//! Up to [`super::matmul::MATVEC_MAX_TOKENS`] tokens, each block of `mmvqs_<type>_n<NT>` /
//! `mmvfs_<type>_n<NT>` prepares the f32 activations itself in shared memory (q8_1 for quantized
//! weights, with exactly the arithmetic of `quantize_q8_1_f32`; f16/bf16 rounding for 16-bit
//! float weights), so decode pays one kernel launch per projection instead of two, and nothing
//! is allocated or synchronised: the call is capturable into a graph. The grid is sized to the
//! GPU (a few blocks per compute unit, the rows spread evenly over them) and the blocks walk the
//! rows. Shapes whose activations do not fit the shared-memory budget, F32 weights, and
//! `cols % 8 != 0` float weights return `false` and run the two-launch kernels of `matmul.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use rocmforge_gguf::GgmlType;
use rocmforge_hip::{DeviceBuffer, DevicePtr, HipFunction, HipModule, HipStream, LaunchConfig};

use super::matmul::MatmulContext;
use crate::error::{TensorError, TensorResult};

const OP: &str = "hip::matmul (fused matvec)";
/// Threads per block (`RF_MMV_THREADS` in the kernel).
const THREADS: usize = 256;
/// Dynamic shared memory the activations may take: 48 KiB per block (the limit without opt-in
/// on NVIDIA) less the kernels' static per-warp weight buffers (at most 28 KiB, Q6_K) and the
/// staging norm's scales and partial sums (`rf_norm_scales`: 288 bytes; 512 kept).
const ACT_SHARED_BUDGET: usize = 20 * 1024 - 512;
/// Dynamic shared memory of the float kernels (their static use is a few floats).
const FLOAT_SHARED_BUDGET: usize = 46 * 1024;
/// Chunks each thread of the float kernels aims to take per row.
const FLOAT_CHUNKS_PER_THREAD: usize = 4;
/// Default grid limits in blocks per compute unit (H100: the quantized kernels' 64-96
/// registers per thread and 20-48 KiB of shared memory leave room for two or three blocks;
/// measured best at 2; the float kernels at 4).
const QUANT_BLOCKS_PER_CU: usize = 2;
const FLOAT_BLOCKS_PER_CU: usize = 4;
/// [`FusedMode::Auto`], from the H100 measurements (examples/bench_matmul.rs): every block
/// stages the whole activation vector, which pays off when the weight is small (the saved launch
/// dominates) or the rows are long and the blocks many; it costs more than the second launch for
/// long columns (14336), for few rows with long columns (Qwen2.5-0.5B ffn_down, 896 x 4864), and
/// for the 32-value formats' very large matrices (LM heads), where the two-launch kernels
/// already stream at the copy rate.
const AUTO_MAX_COLS: usize = 8192;
const AUTO_SMALL_WEIGHT_BYTES: usize = 8 << 20;
const AUTO_MAX_WEIGHT_BYTES_32: usize = 64 << 20;

/// When `matmul` takes the one-launch kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FusedMode {
    /// Where they were measured faster on the H100 (see `AUTO_MAX_COLS` in the source), the
    /// shared memory permitting.
    #[default]
    Auto,
    /// Whenever the activations fit in shared memory.
    Always,
    /// Never: the q8_1 quantization and the matvec as two launches.
    Never,
}

/// An RMS norm the one-launch kernels apply to their f32 activations before the product
/// (`rf_act_norm` in the kernel): `normed = (x * s) * weight`, `s = 1 / sqrt(mean(x²) + eps)`
/// per token; the normed rows are also written to `out` (`[n_tokens][cols]`), so later launches
/// can read them.
#[derive(Debug, Clone, Copy)]
pub struct NormIn {
    /// The norm's weight (`cols` f32 values, 16-byte aligned).
    pub weight: DevicePtr,
    /// Added to the mean square.
    pub eps: f32,
    /// Where the normed rows go (`n_tokens * cols` f32 values, 16-byte aligned).
    pub out: DevicePtr,
}

impl NormIn {
    fn aligned(&self) -> bool {
        self.weight.0 % 16 == 0 && self.out.0 % 16 == 0
    }
    /// The kernel arguments: weight (null without a norm), eps, normed rows out.
    fn args(norm: Option<NormIn>) -> (DevicePtr, f32, DevicePtr) {
        norm.map_or((DevicePtr(0), 0.0, DevicePtr(0)), |n| {
            (n.weight, n.eps, n.out)
        })
    }
}

/// What a one-launch matvec does besides the product.
#[derive(Debug, Clone, Copy, Default)]
pub struct Extras {
    /// Norm the f32 activations first.
    pub norm: Option<NormIn>,
    /// Add the product to the output (`out += x · Wᵀ`) instead of storing it.
    pub accumulate: bool,
}

/// The fused kernels of one [`MatmulContext`], loaded on first use.
#[derive(Debug)]
pub struct FusedSlot {
    /// The kernel family of each weight type used so far (`mmvq_fused_<type>`).
    modules: HashMap<GgmlType, Arc<HipModule>>,
    /// Kernels looked up so far, by (weight type, token-count variant, kernel variant).
    functions: HashMap<(GgmlType, usize, Variant), HipFunction>,
    /// When `matmul` takes this path.
    pub(crate) mode: FusedMode,
    /// Grid size limit in blocks per compute unit (None: the defaults above).
    pub(crate) blocks_per_cu: Option<usize>,
}

impl Default for FusedSlot {
    fn default() -> Self {
        Self {
            modules: HashMap::new(),
            functions: HashMap::new(),
            mode: FusedMode::Auto,
            blocks_per_cu: None,
        }
    }
}

/// Kernel name suffix and values per chunk (one thread's unit of a row) of a weight type; 0
/// values per chunk marks the 16-bit float kernels.
fn stem(ty: GgmlType) -> Option<(&'static str, usize)> {
    use GgmlType::*;
    Some(match ty {
        F16 => ("f16", 0),
        BF16 => ("bf16", 0),
        Q4_0 => ("q4_0", 32),
        Q4_1 => ("q4_1", 32),
        Q5_0 => ("q5_0", 32),
        Q5_1 => ("q5_1", 32),
        Q8_0 => ("q8_0", 32),
        IQ4_NL => ("iq4_nl", 32),
        MXFP4 => ("mxfp4", 32),
        IQ4_XS => ("iq4_xs", 32),
        Q4_K => ("q4_k", 64),
        Q5_K => ("q5_k", 64),
        Q2_K => ("q2_k", 128),
        Q3_K => ("q3_k", 128),
        Q6_K => ("q6_k", 128),
        _ => return None,
    })
}

/// Dynamic shared memory for `n_tokens` activations of `cols` values, if it fits: 16-bit
/// values for the float kernels; for the quantized ones a 48-byte slot per 32 values plus 16
/// bytes per chunk of more than one block (`rf_act_layout` in the kernel).
fn shared_bytes(chunk_values: usize, n_tokens: usize, cols: usize) -> Option<usize> {
    let (per_token, budget) = if chunk_values == 0 {
        (cols.checked_mul(2)?, FLOAT_SHARED_BUDGET)
    } else {
        let qpc = chunk_values / 32;
        let chunk_bytes = qpc * 48 + if qpc > 1 { 16 } else { 0 };
        (
            (cols / chunk_values).checked_mul(chunk_bytes)?,
            ACT_SHARED_BUDGET,
        )
    };
    let bytes = per_token.checked_mul(n_tokens)?;
    (bytes <= budget).then_some(bytes)
}

/// Whether `mode` sends this call to the one-launch kernels (the shared memory permitting).
/// `super_block`: a 256-value format (K-quants, IQ4_XS).
fn wanted(
    mode: FusedMode,
    super_block: bool,
    weight_bytes: usize,
    rows: usize,
    cols: usize,
    n_tokens: usize,
) -> bool {
    match mode {
        FusedMode::Always => true,
        FusedMode::Never => false,
        FusedMode::Auto => {
            if cols > AUTO_MAX_COLS || (rows < 1024 && cols > 2048) {
                false
            } else if weight_bytes <= AUTO_SMALL_WEIGHT_BYTES || (super_block && n_tokens <= 2) {
                true
            } else {
                n_tokens == 1 && weight_bytes <= AUTO_MAX_WEIGHT_BYTES_32
            }
        }
    }
}

/// The device's warp size and the warps a grid of the one-launch kernels needs to give every
/// compute unit a block (`rows_per_step`'s `min_groups`).
fn warp_fill(ctx: &MatmulContext) -> (usize, usize) {
    let info = ctx.backend().info();
    let warp = (info.warp_size as usize).clamp(1, THREADS);
    (warp, THREADS / warp * (info.compute_units as usize).max(1))
}

/// Largest number of weight rows per warp step (`RF_MMV_MAX_RPW` = 4 at most) for the quantized
/// kernels: rows short enough that several fit one step of `rf_step` (the kernel's ~3 KB per
/// 32 lanes of whole blocks) are taken several at a time, each by a group of lanes, so a warp
/// keeps more bytes in flight and walks fewer steps; every weight's rows must be a multiple of
/// it (a group never straddles two weights). A matrix too small to give every warp of the grid
/// a group at that rate (fewer than `min_groups` = warps per block x compute units) keeps fewer
/// rows per step: its blocks then spread over more of the GPU instead of a few compute units
/// each walking four rows. The kernel checks the same and falls back to one row, so this only
/// has to agree with it to be fast.
fn rows_per_step(
    ty: GgmlType,
    chunk_values: usize,
    warp: usize,
    row_bytes: usize,
    seg_rows: &[usize],
    min_groups: usize,
) -> usize {
    let (block_values, block_bytes) = (ty.block_size(), ty.type_size());
    if chunk_values == 0 || block_values < chunk_values || warp == 0 {
        return 1;
    }
    let chunks_per_block = block_values / chunk_values;
    let run_bytes = warp / chunks_per_block.max(1) * block_bytes;
    let budget = 3000 * warp / 32;
    let runs = (budget / (run_bytes + 32)).max(1);
    let step_bytes = runs * run_bytes;
    let rows: usize = seg_rows.iter().sum();
    [4, 2]
        .into_iter()
        .find(|&r| {
            r * row_bytes <= step_bytes
                && r <= warp
                && seg_rows.iter().all(|&n| n % r == 0)
                && rows / r >= min_groups
        })
        .unwrap_or(1)
}

/// Blocks for `groups` units of work (rows per block pass) with at most `max_blocks`: every
/// block gets the same number of passes (the last pass of the grid is as full as the first).
fn grid_blocks(groups: usize, max_blocks: usize) -> usize {
    let max_blocks = max_blocks.max(1);
    let passes = groups.div_ceil(max_blocks).max(1);
    groups.div_ceil(passes).max(1)
}

/// The one-launch kernel variants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Variant {
    /// From f32 activations (`mmvqs_*`, `mmvfs_*`).
    Plain,
    /// From a q8_1 activation buffer (`mmvqa_*`).
    FromQ8_1,
    /// A gate/up pair from f32 activations, `silu(gate) * up` out (`mmvqg_*`).
    Glu,
    /// Two or three weights of the same input from f32 activations (`mmvqm_*`).
    Multi,
}

impl FusedSlot {
    fn function(
        &mut self,
        ctx_backend: &Arc<rocmforge_hip::HipBackend>,
        ty: GgmlType,
        nt: usize,
        variant: Variant,
    ) -> TensorResult<HipFunction> {
        if let Some(f) = self.functions.get(&(ty, nt, variant)) {
            return Ok(f.clone());
        }
        let (suffix, chunk_values) = stem(ty).ok_or(TensorError::UnsupportedType { op: OP, ty })?;
        let module = match self.modules.get(&ty) {
            Some(m) => Arc::clone(m),
            None => {
                let m = ctx_backend.load_kernels(&format!("mmvq_fused_{suffix}"))?;
                self.modules.insert(ty, Arc::clone(&m));
                m
            }
        };
        let family = match (chunk_values, variant) {
            (0, Variant::Plain) => "mmvfs",
            (0, _) => return Err(TensorError::UnsupportedType { op: OP, ty }),
            (_, Variant::Plain) => "mmvqs",
            (_, Variant::FromQ8_1) => "mmvqa",
            (_, Variant::Glu) => "mmvqg",
            (_, Variant::Multi) => "mmvqm",
        };
        let f = module.function(&format!("{family}_{suffix}_n{nt}"))?;
        self.functions.insert((ty, nt, variant), f.clone());
        Ok(f)
    }
}

/// What one call of the one-launch kernels multiplies: `rows` rows (of all its weights
/// together) of `row_bytes` bytes, `cols` columns, `n_tokens` tokens, the weights at `ws`.
struct Call<'a> {
    ty: GgmlType,
    variant: Variant,
    /// Rows of each weight (one entry per weight of a multi call; the rows of one weight
    /// otherwise, a gate/up pair counting once).
    seg_rows: &'a [usize],
    rows: usize,
    cols: usize,
    row_bytes: usize,
    n_tokens: usize,
    ws: &'a [&'a DeviceBuffer<u8>],
    x: &'a DeviceBuffer<f32>,
    norm: Option<NormIn>,
}

/// The kernel and geometry for `call` when the one-launch kernels serve it (the mode, the token
/// count, 16-byte aligned pointers, the activations within the shared memory); `None` otherwise.
fn plan(ctx: &mut MatmulContext, call: &Call<'_>) -> TensorResult<Option<(HipFunction, Geometry)>> {
    let Some((_, chunk_values)) = stem(call.ty) else {
        return Ok(None);
    };
    let float = chunk_values == 0;
    if (float && (call.variant != Variant::Plain || call.cols % 8 != 0))
        || !wanted(
            ctx.fused.mode,
            call.ty.block_size() == 256,
            call.row_bytes.saturating_mul(call.rows),
            call.rows,
            call.cols,
            call.n_tokens,
        )
        || call.n_tokens == 0
        || call.n_tokens > super::matmul::MATVEC_MAX_TOKENS
        || call.ws.iter().any(|w| w.device_ptr().0 % 16 != 0)
        || call.x.device_ptr().0 % 16 != 0
        || call.norm.is_some_and(|n| !n.aligned())
    {
        return Ok(None);
    }
    let Some(shared) = shared_bytes(chunk_values, call.n_tokens, call.cols) else {
        return Ok(None);
    };
    let backend = Arc::clone(ctx.backend());
    let nt = super::matmul::matvec_variant(call.n_tokens);
    let f = ctx.fused.function(&backend, call.ty, nt, call.variant)?;
    let rpw = if float {
        1
    } else {
        let (warp, fill) = warp_fill(ctx);
        rows_per_step(
            call.ty,
            chunk_values,
            warp,
            call.row_bytes,
            call.seg_rows,
            fill,
        )
    };
    let g = Geometry::new(
        ctx,
        float,
        chunk_values,
        call.rows,
        call.cols,
        call.n_tokens,
        shared,
        rpw,
    )?;
    Ok(Some((f, g)))
}

/// Runs the fused matvec when it serves this call (returns `false` to let `matmul` run its
/// other kernels). Sizes were checked by `matmul`; `row_bytes` is the weight's bytes per row.
#[allow(clippy::too_many_arguments)]
pub(crate) fn try_matvec(
    ctx: &mut MatmulContext,
    w: &DeviceBuffer<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
    extras: Extras,
) -> TensorResult<bool> {
    let call = Call {
        ty,
        variant: Variant::Plain,
        seg_rows: &[rows],
        rows,
        cols,
        row_bytes,
        n_tokens,
        ws: &[w],
        x,
        norm: extras.norm,
    };
    let Some((f, g)) = plan(ctx, &call)? else {
        return Ok(false);
    };
    let float = stem(ty).is_some_and(|(_, chunk_values)| chunk_values == 0);
    let row_bytes64 = row_bytes as u64;
    let (nw, eps, normed) = NormIn::args(extras.norm);
    let acc = u32::from(extras.accumulate);
    // SAFETY: `mmvqs_<type>_n<NT>(const u8* w, u64 row_bytes, u32 rows, u32 chunks,
    // const float* x, u32 cols, u32 n_tokens, float* out, u32 rpw, const float* nw, float eps,
    // float* normed, u32 acc)` / `mmvfs_<type>_n<NT>(..., float* out, u32 tpr, <the same four>)`.
    // `matmul` checked that `w` holds rows * row_bytes bytes, `x` n_tokens * cols values and
    // `out` n_tokens * rows values; the pointers are 16-byte aligned (checked above, the norm's
    // too); a norm's weight holds cols values and its output n_tokens * cols (checked by the
    // caller); n_tokens <= NT of the variant; the dynamic shared memory holds the staged
    // activations of n_tokens tokens (`shared_bytes`); the kernels bound every row, chunk and
    // token.
    unsafe {
        stream
            .launch_builder(&f)
            .dependent()
            .arg(w)
            .arg(&row_bytes64)
            .arg(&g.rows)
            .arg(&g.chunks)
            .arg(x)
            .arg(&g.cols)
            .arg(&g.n_tokens)
            .arg(&*out)
            .arg(if float { &g.tpr } else { &g.rpw })
            .arg(&nw)
            .arg(&eps)
            .arg(&normed)
            .arg(&acc)
            .launch(g.cfg)?;
    }
    Ok(true)
}

/// `out = silu(gate · x) * (up · x)` in one launch (`mmvqg_<type>_n<NT>`) for a gate/up pair of
/// quantized weights of the same type and shape, where [`try_matvec`] would take the one-launch
/// kernels for one of them; `false` otherwise (the caller runs the two matmuls and `silu_mul`).
/// Sizes were checked by the caller; `row_bytes` is the bytes per row of each weight.
#[allow(clippy::too_many_arguments)]
pub(crate) fn try_matvec_glu(
    ctx: &mut MatmulContext,
    gate: &DeviceBuffer<u8>,
    up: &DeviceBuffer<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
    norm: Option<NormIn>,
) -> TensorResult<bool> {
    let call = Call {
        ty,
        variant: Variant::Glu,
        seg_rows: &[rows],
        rows,
        cols,
        row_bytes,
        n_tokens,
        ws: &[gate, up],
        x,
        norm,
    };
    let Some((f, g)) = plan(ctx, &call)? else {
        return Ok(false);
    };
    let row_bytes64 = row_bytes as u64;
    let (nw, eps, normed) = NormIn::args(norm);
    // SAFETY: `mmvqg_<type>_n<NT>(const u8* w, const u8* w2, u64 row_bytes, u32 rows,
    // u32 chunks, const float* x, u32 cols, u32 n_tokens, float* out, u32 rpw, const float* nw,
    // float eps, float* normed)` (a norm's buffers checked by the caller). The caller checked that
    // `gate` and `up` each hold rows * row_bytes bytes, `x` n_tokens * cols values and `out`
    // n_tokens * rows values; the pointers are 16-byte aligned (checked above); n_tokens <= NT;
    // the dynamic shared memory holds the staged activations of n_tokens tokens.
    unsafe {
        stream
            .launch_builder(&f)
            .dependent()
            .arg(gate)
            .arg(up)
            .arg(&row_bytes64)
            .arg(&g.rows)
            .arg(&g.chunks)
            .arg(x)
            .arg(&g.cols)
            .arg(&g.n_tokens)
            .arg(&*out)
            .arg(&g.rpw)
            .arg(&nw)
            .arg(&eps)
            .arg(&normed)
            .launch(g.cfg)?;
    }
    Ok(true)
}

/// Two or three quantized weights of the same type and columns multiplied with the same
/// activations in one launch (`mmvqm_<type>_n<NT>`: q, k and v), each into its own output, where
/// [`try_matvec`] would take the one-launch kernels for them together; `false` otherwise (the
/// caller runs one matmul each). `ws[i]` holds `rows[i]` rows of `row_bytes` bytes and `outs[i]`
/// `n_tokens * rows[i]` values, checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn try_matvec_multi(
    ctx: &mut MatmulContext,
    ws: &[&DeviceBuffer<u8>],
    rows: &[usize],
    ty: GgmlType,
    cols: usize,
    row_bytes: usize,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    outs: &mut [&mut DeviceBuffer<f32>],
    stream: &HipStream,
    norm: Option<NormIn>,
) -> TensorResult<bool> {
    let n = ws.len();
    if !(2..=3).contains(&n) || rows.len() != n || outs.len() != n {
        return Ok(false);
    }
    let call = Call {
        ty,
        variant: Variant::Multi,
        seg_rows: rows,
        rows: rows.iter().sum(),
        cols,
        row_bytes,
        n_tokens,
        ws,
        x,
        norm,
    };
    let Some((f, g)) = plan(ctx, &call)? else {
        return Ok(false);
    };
    let row_bytes64 = row_bytes as u64;
    let (nw, eps, normed) = NormIn::args(norm);
    let to_u32 = |v: usize| {
        u32::try_from(v).map_err(|_| TensorError::Shape {
            op: OP,
            what: format!("{v} rows exceed the kernel's 32-bit range"),
        })
    };
    // A missing third segment: no rows, its pointers those of the first (never read or written).
    let seg = |i: usize| if i < n { i } else { 0 };
    let (w0, w1, w2) = (
        ws[0].device_ptr(),
        ws[1].device_ptr(),
        ws[seg(2)].device_ptr(),
    );
    let (r0, r1) = (to_u32(rows[0])?, to_u32(rows[1])?);
    let r2 = if n == 3 { to_u32(rows[2])? } else { 0 };
    let (o0, o1, o2) = (
        outs[0].device_ptr(),
        outs[1].device_ptr(),
        outs[seg(2)].device_ptr(),
    );
    // SAFETY: `mmvqm_<type>_n<NT>(const u8* w0, const u8* w1, const u8* w2, u64 row_bytes,
    // u32 rows0, u32 rows1, u32 rows2, u32 chunks, const float* x, u32 cols, u32 n_tokens,
    // float* out0, float* out1, float* out2, u32 rpw, const float* nw, float eps,
    // float* normed)` (a norm's buffers checked by the caller). The caller checked that each weight holds its
    // rows * row_bytes bytes, `x` n_tokens * cols values and each output n_tokens * its rows
    // values; a missing third segment has 0 rows, so its pointers are never used; the weight
    // pointers are 16-byte aligned (checked above); n_tokens <= NT; the dynamic shared memory
    // holds the staged activations of n_tokens tokens.
    unsafe {
        stream
            .launch_builder(&f)
            .dependent()
            .arg(&w0)
            .arg(&w1)
            .arg(&w2)
            .arg(&row_bytes64)
            .arg(&r0)
            .arg(&r1)
            .arg(&r2)
            .arg(&g.chunks)
            .arg(x)
            .arg(&g.cols)
            .arg(&g.n_tokens)
            .arg(&o0)
            .arg(&o1)
            .arg(&o2)
            .arg(&g.rpw)
            .arg(&nw)
            .arg(&eps)
            .arg(&normed)
            .launch(g.cfg)?;
    }
    Ok(true)
}

/// Launch geometry of one fused matvec call.
struct Geometry {
    cfg: LaunchConfig,
    rows: u32,
    chunks: u32,
    cols: u32,
    /// Weight rows per warp step of the quantized kernels (`rpw`, see [`rows_per_step`]).
    rpw: u32,
    n_tokens: u32,
    tpr: u32,
}

impl Geometry {
    #[allow(clippy::too_many_arguments)]
    fn new(
        ctx: &MatmulContext,
        float: bool,
        chunk_values: usize,
        rows: usize,
        cols: usize,
        n_tokens: usize,
        shared: usize,
        rpw: usize,
    ) -> TensorResult<Self> {
        let info = ctx.backend().info();
        let warp = (info.warp_size as usize).clamp(1, THREADS);
        let chunks = if float {
            cols / 8
        } else {
            cols / chunk_values.max(1)
        };
        let tpr = if float {
            chunks
                .div_ceil(FLOAT_CHUNKS_PER_THREAD)
                .next_power_of_two()
                .clamp(1, THREADS)
        } else {
            warp
        };
        let rows_per_pass = THREADS / tpr * rpw.max(1);
        let per_cu = ctx.fused.blocks_per_cu.unwrap_or(if float {
            FLOAT_BLOCKS_PER_CU
        } else {
            QUANT_BLOCKS_PER_CU
        });
        let max_blocks = (info.compute_units as usize).max(1) * per_cu.max(1);
        let blocks = grid_blocks(rows.div_ceil(rows_per_pass), max_blocks);
        let to_u32 = |v: usize, what: &str| {
            u32::try_from(v).map_err(|_| TensorError::Shape {
                op: OP,
                what: format!("{what} {v} exceeds the kernel's 32-bit range"),
            })
        };
        Ok(Self {
            cfg: LaunchConfig {
                grid_dim: (to_u32(blocks, "blocks")?, 1, 1),
                block_dim: (THREADS as u32, 1, 1),
                shared_mem_bytes: to_u32(shared, "shared memory bytes")?,
            },
            rows: to_u32(rows, "rows")?,
            chunks: to_u32(chunks, "chunks")?,
            cols: to_u32(cols, "cols")?,
            rpw: to_u32(rpw.max(1), "rows per step")?,
            n_tokens: to_u32(n_tokens, "tokens")?,
            tpr: tpr as u32,
        })
    }
}

/// [`try_matvec`] for activations already quantized to q8_1 (`super::matmul::matmul_q8_1`):
/// `aqs` / `ads` point at the values and the (d, s) pairs of the `Q8_1Layout` of
/// `n_tokens x cols`, checked by the caller.
#[allow(clippy::too_many_arguments)]
pub(crate) fn try_matvec_q8_1(
    ctx: &mut MatmulContext,
    w: &DeviceBuffer<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    aqs: DevicePtr,
    ads: DevicePtr,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
    accumulate: bool,
) -> TensorResult<bool> {
    let Some((_, chunk_values)) = stem(ty).filter(|s| s.1 > 0) else {
        return Ok(false);
    };
    // No launch to save here (the activations are quantized already): Auto takes the staged
    // kernels where their weight streaming was measured faster, the 256-value formats.
    let wanted_here = match ctx.fused.mode {
        FusedMode::Always => true,
        FusedMode::Never => false,
        FusedMode::Auto => ty.block_size() == 256 && cols <= AUTO_MAX_COLS,
    };
    if !wanted_here
        || n_tokens == 0
        || n_tokens > super::matmul::MATVEC_MAX_TOKENS
        || w.device_ptr().0 % 16 != 0
        || aqs.0 % 16 != 0
        || ads.0 % 8 != 0
    {
        return Ok(false);
    }
    let Some(shared) = shared_bytes(chunk_values, n_tokens, cols) else {
        return Ok(false);
    };
    let backend = Arc::clone(ctx.backend());
    let nt = super::matmul::matvec_variant(n_tokens);
    let f = ctx.fused.function(&backend, ty, nt, Variant::FromQ8_1)?;
    let (warp, fill) = warp_fill(ctx);
    let rpw = rows_per_step(ty, chunk_values, warp, row_bytes, &[rows], fill);
    let g = Geometry::new(ctx, false, chunk_values, rows, cols, n_tokens, shared, rpw)?;
    let row_bytes64 = row_bytes as u64;
    let acc = u32::from(accumulate);
    // SAFETY: `mmvqa_<type>_n<NT>(const u8* w, u64 row_bytes, u32 rows, u32 chunks,
    // const i8* aqs, const float* ads, u32 cols, u32 n_tokens, float* out, u32 rpw, u32 acc)`. The caller checked
    // that `w` holds rows * row_bytes bytes, the q8_1 buffer n_tokens * cols values and their
    // scale pairs at `ads`, and `out` n_tokens * rows values; alignment checked above;
    // n_tokens <= NT; the dynamic shared memory holds n_tokens staged tokens.
    unsafe {
        stream
            .launch_builder(&f)
            .dependent()
            .arg(w)
            .arg(&row_bytes64)
            .arg(&g.rows)
            .arg(&g.chunks)
            .arg(&aqs)
            .arg(&ads)
            .arg(&g.cols)
            .arg(&g.n_tokens)
            .arg(&*out)
            .arg(&g.rpw)
            .arg(&acc)
            .launch(g.cfg)?;
    }
    Ok(true)
}

impl MatmulContext {
    /// When 1..=8 tokens take the one-launch decode kernels ([`FusedMode::Auto`] by default;
    /// the others are for benchmarks and tests).
    pub fn set_fused_matvec(&mut self, mode: FusedMode) {
        self.fused.mode = mode;
    }

    /// Grid limit of the one-launch decode kernels, in blocks per compute unit (`None`: 2 for
    /// quantized weights, 4 for float weights).
    pub fn set_matvec_blocks_per_cu(&mut self, blocks: Option<usize>) {
        self.fused.blocks_per_cu = blocks.map(|b| b.max(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_a_chunk_dividing_its_block() {
        use GgmlType::*;
        for ty in [
            F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, IQ4_XS, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K,
            MXFP4,
        ] {
            let (_, cv) = stem(ty).unwrap_or(("", 1));
            if cv > 0 {
                assert_eq!(ty.block_size() % cv, 0, "{ty}");
            }
        }
        assert!(stem(F32).is_none());
    }

    #[test]
    fn shared_budget_admits_decode_shapes_and_rejects_large_batches() {
        // Q8_0 (48 bytes per 32 values), Q4_K (112 per 64), Q6_K (208 per 128), F16 (2 per value).
        // Q6_K's static weight buffers (8 warps x 7 x 32 pieces of 16 bytes) and the staging
        // norm's 288 bytes beside the largest activations stay within NVIDIA's 48 KiB.
        const { assert!(8 * 7 * 32 * 16 + 288 + ACT_SHARED_BUDGET <= 48 * 1024) };
        assert_eq!(shared_bytes(32, 1, 4096), Some(6144));
        assert_eq!(shared_bytes(64, 2, 4096), Some(14336));
        assert_eq!(shared_bytes(128, 1, 4096), Some(6656));
        assert!(shared_bytes(64, 1, 14336).is_none());
        assert!(shared_bytes(32, 8, 4096).is_none());
        assert_eq!(shared_bytes(0, 1, 14336), Some(28672));
        assert!(shared_bytes(0, 2, 14336).is_none());
        assert!(shared_bytes(32, usize::MAX, 64).is_none());
    }

    #[test]
    fn auto_mode_follows_the_h100_measurements() {
        let mb = 1usize << 20;
        let auto = |sb, bytes, rows, cols, n| wanted(FusedMode::Auto, sb, bytes, rows, cols, n);
        // Llama-3-8B q/o, gate/up (any type, one token), K-quant LM head, two K-quant tokens.
        assert!(auto(false, 18 * mb, 4096, 4096, 1));
        assert!(auto(false, 62 * mb, 14336, 4096, 1));
        assert!(auto(true, 296 * mb, 128256, 4096, 1));
        assert!(auto(true, 33 * mb, 14336, 4096, 2));
        // ffn_down (14336 columns), Q4_0/Q8_0 LM heads, 4 tokens of a large weight.
        assert!(!auto(true, 33 * mb, 4096, 14336, 1));
        assert!(!auto(false, 296 * mb, 128256, 4096, 1));
        assert!(!auto(true, 33 * mb, 14336, 4096, 4));
        // Qwen2.5-0.5B: small weights yes, ffn_down (896 x 4864) no.
        assert!(auto(false, mb, 896, 896, 8));
        assert!(!auto(false, 2 * mb, 896, 4864, 1));
        assert!(wanted(FusedMode::Always, false, 64 * mb, 4096, 14336, 2));
        assert!(!wanted(FusedMode::Never, false, 1, 1, 32, 1));
    }

    #[test]
    fn short_rows_go_several_per_step_when_every_weight_allows() {
        use GgmlType::*;
        // Qwen2.5-0.5B's 896-wide rows: Q5_0 616 bytes (4 per ~2.8 KB step), Q8_0 952 (2).
        assert_eq!(rows_per_step(Q5_0, 32, 32, 616, &[4864], 1), 4);
        assert_eq!(rows_per_step(Q8_0, 32, 32, 952, &[896], 1), 2);
        assert_eq!(rows_per_step(Q5_0, 32, 32, 616, &[896, 128, 128], 1), 4);
        // A weight whose rows are not a multiple keeps the others at its rate.
        assert_eq!(rows_per_step(Q5_0, 32, 32, 616, &[896, 130], 1), 2);
        assert_eq!(rows_per_step(Q5_0, 32, 32, 616, &[45, 16], 1), 1);
        // Llama-3-8B rows fill a step already; a wave64 step is twice as large.
        assert_eq!(rows_per_step(Q4_K, 64, 32, 2304, &[4096], 1), 1);
        assert_eq!(rows_per_step(Q4_K, 64, 64, 2304, &[4096], 1), 2);
        assert_eq!(rows_per_step(Q6_K, 128, 32, 3360, &[896], 1), 1);
    }

    #[test]
    fn small_matrices_spread_over_the_gpu_before_taking_rows_several_at_a_time() {
        use GgmlType::*;
        // An H100: 8 warps a block x 132 SMs = 1056 warps to fill.
        let fill = 8 * 132;
        // Qwen2.5-0.5B gate/up (4864 rows): 1216 groups of 4 still fill it.
        assert_eq!(rows_per_step(Q5_0, 32, 32, 616, &[4864], fill), 4);
        // q/o (896 rows) and q/k/v (1152): one row per step, 896 / 1152 warps.
        assert_eq!(rows_per_step(Q5_0, 32, 32, 616, &[896], fill), 1);
        assert_eq!(rows_per_step(Q5_0, 32, 32, 616, &[896, 128, 128], fill), 1);
        // Enough rows for two at a time but not four.
        assert_eq!(rows_per_step(Q5_0, 32, 32, 616, &[2304], fill), 2);
    }

    #[test]
    fn grid_gives_every_block_the_same_passes() {
        assert_eq!(grid_blocks(896, 528), 448);
        assert_eq!(grid_blocks(100, 528), 100);
        assert_eq!(grid_blocks(0, 528), 1);
        for groups in 1..3000 {
            let b = grid_blocks(groups, 528);
            assert!(b <= 528);
            let passes = groups.div_ceil(b);
            assert!(
                b * passes >= groups && (b - 1) * passes < groups,
                "{groups}"
            );
        }
    }
}
