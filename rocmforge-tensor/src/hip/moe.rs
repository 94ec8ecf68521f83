//! Launches of `kernels/moe.hip`: the router's top-k ([`moe_route`]), the expert matvec that
//! reads only the chosen experts' rows ([`matmul_id`]) and the weighted sum of the experts'
//! outputs ([`moe_weighted_sum`]). The expert ids stay on the device between them, so a decode
//! step needs no host synchronisation and can be captured.
//!
//! [`matmul_id`] runs one matvec per (token, slot) while the slots are few per expert (decode);
//! with many (prefill) it groups the slots by expert on the device and runs the tiled matmul of
//! `rf_mmq_tile.h` over each expert's slots, reading each chosen expert's rows once per 32 of its
//! slots instead of once per slot (llama.cpp's `mul_mat_id` idea).

use rocmforge_hip::{DeviceBuffer, LaunchConfig};

use super::matmul::quantized_matvec_layout;
use super::{HipOps, check_device, check_f32, grid_1d, to_u32};
use crate::cpu::MatmulIdShape;
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

/// Largest expert count the routing kernel takes (`RF_MOE_MAX_EXPERTS` in `kernels/moe.hip`).
pub const MAX_EXPERTS: usize = 1024;
/// Threads per block of the expert matvec (`RF_MMV_THREADS`).
const MMV_THREADS: usize = 256;
/// Slots (grid rows) per launch of the expert matvec: the grid's y limit.
const MAX_SLOTS_PER_LAUNCH: usize = 65_535;
/// Slots per expert (on average) from which [`matmul_id`] groups the slots by expert and runs
/// the tiled kernels instead of one matvec per slot.
const GROUPED_MIN_SLOTS_PER_EXPERT: usize = 4;
/// Weight rows and slots per tile of the grouped kernels (`RF_MMQ_ROWS`, `RF_MMQ_TOKENS`), and
/// their threads per block (`RF_MMQ_THREADS`).
const TILE_ROWS: usize = 64;
const TILE_SLOTS: usize = 32;
const TILE_THREADS: u32 = 256;
/// Threads per block of the grouping kernel (`RF_MOE_GROUP_THREADS`).
const GROUP_THREADS: u32 = 256;

fn shape(op: &'static str, what: String) -> TensorError {
    TensorError::Shape { op, what }
}

/// Routes each row of `logits` (`[n_tokens][n_expert]` F32) on the device: softmax, the `k`
/// most probable experts (largest first, smallest index on ties) into `ids[t * k..][..k]` and
/// their probabilities into `weights` (`[n_tokens][k]`), renormalised when `normalize`.
pub fn moe_route(
    ops: &HipOps,
    logits: &DeviceTensor,
    n_expert: usize,
    k: usize,
    normalize: bool,
    ids: &mut DeviceBuffer<u32>,
    weights: &mut DeviceTensor,
) -> TensorResult<()> {
    const OP: &str = "moe_route";
    let len = logits.n_elements();
    if n_expert == 0 || n_expert > MAX_EXPERTS || k == 0 || k > n_expert || len % n_expert != 0 {
        return Err(shape(
            OP,
            format!(
                "{len} logits in rows of {n_expert} experts (at most {MAX_EXPERTS}), {k} chosen"
            ),
        ));
    }
    let n_tokens = len / n_expert;
    check_f32(OP, "logits", logits, len)?;
    check_f32(OP, "weights", weights, n_tokens * k)?;
    check_device(OP, ops, logits)?;
    check_device(OP, ops, weights)?;
    if ids.len() < n_tokens * k {
        return Err(shape(
            OP,
            format!("{n_tokens} tokens x {k} experts into {} ids", ids.len()),
        ));
    }
    if n_tokens == 0 {
        return Ok(());
    }
    let f = ops.function("moe", "moe_route_f32")?;
    let warp = ops.backend().warp_size();
    let cfg = LaunchConfig {
        grid_dim: (to_u32(OP, "tokens", n_tokens)?, 1, 1),
        block_dim: (warp, 1, 1),
        shared_mem_bytes: 0,
    };
    let (pl, pi, pw) = (logits.device_ptr(), ids.device_ptr(), weights.device_ptr());
    let (ne, k32, norm) = (n_expert as u32, k as u32, u32::from(normalize));
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&pl).arg(&ne).arg(&k32).arg(&norm).arg(&pi).arg(&pw);
    // SAFETY: `moe_route_f32(const float* logits, u32 n_expert, u32 k, u32 normalize, u32* ids,
    // float* weights)`; logits hold n_tokens * n_expert f32, ids and weights at least
    // n_tokens * k (checked above); n_expert <= RF_MOE_MAX_EXPERTS, the kernel's shared array;
    // one block of one warp per token.
    unsafe { l.launch(cfg)? };
    Ok(())
}

/// `out[t] = sum_j weights[t][j] * y[t * k + j]` (rows of `out`'s width) on the device.
pub fn moe_weighted_sum(
    ops: &HipOps,
    y: &DeviceTensor,
    weights: &DeviceTensor,
    k: usize,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    const OP: &str = "moe_weighted_sum";
    let n_tokens = weights.n_elements().checked_div(k).unwrap_or(0);
    let width = out.n_elements().checked_div(n_tokens).unwrap_or(0);
    if k == 0 || weights.n_elements() != n_tokens * k || out.n_elements() != n_tokens * width {
        return Err(shape(
            OP,
            format!(
                "{} weights in groups of {k}, out {:?}",
                weights.n_elements(),
                out.shape()
            ),
        ));
    }
    check_f32(OP, "y", y, n_tokens * k * width)?;
    check_f32(OP, "weights", weights, n_tokens * k)?;
    check_f32(OP, "out", out, n_tokens * width)?;
    for t in [y, weights, &*out] {
        check_device(OP, ops, t)?;
    }
    if n_tokens * width == 0 {
        return Ok(());
    }
    let f = ops.function("moe", "moe_weighted_sum_f32")?;
    let (py, pw, po) = (y.device_ptr(), weights.device_ptr(), out.device_ptr());
    let (k32, w32, n32) = (
        to_u32(OP, "k", k)?,
        to_u32(OP, "width", width)?,
        to_u32(OP, "tokens", n_tokens)?,
    );
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&py).arg(&pw).arg(&k32).arg(&w32).arg(&n32).arg(&po);
    // SAFETY: `moe_weighted_sum_f32(const float* y, const float* w, u32 k, u32 width,
    // u32 n_tokens, float* out)`; sizes checked above; grid-stride over n_tokens * width.
    unsafe { l.launch(grid_1d(n_tokens * width, 256))? };
    Ok(())
}

/// Whether [`matmul_id`] takes expert weights of type `ty` (the quantized types of the matvec
/// kernels; not F32/F16/BF16).
pub fn supports(ty: rocmforge_gguf::GgmlType) -> bool {
    quantized_matvec_layout(ty, 0).is_some_and(|(suffix, _, _)| id_kernel(suffix).is_some())
}

/// The grouped expert matmul kernel of a quantized type (the suffixes of [`id_kernel`]).
fn grouped_kernel(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "q4_0" => "mmq_id_q4_0",
        "q4_1" => "mmq_id_q4_1",
        "q5_0" => "mmq_id_q5_0",
        "q5_1" => "mmq_id_q5_1",
        "q8_0" => "mmq_id_q8_0",
        "iq4_nl" => "mmq_id_iq4_nl",
        "mxfp4" => "mmq_id_mxfp4",
        "q2_k" => "mmq_id_q2_k",
        "q3_k" => "mmq_id_q3_k",
        "q4_k" => "mmq_id_q4_k",
        "q5_k" => "mmq_id_q5_k",
        "q6_k" => "mmq_id_q6_k",
        "iq4_xs" => "mmq_id_iq4_xs",
        _ => return None,
    })
}

/// The expert matvec kernel of a quantized type.
fn id_kernel(suffix: &str) -> Option<&'static str> {
    Some(match suffix {
        "q4_0" => "mmvq_id_q4_0",
        "q4_1" => "mmvq_id_q4_1",
        "q5_0" => "mmvq_id_q5_0",
        "q5_1" => "mmvq_id_q5_1",
        "q8_0" => "mmvq_id_q8_0",
        "iq4_nl" => "mmvq_id_iq4_nl",
        "mxfp4" => "mmvq_id_mxfp4",
        "q2_k" => "mmvq_id_q2_k",
        "q3_k" => "mmvq_id_q3_k",
        "q4_k" => "mmvq_id_q4_k",
        "q5_k" => "mmvq_id_q5_k",
        "q6_k" => "mmvq_id_q6_k",
        "iq4_xs" => "mmvq_id_iq4_xs",
        _ => return None,
    })
}

/// The checked operands of an expert matmul on the device.
struct ExpertMatmul<'a> {
    suffix: &'static str,
    chunks: usize,
    tpr: usize,
    rows: usize,
    cols: usize,
    row_bytes: usize,
    w: &'a DeviceBuffer<u8>,
    x: &'a DeviceBuffer<f32>,
    out: rocmforge_hip::DevicePtr,
}

impl<'a> ExpertMatmul<'a> {
    /// Checks `w` (a quantized type stacking `s.n_expert` slabs), `x`, `ids` and `out` against
    /// `s` (sizes, columns, the device); `None` when there is nothing to compute.
    fn check(
        op: &'static str,
        ops: &HipOps,
        w: &'a DeviceTensor,
        s: &MatmulIdShape,
        x: &'a DeviceTensor,
        ids: &DeviceBuffer<u32>,
        out: &mut DeviceTensor,
    ) -> TensorResult<Option<Self>> {
        let ty = w.dtype();
        let (suffix, chunks, tpr) =
            quantized_matvec_layout(ty, w.cols()).ok_or(TensorError::UnsupportedType { op, ty })?;
        let cols = w.cols();
        let rows = s.check(
            op,
            w.rows(),
            cols,
            x.n_elements(),
            ids.len(),
            out.n_elements(),
        )?;
        if cols % 32 != 0 || cols % ty.block_size() != 0 {
            return Err(shape(op, format!("{cols} columns of {ty}")));
        }
        let wb = w.bytes_buffer().ok_or_else(|| TensorError::Backend {
            op,
            what: "GPU weights must be uploaded as raw bytes (GgufLoader does)".to_string(),
        })?;
        let row_bytes = cols / ty.block_size() * ty.type_size();
        if Some(wb.len()) < row_bytes.checked_mul(w.rows()) {
            return Err(shape(
                op,
                format!("{} weight bytes for {} rows", wb.len(), w.rows()),
            ));
        }
        for t in [w, x, &*out] {
            check_device(op, ops, t)?;
        }
        to_u32(op, "slots", s.n_tokens * s.k)?;
        if s.n_tokens * s.k == 0 || rows == 0 {
            return Ok(None);
        }
        Ok(Some(Self {
            suffix,
            chunks,
            tpr,
            rows,
            cols,
            row_bytes,
            w: wb,
            x: x.f32_buffer(op)?,
            out: out.f32_buffer_mut(op)?.device_ptr(),
        }))
    }

    /// Whether the slots are many enough per expert for the grouped tiled kernels.
    fn grouped(s: &MatmulIdShape) -> bool {
        s.n_tokens * s.k >= GROUPED_MIN_SLOTS_PER_EXPERT * s.n_expert
    }

    /// Quantizes the activations and launches `f` (`mmvq_id_<type>` or `mmvq_id_glu_<type>`,
    /// whose arguments are the weights `w` followed by the common ones) over every slot.
    fn launch_matvec(
        &self,
        op: &'static str,
        ops: &HipOps,
        f: &rocmforge_hip::HipFunction,
        w: &[rocmforge_hip::DevicePtr],
        s: &MatmulIdShape,
        ids: &DeviceBuffer<u32>,
    ) -> TensorResult<()> {
        let slots = s.n_tokens * s.k;
        let (aqs, ads) = ops
            .with_matmul(|ctx, stream| ctx.quantize_rows(self.x, s.x_rows(), self.cols, stream))?;
        let (rb64, rows32, chunks32, cols32) = (
            self.row_bytes as u64,
            to_u32(op, "rows", self.rows)?,
            to_u32(op, "chunks", self.chunks)?,
            to_u32(op, "cols", self.cols)?,
        );
        let (ne32, k32, per_slot, tpr32) = (
            to_u32(op, "experts", s.n_expert)?,
            to_u32(op, "k", s.k)?,
            u32::from(s.x_per_slot),
            self.tpr as u32,
        );
        let row_blocks = to_u32(op, "row blocks", self.rows.div_ceil(MMV_THREADS / self.tpr))?;
        let glu = w.len() == 2;
        let pi = ids.device_ptr();
        for first in (0..slots).step_by(MAX_SLOTS_PER_LAUNCH) {
            let n = (slots - first).min(MAX_SLOTS_PER_LAUNCH);
            let cfg = LaunchConfig {
                grid_dim: (row_blocks, n as u32, 1),
                block_dim: (MMV_THREADS as u32, 1, 1),
                shared_mem_bytes: 0,
            };
            let slot0 = first as u32;
            let mut l = ops.stream().launch_builder(f);
            l.dependent();
            for p in w {
                l.arg(p);
            }
            l.arg(&rb64)
                .arg(&rows32)
                .arg(&chunks32)
                .arg(&aqs)
                .arg(&ads)
                .arg(&cols32)
                .arg(&pi)
                .arg(&ne32)
                .arg(&k32);
            if !glu {
                l.arg(&per_slot);
            }
            l.arg(&self.out).arg(&tpr32).arg(&slot0);
            // SAFETY: `mmvq_id_<type>(const u8* w, u64 row_bytes, u32 rows, u32 chunks,
            // const i8* aqs, const float* ads, u32 cols, const u32* ids, u32 n_expert, u32 k,
            // u32 x_per_slot, float* out, u32 tpr, u32 slot0)`, or `mmvq_id_glu_<type>` with a
            // gate and an up weight in front and no x_per_slot (its callers pass one row per
            // token). Each weight holds n_expert * rows rows of row_bytes (checked), the q8_1
            // scratch x_rows() rows of cols (quantized above on the same stream), ids at least
            // `slots` values, out slots * rows f32 (all checked); the grid covers slots
            // slot0..slot0 + n <= slots; an id >= n_expert is caught by the kernel; tpr is a
            // power of two dividing the block, the grid covers rows in blocks of 256 / tpr.
            unsafe { l.launch(cfg)? };
        }
        Ok(())
    }
}

/// [`crate::cpu::matmul_id`] on the device: `w` (a quantized type) stacks `s.n_expert` slabs;
/// `ids` (on the device, e.g. from [`moe_route`]) picks each slot's slab. Activations are
/// quantized to q8_1 once (the matmul context's scratch), then one launch covers every slot —
/// or, with many slots per expert, the grouped tiled kernels. An id outside the experts gives
/// NaN rows (the ids never come back to the host to check).
pub fn matmul_id(
    ops: &HipOps,
    w: &DeviceTensor,
    s: &MatmulIdShape,
    x: &DeviceTensor,
    ids: &DeviceBuffer<u32>,
    out: &mut DeviceTensor,
) -> TensorResult<()> {
    const OP: &str = "matmul_id";
    let Some(m) = ExpertMatmul::check(OP, ops, w, s, x, ids, out)? else {
        return Ok(());
    };
    if ExpertMatmul::grouped(s) {
        let g = Grouped {
            w: m.w.device_ptr(),
            row_bytes: m.row_bytes,
            rows: m.rows,
            cols: m.cols,
            ids: ids.device_ptr(),
            out: m.out,
        };
        return g.launch(ops, m.suffix, s, m.x);
    }
    let ty = w.dtype();
    let name = id_kernel(m.suffix).ok_or(TensorError::UnsupportedType { op: OP, ty })?;
    let f = ops.function("moe", name)?;
    m.launch_matvec(OP, ops, &f, &[m.w.device_ptr()], s, ids)
}

/// The gate and up expert matvecs of each slot and the SwiGLU of their results in one launch
/// (`mmvq_id_glu_<type>`): `out[s] = silu(x_t · G[ids[s]]ᵀ) * (x_t · U[ids[s]]ᵀ)`, for gate and
/// up of the same quantized type and shape and one `x` row per token. Returns `false` without
/// doing anything where that kernel does not serve (types or shapes differ, one row per slot,
/// or slots many enough per expert for the grouped kernels): the caller runs [`matmul_id`]
/// twice and `silu_mul` (the same values up to float summation order).
#[allow(clippy::too_many_arguments)]
pub fn matmul_id_swiglu(
    ops: &HipOps,
    gate: &DeviceTensor,
    up: &DeviceTensor,
    s: &MatmulIdShape,
    x: &DeviceTensor,
    ids: &DeviceBuffer<u32>,
    out: &mut DeviceTensor,
) -> TensorResult<bool> {
    const OP: &str = "matmul_id_swiglu";
    let same = gate.dtype() == up.dtype() && gate.shape() == up.shape();
    if !same || s.x_per_slot || ExpertMatmul::grouped(s) {
        return Ok(false);
    }
    let Some(glu) = glu_kernel(gate.dtype()) else {
        return Ok(false);
    };
    let Some(m) = ExpertMatmul::check(OP, ops, gate, s, x, ids, out)? else {
        return Ok(true);
    };
    let ub = up.bytes_buffer().ok_or_else(|| TensorError::Backend {
        op: OP,
        what: "GPU weights must be uploaded as raw bytes (GgufLoader does)".to_string(),
    })?;
    if ub.len() < m.w.len() {
        return Err(shape(
            OP,
            format!("{} up bytes for {} gate bytes", ub.len(), m.w.len()),
        ));
    }
    check_device(OP, ops, up)?;
    let f = ops.function("moe", glu)?;
    m.launch_matvec(OP, ops, &f, &[m.w.device_ptr(), ub.device_ptr()], s, ids)?;
    Ok(true)
}

/// The fused gate/up expert matvec kernel of a quantized type.
fn glu_kernel(ty: rocmforge_gguf::GgmlType) -> Option<&'static str> {
    let (suffix, _, _) = quantized_matvec_layout(ty, 0)?;
    Some(match suffix {
        "q4_0" => "mmvq_id_glu_q4_0",
        "q4_1" => "mmvq_id_glu_q4_1",
        "q5_0" => "mmvq_id_glu_q5_0",
        "q5_1" => "mmvq_id_glu_q5_1",
        "q8_0" => "mmvq_id_glu_q8_0",
        "iq4_nl" => "mmvq_id_glu_iq4_nl",
        "mxfp4" => "mmvq_id_glu_mxfp4",
        "q2_k" => "mmvq_id_glu_q2_k",
        "q3_k" => "mmvq_id_glu_q3_k",
        "q4_k" => "mmvq_id_glu_q4_k",
        "q5_k" => "mmvq_id_glu_q5_k",
        "q6_k" => "mmvq_id_glu_q6_k",
        "iq4_xs" => "mmvq_id_glu_iq4_xs",
        _ => return None,
    })
}

/// The operands of a grouped expert matmul (checked by [`matmul_id`]).
struct Grouped {
    w: rocmforge_hip::DevicePtr,
    row_bytes: usize,
    rows: usize,
    cols: usize,
    ids: rocmforge_hip::DevicePtr,
    out: rocmforge_hip::DevicePtr,
}

impl Grouped {
    /// Quantizes the activations, groups the slots by expert (`moe_group_slots`), counts each
    /// group's tiles (`moe_tile_table`) and runs `mmq_id_<suffix>` over them: three launches,
    /// no host synchronisation. The grouping arrays live in the matmul scratch after the q8_1
    /// rows.
    fn launch(
        &self,
        ops: &HipOps,
        suffix: &str,
        s: &MatmulIdShape,
        x: &DeviceBuffer<f32>,
    ) -> TensorResult<()> {
        const OP: &str = "matmul_id";
        let slots = s.n_tokens * s.k;
        let groups = s.n_expert + 1;
        // counts[groups], tile_first[groups + 1], perm[groups][slots] (u32 each).
        let words = groups
            .checked_mul(slots)
            .and_then(|p| p.checked_add(2 * groups + 1))
            .ok_or_else(|| shape(OP, format!("{slots} slots x {groups} expert groups")))?;
        let max_tiles = slots.div_ceil(TILE_SLOTS) + groups;
        let grid_y = u32::try_from(max_tiles)
            .ok()
            .filter(|&t| t <= MAX_SLOTS_PER_LAUNCH as u32)
            .ok_or_else(|| {
                shape(
                    OP,
                    format!("{slots} slots over {groups} expert groups exceed one launch"),
                )
            })?;
        let group_f = ops.function("moe", "moe_group_slots")?;
        let table_f = ops.function("moe", "moe_tile_table")?;
        let name = grouped_kernel(suffix)
            .ok_or_else(|| shape(OP, format!("no grouped expert kernel for {suffix} weights")))?;
        let mmq_f = ops.function("moe", name)?;
        let (aqs, ads, counts) = ops.with_matmul(|ctx, stream| {
            ctx.quantize_rows_with(x, s.x_rows(), self.cols, 4 * words, stream)
        })?;
        let offset = |words: usize| {
            counts
                .byte_offset(4 * words)
                .ok_or_else(|| shape(OP, "grouping scratch address overflows".to_string()))
        };
        let tile_first = offset(groups)?;
        let perm = offset(2 * groups + 1)?;
        let (slots32, ne32, groups32) = (
            to_u32(OP, "slots", slots)?,
            to_u32(OP, "experts", s.n_expert)?,
            to_u32(OP, "expert groups", groups)?,
        );
        let mut l = ops.stream().launch_builder(&group_f);
        l.arg(&self.ids)
            .arg(&slots32)
            .arg(&ne32)
            .arg(&counts)
            .arg(&perm);
        let cfg = LaunchConfig {
            grid_dim: (groups32, 1, 1),
            block_dim: (GROUP_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `moe_group_slots(const u32* ids, u32 n_slots, u32 n_expert, u32* counts,
        // u32* perm)`; ids hold `slots` values (checked by matmul_id); counts has `groups`
        // words and perm `groups * slots` in the scratch reserved above; one block per group.
        unsafe { l.launch(cfg)? };
        let mut l = ops.stream().launch_builder(&table_f);
        l.arg(&counts).arg(&groups32).arg(&tile_first);
        let one = LaunchConfig {
            grid_dim: (1, 1, 1),
            block_dim: (1, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `moe_tile_table(const u32* counts, u32 n_groups, u32* tile_first)`; counts
        // holds `groups` words written by the launch before on the same stream, tile_first
        // `groups + 1`; one thread.
        unsafe { l.launch(one)? };
        let (rb64, rows32, cols32, div32) = (
            self.row_bytes as u64,
            to_u32(OP, "rows", self.rows)?,
            to_u32(OP, "cols", self.cols)?,
            to_u32(OP, "k", if s.x_per_slot { 1 } else { s.k })?,
        );
        let mut l = ops.stream().launch_builder(&mmq_f);
        l.arg(&self.w)
            .arg(&rb64)
            .arg(&rows32)
            .arg(&cols32)
            .arg(&aqs)
            .arg(&ads)
            .arg(&counts)
            .arg(&perm)
            .arg(&tile_first)
            .arg(&ne32)
            .arg(&slots32)
            .arg(&div32)
            .arg(&self.out);
        let cfg = LaunchConfig {
            grid_dim: (
                to_u32(OP, "row tiles", self.rows.div_ceil(TILE_ROWS))?,
                grid_y,
                1,
            ),
            block_dim: (TILE_THREADS, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: `mmq_id_<type>(const u8* w, u64 row_bytes, u32 rows, u32 cols, const i8* aqs,
        // const float* ads, const u32* counts, const u32* perm, const u32* tile_first,
        // u32 n_expert, u32 n_slots, u32 act_div, float* out)`. `w` holds n_expert * rows rows
        // of row_bytes, the q8_1 scratch x_rows() rows of cols (quantized above on this stream),
        // out slots * rows f32 (checked by matmul_id); perm holds slot numbers < n_slots whose
        // activation row slot / act_div < x_rows(); the grid's y covers every possible tile
        // (slots / 32 + groups), blocks past tile_first[groups] return.
        unsafe { l.launch(cfg)? };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use rocmforge_gguf::GgmlType;

    use super::*;

    #[test]
    fn every_quantized_matvec_type_has_an_expert_kernel_in_the_source() {
        let source = include_str!("../../../kernels/moe.hip");
        let quantized = [
            GgmlType::Q4_0,
            GgmlType::Q4_1,
            GgmlType::Q5_0,
            GgmlType::Q5_1,
            GgmlType::Q8_0,
            GgmlType::IQ4_NL,
            GgmlType::MXFP4,
            GgmlType::IQ4_XS,
            GgmlType::Q2_K,
            GgmlType::Q3_K,
            GgmlType::Q4_K,
            GgmlType::Q5_K,
            GgmlType::Q6_K,
        ];
        for ty in quantized {
            assert!(supports(ty), "{ty}");
            let (suffix, _, _) = quantized_matvec_layout(ty, 256).unwrap_or(("", 0, 0));
            let name = id_kernel(suffix).unwrap_or("");
            let macro_use = format!("RF_MMVQ_ID_KERNEL({suffix},");
            assert!(
                name.ends_with(suffix) && source.contains(&macro_use),
                "{ty}: {name}"
            );
            let glu = glu_kernel(ty).unwrap_or("");
            let macro_use = format!("RF_MMVQ_ID_GLU_KERNEL({suffix},");
            assert!(
                glu.ends_with(suffix) && source.contains(&macro_use),
                "{ty}: {glu}"
            );
            let grouped = grouped_kernel(suffix).unwrap_or("");
            let macro_use = format!("RF_MMQ_ID_KERNEL({suffix},");
            assert!(
                grouped.ends_with(suffix) && source.contains(&macro_use),
                "{ty}: {grouped}"
            );
        }
        for ty in [GgmlType::F32, GgmlType::F16, GgmlType::BF16] {
            assert!(!supports(ty), "{ty} has no expert matvec");
        }
    }
}
