//! llama.cpp's importance-matrix file (the GGUF format `llama-imatrix` writes and
//! `llama-quantize --imatrix` reads).
//!
//! For each weight matrix `W` (name `blk.N.attn_q.weight`, ...) the file holds two F32 tensors:
//! `W.in_sum2` of shape `[n_cols, n_mat]`, the sum over the tokens seen of each input
//! activation squared (one row per expert for a 3-D expert tensor, else one), and `W.counts` of
//! shape `[1, n_mat]`, the number of tokens summed. Metadata: `general.type = "imatrix"`,
//! `imatrix.datasets` (the text files used), `imatrix.chunk_count`, `imatrix.chunk_size`.
//! Entries are written in name order.
//!
//! The importance of column `i` that llama-quantize hands its quantizers is
//! `in_sum2[i] / count` (counts rounded to integers first), or 1 where a matrix saw no token
//! ([`Imatrix::importance`]). llama.cpp's older binary `.dat` format is not read.

use std::collections::BTreeMap;
use std::path::Path;

use crate::{
    GgmlType, GgufError, GgufFile, GgufResult, GgufWriter, MetadataArray, MetadataValue,
    MetadataValueType,
};

/// Metadata key: the text files the matrix was computed on.
pub const KEY_DATASETS: &str = "imatrix.datasets";
/// Metadata key: chunks of text processed.
pub const KEY_CHUNK_COUNT: &str = "imatrix.chunk_count";
/// Metadata key: tokens per chunk.
pub const KEY_CHUNK_SIZE: &str = "imatrix.chunk_size";

const SUMS_SUFFIX: &str = ".in_sum2";
const COUNTS_SUFFIX: &str = ".counts";

/// The statistics of one weight matrix (or one stack of expert matrices).
#[derive(Debug, Clone, PartialEq)]
pub struct ImatrixEntry {
    /// Σ x² per input column, `n_mat` rows of `sums.len() / n_mat` values.
    pub sums: Vec<f32>,
    /// Tokens summed, one per matrix (`n_mat` values).
    pub counts: Vec<f32>,
}

impl ImatrixEntry {
    /// Columns per matrix.
    pub fn n_cols(&self) -> usize {
        self.sums.len() / self.counts.len().max(1)
    }
}

/// An importance matrix: an entry per weight matrix and the file's metadata.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Imatrix {
    pub entries: BTreeMap<String, ImatrixEntry>,
    pub datasets: Vec<String>,
    pub chunk_count: u32,
    pub chunk_size: u32,
}

fn bad(file: &GgufFile, what: String) -> GgufError {
    GgufError::Malformed {
        file: file.path().display().to_string(),
        offset: 0,
        what,
    }
}

fn f32_values(file: &GgufFile, name: &str) -> GgufResult<Vec<f32>> {
    let info = file.tensor(name).ok_or_else(|| GgufError::MissingTensor {
        name: name.to_string(),
    })?;
    if info.ty != GgmlType::F32 {
        return Err(bad(
            file,
            format!("imatrix tensor {name} is {}, not F32", info.ty),
        ));
    }
    Ok(file
        .tensor_data(info)
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect())
}

impl Imatrix {
    /// Reads the importance matrix file at `path`.
    pub fn open(path: impl AsRef<Path>) -> GgufResult<Imatrix> {
        Imatrix::from_file(&GgufFile::open(path)?)
    }

    /// Reads an importance matrix from an opened GGUF file. As llama-quantize, it requires the
    /// three `imatrix.*` keys and a `.counts` tensor beside every `.in_sum2` one (F32 both).
    pub fn from_file(file: &GgufFile) -> GgufResult<Imatrix> {
        let md = file.metadata();
        for key in [KEY_DATASETS, KEY_CHUNK_COUNT, KEY_CHUNK_SIZE] {
            if md.get(key).is_none() {
                return Err(bad(
                    file,
                    format!("missing imatrix metadata key {key} (not an imatrix file?)"),
                ));
            }
        }
        let datasets = md
            .get_str_array(KEY_DATASETS)?
            .into_iter()
            .map(str::to_string)
            .collect();
        let mut entries = BTreeMap::new();
        for info in file.tensors() {
            // Other tensors are ignored, as llama.cpp does; a .counts alone is an error.
            let Some(base) = info.name.strip_suffix(SUMS_SUFFIX) else {
                let lone_counts = info
                    .name
                    .strip_suffix(COUNTS_SUFFIX)
                    .is_some_and(|base| file.tensor(&format!("{base}{SUMS_SUFFIX}")).is_none());
                if lone_counts {
                    return Err(bad(
                        file,
                        format!("{} has no .in_sum2 beside it", info.name),
                    ));
                }
                continue;
            };
            let counts_name = format!("{base}{COUNTS_SUFFIX}");
            if file.tensor(&counts_name).is_none() {
                return Err(bad(file, format!("{} has no .counts beside it", info.name)));
            }
            let sums = f32_values(file, &info.name)?;
            let counts = f32_values(file, &counts_name)?;
            if counts.is_empty() || sums.is_empty() || sums.len() % counts.len() != 0 {
                return Err(bad(
                    file,
                    format!(
                        "{base}: {} sums do not split into {} matrices",
                        sums.len(),
                        counts.len()
                    ),
                ));
            }
            entries.insert(base.to_string(), ImatrixEntry { sums, counts });
        }
        if entries.is_empty() {
            return Err(bad(file, "no imatrix entries".to_string()));
        }
        Ok(Imatrix {
            entries,
            datasets,
            chunk_count: md.get_u32(KEY_CHUNK_COUNT)?,
            chunk_size: md.get_u32(KEY_CHUNK_SIZE)?,
        })
    }

    /// The per-column importance of every entry, as llama-quantize computes it from the file:
    /// `sum / round(count)` per matrix, 1 for a matrix with no tokens.
    pub fn importance(&self) -> BTreeMap<String, Vec<f32>> {
        self.entries
            .iter()
            .map(|(name, e)| {
                let n = e.n_cols();
                let mut w = Vec::with_capacity(e.sums.len());
                for (sums, &count) in e.sums.chunks_exact(n).zip(&e.counts) {
                    let count = count.round();
                    if count > 0.0 {
                        w.extend(sums.iter().map(|s| s / count));
                    } else {
                        w.extend(std::iter::repeat_n(1.0f32, n));
                    }
                }
                (name.clone(), w)
            })
            .collect()
    }

    /// A GGUF writer holding this matrix in llama.cpp's layout.
    pub fn to_writer(&self) -> GgufResult<GgufWriter> {
        let mut w = GgufWriter::new();
        w.add_metadata("general.type", MetadataValue::String("imatrix".into()));
        let datasets = self
            .datasets
            .iter()
            .map(|d| MetadataValue::String(d.clone()))
            .collect();
        w.add_metadata(
            KEY_DATASETS,
            MetadataValue::Array(MetadataArray::new(MetadataValueType::String, datasets)),
        );
        w.add_metadata(KEY_CHUNK_COUNT, MetadataValue::U32(self.chunk_count));
        w.add_metadata(KEY_CHUNK_SIZE, MetadataValue::U32(self.chunk_size));
        let bytes = |v: &[f32]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        for (name, e) in &self.entries {
            let n_mat = e.counts.len() as u64;
            let n_cols = e.n_cols() as u64;
            w.add_tensor(
                &format!("{name}{SUMS_SUFFIX}"),
                &[n_cols, n_mat],
                GgmlType::F32,
                bytes(&e.sums),
            )?;
            w.add_tensor(
                &format!("{name}{COUNTS_SUFFIX}"),
                &[1, n_mat],
                GgmlType::F32,
                bytes(&e.counts),
            )?;
        }
        Ok(w)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn round_trips_and_divides_by_the_counts() {
        let mut m = Imatrix {
            datasets: vec!["text.txt".into()],
            chunk_count: 2,
            chunk_size: 128,
            ..Imatrix::default()
        };
        m.entries.insert(
            "blk.0.ffn_up.weight".into(),
            ImatrixEntry {
                sums: vec![2.0, 4.0, 6.0, 8.0],
                counts: vec![2.0],
            },
        );
        m.entries.insert(
            "blk.0.ffn_down_exps.weight".into(),
            ImatrixEntry {
                sums: vec![3.0, 6.0, 5.0, 5.0],
                counts: vec![3.0, 0.0],
            },
        );
        let bytes = m.to_writer().unwrap().to_bytes().unwrap();
        let file = GgufFile::from_bytes("m.gguf", bytes).unwrap();
        assert_eq!(
            file.tensor("blk.0.ffn_up.weight.in_sum2").unwrap().dims,
            [4, 1]
        );
        let back = Imatrix::from_file(&file).unwrap();
        assert_eq!(back, m);
        let w = back.importance();
        assert_eq!(w["blk.0.ffn_up.weight"], [1.0, 2.0, 3.0, 4.0]);
        assert_eq!(w["blk.0.ffn_down_exps.weight"], [1.0, 2.0, 1.0, 1.0]);
    }

    #[test]
    fn a_model_file_is_not_an_imatrix() {
        let mut w = GgufWriter::new();
        w.add_tensor("x.weight", &[2], GgmlType::F32, vec![0; 8])
            .unwrap();
        let file = GgufFile::from_bytes("model.gguf", w.to_bytes().unwrap()).unwrap();
        let err = Imatrix::from_file(&file).unwrap_err().to_string();
        assert!(err.contains("imatrix.datasets"), "{err}");
    }
}
