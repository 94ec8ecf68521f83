//! Typed access to metadata values, with errors naming the key and the expected and found type.

use super::{Metadata, MetadataValue};
use crate::error::{GgufError, GgufResult};

fn wrong_type(key: &str, expected: &str, found: &MetadataValue) -> GgufError {
    GgufError::WrongType {
        key: key.to_string(),
        expected: expected.to_string(),
        found: found.type_description(),
    }
}

/// Converts an integer value of any width to `T`, or explains why not.
fn integer_to<T: TryFrom<i128>>(key: &str, expected: &str, value: &MetadataValue) -> GgufResult<T> {
    let wide = value
        .as_integer()
        .ok_or_else(|| wrong_type(key, expected, value))?;
    T::try_from(wide).map_err(|_| GgufError::ValueOutOfRange {
        key: key.to_string(),
        value: wide.to_string(),
        expected: expected.to_string(),
    })
}

fn float_of(key: &str, value: &MetadataValue) -> GgufResult<f32> {
    match *value {
        MetadataValue::F32(v) => Ok(v),
        // Narrowing an f64 setting (a norm epsilon, a rope base) to f32 is the intended use.
        MetadataValue::F64(v) => Ok(v as f32),
        _ => Err(wrong_type(key, "f32", value)),
    }
}

impl Metadata {
    fn require(&self, key: &str) -> GgufResult<&MetadataValue> {
        self.get(key).ok_or_else(|| GgufError::MissingKey {
            key: key.to_string(),
        })
    }

    /// An integer key as `u32` (any integer type whose value fits).
    pub fn get_u32(&self, key: &str) -> GgufResult<u32> {
        integer_to(key, "u32", self.require(key)?)
    }

    /// An integer key as `u64` (any integer type whose value fits).
    pub fn get_u64(&self, key: &str) -> GgufResult<u64> {
        integer_to(key, "u64", self.require(key)?)
    }

    /// An integer key as `i32` (any integer type whose value fits).
    pub fn get_i32(&self, key: &str) -> GgufResult<i32> {
        integer_to(key, "i32", self.require(key)?)
    }

    /// An integer key as `i64` (any integer type whose value fits).
    pub fn get_i64(&self, key: &str) -> GgufResult<i64> {
        integer_to(key, "i64", self.require(key)?)
    }

    /// A float key (`f32`, or `f64` narrowed to `f32`).
    pub fn get_f32(&self, key: &str) -> GgufResult<f32> {
        float_of(key, self.require(key)?)
    }

    /// A boolean key.
    pub fn get_bool(&self, key: &str) -> GgufResult<bool> {
        match self.require(key)? {
            MetadataValue::Bool(b) => Ok(*b),
            other => Err(wrong_type(key, "bool", other)),
        }
    }

    /// A string key.
    pub fn get_str(&self, key: &str) -> GgufResult<&str> {
        match self.require(key)? {
            MetadataValue::String(s) => Ok(s),
            other => Err(wrong_type(key, "string", other)),
        }
    }

    /// An array key's elements.
    pub fn get_array(&self, key: &str) -> GgufResult<&[MetadataValue]> {
        match self.require(key)? {
            MetadataValue::Array(a) => Ok(&a.values),
            other => Err(wrong_type(key, "array", other)),
        }
    }

    /// An array of strings.
    pub fn get_str_array(&self, key: &str) -> GgufResult<Vec<&str>> {
        let values = self.get_array_of(key, "array of string")?;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.as_str()
                    .ok_or_else(|| wrong_type(&format!("{key}[{i}]"), "string", v))
            })
            .collect()
    }

    /// An array of floats (`f32` or `f64` elements).
    pub fn get_f32_array(&self, key: &str) -> GgufResult<Vec<f32>> {
        let values = self.get_array_of(key, "array of f32")?;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| float_of(&format!("{key}[{i}]"), v))
            .collect()
    }

    /// An array of integers that each fit in `i32`.
    pub fn get_i32_array(&self, key: &str) -> GgufResult<Vec<i32>> {
        let values = self.get_array_of(key, "array of i32")?;
        values
            .iter()
            .enumerate()
            .map(|(i, v)| integer_to(&format!("{key}[{i}]"), "i32", v))
            .collect()
    }

    fn get_array_of(&self, key: &str, expected: &str) -> GgufResult<&[MetadataValue]> {
        match self.require(key)? {
            MetadataValue::Array(a) => Ok(&a.values),
            other => Err(wrong_type(key, expected, other)),
        }
    }

    /// Like [`Metadata::get_u32`], but `Ok(None)` when the key is absent.
    pub fn opt_u32(&self, key: &str) -> GgufResult<Option<u32>> {
        self.optional(key, Metadata::get_u32)
    }

    /// Like [`Metadata::get_u64`], but `Ok(None)` when the key is absent.
    pub fn opt_u64(&self, key: &str) -> GgufResult<Option<u64>> {
        self.optional(key, Metadata::get_u64)
    }

    /// Like [`Metadata::get_f32`], but `Ok(None)` when the key is absent.
    pub fn opt_f32(&self, key: &str) -> GgufResult<Option<f32>> {
        self.optional(key, Metadata::get_f32)
    }

    /// Like [`Metadata::get_bool`], but `Ok(None)` when the key is absent.
    pub fn opt_bool(&self, key: &str) -> GgufResult<Option<bool>> {
        self.optional(key, Metadata::get_bool)
    }

    /// Like [`Metadata::get_str`], but `Ok(None)` when the key is absent.
    pub fn opt_str(&self, key: &str) -> GgufResult<Option<&str>> {
        if self.contains_key(key) {
            self.get_str(key).map(Some)
        } else {
            Ok(None)
        }
    }

    fn optional<T>(
        &self,
        key: &str,
        get: impl Fn(&Metadata, &str) -> GgufResult<T>,
    ) -> GgufResult<Option<T>> {
        if self.contains_key(key) {
            get(self, key).map(Some)
        } else {
            Ok(None)
        }
    }

    /// `general.architecture` (for example `"llama"`).
    pub fn architecture(&self) -> GgufResult<&str> {
        self.get_str("general.architecture")
    }

    /// The architecture-scoped key `"{architecture}.{suffix}"`, e.g. `arch_key("block_count")`
    /// → `"llama.block_count"`.
    pub fn arch_key(&self, suffix: &str) -> GgufResult<String> {
        Ok(format!("{}.{suffix}", self.architecture()?))
    }

    /// `get_u32` of `"{architecture}.{suffix}"`.
    pub fn get_arch_u32(&self, suffix: &str) -> GgufResult<u32> {
        self.get_u32(&self.arch_key(suffix)?)
    }

    /// `opt_u32` of `"{architecture}.{suffix}"`.
    pub fn opt_arch_u32(&self, suffix: &str) -> GgufResult<Option<u32>> {
        self.opt_u32(&self.arch_key(suffix)?)
    }

    /// `get_f32` of `"{architecture}.{suffix}"`.
    pub fn get_arch_f32(&self, suffix: &str) -> GgufResult<f32> {
        self.get_f32(&self.arch_key(suffix)?)
    }

    /// `opt_f32` of `"{architecture}.{suffix}"`.
    pub fn opt_arch_f32(&self, suffix: &str) -> GgufResult<Option<f32>> {
        self.opt_f32(&self.arch_key(suffix)?)
    }
}
