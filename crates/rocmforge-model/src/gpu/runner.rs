//! [`GpuModel`] behind the device-neutral traits: [`SequenceModel`] (so [`crate::generate`]
//! runs on the GPU) and [`BatchModel`] (so the engine's scheduler does).

use super::cache::GpuKvCache;
use super::forward::GpuModel;
use crate::batch::{BatchModel, Segment};
use crate::config::ModelConfig;
use crate::error::ModelResult;
use crate::forward::LogitsFor;
use crate::generate::SequenceModel;

impl SequenceModel for GpuModel {
    type Cache = GpuKvCache;
    fn run_tokens(
        &self,
        cache: &mut GpuKvCache,
        tokens: &[u32],
        which: LogitsFor,
    ) -> ModelResult<Vec<f32>> {
        let start = cache.len();
        self.forward(cache, tokens, start, which)
    }
}

impl BatchModel for GpuModel {
    type Cache = GpuKvCache;
    fn config(&self) -> &ModelConfig {
        GpuModel::config(self)
    }
    fn new_cache(&self, ctx: usize) -> ModelResult<GpuKvCache> {
        GpuModel::new_cache(self, ctx)
    }
    fn forward_segments(
        &self,
        segments: &mut [Segment<'_, GpuKvCache>],
    ) -> ModelResult<Vec<Option<Vec<f32>>>> {
        self.forward_batch(segments)
    }
}
