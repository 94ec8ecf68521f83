//! Parsing of a GGUF file's header, metadata and tensor index (everything before the data).

use std::collections::HashSet;

use crate::error::{GgufError, GgufResult};
use crate::metadata::{Metadata, MetadataArray, MetadataValue, MetadataValueType};
use crate::reader::ByteReader;
use crate::tensor_info::TensorInfo;
use crate::types::GgmlType;

/// The four magic bytes every GGUF file starts with.
pub(crate) const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Alignment of the data section and of every tensor when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u64 = 32;
/// Most dimensions a tensor may have (ggml's `GGML_MAX_DIMS`).
pub const MAX_DIMS: u32 = 4;
/// Deepest nesting of arrays inside arrays the parser accepts.
const MAX_ARRAY_DEPTH: u32 = 32;
/// Fewest bytes one metadata pair takes: key length (8), empty key, value type (4), 1-byte value.
const MIN_KV_BYTES: u64 = 8 + 4 + 1;
/// Fewest bytes one tensor info takes: name length (8), n_dims (4), type (4), offset (8).
const MIN_TENSOR_INFO_BYTES: u64 = 8 + 4 + 4 + 8;

/// Everything before the data section, parsed and checked on its own terms.
#[derive(Debug)]
pub(crate) struct ParsedHeader {
    pub version: u32,
    pub metadata: Metadata,
    pub tensors: Vec<TensorInfo>,
    /// File offset of each tensor's info record (for error messages).
    pub tensor_info_offsets: Vec<u64>,
    pub alignment: u64,
    pub data_offset: u64,
}

pub(crate) fn parse_header(file: &str, bytes: &[u8]) -> GgufResult<ParsedHeader> {
    let mut r = ByteReader::new(file, bytes);
    let version = read_magic_and_version(&mut r)?;
    let tensor_count = r.count("tensor count", MIN_TENSOR_INFO_BYTES)?;
    let kv_count = r.count("metadata key/value count", MIN_KV_BYTES)?;

    let mut metadata = Metadata::new();
    let mut alignment_at = None;
    for i in 0..kv_count {
        let at = r.pos();
        let key = r.string(&format!("metadata key #{i}"))?;
        let ty = read_value_type(&mut r, &format!("value type of metadata key '{key}'"))?;
        let value = read_value(&mut r, ty, &key, 0)?;
        if key == "general.alignment" {
            alignment_at = Some(at);
        }
        if metadata.insert(&key, value).is_some() {
            return Err(r.error_at(at, format!("metadata key '{key}' appears twice")));
        }
    }
    let alignment = match alignment_at {
        Some(at) => read_alignment(&r, &metadata, at)?,
        None => DEFAULT_ALIGNMENT,
    };

    let mut tensors = Vec::with_capacity(tensor_count);
    let mut tensor_info_offsets = Vec::with_capacity(tensor_count);
    let mut names = HashSet::with_capacity(tensor_count);
    for i in 0..tensor_count {
        let at = r.pos();
        let info = read_tensor_info(&mut r, file, i)?;
        if !names.insert(info.name.clone()) {
            return Err(r.error_at(at, format!("tensor name '{}' appears twice", info.name)));
        }
        tensors.push(info);
        tensor_info_offsets.push(at);
    }

    let end_of_index = r.pos();
    let data_offset = end_of_index
        .checked_next_multiple_of(alignment)
        .ok_or_else(|| {
            r.error_at(
                end_of_index,
                format!("data section offset overflows with alignment {alignment}"),
            )
        })?;
    Ok(ParsedHeader {
        version,
        metadata,
        tensors,
        tensor_info_offsets,
        alignment,
        data_offset,
    })
}

fn read_magic_and_version(r: &mut ByteReader<'_>) -> GgufResult<u32> {
    let magic = r.take(4, "magic")?;
    if magic == b"FUGG" {
        return Err(r.error_at(0, "big-endian GGUF is not supported (magic reads 'FUGG')"));
    }
    if magic != GGUF_MAGIC {
        return Err(r.error_at(
            0,
            format!(
                "bad magic {magic:02x?}: not a GGUF file (expected \"GGUF\" = [47, 47, 55, 46])"
            ),
        ));
    }
    let version = r.u32("version")?;
    let unsupported = |what: String| GgufError::UnsupportedVersion {
        file: r.file().to_string(),
        offset: 4,
        what,
    };
    match version {
        2 | 3 => Ok(version),
        1 => Err(unsupported(
            "GGUF version 1 is not supported (only versions 2 and 3)".to_string(),
        )),
        v if v != 0 && v & 0xFFFF == 0 => Err(unsupported(format!(
            "big-endian GGUF is not supported (version field reads {v:#010x}, \
             which is version {} byte-swapped)",
            v.swap_bytes()
        ))),
        v => Err(unsupported(format!(
            "GGUF version {v} is not supported (only versions 2 and 3)"
        ))),
    }
}

fn read_value_type(r: &mut ByteReader<'_>, what: &str) -> GgufResult<MetadataValueType> {
    let at = r.pos();
    let id = r.u32(what)?;
    MetadataValueType::from_id(id)
        .ok_or_else(|| r.error_at(at, format!("{what}: unknown metadata value type id {id}")))
}

fn read_value(
    r: &mut ByteReader<'_>,
    ty: MetadataValueType,
    key: &str,
    depth: u32,
) -> GgufResult<MetadataValue> {
    let what = format!("value of metadata key '{key}'");
    Ok(match ty {
        MetadataValueType::U8 => MetadataValue::U8(r.u8(&what)?),
        MetadataValueType::I8 => MetadataValue::I8(r.i8(&what)?),
        MetadataValueType::U16 => MetadataValue::U16(r.u16(&what)?),
        MetadataValueType::I16 => MetadataValue::I16(r.i16(&what)?),
        MetadataValueType::U32 => MetadataValue::U32(r.u32(&what)?),
        MetadataValueType::I32 => MetadataValue::I32(r.i32(&what)?),
        MetadataValueType::F32 => MetadataValue::F32(r.f32(&what)?),
        MetadataValueType::Bool => MetadataValue::Bool(r.bool(&what)?),
        MetadataValueType::String => MetadataValue::String(r.string(&what)?),
        MetadataValueType::U64 => MetadataValue::U64(r.u64(&what)?),
        MetadataValueType::I64 => MetadataValue::I64(r.i64(&what)?),
        MetadataValueType::F64 => MetadataValue::F64(r.f64(&what)?),
        MetadataValueType::Array => {
            let at = r.pos();
            if depth >= MAX_ARRAY_DEPTH {
                return Err(r.error_at(
                    at,
                    format!("metadata key '{key}': arrays nested deeper than {MAX_ARRAY_DEPTH}"),
                ));
            }
            let elem_type = read_value_type(r, &format!("element type of array '{key}'"))?;
            let len = r.count(
                &format!("length of array '{key}'"),
                elem_type.min_encoded_size(),
            )?;
            let mut values = Vec::with_capacity(len);
            for _ in 0..len {
                values.push(read_value(r, elem_type, key, depth + 1)?);
            }
            MetadataValue::Array(MetadataArray { elem_type, values })
        }
    })
}

fn read_alignment(r: &ByteReader<'_>, metadata: &Metadata, at: u64) -> GgufResult<u64> {
    let value = metadata.get("general.alignment");
    let alignment = value.and_then(MetadataValue::as_integer);
    match alignment {
        Some(a) if a > 0 && a <= i128::from(u64::MAX) && (a as u64).is_power_of_two() => {
            Ok(a as u64)
        }
        Some(a) => Err(r.error_at(
            at,
            format!("general.alignment is {a}, which is not a nonzero power of two"),
        )),
        None => Err(r.error_at(
            at,
            format!(
                "general.alignment must be an integer, found {}",
                value
                    .map(MetadataValue::type_description)
                    .unwrap_or_default()
            ),
        )),
    }
}

fn read_tensor_info(r: &mut ByteReader<'_>, file: &str, index: usize) -> GgufResult<TensorInfo> {
    let name = r.string(&format!("name of tensor #{index}"))?;
    let dims_at = r.pos();
    let n_dims = r.u32(&format!("dimension count of tensor '{name}'"))?;
    if n_dims > MAX_DIMS {
        return Err(r.error_at(
            dims_at,
            format!("tensor '{name}' has {n_dims} dimensions; at most {MAX_DIMS} are allowed"),
        ));
    }
    let mut dims = Vec::with_capacity(n_dims as usize);
    let mut n_elements: u64 = 1;
    for d in 0..n_dims {
        let at = r.pos();
        let dim = r.u64(&format!("dimension {d} of tensor '{name}'"))?;
        n_elements = n_elements
            .checked_mul(dim)
            .filter(|n| *n <= i64::MAX as u64)
            .ok_or_else(|| {
                r.error_at(
                    at,
                    format!("tensor '{name}': the product of its dimensions overflows (dimension {d} is {dim})"),
                )
            })?;
        dims.push(dim);
    }
    let type_at = r.pos();
    let type_id = r.u32(&format!("type of tensor '{name}'"))?;
    let ty = GgmlType::from_id(type_id).ok_or_else(|| GgufError::UnknownTensorType {
        file: file.to_string(),
        offset: type_at,
        tensor: name.clone(),
        type_id,
    })?;
    let offset = r.u64(&format!("data offset of tensor '{name}'"))?;
    let block = ty.block_size() as u64;
    if let Some(&ne0) = dims.first()
        && ne0 % block != 0
    {
        return Err(r.error_at(
            dims_at,
            format!(
                "tensor '{name}': row length {ne0} is not a multiple of the {ty} block size {block}"
            ),
        ));
    }
    let size = ty.bytes_for(n_elements).ok_or_else(|| {
        r.error_at(
            dims_at,
            format!(
                "tensor '{name}': {n_elements} elements is not a multiple of the {ty} block size {}",
                ty.block_size()
            ),
        )
    })?;
    Ok(TensorInfo {
        name,
        dims,
        ty,
        offset,
        size,
    })
}
