//! GPU ops through `rocmforge-hip`: kernel launches with the same semantics as the CPU ops in
//! [`crate::cpu`].
//!
//! [`HipOps`] holds what every launch needs: the device, one stream, and the kernel functions
//! looked up so far. Each op family has a file here (`norm.rs` launches `kernels/norm.hip`, ...)
//! whose functions check every size on the host, then queue the kernel on the stream. Reading a
//! result back (`DeviceTensor::to_f32_vec`) is a synchronous copy, which waits for the queued work.

pub mod argmax;
pub mod attention;
pub mod batch_kv;
pub mod dequant_f16;
pub mod elementwise;
pub mod embedding;
#[cfg(feature = "fault-injection")]
pub mod fault;
pub mod kv;
pub mod matmul;
pub mod matmul_blas;
pub mod matmul_mmqt;
pub mod matvec_fused;
pub mod moe;
pub mod norm;
pub mod q8_1_act;
pub mod quantize_act;
pub mod rope;
pub mod sample;
pub mod softmax;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use rocmforge_gguf::GgmlType;
use rocmforge_hip::{HipBackend, HipFunction, HipGraphExec, HipStream, LaunchConfig};

use crate::device_tensor::DeviceTensor;
use crate::error::{TensorError, TensorResult};

/// The device, the stream the ops run on, and a cache of kernel functions.
#[derive(Debug)]
pub struct HipOps {
    backend: Arc<HipBackend>,
    stream: HipStream,
    functions: Mutex<HashMap<(&'static str, &'static str), HipFunction>>,
    matmul: Mutex<Option<matmul::MatmulContext>>,
    /// Per-split partial results of the decode attention (`batch_kv.rs`), grown on demand.
    attention_partials: Mutex<Option<rocmforge_hip::DeviceBuffer<f32>>>,
    /// The decode attention's finished-block counters (zero between launches), grown on demand.
    attention_counters: Mutex<Option<rocmforge_hip::DeviceBuffer<u32>>>,
    /// Inputs and working copy of `sample_rows` (`sample.rs`), grown on demand.
    sample: Mutex<Option<sample::SampleBuffers>>,
}

impl HipOps {
    /// Ops on `backend`'s device, on a new stream.
    pub fn new(backend: &Arc<HipBackend>) -> TensorResult<HipOps> {
        Ok(HipOps {
            backend: Arc::clone(backend),
            stream: backend.new_stream()?,
            functions: Mutex::new(HashMap::new()),
            matmul: Mutex::new(None),
            attention_partials: Mutex::new(None),
            attention_counters: Mutex::new(None),
            sample: Mutex::new(None),
        })
    }

    /// The device.
    pub fn backend(&self) -> &Arc<HipBackend> {
        &self.backend
    }

    /// The stream every op is queued on.
    pub fn stream(&self) -> &HipStream {
        &self.stream
    }

    /// Waits until every queued op has finished.
    pub fn synchronize(&self) -> TensorResult<()> {
        Ok(self.stream.synchronize()?)
    }

    /// Starts recording the ops queued from now on into a graph instead of running them.
    pub fn begin_capture(&self) -> TensorResult<()> {
        Ok(self.stream.begin_capture()?)
    }

    /// Ends the recording begun by [`HipOps::begin_capture`] and instantiates the graph.
    pub fn end_capture(&self) -> TensorResult<HipGraphExec> {
        Ok(self.stream.end_capture()?.instantiate()?)
    }

    /// Queues one replay of a graph captured on these ops.
    pub fn launch_graph(&self, exec: &HipGraphExec) -> TensorResult<()> {
        Ok(exec.launch(&self.stream)?)
    }

    /// Runs `f` with the matmul context (created on first use: it loads the matmul kernels).
    pub fn with_matmul<T>(
        &self,
        f: impl FnOnce(&mut matmul::MatmulContext, &HipStream) -> TensorResult<T>,
    ) -> TensorResult<T> {
        let mut slot = self.matmul.lock().unwrap_or_else(PoisonError::into_inner);
        let ctx = match slot.take() {
            Some(ctx) => ctx,
            None => matmul::MatmulContext::new(&self.backend)?,
        };
        let ctx = slot.insert(ctx);
        f(ctx, &self.stream)
    }

    /// The device address of a scratch of at least `floats` f32 for the split decode attention,
    /// kept from call to call (a reallocation bumps [`scratch_generation`], so a captured step
    /// that baked the old address is captured again).
    pub(crate) fn attention_partials(
        &self,
        floats: usize,
    ) -> TensorResult<rocmforge_hip::DevicePtr> {
        self.grown_scratch(
            &self.attention_partials,
            floats,
            false,
            "hip::attention_partials",
        )
    }

    /// The device address of at least `n` u32 counters for the split decode attention, zero
    /// when allocated; each launch leaves them zero again (the kernel's last block resets its
    /// counter). A reallocation bumps [`scratch_generation`], as for the partials.
    pub(crate) fn attention_counters(&self, n: usize) -> TensorResult<rocmforge_hip::DevicePtr> {
        self.grown_scratch(&self.attention_counters, n, true, "hip::attention_counters")
    }

    /// A scratch of at least `len` elements in `slot`, reallocated (the old one freed first,
    /// the new one zeroed when `zeroed`) when too small; a reallocation bumps
    /// [`scratch_generation`].
    fn grown_scratch<T: rocmforge_hip::DeviceRepr>(
        &self,
        slot: &Mutex<Option<rocmforge_hip::DeviceBuffer<T>>>,
        len: usize,
        zeroed: bool,
        op: &'static str,
    ) -> TensorResult<rocmforge_hip::DevicePtr> {
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.as_ref().is_none_or(|b| b.len() < len) {
            *slot = None;
            let buffer = if zeroed {
                self.backend.alloc_zeros::<T>(len.max(1))?
            } else {
                self.backend.alloc::<T>(len.max(1))?
            };
            bump_scratch_generation();
            return Ok(slot.insert(buffer).device_ptr());
        }
        slot.as_ref()
            .map(|b| b.device_ptr())
            .ok_or(TensorError::Backend {
                op,
                what: "scratch missing after allocation".to_string(),
            })
    }

    /// Kernel `name` of family `kernels/<family>.hip`, loaded on first use.
    pub fn function(&self, family: &'static str, name: &'static str) -> TensorResult<HipFunction> {
        let mut functions = self
            .functions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = functions.get(&(family, name)) {
            return Ok(f.clone());
        }
        let f = self.backend.load_kernels(family)?.function(name)?;
        functions.insert((family, name), f.clone());
        Ok(f)
    }
}

/// Counts reallocations of the matmul scratch buffers (q8_1 activations, BLAS f16 copies) in
/// this process. A captured graph bakes in their addresses: one captured under an older
/// generation must be captured again before it is replayed.
static SCRATCH_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// The current scratch generation: it grows whenever a matmul scratch buffer is reallocated
/// (a captured graph of an older generation must be captured again).
pub fn scratch_generation() -> u64 {
    SCRATCH_GENERATION.load(std::sync::atomic::Ordering::Acquire)
}

/// Marks a matmul scratch reallocation (see [`scratch_generation`]).
pub(crate) fn bump_scratch_generation() {
    SCRATCH_GENERATION.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// A 1-D grid of `threads`-wide blocks for `n` elements (grid-stride kernels), capped.
pub(crate) fn grid_1d(n: usize, threads: u32) -> LaunchConfig {
    let blocks = n.div_ceil(threads as usize).clamp(1, 65_535) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// `n` as a kernel's u32 argument.
pub(crate) fn to_u32(op: &'static str, what: &str, n: usize) -> TensorResult<u32> {
    u32::try_from(n).map_err(|_| TensorError::Shape {
        op,
        what: format!("{what} = {n} exceeds the kernels' 32-bit range"),
    })
}

/// Fails unless `t` is F32 with exactly `n` elements.
pub(crate) fn check_f32(
    op: &'static str,
    what: &str,
    t: &DeviceTensor,
    n: usize,
) -> TensorResult<()> {
    if t.dtype() != GgmlType::F32 || t.n_elements() != n {
        return Err(TensorError::Shape {
            op,
            what: format!(
                "{what}: expected F32 with {n} elements, got {} {:?}",
                t.dtype(),
                t.shape()
            ),
        });
    }
    Ok(())
}

/// The address of f32 element `row * width` of `t`, after checking that `t` is F32 and rows
/// `row..row + n_rows` of `width` values lie inside it (a row view of a batch's activations).
pub(crate) fn f32_rows_ptr(
    op: &'static str,
    t: &DeviceTensor,
    width: usize,
    row: usize,
    n_rows: usize,
) -> TensorResult<rocmforge_hip::DevicePtr> {
    let buf = t.f32_buffer(op)?;
    let end = row.checked_add(n_rows).and_then(|e| e.checked_mul(width));
    match end {
        Some(end) if end <= buf.len() && width > 0 => Ok(buf.device_ptr_at(row * width)?),
        _ => Err(TensorError::Shape {
            op,
            what: format!(
                "rows {row}..+{n_rows} of width {width} outside a tensor of {} values",
                buf.len()
            ),
        }),
    }
}

/// Fails unless `a` and `b` live on the same device as `ops`.
pub(crate) fn check_device(op: &'static str, ops: &HipOps, t: &DeviceTensor) -> TensorResult<()> {
    if Arc::ptr_eq(t.backend(), &ops.backend) {
        Ok(())
    } else {
        Err(TensorError::Backend {
            op,
            what: format!(
                "tensor on device {} used with ops of device {}",
                t.backend().device_index(),
                ops.backend.device_index()
            ),
        })
    }
}
