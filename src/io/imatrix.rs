//! llama.cpp's importance matrices (`llama-imatrix`): for each weight, the mean squared
//! activation of each input column over a calibration text, which tells a quantizer
//! which columns' errors matter most.
//!
//! Two formats, as llama.cpp's loader reads them:
//! - GGUF (what current `llama-imatrix` writes): per weight `<name>.in_sum2` (F32, the
//!   sums of squared activations, one row of columns per expert) and `<name>.counts`
//!   (F32, the tokens each row summed); the importance is `in_sum2 / round(counts)`,
//!   1 where a count is 0. Keys `imatrix.datasets`, `imatrix.chunk_count`.
//! - legacy `.dat`: an i32 entry count, then per entry an i32 name length, the name, an
//!   i32 call count, an i32 value count and that many f32 sums; the importance is
//!   `sums / calls` (the sums as they are when calls is 0). Optionally an i32 chunk count
//!   and an i32-length-prefixed dataset name follow.

use std::collections::BTreeMap;

use super::gguf::{read_gguf, GGUF_MAGIC};
use super::{DType, GgufValue, Metadata};
use crate::error::{Error, Result};

/// An importance matrix: per tensor (llama.cpp's GGUF names), one importance per input
/// column (per expert, concatenated, for a mixture of experts).
#[derive(Clone, Debug, PartialEq)]
pub struct ImportanceMatrix {
    pub entries: BTreeMap<String, Vec<f32>>,
    /// The calibration texts it was computed on, where the file names them.
    pub datasets: Vec<String>,
    /// Chunks of calibration text, where the file says.
    pub chunk_count: Option<u32>,
    /// Read from the legacy `.dat` format.
    pub legacy: bool,
}

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed { format: "imatrix", reason: reason.into() }
}

/// Reads an importance matrix file, either format (told by the GGUF magic).
pub fn read_imatrix(bytes: &[u8]) -> Result<ImportanceMatrix> {
    if bytes.starts_with(&GGUF_MAGIC) {
        read_gguf_imatrix(bytes)
    } else {
        read_legacy(bytes)
    }
}

fn f32s(bytes: &[u8]) -> Vec<f32> {
    bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
}

fn read_gguf_imatrix(bytes: &[u8]) -> Result<ImportanceMatrix> {
    let header = read_gguf(bytes, bytes.len() as u64).map_err(|e| malformed(format!("not a readable GGUF: {e}")))?;
    let Metadata::Gguf(metadata) = &header.metadata else { return Err(malformed("not GGUF metadata")) };
    let key = |name: &str| metadata.iter().find(|(k, _)| k == name).map(|(_, v)| v);
    let datasets = match key("imatrix.datasets") {
        Some(GgufValue::Array(a)) => a
            .iter()
            .filter_map(|v| match v {
                GgufValue::String(s) => Some(String::from_utf8_lossy(&s).into_owned()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    let chunk_count = match key("imatrix.chunk_count") {
        Some(GgufValue::U32(n)) => Some(*n),
        _ => None,
    };
    let data = |name: &str| -> Result<Option<Vec<f32>>> {
        let Some(t) = header.tensors.iter().find(|t| t.name == name) else { return Ok(None) };
        if t.dtype != DType::F32 {
            return Err(malformed(format!("{name} is {}, not F32", t.dtype)));
        }
        Ok(Some(f32s(&bytes[t.offset as usize..(t.offset + t.byte_len) as usize])))
    };
    let mut entries = BTreeMap::new();
    for t in &header.tensors {
        let Some(name) = t.name.strip_suffix(".in_sum2") else { continue };
        let sums = data(&t.name)?.unwrap_or_default();
        let counts =
            data(&format!("{name}.counts"))?.ok_or_else(|| malformed(format!("{name} has in_sum2 but no counts")))?;
        if counts.is_empty() || sums.is_empty() || sums.len() % counts.len() != 0 {
            return Err(malformed(format!(
                "{name}: {} sums do not split into {} rows of counts",
                sums.len(),
                counts.len()
            )));
        }
        let columns = sums.len() / counts.len();
        let values = sums
            .chunks(columns)
            .zip(&counts)
            .flat_map(|(row, &count)| {
                let count = count.round();
                row.iter().map(move |&s| if count > 0.0 { s / count } else { 1.0 })
            })
            .collect();
        entries.insert(name.to_string(), values);
    }
    if entries.is_empty() {
        return Err(malformed("no <name>.in_sum2 tensors: not an importance matrix"));
    }
    Ok(ImportanceMatrix { entries, datasets, chunk_count, legacy: false })
}

/// A little-endian reader over the legacy format, every read checked.
struct Bytes<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Bytes<'_> {
    fn take(&mut self, n: usize, what: &str) -> Result<&[u8]> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.buf.len()).ok_or_else(|| {
            malformed(format!("{what} at byte {} runs past the end of the file ({} bytes)", self.pos, self.buf.len()))
        })?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn i32(&mut self, what: &str) -> Result<i32> {
        let b = self.take(4, what)?;
        Ok(i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// A count that must be at least `min`.
    fn count(&mut self, what: &str, min: i32) -> Result<usize> {
        let at = self.pos;
        let n = self.i32(what)?;
        if n < min {
            return Err(malformed(format!("{what} {n} at byte {at} (at least {min})")));
        }
        Ok(n as usize)
    }
}

fn read_legacy(bytes: &[u8]) -> Result<ImportanceMatrix> {
    let mut b = Bytes { buf: bytes, pos: 0 };
    let n_entries = b.count("entry count", 1)?;
    let mut entries = BTreeMap::new();
    for i in 0..n_entries {
        let len = b.count("name length", 0)?;
        let name = String::from_utf8(b.take(len, "name")?.to_vec())
            .map_err(|_| malformed(format!("the name of entry {i} is not UTF-8")))?;
        let calls = b.i32("call count")?;
        let n_values = b.count("value count", 1)?;
        let raw = b.take(n_values.checked_mul(4).ok_or_else(|| malformed("value count overflows"))?, "values")?;
        let values = f32s(raw).into_iter().map(|s| if calls > 0 { s / calls as f32 } else { s }).collect();
        if entries.insert(name.clone(), values).is_some() {
            return Err(malformed(format!("entry \"{name}\" appears twice")));
        }
    }
    // The chunk count and dataset name that may follow.
    let (mut chunk_count, mut datasets) = (None, Vec::new());
    if b.pos < bytes.len() {
        chunk_count = b.i32("chunk count").ok().and_then(|n| u32::try_from(n).ok());
        if let Ok(len) = b.count("dataset name length", 1) {
            if let Ok(name) = b.take(len, "dataset name") {
                datasets.push(String::from_utf8_lossy(name).into_owned());
            }
        }
    }
    Ok(ImportanceMatrix { entries, datasets, chunk_count, legacy: true })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::gguf::{write_gguf, GgufTensorOut};
    use crate::io::GgufArray;

    fn legacy(entries: &[(&str, i32, &[f32])], tail: Option<(i32, &str)>) -> Vec<u8> {
        let mut out = (entries.len() as i32).to_le_bytes().to_vec();
        for &(name, calls, values) in entries {
            out.extend((name.len() as i32).to_le_bytes());
            out.extend(name.as_bytes());
            out.extend(calls.to_le_bytes());
            out.extend((values.len() as i32).to_le_bytes());
            values.iter().for_each(|v| out.extend(v.to_le_bytes()));
        }
        if let Some((chunks, dataset)) = tail {
            out.extend(chunks.to_le_bytes());
            out.extend((dataset.len() as i32).to_le_bytes());
            out.extend(dataset.as_bytes());
        }
        out
    }

    #[test]
    fn legacy_files_divide_by_the_calls() {
        let file = legacy(
            &[("blk.0.attn_q.weight", 4, &[4.0, 8.0, 2.0]), ("output.weight", 0, &[3.0])],
            Some((10, "wiki.txt")),
        );
        let m = read_imatrix(&file).unwrap();
        assert_eq!(m.entries["blk.0.attn_q.weight"], [1.0, 2.0, 0.5]);
        assert_eq!(m.entries["output.weight"], [3.0], "0 calls: the sums as they are");
        assert_eq!((m.chunk_count, m.datasets.as_slice(), m.legacy), (Some(10), &["wiki.txt".to_string()][..], true));
        let bare = read_imatrix(&legacy(&[("w", 1, &[1.0])], None)).unwrap();
        assert_eq!((bare.chunk_count, bare.datasets.len()), (None, 0));
    }

    #[test]
    fn legacy_damage_is_an_error_naming_the_place() {
        let file = legacy(&[("blk.0.attn_q.weight", 4, &[4.0, 8.0])], None);
        for cut in [0, 3, 6, 20, file.len() - 1] {
            let e = read_imatrix(&file[..cut]).unwrap_err().to_string();
            assert!(e.starts_with("malformed imatrix: "), "{cut}: {e}");
        }
        let mut zero = file.clone();
        zero[..4].copy_from_slice(&0i32.to_le_bytes());
        assert!(read_imatrix(&zero).unwrap_err().to_string().contains("entry count 0"));
        let twice = legacy(&[("w", 1, &[1.0]), ("w", 1, &[2.0])], None);
        assert!(read_imatrix(&twice).unwrap_err().to_string().contains("twice"));
    }

    fn gguf(tensors: &[(&str, Vec<u64>, Vec<f32>)]) -> Vec<u8> {
        let metadata = vec![
            ("general.type".to_string(), GgufValue::String(b"imatrix".to_vec())),
            ("imatrix.datasets".to_string(), GgufValue::Array(GgufArray::of_strings(vec![b"calib.txt".to_vec()]))),
            ("imatrix.chunk_count".to_string(), GgufValue::U32(64)),
            ("imatrix.chunk_size".to_string(), GgufValue::U32(512)),
        ];
        let outs: Vec<GgufTensorOut> = tensors
            .iter()
            .map(|(name, ne, v)| GgufTensorOut {
                name: name.to_string(),
                ne: ne.clone(),
                ggml_type: 0,
                byte_len: 4 * v.len() as u64,
            })
            .collect();
        let layout = write_gguf(&metadata, &outs, 32).unwrap();
        let mut file = layout.header.clone();
        file.resize(layout.total as usize, 0);
        for ((_, _, v), offset) in tensors.iter().zip(&layout.offsets) {
            let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
            file[*offset as usize..*offset as usize + bytes.len()].copy_from_slice(&bytes);
        }
        file
    }

    #[test]
    fn gguf_files_divide_each_row_by_its_count() {
        let file = gguf(&[
            ("blk.0.ffn_up.weight.in_sum2", vec![3, 1], vec![6.0, 3.0, 9.0]),
            ("blk.0.ffn_up.weight.counts", vec![1, 1], vec![3.0]),
            // Two experts: one with no tokens gets 1.
            ("blk.1.ffn_up_exps.weight.in_sum2", vec![2, 2], vec![4.0, 2.0, 5.0, 5.0]),
            ("blk.1.ffn_up_exps.weight.counts", vec![1, 2], vec![2.0, 0.0]),
        ]);
        let m = read_imatrix(&file).unwrap();
        assert_eq!(m.entries["blk.0.ffn_up.weight"], [2.0, 1.0, 3.0]);
        assert_eq!(m.entries["blk.1.ffn_up_exps.weight"], [2.0, 1.0, 1.0, 1.0]);
        assert_eq!((m.chunk_count, m.datasets.as_slice(), m.legacy), (Some(64), &["calib.txt".to_string()][..], false));
    }

    #[test]
    fn gguf_files_without_their_pairs_are_errors() {
        let lonely = gguf(&[("w.in_sum2", vec![2, 1], vec![1.0, 2.0])]);
        assert!(read_imatrix(&lonely).unwrap_err().to_string().contains("w has in_sum2 but no counts"));
        let uneven = gguf(&[("w.in_sum2", vec![3, 1], vec![1.0, 2.0, 3.0]), ("w.counts", vec![2, 1], vec![1.0, 1.0])]);
        assert!(read_imatrix(&uneven).unwrap_err().to_string().contains("do not split"));
        let none = gguf(&[("w.weight", vec![2, 1], vec![1.0, 2.0])]);
        assert!(read_imatrix(&none).unwrap_err().to_string().contains("not an importance matrix"));
    }
}
