//! [`LoadingStats`]: what an [`super::ExecutionPlan`] holds resident.

/// Counts of a plan's weights by residency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadingStats {
    /// Distinct weights of the plan (blocks, embedding, final norm, LM head; a tied LM head
    /// is the embedding and counts once).
    pub total_tensors: usize,
    /// Weights resident in the loader's cache.
    pub loaded_tensors: usize,
    /// Weights not loaded yet (`loaded_tensors + unloaded_tensors == total_tensors`).
    pub unloaded_tensors: usize,
    /// Of the embedding and LM-head cells, how many hold their tensor (0, 1 or 2; with a tied
    /// LM head both cells hold the same upload).
    pub cached_tensors: usize,
}
