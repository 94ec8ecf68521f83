//! Block formats of ggml's tensor types: CPU dequantization to f32 and quantization from f32.
//!
//! Every quantized type stores its values as blocks of [`GgmlType::block_size`] elements taking
//! [`GgmlType::type_size`] bytes, with the exact byte layout of ggml's `ggml-common.h`. The
//! quantizers follow the behaviour of ggml's reference quantizers (`quantize_row_*_ref`, and for
//! IQ4_NL/IQ4_XS the search that `llama-quantize` runs without an importance matrix), so a file
//! written here holds the same codes llama.cpp would choose, up to floating-point contraction.
//!
//! | types | dequantize | quantize |
//! |---|---|---|
//! | F32, F16, BF16 | yes | yes (round to nearest even; BF16 quiets NaN like ggml) |
//! | Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q8_1 | yes | yes (`quantize_row_*_ref`) |
//! | Q2_K, Q3_K, Q4_K, Q5_K, Q6_K, Q8_K | yes | yes (`quantize_row_*_ref`) |
//! | IQ4_NL, IQ4_XS | yes | yes (`quantize_iq4_*` without importance matrix) |
//! | MXFP4 | yes | yes (`quantize_row_mxfp4_ref`) |
//!
//! With an importance matrix ([`quantize_weighted`]), Q2_K..Q6_K, IQ4_NL/IQ4_XS and
//! Q4_0/Q4_1/Q5_0/Q5_1 follow ggml's `quantize_row_*_impl` with `quant_weights` (byte for byte
//! against llama-quantize in rocmforge-cli's `quantize_llama_reference` test); Q8_0 and the
//! float types ignore it, as ggml does.
//! | I8, I16, I32, I64, F64 | no ([`GgufError::Unsupported`]) | no |
//!
//! How it is checked: `tests/dequant_oracle.rs` compares every dequantizer bit for bit with the
//! `gguf` Python package (and the quantizers it has byte for byte); `tests/quantize_ggml_golden.rs`
//! pins every block quantizer to the bytes ggml's C reference writes (built with
//! `-ffp-contract=off`; a build that fuses multiply-adds differs in about 1% of K-quant blocks).
//!
//! ```
//! use rocmforge_gguf::{GgmlType, quants};
//!
//! let x: Vec<f32> = (0..256).map(|i| (i as f32 * 0.37).sin()).collect();
//! let blocks = quants::quantize(GgmlType::Q4_K, &x)?;
//! assert_eq!(blocks.len(), 144);
//! let y = quants::dequantize_to_vec(GgmlType::Q4_K, &blocks)?;
//! assert!(x.iter().zip(&y).all(|(a, b)| (a - b).abs() < 0.1));
//! # Ok::<(), rocmforge_gguf::GgufError>(())
//! ```

mod float;
mod iq4;
mod k_quants;
mod mxfp4;
mod q4_q5_q8;
mod scalar;

use rayon::prelude::*;

use crate::{GgmlType, GgufError, GgufResult};

pub use iq4::IQ4_NL_VALUES;
pub use k_quants::{QK_K, k4_scale_min, q3_k_scales};
pub use mxfp4::{MXFP4_VALUES, e8m0_half};
pub use scalar::{bf16_bits_from_f32, nearest_int};

/// Decodes `data` (whole blocks) into `out` (`block_size` values per block).
type DequantFn = fn(&[u8], &mut [f32]);
/// Encodes `src` (whole blocks of values) into `out` (`type_size` bytes per block).
type QuantFn = fn(&[f32], &mut [u8]);

/// Below this many elements a conversion runs on the calling thread.
const PARALLEL_MIN_ELEMENTS: usize = 1 << 16;
/// Elements handed to one rayon task (rounded to whole blocks).
const CHUNK_ELEMENTS: usize = 1 << 14;

fn dequantizer(ty: GgmlType) -> Option<DequantFn> {
    use GgmlType::*;
    Some(match ty {
        F32 => float::dequant_f32,
        F16 => float::dequant_f16,
        BF16 => float::dequant_bf16,
        Q4_0 => q4_q5_q8::dequant_q4_0,
        Q4_1 => q4_q5_q8::dequant_q4_1,
        Q5_0 => q4_q5_q8::dequant_q5_0,
        Q5_1 => q4_q5_q8::dequant_q5_1,
        Q8_0 => q4_q5_q8::dequant_q8_0,
        Q8_1 => q4_q5_q8::dequant_q8_1,
        Q2_K => k_quants::q2_k::dequant,
        Q3_K => k_quants::q3_k::dequant,
        Q4_K => k_quants::q4_k::dequant,
        Q5_K => k_quants::q5_k::dequant,
        Q6_K => k_quants::q6_k::dequant,
        Q8_K => k_quants::q8_k::dequant,
        IQ4_NL => iq4::dequant_iq4_nl,
        IQ4_XS => iq4::dequant_iq4_xs,
        MXFP4 => mxfp4::dequant_mxfp4,
        I8 | I16 | I32 | I64 | F64 => return None,
    })
}

fn quantizer(ty: GgmlType) -> Option<QuantFn> {
    use GgmlType::*;
    Some(match ty {
        F32 => float::quant_f32,
        F16 => float::quant_f16,
        BF16 => float::quant_bf16,
        Q4_0 => q4_q5_q8::quant_q4_0,
        Q4_1 => q4_q5_q8::quant_q4_1,
        Q5_0 => q4_q5_q8::quant_q5_0,
        Q5_1 => q4_q5_q8::quant_q5_1,
        Q8_0 => q4_q5_q8::quant_q8_0,
        Q8_1 => q4_q5_q8::quant_q8_1,
        Q2_K => k_quants::q2_k::quant,
        Q3_K => k_quants::q3_k::quant,
        Q4_K => k_quants::q4_k::quant,
        Q5_K => k_quants::q5_k::quant,
        Q6_K => k_quants::q6_k::quant,
        Q8_K => k_quants::q8_k::quant,
        IQ4_NL => iq4::quant_iq4_nl,
        IQ4_XS => iq4::quant_iq4_xs,
        MXFP4 => mxfp4::quant_mxfp4,
        I8 | I16 | I32 | I64 | F64 => return None,
    })
}

/// Encodes one row `src` (whole blocks) with one importance weight per value into `out`.
type WeightedQuantFn = fn(&[f32], &[f32], &mut [u8]);

/// The types whose llama.cpp quantizer uses an importance matrix (the others ignore it).
fn weighted_quantizer(ty: GgmlType) -> Option<WeightedQuantFn> {
    use GgmlType::*;
    Some(match ty {
        Q4_0 => q4_q5_q8::quant_q4_0_weighted,
        Q4_1 => q4_q5_q8::quant_q4_1_weighted,
        Q5_0 => q4_q5_q8::quant_q5_0_weighted,
        Q5_1 => q4_q5_q8::quant_q5_1_weighted,
        Q2_K => k_quants::q2_k::quant_weighted,
        Q3_K => k_quants::q3_k::quant_weighted,
        Q4_K => k_quants::q4_k::quant_weighted,
        Q5_K => k_quants::q5_k::quant_weighted,
        Q6_K => k_quants::q6_k::quant_weighted,
        IQ4_NL => iq4::quant_iq4_nl_weighted,
        IQ4_XS => iq4::quant_iq4_xs_weighted,
        _ => return None,
    })
}

/// Whether [`quantize_weighted`] uses the importance weights for `ty` (else it quantizes as
/// [`quantize`] does, as llama.cpp does for Q8_0, F16, ...).
pub fn uses_importance(ty: GgmlType) -> bool {
    weighted_quantizer(ty).is_some()
}

/// Quantizes rows of `n_per_row` values with an importance matrix, as llama-quantize does
/// with `--imatrix`: `importance` holds `n_per_row` weights per matrix (one matrix for a 2-D
/// weight, one per expert for a 3-D one, whose rows split evenly between them) and weighs each
/// column's error in the block searches (ggml's `quantize_row_*_impl` with `quant_weights`).
///
/// Types whose quantizer takes no weights ([`uses_importance`] false) give [`quantize`]'s
/// bytes. Errors: rows not whole blocks, `src` not whole rows, or an importance length that is
/// not whole rows dividing the row count ([`GgufError::BlockLayout`]).
pub fn quantize_weighted(
    ty: GgmlType,
    src: &[f32],
    n_per_row: usize,
    importance: &[f32],
) -> GgufResult<Vec<u8>> {
    let Some(f) = weighted_quantizer(ty) else {
        return quantize(ty, src);
    };
    let layout = |what: String| GgufError::BlockLayout { ty, what };
    if n_per_row == 0 || n_per_row % ty.block_size() != 0 || src.len() % n_per_row != 0 {
        return Err(layout(format!(
            "{} values in rows of {n_per_row} are not whole rows of whole {}-value blocks",
            src.len(),
            ty.block_size()
        )));
    }
    let rows = src.len() / n_per_row;
    let n_mat = importance.len() / n_per_row;
    if importance.len() % n_per_row != 0 || n_mat == 0 || rows % n_mat != 0 {
        return Err(layout(format!(
            "{} importance weights do not fit {rows} rows of {n_per_row} values",
            importance.len()
        )));
    }
    let rows_per_mat = rows / n_mat;
    let row_bytes = bytes_for_elements(ty, n_per_row)?;
    let mut out = vec![0u8; bytes_for_elements(ty, src.len())?];
    let row = |(r, (o, s)): (usize, (&mut [u8], &[f32]))| {
        let m = r / rows_per_mat;
        f(s, &importance[m * n_per_row..(m + 1) * n_per_row], o);
    };
    if src.len() < PARALLEL_MIN_ELEMENTS {
        out.chunks_mut(row_bytes)
            .zip(src.chunks(n_per_row))
            .enumerate()
            .for_each(row);
    } else {
        out.par_chunks_mut(row_bytes)
            .zip(src.par_chunks(n_per_row))
            .enumerate()
            .for_each(row);
    }
    Ok(out)
}

/// Whether [`dequantize`] supports `ty`.
pub fn can_dequantize(ty: GgmlType) -> bool {
    dequantizer(ty).is_some()
}

/// Whether [`quantize`] supports `ty`.
pub fn can_quantize(ty: GgmlType) -> bool {
    quantizer(ty).is_some()
}

/// Dequantizes `data` (blocks of type `ty`) into `out`, whose length is the element count.
///
/// `data.len()` must be exactly the bytes of `out.len()` elements, else
/// [`GgufError::BlockLayout`]; a type without a dequantizer gives [`GgufError::Unsupported`].
/// Large inputs are converted in parallel (rayon) over chunks of blocks.
pub fn dequantize(ty: GgmlType, data: &[u8], out: &mut [f32]) -> GgufResult<()> {
    let f = dequantizer(ty).ok_or(GgufError::Unsupported {
        ty,
        op: "dequantization",
    })?;
    let expected = bytes_for_elements(ty, out.len())?;
    if data.len() != expected {
        return Err(GgufError::BlockLayout {
            ty,
            what: format!(
                "{} bytes of data, but {} elements take {expected} bytes",
                data.len(),
                out.len()
            ),
        });
    }
    let (bs, ts) = (ty.block_size(), ty.type_size());
    if out.len() < PARALLEL_MIN_ELEMENTS {
        f(data, out);
        return Ok(());
    }
    let blocks_per_chunk = CHUNK_ELEMENTS.div_ceil(bs);
    out.par_chunks_mut(blocks_per_chunk * bs)
        .zip(data.par_chunks(blocks_per_chunk * ts))
        .for_each(|(o, d)| f(d, o));
    Ok(())
}

/// Dequantizes `data` (whole blocks of type `ty`) into a new vector.
///
/// `data.len()` must be a multiple of the type's block bytes, else [`GgufError::BlockLayout`].
pub fn dequantize_to_vec(ty: GgmlType, data: &[u8]) -> GgufResult<Vec<f32>> {
    if !can_dequantize(ty) {
        return Err(GgufError::Unsupported {
            ty,
            op: "dequantization",
        });
    }
    let ts = ty.type_size();
    if data.len() % ts != 0 {
        return Err(GgufError::BlockLayout {
            ty,
            what: format!(
                "{} bytes of data is not a whole number of {ts}-byte blocks",
                data.len()
            ),
        });
    }
    let n = (data.len() / ts)
        .checked_mul(ty.block_size())
        .ok_or_else(|| GgufError::BlockLayout {
            ty,
            what: format!("element count of {} bytes overflows usize", data.len()),
        })?;
    let mut out = vec![0.0f32; n];
    dequantize(ty, data, &mut out)?;
    Ok(out)
}

/// Quantizes `src` into blocks of type `ty`.
///
/// `src.len()` must be a multiple of the block size, else [`GgufError::BlockLayout`]; a type
/// without a quantizer gives [`GgufError::Unsupported`]. Large inputs run in parallel.
pub fn quantize(ty: GgmlType, src: &[f32]) -> GgufResult<Vec<u8>> {
    if !can_quantize(ty) {
        return Err(GgufError::Unsupported {
            ty,
            op: "quantization",
        });
    }
    let mut out = vec![0u8; bytes_for_elements(ty, src.len())?];
    quantize_into(ty, src, &mut out)?;
    Ok(out)
}

/// Quantizes `src` into `out` without allocating (for example one activation row per call).
///
/// `out.len()` must be exactly the bytes of `src.len()` elements of `ty`, else
/// [`GgufError::BlockLayout`]. Large inputs run in parallel.
pub fn quantize_into(ty: GgmlType, src: &[f32], out: &mut [u8]) -> GgufResult<()> {
    let f = quantizer(ty).ok_or(GgufError::Unsupported {
        ty,
        op: "quantization",
    })?;
    let expected = bytes_for_elements(ty, src.len())?;
    if out.len() != expected {
        return Err(GgufError::BlockLayout {
            ty,
            what: format!(
                "output of {} bytes, but {} elements take {expected} bytes",
                out.len(),
                src.len()
            ),
        });
    }
    let (bs, ts) = (ty.block_size(), ty.type_size());
    if src.len() < PARALLEL_MIN_ELEMENTS {
        f(src, out);
        return Ok(());
    }
    let blocks_per_chunk = (CHUNK_ELEMENTS / 4).div_ceil(bs);
    out.par_chunks_mut(blocks_per_chunk * ts)
        .zip(src.par_chunks(blocks_per_chunk * bs))
        .for_each(|(o, s)| f(s, o));
    Ok(())
}

/// Bytes taken by `n` elements of `ty`, or a `BlockLayout` error naming why not.
fn bytes_for_elements(ty: GgmlType, n: usize) -> GgufResult<usize> {
    let bs = ty.block_size();
    if n % bs != 0 {
        return Err(GgufError::BlockLayout {
            ty,
            what: format!("{n} elements is not a multiple of the block size {bs}"),
        });
    }
    (n / bs)
        .checked_mul(ty.type_size())
        .ok_or_else(|| GgufError::BlockLayout {
            ty,
            what: format!("byte size of {n} elements overflows usize"),
        })
}
