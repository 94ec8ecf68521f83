//! RoPE frequency factors read from the file: Llama 3's `rope_freqs.weight` (one set for every
//! layer and context) and Phi-3's LongRoPE pair (`rope_factors_long` / `_short`, picked per step
//! by the context). Either way a vector of `n_rot / 2` F32 divisors of the pairs' angles
//! (`theta_i / factor_i`), handed to the RoPE op on every layer.

use rocmforge_gguf::quants::dequantize_to_vec;
use rocmforge_gguf::{GgmlType, GgufFile};
use rocmforge_tensor::{Backend, Tensor};

use crate::config::{ModelConfig, ROPE_FACTORS_LONG, ROPE_FACTORS_SHORT, ROPE_FREQS};
use crate::error::{ModelError, ModelResult};

/// The frequency factors of a model, on its backend.
#[derive(Debug)]
pub(crate) enum RopeFactors {
    /// Llama 3's `rope_freqs.weight`: every layer, every context.
    Freqs(Tensor),
    /// Phi-3's LongRoPE: `long` beyond the original context, else `short`.
    LongShort { long: Tensor, short: Tensor },
}

impl RopeFactors {
    /// The factors of a step; `long`: whether a sequence's context is beyond LongRoPE's
    /// original one (ignored by Llama 3's single set).
    pub fn pick(&self, long: bool) -> &Tensor {
        match self {
            RopeFactors::Freqs(f) => f,
            RopeFactors::LongShort { long: l, .. } if long => l,
            RopeFactors::LongShort { short, .. } => short,
        }
    }

    /// The factors the configuration asks for, read and checked from `file`.
    pub fn load(
        file: &GgufFile,
        c: &ModelConfig,
        backend: &Backend,
    ) -> ModelResult<Option<RopeFactors>> {
        let pairs = c.n_rot / 2;
        let load = |name: &str| -> ModelResult<Tensor> {
            Ok(backend.from_f32(vec![pairs], &factor_values(file, name, pairs)?)?)
        };
        if c.long_rope.is_some() {
            return Ok(Some(RopeFactors::LongShort {
                long: load(ROPE_FACTORS_LONG)?,
                short: load(ROPE_FACTORS_SHORT)?,
            }));
        }
        if c.rope_freqs {
            return Ok(Some(RopeFactors::Freqs(load(ROPE_FREQS)?)));
        }
        Ok(None)
    }
}

/// The values of factor tensor `name`: F32 (ggml's RoPE takes no other type), `[pairs]` (as
/// llama.cpp creates it: `n_rot / 2`), each finite and positive (a divisor of an angle).
pub(crate) fn factor_values(file: &GgufFile, name: &str, pairs: usize) -> ModelResult<Vec<f32>> {
    let info = file.tensor(name).ok_or_else(|| ModelError::MissingTensor {
        name: name.to_string(),
    })?;
    crate::weights::check_dims(info, &[pairs])?;
    if info.ty != GgmlType::F32 {
        return Err(ModelError::InvalidConfig {
            key: name.to_string(),
            reason: format!(
                "RoPE frequency factors of type {}: they must be F32, as llama.cpp's RoPE takes them",
                info.ty
            ),
        });
    }
    let values = dequantize_to_vec(GgmlType::F32, file.tensor_data(info))?;
    if values.len() != pairs {
        return Err(ModelError::InvalidConfig {
            key: name.to_string(),
            reason: format!(
                "{} values where {pairs} F32 factors were expected",
                values.len()
            ),
        });
    }
    if let Some((i, v)) = values
        .iter()
        .enumerate()
        .find(|(_, v)| !(v.is_finite() && **v > 0.0))
    {
        return Err(ModelError::InvalidConfig {
            key: name.to_string(),
            reason: format!(
                "factor {i} is {v}: each must be a positive number (it divides a RoPE angle)"
            ),
        });
    }
    Ok(values)
}
