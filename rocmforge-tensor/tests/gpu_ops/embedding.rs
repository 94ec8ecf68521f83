//! Embedding lookup from float and quantized tables: GPU (dequantizing in the kernel) against CPU.

use rocmforge_gguf::{GgmlType, quants};
use rocmforge_tensor::cpu::WeightView;
use rocmforge_tensor::{DeviceTensor, TensorError, Weight, ops};

use crate::elementwise::{both, out};
use crate::support::{Ctx, e};

pub const TYPES: [GgmlType; 11] = [
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q8_0,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Table bytes of `rows x cols` random values in `ty`.
pub fn table_bytes(ctx: &Ctx, ty: GgmlType, rows: usize, cols: usize) -> Result<Vec<u8>, String> {
    let src = ctx.randn(rows * cols, 1.5);
    Ok(match ty {
        GgmlType::F32 => src.iter().flat_map(|v| v.to_le_bytes()).collect(),
        GgmlType::F16 => src
            .iter()
            .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
            .collect(),
        GgmlType::BF16 => src
            .iter()
            .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
            .collect(),
        _ => quants::quantize(ty, &src).map_err(e)?,
    })
}

pub fn embedding(ctx: &Ctx) -> Result<(), String> {
    let dev = ctx.gpu.device().ok_or("no GPU device")?.clone();
    for ty in TYPES {
        let col_choices: &[usize] = if ty.block_size() == 1 {
            &[37, 576]
        } else {
            &[ty.block_size() * 3, 768]
        };
        for &cols in col_choices {
            let rows = 11;
            let bytes = table_bytes(ctx, ty, rows, cols)?;
            let ids: Vec<u32> = (0..9).map(|_| ctx.below(rows as u64) as u32).collect();
            let dt = DeviceTensor::from_raw_bytes(&dev, ty, vec![rows, cols], &bytes).map_err(e)?;
            let (c, g) = both(ctx, |be| {
                let table = match be {
                    rocmforge_tensor::Backend::Cpu => Weight::Cpu(WeightView {
                        ty,
                        data: &bytes,
                        rows,
                        cols,
                    }),
                    rocmforge_tensor::Backend::Hip(_) => Weight::Hip(&dt),
                };
                let mut o = out(ctx, be, vec![ids.len(), cols])?;
                ops::embedding(be, &table, &ids, &mut o)?;
                o.to_f32_vec()
            })?;
            ctx.check(
                &format!("embedding {}", ty.name()),
                &format!("{rows}x{cols}, {} ids", ids.len()),
                &c,
                &g,
                1e-6,
            )?;
        }
    }
    // An id past the table is an error, not a read out of bounds.
    let bytes = table_bytes(ctx, GgmlType::Q8_0, 4, 64)?;
    let dt = DeviceTensor::from_raw_bytes(&dev, GgmlType::Q8_0, vec![4, 64], &bytes).map_err(e)?;
    let mut o = ctx.poisoned_gpu(vec![2, 64]).map_err(e)?;
    match ops::embedding(&ctx.gpu, &Weight::Hip(&dt), &[1, 4], &mut o) {
        Err(TensorError::TokenOutOfRange {
            id: 4, index: 1, ..
        }) => Ok(()),
        other => Err(format!(
            "id 4 of a 4-row table: expected TokenOutOfRange, got {other:?}"
        )),
    }
}
