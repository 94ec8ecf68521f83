//! A hook that sees the input of each weight matrix product of the forward, for tools that
//! collect activation statistics (`rocmforge imatrix`). Unset (the default) it costs one
//! `Option` check per block; set, every step copies those inputs to the host.

use std::sync::Arc;

/// Which projections a forward input feeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatmulSite {
    /// The attention input: q, k and v (`attn_q`/`attn_k`/`attn_v` or a fused `attn_qkv`).
    AttnIn,
    /// The attention output: `attn_output`.
    AttnOut,
    /// The MLP input: gate and up (`ffn_gate`/`ffn_up`).
    FfnIn,
    /// The MLP's hidden state: `ffn_down`.
    FfnDown,
}

/// Sees matrix-product inputs: `input` holds `rows` rows of `cols` f32 values (one per token
/// of the step), the input of `site`'s matrices in block `layer`.
pub trait MatmulObserver: Send + Sync {
    fn observe(&self, layer: usize, site: MatmulSite, input: &[f32], cols: usize, rows: usize);
}

/// The observer slot of a model.
pub(super) type ObserverSlot = std::sync::RwLock<Option<Arc<dyn MatmulObserver>>>;
