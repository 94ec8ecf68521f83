//! ExecutionPlan on the CPU: lazy loading, the embedding / LM-head cells, preloading,
//! statistics, errors and concurrent preloads, through a loader whose uploader keeps a host
//! copy (the same cache logic the GPU uploader runs).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::sync::Arc;

use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, MetadataValue};
use rocmforge_model::ExecutionPlan;
use rocmforge_tensor::{GgufLoader, TensorResult, Uploader};

/// Keeps a host copy of each "uploaded" tensor.
struct HostCopy;

impl Uploader for HostCopy {
    type Output = Vec<u8>;
    fn upload(&self, _: &str, _: GgmlType, _: Vec<usize>, bytes: &[u8]) -> TensorResult<Vec<u8>> {
        Ok(bytes.to_vec())
    }
}

const EMBD: u64 = 32;
const FF: u64 = 64;
const VOCAB: u64 = 16;

fn f32_bytes(n: u64, seed: u64) -> Vec<u8> {
    (0..n)
        .flat_map(|i| (((i * 7 + seed * 13) % 17) as f32 * 0.01).to_le_bytes())
        .collect()
}

/// A tiny llama-shaped GGUF with `layers` blocks, all weights F32.
fn tiny_model(layers: u32, tied: bool) -> Arc<GgufFile> {
    let mut w = GgufWriter::new();
    let s = |v: &str| MetadataValue::String(v.to_string());
    w.add_metadata("general.architecture", s("llama"));
    w.add_metadata("llama.block_count", MetadataValue::U32(layers));
    w.add_metadata("llama.context_length", MetadataValue::U32(64));
    w.add_metadata("llama.embedding_length", MetadataValue::U32(EMBD as u32));
    w.add_metadata("llama.feed_forward_length", MetadataValue::U32(FF as u32));
    w.add_metadata("llama.attention.head_count", MetadataValue::U32(4));
    w.add_metadata("llama.attention.head_count_kv", MetadataValue::U32(2));
    w.add_metadata(
        "llama.attention.layer_norm_rms_epsilon",
        MetadataValue::F32(1e-5),
    );
    w.add_metadata("llama.vocab_size", MetadataValue::U32(VOCAB as u32));
    let mut seed = 0;
    let mut add = |w: &mut GgufWriter, name: &str, dims: &[u64]| {
        seed += 1;
        let n = dims.iter().product();
        w.add_tensor(name, dims, GgmlType::F32, f32_bytes(n, seed))
            .unwrap();
    };
    add(&mut w, "token_embd.weight", &[EMBD, VOCAB]);
    for i in 0..layers {
        let kv = EMBD / 2;
        for (name, dims) in [
            ("attn_norm.weight", vec![EMBD]),
            ("attn_q.weight", vec![EMBD, EMBD]),
            ("attn_k.weight", vec![EMBD, kv]),
            ("attn_v.weight", vec![EMBD, kv]),
            ("attn_output.weight", vec![EMBD, EMBD]),
            ("ffn_norm.weight", vec![EMBD]),
            ("ffn_gate.weight", vec![EMBD, FF]),
            ("ffn_up.weight", vec![EMBD, FF]),
            ("ffn_down.weight", vec![FF, EMBD]),
        ] {
            add(&mut w, &format!("blk.{i}.{name}"), &dims);
        }
    }
    add(&mut w, "output_norm.weight", &[EMBD]);
    if !tied {
        add(&mut w, "output.weight", &[EMBD, VOCAB]);
    }
    Arc::new(GgufFile::from_bytes("tiny.gguf", w.to_bytes().unwrap()).unwrap())
}

fn plan_of(file: Arc<GgufFile>) -> ExecutionPlan<HostCopy> {
    ExecutionPlan::new(Arc::new(GgufLoader::with_uploader(file, HostCopy))).unwrap()
}

#[test]
fn nothing_loads_until_first_access_and_the_second_access_is_cached() {
    let plan = plan_of(tiny_model(3, false));
    let st = plan.loading_stats();
    assert_eq!(st.total_tensors, 3 * 9 + 3);
    assert_eq!(st.loaded_tensors, 0);
    assert_eq!(st.unloaded_tensors, st.total_tensors);
    assert_eq!(st.cached_tensors, 0);
    assert_eq!(plan.loader().stats().uploads, 0);

    let q = Arc::clone(&plan.layers[1].o_proj);
    let first = plan.weight(&q).unwrap();
    assert_eq!(plan.loader().stats().uploads, 1);
    let second = plan.weight(&q).unwrap();
    assert!(
        Arc::ptr_eq(&first, &second),
        "second access reuses the upload"
    );
    assert_eq!(plan.loader().stats().uploads, 1);
    assert_eq!(plan.loader().stats().cache_hits, 1);
    assert_eq!(first.len(), (EMBD * EMBD * 4) as usize);

    let e1 = plan.embedding().unwrap();
    let hits = plan.loader().stats().cache_hits;
    let e2 = plan.embedding().unwrap();
    assert!(Arc::ptr_eq(&e1, &e2));
    assert_eq!(
        plan.loader().stats().cache_hits,
        hits,
        "the cell answers without the loader"
    );
    let st = plan.loading_stats();
    assert_eq!((st.loaded_tensors, st.cached_tensors), (2, 1));
    plan.lm_head().unwrap();
    assert_eq!(plan.loading_stats().cached_tensors, 2);
    assert_eq!(plan.loader().stats().uploads, 3);
}

#[test]
fn preloading_some_then_all_layers_updates_the_stats() {
    let plan = plan_of(tiny_model(4, false));
    let total = plan.loading_stats().total_tensors;
    plan.preload_layers(&[0, 2]).unwrap();
    let st = plan.loading_stats();
    assert_eq!(st.loaded_tensors, 2 * 9);
    assert_eq!(st.loaded_tensors + st.unloaded_tensors, total);
    assert_eq!(st.cached_tensors, 0);
    plan.preload_layers(&[2, 2, 0]).unwrap();
    assert_eq!(plan.loader().stats().uploads, 18, "repeats upload nothing");
    plan.preload_all().unwrap();
    let st = plan.loading_stats();
    assert_eq!(st.loaded_tensors, total);
    assert_eq!(st.unloaded_tensors, 0);
    assert_eq!(st.cached_tensors, 2);
    assert_eq!(plan.loader().stats().uploads, total as u64);
    let file_bytes: u64 = plan.loader().file().tensors().iter().map(|t| t.size).sum();
    assert_eq!(plan.loader().stats().bytes_uploaded, file_bytes);
}

#[test]
fn an_out_of_bounds_index_names_the_index_and_num_layers_and_loads_nothing() {
    let plan = plan_of(tiny_model(3, false));
    let err = plan.preload_layers(&[1, 3]).unwrap_err().to_string();
    assert!(err.contains("layer index 3"), "{err}");
    assert!(err.contains("num_layers = 3"), "{err}");
    assert_eq!(
        plan.loading_stats().loaded_tensors,
        0,
        "checked before loading"
    );
}

#[test]
fn empty_indices_are_a_no_op() {
    let plan = plan_of(tiny_model(2, false));
    plan.preload_layers(&[]).unwrap();
    assert_eq!(plan.loader().stats().uploads, 0);
    assert_eq!(plan.loading_stats().loaded_tensors, 0);
}

#[test]
fn a_model_with_zero_layers_has_only_the_global_tensors() {
    let plan = plan_of(tiny_model(0, true));
    assert_eq!(plan.num_layers(), 0);
    let st = plan.loading_stats();
    assert_eq!(
        st.total_tensors, 2,
        "embedding (tied LM head) and output norm"
    );
    plan.preload_layers(&[]).unwrap();
    let err = plan.preload_layers(&[0]).unwrap_err().to_string();
    assert!(
        err.contains("layer index 0") && err.contains("num_layers = 0"),
        "{err}"
    );
    plan.preload_all().unwrap();
    let st = plan.loading_stats();
    assert_eq!((st.loaded_tensors, st.unloaded_tensors), (2, 0));
    assert_eq!(st.cached_tensors, 2);
    assert!(Arc::ptr_eq(
        &plan.embedding().unwrap(),
        &plan.lm_head().unwrap()
    ));
    assert_eq!(plan.loader().stats().uploads, 2);
}

#[test]
fn eight_threads_preloading_overlapping_layers_upload_each_tensor_once() {
    let plan = Arc::new(plan_of(tiny_model(6, false)));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let plan = Arc::clone(&plan);
            std::thread::spawn(move || {
                let mine = [t % 6, (t + 1) % 6, (t + 3) % 6];
                plan.preload_layers(&mine).unwrap();
                if t % 2 == 0 {
                    plan.preload_all().unwrap();
                }
                plan.embedding().unwrap()
            })
        })
        .collect();
    let embeddings: Vec<_> = threads.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(embeddings.windows(2).all(|w| Arc::ptr_eq(&w[0], &w[1])));
    let st = plan.loading_stats();
    assert_eq!(st.loaded_tensors, st.total_tensors);
    assert_eq!(plan.loader().stats().uploads, st.total_tensors as u64);
}

#[test]
fn smollm2_plan_is_lazy_and_preloads_the_whole_file() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models`",
        path.display()
    );
    let file = Arc::new(GgufFile::open(&path).unwrap());
    let plan = plan_of(Arc::clone(&file));
    assert_eq!(plan.num_layers(), 30);
    assert!(Arc::ptr_eq(&plan.embedding, &plan.lm_head), "tied LM head");
    let st = plan.loading_stats();
    assert_eq!(st.total_tensors, file.tensors().len());
    assert_eq!(st.loaded_tensors, 0);
    plan.preload_layers(&[0, 29]).unwrap();
    assert_eq!(plan.loading_stats().loaded_tensors, 18);
    let err = plan.preload_layers(&[30]).unwrap_err().to_string();
    assert!(
        err.contains("30") && err.contains("num_layers = 30"),
        "{err}"
    );
    plan.preload_all().unwrap();
    let st = plan.loading_stats();
    assert_eq!((st.loaded_tensors, st.unloaded_tensors), (272, 0));
    assert_eq!(plan.loader().stats().bytes_uploaded, 96_574_464 + 2304);
}
