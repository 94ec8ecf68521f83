//! The key/value metadata of a GGUF file, kept in file order, with typed getters.

mod getters;
mod value;

use std::collections::HashMap;

pub use value::{MetadataArray, MetadataValue, MetadataValueType};

/// All key/value pairs of a file, in file order, with lookup by key.
///
/// Keys are unique: the parser refuses a file that repeats a key, and [`Metadata::insert`]
/// replaces the value of an existing key in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metadata {
    entries: Vec<(String, MetadataValue)>,
    index: HashMap<String, usize>,
}

impl Metadata {
    /// An empty metadata set.
    pub fn new() -> Metadata {
        Metadata::default()
    }

    /// Sets `key` to `value`; an existing key keeps its position and gets the new value.
    /// Returns the previous value, if any.
    pub fn insert(&mut self, key: &str, value: MetadataValue) -> Option<MetadataValue> {
        match self.index.get(key) {
            Some(&i) => self
                .entries
                .get_mut(i)
                .map(|slot| std::mem::replace(&mut slot.1, value)),
            None => {
                self.index.insert(key.to_string(), self.entries.len());
                self.entries.push((key.to_string(), value));
                None
            }
        }
    }

    /// The value of `key`, if present.
    pub fn get(&self, key: &str) -> Option<&MetadataValue> {
        let &i = self.index.get(key)?;
        self.entries.get(i).map(|(_, v)| v)
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.index.contains_key(key)
    }

    /// All pairs in file order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &MetadataValue)> {
        self.entries.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}
