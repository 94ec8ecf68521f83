//! The model's weights on its backend, resolved once at load so a forward call never goes
//! through the loader's lock.
//!
//! On the CPU a matrix is a byte range of the memory-mapped file (read in place, zero copy); on
//! a GPU it is the device copy uploaded byte for byte through the plan's loader. Either way it
//! keeps its file format (quantized blocks included). Fused projections (`attn_qkv`, GLM-4's
//! gate+up `ffn_up`) become separate row blocks (sub-ranges on the CPU, separate uploads on a
//! GPU), so the forward sees q, k, v, gate and up as five matrices for every architecture.
//! Biases are f32 tensors on the backend, uploaded once.
//!
//! Every tensor's shape is checked against the configuration before anything is read; on a GPU
//! the free device memory is checked against the bytes of every weight before the first upload.

use std::ops::Range;
use std::sync::Arc;

use rocmforge_gguf::quants::dequantize_to_vec;
use rocmforge_gguf::{GgmlType, GgufFile, TensorInfo};
use rocmforge_tensor::{Backend, DeviceTensor, Tensor, TensorError, Weight};

use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};
use crate::layer_plan::{LayerPlan, QkvPlan};
use crate::plan::ExecutionPlan;
use crate::rope_factors::RopeFactors;

/// Device memory kept free beyond the weights for activations and the first KV caches.
pub const LOAD_HEADROOM_BYTES: usize = 64 << 20;

/// A matrix `[rows][cols]` in its file format.
#[derive(Debug)]
pub(crate) enum Mat {
    /// Bytes `range` of the memory-mapped file.
    Host {
        ty: GgmlType,
        range: Range<usize>,
        rows: usize,
        cols: usize,
    },
    /// The device copy.
    Device(Arc<DeviceTensor>),
}

/// A vector of per-column values (norm scales).
#[derive(Debug)]
pub(crate) enum Vector {
    /// f32 values on the host.
    Host(Vec<f32>),
    /// The device copy (in its file type).
    Device(Arc<DeviceTensor>),
}

/// One block's weights.
#[derive(Debug)]
pub(crate) struct LayerWeights {
    pub norm1: Vector,
    pub q: Mat,
    pub k: Mat,
    pub v: Mat,
    /// q/k/v biases (qwen2), f32 on the backend, uploaded once at load.
    pub bias: [Option<Tensor>; 3],
    pub q_norm: Option<Vector>,
    pub k_norm: Option<Vector>,
    pub o: Mat,
    pub post_attn_norm: Option<Vector>,
    pub norm2: Vector,
    pub ffn: Ffn,
    pub post_ffn_norm: Option<Vector>,
    /// The output projection's bias (gpt-oss), f32 on the backend.
    pub o_bias: Option<Tensor>,
    /// One sink logit per query head (gpt-oss), f32 on the backend.
    pub sinks: Option<Tensor>,
}

/// gpt-oss's router and expert biases, f32 on the backend: the router's `[n_expert]`, the
/// experts' gate and up `[n_expert][n_ff_exp]` and down `[n_expert][n_embd]`.
#[derive(Debug)]
pub(crate) struct MoeBias {
    pub router: Tensor,
    pub gate: Tensor,
    pub up: Tensor,
    pub down: Tensor,
}

/// A block's feed-forward weights.
#[derive(Debug)]
pub(crate) enum Ffn {
    /// One SwiGLU MLP.
    Dense { gate: Mat, up: Mat, down: Mat },
    /// A mixture of experts: the router `[n_expert][n_embd]` and the experts' gate, up
    /// (`n_expert` slabs of `[n_ff_exp][n_embd]`) and down (slabs of `[n_embd][n_ff_exp]`).
    Moe {
        router: Mat,
        gate: Mat,
        up: Mat,
        down: Mat,
        /// gpt-oss's biases.
        bias: Option<Box<MoeBias>>,
    },
}

/// Every weight of the model.
#[derive(Debug)]
pub(crate) struct Weights {
    pub layers: Vec<LayerWeights>,
    pub embedding: Mat,
    pub output_norm: Vector,
    pub lm_head: Mat,
    /// The RoPE frequency factors (Llama 3's or LongRoPE's), when the configuration has them.
    pub rope_factors: Option<RopeFactors>,
}

impl Mat {
    /// The weight as the ops take it; host bytes are read from `file`.
    pub fn get<'a>(&'a self, file: &'a GgufFile) -> Weight<'a> {
        match self {
            Mat::Host {
                ty,
                range,
                rows,
                cols,
            } => Weight::Cpu(rocmforge_tensor::cpu::WeightView {
                ty: *ty,
                data: file.as_bytes().get(range.clone()).unwrap_or(&[]),
                rows: *rows,
                cols: *cols,
            }),
            Mat::Device(t) => Weight::Hip(t),
        }
    }
}

impl Vector {
    /// The vector as the ops take it.
    pub fn get(&self) -> Weight<'_> {
        match self {
            Vector::Host(v) => Weight::CpuF32 {
                data: v,
                rows: 1,
                cols: v.len(),
            },
            Vector::Device(t) => Weight::Hip(t),
        }
    }
}

/// Trailing 1-dims are equivalent to absent ones.
pub(crate) fn check_dims(info: &TensorInfo, expected: &[usize]) -> ModelResult<()> {
    let expected: Vec<u64> = expected.iter().map(|&d| d as u64).collect();
    let mut found = info.dims.clone();
    while found.len() > expected.len() && found.last() == Some(&1) {
        found.pop();
    }
    if found != expected {
        return Err(ModelError::TensorShape {
            name: info.name.clone(),
            found: info.dims.clone(),
            expected,
        });
    }
    Ok(())
}

/// Loads tensors of one file onto one backend.
struct Loader<'p> {
    plan: &'p ExecutionPlan,
    file: &'p GgufFile,
    backend: &'p Backend,
    done: u64,
    total: u64,
    progress: &'p mut dyn FnMut(u64, u64),
}

impl Loader<'_> {
    fn info(&self, name: &str) -> ModelResult<&TensorInfo> {
        self.file
            .tensor(name)
            .ok_or_else(|| ModelError::MissingTensor {
                name: name.to_string(),
            })
    }

    fn advance(&mut self, info_size: u64) {
        self.done += info_size;
        (self.progress)(self.done, self.total);
    }

    /// The byte range of `info`'s data inside the file.
    fn range(&self, info: &TensorInfo) -> Range<usize> {
        let data = self.file.tensor_data(info);
        let start = data.as_ptr() as usize - self.file.as_bytes().as_ptr() as usize;
        start..start + data.len()
    }

    /// Matrix `name` mapping `cols` inputs to `sum(parts)` outputs, as row blocks of `parts`.
    fn matrix_parts(&mut self, name: &str, cols: usize, parts: &[usize]) -> ModelResult<Vec<Mat>> {
        let rows: usize = parts.iter().sum();
        let info = self.info(name)?.clone();
        check_dims(&info, &[cols, rows])?;
        let range = self.range(&info);
        if rows == 0 || range.len() % rows != 0 {
            return Err(ModelError::InvalidConfig {
                key: name.to_string(),
                reason: format!(
                    "{rows} rows of {} bytes cannot split into {parts:?}",
                    range.len()
                ),
            });
        }
        let row_bytes = range.len() / rows;
        let mut out = Vec::with_capacity(parts.len());
        let mut at = range.start;
        for &p in parts {
            let r = at..at + p * row_bytes;
            at = r.end;
            out.push(match self.backend {
                Backend::Cpu => Mat::Host {
                    ty: info.ty,
                    range: r,
                    rows: p,
                    cols,
                },
                // A whole matrix goes through the loader (one upload, shared cache).
                Backend::Hip(_) if parts.len() == 1 => {
                    Mat::Device(self.plan.loader().load(name).map_err(ModelError::Tensor)?)
                }
                Backend::Hip(ops) => Mat::Device(Arc::new(DeviceTensor::from_raw_bytes(
                    ops.backend(),
                    info.ty,
                    vec![p, cols],
                    &self.file.as_bytes()[r],
                )?)),
            });
        }
        self.advance(info.size);
        Ok(out)
    }

    fn matrix(&mut self, name: &str, cols: usize, rows: usize) -> ModelResult<Mat> {
        let mut parts = self.matrix_parts(name, cols, &[rows])?;
        parts.pop().ok_or_else(|| ModelError::MissingTensor {
            name: name.to_string(),
        })
    }

    /// A 3-D expert tensor `[n_expert][rows][cols]` (GGUF dims `[cols, rows, n_expert]`) as one
    /// matrix of `n_expert * rows` rows, each expert a slab of consecutive rows.
    fn experts(
        &mut self,
        name: &str,
        cols: usize,
        rows: usize,
        n_expert: usize,
    ) -> ModelResult<Mat> {
        let info = self.info(name)?.clone();
        check_dims(&info, &[cols, rows, n_expert])?;
        let total = rows
            .checked_mul(n_expert)
            .ok_or_else(|| ModelError::InvalidConfig {
                key: name.to_string(),
                reason: format!("{n_expert} experts of {rows} rows overflow"),
            })?;
        let mat = match self.backend {
            Backend::Cpu => Mat::Host {
                ty: info.ty,
                range: self.range(&info),
                rows: total,
                cols,
            },
            Backend::Hip(_) if !rocmforge_tensor::hip::moe::supports(info.ty) => {
                return Err(ModelError::InvalidConfig {
                    key: name.to_string(),
                    reason: format!(
                        "experts of type {} have no GPU expert matmul (quantized types only); \
                         run on the CPU (--device cpu) or use a quantized file",
                        info.ty
                    ),
                });
            }
            Backend::Hip(_) => {
                Mat::Device(self.plan.loader().load(name).map_err(ModelError::Tensor)?)
            }
        };
        self.advance(info.size);
        Ok(mat)
    }

    fn vector(&mut self, name: &str, len: usize) -> ModelResult<Vector> {
        let info = self.info(name)?.clone();
        check_dims(&info, &[len])?;
        let v = match self.backend {
            Backend::Cpu => Vector::Host(dequantize_to_vec(info.ty, self.file.tensor_data(&info))?),
            Backend::Hip(_) => {
                Vector::Device(self.plan.loader().load(name).map_err(ModelError::Tensor)?)
            }
        };
        self.advance(info.size);
        Ok(v)
    }

    fn opt_vector(&mut self, name: Option<&str>, len: usize) -> ModelResult<Option<Vector>> {
        name.map(|n| self.vector(n, len)).transpose()
    }

    /// A bias: always f32 on the host.
    fn bias(&self, name: &str, len: usize) -> ModelResult<Vec<f32>> {
        self.bias_rows(name, len, 1)
    }

    /// A bias of `rows` rows of `cols` (GGUF dims `[cols, rows]`), f32 on the host.
    fn bias_rows(&self, name: &str, cols: usize, rows: usize) -> ModelResult<Vec<f32>> {
        let info = self.info(name)?;
        if rows == 1 {
            check_dims(info, &[cols])?;
        } else {
            check_dims(info, &[cols, rows])?;
        }
        Ok(dequantize_to_vec(info.ty, self.file.tensor_data(info))?)
    }

    /// [`Loader::bias_rows`] as an f32 tensor `[rows][cols]` on the backend.
    fn bias_tensor(&self, name: &str, cols: usize, rows: usize) -> ModelResult<Tensor> {
        let b = self.bias_rows(name, cols, rows)?;
        let shape = if rows == 1 {
            vec![cols]
        } else {
            vec![rows, cols]
        };
        Ok(self.backend.from_f32(shape, &b)?)
    }
}

fn name_of(t: &Option<Arc<rocmforge_tensor::LazyTensor>>) -> Option<&str> {
    t.as_deref().map(|t| t.name())
}

/// The feed-forward weights of block `l`: a MoE block's router and experts, else the MLP.
fn ffn(ld: &mut Loader<'_>, c: &ModelConfig, l: &LayerPlan) -> ModelResult<Ffn> {
    if let (Some(moe), Some(router), Some(gate)) = (&c.moe, &l.moe_router, &l.mlp_gate) {
        let (e, ff) = (moe.n_expert, moe.n_ff_exp);
        let bias = match &l.moe_bias {
            Some(b) => Some(Box::new(MoeBias {
                router: ld.bias_tensor(b.router.name(), e, 1)?,
                gate: ld.bias_tensor(b.gate.name(), ff, e)?,
                up: ld.bias_tensor(b.up.name(), ff, e)?,
                down: ld.bias_tensor(b.down.name(), c.n_embd, e)?,
            })),
            None => None,
        };
        return Ok(Ffn::Moe {
            router: ld.matrix(router.name(), c.n_embd, e)?,
            gate: ld.experts(gate.name(), c.n_embd, ff, e)?,
            up: ld.experts(l.mlp_up.name(), c.n_embd, ff, e)?,
            down: ld.experts(l.mlp_down.name(), ff, c.n_embd, e)?,
            bias,
        });
    }
    let (gate, up) = match &l.mlp_gate {
        Some(g) => (
            ld.matrix(g.name(), c.n_embd, c.n_ff)?,
            ld.matrix(l.mlp_up.name(), c.n_embd, c.n_ff)?,
        ),
        None => {
            let mut parts = ld
                .matrix_parts(l.mlp_up.name(), c.n_embd, &[c.n_ff, c.n_ff])?
                .into_iter();
            match (parts.next(), parts.next()) {
                (Some(g), Some(u)) => (g, u),
                _ => {
                    return Err(ModelError::MissingTensor {
                        name: format!("{} (row blocks)", l.mlp_up.name()),
                    });
                }
            }
        }
    };
    Ok(Ffn::Dense {
        gate,
        up,
        down: ld.matrix(l.mlp_down.name(), c.n_ff, c.n_embd)?,
    })
}

fn layer(ld: &mut Loader<'_>, c: &ModelConfig, l: &LayerPlan) -> ModelResult<LayerWeights> {
    let (q_dim, k_dim, v_dim) = (c.q_dim(), c.k_dim(), c.v_dim());
    let (q, k, v, bias) = match &l.qkv {
        QkvPlan::Separate {
            q,
            k,
            v,
            q_bias,
            k_bias,
            v_bias,
        } => {
            let b = |t: &Option<Arc<rocmforge_tensor::LazyTensor>>, len| {
                name_of(t).map(|n| ld.bias(n, len)).transpose()
            };
            let bias = [b(q_bias, q_dim)?, b(k_bias, k_dim)?, b(v_bias, v_dim)?];
            (
                ld.matrix(q.name(), c.n_embd, q_dim)?,
                ld.matrix(k.name(), c.n_embd, k_dim)?,
                ld.matrix(v.name(), c.n_embd, v_dim)?,
                bias,
            )
        }
        QkvPlan::Fused { qkv, bias } => {
            let bias = match bias {
                Some(b) => {
                    let all = ld.bias(b.name(), q_dim + k_dim + v_dim)?;
                    [
                        Some(all[..q_dim].to_vec()),
                        Some(all[q_dim..q_dim + k_dim].to_vec()),
                        Some(all[q_dim + k_dim..].to_vec()),
                    ]
                }
                None => [None, None, None],
            };
            let mut parts = ld
                .matrix_parts(qkv.name(), c.n_embd, &[q_dim, k_dim, v_dim])?
                .into_iter();
            match (parts.next(), parts.next(), parts.next()) {
                (Some(q), Some(k), Some(v)) => (q, k, v, bias),
                _ => {
                    return Err(ModelError::MissingTensor {
                        name: format!("{} (row blocks)", qkv.name()),
                    });
                }
            }
        }
    };
    let ffn = ffn(ld, c, l)?;
    let [bq, bk, bv] = bias;
    let upload = |b: Option<Vec<f32>>| -> ModelResult<Option<Tensor>> {
        Ok(b.map(|b| ld.backend.from_f32(vec![b.len()], &b))
            .transpose()?)
    };
    let bias = [upload(bq)?, upload(bk)?, upload(bv)?];
    Ok(LayerWeights {
        norm1: ld.vector(l.norm1.name(), c.n_embd)?,
        q,
        k,
        v,
        bias,
        q_norm: ld.opt_vector(name_of(&l.q_norm), c.head_dim)?,
        k_norm: ld.opt_vector(name_of(&l.k_norm), c.head_dim)?,
        o: ld.matrix(l.o_proj.name(), c.n_heads * c.head_dim_v, c.n_embd)?,
        post_attn_norm: ld.opt_vector(name_of(&l.post_attn_norm), c.n_embd)?,
        norm2: ld.vector(l.norm2.name(), c.n_embd)?,
        ffn,
        post_ffn_norm: ld.opt_vector(name_of(&l.post_ffn_norm), c.n_embd)?,
        o_bias: name_of(&l.o_bias)
            .map(|n| ld.bias_tensor(n, c.n_embd, 1))
            .transpose()?,
        sinks: name_of(&l.attn_sinks)
            .map(|n| ld.bias_tensor(n, c.n_heads, 1))
            .transpose()?,
    })
}

/// Bytes the weights of `plan` take once resident on a device (biases, a few KiB per block, are
/// left to the load headroom).
pub fn weight_bytes(plan: &ExecutionPlan) -> u64 {
    let mut seen = std::collections::HashSet::new();
    let mut total = 0u64;
    let globals = [&plan.embedding, &plan.output_norm, &plan.lm_head];
    for t in plan
        .layers
        .iter()
        .flat_map(LayerPlan::tensors)
        .chain(globals)
    {
        if !t.name().ends_with(".bias") && seen.insert(t.name()) {
            total += t.size_bytes();
        }
    }
    total
}

/// Resolves every weight of `plan` on `backend`, calling `progress(done_bytes, total_bytes)`
/// after each tensor. On a GPU, fails before the first upload, with needed vs free bytes, when
/// the weights cannot fit the device's free memory.
pub(crate) fn load(
    plan: &ExecutionPlan,
    backend: &Backend,
    progress: &mut dyn FnMut(u64, u64),
) -> ModelResult<Weights> {
    let c = &plan.config;
    let file = plan.loader().file();
    let total = weight_bytes(plan);
    if let Some(device) = backend.device() {
        let needed = usize::try_from(total)
            .unwrap_or(usize::MAX)
            .saturating_add(LOAD_HEADROOM_BYTES);
        let (free, _) = device.mem_info().map_err(TensorError::Hip)?;
        if needed > free {
            return Err(TensorError::OutOfDeviceMemory {
                tensor: format!(
                    "the weights of {} (plus {} MiB of headroom)",
                    file.path().display(),
                    LOAD_HEADROOM_BYTES >> 20
                ),
                needed,
                free,
            }
            .into());
        }
    }
    let _span =
        tracing::info_span!("load_weights", bytes = total, backend = %backend.name()).entered();
    progress(0, total);
    let mut ld = Loader {
        plan,
        file,
        backend,
        done: 0,
        total,
        progress,
    };
    let layers = plan
        .layers
        .iter()
        .map(|l| layer(&mut ld, c, l))
        .collect::<ModelResult<Vec<_>>>()?;
    let output_norm = ld.vector(plan.output_norm.name(), c.n_embd)?;
    let (embedding, lm_head) = match backend {
        Backend::Cpu => {
            let e = ld.matrix(plan.embedding.name(), c.n_embd, c.vocab_size)?;
            let h = if plan.lm_head.name() == plan.embedding.name() {
                let info = ld.info(plan.lm_head.name())?.clone();
                Mat::Host {
                    ty: info.ty,
                    range: ld.range(&info),
                    rows: c.vocab_size,
                    cols: c.n_embd,
                }
            } else {
                ld.matrix(plan.lm_head.name(), c.n_embd, c.vocab_size)?
            };
            (e, h)
        }
        Backend::Hip(_) => {
            // Shapes checked as for every matrix; the copies live in the plan's own cells.
            for name in [plan.embedding.name(), plan.lm_head.name()] {
                check_dims(ld.info(name)?, &[c.n_embd, c.vocab_size])?;
            }
            let hip = |e| ModelError::Tensor(TensorError::Hip(e));
            let e = Mat::Device(plan.embedding().map_err(hip)?);
            ld.advance(plan.embedding.size_bytes());
            let h = Mat::Device(plan.lm_head().map_err(hip)?);
            if plan.lm_head.name() != plan.embedding.name() {
                ld.advance(plan.lm_head.size_bytes());
            }
            (e, h)
        }
    };
    let rope_factors = RopeFactors::load(ld.file, c, ld.backend)?;
    Ok(Weights {
        layers,
        embedding,
        output_norm,
        lm_head,
        rope_factors,
    })
}
