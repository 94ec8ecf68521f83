//! Checks of the tensor index against the data section: alignment, bounds, overlaps.

use crate::error::{GgufError, GgufResult};
use crate::tensor_info::TensorInfo;

fn malformed(file: &str, offset: u64, what: String) -> GgufError {
    GgufError::Malformed {
        file: file.to_string(),
        offset,
        what,
    }
}

/// Verifies that every tensor starts at a multiple of `alignment` inside the data section,
/// ends inside the file, and shares no byte with another tensor.
///
/// `info_offsets[i]` is the file offset of tensor `i`'s index record, named in errors.
pub(crate) fn check_tensor_layout(
    file: &str,
    tensors: &[TensorInfo],
    info_offsets: &[u64],
    alignment: u64,
    data_offset: u64,
    file_size: u64,
) -> GgufResult<()> {
    let mut ranges: Vec<(u64, u64, usize)> = Vec::with_capacity(tensors.len());
    for (i, t) in tensors.iter().enumerate() {
        let at = info_offsets.get(i).copied().unwrap_or(0);
        if t.offset % alignment != 0 {
            return Err(malformed(
                file,
                at,
                format!(
                    "tensor '{}': data offset {} is not a multiple of the alignment {alignment}",
                    t.name, t.offset
                ),
            ));
        }
        let end = data_offset
            .checked_add(t.offset)
            .and_then(|start| start.checked_add(t.size));
        if !matches!(end, Some(end) if end <= file_size) {
            return Err(malformed(
                file,
                at,
                format!(
                    "tensor '{}': its {} bytes at data offset {} (data section starts at file \
                     offset {data_offset}) lie past the end of the file ({file_size} bytes)",
                    t.name, t.size, t.offset
                ),
            ));
        }
        if t.size > 0 {
            // Cannot overflow: data_offset + offset + size was just computed without overflow.
            ranges.push((t.offset, t.offset + t.size, i));
        }
    }
    ranges.sort_unstable();
    for pair in ranges.windows(2) {
        let [(_, a_end, a), (b_start, _, b)] = pair else {
            continue;
        };
        if a_end > b_start {
            let name = |k: usize| tensors.get(k).map(|t| t.name.as_str()).unwrap_or("?");
            return Err(malformed(
                file,
                info_offsets.get(*b).copied().unwrap_or(0),
                format!(
                    "tensor '{}' (data offset {b_start}) overlaps tensor '{}' (which ends at {a_end})",
                    name(*b),
                    name(*a)
                ),
            ));
        }
    }
    Ok(())
}
