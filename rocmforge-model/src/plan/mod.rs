//! [`ExecutionPlan`]: the model as lazy weights, one [`LayerPlan`] per block, loaded through
//! a shared [`GgufLoader`] on first use or by [`ExecutionPlan::preload_layers`] /
//! [`ExecutionPlan::preload_all`].
//!
//! The loader uploads each tensor exactly once however many threads ask; the embedding and
//! the LM head are additionally held in their own `OnceLock`, so the hot path of every
//! forward call reads them without touching the loader's lock.
//!
//! The plan is generic over the loader's [`Uploader`]: the default ([`HipUploader`]) puts
//! the weights on a GPU; tests use a CPU-resident uploader.

mod position;
mod stats;
pub mod truncate;

use std::collections::HashSet;
use std::sync::{Arc, OnceLock};

use rocmforge_hip::{HipError, HipResult};
use rocmforge_tensor::{GgufLoader, HipUploader, LazyTensor, TensorError, Uploader};

pub use position::GlmPositionHandler;
pub use stats::LoadingStats;

use crate::arch::Architecture;
use crate::config::ModelConfig;
use crate::error::ModelResult;
use crate::layer_plan::{LayerPlan, unloaded};

/// A model's weights as lazy tensors, and the loader that makes them resident.
pub struct ExecutionPlan<U: Uploader = HipUploader> {
    /// The model's hyperparameters.
    pub config: ModelConfig,
    /// One plan per transformer block.
    pub layers: Vec<LayerPlan>,
    /// `token_embd.weight`.
    pub embedding: Arc<LazyTensor>,
    /// `output.weight`, or `token_embd.weight` for models that tie them.
    pub lm_head: Arc<LazyTensor>,
    /// `output_norm.weight`.
    pub output_norm: Arc<LazyTensor>,
    embedding_cell: OnceLock<Arc<U::Output>>,
    lm_head_cell: OnceLock<Arc<U::Output>>,
    loader: Arc<GgufLoader<U>>,
    position_handler: Option<GlmPositionHandler>,
}

impl<U: Uploader> std::fmt::Debug for ExecutionPlan<U> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecutionPlan")
            .field("arch", &self.config.arch)
            .field("layers", &self.layers.len())
            .field("stats", &self.loading_stats())
            .finish_non_exhaustive()
    }
}

/// A tensor-layer error as the `HipError` the plan's public methods return: a HIP error as
/// it is, anything else (a missing tensor, no GPU backend, ...) as `InvalidUse` with its text.
pub fn to_hip_error(e: TensorError) -> HipError {
    match e {
        TensorError::Hip(h) => h,
        other => HipError::InvalidUse(other.to_string()),
    }
}

fn cell_get<U: Uploader>(
    cell: &OnceLock<Arc<U::Output>>,
    loader: &GgufLoader<U>,
    tensor: &LazyTensor,
) -> HipResult<Arc<U::Output>> {
    if let Some(hit) = cell.get() {
        return Ok(Arc::clone(hit));
    }
    // The loader uploads at most once; a racing thread that set the cell first holds the
    // same Arc, so whichever value lands in the cell is the one every caller sees.
    let loaded = loader.load(tensor.name()).map_err(to_hip_error)?;
    Ok(Arc::clone(cell.get_or_init(|| loaded)))
}

impl<U: Uploader> ExecutionPlan<U> {
    /// The plan of the model in `loader`'s file: configuration and lazy weights; nothing is
    /// uploaded.
    pub fn new(loader: Arc<GgufLoader<U>>) -> ModelResult<Self> {
        let file = Arc::clone(loader.file());
        let config = ModelConfig::from_gguf(&file)?;
        let layers = (0..config.n_layers)
            .map(|i| LayerPlan::from_file(&file, &config, i))
            .collect::<ModelResult<Vec<_>>>()?;
        let embedding = unloaded(&file, "token_embd.weight")?;
        let lm_head = if file.tensor("output.weight").is_some() {
            unloaded(&file, "output.weight")?
        } else {
            Arc::clone(&embedding)
        };
        let position_handler = if config.arch == Architecture::Glm4 {
            Some(GlmPositionHandler::new(&config)?)
        } else {
            None
        };
        Ok(ExecutionPlan {
            output_norm: unloaded(&file, "output_norm.weight")?,
            config,
            layers,
            embedding,
            lm_head,
            embedding_cell: OnceLock::new(),
            lm_head_cell: OnceLock::new(),
            loader,
            position_handler,
        })
    }

    /// The loader (file and upload cache) behind this plan.
    pub fn loader(&self) -> &Arc<GgufLoader<U>> {
        &self.loader
    }

    /// GLM-4's position handler; `None` for the other architectures.
    pub fn position_handler(&self) -> Option<&GlmPositionHandler> {
        self.position_handler.as_ref()
    }

    /// Number of transformer blocks.
    pub fn num_layers(&self) -> usize {
        self.layers.len()
    }

    /// The resident copy of `tensor` (uploaded on first use, then from the loader's cache).
    pub fn weight(&self, tensor: &LazyTensor) -> HipResult<Arc<U::Output>> {
        self.loader.load(tensor.name()).map_err(to_hip_error)
    }

    /// The embedding table, loaded on first use and then held in its own cell.
    pub fn embedding(&self) -> HipResult<Arc<U::Output>> {
        cell_get(&self.embedding_cell, &self.loader, &self.embedding)
    }

    /// The LM head, loaded on first use and then held in its own cell.
    pub fn lm_head(&self) -> HipResult<Arc<U::Output>> {
        cell_get(&self.lm_head_cell, &self.loader, &self.lm_head)
    }

    /// Loads every tensor of the blocks `layer_indices` (the optional ones where present).
    /// Every index is checked before anything loads; `&[]` does nothing.
    pub fn preload_layers(&self, layer_indices: &[usize]) -> HipResult<()> {
        let num_layers = self.layers.len();
        if let Some(&bad) = layer_indices.iter().find(|&&i| i >= num_layers) {
            return Err(HipError::InvalidUse(format!(
                "preload_layers: layer index {bad} is out of bounds (num_layers = {num_layers})"
            )));
        }
        for &i in layer_indices {
            for t in self.layers[i].tensors() {
                self.weight(t)?;
            }
        }
        Ok(())
    }

    /// Loads every weight of the model: all blocks, the embedding, the final norm and the
    /// LM head.
    pub fn preload_all(&self) -> HipResult<()> {
        let all: Vec<usize> = (0..self.layers.len()).collect();
        self.preload_layers(&all)?;
        self.embedding()?;
        self.weight(&self.output_norm)?;
        self.lm_head()?;
        Ok(())
    }

    /// Every distinct weight name of the plan.
    fn tensor_names(&self) -> Vec<&str> {
        let mut seen = HashSet::new();
        let globals = [&self.embedding, &self.output_norm, &self.lm_head];
        self.layers
            .iter()
            .flat_map(LayerPlan::tensors)
            .chain(globals)
            .map(|t| t.name())
            .filter(|n| seen.insert(*n))
            .collect()
    }

    /// How many of the plan's weights are resident, and how many sit in the embedding /
    /// LM-head cells.
    pub fn loading_stats(&self) -> LoadingStats {
        let names = self.tensor_names();
        let loaded = names
            .iter()
            .filter(|n| self.loader.cached(n).is_some())
            .count();
        let cached = [&self.embedding_cell, &self.lm_head_cell]
            .iter()
            .filter(|c| c.get().is_some())
            .count();
        LoadingStats {
            total_tensors: names.len(),
            loaded_tensors: loaded,
            unloaded_tensors: names.len() - loaded,
            cached_tensors: cached,
        }
    }
}
