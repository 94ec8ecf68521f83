//! GgufLoader hammered from 32 threads over the real test model (272 tensors): every thread
//! loads every tensor in its own order, overlapping with all the others. Each tensor must be
//! uploaded exactly once, every thread must get the same shared copy, the copy must equal the
//! file's bytes, and the counters must add up. A second test makes some uploads fail at first
//! and checks that failures are retried without ever producing two resident copies.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, Mutex};

use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter};
use rocmforge_tensor::{GgufLoader, TensorError, TensorResult, Uploader};

const THREADS: usize = 32;

fn test_model() -> Arc<GgufFile> {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../models/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.exists(),
        "{} is missing: run `cargo xtask models`",
        path.display()
    );
    Arc::new(GgufFile::open(&path).unwrap())
}

/// Uploads per tensor name, shared between a recorder and the test.
type Counts = Arc<Mutex<HashMap<String, usize>>>;

/// Copies the bytes and records how many times each name was uploaded; names listed in
/// `fail_first` fail on their first attempt.
#[derive(Default)]
struct Recorder {
    per_name: Counts,
    attempts: Counts,
    fail_first: Vec<String>,
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
        let attempt = {
            let mut a = self.attempts.lock().unwrap();
            let n = a.entry(name.to_string()).or_default();
            *n += 1;
            *n
        };
        // Yield so that racing threads really overlap inside the upload.
        std::thread::yield_now();
        if attempt == 1 && self.fail_first.iter().any(|f| f == name) {
            return Err(TensorError::NoGpuBackend {
                op: "injected upload failure",
            });
        }
        *self
            .per_name
            .lock()
            .unwrap()
            .entry(name.to_string())
            .or_default() += 1;
        Ok(bytes.to_vec())
    }
}

/// Thread `t`'s order over `n` tensors: rotated by `t`, every other thread backwards.
fn order(t: usize, n: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..n).map(|i| (i + t * 7) % n).collect();
    if t % 2 == 1 {
        idx.reverse();
    }
    idx
}

#[test]
fn thirty_two_threads_load_the_test_model_and_upload_each_tensor_once() {
    let file = test_model();
    let names: Vec<String> = file.tensors().iter().map(|t| t.name.clone()).collect();
    let recorder = Recorder::default();
    let counts = Arc::clone(&recorder.per_name);
    let loader = GgufLoader::with_uploader(Arc::clone(&file), recorder);
    let barrier = Barrier::new(THREADS);
    let per_thread: Vec<Vec<Arc<Vec<u8>>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..THREADS)
            .map(|t| {
                let (loader, names, barrier) = (&loader, &names, &barrier);
                s.spawn(move || {
                    barrier.wait();
                    if t % 4 == 0 {
                        // Some threads preload a layer's worth first, by prefix.
                        let prefix = format!("blk.{}.", t % 30);
                        loader.preload(|n| n.starts_with(&prefix)).unwrap();
                    }
                    let mut got: Vec<Option<Arc<Vec<u8>>>> = vec![None; names.len()];
                    for i in order(t, names.len()) {
                        got[i] = Some(loader.load(&names[i]).unwrap());
                    }
                    got.into_iter().map(Option::unwrap).collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let uploads = counts.lock().unwrap().clone();
    assert_eq!(uploads.len(), names.len(), "every tensor uploaded");
    for (name, n) in &uploads {
        assert_eq!(*n, 1, "tensor '{name}' uploaded {n} times");
    }
    for (i, info) in file.tensors().iter().enumerate() {
        let first = &per_thread[0][i];
        assert_eq!(first.as_slice(), file.tensor_data(info), "{}", info.name);
        for t in &per_thread[1..] {
            assert!(
                Arc::ptr_eq(first, &t[i]),
                "one shared copy of {}",
                info.name
            );
        }
    }
    let st = loader.stats();
    assert_eq!(st.uploads, names.len() as u64);
    assert_eq!(st.cached_tensors, names.len());
    let total_bytes: u64 = file.tensors().iter().map(|t| t.size).sum();
    assert_eq!(st.bytes_uploaded, total_bytes);
    let preloaded: u64 = (0..THREADS)
        .filter(|t| t % 4 == 0)
        .map(|t| {
            let prefix = format!("blk.{}.", t % 30);
            names.iter().filter(|n| n.starts_with(&prefix)).count() as u64
        })
        .sum();
    assert_eq!(
        st.uploads + st.cache_hits,
        (THREADS * names.len()) as u64 + preloaded,
        "every request is an upload or a cache hit"
    );
}

/// A small file of `n` F32 tensors.
fn many_tensors(n: usize) -> Arc<GgufFile> {
    let mut w = GgufWriter::new();
    for i in 0..n {
        let data: Vec<u8> = (0..64)
            .flat_map(|j| ((i * 64 + j) as f32).to_le_bytes())
            .collect();
        w.add_tensor(&format!("t{i}"), &[64], GgmlType::F32, data)
            .unwrap();
    }
    Arc::new(GgufFile::from_bytes("many.gguf", w.to_bytes().unwrap()).unwrap())
}

#[test]
fn failed_uploads_are_retried_and_never_leave_two_copies() {
    let file = many_tensors(64);
    let fail_first: Vec<String> = (0..64).step_by(3).map(|i| format!("t{i}")).collect();
    let recorder = Recorder {
        fail_first: fail_first.clone(),
        ..Recorder::default()
    };
    let (counts, attempts) = (
        Arc::clone(&recorder.per_name),
        Arc::clone(&recorder.attempts),
    );
    let loader = GgufLoader::with_uploader(Arc::clone(&file), recorder);
    let failures = AtomicUsize::new(0);
    let barrier = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (loader, failures, barrier) = (&loader, &failures, &barrier);
            s.spawn(move || {
                barrier.wait();
                for round in 0..3 {
                    for i in order(t + round, 64) {
                        match loader.load(&format!("t{i}")) {
                            Ok(data) => assert_eq!(data.len(), 64 * 4),
                            Err(e) => {
                                assert!(e.to_string().contains("injected"), "{e}");
                                failures.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            });
        }
    });
    // Exactly one failed attempt per listed tensor, then one successful upload of each.
    assert_eq!(failures.load(Ordering::Relaxed), fail_first.len());
    let attempts = attempts.lock().unwrap();
    for i in 0..64 {
        let name = format!("t{i}");
        let expected = if fail_first.contains(&name) { 2 } else { 1 };
        assert_eq!(attempts[&name], expected, "attempts of {name}");
    }
    let counts = counts.lock().unwrap();
    assert_eq!(counts.len(), 64);
    let st = loader.stats();
    assert_eq!((st.uploads, st.cached_tensors), (64, 64));
}
