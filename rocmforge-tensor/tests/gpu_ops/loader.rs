//! GgufLoader with real uploads: byte-for-byte weights, one upload under 16 threads, counters.

use std::sync::{Arc, Barrier};

use rocmforge_gguf::{GgmlType, GgufFile, GgufWriter, quants};
use rocmforge_tensor::{GgufLoader, LazyTensor};

use crate::support::{Ctx, e};

fn fixture(ctx: &Ctx) -> Result<Arc<GgufFile>, String> {
    let mut w = GgufWriter::new();
    let src = ctx.randn(3 * 512, 1.0);
    let q = quants::quantize(GgmlType::Q4_K, &src).map_err(e)?;
    w.add_tensor("blk.0.ffn_down.weight", &[512, 3], GgmlType::Q4_K, q)
        .map_err(e)?;
    let f: Vec<u8> = ctx
        .randn(15, 1.0)
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    w.add_tensor("output_norm.weight", &[5, 3], GgmlType::F32, f)
        .map_err(e)?;
    let bytes = w.to_bytes().map_err(e)?;
    Ok(Arc::new(
        GgufFile::from_bytes("gpu-fixture.gguf", bytes).map_err(e)?,
    ))
}

pub fn sixteen_threads_one_upload(ctx: &Ctx) -> Result<(), String> {
    let dev = ctx.gpu.device().ok_or("no GPU device")?.clone();
    let file = fixture(ctx)?;
    let loader = GgufLoader::new(Arc::clone(&file), Some(dev));
    let name = "blk.0.ffn_down.weight";
    let barrier = Barrier::new(16);
    let loaded: Vec<_> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..16)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    loader.load_tensor_to_gpu(name)
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join()).collect()
    });
    let mut arcs = Vec::new();
    for r in loaded {
        arcs.push(r.map_err(|_| "thread panicked".to_string())?.map_err(e)?);
    }
    let stats = loader.stats();
    if stats.uploads != 1 || stats.cache_hits != 15 {
        return Err(format!(
            "16 threads: expected 1 upload and 15 hits, got {stats:?}"
        ));
    }
    if !arcs.iter().all(|a| Arc::ptr_eq(a, &arcs[0])) {
        return Err("threads got different Arcs".to_string());
    }
    let t = &arcs[0];
    let file_bytes = file.tensor_bytes(name).map_err(e)?;
    if t.to_host_bytes().map_err(e)? != file_bytes || t.size_bytes() != file_bytes.len() {
        return Err(
            "device bytes differ from the file's (weights must stay quantized)".to_string(),
        );
    }
    if stats.bytes_uploaded != file_bytes.len() as u64 || t.shape() != [3, 512] {
        return Err(format!("counters {stats:?} / shape {:?}", t.shape()));
    }
    let want = quants::dequantize_to_vec(GgmlType::Q4_K, file_bytes).map_err(e)?;
    if t.to_f32_vec().map_err(e)? != want {
        return Err("to_f32_vec of a Q4_K tensor differs from the CPU dequantization".to_string());
    }
    // Lazy → loaded: the Unloaded handle resolves to the cached Arc; no second upload.
    let lazy = loader.lazy_tensor(name).map_err(e)?;
    let again = loader.get_or_load_tensor(&lazy).map_err(e)?;
    let gpu = loader.to_gpu(&lazy).map_err(e)?;
    let same = Arc::ptr_eq(&again, t)
        && matches!(&gpu, LazyTensor::Gpu { tensor, .. } if Arc::ptr_eq(tensor, t));
    if !same || loader.stats().uploads != 1 {
        return Err(format!("second request re-uploaded: {:?}", loader.stats()));
    }
    let norm = loader.load_tensor_to_gpu("output_norm.weight").map_err(e)?;
    if norm.to_f32_vec().map_err(e)?
        != quants::dequantize_to_vec(
            GgmlType::F32,
            file.tensor_bytes("output_norm.weight").map_err(e)?,
        )
        .map_err(e)?
    {
        return Err("F32 weight round trip differs".to_string());
    }
    if loader.stats().uploads != 2 {
        return Err(format!("expected 2 uploads, got {:?}", loader.stats()));
    }
    Ok(())
}
