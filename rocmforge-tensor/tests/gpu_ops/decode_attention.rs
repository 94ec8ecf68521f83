//! Split-K decode attention (length read on the device) against the CPU attention, including a
//! captured graph replayed at several lengths.

use half::f16;
use rocmforge_hip::DeviceBuffer;
use rocmforge_tensor::cpu::{self, AttentionParams};
use rocmforge_tensor::hip::HipOps;
use rocmforge_tensor::hip::attention_decode::{
    DecodeAttentionShape, attention_decode, workspace_len,
};
use rocmforge_tensor::{Backend, DeviceTensor};

use crate::support::{Ctx, e};

fn hip(ctx: &Ctx) -> Result<&HipOps, String> {
    match &ctx.gpu {
        Backend::Hip(ops) => Ok(ops),
        Backend::Cpu => Err("the GPU backend is not HIP".to_string()),
    }
}

/// Random f16 cache of `rows` x `cols`.
fn cache(ctx: &Ctx, rows: usize, cols: usize) -> Vec<f16> {
    ctx.randn(rows * cols, 1.0)
        .iter()
        .map(|&v| f16::from_f32(v))
        .collect()
}

struct Case {
    q: Vec<f32>,
    k: Vec<f16>,
    v: Vec<f16>,
    shape: DecodeAttentionShape,
}

impl Case {
    fn new(ctx: &Ctx, shape: DecodeAttentionShape) -> Case {
        let kv = shape.n_kv_heads * shape.head_dim;
        Case {
            q: ctx.randn(shape.n_heads * shape.head_dim, 1.0),
            k: cache(ctx, shape.capacity, kv),
            v: cache(ctx, shape.capacity, kv),
            shape,
        }
    }

    fn cpu(&self, len: usize) -> Vec<f32> {
        let s = &self.shape;
        let p = AttentionParams {
            n_q_tokens: 1,
            n_kv_tokens: len,
            n_heads: s.n_heads,
            n_kv_heads: s.n_kv_heads,
            head_dim: s.head_dim,
            scale: 1.0 / (s.head_dim as f32).sqrt(),
        };
        let mut out = vec![0.0; s.n_heads * s.head_dim];
        let kv = s.n_kv_heads * s.head_dim;
        cpu::attention(
            &self.q,
            &self.k[..len * kv],
            &self.v[..len * kv],
            &p,
            &mut out,
        );
        out
    }

    fn size(&self, len: usize) -> String {
        let s = &self.shape;
        format!(
            "len {len} cap {} h{}/{} d{}",
            s.capacity, s.n_heads, s.n_kv_heads, s.head_dim
        )
    }
}

/// Device buffers of one case.
struct Dev {
    q: DeviceTensor,
    k: DeviceTensor,
    v: DeviceTensor,
    len: DeviceBuffer<u32>,
    ws: DeviceBuffer<f32>,
    out: DeviceTensor,
}

fn upload(ops: &HipOps, c: &Case) -> Result<Dev, String> {
    let dev = ops.backend();
    let s = &c.shape;
    let kv = s.n_kv_heads * s.head_dim;
    let q_len = s.n_heads * s.head_dim;
    let mut out = DeviceTensor::from_f32(dev, vec![q_len], &vec![0.0; q_len]).map_err(e)?;
    out.fill_bytes(0xFF).map_err(e)?;
    Ok(Dev {
        q: DeviceTensor::from_f32(dev, vec![q_len], &c.q).map_err(e)?,
        k: DeviceTensor::from_f16(dev, vec![s.capacity, kv], &c.k).map_err(e)?,
        v: DeviceTensor::from_f16(dev, vec![s.capacity, kv], &c.v).map_err(e)?,
        len: dev.alloc_zeros::<u32>(1).map_err(e)?,
        ws: dev.alloc_zeros::<f32>(workspace_len(s)).map_err(e)?,
        out,
    })
}

fn launch(ops: &HipOps, c: &Case, d: &mut Dev) -> Result<(), String> {
    let scale = 1.0 / (c.shape.head_dim as f32).sqrt();
    attention_decode(
        ops, &d.q, &d.k, &d.v, &d.len, &c.shape, scale, &mut d.ws, &mut d.out,
    )
    .map_err(e)
}

pub fn split_k(ctx: &Ctx) -> Result<(), String> {
    let ops = hip(ctx)?;
    // (len, capacity, n_heads, n_kv_heads, head_dim)
    let cases = [
        (1, 1, 4, 4, 64),
        (31, 40, 9, 3, 64),
        (257, 300, 32, 8, 128),
        (4097, 4200, 32, 8, 128),
        (130, 131, 6, 2, 40),
        (129, 4096, 8, 1, 256),
        (300, 300, 14, 2, 64),
        (77, 100, 3, 3, 5),
    ];
    for (len, capacity, n_heads, n_kv_heads, head_dim) in cases {
        let c = Case::new(
            ctx,
            DecodeAttentionShape {
                n_heads,
                n_kv_heads,
                head_dim,
                capacity,
            },
        );
        let mut d = upload(ops, &c)?;
        d.len.copy_from_host(&[len as u32]).map_err(e)?;
        launch(ops, &c, &mut d)?;
        ops.synchronize().map_err(e)?;
        let g = d.out.to_f32_vec().map_err(e)?;
        ctx.check(
            "attention_decode split-K",
            &c.size(len),
            &c.cpu(len),
            &g,
            1e-2,
        )?;
    }
    let bad = DecodeAttentionShape {
        n_heads: 36,
        n_kv_heads: 4,
        head_dim: 64,
        capacity: 8,
    };
    let c = Case::new(ctx, bad);
    let mut d = upload(ops, &c)?;
    if launch(ops, &c, &mut d).is_ok() {
        return Err("9 query heads per KV head must be refused (at most 8)".to_string());
    }
    Ok(())
}

/// One captured launch pair, replayed while the length on the device grows.
pub fn graph_replay(ctx: &Ctx) -> Result<(), String> {
    let ops = hip(ctx)?;
    let shape = DecodeAttentionShape {
        n_heads: 8,
        n_kv_heads: 2,
        head_dim: 128,
        capacity: 1100,
    };
    let c = Case::new(ctx, shape);
    let mut d = upload(ops, &c)?;
    d.len.copy_from_host(&[1]).map_err(e)?;
    launch(ops, &c, &mut d)?; // loads the kernels outside the capture
    ops.synchronize().map_err(e)?;
    ops.stream().begin_capture().map_err(e)?;
    let captured = launch(ops, &c, &mut d);
    let graph = ops.stream().end_capture().map_err(e)?;
    captured?;
    let exec = graph.instantiate().map_err(e)?;
    for len in [1usize, 31, 128, 129, 257, 1100] {
        d.out.fill_bytes(0xFF).map_err(e)?;
        d.len.copy_from_host(&[len as u32]).map_err(e)?;
        exec.launch(ops.stream()).map_err(e)?;
        ops.synchronize().map_err(e)?;
        let g = d.out.to_f32_vec().map_err(e)?;
        ctx.check(
            "attention_decode graph",
            &c.size(len),
            &c.cpu(len),
            &g,
            1e-2,
        )?;
    }
    Ok(())
}
