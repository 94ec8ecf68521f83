//! Fuzz target: the tensor index behind the model loader. Any bytes that parse as a GGUF file
//! go through `GgufLoader` (a host-copy uploader: the same cache the GPU path uses), every
//! tensor as a lazy / CPU tensor and loaded twice (the second time from the cache), small
//! tensors dequantized, and `ModelConfig` / `ExecutionPlan` built and fully preloaded when the
//! metadata describes a model. Errors are fine; a panic or an inconsistent answer is a crash.
#![no_main]

use std::collections::HashSet;
use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use rocmforge_gguf::{GgmlType, GgufFile, quants};
use rocmforge_model::{ExecutionPlan, ModelConfig};
use rocmforge_tensor::{GgufLoader, LazyTensor, TensorResult, Uploader};

/// Tensors up to this many bytes are also dequantized.
const DEQUANT_MAX_BYTES: usize = 1 << 14;

/// Keeps a host copy of each "uploaded" tensor, checked against what the index says.
struct HostCopy;

impl Uploader for HostCopy {
    type Output = Vec<u8>;
    fn upload(
        &self,
        _: &str,
        ty: GgmlType,
        shape: Vec<usize>,
        bytes: &[u8],
    ) -> TensorResult<Vec<u8>> {
        // A zero dimension anywhere makes an empty tensor, even after dimensions whose product
        // alone would overflow (as the parser counts it).
        let elements = if shape.contains(&0) {
            Some(0)
        } else {
            shape
                .iter()
                .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        };
        assert_eq!(
            elements.and_then(|n| ty.bytes_for(n)),
            Some(bytes.len() as u64),
            "upload size vs shape"
        );
        Ok(bytes.to_vec())
    }
}

fn walk_loader(loader: &GgufLoader<HostCopy>) {
    let file = Arc::clone(loader.file());
    let mut loaded = HashSet::new();
    for info in file.tensors() {
        let data = file.tensor_data(info);
        if let Ok(LazyTensor::Cpu { info: copy, .. }) = loader.cpu_tensor(&info.name) {
            assert_eq!(&copy, info);
        }
        let lazy = loader.lazy_tensor(&info.name);
        if let Ok(LazyTensor::Unloaded {
            offset,
            size,
            tensor_type,
            ..
        }) = &lazy
        {
            assert_eq!(
                (*offset, *size, *tensor_type),
                (info.offset, info.size, info.ty)
            );
        }
        match loader.load(&info.name) {
            Ok(first) => {
                assert_eq!(first.as_slice(), data, "tensor '{}'", info.name);
                let again = loader
                    .load(&info.name)
                    .expect("a cached tensor loads again");
                assert!(Arc::ptr_eq(&first, &again));
                loaded.insert(info.name.clone());
            }
            Err(_) => assert!(lazy.is_err(), "the shape check failed in load only"),
        }
        if data.len() <= DEQUANT_MAX_BYTES && quants::can_dequantize(info.ty) {
            if let Ok(values) = quants::dequantize_to_vec(info.ty, data) {
                assert_eq!(values.len() as u64, info.n_elements());
            }
        }
    }
    assert!(loader.load("no.such.tensor").is_err());
    let stats = loader.stats();
    assert_eq!(stats.uploads, loaded.len() as u64);
    assert_eq!(stats.cached_tensors, loaded.len());
}

fn walk_plan(loader: Arc<GgufLoader<HostCopy>>) {
    let Ok(config) = ModelConfig::from_gguf(loader.file()) else {
        return;
    };
    let Ok(plan) = ExecutionPlan::new(loader) else {
        return;
    };
    assert_eq!(plan.num_layers(), config.n_layers);
    let _ = plan.preload_layers(&[0, config.n_layers]);
    if plan.preload_all().is_ok() {
        let st = plan.loading_stats();
        assert_eq!(
            (st.loaded_tensors, st.unloaded_tensors),
            (st.total_tensors, 0)
        );
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(file) = GgufFile::from_bytes("fuzz.gguf", data.to_vec()) else {
        return;
    };
    let loader = Arc::new(GgufLoader::with_uploader(Arc::new(file), HostCopy));
    walk_loader(&loader);
    let fresh = Arc::new(GgufLoader::with_uploader(
        Arc::clone(loader.file()),
        HostCopy,
    ));
    walk_plan(fresh);
});
