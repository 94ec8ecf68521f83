//! The `--json` document of `inspect`.
//!
//! Keys: `file`, `file_size`, `version`, `alignment`, `data_offset`, `architecture`, `name`,
//! `metadata` (key → value; arrays of more than [`INLINE_ARRAY_MAX`] items become
//! `{"type", "len", "head"}`), `tensors` (`[{name, type, shape, bytes, offset}]`, offset relative to
//! the data section), `totals_per_type` (type → `{tensors, bytes, params}`), `parameter_count`.

use rocmforge_gguf::{GgufFile, MetadataValue};
use serde_json::{Map, Value, json};

use super::summary::{parameter_count, totals_per_type};

/// Arrays up to this length appear in full.
pub const INLINE_ARRAY_MAX: usize = 16;
/// Items in the `head` of a summarised array.
const ARRAY_HEAD: usize = 8;

fn value_json(value: &MetadataValue) -> Value {
    match value {
        MetadataValue::U8(v) => json!(v),
        MetadataValue::I8(v) => json!(v),
        MetadataValue::U16(v) => json!(v),
        MetadataValue::I16(v) => json!(v),
        MetadataValue::U32(v) => json!(v),
        MetadataValue::I32(v) => json!(v),
        MetadataValue::U64(v) => json!(v),
        MetadataValue::I64(v) => json!(v),
        // NaN and infinities have no JSON form; serde_json writes them as null.
        MetadataValue::F32(v) => json!(f32_as_f64(*v)),
        MetadataValue::F64(v) => json!(v),
        MetadataValue::Bool(v) => json!(v),
        MetadataValue::String(s) => json!(s),
        MetadataValue::Array(a) if a.len() <= INLINE_ARRAY_MAX => {
            Value::Array(a.values.iter().map(value_json).collect())
        }
        MetadataValue::Array(a) => json!({
            "type": a.elem_type.name(),
            "len": a.len(),
            "head": a.values.iter().take(ARRAY_HEAD).map(value_json).collect::<Vec<_>>(),
        }),
    }
}

/// The f64 whose shortest decimal form is the f32's (1e-5f32 → 0.00001, not 9.99999974e-6).
fn f32_as_f64(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

/// The whole JSON document.
pub fn document(file: &GgufFile) -> Value {
    let md = file.metadata();
    let metadata: Map<String, Value> = md
        .iter()
        .map(|(k, v)| (k.to_string(), value_json(v)))
        .collect();
    let tensors: Vec<Value> = file
        .tensors()
        .iter()
        .map(|t| {
            json!({
                "name": t.name,
                "type": t.ty.name(),
                "shape": t.dims,
                "bytes": t.size,
                "offset": t.offset,
            })
        })
        .collect();
    let totals: Map<String, Value> = totals_per_type(file.tensors())
        .into_iter()
        .map(|(ty, t)| {
            (
                ty.name().to_string(),
                json!({"tensors": t.tensors, "bytes": t.bytes, "params": t.params}),
            )
        })
        .collect();
    json!({
        "file": file.path().display().to_string(),
        "file_size": file.file_size(),
        "version": file.version(),
        "alignment": file.alignment(),
        "data_offset": file.data_offset(),
        "architecture": md.architecture().ok(),
        "name": md.opt_str("general.name").ok().flatten(),
        "metadata": metadata,
        "tensors": tensors,
        "totals_per_type": totals,
        "parameter_count": parameter_count(file.tensors()),
    })
}
