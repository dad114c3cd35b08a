//! safetensors: `u64 LE` header length N, N bytes of JSON, then the data section.
//!
//! The JSON is `{ name: { "dtype", "shape", "data_offsets": [begin, end] }, ...,
//! "__metadata__": { str: str } }`, offsets relative to the data section.
//!
//! The reader is written here rather than taken from the `safetensors` crate because
//! that crate wants the whole file in memory, counts offsets in `usize` (4 GiB on
//! wasm32), keeps tensors in a hash map (losing the file's order) and lets a duplicate
//! JSON key replace the first silently. The tests check our output with that crate.
//!
//! Checks: N within the file and at most 100 MB (the `safetensors` crate's limit), the
//! JSON starts with `{` (as the format requires), is UTF-8 and an object, no duplicate names, known dtypes, begin <= end <= data
//! length, `end - begin == product(shape) * dtype size` (overflow-checked), and no two
//! tensors overlap. Gaps between tensors are allowed.

use std::collections::{BTreeSet, HashSet};
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::Deserialize;

use super::{check_prefix, element_count, offset_order, overlap, DType, Format, Metadata, ModelHeader, TensorInfo};
use crate::error::{Error, Result};

/// The largest header the reader accepts, as the `safetensors` crate does.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

const FORMAT: &str = "safetensors";

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed { format: FORMAT, reason: reason.into() }
}

#[derive(Deserialize)]
struct RawTensor {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: (u64, u64),
}

/// A JSON object read in order, with duplicate keys refused.
struct OrderedMap<V>(Vec<(String, V)>);

impl<'de, V: Deserialize<'de>> Deserialize<'de> for OrderedMap<V> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct V2<V>(std::marker::PhantomData<V>);
        impl<'de, V: Deserialize<'de>> Visitor<'de> for V2<V> {
            type Value = OrderedMap<V>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Self::Value, A::Error> {
                let mut seen = HashSet::new();
                let mut out = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate key \"{key}\"")));
                    }
                    out.push((key, map.next_value()?));
                }
                Ok(OrderedMap(out))
            }
        }
        d.deserialize_map(V2(std::marker::PhantomData))
    }
}

/// The header's top level: tensors and the optional `__metadata__`.
struct RawHeader {
    metadata: Option<Vec<(String, String)>>,
    tensors: Vec<(String, RawTensor)>,
}

impl<'de> Deserialize<'de> for RawHeader {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct HeaderVisitor;
        impl<'de> Visitor<'de> for HeaderVisitor {
            type Value = RawHeader;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object of tensors")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<RawHeader, A::Error> {
                let mut seen = HashSet::new();
                let mut header = RawHeader { metadata: None, tensors: Vec::new() };
                while let Some(key) = map.next_key::<String>()? {
                    if !seen.insert(key.clone()) {
                        return Err(de::Error::custom(format!("duplicate key \"{key}\"")));
                    }
                    if key == "__metadata__" {
                        header.metadata = Some(map.next_value::<OrderedMap<String>>()?.0);
                    } else {
                        let tensor = map
                            .next_value::<RawTensor>()
                            .map_err(|e| de::Error::custom(format!("tensor \"{key}\": {e}")))?;
                        header.tensors.push((key, tensor));
                    }
                }
                Ok(header)
            }
        }
        d.deserialize_map(HeaderVisitor)
    }
}

/// Reads a safetensors header from a prefix of the file and the file's total size.
pub fn read_safetensors(prefix: &[u8], file_size: u64) -> Result<ModelHeader> {
    check_prefix(prefix, file_size)?;
    if file_size < 8 {
        return Err(malformed(format!("a file of {file_size} bytes cannot hold the 8-byte header length")));
    }
    if prefix.len() < 8 {
        return Err(Error::NeedMoreBytes { needed: 8 });
    }
    let n = u64::from_le_bytes(prefix[..8].try_into().expect("8 bytes"));
    if n > MAX_HEADER_LEN {
        return Err(malformed(format!("header length {n} is over the {MAX_HEADER_LEN}-byte limit")));
    }
    let header_end = 8 + n;
    if header_end > file_size {
        return Err(malformed(format!("header length {n} runs past the end of the file ({file_size} bytes)")));
    }
    if (prefix.len() as u64) < header_end {
        return Err(Error::NeedMoreBytes { needed: header_end });
    }
    let json = &prefix[8..header_end as usize];
    if json.first() != Some(&b'{') {
        return Err(malformed("the header does not start with '{' (is this a safetensors file?)"));
    }
    let text = std::str::from_utf8(json)
        .map_err(|e| malformed(format!("header is not UTF-8 (byte {} of the JSON)", e.valid_up_to())))?;
    let raw: RawHeader = serde_json::from_str(text).map_err(|e| malformed(format!("header JSON: {e}")))?;
    let data_len = file_size - header_end;

    let mut tensors = Vec::with_capacity(raw.tensors.len());
    for (name, t) in raw.tensors {
        let bad = |reason: String| malformed(format!("tensor \"{name}\": {reason}"));
        let dtype = DType::from_safetensors(&t.dtype).ok_or_else(|| bad(format!("unknown dtype \"{}\"", t.dtype)))?;
        let (begin, end) = t.data_offsets;
        if begin > end {
            return Err(bad(format!("data_offsets [{begin}, {end}] begin after they end")));
        }
        if end > data_len {
            return Err(bad(format!("data_offsets [{begin}, {end}] run past the data section ({data_len} bytes)")));
        }
        let expected = element_count(&t.shape)
            .and_then(|n| n.checked_mul(dtype.block().1).ok_or(Error::SizeOverflow { what: "tensor bytes" }))
            .map_err(|_| bad(format!("shape {:?} of {} overflows 64 bits", t.shape, dtype)))?;
        if end - begin != expected {
            return Err(bad(format!(
                "data_offsets [{begin}, {end}] hold {} bytes, but shape {:?} of {} needs {expected}",
                end - begin,
                t.shape,
                dtype
            )));
        }
        tensors.push(TensorInfo { name, dtype, shape: t.shape, offset: header_end + begin, byte_len: end - begin });
    }
    // File order; JSON order among equal offsets.
    let order = offset_order(&tensors);
    if let Some((a, b)) = overlap(&tensors, &order) {
        return Err(malformed(format!("tensors \"{a}\" and \"{b}\" overlap")));
    }
    let mut slots: Vec<Option<TensorInfo>> = tensors.into_iter().map(Some).collect();
    let tensors: Vec<TensorInfo> = order.iter().filter_map(|&i| slots[i].take()).collect();
    Ok(ModelHeader {
        format: Format::Safetensors,
        version: None,
        file_size,
        header_len: header_end,
        data_offset: header_end,
        alignment: None,
        metadata: Metadata::Safetensors(raw.metadata.unwrap_or_default()),
        tensors,
    })
}

/// A sharded checkpoint's `*.safetensors.index.json`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardIndex {
    /// `weight_map`: tensor name to shard file name, in file order.
    pub weight_map: Vec<(String, String)>,
    /// The shard file names, sorted (the usual `-00001-of-00003` names sort in order).
    pub files: Vec<String>,
}

/// Parses a shard index (`{"metadata": {...}, "weight_map": {name: file}}`).
pub fn parse_safetensors_index(json: &[u8]) -> Result<ShardIndex> {
    let bad = |reason: String| Error::Malformed { format: "safetensors index", reason };
    let text = std::str::from_utf8(json).map_err(|e| bad(format!("not UTF-8 (byte {})", e.valid_up_to())))?;

    #[derive(Deserialize)]
    struct RawIndex {
        weight_map: Option<OrderedMap<String>>,
    }
    let raw: RawIndex = serde_json::from_str(text).map_err(|e| bad(format!("JSON: {e}")))?;
    let weight_map = raw.weight_map.ok_or_else(|| bad("no \"weight_map\"".into()))?.0;
    let mut files = BTreeSet::new();
    for (_, file) in &weight_map {
        files.insert(file.clone());
    }
    Ok(ShardIndex { weight_map, files: files.into_iter().collect() })
}

/// Checks shard headers against their index: every tensor of the index is in the shard
/// it names, and every tensor of a shard is in the index under that shard.
pub fn check_shards(index: &ShardIndex, shards: &[(&str, &ModelHeader)]) -> Result<()> {
    let bad = |reason: String| Error::Malformed { format: "safetensors index", reason };
    for (file, _) in shards {
        if !index.files.iter().any(|f| f == file) {
            return Err(bad(format!("shard \"{file}\" is not named in the index")));
        }
    }
    let mut listed = HashSet::new();
    for (name, file) in &index.weight_map {
        let (_, header) = shards
            .iter()
            .find(|(f, _)| f == file)
            .ok_or_else(|| bad(format!("tensor \"{name}\" is in shard \"{file}\", which was not given")))?;
        if !header.tensors.iter().any(|t| &t.name == name) {
            return Err(bad(format!("tensor \"{name}\" is not in shard \"{file}\", where the index puts it")));
        }
        listed.insert((name.as_str(), file.as_str()));
    }
    for (file, header) in shards {
        if let Some(t) = header.tensors.iter().find(|t| !listed.contains(&(t.name.as_str(), *file))) {
            return Err(bad(format!("tensor \"{}\" of shard \"{file}\" is not in the index under that shard", t.name)));
        }
    }
    Ok(())
}

/// Writes a safetensors header: `u64 LE` length, then the JSON padded with spaces to a
/// multiple of 8 bytes (as the `safetensors` crate pads it). `tensors` are (name, dtype
/// name, shape, [begin, end]) in the order given; `metadata` comes first when present.
pub fn write_header(metadata: Option<&[(String, String)]>, tensors: &[(&str, &str, &[u64], [u64; 2])]) -> Vec<u8> {
    let mut json = String::from("{");
    let mut first = true;
    let mut comma = |json: &mut String| {
        if !first {
            json.push(',');
        }
        first = false;
    };
    if let Some(metadata) = metadata {
        comma(&mut json);
        json.push_str("\"__metadata__\":{");
        for (i, (k, v)) in metadata.iter().enumerate() {
            if i > 0 {
                json.push(',');
            }
            quote(&mut json, k);
            json.push(':');
            quote(&mut json, v);
        }
        json.push('}');
    }
    for (name, dtype, shape, [begin, end]) in tensors {
        comma(&mut json);
        let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
        quote(&mut json, name);
        json.push_str(":{\"dtype\":");
        quote(&mut json, dtype);
        json.push_str(&format!(",\"shape\":[{}],\"data_offsets\":[{begin},{end}]}}", dims.join(",")));
    }
    json.push('}');
    while json.len() % 8 != 0 {
        json.push(' ');
    }
    let mut out = Vec::with_capacity(8 + json.len());
    out.extend_from_slice(&(json.len() as u64).to_le_bytes());
    out.extend_from_slice(json.as_bytes());
    out
}

/// Appends `s` as a JSON string.
fn quote(json: &mut String, s: &str) {
    json.push('"');
    for c in s.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            '\n' => json.push_str("\\n"),
            '\r' => json.push_str("\\r"),
            '\t' => json.push_str("\\t"),
            c if (c as u32) < 0x20 => json.push_str(&format!("\\u{:04x}", c as u32)),
            c => json.push(c),
        }
    }
    json.push('"');
}
