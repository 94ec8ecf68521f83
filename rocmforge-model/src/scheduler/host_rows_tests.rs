//! The `/metrics` counter of rows whose sampling the host finished: what the model reports per
//! sampled token reaches [`EngineMetrics`] (the real test model, a wrapper marking its rows).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::mpsc;

use rocmforge_gguf::GgufFile;

use super::fault::StepFaults;
use super::metrics::EngineMetrics;
use super::{Job, Worker};
use crate::batch::{BatchModel, SampledToken, Segment, StepRows};
use crate::config::ModelConfig;
use crate::engine::{EngineConfig, EngineEvent, EngineRequest};
use crate::error::ModelResult;
use crate::generate::GenerateParams;
use crate::kv_cache::KvCache;
use crate::model::Model;
use crate::sampler::SamplingParams;
use crate::tokenizer::Tokenizer;

/// The model, its sampled rows at temperature > 0 reported as finished on the host (as a
/// GPU reports rows its kernel handed back).
struct HostFinishing(Model);

impl BatchModel for HostFinishing {
    type Cache = KvCache;
    fn config(&self) -> &ModelConfig {
        self.0.config()
    }
    fn new_cache(&self, ctx: usize) -> ModelResult<KvCache> {
        self.0.new_cache(ctx)
    }
    fn forward_segments(
        &self,
        segments: &mut [Segment<'_, KvCache>],
    ) -> ModelResult<Vec<Option<Vec<f32>>>> {
        self.0.forward_batch(segments)
    }
    fn forward_segments_sampled(
        &self,
        segments: &mut [Segment<'_, KvCache>],
        rows: &mut dyn StepRows,
    ) -> ModelResult<Vec<Option<SampledToken>>> {
        let mut out = self.0.forward_batch_sampled_with(segments, rows)?;
        for (t, row) in out.iter_mut().flatten().zip(rows.rows()?) {
            t.on_host = row.params.temperature > 0.0;
        }
        Ok(out)
    }
}

#[test]
fn rows_finished_on_the_host_are_counted() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    let file = GgufFile::open(&path).unwrap();
    let tokenizer = Tokenizer::from_gguf(&file).unwrap();
    let model =
        Model::from_file(std::sync::Arc::new(file), rocmforge_tensor::Backend::Cpu).unwrap();
    let metrics = EngineMetrics::default();
    let mut worker = Worker {
        model: HostFinishing(model),
        tokenizer: &tokenizer,
        config: EngineConfig {
            max_batch: 4,
            max_queue: 4,
            ctx: 64,
            prefill_chunk: 64,
            prefix_cache: 0,
        },
        metrics: &metrics,
        active: Vec::new(),
        prefix: super::prefix::PrefixCache::new(0),
        device_fault: None,
        kv_trimmed: false,
        faults: StepFaults::new(None),
    };
    // One sampled and one greedy sequence of 5 tokens each (end of generation banned).
    let no_end: std::sync::Arc<[(u32, f32)]> = tokenizer.eog_ids().map(|t| (t, -100.0)).collect();
    let mut receivers = Vec::new();
    for (id, temperature) in [(1u64, 0.8f32), (2, 0.0)] {
        let ids = tokenizer.encode("Once upon a time", true, true).unwrap();
        let params = GenerateParams {
            max_tokens: 5,
            sampling: SamplingParams {
                temperature,
                seed: id,
                logit_bias: no_end.clone(),
                ..SamplingParams::default()
            },
            stop: Vec::new(),
        };
        let (tx, rx) = mpsc::channel();
        worker.start_sequence(Job {
            id,
            request: EngineRequest::new(ids, params, Box::new(tx)),
        });
        receivers.push(rx);
    }
    while !worker.active.is_empty() {
        worker.step();
    }
    let generated = |rx: &mpsc::Receiver<EngineEvent>| match rx.try_iter().last() {
        Some(EngineEvent::Finished { usage, .. }) => usage.completion_tokens as u64,
        other => panic!("unexpected end {other:?}"),
    };
    assert_eq!(generated(&receivers[0]), 5);
    assert_eq!(generated(&receivers[1]), 5);
    assert_eq!(metrics.snapshot().sampled_on_host, 5);
}
