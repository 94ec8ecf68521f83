//! [`GpuWeights`]: every weight of a model resolved to its device copy once, at load, so a
//! forward call never goes through the loader's lock; fused projections (`attn_qkv`, GLM-4's
//! gate+up `ffn_up`) are uploaded as separate row blocks, and biases are kept on the host to
//! be replicated over a batch's rows (see `scratch.rs`).
//!
//! Loading checks the free device memory against the bytes of every weight BEFORE the first
//! upload: a model that cannot fit fails with needed vs free bytes, nothing uploaded.

use std::sync::Arc;

use rocmforge_gguf::quants::dequantize_to_vec;
use rocmforge_hip::HipBackend;
use rocmforge_tensor::{DeviceTensor, LazyTensor, TensorError};

use crate::error::{ModelError, ModelResult};
use crate::layer_plan::{LayerPlan, QkvPlan};
use crate::plan::ExecutionPlan;

/// Device memory kept free beyond the weights for activations and the first KV caches.
pub const LOAD_HEADROOM_BYTES: usize = 64 << 20;

/// One block's weights on the device.
#[derive(Debug)]
pub(crate) struct GpuLayer {
    pub norm1: Arc<DeviceTensor>,
    pub q: Arc<DeviceTensor>,
    pub k: Arc<DeviceTensor>,
    pub v: Arc<DeviceTensor>,
    /// q/k/v biases (host copies; replicated per batch size in the scratch).
    pub bias: [Option<Vec<f32>>; 3],
    pub q_norm: Option<Arc<DeviceTensor>>,
    pub k_norm: Option<Arc<DeviceTensor>>,
    pub o: Arc<DeviceTensor>,
    pub post_attn_norm: Option<Arc<DeviceTensor>>,
    pub norm2: Arc<DeviceTensor>,
    pub gate: Arc<DeviceTensor>,
    pub up: Arc<DeviceTensor>,
    pub down: Arc<DeviceTensor>,
    pub post_ffn_norm: Option<Arc<DeviceTensor>>,
}

/// The model's weights on the device.
#[derive(Debug)]
pub(crate) struct GpuWeights {
    pub layers: Vec<GpuLayer>,
    pub embedding: Arc<DeviceTensor>,
    pub output_norm: Arc<DeviceTensor>,
    pub lm_head: Arc<DeviceTensor>,
}

/// A fused tensor to be uploaded as row blocks of `parts` rows each.
struct Split<'a> {
    tensor: &'a LazyTensor,
    parts: Vec<usize>,
}

/// What a load uploads: tensors through the plan's loader, and fused ones split by rows.
struct UploadList<'a> {
    whole: Vec<&'a LazyTensor>,
    split: Vec<Split<'a>>,
}

impl UploadList<'_> {
    fn bytes(&self) -> u64 {
        let whole: u64 = self.whole.iter().map(|t| t.size_bytes()).sum();
        let split: u64 = self.split.iter().map(|s| s.tensor.size_bytes()).sum();
        whole + split
    }
}

fn upload_list(plan: &ExecutionPlan) -> UploadList<'_> {
    let c = &plan.config;
    let mut seen = std::collections::HashSet::new();
    let mut list = UploadList {
        whole: Vec::new(),
        split: Vec::new(),
    };
    let globals = [&plan.embedding, &plan.output_norm, &plan.lm_head];
    for l in &plan.layers {
        for t in layer_whole_tensors(l) {
            if seen.insert(t.name()) {
                list.whole.push(t);
            }
        }
        if let QkvPlan::Fused { qkv, .. } = &l.qkv {
            list.split.push(Split {
                tensor: qkv,
                parts: vec![c.q_dim(), c.k_dim(), c.v_dim()],
            });
        }
        if l.mlp_gate.is_none() {
            list.split.push(Split {
                tensor: &l.mlp_up,
                parts: vec![c.n_ff, c.n_ff],
            });
        }
    }
    for t in globals {
        if seen.insert(t.name()) {
            list.whole.push(t);
        }
    }
    list
}

/// The block's tensors uploaded as they are (fused projections and biases left out).
fn layer_whole_tensors(l: &LayerPlan) -> Vec<&LazyTensor> {
    let mut out: Vec<&LazyTensor> = Vec::with_capacity(12);
    if let QkvPlan::Separate { q, k, v, .. } = &l.qkv {
        out.extend([q.as_ref(), k.as_ref(), v.as_ref()]);
    }
    out.push(&l.o_proj);
    if let Some(g) = &l.mlp_gate {
        out.push(g);
        out.push(&l.mlp_up);
    }
    out.extend([l.mlp_down.as_ref(), l.norm1.as_ref(), l.norm2.as_ref()]);
    for t in [&l.q_norm, &l.k_norm, &l.post_attn_norm, &l.post_ffn_norm]
        .into_iter()
        .flatten()
    {
        out.push(t);
    }
    out
}

/// Bytes of device memory the weights of `plan` take once loaded.
pub fn weight_bytes(plan: &ExecutionPlan) -> u64 {
    upload_list(plan).bytes()
}

/// Reads tensor `name` of the plan's file as f32 values on the host.
fn host_f32(plan: &ExecutionPlan, t: &LazyTensor) -> ModelResult<Vec<f32>> {
    let file = plan.loader().file();
    let info = file
        .tensor(t.name())
        .ok_or_else(|| ModelError::MissingTensor {
            name: t.name().to_string(),
        })?;
    Ok(dequantize_to_vec(info.ty, file.tensor_data(info))?)
}

/// Splits `values` into consecutive pieces of `widths`.
fn split_host(name: &str, values: Vec<f32>, widths: &[usize]) -> ModelResult<Vec<Vec<f32>>> {
    let total: usize = widths.iter().sum();
    if values.len() != total {
        return Err(ModelError::InvalidConfig {
            key: name.to_string(),
            reason: format!("{} values, expected {total}", values.len()),
        });
    }
    let mut out = Vec::with_capacity(widths.len());
    let mut at = 0;
    for &w in widths {
        out.push(values[at..at + w].to_vec());
        at += w;
    }
    Ok(out)
}

/// Uploads the row blocks `parts` of the fused tensor `t` as separate tensors.
fn upload_split(
    plan: &ExecutionPlan,
    backend: &Arc<HipBackend>,
    t: &LazyTensor,
    parts: &[usize],
) -> ModelResult<Vec<Arc<DeviceTensor>>> {
    let file = plan.loader().file();
    let info = file
        .tensor(t.name())
        .ok_or_else(|| ModelError::MissingTensor {
            name: t.name().to_string(),
        })?;
    let shape = t.shape();
    let cols = shape.last().copied().unwrap_or(0);
    let rows: usize = shape[..shape.len().saturating_sub(1)].iter().product();
    let want: usize = parts.iter().sum();
    let data = file.tensor_data(info);
    if rows != want || rows == 0 || data.len() % rows != 0 {
        return Err(ModelError::InvalidConfig {
            key: t.name().to_string(),
            reason: format!(
                "{rows} rows of {} bytes cannot split into {parts:?}",
                data.len()
            ),
        });
    }
    let row_bytes = data.len() / rows;
    let mut out = Vec::with_capacity(parts.len());
    let mut at = 0;
    for &p in parts {
        let bytes = &data[at * row_bytes..(at + p) * row_bytes];
        out.push(Arc::new(DeviceTensor::from_raw_bytes(
            backend,
            t.tensor_type(),
            vec![p, cols],
            bytes,
        )?));
        at += p;
    }
    Ok(out)
}

fn resident(plan: &ExecutionPlan, t: &LazyTensor) -> ModelResult<Arc<DeviceTensor>> {
    plan.weight(t)
        .map_err(|e| ModelError::Tensor(TensorError::Hip(e)))
}

fn resident_opt(
    plan: &ExecutionPlan,
    t: &Option<Arc<LazyTensor>>,
) -> ModelResult<Option<Arc<DeviceTensor>>> {
    t.as_deref().map(|t| resident(plan, t)).transpose()
}

/// Checks that the weights fit the free memory of `backend`, then uploads them all, calling
/// `progress(done_bytes, total_bytes)` after each tensor.
pub(crate) fn load(
    plan: &ExecutionPlan,
    backend: &Arc<HipBackend>,
    progress: &mut dyn FnMut(u64, u64),
) -> ModelResult<GpuWeights> {
    let c = &plan.config;
    let list = upload_list(plan);
    let total = list.bytes();
    let needed = usize::try_from(total)
        .unwrap_or(usize::MAX)
        .saturating_add(LOAD_HEADROOM_BYTES);
    let (free, _) = backend.mem_info().map_err(TensorError::Hip)?;
    if needed > free {
        return Err(TensorError::OutOfDeviceMemory {
            tensor: format!(
                "all {} weights of {} (plus {} MiB of headroom)",
                list.whole.len() + list.split.len(),
                plan.loader().file().path().display(),
                LOAD_HEADROOM_BYTES >> 20
            ),
            needed,
            free,
        }
        .into());
    }
    let _span = tracing::info_span!("gpu_upload", bytes = total).entered();
    let mut done = 0u64;
    progress(done, total);
    for t in &list.whole {
        resident(plan, t)?;
        done += t.size_bytes();
        progress(done, total);
    }
    let mut split = std::collections::HashMap::new();
    for s in &list.split {
        split.insert(
            s.tensor.name(),
            upload_split(plan, backend, s.tensor, &s.parts)?,
        );
        done += s.tensor.size_bytes();
        progress(done, total);
    }
    let mut layers = Vec::with_capacity(plan.layers.len());
    for l in &plan.layers {
        let (q, k, v, bias) = match &l.qkv {
            QkvPlan::Separate {
                q,
                k,
                v,
                q_bias,
                k_bias,
                v_bias,
            } => {
                let b = |t: &Option<Arc<LazyTensor>>| {
                    t.as_deref().map(|t| host_f32(plan, t)).transpose()
                };
                (
                    resident(plan, q)?,
                    resident(plan, k)?,
                    resident(plan, v)?,
                    [b(q_bias)?, b(k_bias)?, b(v_bias)?],
                )
            }
            QkvPlan::Fused { qkv, bias } => {
                let parts = split_parts(&split, qkv, 3)?;
                let bias = match bias {
                    Some(b) => {
                        let mut pieces = split_host(
                            b.name(),
                            host_f32(plan, b)?,
                            &[c.q_dim(), c.k_dim(), c.v_dim()],
                        )?
                        .into_iter();
                        [pieces.next(), pieces.next(), pieces.next()]
                    }
                    None => [None, None, None],
                };
                (parts[0].clone(), parts[1].clone(), parts[2].clone(), bias)
            }
        };
        let (gate, up) = match &l.mlp_gate {
            Some(g) => (resident(plan, g)?, resident(plan, &l.mlp_up)?),
            None => {
                let parts = split_parts(&split, &l.mlp_up, 2)?;
                (parts[0].clone(), parts[1].clone())
            }
        };
        layers.push(GpuLayer {
            norm1: resident(plan, &l.norm1)?,
            q,
            k,
            v,
            bias,
            q_norm: resident_opt(plan, &l.q_norm)?,
            k_norm: resident_opt(plan, &l.k_norm)?,
            o: resident(plan, &l.o_proj)?,
            post_attn_norm: resident_opt(plan, &l.post_attn_norm)?,
            norm2: resident(plan, &l.norm2)?,
            gate,
            up,
            down: resident(plan, &l.mlp_down)?,
            post_ffn_norm: resident_opt(plan, &l.post_ffn_norm)?,
        });
    }
    let hip = |e| ModelError::Tensor(TensorError::Hip(e));
    Ok(GpuWeights {
        layers,
        embedding: plan.embedding().map_err(hip)?,
        output_norm: resident(plan, &plan.output_norm)?,
        lm_head: plan.lm_head().map_err(hip)?,
    })
}

fn split_parts<'a>(
    split: &'a std::collections::HashMap<&str, Vec<Arc<DeviceTensor>>>,
    t: &LazyTensor,
    n: usize,
) -> ModelResult<&'a [Arc<DeviceTensor>]> {
    match split.get(t.name()) {
        Some(parts) if parts.len() == n => Ok(parts),
        _ => Err(ModelError::MissingTensor {
            name: format!("{} (row blocks)", t.name()),
        }),
    }
}
