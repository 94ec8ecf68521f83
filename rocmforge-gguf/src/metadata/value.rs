//! Metadata values as GGUF stores them: thirteen scalar and container types.

use std::fmt;

/// The type tag of a metadata value (GGUF's `gguf_metadata_value_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u32)]
pub enum MetadataValueType {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
}

impl MetadataValueType {
    /// Every value type, in id order.
    pub const ALL: [MetadataValueType; 13] = [
        MetadataValueType::U8,
        MetadataValueType::I8,
        MetadataValueType::U16,
        MetadataValueType::I16,
        MetadataValueType::U32,
        MetadataValueType::I32,
        MetadataValueType::F32,
        MetadataValueType::Bool,
        MetadataValueType::String,
        MetadataValueType::Array,
        MetadataValueType::U64,
        MetadataValueType::I64,
        MetadataValueType::F64,
    ];

    /// The type with GGUF id `id`, or `None` for an unknown id.
    pub fn from_id(id: u32) -> Option<MetadataValueType> {
        MetadataValueType::ALL
            .get(usize::try_from(id).ok()?)
            .copied()
    }

    /// GGUF's numeric id of this type.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The type's name as used in error messages and `inspect` output (`"u32"`, `"string"`, ...).
    pub fn name(self) -> &'static str {
        match self {
            MetadataValueType::U8 => "u8",
            MetadataValueType::I8 => "i8",
            MetadataValueType::U16 => "u16",
            MetadataValueType::I16 => "i16",
            MetadataValueType::U32 => "u32",
            MetadataValueType::I32 => "i32",
            MetadataValueType::F32 => "f32",
            MetadataValueType::Bool => "bool",
            MetadataValueType::String => "string",
            MetadataValueType::Array => "array",
            MetadataValueType::U64 => "u64",
            MetadataValueType::I64 => "i64",
            MetadataValueType::F64 => "f64",
        }
    }

    /// The fewest bytes one value of this type takes in a file (a string is at least its
    /// 8-byte length, an array at least its 4-byte element type and 8-byte length).
    pub fn min_encoded_size(self) -> u64 {
        match self {
            MetadataValueType::U8 | MetadataValueType::I8 | MetadataValueType::Bool => 1,
            MetadataValueType::U16 | MetadataValueType::I16 => 2,
            MetadataValueType::U32 | MetadataValueType::I32 | MetadataValueType::F32 => 4,
            MetadataValueType::U64
            | MetadataValueType::I64
            | MetadataValueType::F64
            | MetadataValueType::String => 8,
            MetadataValueType::Array => 12,
        }
    }
}

impl fmt::Display for MetadataValueType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An array value: every element has the type `elem_type` (arrays may nest).
#[derive(Debug, Clone, PartialEq)]
pub struct MetadataArray {
    pub elem_type: MetadataValueType,
    pub values: Vec<MetadataValue>,
}

impl MetadataArray {
    /// An array of `elem_type` holding `values` (not checked here; the writer checks it).
    pub fn new(elem_type: MetadataValueType, values: Vec<MetadataValue>) -> MetadataArray {
        MetadataArray { elem_type, values }
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// One metadata value.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(String),
    Array(MetadataArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

impl MetadataValue {
    /// The value's type tag.
    pub fn value_type(&self) -> MetadataValueType {
        match self {
            MetadataValue::U8(_) => MetadataValueType::U8,
            MetadataValue::I8(_) => MetadataValueType::I8,
            MetadataValue::U16(_) => MetadataValueType::U16,
            MetadataValue::I16(_) => MetadataValueType::I16,
            MetadataValue::U32(_) => MetadataValueType::U32,
            MetadataValue::I32(_) => MetadataValueType::I32,
            MetadataValue::F32(_) => MetadataValueType::F32,
            MetadataValue::Bool(_) => MetadataValueType::Bool,
            MetadataValue::String(_) => MetadataValueType::String,
            MetadataValue::Array(_) => MetadataValueType::Array,
            MetadataValue::U64(_) => MetadataValueType::U64,
            MetadataValue::I64(_) => MetadataValueType::I64,
            MetadataValue::F64(_) => MetadataValueType::F64,
        }
    }

    /// A description of the type for messages: `"u32"`, or `"array of string"` for arrays.
    pub fn type_description(&self) -> String {
        match self {
            MetadataValue::Array(a) => format!("array of {}", a.elem_type),
            other => other.value_type().name().to_string(),
        }
    }

    /// The value as an `i128` when it is an integer of any width, else `None`.
    pub fn as_integer(&self) -> Option<i128> {
        match *self {
            MetadataValue::U8(v) => Some(v.into()),
            MetadataValue::I8(v) => Some(v.into()),
            MetadataValue::U16(v) => Some(v.into()),
            MetadataValue::I16(v) => Some(v.into()),
            MetadataValue::U32(v) => Some(v.into()),
            MetadataValue::I32(v) => Some(v.into()),
            MetadataValue::U64(v) => Some(v.into()),
            MetadataValue::I64(v) => Some(v.into()),
            _ => None,
        }
    }

    /// The value as an `f64` when it is `F32` or `F64`, else `None`.
    pub fn as_float(&self) -> Option<f64> {
        match *self {
            MetadataValue::F32(v) => Some(v.into()),
            MetadataValue::F64(v) => Some(v),
            _ => None,
        }
    }

    /// The string when the value is a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            MetadataValue::String(s) => Some(s),
            _ => None,
        }
    }

    /// The array when the value is an array.
    pub fn as_array(&self) -> Option<&MetadataArray> {
        match self {
            MetadataValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl fmt::Display for MetadataValue {
    /// Scalars print as themselves, strings in debug quotes, arrays in full as `[a, b, ...]`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetadataValue::U8(v) => write!(f, "{v}"),
            MetadataValue::I8(v) => write!(f, "{v}"),
            MetadataValue::U16(v) => write!(f, "{v}"),
            MetadataValue::I16(v) => write!(f, "{v}"),
            MetadataValue::U32(v) => write!(f, "{v}"),
            MetadataValue::I32(v) => write!(f, "{v}"),
            MetadataValue::F32(v) => write!(f, "{v}"),
            MetadataValue::Bool(v) => write!(f, "{v}"),
            MetadataValue::String(s) => write!(f, "{s:?}"),
            MetadataValue::U64(v) => write!(f, "{v}"),
            MetadataValue::I64(v) => write!(f, "{v}"),
            MetadataValue::F64(v) => write!(f, "{v}"),
            MetadataValue::Array(a) => {
                f.write_str("[")?;
                for (i, v) in a.values.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}
