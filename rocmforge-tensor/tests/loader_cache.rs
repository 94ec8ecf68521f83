//! GgufLoader on the CPU: lazy → loaded, the cache, exactly one upload under contention, counters.
//! A fake uploader (a closure that copies the bytes and counts its calls) stands in for the GPU.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, quants};
use rocmforge_tensor::{GgufLoader, LazyTensor, TensorError, TensorResult};

/// A file with an f32 tensor (3 x 5), a Q8_0 tensor (2 x 64) and an f16 vector.
fn fixture() -> Arc<GgufFile> {
    let mut w = GgufWriter::new();
    let a: Vec<u8> = (0..15)
        .flat_map(|i| (i as f32 * 0.5).to_le_bytes())
        .collect();
    w.add_tensor("a", &[5, 3], GgmlType::F32, a).unwrap();
    let src: Vec<f32> = (0..128).map(|i| (i as f32 * 0.37).sin()).collect();
    let q = quants::quantize(GgmlType::Q8_0, &src).unwrap();
    w.add_tensor("q", &[64, 2], GgmlType::Q8_0, q).unwrap();
    let h: Vec<u8> = (0..7)
        .flat_map(|i| half::f16::from_f32(i as f32).to_le_bytes())
        .collect();
    w.add_tensor("h", &[7], GgmlType::F16, h).unwrap();
    Arc::new(GgufFile::from_bytes("fixture.gguf", w.to_bytes().unwrap()).unwrap())
}

type Fake = Box<dyn Fn(&str, GgmlType, Vec<usize>, &[u8]) -> TensorResult<Vec<u8>> + Send + Sync>;

/// A loader whose uploads copy the bytes, sleep a little (to widen races) and count calls.
fn counting_loader(file: Arc<GgufFile>) -> (GgufLoader<Fake>, Arc<AtomicUsize>) {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let fake: Fake = Box::new(move |_name, _ty, _shape, bytes: &[u8]| {
        c.fetch_add(1, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(20));
        Ok(bytes.to_vec())
    });
    (GgufLoader::with_uploader(file, fake), calls)
}

#[test]
fn lazy_tensor_describes_the_index_entry() {
    let file = fixture();
    let (loader, calls) = counting_loader(Arc::clone(&file));
    let lazy = loader.lazy_tensor("q").unwrap();
    let info = file.tensor("q").unwrap();
    match &lazy {
        LazyTensor::Unloaded {
            name,
            offset,
            size,
            shape,
            tensor_type,
        } => {
            assert_eq!(name, "q");
            assert_eq!(*offset, info.offset);
            assert_eq!(*size, info.size);
            assert_eq!(shape, &[2, 64], "innermost dimension (ne0) last");
            assert_eq!(*tensor_type, GgmlType::Q8_0);
        }
        other => panic!("expected Unloaded, got {other:?}"),
    }
    assert!(!lazy.is_loaded());
    assert_eq!(
        calls.load(Ordering::SeqCst),
        0,
        "describing a tensor reads nothing"
    );
}

#[test]
fn load_uploads_file_bytes_once_then_hits_the_cache() {
    let file = fixture();
    let (loader, calls) = counting_loader(Arc::clone(&file));
    let first = loader.load("q").unwrap();
    assert_eq!(
        first.as_slice(),
        file.tensor_bytes("q").unwrap(),
        "byte for byte"
    );
    assert_eq!(
        first.len(),
        2 * 2 * 34,
        "Q8_0 stays quantized: 2 rows of 2 blocks of 34 bytes"
    );
    let second = loader.load("q").unwrap();
    assert!(Arc::ptr_eq(&first, &second));
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    let s = loader.stats();
    assert_eq!(s.uploads, 1);
    assert_eq!(s.bytes_uploaded, 136);
    assert_eq!(s.cache_hits, 1);
    assert_eq!(s.cached_tensors, 1);
    assert!(Arc::ptr_eq(&loader.cached("q").unwrap(), &first));
    assert!(loader.cached("a").is_none());
}

#[test]
fn sixteen_threads_one_tensor_one_upload_one_arc() {
    let (loader, calls) = counting_loader(fixture());
    let barrier = Barrier::new(16);
    let results: Vec<Arc<Vec<u8>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    loader.load("a").unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1, "exactly one upload");
    for r in &results[1..] {
        assert!(
            Arc::ptr_eq(&results[0], r),
            "every thread holds the same Arc"
        );
    }
    let s = loader.stats();
    assert_eq!(s.uploads, 1);
    assert_eq!(s.bytes_uploaded, 60);
    assert_eq!(s.cache_hits, 15);
}

#[test]
fn threads_on_different_tensors_each_upload_once() {
    let (loader, calls) = counting_loader(fixture());
    let names = ["a", "q", "h"];
    let barrier = Barrier::new(24);
    std::thread::scope(|s| {
        for i in 0..24 {
            let (loader, barrier) = (&loader, &barrier);
            s.spawn(move || {
                barrier.wait();
                loader.load(names[i % 3]).unwrap();
            });
        }
    });
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let s = loader.stats();
    assert_eq!((s.uploads, s.cached_tensors, s.cache_hits), (3, 3, 21));
    assert_eq!(s.bytes_uploaded, 60 + 136 + 14);
}

#[test]
fn preload_loads_the_picked_tensors() {
    let (loader, calls) = counting_loader(fixture());
    assert_eq!(loader.preload(|n| n != "h").unwrap(), 2);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    assert!(loader.cached("h").is_none());
}

#[test]
fn failed_upload_is_not_cached_and_is_retried() {
    let file = fixture();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = Arc::clone(&calls);
    let flaky = move |name: &str, _: GgmlType, _: Vec<usize>, b: &[u8]| {
        if c.fetch_add(1, Ordering::SeqCst) == 0 {
            Err(TensorError::NoGpuBackend { op: "test" })
        } else {
            Ok(format!("{name}:{}", b.len()))
        }
    };
    let loader = GgufLoader::with_uploader(file, flaky);
    assert!(loader.load("a").is_err());
    assert_eq!(loader.stats().uploads, 0);
    assert_eq!(loader.load("a").unwrap().as_str(), "a:60");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

#[test]
fn unknown_tensor_is_an_error_naming_it() {
    let (loader, calls) = counting_loader(fixture());
    let err = loader.load("blk.9.missing").unwrap_err();
    assert!(err.to_string().contains("blk.9.missing"), "{err}");
    assert!(loader.lazy_tensor("nope").is_err());
    assert_eq!(calls.load(Ordering::SeqCst), 0);
}

#[test]
fn cpu_tensor_is_a_zero_copy_view_of_the_map() {
    let file = fixture();
    let loader = GgufLoader::new(Arc::clone(&file), None);
    let t = loader.cpu_tensor("q").unwrap();
    assert!(t.is_loaded());
    let bytes = t.cpu_bytes().unwrap();
    assert_eq!(
        bytes.as_ptr(),
        file.tensor_bytes("q").unwrap().as_ptr(),
        "no copy"
    );
    let view = t.weight_view().unwrap();
    assert_eq!((view.rows, view.cols, view.ty), (2, 64, GgmlType::Q8_0));
    assert_eq!(t.shape(), &[2, 64]);
    assert!(loader.lazy_tensor("q").unwrap().weight_view().is_err());
}

#[test]
fn gpu_load_without_a_backend_is_a_clean_error() {
    let loader = GgufLoader::new(fixture(), None);
    let lazy = loader.lazy_tensor("a").unwrap();
    let err = loader.get_or_load_tensor(&lazy).unwrap_err();
    assert!(matches!(err, TensorError::NoGpuBackend { .. }), "{err}");
    assert_eq!(loader.stats().uploads, 0);
}
