//! The human-readable report of `inspect`.

use std::fmt::Write;

use rocmforge_gguf::{GgufFile, MetadataValue};

use super::summary::{human_bytes, human_count, parameter_count, totals_per_type};

/// Items of an array shown before "...".
const ARRAY_HEAD: usize = 5;
/// Characters of a string shown before it is cut.
const STRING_HEAD: usize = 120;

/// The type column of a metadata value: `u32`, `array[string; 49152]`.
fn type_column(value: &MetadataValue) -> String {
    match value {
        MetadataValue::Array(a) => format!("array[{}; {}]", a.elem_type, a.len()),
        other => other.value_type().to_string(),
    }
}

/// A value for one line: long strings cut, arrays summarised to their first items.
fn value_column(value: &MetadataValue) -> String {
    match value {
        MetadataValue::String(s) => {
            let count = s.chars().count();
            if count > STRING_HEAD {
                let head: String = s.chars().take(STRING_HEAD).collect();
                format!("{head:?}... ({count} chars)")
            } else {
                format!("{s:?}")
            }
        }
        MetadataValue::Array(a) => {
            let items: Vec<String> = a.values.iter().take(ARRAY_HEAD).map(value_column).collect();
            let more = if a.len() > ARRAY_HEAD { ", ..." } else { "" };
            format!("[{}{more}]", items.join(", "))
        }
        other => other.to_string(),
    }
}

/// The whole text report. Writing into a `String` cannot fail, so `write!` results are ignored.
pub fn report(file: &GgufFile) -> String {
    let mut out = String::new();
    let md = file.metadata();
    let _ = writeln!(out, "file:          {}", file.path().display());
    let _ = writeln!(
        out,
        "file size:     {} bytes ({})",
        file.file_size(),
        human_bytes(file.file_size())
    );
    let _ = writeln!(
        out,
        "GGUF version:  {}   alignment: {}   data offset: {}",
        file.version(),
        file.alignment(),
        file.data_offset()
    );
    let _ = writeln!(
        out,
        "architecture:  {}",
        md.architecture().unwrap_or("(not set)")
    );
    let _ = writeln!(
        out,
        "name:          {}",
        md.opt_str("general.name")
            .ok()
            .flatten()
            .unwrap_or("(not set)")
    );

    let _ = writeln!(out, "\nmetadata ({} keys):", md.len());
    let key_width = md.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    for (key, value) in md.iter() {
        let _ = writeln!(
            out,
            "  {key:<key_width$}  {:<22} {}",
            type_column(value),
            value_column(value)
        );
    }

    let tensors = file.tensors();
    let _ = writeln!(out, "\ntensors ({}):", tensors.len());
    if !tensors.is_empty() {
        let name_width = tensors
            .iter()
            .map(|t| t.name.len())
            .max()
            .unwrap_or(4)
            .max(4);
        let _ = writeln!(
            out,
            "  {:<name_width$}  {:<7} {:<24} {:>12} {:>12}",
            "name", "type", "shape", "bytes", "offset"
        );
        for t in tensors {
            let _ = writeln!(
                out,
                "  {:<name_width$}  {:<7} {:<24} {:>12} {:>12}",
                t.name,
                t.ty.name(),
                t.shape_string(),
                t.size,
                t.offset
            );
        }
    }

    let _ = writeln!(out, "\ntotals per type:");
    let _ = writeln!(
        out,
        "  {:<7} {:>8} {:>14} {:>14}",
        "type", "tensors", "bytes", "params"
    );
    for (ty, totals) in totals_per_type(tensors) {
        let _ = writeln!(
            out,
            "  {:<7} {:>8} {:>14} {:>14}",
            ty.name(),
            totals.tensors,
            totals.bytes,
            totals.params
        );
    }
    let params = parameter_count(tensors);
    let _ = writeln!(out, "\nparameters:    {params} ({})", human_count(params));
    out
}
