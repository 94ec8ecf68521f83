//! [`GlmPositionHandler`]: the position ids and rotary split of GLM-4 blocks.

use crate::config::ModelConfig;
use crate::error::{ModelError, ModelResult};

/// Position ids for GLM-4: one id per token, counted from the sequence start, with RoPE
/// applied to the first `n_rot` of each head's `head_dim` dimensions (partial rotary);
/// the rest of the head passes through unrotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GlmPositionHandler {
    /// Rotated dimensions per head.
    pub n_rot: usize,
    /// Dimensions per head.
    pub head_dim: usize,
}

impl GlmPositionHandler {
    /// The handler for `config` (whose `n_rot` must not exceed `head_dim`).
    pub fn new(config: &ModelConfig) -> ModelResult<Self> {
        if config.n_rot > config.head_dim || config.n_rot % 2 != 0 {
            return Err(ModelError::InvalidConfig {
                key: "glm4.rope.dimension_count".to_string(),
                reason: format!(
                    "{} rotary dimensions for heads of {} (need an even count <= head_dim)",
                    config.n_rot, config.head_dim
                ),
            });
        }
        Ok(GlmPositionHandler {
            n_rot: config.n_rot,
            head_dim: config.head_dim,
        })
    }

    /// The position ids of `n_tokens` tokens starting at position `start`.
    pub fn position_ids(&self, start: usize, n_tokens: usize) -> ModelResult<Vec<u32>> {
        let end = start.checked_add(n_tokens);
        match end.map(u32::try_from) {
            Some(Ok(_)) => Ok((start..start + n_tokens).map(|p| p as u32).collect()),
            _ => Err(ModelError::InvalidInput(format!(
                "positions {start}..+{n_tokens} exceed the 32-bit position range"
            ))),
        }
    }

    /// Dimensions of each head left unrotated.
    pub fn pass_through_dims(&self) -> usize {
        self.head_dim - self.n_rot
    }
}
