//! [`GgufLoader`]: the memory-mapped model file plus a cache of uploaded tensors.
//!
//! Each tensor is uploaded exactly once, however many threads ask for it at the same time:
//! a reader that misses the cache takes that tensor's own "in flight" lock, looks at the
//! cache again, and only then uploads (double-checked locking per name). Other tensors load
//! in parallel.
//!
//! The loader is generic over an [`Uploader`] so that the cache logic is tested on the CPU
//! (with a counting fake) as well as on the GPU ([`HipUploader`], the default).

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rocmforge_gguf::{GgmlType, GgufFile, TensorInfo};
use rocmforge_hip::HipBackend;

use crate::device_tensor::{DeviceTensor, shape_from_gguf_dims};
use crate::error::{TensorError, TensorResult};
use crate::lazy::LazyTensor;

/// Uploads at least this large check the device's free memory first.
const MEM_CHECK_MIN_BYTES: usize = 16 << 20;

/// Turns a tensor's file bytes into a resident copy (device memory, or anything in tests).
pub trait Uploader: Send + Sync {
    /// What one upload produces and the cache shares.
    type Output: Send + Sync;
    /// Uploads `bytes` (the tensor's exact file bytes) of tensor `name`.
    fn upload(
        &self,
        name: &str,
        dtype: GgmlType,
        shape: Vec<usize>,
        bytes: &[u8],
    ) -> TensorResult<Self::Output>;
}

impl<T, F> Uploader for F
where
    T: Send + Sync,
    F: Fn(&str, GgmlType, Vec<usize>, &[u8]) -> TensorResult<T> + Send + Sync,
{
    type Output = T;
    fn upload(&self, name: &str, ty: GgmlType, shape: Vec<usize>, b: &[u8]) -> TensorResult<T> {
        self(name, ty, shape, b)
    }
}

/// Uploads to a GPU byte for byte (quantized blocks stay quantized).
#[derive(Debug, Clone)]
pub struct HipUploader {
    backend: Option<Arc<HipBackend>>,
}

impl HipUploader {
    /// An uploader for `backend`; `None` makes every upload a [`TensorError::NoGpuBackend`].
    pub fn new(backend: Option<Arc<HipBackend>>) -> Self {
        HipUploader { backend }
    }
}

impl Uploader for HipUploader {
    type Output = DeviceTensor;
    fn upload(
        &self,
        name: &str,
        dtype: GgmlType,
        shape: Vec<usize>,
        bytes: &[u8],
    ) -> TensorResult<DeviceTensor> {
        let backend = self.backend.as_ref().ok_or(TensorError::NoGpuBackend {
            op: "load_tensor_to_gpu",
        })?;
        if bytes.len() >= MEM_CHECK_MIN_BYTES {
            let (free, _total) = backend.mem_info()?;
            if free < bytes.len() {
                return Err(TensorError::OutOfDeviceMemory {
                    tensor: name.to_string(),
                    needed: bytes.len(),
                    free,
                });
            }
        }
        DeviceTensor::from_raw_bytes(backend, dtype, shape, bytes)
    }
}

/// Upload counters of a loader.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoaderStats {
    /// Uploads performed (one per distinct tensor when all goes well).
    pub uploads: u64,
    /// Bytes uploaded in total.
    pub bytes_uploaded: u64,
    /// Requests answered from the cache.
    pub cache_hits: u64,
    /// Tensors in the cache now.
    pub cached_tensors: usize,
}

/// The model file (memory-mapped) and the cache of its uploaded tensors.
pub struct GgufLoader<U: Uploader = HipUploader> {
    file: Arc<GgufFile>,
    uploader: U,
    cache: RwLock<HashMap<String, Arc<U::Output>>>,
    in_flight: Mutex<HashMap<String, Arc<Mutex<()>>>>,
    uploads: AtomicU64,
    bytes_uploaded: AtomicU64,
    cache_hits: AtomicU64,
}

impl<U: Uploader> fmt::Debug for GgufLoader<U> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GgufLoader")
            .field("file", &self.file.path())
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl GgufLoader<HipUploader> {
    /// Maps the file at `path`; `backend` is the GPU to upload to (`None`: CPU only).
    pub fn open(path: impl AsRef<Path>, backend: Option<Arc<HipBackend>>) -> TensorResult<Self> {
        let file = Arc::new(GgufFile::open(path)?);
        Ok(GgufLoader::new(file, backend))
    }

    /// A loader over an already parsed file.
    pub fn new(file: Arc<GgufFile>, backend: Option<Arc<HipBackend>>) -> Self {
        GgufLoader::with_uploader(file, HipUploader::new(backend))
    }

    /// The device copy of tensor `name`, uploaded on first use and cached.
    pub fn load_tensor_to_gpu(&self, name: &str) -> TensorResult<Arc<DeviceTensor>> {
        self.load(name)
    }

    /// The device copy of `tensor`: its own for a `Gpu` tensor, else loaded by name.
    pub fn get_or_load_tensor(&self, tensor: &LazyTensor) -> TensorResult<Arc<DeviceTensor>> {
        match tensor {
            LazyTensor::Gpu { tensor, .. } => Ok(Arc::clone(tensor)),
            other => self.load(other.name()),
        }
    }

    /// `tensor` as a `Gpu` lazy tensor (uploading it if needed).
    pub fn to_gpu(&self, tensor: &LazyTensor) -> TensorResult<LazyTensor> {
        Ok(LazyTensor::Gpu {
            name: tensor.name().to_string(),
            tensor: self.get_or_load_tensor(tensor)?,
        })
    }
}

impl<U: Uploader> GgufLoader<U> {
    /// A loader over `file` that uploads with `uploader`.
    pub fn with_uploader(file: Arc<GgufFile>, uploader: U) -> Self {
        GgufLoader {
            file,
            uploader,
            cache: RwLock::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            uploads: AtomicU64::new(0),
            bytes_uploaded: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        }
    }

    /// The parsed, memory-mapped file.
    pub fn file(&self) -> &Arc<GgufFile> {
        &self.file
    }

    fn info(&self, name: &str) -> TensorResult<&TensorInfo> {
        self.file
            .tensor(name)
            .ok_or_else(|| TensorError::TensorNotFound {
                name: name.to_string(),
                file: self.file.path().display().to_string(),
            })
    }

    /// Tensor `name` as an `Unloaded` lazy tensor (nothing is read).
    pub fn lazy_tensor(&self, name: &str) -> TensorResult<LazyTensor> {
        let info = self.info(name)?;
        Ok(LazyTensor::Unloaded {
            name: info.name.clone(),
            offset: info.offset,
            size: info.size,
            shape: shape_from_gguf_dims(&info.dims)?,
            tensor_type: info.ty,
        })
    }

    /// Tensor `name` as a `Cpu` lazy tensor: a zero-copy view into the mapped file.
    pub fn cpu_tensor(&self, name: &str) -> TensorResult<LazyTensor> {
        let info = self.info(name)?;
        Ok(LazyTensor::Cpu {
            name: info.name.clone(),
            file: Arc::clone(&self.file),
            info: info.clone(),
            shape: shape_from_gguf_dims(&info.dims)?,
        })
    }

    /// The cached copy of `name`, if it was loaded.
    pub fn cached(&self, name: &str) -> Option<Arc<U::Output>> {
        let cache = self.cache.read().unwrap_or_else(PoisonError::into_inner);
        cache.get(name).cloned()
    }

    /// The resident copy of tensor `name`: from the cache, or uploaded now (exactly once,
    /// even when many threads ask at the same time).
    pub fn load(&self, name: &str) -> TensorResult<Arc<U::Output>> {
        if let Some(hit) = self.cached(name) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        // Only real tensor names get a gate (the gate map stays bounded by the index).
        self.info(name)?;
        let gate = {
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            Arc::clone(in_flight.entry(name.to_string()).or_default())
        };
        let _held = gate.lock().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have finished this upload while we waited for the gate.
        if let Some(hit) = self.cached(name) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return Ok(hit);
        }
        let result = self.upload_now(name);
        if let Ok(loaded) = &result {
            let mut cache = self.cache.write().unwrap_or_else(PoisonError::into_inner);
            cache.insert(name.to_string(), Arc::clone(loaded));
            // Later callers find the cache without this gate. After a failure the gate stays
            // registered: a retry (by a thread already waiting on it, or a later caller) is
            // then serialised with every other, so a tensor is never uploaded twice.
            let mut in_flight = self
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            in_flight.remove(name);
        }
        result
    }

    fn upload_now(&self, name: &str) -> TensorResult<Arc<U::Output>> {
        let info = self.info(name)?;
        let shape = shape_from_gguf_dims(&info.dims)?;
        let bytes = self.file.tensor_data(info);
        let span = tracing::debug_span!("upload_tensor", tensor = name, ty = %info.ty, bytes = bytes.len());
        let _enter = span.enter();
        let out = self.uploader.upload(name, info.ty, shape, bytes)?;
        self.uploads.fetch_add(1, Ordering::Relaxed);
        self.bytes_uploaded
            .fetch_add(bytes.len() as u64, Ordering::Relaxed);
        tracing::debug!(tensor = name, bytes = bytes.len(), "uploaded");
        Ok(Arc::new(out))
    }

    /// Loads every tensor whose name satisfies `pick`; returns how many were loaded.
    pub fn preload(&self, mut pick: impl FnMut(&str) -> bool) -> TensorResult<usize> {
        let mut n = 0;
        for info in self.file.tensors() {
            if pick(&info.name) {
                self.load(&info.name)?;
                n += 1;
            }
        }
        Ok(n)
    }

    /// Upload counters.
    pub fn stats(&self) -> LoaderStats {
        let cached_tensors = self
            .cache
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len();
        LoaderStats {
            uploads: self.uploads.load(Ordering::Relaxed),
            bytes_uploaded: self.bytes_uploaded.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            cached_tensors,
        }
    }
}
