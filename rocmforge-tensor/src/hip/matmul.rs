//! `out = x · Wᵀ` on the GPU for a weight in its GGUF block format (`kernels/mmvq.hip`,
//! `kernels/mmq.hip`, `kernels/quantize_act.hip`).
//!
//! Quantized weights follow llama.cpp's CUDA scheme: the activations are first quantized on the
//! device to q8_1 blocks (into a scratch buffer the [`MatmulContext`] keeps, so decode allocates
//! nothing per call), then integer dot products per 32 values are scaled by the weight's and the
//! activation's block scales and accumulated in f32. Every quantized type is paired with q8_1
//! here (the CPU backend pairs the K-quants with q8_K), so K-quant results differ from the CPU's
//! in the last bits of the activation rounding. Float weights (F32/F16/BF16) take the f32
//! activations rounded to the weight's precision, as the CPU backend does.
//!
//! Dispatch in [`matmul`]: from `BLAS_MIN_TOKENS` tokens the vendor-BLAS path
//! (`matmul_blas.rs`); up to [`MATVEC_MAX_TOKENS`] tokens first the one-launch decode kernels
//! (`matvec_fused.rs`, when their shared memory and `FusedMode` take the shape); otherwise:
//! up to [`MATVEC_MAX_TOKENS`] tokens run the matrix-vector kernels (`mmvq_<type>_n<NT>`,
//! `mmvf_<type>_n<NT>`, NT = 1, 2, 4 or 8: each weight byte read once for all tokens; from 2
//! tokens `mmvq_<type>_n<NT>_r<R>` with R = 2 or 4 weight rows per thread where the shape keeps
//! every compute unit busy, chosen by `matvec_geometry`); more tokens run the tiled
//! matrix-matrix kernels (`mmq_<type>`, `mmf_<type>`), which stage a tile of weight rows in
//! shared memory and reuse it for a tile of tokens. Before all of these, quantized weights of
//! 9..=64 tokens (batched decode) take `mmqt_<type>` (`kernels/mmqt_<type>.hip`, int8 tiles on
//! tensor cores) where the table in `matmul_mmqt.rs` says so.

use std::collections::HashMap;
use std::sync::Arc;

use rocmforge_gguf::GgmlType;
use rocmforge_hip::{DeviceBuffer, HipBackend, HipFunction, HipModule, HipStream, LaunchConfig};

use super::matvec_fused::{Extras, NormIn};
use super::quantize_act::{Q8_1Layout, quantize_q8_1};
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

/// Largest token count served by the matrix-vector kernels.
pub const MATVEC_MAX_TOKENS: usize = 8;
/// Threads per block of the matrix-vector kernels.
const MMV_THREADS: usize = 256;
/// Weight rows and tokens per block of the tiled kernels (see `kernels/mmq.hip`).
const MMQ_ROWS: usize = 64;
const MMQ_TOKENS: usize = 32;
const MMQ_THREADS: u32 = 256;

const OP: &str = "hip::matmul";

/// The kernel families.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Family {
    /// Quantized matvec (`mmvq_<type>_n<NT>`).
    Mmvq,
    /// Float matvec (`mmvf_<type>_n<NT>`).
    Mmvf,
    /// Quantized tiled matmul (`mmq_<type>`).
    Mmq,
    /// Float tiled matmul (`mmf_<type>`).
    Mmf,
}

/// The matvec variant (compile-time token count) serving `n_tokens` (1..=8).
pub(crate) fn matvec_variant(n_tokens: usize) -> usize {
    n_tokens.next_power_of_two().min(MATVEC_MAX_TOKENS)
}

/// How the kernels see a weight type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Kind {
    /// Kernel name suffix (`mmvq_<suffix>`).
    suffix: &'static str,
    /// Values per chunk one thread unpacks (quantized), 0 for float weights.
    chunk_values: usize,
    /// The same for the multi-row matvec kernels (`mmvq_<type>_n<NT>_r<R>`): Q6_K's chunks are
    /// 64 values there.
    rows_chunk_values: usize,
}

fn kind(ty: GgmlType) -> Option<Kind> {
    use GgmlType::*;
    let (suffix, chunk_values) = match ty {
        F32 => ("f32", 0),
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
    };
    Some(Kind {
        suffix,
        chunk_values,
        rows_chunk_values: if ty == Q6_K { 64 } else { chunk_values },
    })
}

/// The kernel name suffix of a quantized weight type (`q4_k` in `mmq_q4_k`).
pub(super) fn kernel_suffix(ty: GgmlType) -> Option<&'static str> {
    kind(ty).filter(|k| k.chunk_values > 0).map(|k| k.suffix)
}

/// Whether [`matmul`] supports weights of type `ty`.
pub fn supports(ty: GgmlType) -> bool {
    kind(ty).is_some()
}

/// The kernels and the q8_1 scratch buffer of the GPU matmul; one per stream that runs
/// matmuls (the scratch is reused by each call on that stream).
#[derive(Debug)]
pub struct MatmulContext {
    backend: Arc<HipBackend>,
    mmvq: Arc<HipModule>,
    mmq: Arc<HipModule>,
    quantize: HipFunction,
    round_act: HipFunction,
    /// Kernels looked up so far, by (family, weight type, token count of the variant, rows
    /// per thread of the matvec variant).
    functions: HashMap<(Family, GgmlType, usize, usize), HipFunction>,
    /// Weight rows per thread of the quantized matvec kernels for 2..=8 tokens (`None`: chosen
    /// per shape, [`matvec_geometry`]).
    matvec_rows: Option<usize>,
    scratch: Option<DeviceBuffer<u8>>,
    /// The vendor-BLAS prefill path (`matmul_blas.rs`).
    pub(crate) blas: super::matmul_blas::BlasSlot,
    /// The one-launch decode kernels (`matvec_fused.rs`).
    pub(crate) fused: super::matvec_fused::FusedSlot,
    /// The batched-decode tile kernels (`matmul_mmqt.rs`).
    pub(crate) mmqt: super::matmul_mmqt::MmqtSlot,
}

impl MatmulContext {
    /// Loads the kernel families `mmvq`, `mmq` and `quantize_act` for `backend`'s device.
    pub fn new(backend: &Arc<HipBackend>) -> TensorResult<Self> {
        let act = backend.load_kernels("quantize_act")?;
        let quantize = act.function("quantize_q8_1_f32")?;
        let round_act = act.function("round_act_f32")?;
        Ok(Self {
            round_act,
            backend: Arc::clone(backend),
            mmvq: backend.load_kernels("mmvq")?,
            mmq: backend.load_kernels("mmq")?,
            quantize,
            functions: HashMap::new(),
            matvec_rows: None,
            scratch: None,
            blas: Default::default(),
            fused: Default::default(),
            mmqt: Default::default(),
        })
    }

    /// The backend whose device these kernels run on.
    pub fn backend(&self) -> &Arc<HipBackend> {
        &self.backend
    }

    /// Reserves scratch space for `n_tokens` rows of `cols` activations, so that later calls of
    /// at most that size allocate nothing.
    pub fn reserve(&mut self, n_tokens: usize, cols: usize) -> TensorResult<()> {
        let layout = Q8_1Layout::new(OP, n_tokens, cols.next_multiple_of(32))?;
        self.scratch_for(&layout).map(|_| ())
    }

    fn scratch_for(&mut self, layout: &Q8_1Layout) -> TensorResult<&mut DeviceBuffer<u8>> {
        self.scratch_bytes(layout.total_bytes)
    }

    /// The scratch buffer, grown to at least `need` bytes.
    fn scratch_bytes(&mut self, need: usize) -> TensorResult<&mut DeviceBuffer<u8>> {
        let need = need.max(1);
        let big_enough = self.scratch.as_ref().is_some_and(|s| s.len() >= need);
        if !big_enough {
            self.scratch = None; // free the old one before allocating the new one
            self.scratch = Some(self.backend.alloc::<u8>(need)?);
            super::bump_scratch_generation();
        }
        self.scratch.as_mut().ok_or(TensorError::Backend {
            op: OP,
            what: "scratch buffer missing after allocation".to_string(),
        })
    }

    /// Weight rows per thread of the quantized matvec kernels for 2..=8 tokens: 1, 2 or 4
    /// (capped at 2 for the 128-value-chunk formats Q2_K and Q3_K), or `None` to choose per
    /// shape (the default). For benchmarks and tests; results are the same up to float
    /// summation order.
    pub fn set_matvec_rows_per_thread(&mut self, rows: Option<usize>) {
        self.matvec_rows = rows.map(|r| match r {
            0 | 1 => 1,
            2 | 3 => 2,
            _ => 4,
        });
    }

    /// Quantizes the `n_rows` rows of `cols` values of `x` to q8_1 into the scratch (queued on
    /// `stream`); the device addresses of the quantized values and of their `(d, s)` pairs, in
    /// the layout the matvec kernels read. For the expert matmuls (`hip::moe`).
    pub(crate) fn quantize_rows(
        &mut self,
        x: &DeviceBuffer<f32>,
        n_rows: usize,
        cols: usize,
        stream: &HipStream,
    ) -> TensorResult<(rocmforge_hip::DevicePtr, rocmforge_hip::DevicePtr)> {
        self.quantize_rows_with(x, n_rows, cols, 0, stream)
            .map(|(aqs, ads, _)| (aqs, ads))
    }

    /// [`Self::quantize_rows`] with `extra` bytes of the scratch after the q8_1 rows (at a
    /// 256-byte boundary) for the caller's kernels until the next call on this context; their
    /// device address is the third value.
    pub(crate) fn quantize_rows_with(
        &mut self,
        x: &DeviceBuffer<f32>,
        n_rows: usize,
        cols: usize,
        extra: usize,
        stream: &HipStream,
    ) -> TensorResult<(
        rocmforge_hip::DevicePtr,
        rocmforge_hip::DevicePtr,
        rocmforge_hip::DevicePtr,
    )> {
        let layout = Q8_1Layout::new(OP, n_rows, cols)?;
        let extra_offset = layout.total_bytes.next_multiple_of(256);
        let overflow = || TensorError::Shape {
            op: OP,
            what: format!("{extra} scratch bytes after {n_rows} q8_1 rows overflow"),
        };
        let need = extra_offset.checked_add(extra).ok_or_else(overflow)?;
        let quantize = self.quantize.clone();
        let scratch = self.scratch_bytes(need)?;
        quantize_q8_1(&quantize, x, &layout, scratch, stream)?;
        let (aqs, ads) = q8_1_pointers(scratch, &layout)?;
        let rest = aqs.byte_offset(extra_offset).ok_or_else(overflow)?;
        Ok((aqs, ads, rest))
    }

    /// The kernel of `family` for `ty` (`nt`: the token-count variant of the matvec kernels,
    /// `r`: their rows per thread).
    fn function(
        &mut self,
        family: Family,
        ty: GgmlType,
        nt: usize,
        r: usize,
    ) -> TensorResult<HipFunction> {
        let key = (family, ty, nt, r);
        if let Some(f) = self.functions.get(&key) {
            return Ok(f.clone());
        }
        let suffix = kind(ty).map_or("", |k| k.suffix);
        let (module, name) = match family {
            Family::Mmvq if r > 1 => (&self.mmvq, format!("mmvq_{suffix}_n{nt}_r{r}")),
            Family::Mmvq => (&self.mmvq, format!("mmvq_{suffix}_n{nt}")),
            Family::Mmvf => (&self.mmvq, format!("mmvf_{suffix}_n{nt}")),
            Family::Mmq => (&self.mmq, format!("mmq_{suffix}")),
            Family::Mmf => (&self.mmq, format!("mmf_{suffix}")),
        };
        let f = module.function(&name)?;
        self.functions.insert(key, f.clone());
        Ok(f)
    }
}

/// Checks sizes; returns the weight's bytes per row.
fn check(
    ty: GgmlType,
    rows: usize,
    cols: usize,
    w: &DeviceBuffer<u8>,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    out: &DeviceBuffer<f32>,
) -> TensorResult<usize> {
    let bs = ty.block_size();
    if cols % bs != 0 {
        return Err(TensorError::Shape {
            op: OP,
            what: format!(
                "weight of type {ty} has {cols} columns, not a multiple of its block size {bs}"
            ),
        });
    }
    let too_big = |what: &str| TensorError::Shape {
        op: OP,
        what: format!(
            "{what} too large for the kernels' 32-bit indices: {rows} rows x {cols} columns, {n_tokens} tokens"
        ),
    };
    if u32::try_from(rows).is_err()
        || u32::try_from(cols).is_err()
        || u32::try_from(n_tokens).is_err()
    {
        return Err(too_big("shape"));
    }
    let row_bytes = cols / bs * ty.type_size();
    let checks = [
        ("weight bytes", row_bytes.checked_mul(rows), w.len()),
        ("activation values", n_tokens.checked_mul(cols), x.len()),
        ("output values", n_tokens.checked_mul(rows), out.len()),
    ];
    for (what, need, have) in checks {
        match need {
            Some(n) if n <= have => {}
            Some(n) => {
                return Err(TensorError::Shape {
                    op: OP,
                    what: format!(
                        "{ty} weight {rows} x {cols}, {n_tokens} tokens: {what} needed {n}, buffer holds {have}"
                    ),
                });
            }
            None => return Err(too_big(what)),
        }
    }
    Ok(row_bytes)
}

/// The device addresses of the quantized values and of the `(d, s)` pairs of q8_1 activations
/// in `buf` laid out as `layout`.
fn q8_1_pointers(
    buf: &DeviceBuffer<u8>,
    layout: &Q8_1Layout,
) -> TensorResult<(rocmforge_hip::DevicePtr, rocmforge_hip::DevicePtr)> {
    let aqs = buf.device_ptr();
    let ads = aqs
        .byte_offset(layout.ds_offset)
        .ok_or_else(|| TensorError::Shape {
            op: OP,
            what: "q8_1 scale offset overflows a device address".to_string(),
        })?;
    Ok((aqs, ads))
}

/// The one-row-per-thread matvec layout of a quantized weight type with `cols` columns:
/// `(kernel suffix, chunks per row, threads per row)`, or `None` for a float or unsupported
/// type. For the expert matvec (`hip::moe`), which shares the kernels' row loop.
pub(crate) fn quantized_matvec_layout(
    ty: GgmlType,
    cols: usize,
) -> Option<(&'static str, usize, usize)> {
    let k = kind(ty).filter(|k| k.chunk_values > 0)?;
    let chunks = cols / k.chunk_values;
    Some((k.suffix, chunks, threads_per_row(chunks)))
}

/// Chunks each thread of the matrix-vector kernels aims to take (amortises the row's
/// reduction and keeps several loads in flight per thread).
const CHUNKS_PER_THREAD: usize = 4;

/// Threads per row for the matrix-vector kernels: about [`CHUNKS_PER_THREAD`] chunks each, a
/// power of two up to the block size.
fn threads_per_row(chunks: usize) -> usize {
    chunks
        .div_ceil(CHUNKS_PER_THREAD)
        .next_power_of_two()
        .clamp(1, MMV_THREADS)
}

/// Rows per thread, threads per row and chunks per row of the quantized matvec kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct MatvecGeometry {
    rows_per_thread: usize,
    tpr: usize,
    chunks: usize,
}

impl MatvecGeometry {
    fn blocks(&self, rows: usize) -> usize {
        rows.div_ceil(self.rows_per_thread * (MMV_THREADS / self.tpr))
    }
}

/// The matvec geometry for `n_tokens` tokens of a `rows x cols` weight of kind `k` on a GPU
/// with `compute_units` compute units. One token: one row per thread. Several tokens: the most
/// rows per thread (each activation load then serves them all; at most 4, or 2 for 128-value
/// chunks) that still gives every compute unit a block, with up to 4x more threads per row
/// than [`threads_per_row`] to find one (fewer chunks each); one row per thread when none does.
/// `forced`: the rows per thread asked for ([`MatmulContext::set_matvec_rows_per_thread`]).
fn matvec_geometry(
    n_tokens: usize,
    rows: usize,
    cols: usize,
    k: Kind,
    compute_units: usize,
    forced: Option<usize>,
) -> MatvecGeometry {
    let one = cols / k.chunk_values.max(1);
    let base = MatvecGeometry {
        rows_per_thread: 1,
        tpr: threads_per_row(one),
        chunks: one,
    };
    if n_tokens < 2 {
        return base;
    }
    let chunks = cols / k.rows_chunk_values.max(1);
    let max_rows = if k.rows_chunk_values <= 64 { 4 } else { 2 };
    let multi = |rows_per_thread: usize, tpr: usize| MatvecGeometry {
        rows_per_thread,
        tpr,
        chunks,
    };
    let tpr0 = threads_per_row(chunks);
    if let Some(r) = forced {
        let r = r.min(max_rows);
        return if r > 1 { multi(r, tpr0) } else { base };
    }
    let wide = |tpr: usize| tpr <= MMV_THREADS && (tpr == tpr0 || tpr <= chunks);
    for r in [4usize, 2].into_iter().filter(|&r| r <= max_rows) {
        for tpr in [tpr0, tpr0 * 2, tpr0 * 4] {
            let g = multi(r, tpr);
            if wide(tpr) && g.blocks(rows) >= compute_units {
                return g;
            }
        }
    }
    base
}

fn grid_u32(n: usize) -> TensorResult<u32> {
    u32::try_from(n).map_err(|_| TensorError::Shape {
        op: OP,
        what: format!("{n} thread blocks exceed the launch limit"),
    })
}

/// `out[t][r] = sum_c W[r][c] * x[t][c]` on `stream`, for `w` the raw GGUF blocks of a
/// `rows x cols` weight (`cols` = GGUF `ne0`), `x: [n_tokens][cols]`, `out: [n_tokens][rows]`.
///
/// Buffers may be longer than needed. Errors: an unsupported type, `cols` not a whole number
/// of blocks, buffers too small (each naming the op and the sizes), or a HIP error.
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    ctx: &mut MatmulContext,
    w: &DeviceBuffer<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
) -> TensorResult<()> {
    let k = kind(ty).ok_or(TensorError::UnsupportedType { op: OP, ty })?;
    let row_bytes = check(ty, rows, cols, w, x, n_tokens, out)?;
    if n_tokens == 0 || rows == 0 {
        return Ok(());
    }
    let weight = super::matmul_mmqt::Weight {
        w,
        ty,
        rows,
        cols,
        row_bytes,
    };
    let act = super::matmul_mmqt::Act::F32(x);
    if super::matmul_mmqt::try_matmul(ctx, &weight, act, n_tokens, out, stream)? {
        return Ok(());
    }
    if super::matmul_blas::try_matmul(ctx, w, ty, rows, cols, x, n_tokens, out, stream)? {
        return Ok(());
    }
    let tiled = n_tokens > MATVEC_MAX_TOKENS;
    // Decode (1..=8 tokens): one launch with the activation preparation fused in, when the
    // shape fits its shared memory; else the two-launch kernels below.
    if n_tokens <= MATVEC_MAX_TOKENS
        && super::matvec_fused::try_matvec(
            ctx,
            w,
            ty,
            rows,
            cols,
            row_bytes,
            x,
            n_tokens,
            out,
            stream,
            Extras::default(),
        )?
    {
        return Ok(());
    }
    two_launch(
        ctx, k, ty, tiled, w, row_bytes, rows, cols, x, n_tokens, out, stream, false,
    )
}

/// The two-launch kernels of [`matmul`]: q8_1 quantization then `mmvq` / `mmq` (quantized), or
/// `mmvf` / `mmf` (float); `accumulate` (matvec kernels only, not `tiled`) adds the product to
/// `out`.
#[allow(clippy::too_many_arguments)]
fn two_launch(
    ctx: &mut MatmulContext,
    k: Kind,
    ty: GgmlType,
    tiled: bool,
    w: &DeviceBuffer<u8>,
    row_bytes: usize,
    rows: usize,
    cols: usize,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
    accumulate: bool,
) -> TensorResult<()> {
    if k.chunk_values == 0 {
        return matmul_float(
            ctx, ty, tiled, w, row_bytes, rows, cols, x, n_tokens, out, stream, accumulate,
        );
    }
    let cus = ctx.backend.info().compute_units as usize;
    let geo = matvec_geometry(n_tokens, rows, cols, k, cus, ctx.matvec_rows);
    let f = if tiled {
        ctx.function(Family::Mmq, ty, 0, 1)?
    } else {
        ctx.function(
            Family::Mmvq,
            ty,
            matvec_variant(n_tokens),
            geo.rows_per_thread,
        )?
    };
    let (aqs, ads) = ctx.quantize_rows(x, n_tokens, cols, stream)?;
    let shape = QuantizedShape {
        row_bytes,
        rows,
        cols,
        n_tokens,
        geo,
    };
    launch_quantized(&f, tiled, &shape, w, aqs, ads, out, stream, accumulate)
}

/// `out += x · Wᵀ` (the residual add in the matvec's store: each output has one writer) for
/// decode-sized batches (1..=[`MATVEC_MAX_TOKENS`] tokens), on the one-launch kernels where
/// they serve the shape, else the two-launch matvec kernels. Returns `false` without doing
/// anything for larger batches (the caller runs [`matmul`] and an add).
///
/// Errors: as [`matmul`].
#[allow(clippy::too_many_arguments)]
pub fn matmul_add(
    ctx: &mut MatmulContext,
    w: &DeviceBuffer<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
) -> TensorResult<bool> {
    let k = kind(ty).ok_or(TensorError::UnsupportedType { op: OP, ty })?;
    let row_bytes = check(ty, rows, cols, w, x, n_tokens, out)?;
    if n_tokens == 0 || rows == 0 {
        return Ok(true);
    }
    if n_tokens > MATVEC_MAX_TOKENS
        || super::matmul_mmqt::takes(ctx, ty, n_tokens, cols, rows.saturating_mul(row_bytes))
    {
        return Ok(false);
    }
    let extras = Extras {
        norm: None,
        accumulate: true,
    };
    if !super::matvec_fused::try_matvec(
        ctx, w, ty, rows, cols, row_bytes, x, n_tokens, out, stream, extras,
    )? {
        two_launch(
            ctx, k, ty, false, w, row_bytes, rows, cols, x, n_tokens, out, stream, true,
        )?;
    }
    Ok(true)
}

/// Checks a norm's buffers for `n_tokens` rows of `cols` values: its weight holds `cols` values
/// and its output `n_tokens * cols`.
fn check_norm(norm: &NormBuffers<'_>, cols: usize, n_tokens: usize) -> TensorResult<NormIn> {
    norm.weight.expect_dtype(OP, GgmlType::F32)?;
    let fits = norm.weight.n_elements() >= cols
        && n_tokens
            .checked_mul(cols)
            .is_some_and(|n| n <= norm.out.len());
    if !fits {
        return Err(TensorError::Shape {
            op: OP,
            what: format!(
                "norm of {n_tokens} x {cols}: weight of {} values, output of {}",
                norm.weight.n_elements(),
                norm.out.len()
            ),
        });
    }
    Ok(NormIn {
        weight: norm.weight.device_ptr(),
        eps: norm.eps,
        out: norm.out.device_ptr(),
    })
}

/// The buffers of an RMS norm fused into a matvec's activations (see [`NormIn`]).
#[derive(Debug)]
pub struct NormBuffers<'a> {
    /// The norm's weight: `cols` F32 values, typed storage or the file's raw bytes (as
    /// `GgufLoader` uploads them).
    pub weight: &'a DeviceTensor,
    /// Added to the mean square.
    pub eps: f32,
    /// The normed activations (`[n_tokens][cols]`), written.
    pub out: &'a mut DeviceBuffer<f32>,
}

/// `normed = rms_norm(x) * norm.weight` and `out = normed · Wᵀ` in one launch, where the
/// one-launch decode kernels serve the shape (1..=8 tokens); `false` without doing anything
/// otherwise (the caller runs the norm and [`matmul`]).
///
/// Errors: as [`matmul`], or a norm's buffers too small.
#[allow(clippy::too_many_arguments)]
pub fn matmul_normed(
    ctx: &mut MatmulContext,
    w: &DeviceBuffer<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    x: &DeviceBuffer<f32>,
    norm: &NormBuffers<'_>,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
) -> TensorResult<bool> {
    kind(ty).ok_or(TensorError::UnsupportedType { op: OP, ty })?;
    let row_bytes = check(ty, rows, cols, w, x, n_tokens, out)?;
    let norm = check_norm(norm, cols, n_tokens)?;
    if n_tokens == 0
        || rows == 0
        || n_tokens > MATVEC_MAX_TOKENS
        || super::matmul_mmqt::takes(ctx, ty, n_tokens, cols, rows.saturating_mul(row_bytes))
    {
        return Ok(false);
    }
    let extras = Extras {
        norm: Some(norm),
        accumulate: false,
    };
    super::matvec_fused::try_matvec(
        ctx, w, ty, rows, cols, row_bytes, x, n_tokens, out, stream, extras,
    )
}

/// SwiGLU projection `out[t][r] = silu(gate[r] · x[t]) * (up[r] · x[t])` in one launch, for a
/// gate/up pair of the same quantized type and shape, when the one-launch decode kernels serve
/// the shape (1..=8 tokens, activations within their shared memory; see
/// [`super::matvec_fused`]). Returns `false` without doing anything otherwise: the caller runs
/// [`matmul`] twice and `silu_mul`, which give the same values up to float summation order.
///
/// Errors: buffers too small for the shapes (naming the op and sizes), or a HIP error.
#[allow(clippy::too_many_arguments)]
pub fn matmul_swiglu(
    ctx: &mut MatmulContext,
    gate: &DeviceBuffer<u8>,
    up: &DeviceBuffer<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
    norm: Option<&NormBuffers<'_>>,
) -> TensorResult<bool> {
    if kind(ty).is_none_or(|k| k.chunk_values == 0) {
        return Ok(false);
    }
    let row_bytes = check(ty, rows, cols, gate, x, n_tokens, out)?;
    check(ty, rows, cols, up, x, n_tokens, out)?;
    let norm = norm.map(|n| check_norm(n, cols, n_tokens)).transpose()?;
    if n_tokens == 0
        || rows == 0
        || super::matmul_mmqt::takes(ctx, ty, n_tokens, cols, rows.saturating_mul(row_bytes))
    {
        return Ok(false);
    }
    super::matvec_fused::try_matvec_glu(
        ctx, gate, up, ty, rows, cols, row_bytes, x, n_tokens, out, stream, norm,
    )
}

/// Two or three quantized weights of type `ty` with `cols` columns (`ws[i]` with `rows[i]`
/// rows: q, k and v) multiplied with the same activations `x` in one launch, `outs[i]`
/// `[n_tokens][rows[i]]`, when the one-launch decode kernels serve them together (1..=8 tokens,
/// activations within their shared memory); or, where the `mmqt` tile kernels take the batch
/// (`matmul_mmqt.rs`), with the activations quantized once and one tile launch per weight. Returns `false` without doing anything otherwise:
/// the caller runs [`matmul`] for each (the same values up to float summation order).
///
/// Errors: mismatched list lengths or buffers too small for the shapes (naming the op and
/// sizes), or a HIP error.
#[allow(clippy::too_many_arguments)]
pub fn matmul_multi(
    ctx: &mut MatmulContext,
    ws: &[&DeviceBuffer<u8>],
    rows: &[usize],
    ty: GgmlType,
    cols: usize,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    outs: &mut [&mut DeviceBuffer<f32>],
    stream: &HipStream,
    norm: Option<&NormBuffers<'_>>,
) -> TensorResult<bool> {
    if ws.len() != rows.len() || ws.len() != outs.len() {
        return Err(TensorError::Shape {
            op: OP,
            what: format!(
                "matmul_multi: {} weights, {} row counts, {} outputs",
                ws.len(),
                rows.len(),
                outs.len()
            ),
        });
    }
    if kind(ty).is_none_or(|k| k.chunk_values == 0) || n_tokens == 0 {
        return Ok(false);
    }
    let mut row_bytes = 0;
    for i in 0..ws.len() {
        row_bytes = check(ty, rows[i], cols, ws[i], x, n_tokens, outs[i])?;
    }
    let norm = norm.map(|n| check_norm(n, cols, n_tokens)).transpose()?;
    let takes =
        |r: usize| super::matmul_mmqt::takes(ctx, ty, n_tokens, cols, r.saturating_mul(row_bytes));
    if rows.iter().all(|&r| takes(r)) {
        if norm.is_some() {
            // The caller norms first, then comes back here without the norm.
            return Ok(false);
        }
        // Batched decode: the activations quantized once, one tile launch per weight.
        let (aqs, ads) = ctx.quantize_rows(x, n_tokens, cols, stream)?;
        for ((w, &r), out) in ws.iter().zip(rows).zip(outs.iter_mut()) {
            let weight = super::matmul_mmqt::Weight {
                w,
                ty,
                rows: r,
                cols,
                row_bytes,
            };
            let q8 = super::matmul_mmqt::Act::Q8_1(aqs, ads);
            super::matmul_mmqt::try_matmul(ctx, &weight, q8, n_tokens, out, stream)?;
        }
        return Ok(true);
    }
    super::matvec_fused::try_matvec_multi(
        ctx, ws, rows, ty, cols, row_bytes, x, n_tokens, outs, stream, norm,
    )
}

/// [`matmul`] for a quantized weight whose activations are already q8_1 (`act`: the
/// [`Q8_1Layout`] of `n_tokens x cols`, written by a fused producer kernel): no quantization
/// launch. Float weights are [`TensorError::UnsupportedType`] here (use [`matmul`]).
#[allow(clippy::too_many_arguments)]
pub fn matmul_q8_1(
    ctx: &mut MatmulContext,
    w: &DeviceBuffer<u8>,
    ty: GgmlType,
    rows: usize,
    cols: usize,
    act: &DeviceBuffer<u8>,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
) -> TensorResult<()> {
    let k = kind(ty)
        .filter(|k| k.chunk_values > 0)
        .ok_or(TensorError::UnsupportedType { op: OP, ty })?;
    let layout = Q8_1Layout::new(OP, n_tokens, cols)?;
    let bs = ty.block_size();
    let row_bytes = cols / bs * ty.type_size();
    let fits = cols % bs == 0
        && u32::try_from(rows).is_ok()
        && u32::try_from(n_tokens).is_ok()
        && row_bytes.checked_mul(rows).is_some_and(|n| n <= w.len())
        && n_tokens.checked_mul(rows).is_some_and(|n| n <= out.len())
        && layout.total_bytes <= act.len();
    if !fits {
        return Err(TensorError::Shape {
            op: OP,
            what: format!(
                "{ty} weight {rows} x {cols} ({} bytes), {n_tokens} tokens: q8_1 activations of {} bytes (need {}), output of {} values",
                w.len(),
                act.len(),
                layout.total_bytes,
                out.len()
            ),
        });
    }
    if n_tokens == 0 || rows == 0 {
        return Ok(());
    }
    let (aqs, ads) = q8_1_pointers(act, &layout)?;
    let weight = super::matmul_mmqt::Weight {
        w,
        ty,
        rows,
        cols,
        row_bytes,
    };
    let q8 = super::matmul_mmqt::Act::Q8_1(aqs, ads);
    if super::matmul_mmqt::try_matmul(ctx, &weight, q8, n_tokens, out, stream)? {
        return Ok(());
    }
    let tiled = n_tokens > MATVEC_MAX_TOKENS;
    if n_tokens <= MATVEC_MAX_TOKENS
        && super::matvec_fused::try_matvec_q8_1(
            ctx, w, ty, rows, cols, row_bytes, aqs, ads, n_tokens, out, stream, false,
        )?
    {
        return Ok(());
    }
    let cus = ctx.backend.info().compute_units as usize;
    let geo = matvec_geometry(n_tokens, rows, cols, k, cus, ctx.matvec_rows);
    let f = if tiled {
        ctx.function(Family::Mmq, ty, 0, 1)?
    } else {
        ctx.function(
            Family::Mmvq,
            ty,
            matvec_variant(n_tokens),
            geo.rows_per_thread,
        )?
    };
    let shape = QuantizedShape {
        row_bytes,
        rows,
        cols,
        n_tokens,
        geo,
    };
    launch_quantized(&f, tiled, &shape, w, aqs, ads, out, stream, false)
}

/// Sizes of a quantized matmul, checked by the caller.
struct QuantizedShape {
    row_bytes: usize,
    rows: usize,
    cols: usize,
    n_tokens: usize,
    /// Matvec geometry (unused by the tiled kernels).
    geo: MatvecGeometry,
}

/// Queues the matvec (`tiled` false) or tiled kernel `f` over q8_1 activations at `aqs`/`ads`.
#[allow(clippy::too_many_arguments)]
fn launch_quantized(
    f: &HipFunction,
    tiled: bool,
    shape: &QuantizedShape,
    w: &DeviceBuffer<u8>,
    aqs: rocmforge_hip::DevicePtr,
    ads: rocmforge_hip::DevicePtr,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
    accumulate: bool,
) -> TensorResult<()> {
    let QuantizedShape {
        row_bytes,
        rows,
        cols,
        n_tokens,
        geo,
    } = *shape;
    let (rows32, cols32, nt32) = (rows as u32, cols as u32, n_tokens as u32);
    let row_bytes64 = row_bytes as u64;
    if tiled {
        let cfg = LaunchConfig {
            grid_dim: (
                grid_u32(rows.div_ceil(MMQ_ROWS))?,
                grid_u32(n_tokens.div_ceil(MMQ_TOKENS))?,
                1,
            ),
            block_dim: (MMQ_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `mmq_<type>(const u8* w, u64 row_bytes, u32 rows, u32 cols, const i8* aqs,
        // const float* ads, u32 n_tokens, float* out)`. `w` holds rows * row_bytes bytes, `x`
        // was quantized into the scratch (layout for n_tokens x cols), `out` holds
        // n_tokens * rows values (all checked above); the kernel bounds every row and token.
        unsafe {
            stream
                .launch_builder(f)
                .arg(w)
                .arg(&row_bytes64)
                .arg(&rows32)
                .arg(&cols32)
                .arg(&aqs)
                .arg(&ads)
                .arg(&nt32)
                .arg(&*out)
                .launch(cfg)?;
        }
        return Ok(());
    }
    let (chunks32, tpr32, acc32) = (geo.chunks as u32, geo.tpr as u32, u32::from(accumulate));
    let cfg = LaunchConfig {
        grid_dim: (grid_u32(geo.blocks(rows))?, 1, 1),
        block_dim: (MMV_THREADS as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: `mmvq_<type>_n<NT>[_r<R>](const u8* w, u64 row_bytes, u32 rows, u32 chunks,
    // const i8* aqs, const float* ads, u32 cols, u32 n_tokens, float* out, u32 tpr, u32 acc)`; sizes
    // checked above, n_tokens <= NT <= 8 fits one grid row, tpr is a power of two dividing the
    // block size, and the grid covers rows in blocks of R * 256 / tpr (`MatvecGeometry`); the
    // kernels bound every row.
    unsafe {
        stream
            .launch_builder(f)
            .dependent()
            .arg(w)
            .arg(&row_bytes64)
            .arg(&rows32)
            .arg(&chunks32)
            .arg(&aqs)
            .arg(&ads)
            .arg(&cols32)
            .arg(&nt32)
            .arg(&*out)
            .arg(&tpr32)
            .arg(&acc32)
            .launch(cfg)?;
    }
    Ok(())
}

/// F32 / F16 / BF16 weights with f32 activations.
#[allow(clippy::too_many_arguments)]
fn matmul_float(
    ctx: &mut MatmulContext,
    ty: GgmlType,
    tiled: bool,
    w: &DeviceBuffer<u8>,
    row_bytes: usize,
    rows: usize,
    cols: usize,
    x: &DeviceBuffer<f32>,
    n_tokens: usize,
    out: &mut DeviceBuffer<f32>,
    stream: &HipStream,
    accumulate: bool,
) -> TensorResult<()> {
    let (rows32, cols32, nt32) = (rows as u32, cols as u32, n_tokens as u32);
    let row_bytes64 = row_bytes as u64;
    if tiled {
        let f = ctx.function(Family::Mmf, ty, 0, 1)?;
        let cfg = LaunchConfig {
            grid_dim: (
                grid_u32(rows.div_ceil(MMQ_ROWS))?,
                grid_u32(n_tokens.div_ceil(MMQ_TOKENS))?,
                1,
            ),
            block_dim: (MMQ_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `mmf_<type>(const u8* w, u64 row_bytes, u32 rows, u32 cols, const float* x,
        // u32 n_tokens, float* out)`; sizes checked by the caller; the kernel bounds rows,
        // tokens and columns.
        unsafe {
            stream
                .launch_builder(&f)
                .arg(w)
                .arg(&row_bytes64)
                .arg(&rows32)
                .arg(&cols32)
                .arg(x)
                .arg(&nt32)
                .arg(&*out)
                .launch(cfg)?;
        }
        return Ok(());
    }
    let f = ctx.function(Family::Mmvf, ty, matvec_variant(n_tokens), 1)?;
    // F16 / BF16: the activations rounded to the weight's precision once, into the scratch.
    let mode: u32 = match ty {
        GgmlType::F16 => 1,
        GgmlType::BF16 => 2,
        _ => 0,
    };
    let act = if mode == 0 {
        x.device_ptr()
    } else {
        let n = n_tokens * cols;
        let round = ctx.round_act.clone();
        let scratch = ctx.scratch_bytes(n * 4)?;
        let y = scratch.device_ptr();
        let n64 = n as u64;
        let cfg = LaunchConfig {
            grid_dim: (grid_u32(n.div_ceil(256).min(4096))?, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `round_act_f32(const float* x, float* y, u64 n, u32 mode)`: `x` holds at
        // least n values (checked by the caller), the scratch at least 4 * n bytes; grid-stride
        // loop bounded by n.
        unsafe {
            stream
                .launch_builder(&round)
                .dependent()
                .arg(x)
                .arg(&y)
                .arg(&n64)
                .arg(&mode)
                .launch(cfg)?;
        }
        y
    };
    let vec = cols % 8 == 0;
    let chunks = if vec { cols / 8 } else { cols };
    let tpr = threads_per_row(chunks);
    let (chunks32, vec32, tpr32) = (chunks as u32, u32::from(vec), tpr as u32);
    let acc32 = u32::from(accumulate);
    let cfg = LaunchConfig {
        grid_dim: (grid_u32(rows.div_ceil(MMV_THREADS / tpr))?, 1, 1),
        block_dim: (MMV_THREADS as u32, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: `mmvf_<type>_n<NT>(const u8* w, u64 row_bytes, u32 rows, u32 chunks, u32 vec,
    // const float* x, u32 cols, u32 n_tokens, float* out, u32 tpr, u32 acc)`; sizes checked by the
    // caller (`act` is `x` or its rounded copy, n_tokens * cols values); `vec` only when
    // cols % 8 == 0, so rows and activations are 16-byte aligned.
    unsafe {
        stream
            .launch_builder(&f)
            .dependent()
            .arg(w)
            .arg(&row_bytes64)
            .arg(&rows32)
            .arg(&chunks32)
            .arg(&vec32)
            .arg(&act)
            .arg(&cols32)
            .arg(&nt32)
            .arg(&*out)
            .arg(&tpr32)
            .arg(&acc32)
            .launch(cfg)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_cpu_matmul_type_has_a_kernel() {
        use GgmlType::*;
        for ty in [
            F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, IQ4_XS, Q2_K, Q3_K, Q4_K, Q5_K,
            Q6_K, MXFP4,
        ] {
            let k = kind(ty);
            assert!(k.is_some(), "{ty}");
            if let Some(k) = k.filter(|k| k.chunk_values > 0) {
                assert_eq!(ty.block_size() % k.chunk_values, 0, "{ty}");
            }
        }
        assert!(!supports(GgmlType::Q8_K));
    }

    #[test]
    fn matvec_variants_cover_one_to_eight_tokens() {
        let v: Vec<usize> = (1..=8).map(matvec_variant).collect();
        assert_eq!(v, [1, 2, 4, 4, 8, 8, 8, 8]);
    }

    #[test]
    fn matvec_geometry_takes_more_rows_per_thread_while_every_cu_has_a_block() {
        let (q4k, q6k, q3k) = (
            kind(GgmlType::Q4_K).unwrap(),
            kind(GgmlType::Q6_K).unwrap(),
            kind(GgmlType::Q3_K).unwrap(),
        );
        // One token: one row per thread, threads_per_row's split.
        let g = matvec_geometry(1, 14336, 4096, q4k, 132, None);
        assert_eq!((g.rows_per_thread, g.tpr, g.chunks), (1, 16, 64));
        // Llama-3-8B gate at 8 tokens: 4 rows per thread, 224 blocks.
        let g = matvec_geometry(8, 14336, 4096, q4k, 132, None);
        assert_eq!((g.rows_per_thread, g.tpr), (4, 16));
        assert_eq!(g.blocks(14336), 224);
        // q/o 4096 x 4096: 4 rows x 16 threads gives 64 blocks; 4 rows x 64 threads 256.
        let g = matvec_geometry(8, 4096, 4096, q4k, 132, None);
        assert_eq!((g.rows_per_thread, g.tpr), (4, 64));
        assert!(g.blocks(4096) >= 132);
        // Q6_K: 128-value chunks for one row per thread, 64-value chunks for several.
        assert_eq!(matvec_geometry(1, 14336, 4096, q6k, 132, None).chunks, 32);
        let g = matvec_geometry(4, 14336, 4096, q6k, 132, None);
        assert_eq!((g.rows_per_thread, g.chunks), (4, 64));
        // Q3_K (128-value chunks): at most 2 rows per thread.
        assert_eq!(
            matvec_geometry(4, 14336, 4096, q3k, 132, None).rows_per_thread,
            2
        );
        // Too few rows for any: one row per thread.
        let g = matvec_geometry(8, 64, 4096, q6k, 132, None);
        assert_eq!(g, matvec_geometry(1, 64, 4096, q6k, 132, None));
        // Forced, capped per format, never more threads than the default split.
        let g = matvec_geometry(8, 64, 4096, q4k, 132, Some(4));
        assert_eq!((g.rows_per_thread, g.tpr), (4, 16));
        assert_eq!(
            matvec_geometry(8, 64, 4096, q3k, 132, Some(4)).rows_per_thread,
            2
        );
        assert_eq!(matvec_geometry(8, 64, 4096, q6k, 132, Some(1)).chunks, 32);
        for rows in [1usize, 7, 100, 1000, 20000] {
            for cols in [256usize, 768, 4608, 14336] {
                for k in [q4k, q6k, q3k, kind(GgmlType::Q8_0).unwrap()] {
                    let g = matvec_geometry(8, rows, cols, k, 132, None);
                    assert!(g.tpr.is_power_of_two() && MMV_THREADS % g.tpr == 0);
                    assert!(g.blocks(rows) * g.rows_per_thread * (MMV_THREADS / g.tpr) >= rows);
                    let cv = if g.rows_per_thread > 1 {
                        k.rows_chunk_values
                    } else {
                        k.chunk_values
                    };
                    assert_eq!(g.chunks * cv, cols);
                }
            }
        }
    }

    #[test]
    fn threads_per_row_is_a_power_of_two_within_the_block() {
        assert_eq!(threads_per_row(1), 1);
        assert_eq!(threads_per_row(3), 1);
        assert_eq!(threads_per_row(18), 8);
        assert_eq!(threads_per_row(128), 32);
        assert_eq!(threads_per_row(448), 128);
        assert_eq!(threads_per_row(100_000), 256);
        for c in 1..2000 {
            let t = threads_per_row(c);
            assert!(t.is_power_of_two() && MMV_THREADS % t == 0);
        }
    }
}
