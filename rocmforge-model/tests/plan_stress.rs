//! ExecutionPlan hammered from 32 threads over the real test model (30 blocks): overlapping
//! `preload_layers` windows, `weight`, `embedding` / `lm_head` (their own cells) and
//! `preload_all`, all at once. Every tensor must be uploaded exactly once, every thread must
//! see the same embedding and LM head, and the statistics must say everything is resident.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Barrier, Mutex};

use rocmforge_gguf::{GgmlType, GgufFile};
use rocmforge_model::ExecutionPlan;
use rocmforge_tensor::{GgufLoader, TensorResult, Uploader};

const THREADS: usize = 32;

/// The embedding and LM head one thread saw.
type Globals = (Arc<Vec<u8>>, Arc<Vec<u8>>);

/// Copies each "uploaded" tensor to the host and counts uploads per name.
struct Recorder {
    per_name: Arc<Mutex<HashMap<String, usize>>>,
}

impl Uploader for Recorder {
    type Output = Vec<u8>;
    fn upload(
        &self,
        name: &str,
        _: GgmlType,
        _: Vec<usize>,
        bytes: &[u8],
    ) -> TensorResult<Vec<u8>> {
        std::thread::yield_now();
        *self
            .per_name
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default() += 1;
        Ok(bytes.to_vec())
    }
}

#[test]
fn thirty_two_threads_preloading_the_test_model_upload_each_tensor_once() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models`",
        path.display()
    );
    let file = Arc::new(GgufFile::open(&path).unwrap());
    let per_name = Arc::new(Mutex::new(HashMap::new()));
    let recorder = Recorder {
        per_name: Arc::clone(&per_name),
    };
    let loader = Arc::new(GgufLoader::with_uploader(Arc::clone(&file), recorder));
    let plan = ExecutionPlan::new(loader).unwrap();
    let n_layers = plan.num_layers();
    assert_eq!(n_layers, 30);
    let barrier = Barrier::new(THREADS);

    let seen: Vec<Globals> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (plan, barrier) = (&plan, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    match t % 4 {
                        // Overlapping windows of 5 blocks, forwards and backwards.
                        0 | 1 => {
                            let mut window: Vec<usize> =
                                (0..5).map(|i| (t + i * 3) % n_layers).collect();
                            if t % 4 == 1 {
                                window.reverse();
                            }
                            plan.preload_layers(&window).unwrap();
                        }
                        // One block's tensors one by one, through `weight`.
                        2 => {
                            for tensor in plan.layers[t % n_layers].tensors() {
                                plan.weight(tensor).unwrap();
                            }
                        }
                        _ => plan.preload_all().unwrap(),
                    }
                    (plan.embedding().unwrap(), plan.lm_head().unwrap())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let (embd, head) = &seen[0];
    assert!(Arc::ptr_eq(embd, head), "the test model ties its LM head");
    for (e, h) in &seen[1..] {
        assert!(Arc::ptr_eq(embd, e) && Arc::ptr_eq(head, h));
    }
    let counts = per_name.lock().unwrap();
    assert_eq!(counts.len(), file.tensors().len(), "every tensor loaded");
    for (name, n) in counts.iter() {
        assert_eq!(*n, 1, "tensor '{name}' uploaded {n} times");
    }
    let st = plan.loading_stats();
    assert_eq!(
        (st.loaded_tensors, st.unloaded_tensors),
        (st.total_tensors, 0)
    );
    assert_eq!(st.total_tensors, file.tensors().len());
    let ls = plan.loader().stats();
    assert_eq!(ls.uploads, file.tensors().len() as u64);
    let total: u64 = file.tensors().iter().map(|t| t.size).sum();
    assert_eq!(ls.bytes_uploaded, total);
    let info = file.tensor("token_embd.weight").unwrap();
    assert_eq!(embd.as_slice(), file.tensor_data(info));
}
