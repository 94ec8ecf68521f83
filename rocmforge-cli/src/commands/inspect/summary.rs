//! Totals over a file's tensors: per type and overall.

use std::collections::BTreeMap;

use rocmforge_gguf::{GgmlType, TensorInfo};

/// Count, bytes and elements of the tensors of one type.
#[derive(Debug, Default, Clone, Copy)]
pub struct TypeTotals {
    pub tensors: u64,
    pub bytes: u64,
    pub params: u64,
}

/// Totals per type, in type-id order.
pub fn totals_per_type(tensors: &[TensorInfo]) -> BTreeMap<GgmlType, TypeTotals> {
    let mut totals: BTreeMap<GgmlType, TypeTotals> = BTreeMap::new();
    for t in tensors {
        let entry = totals.entry(t.ty).or_default();
        entry.tensors += 1;
        entry.bytes = entry.bytes.saturating_add(t.size);
        entry.params = entry.params.saturating_add(t.n_elements());
    }
    totals
}

/// Total number of elements of all tensors.
pub fn parameter_count(tensors: &[TensorInfo]) -> u64 {
    tensors
        .iter()
        .fold(0u64, |acc, t| acc.saturating_add(t.n_elements()))
}

/// `135.2M`-style rendering of a count.
pub fn human_count(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1}K", n / 1e3)
    } else {
        format!("{n}")
    }
}

/// `93.8 MiB`-style rendering of a byte count.
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", n / (1024.0 * 1024.0 * 1024.0))
    } else if n >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else if n >= 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else {
        format!("{n} B")
    }
}
