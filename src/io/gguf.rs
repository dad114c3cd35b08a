//! GGUF v2/v3, read and written by hand (little-endian only).
//!
//! Layout: magic `GGUF`, `u32` version, `u64` tensor count, `u64` key-value count, the
//! key-value pairs (`string` key, `u32` value type, value), the tensor infos (`string`
//! name, `u32` n_dims, `u64` ne\[n_dims\], `u32` ggml type, `u64` offset relative to the
//! data section), padding to `general.alignment` (default 32), then the data section.
//! A string is a `u64` length and that many bytes.
//!
//! Every count and length is checked against the bytes left in the file before anything
//! is allocated from it, and against the prefix (asking for more bytes when short).

use std::collections::HashSet;

use super::{check_prefix, need_bytes, offset_order, overlap, DType, Format, Metadata, ModelHeader, TensorInfo};
use crate::error::{Error, Result};

/// The four bytes every GGUF file starts with.
pub const GGUF_MAGIC: [u8; 4] = *b"GGUF";
/// Data alignment when `general.alignment` is absent.
pub const DEFAULT_ALIGNMENT: u32 = 32;
/// ggml's GGML_MAX_DIMS.
pub const MAX_DIMS: u32 = 4;
/// The largest header (everything before the data section) the reader accepts, so that
/// a bogus length cannot make the caller read gigabytes before it is refused.
pub const MAX_HEADER_LEN: u64 = 1 << 30;
/// How deep arrays of arrays may nest.
pub const MAX_ARRAY_DEPTH: u32 = 16;
/// The largest alignment the writer pads to (16 MiB). Any power of two reads, but a
/// file may end before its padding (llama.cpp reads one without tensor data), so
/// `general.alignment = 2^31` fits in a file of a few bytes, and converting it would
/// otherwise make a header of 2 GiB of padding.
pub const MAX_WRITE_ALIGNMENT: u32 = 1 << 24;

const FORMAT: &str = "GGUF";

fn malformed(reason: impl Into<String>) -> Error {
    Error::Malformed { format: FORMAT, reason: reason.into() }
}

/// Declares [`GgufType`] from one table: each variant with its GGUF id and gguf-py's name.
macro_rules! gguf_types {
    ($($variant:ident = $id:literal $name:literal),* $(,)?) => {
        /// A metadata value type, with its GGUF id.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum GgufType {
            $($variant = $id),*
        }

        impl GgufType {
            /// Every type, in id order (ids are 0, 1, 2, ...).
            const ALL: [GgufType; [$($id),*].len()] = [$(Self::$variant),*];

            /// gguf-py's name of the type (`UINT8`, ..., `STRING`, `ARRAY`, `FLOAT64`).
            pub fn name(self) -> &'static str {
                match self {
                    $(Self::$variant => $name),*
                }
            }
        }
    };
}

gguf_types! {
    U8 = 0 "UINT8", I8 = 1 "INT8", U16 = 2 "UINT16", I16 = 3 "INT16", U32 = 4 "UINT32",
    I32 = 5 "INT32", F32 = 6 "FLOAT32", Bool = 7 "BOOL", String = 8 "STRING", Array = 9 "ARRAY",
    U64 = 10 "UINT64", I64 = 11 "INT64", F64 = 12 "FLOAT64",
}

impl GgufType {
    /// The type of a GGUF value type id.
    pub fn from_id(id: u32) -> Option<GgufType> {
        Self::ALL.get(id as usize).copied()
    }

    /// Fewest bytes a value of this type takes (a string's length, an array's header).
    fn min_size(self) -> u64 {
        match self {
            Self::U8 | Self::I8 | Self::Bool => 1,
            Self::U16 | Self::I16 => 2,
            Self::U32 | Self::I32 | Self::F32 => 4,
            Self::U64 | Self::I64 | Self::F64 | Self::String => 8,
            Self::Array => 12,
        }
    }
}

/// A metadata value. Strings keep their bytes exactly (GGUF says UTF-8, but a value
/// is copied as it is, so nothing is lost when it is not).
#[derive(Clone, Debug, PartialEq)]
pub enum GgufValue {
    U8(u8),
    I8(i8),
    U16(u16),
    I16(i16),
    U32(u32),
    I32(i32),
    F32(f32),
    Bool(bool),
    String(Vec<u8>),
    Array(GgufArray),
    U64(u64),
    I64(i64),
    F64(f64),
}

/// An array value: its element type (kept even when empty) and its elements. Fixed-size
/// elements are kept as their little-endian bytes, so that a long array takes no more
/// memory than the file does.
#[derive(Clone, Debug, PartialEq)]
pub struct GgufArray {
    elem_type: GgufType,
    data: ArrayData,
}

#[derive(Clone, Debug, PartialEq)]
enum ArrayData {
    /// Numbers and bools: `len * size` bytes, little-endian.
    Fixed(Vec<u8>),
    Strings(Vec<Vec<u8>>),
    Arrays(Vec<GgufArray>),
}

impl GgufArray {
    /// An array of `elem_type` holding `items`, each of which must be of that type.
    pub fn new(elem_type: GgufType, items: Vec<GgufValue>) -> Result<GgufArray> {
        if let Some(bad) = items.iter().find(|v| v.kind() != elem_type) {
            return Err(Error::InvalidOption {
                name: "metadata",
                reason: format!("an array of {} cannot hold a {}", elem_type.name(), bad.kind().name()),
            });
        }
        let data = match elem_type {
            GgufType::String => ArrayData::Strings(
                items.into_iter().map(|v| if let GgufValue::String(s) = v { s } else { Vec::new() }).collect(),
            ),
            GgufType::Array => ArrayData::Arrays(
                items.into_iter().filter_map(|v| if let GgufValue::Array(a) = v { Some(a) } else { None }).collect(),
            ),
            _ => {
                let mut bytes = Vec::with_capacity(items.len() * elem_type.min_size() as usize);
                for v in &items {
                    v.write(&mut bytes);
                }
                ArrayData::Fixed(bytes)
            }
        };
        Ok(GgufArray { elem_type, data })
    }

    /// An array of strings (GGUF strings are bytes, usually UTF-8).
    pub fn of_strings(items: Vec<Vec<u8>>) -> GgufArray {
        GgufArray { elem_type: GgufType::String, data: ArrayData::Strings(items) }
    }

    /// An array of i32.
    pub fn of_i32(items: &[i32]) -> GgufArray {
        GgufArray {
            elem_type: GgufType::I32,
            data: ArrayData::Fixed(items.iter().flat_map(|v| v.to_le_bytes()).collect()),
        }
    }

    /// An array of f32.
    pub fn of_f32(items: &[f32]) -> GgufArray {
        GgufArray {
            elem_type: GgufType::F32,
            data: ArrayData::Fixed(items.iter().flat_map(|v| v.to_le_bytes()).collect()),
        }
    }

    /// The element type.
    pub fn elem_type(&self) -> GgufType {
        self.elem_type
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        match &self.data {
            ArrayData::Fixed(b) => b.len() / self.elem_type.min_size() as usize,
            ArrayData::Strings(s) => s.len(),
            ArrayData::Arrays(a) => a.len(),
        }
    }

    /// Whether the array has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Element `i`.
    pub fn get(&self, i: usize) -> Option<GgufValue> {
        match &self.data {
            ArrayData::Strings(s) => s.get(i).map(|s| GgufValue::String(s.clone())),
            ArrayData::Arrays(a) => a.get(i).map(|a| GgufValue::Array(a.clone())),
            ArrayData::Fixed(b) => {
                let size = self.elem_type.min_size() as usize;
                let start = i.checked_mul(size)?;
                let bytes = b.get(start..start.checked_add(size)?)?;
                Some(fixed_value(self.elem_type, bytes))
            }
        }
    }

    /// The elements, in order.
    pub fn iter(&self) -> impl Iterator<Item = GgufValue> + '_ {
        (0..self.len()).filter_map(|i| self.get(i))
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.elem_type as u32).to_le_bytes());
        out.extend_from_slice(&(self.len() as u64).to_le_bytes());
        match &self.data {
            ArrayData::Fixed(b) => out.extend_from_slice(b),
            ArrayData::Strings(s) => s.iter().for_each(|s| write_bytes(out, s)),
            ArrayData::Arrays(a) => a.iter().for_each(|a| a.write(out)),
        }
    }
}

/// A fixed-size value from its little-endian bytes (exactly its size).
fn fixed_value(kind: GgufType, b: &[u8]) -> GgufValue {
    let a2 = || [b[0], b[1]];
    let a4 = || [b[0], b[1], b[2], b[3]];
    let a8 = || [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
    match kind {
        GgufType::U8 => GgufValue::U8(b[0]),
        GgufType::I8 => GgufValue::I8(b[0] as i8),
        GgufType::Bool => GgufValue::Bool(b[0] != 0),
        GgufType::U16 => GgufValue::U16(u16::from_le_bytes(a2())),
        GgufType::I16 => GgufValue::I16(i16::from_le_bytes(a2())),
        GgufType::U32 => GgufValue::U32(u32::from_le_bytes(a4())),
        GgufType::I32 => GgufValue::I32(i32::from_le_bytes(a4())),
        GgufType::F32 => GgufValue::F32(f32::from_bits(u32::from_le_bytes(a4()))),
        GgufType::U64 => GgufValue::U64(u64::from_le_bytes(a8())),
        GgufType::I64 => GgufValue::I64(i64::from_le_bytes(a8())),
        GgufType::F64 => GgufValue::F64(f64::from_bits(u64::from_le_bytes(a8()))),
        GgufType::String | GgufType::Array => unreachable!("not a fixed-size type"),
    }
}

impl GgufValue {
    /// The value's type.
    pub fn kind(&self) -> GgufType {
        match self {
            Self::U8(_) => GgufType::U8,
            Self::I8(_) => GgufType::I8,
            Self::U16(_) => GgufType::U16,
            Self::I16(_) => GgufType::I16,
            Self::U32(_) => GgufType::U32,
            Self::I32(_) => GgufType::I32,
            Self::F32(_) => GgufType::F32,
            Self::Bool(_) => GgufType::Bool,
            Self::String(_) => GgufType::String,
            Self::Array(_) => GgufType::Array,
            Self::U64(_) => GgufType::U64,
            Self::I64(_) => GgufType::I64,
            Self::F64(_) => GgufType::F64,
        }
    }

    /// A string value from text.
    pub fn string(s: &str) -> GgufValue {
        GgufValue::String(s.as_bytes().to_vec())
    }

    /// The value's bytes as GGUF stores them (no type tag).
    pub fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::U8(v) => out.push(*v),
            Self::I8(v) => out.push(*v as u8),
            Self::U16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::I16(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::U32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::I32(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::F32(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
            Self::Bool(v) => out.push(*v as u8),
            Self::String(s) => write_bytes(out, s),
            Self::U64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::I64(v) => out.extend_from_slice(&v.to_le_bytes()),
            Self::F64(v) => out.extend_from_slice(&v.to_bits().to_le_bytes()),
            Self::Array(a) => a.write(out),
        }
    }
}

fn write_bytes(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

/// A cursor over the prefix that knows the file size.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: u64,
    file_size: u64,
}

impl<'a> Cursor<'a> {
    /// Bytes of the file after the cursor.
    fn left_in_file(&self) -> u64 {
        self.file_size - self.pos
    }

    /// Checks that `n` more bytes exist in the file and in the prefix.
    fn ensure(&self, n: u64, what: &str) -> Result<()> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.file_size).ok_or_else(|| {
            malformed(format!(
                "{what} at offset {} needs {n} bytes, past the end of the file ({} bytes)",
                self.pos, self.file_size
            ))
        })?;
        if end > MAX_HEADER_LEN {
            return Err(malformed(format!(
                "{what} at offset {} would make the header longer than {MAX_HEADER_LEN} bytes",
                self.pos
            )));
        }
        if end > self.buf.len() as u64 {
            return Err(need_bytes(end, self.buf.len(), self.file_size.min(MAX_HEADER_LEN)));
        }
        Ok(())
    }

    fn take(&mut self, n: u64, what: &str) -> Result<&'a [u8]> {
        self.ensure(n, what)?;
        let start = self.pos as usize;
        self.pos += n;
        Ok(&self.buf[start..self.pos as usize])
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        Ok(self.take(N as u64, what)?.try_into().expect("N bytes"))
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        Ok(u32::from_le_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        Ok(u64::from_le_bytes(self.array(what)?))
    }

    /// A length-prefixed string's bytes.
    fn bytes(&mut self, what: &str) -> Result<&'a [u8]> {
        let at = self.pos;
        let len = self.u64(what)?;
        if len > self.left_in_file() {
            return Err(malformed(format!(
                "{what} at offset {at} claims {len} bytes, more than the {} left in the file",
                self.left_in_file()
            )));
        }
        self.take(len, what)
    }

    /// A length-prefixed UTF-8 string.
    /// A string not in `seen` yet (a metadata key or tensor name), added to it.
    fn unique_text(&mut self, seen: &mut HashSet<String>, what: &str) -> Result<String> {
        let at = self.pos;
        let text = self.text(what)?;
        if !seen.insert(text.clone()) {
            return Err(malformed(format!("duplicate {what} \"{text}\" at offset {at}")));
        }
        Ok(text)
    }

    fn text(&mut self, what: &str) -> Result<String> {
        let at = self.pos;
        let bytes = self.bytes(what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| malformed(format!("{what} at offset {at} is not UTF-8")))
    }

    /// Checks that `count` items of at least `min` bytes each fit in the file and in the
    /// prefix, before anything is allocated for them.
    fn ensure_items(&self, count: u64, min: u64, what: &str) -> Result<()> {
        match count.checked_mul(min) {
            Some(bytes) if bytes <= self.left_in_file() => self.ensure(bytes, what),
            _ => Err(malformed(format!(
                "{count} {what} at offset {} need at least {min} bytes each, more than the {} left in the file",
                self.pos,
                self.left_in_file()
            ))),
        }
    }

    fn value(&mut self, kind: GgufType, depth: u32) -> Result<GgufValue> {
        Ok(match kind {
            GgufType::U8 => GgufValue::U8(self.array::<1>("value")?[0]),
            GgufType::I8 => GgufValue::I8(self.array::<1>("value")?[0] as i8),
            GgufType::U16 => GgufValue::U16(u16::from_le_bytes(self.array("value")?)),
            GgufType::I16 => GgufValue::I16(i16::from_le_bytes(self.array("value")?)),
            GgufType::U32 => GgufValue::U32(u32::from_le_bytes(self.array("value")?)),
            GgufType::I32 => GgufValue::I32(i32::from_le_bytes(self.array("value")?)),
            GgufType::F32 => GgufValue::F32(f32::from_bits(u32::from_le_bytes(self.array("value")?))),
            GgufType::Bool => {
                let at = self.pos;
                match self.array::<1>("value")?[0] {
                    0 => GgufValue::Bool(false),
                    1 => GgufValue::Bool(true),
                    b => return Err(malformed(format!("bool at offset {at} is {b}, not 0 or 1"))),
                }
            }
            GgufType::String => GgufValue::String(self.bytes("string value")?.to_vec()),
            GgufType::U64 => GgufValue::U64(self.u64("value")?),
            GgufType::I64 => GgufValue::I64(i64::from_le_bytes(self.array("value")?)),
            GgufType::F64 => GgufValue::F64(f64::from_bits(self.u64("value")?)),
            GgufType::Array => {
                if depth >= MAX_ARRAY_DEPTH {
                    return Err(malformed(format!(
                        "arrays nested deeper than {MAX_ARRAY_DEPTH} at offset {}",
                        self.pos
                    )));
                }
                let at = self.pos;
                let id = self.u32("array type")?;
                let elem_type = GgufType::from_id(id)
                    .ok_or_else(|| malformed(format!("array at offset {at} has unknown element type {id}")))?;
                let count = self.u64("array length")?;
                self.ensure_items(count, elem_type.min_size(), "array elements")?;
                // The check above bounds count by the bytes in memory.
                let data = match elem_type {
                    GgufType::String => {
                        let mut items = Vec::with_capacity(count as usize);
                        for _ in 0..count {
                            items.push(self.bytes("string value")?.to_vec());
                        }
                        ArrayData::Strings(items)
                    }
                    GgufType::Array => {
                        let mut items = Vec::with_capacity(count as usize);
                        for _ in 0..count {
                            match self.value(GgufType::Array, depth + 1)? {
                                GgufValue::Array(a) => items.push(a),
                                _ => unreachable!("an array value is an array"),
                            }
                        }
                        ArrayData::Arrays(items)
                    }
                    fixed => {
                        let at = self.pos;
                        let bytes = self.take(count * fixed.min_size(), "array elements")?;
                        if fixed == GgufType::Bool {
                            if let Some(i) = bytes.iter().position(|&b| b > 1) {
                                return Err(malformed(format!(
                                    "bool at offset {} is {}, not 0 or 1",
                                    at + i as u64,
                                    bytes[i]
                                )));
                            }
                        }
                        ArrayData::Fixed(bytes.to_vec())
                    }
                };
                GgufValue::Array(GgufArray { elem_type, data })
            }
        })
    }
}

/// Reads a GGUF v2 or v3 header from a prefix of the file and the file's total size.
pub fn read_gguf(prefix: &[u8], file_size: u64) -> Result<ModelHeader> {
    check_prefix(prefix, file_size)?;
    let mut c = Cursor { buf: prefix, pos: 0, file_size };
    let magic = c.array::<4>("magic")?;
    if magic != GGUF_MAGIC {
        return Err(malformed(format!("magic is {magic:?}, not \"GGUF\"")));
    }
    let version = c.u32("version")?;
    match version {
        2 | 3 => {}
        1 => return Err(malformed("GGUF v1 (32-bit counts) is not supported; convert it to v3")),
        v if (1..=3).contains(&v.swap_bytes()) => {
            return Err(malformed(format!("version {v} looks big-endian; only little-endian GGUF is supported")))
        }
        v => return Err(malformed(format!("unsupported version {v} (expected 2 or 3)"))),
    }
    let tensor_count = c.u64("tensor count")?;
    let kv_count = c.u64("metadata count")?;
    // A key-value pair takes at least 8 + 4 + 1 bytes; a tensor info 8 + 4 + 4 + 8.
    c.ensure_items(kv_count, 13, "metadata entries")?;

    let mut metadata = Vec::with_capacity(kv_count as usize);
    let mut keys = HashSet::new();
    for _ in 0..kv_count {
        let key = c.unique_text(&mut keys, "metadata key")?;
        let type_at = c.pos;
        let id = c.u32("metadata type")?;
        let kind = GgufType::from_id(id)
            .ok_or_else(|| malformed(format!("key \"{key}\" has unknown value type {id} at offset {type_at}")))?;
        let value = c.value(kind, 0)?;
        metadata.push((key, value));
    }

    let alignment = match metadata.iter().find(|(k, _)| k == "general.alignment") {
        None => DEFAULT_ALIGNMENT,
        Some((_, GgufValue::U32(a))) if a.is_power_of_two() => *a,
        Some((_, v)) => {
            let got = match v {
                GgufValue::U32(a) => a.to_string(),
                other => format!("a {}", other.kind().name()),
            };
            return Err(malformed(format!("general.alignment must be a UINT32 power of two, got {got}")));
        }
    };

    c.ensure_items(tensor_count, 24, "tensor infos")?;
    struct Raw {
        name: String,
        ne: Vec<u64>,
        type_id: u32,
        offset: u64,
    }
    let mut raw = Vec::with_capacity(tensor_count as usize);
    let mut names = HashSet::new();
    for _ in 0..tensor_count {
        let name = c.unique_text(&mut names, "tensor name")?;
        let n_dims = c.u32("n_dims")?;
        if n_dims > MAX_DIMS {
            return Err(malformed(format!("tensor \"{name}\" has {n_dims} dimensions (at most {MAX_DIMS})")));
        }
        let mut ne = Vec::with_capacity(n_dims as usize);
        for _ in 0..n_dims {
            let d = c.u64("ne")?;
            if d > i64::MAX as u64 {
                return Err(malformed(format!("tensor \"{name}\" has dimension {d}, over 2^63 - 1")));
            }
            ne.push(d);
        }
        let type_id = c.u32("tensor type")?;
        let offset = c.u64("tensor offset")?;
        raw.push(Raw { name, ne, type_id, offset });
    }
    let header_len = c.pos;
    let data_offset = align_up(header_len, alignment as u64)
        .ok_or_else(|| malformed("the data section's offset overflows 64 bits"))?;

    let mut tensors = Vec::with_capacity(raw.len());
    for r in raw {
        let bad = |reason: String| malformed(format!("tensor \"{}\": {reason}", r.name));
        let dtype = DType::from_ggml(r.type_id).ok_or_else(|| bad(format!("unknown ggml type {}", r.type_id)))?;
        let shape: Vec<u64> = r.ne.iter().rev().copied().collect();
        let byte_len = dtype.tensor_bytes(&shape).map_err(|e| bad(e.to_string()))?;
        if r.offset % alignment as u64 != 0 {
            return Err(bad(format!("offset {} is not a multiple of the alignment {alignment}", r.offset)));
        }
        let start = data_offset.checked_add(r.offset);
        let end = start.and_then(|s| s.checked_add(byte_len));
        match (start, end) {
            (Some(start), Some(end)) if end <= file_size => {
                tensors.push(TensorInfo { name: r.name, dtype, shape, offset: start, byte_len })
            }
            _ => {
                return Err(bad(format!(
                    "{byte_len} bytes at data offset {} run past the end of the file ({file_size} bytes)",
                    r.offset
                )))
            }
        }
    }
    if let Some((a, b)) = overlap(&tensors, &offset_order(&tensors)) {
        return Err(malformed(format!("tensors \"{a}\" and \"{b}\" overlap")));
    }
    Ok(ModelHeader {
        format: Format::Gguf,
        version: Some(version),
        file_size,
        header_len,
        data_offset,
        alignment: Some(alignment),
        metadata: Metadata::Gguf(metadata),
        tensors,
    })
}

/// `x` rounded up to a multiple of `a` (a power of two), or `None` on overflow.
pub fn align_up(x: u64, a: u64) -> Option<u64> {
    Some(x.checked_add(a - 1)? & !(a - 1))
}

/// One tensor of a GGUF file to write.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufTensorOut {
    pub name: String,
    /// ne\[0\] is the row length.
    pub ne: Vec<u64>,
    pub ggml_type: u32,
    /// Stored bytes.
    pub byte_len: u64,
}

/// A written GGUF header and where each tensor's data goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GgufLayout {
    /// Everything before the data section, alignment padding included.
    pub header: Vec<u8>,
    /// Absolute offset of each tensor's data, in the order given.
    pub offsets: Vec<u64>,
    /// Size of the whole file: every tensor is padded to the alignment, the last too
    /// (as gguf-py and llama.cpp write them).
    pub total: u64,
}

/// Writes a GGUF v3 header: the metadata in the order given, then the tensor infos with
/// each tensor's data placed at the next multiple of `alignment`.
pub fn write_gguf(metadata: &[(String, GgufValue)], tensors: &[GgufTensorOut], alignment: u32) -> Result<GgufLayout> {
    if !alignment.is_power_of_two() {
        return Err(Error::InvalidOption { name: "alignment", reason: format!("{alignment} is not a power of two") });
    }
    if alignment > MAX_WRITE_ALIGNMENT {
        return Err(Error::Unsupported(format!(
            "an alignment of {alignment} bytes (general.alignment) is over the {MAX_WRITE_ALIGNMENT} this converter writes"
        )));
    }
    let a = alignment as u64;
    let overflow = || Error::SizeOverflow { what: "GGUF data offsets" };
    let mut out = Vec::new();
    out.extend_from_slice(&GGUF_MAGIC);
    out.extend_from_slice(&3u32.to_le_bytes());
    out.extend_from_slice(&(tensors.len() as u64).to_le_bytes());
    out.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    for (key, value) in metadata {
        write_bytes(&mut out, key.as_bytes());
        out.extend_from_slice(&(value.kind() as u32).to_le_bytes());
        value.write(&mut out);
    }
    let mut relative = Vec::with_capacity(tensors.len());
    let mut at = 0u64;
    for t in tensors {
        if t.ne.len() > MAX_DIMS as usize {
            return Err(Error::Unsupported(format!("tensor '{}' has more than {MAX_DIMS} dimensions", t.name)));
        }
        // GGUF dimensions are int64 (the reader refuses larger ones, as llama.cpp does).
        if let Some(d) = t.ne.iter().find(|&&d| d > i64::MAX as u64) {
            return Err(Error::Unsupported(format!("tensor '{}' has dimension {d}, over GGUF's 2^63 - 1", t.name)));
        }
        write_bytes(&mut out, t.name.as_bytes());
        out.extend_from_slice(&(t.ne.len() as u32).to_le_bytes());
        for d in &t.ne {
            out.extend_from_slice(&d.to_le_bytes());
        }
        out.extend_from_slice(&t.ggml_type.to_le_bytes());
        out.extend_from_slice(&at.to_le_bytes());
        relative.push(at);
        at = at.checked_add(t.byte_len).and_then(|e| align_up(e, a)).ok_or_else(overflow)?;
    }
    let data_offset = align_up(out.len() as u64, a).ok_or_else(overflow)?;
    let total = data_offset.checked_add(at).ok_or_else(overflow)?;
    out.resize(data_offset as usize, 0);
    // Each relative offset is at most `at`, so none of these sums overflows.
    let offsets = relative.iter().map(|r| data_offset + r).collect();
    Ok(GgufLayout { header: out, offsets, total })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn value_types_are_listed_in_id_order() {
        for (id, t) in GgufType::ALL.iter().enumerate() {
            assert_eq!((*t as u32, GgufType::from_id(id as u32)), (id as u32, Some(*t)));
        }
        assert_eq!(GgufType::from_id(13), None);
        assert_eq!((GgufType::Array.name(), GgufType::F64.name()), ("ARRAY", "FLOAT64"));
    }

    /// A GGUF of a few bytes may carry general.alignment = 2^31 (its padding need not be
    /// in the file); converting it is refused instead of writing 2 GiB of padding.
    #[test]
    fn huge_alignments_are_read_but_not_written() {
        let metadata = [("general.alignment".to_string(), GgufValue::U32(1 << 31))];
        let mut file = GGUF_MAGIC.to_vec();
        file.extend_from_slice(&3u32.to_le_bytes());
        file.extend_from_slice(&0u64.to_le_bytes());
        file.extend_from_slice(&1u64.to_le_bytes());
        write_bytes(&mut file, b"general.alignment");
        file.extend_from_slice(&(GgufType::U32 as u32).to_le_bytes());
        file.extend_from_slice(&(1u32 << 31).to_le_bytes());
        let h = read_gguf(&file, file.len() as u64).unwrap();
        assert_eq!((h.alignment, h.data_offset), (Some(1 << 31), 1 << 31));
        let e = write_gguf(&metadata, &[], 1 << 31).unwrap_err();
        assert!(e.to_string().contains("over the 16777216 this converter writes"), "{e}");
        let plan = crate::io::plan_conversion(&[h], &Default::default()).unwrap_err();
        assert!(matches!(plan, Error::Unsupported(_)), "{plan}");
        let layout = write_gguf(&metadata[..0], &[], MAX_WRITE_ALIGNMENT).unwrap();
        assert_eq!(layout.header.len(), MAX_WRITE_ALIGNMENT as usize);
    }

    /// The writer refuses what the reader refuses: a dimension over 2^63 - 1 (only an
    /// empty tensor can have one, since a file cannot hold more).
    #[test]
    fn dimensions_over_i64_are_refused() {
        let tensor = |d: u64| GgufTensorOut { name: "w".into(), ne: vec![0, d], ggml_type: 0, byte_len: 0 };
        let e = write_gguf(&[], &[tensor(1 << 63)], 32).unwrap_err();
        assert!(e.to_string().contains("tensor 'w' has dimension 9223372036854775808"), "{e}");
        let layout = write_gguf(&[], &[tensor(i64::MAX as u64)], 32).unwrap();
        let h = read_gguf(&layout.header, layout.total).unwrap();
        assert_eq!(h.tensors[0].shape, [i64::MAX as u64, 0]);
    }
}
