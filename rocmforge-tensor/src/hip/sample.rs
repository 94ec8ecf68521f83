//! Launch of `kernels/sample.hip`: the sampling chain of [`crate::cpu::sample_row`] for a batch
//! of logit rows, one block per row, only token ids coming back.
//!
//! A step's inputs (per-row parameters, uniforms, penalty lists with the logit bias folded in
//! ([`SampleRow::offsets`]), grammar masks) are packed into
//! one `u32` staging array, copied asynchronously from pinned memory on the ops' stream (no
//! allocation per step once the buffers have grown); the `[rows][vocab]` working copy of the
//! logits lives in a device scratch kept from call to call.

use rocmforge_hip::{DeviceBuffer, HipEvent, LaunchConfig, PinnedHostBuffer};

use super::{HipOps, check_device, to_u32};
use crate::cpu::SampleRow;
use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

const OP: &str = "sample_rows";
/// Threads per block (`SAMPLE_THREADS` in kernels/sample.hip; the top-p scan needs all of them).
const THREADS: u32 = 1024;
/// What the kernel writes for a row whose top-p prefix is longer than its sorted candidates
/// (`SAMPLE_FINISH_ON_HOST`): the host runs the CPU chain on that row.
pub const FINISH_ON_HOST: u32 = u32::MAX;
/// `SAMPLE_NO_MASK`: the row has no grammar mask.
const NO_MASK: u32 = u32::MAX;

/// Device and pinned memory of the op, reused from call to call.
#[derive(Debug)]
pub struct SampleBuffers {
    staging: PinnedHostBuffer<u32>,
    inputs: DeviceBuffer<u32>,
    scratch: DeviceBuffer<f32>,
    copied: HipEvent,
    pending: bool,
}

impl SampleBuffers {
    fn wait(&mut self) -> TensorResult<()> {
        if self.pending {
            self.copied.synchronize()?;
            self.pending = false;
        }
        Ok(())
    }
}

impl Drop for SampleBuffers {
    fn drop(&mut self) {
        // A failed wait leaves nothing better to do than free the memory.
        let _ = self.wait();
    }
}

/// Word offsets of each input inside the packed array.
struct Layout {
    fparams: usize,
    uparams: usize,
    uniforms: usize,
    pen_tokens: usize,
    pen_offsets: usize,
    masks: usize,
    len: usize,
}

/// Packs the rows' inputs (see `sample_rows_f32`'s arguments) into `u32` words.
fn pack(rows: &[SampleRow<'_>], vocab: usize) -> TensorResult<(Vec<u32>, Layout)> {
    let n = rows.len();
    let words = vocab.div_ceil(32);
    // Penalties and logit bias go to the kernel as one list of (token, offset) per row.
    let offsets: Vec<Vec<(u32, f32)>> = rows.iter().map(SampleRow::offsets).collect();
    let n_pen: usize = offsets.iter().map(Vec::len).sum();
    let n_masked = rows.iter().filter(|r| r.allowed.is_some()).count();
    let fparams = 0;
    let uparams = 4 * n;
    let uniforms = (8 * n).next_multiple_of(2);
    let pen_tokens = uniforms + 2 * n;
    let pen_offsets = pen_tokens + n_pen;
    let masks = pen_offsets + n_pen;
    let len = masks + n_masked * words;
    let mut data = vec![0u32; len.max(1)];
    let (mut pen_at, mut mask_at) = (0usize, 0usize);
    for (r, row) in rows.iter().enumerate() {
        let p = &row.params;
        data[fparams + 4 * r..fparams + 4 * r + 4].copy_from_slice(&[
            p.temperature.to_bits(),
            p.top_p.to_bits(),
            p.ln_min_p().to_bits(),
            p.repeat_penalty.to_bits(),
        ]);
        let top_k = u32::try_from(p.top_k.min(vocab)).unwrap_or(u32::MAX);
        let mask_word = match row.allowed {
            Some(allowed) => {
                let at = masks + mask_at * words;
                let take = allowed.len().min(words);
                data[at..at + take].copy_from_slice(&allowed[..take]);
                mask_at += 1;
                to_u32(OP, "mask offset", at - masks)?
            }
            None => NO_MASK,
        };
        data[uparams + 4 * r..uparams + 4 * r + 4].copy_from_slice(&[
            top_k,
            to_u32(OP, "penalty offset", pen_at)?,
            to_u32(OP, "penalty count", offsets[r].len())?,
            mask_word,
        ]);
        let u = row.u.to_bits();
        data[uniforms + 2 * r] = u as u32;
        data[uniforms + 2 * r + 1] = (u >> 32) as u32;
        for &(token, offset) in &offsets[r] {
            data[pen_tokens + pen_at] = token;
            data[pen_offsets + pen_at] = offset.to_bits();
            pen_at += 1;
        }
    }
    Ok((
        data,
        Layout {
            fparams,
            uparams,
            uniforms,
            pen_tokens,
            pen_offsets,
            masks,
            len,
        },
    ))
}

/// Queues the chain for `rows.len()` rows of `x` (F32 `[rows][vocab]` at least) into
/// `out[..rows.len()]`: a token id per row, or [`FINISH_ON_HOST`] for a row the host must
/// finish. Nothing is read back. A row whose bias the kernel cannot apply exactly
/// ([`SampleRow::scales_bias`]) gets an id that `ops::sample_rows` replaces by the host's.
pub fn sample_rows_queued(
    ops: &HipOps,
    x: &DeviceTensor,
    vocab: usize,
    rows: &[SampleRow<'_>],
    out: &mut DeviceBuffer<u32>,
) -> TensorResult<()> {
    let n_rows = rows.len();
    let total = vocab.checked_mul(n_rows).filter(|&t| {
        x.dtype() == rocmforge_gguf::GgmlType::F32 && t <= x.n_elements() && vocab > 0
    });
    check_device(OP, ops, x)?;
    let Some(total) = total else {
        return Err(TensorError::Shape {
            op: OP,
            what: format!("{n_rows} rows of {vocab} in {} {:?}", x.dtype(), x.shape()),
        });
    };
    if out.len() < n_rows {
        return Err(TensorError::Shape {
            op: OP,
            what: format!("{n_rows} rows into {} ids", out.len()),
        });
    }
    if n_rows == 0 {
        return Ok(());
    }
    let (data, at) = pack(rows, vocab)?;
    let mut slot = ops
        .sample
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let fits = slot
        .as_ref()
        .is_some_and(|b| b.staging.len() >= data.len() && b.scratch.len() >= total);
    if !fits {
        if let Some(old) = slot.as_mut() {
            old.wait()?;
        }
        *slot = None;
        let dev = ops.backend();
        let words = data.len().next_power_of_two().max(256);
        *slot = Some(SampleBuffers {
            staging: dev.alloc_pinned(words)?,
            inputs: dev.alloc_zeros(words)?,
            scratch: dev.alloc_zeros(total.next_power_of_two())?,
            copied: dev.new_event()?,
            pending: false,
        });
    }
    let Some(b) = slot.as_mut() else {
        return Err(TensorError::Backend {
            op: OP,
            what: "sampling buffers missing".to_string(),
        });
    };
    b.wait()?;
    b.staging[..data.len()].copy_from_slice(&data);
    // SAFETY: staging and inputs are owned by `b` and hold at least data.len() words; the
    // pinned memory is written again only after the event recorded below has completed
    // (`wait`, also in Drop), and the device buffer outlives the copy for the same reason.
    unsafe {
        ops.stream()
            .memcpy_htod_prefix_async(&b.staging, &mut b.inputs, data.len())?
    };
    b.copied.record(ops.stream())?;
    b.pending = true;
    let ptr = |w: usize| b.inputs.device_ptr_at(w.min(at.len.max(1) - 1));
    let (pf, pu, pun) = (ptr(at.fparams)?, ptr(at.uparams)?, ptr(at.uniforms)?);
    let (ppt, ppo, pm) = (ptr(at.pen_tokens)?, ptr(at.pen_offsets)?, ptr(at.masks)?);
    let (px, n32, ps, po) = (
        x.device_ptr(),
        to_u32(OP, "vocab", vocab)?,
        b.scratch.device_ptr(),
        out.device_ptr(),
    );
    let f = ops.function("sample", "sample_rows_f32")?;
    let cfg = LaunchConfig {
        grid_dim: (to_u32(OP, "rows", n_rows)?, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    };
    let mut l = ops.stream().launch_builder(&f);
    l.dependent();
    l.arg(&px).arg(&n32).arg(&ps).arg(&pf).arg(&pu).arg(&pun);
    l.arg(&ppt).arg(&ppo).arg(&pm).arg(&po);
    // SAFETY: the arguments match sample_rows_f32 (const float*, u32, float*, const float*,
    // const u32*, const double*, const u32*, const float*, const u32*, u32*). x holds
    // n_rows * vocab f32 and the scratch at least as many (checked); the packed inputs hold
    // 4 f32 + 4 u32 + one 8-byte-aligned f64 per row, every row's penalty entries and
    // ceil(vocab / 32) mask words per masked row, at the offsets `pack` wrote them (a pointer
    // to an empty section is clamped inside the buffer and never read: its count is 0); out
    // holds at least n_rows u32; one block per row.
    unsafe { l.launch(cfg)? };
    Ok(())
}
