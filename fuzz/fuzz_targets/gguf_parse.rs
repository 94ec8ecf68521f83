//! Fuzz target: any bytes given to `GgufFile::from_bytes` must give a file or a `GgufError`,
//! never a panic, and a parsed file must be consistent everywhere we can look.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rocmforge_gguf::{GgufFile, GgufWriter, MAX_WRITER_ALIGNMENT, quants};

/// Tensors up to this many bytes are also dequantized.
const DEQUANT_MAX_BYTES: u64 = 1 << 16;

fn walk_metadata(file: &GgufFile) {
    let md = file.metadata();
    assert_eq!(md.iter().count(), md.len());
    for (key, value) in md.iter() {
        assert!(md.get(key).is_some());
        let _ = value.to_string();
        let _ = value.type_description();
        let _ = md.get_u32(key);
        let _ = md.get_u64(key);
        let _ = md.get_i32(key);
        let _ = md.get_i64(key);
        let _ = md.get_f32(key);
        let _ = md.get_bool(key);
        let _ = md.get_str(key);
        let _ = md.get_array(key);
        let _ = md.get_str_array(key);
        let _ = md.get_f32_array(key);
        let _ = md.get_i32_array(key);
        let _ = md.opt_u32(key);
        let _ = md.opt_f32(key);
        let _ = md.opt_bool(key);
        let _ = md.opt_str(key);
    }
    let _ = file.architecture();
    let _ = md.get_arch_u32("block_count");
    let _ = md.opt_arch_f32("rope.freq_base");
}

fn walk_tensors(file: &GgufFile) {
    for t in file.tensors() {
        let data = file.tensor_data(t);
        assert_eq!(data.len() as u64, t.size, "tensor '{}'", t.name);
        assert_eq!(t.offset % file.alignment(), 0);
        assert!(file.data_offset() + t.offset + t.size <= file.file_size());
        assert_eq!(file.tensor(&t.name), Some(t));
        assert_eq!(file.tensor_bytes(&t.name).ok(), Some(data));
        assert_eq!(t.ty.bytes_for(t.n_elements()), Some(t.size));
        if t.size <= DEQUANT_MAX_BYTES && quants::can_dequantize(t.ty) {
            let values = quants::dequantize_to_vec(t.ty, data);
            if let Ok(values) = values {
                assert_eq!(values.len() as u64, t.n_elements());
            }
        }
    }
}

/// Writing a parsed file back and reading it again gives the same index (for alignments the
/// writer accepts; it refuses to pad to more than `MAX_WRITER_ALIGNMENT`).
fn rewrite(file: &GgufFile) {
    if file.alignment() > MAX_WRITER_ALIGNMENT {
        return;
    }
    let mut writer = GgufWriter::new();
    for (key, value) in file.metadata().iter() {
        writer.add_metadata(key, value.clone());
    }
    for t in file.tensors() {
        writer
            .add_tensor(&t.name, &t.dims, t.ty, file.tensor_data(t).to_vec())
            .expect("a parsed tensor is writable");
    }
    let bytes = writer.to_bytes().expect("a parsed file is writable");
    let again = GgufFile::from_bytes("rewritten.gguf", bytes).expect("a rewritten file parses");
    assert_eq!(again.metadata().len(), file.metadata().len());
    assert_eq!(again.alignment(), file.alignment());
    assert_eq!(again.tensors().len(), file.tensors().len());
    for (a, b) in again.tensors().iter().zip(file.tensors()) {
        assert_eq!((&a.name, &a.dims, a.ty), (&b.name, &b.dims, b.ty));
        assert_eq!(again.tensor_data(a), file.tensor_data(b));
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(file) = GgufFile::from_bytes("fuzz.gguf", data.to_vec()) {
        walk_metadata(&file);
        walk_tensors(&file);
        rewrite(&file);
    }
});
