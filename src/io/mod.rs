//! Model files: readers, writers and the streaming conversion plan.
//!
//! Nothing here does I/O. The caller (JavaScript, or a Rust program) moves bytes; these
//! functions turn a *prefix* of a file plus its total size into a typed description
//! ([`read_model`]), a set of input headers into an output header and one operation per
//! tensor ([`plan_conversion`]), and one tensor's input bytes into its output bytes
//! ([`convert_tensor`]).
//!
//! Sizes and offsets are `u64` everywhere and every length is computed with checked
//! arithmetic and checked against the file size before it is used, so that files far
//! beyond 4 GiB work on 32-bit targets (wasm32) and malformed headers give an
//! [`Error::Malformed`] instead of a panic or a huge allocation.
//!
//! Incremental reading: when the prefix ends before the header does, readers return
//! [`Error::NeedMoreBytes`] with the prefix length to read next (never more than the
//! file size); read that many bytes from the start of the file and call again.
//!
//! Shapes are row-major everywhere in this module (outermost dimension first, as
//! safetensors and numpy list them); GGUF's `ne` is the reverse (ne\[0\] is the row
//! length), see [`TensorInfo::ne`].

pub mod convert;
pub mod gguf;
pub mod hf;
pub mod imatrix;
pub mod plan;
pub mod safetensors;

pub use convert::{convert_tensor, ChunkedConversion, ConvertedTensor, TensorStats};
pub use gguf::{GgufArray, GgufType, GgufValue};
pub use imatrix::{read_imatrix, ImportanceMatrix};
pub use plan::{
    plan_conversion, ConversionPlan, InputRange, OpKind, OutputFormat, PlanOp, PlanOptions, ScaleSemantics,
};
pub use safetensors::{check_shards, parse_safetensors_index, ShardIndex};

use crate::error::{Error, Result};
use crate::layout::{FormatKind, StorageFormat};

/// The container format of a model file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    Safetensors,
    Gguf,
}

impl Format {
    /// `safetensors` or `gguf`.
    pub fn name(self) -> &'static str {
        match self {
            Format::Safetensors => "safetensors",
            Format::Gguf => "gguf",
        }
    }
}

/// The element type of a stored tensor: a safetensors dtype or a ggml type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DType {
    F32,
    F16,
    BF16,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
    F8E4M3,
    F8E5M2,
    /// ggml Q8_0 (type 8).
    Q8_0,
    /// ggml TQ1_0 (type 34).
    Tq1_0,
    /// ggml TQ2_0 (type 35).
    Tq2_0,
    /// bitnet.cpp I2_S (type 36): n/4 code bytes, then a 32-byte tail holding the scale.
    I2S,
    /// transformers' packed ternary weight (U8 `[ceil(out/4), in]` in the file) read
    /// together with its `<name>_scale` sibling. Only plans use it; files store U8.
    BitnetHf,
    /// Another ggml block type (by type id), which can only be copied as it is.
    GgmlOther(u32),
}

/// (type id, name, values per block, bytes per block) of the ggml types this crate can
/// only copy, as gguf-py's `GGML_QUANT_SIZES` lists them. The types it writes are in
/// [`StorageFormat`]'s table, the integer and F64 types in [`SAFETENSORS_TYPES`].
const OTHER_GGML_TYPES: &[(u32, &str, u64, u64)] = &[
    (2, "Q4_0", 32, 18),
    (3, "Q4_1", 32, 20),
    (6, "Q5_0", 32, 22),
    (7, "Q5_1", 32, 24),
    (9, "Q8_1", 32, 40),
    (10, "Q2_K", 256, 84),
    (11, "Q3_K", 256, 110),
    (12, "Q4_K", 256, 144),
    (13, "Q5_K", 256, 176),
    (14, "Q6_K", 256, 210),
    (16, "IQ2_XXS", 256, 66),
    (17, "IQ2_XS", 256, 74),
    (18, "IQ3_XXS", 256, 98),
    (19, "IQ1_S", 256, 50),
    (20, "IQ4_NL", 32, 18),
    (21, "IQ3_S", 256, 110),
    (22, "IQ2_S", 256, 82),
    (23, "IQ4_XS", 256, 136),
    (29, "IQ1_M", 256, 56),
    (39, "MXFP4", 32, 17),
    (40, "NVFP4", 64, 36),
    (41, "Q1_0", 128, 18),
];

/// (name, dtype, bytes per element, ggml type id) of the safetensors dtypes this crate
/// reads that are not one of [`StorageFormat`]'s floats.
const SAFETENSORS_TYPES: &[(&str, DType, u64, Option<u32>)] = &[
    ("F64", DType::F64, 8, Some(28)),
    ("I8", DType::I8, 1, Some(24)),
    ("I16", DType::I16, 2, Some(25)),
    ("I32", DType::I32, 4, Some(26)),
    ("I64", DType::I64, 8, Some(27)),
    ("U8", DType::U8, 1, None),
    ("U16", DType::U16, 2, None),
    ("U32", DType::U32, 4, None),
    ("U64", DType::U64, 8, None),
    ("BOOL", DType::Bool, 1, None),
    ("F8_E4M3", DType::F8E4M3, 1, None),
    ("F8_E5M2", DType::F8E5M2, 1, None),
];

/// (type id, name, values per block, bytes per block) of every ggml type this crate
/// knows: the ones it writes, the integer and float ones, and the ones it only copies.
pub fn ggml_types() -> impl Iterator<Item = (u32, &'static str, u64, u64)> {
    let formats = StorageFormat::ALL.into_iter().filter_map(|f| {
        let info = f.info();
        info.ggml_type.map(|id| (id, info.type_name, u64::from(info.block_values), u64::from(info.block_bytes)))
    });
    let plain = SAFETENSORS_TYPES.iter().filter_map(|t| t.3.map(|id| (id, t.0, 1, t.2)));
    formats.chain(plain).chain(OTHER_GGML_TYPES.iter().copied())
}

impl DType {
    /// The storage format of this type, if it is one of the crate's formats.
    pub fn format(self) -> Option<StorageFormat> {
        match self {
            DType::F32 => Some(StorageFormat::F32),
            DType::F16 => Some(StorageFormat::F16),
            DType::BF16 => Some(StorageFormat::BF16),
            DType::Q8_0 => Some(StorageFormat::Q8_0),
            DType::Tq1_0 => Some(StorageFormat::Tq1_0),
            DType::Tq2_0 => Some(StorageFormat::Tq2_0),
            DType::I2S => Some(StorageFormat::I2S),
            DType::BitnetHf => Some(StorageFormat::BitnetHf),
            DType::GgmlOther(id) => StorageFormat::from_ggml_type(id),
            DType::F64
            | DType::I8
            | DType::I16
            | DType::I32
            | DType::I64
            | DType::U8
            | DType::U16
            | DType::U32
            | DType::U64
            | DType::Bool
            | DType::F8E4M3
            | DType::F8E5M2 => None,
        }
    }

    /// The dtype a model file stores `format` as, if model files can hold it.
    pub fn from_format(format: StorageFormat) -> Option<DType> {
        match format {
            StorageFormat::F32 => Some(DType::F32),
            StorageFormat::F16 => Some(DType::F16),
            StorageFormat::BF16 => Some(DType::BF16),
            StorageFormat::Q8_0 => Some(DType::Q8_0),
            StorageFormat::Tq1_0 => Some(DType::Tq1_0),
            StorageFormat::Tq2_0 => Some(DType::Tq2_0),
            StorageFormat::I2S => Some(DType::I2S),
            StorageFormat::BitnetHf => Some(DType::BitnetHf),
            StorageFormat::Q8K => format.info().ggml_type.map(DType::GgmlOther),
            StorageFormat::Codes | StorageFormat::Int8 => None,
        }
    }

    /// The name used in files, reports and the JS API: the safetensors dtype name
    /// (`F32`, `BF16`, `U8`...), the ggml type name (`Q8_0`, `TQ2_0`, `I2_S`...), or
    /// `bitnet-hf` for a packed weight read with its scale.
    pub fn name(self) -> &'static str {
        if let Some(format) = self.format() {
            return format.info().type_name;
        }
        match self {
            DType::GgmlOther(id) => OTHER_GGML_TYPES.iter().find(|t| t.0 == id).map_or("unknown", |t| t.1),
            other => SAFETENSORS_TYPES.iter().find(|t| t.1 == other).map_or("unknown", |t| t.0),
        }
    }

    /// The dtype of a safetensors dtype name.
    pub fn from_safetensors(name: &str) -> Option<DType> {
        let float = StorageFormat::ALL
            .into_iter()
            .find(|f| f.info().kind == FormatKind::Float && f.info().type_name == name)
            .and_then(DType::from_format);
        float.or_else(|| SAFETENSORS_TYPES.iter().find(|t| t.0 == name).map(|t| t.1))
    }

    /// The safetensors dtype name, if safetensors can store this type.
    pub fn safetensors_name(self) -> Option<&'static str> {
        match self.format() {
            Some(format) => (format.info().kind == FormatKind::Float).then_some(format.info().type_name),
            None => SAFETENSORS_TYPES.iter().find(|t| t.1 == self).map(|t| t.0),
        }
    }

    /// The dtype of a ggml type id, if this crate knows its block size.
    pub fn from_ggml(id: u32) -> Option<DType> {
        if let Some(format) = StorageFormat::from_ggml_type(id) {
            return DType::from_format(format);
        }
        if let Some(t) = SAFETENSORS_TYPES.iter().find(|t| t.3 == Some(id)) {
            return Some(t.1);
        }
        OTHER_GGML_TYPES.iter().any(|t| t.0 == id).then_some(DType::GgmlOther(id))
    }

    /// The ggml type id, if GGUF can store this type.
    pub fn ggml_id(self) -> Option<u32> {
        match (self.format(), self) {
            (Some(format), _) => format.info().ggml_type,
            (None, DType::GgmlOther(id)) => Some(id),
            (None, other) => SAFETENSORS_TYPES.iter().find(|t| t.1 == other).and_then(|t| t.3),
        }
    }

    /// (values per block, bytes per block) along a row. I2_S's blocks of 128 hold 32
    /// bytes of codes, plus one 32-byte tail per tensor (see [`DType::tensor_bytes`]).
    /// bitnet-hf holds four codes per byte along the packed dimension, not a row block.
    pub fn block(self) -> (u64, u64) {
        if let Some(format) = self.format() {
            return (u64::from(format.info().block_values), u64::from(format.info().block_bytes));
        }
        let other = match self {
            DType::GgmlOther(id) => OTHER_GGML_TYPES.iter().find(|t| t.0 == id).map(|t| (t.2, t.3)),
            dtype => SAFETENSORS_TYPES.iter().find(|t| t.1 == dtype).map(|t| (1, t.2)),
        };
        other.unwrap_or((1, 1))
    }

    /// F32, F16 or BF16: plain floats the kernels decode.
    pub fn is_float(self) -> bool {
        self.format().is_some_and(|f| f.info().kind == FormatKind::Float)
    }

    /// Already-ternary input types, whose codes a conversion keeps exactly.
    pub fn is_ternary(self) -> bool {
        self.format().is_some_and(|f| f.info().kind == FormatKind::Ternary)
    }

    /// Whether [`convert_tensor`] can decode this type to f32 values.
    pub fn is_decodable(self) -> bool {
        self.is_float() || self.is_ternary() || self == DType::Q8_0
    }

    /// Stored bytes of a tensor of this type with a row-major `shape` (a 0-d shape is
    /// one value). Errors when the row length is not a multiple of the block size or
    /// when the size overflows u64.
    pub fn tensor_bytes(self, shape: &[u64]) -> Result<u64> {
        let count = element_count(shape)?;
        let row = shape.last().copied().unwrap_or(1);
        let (block, size) = self.block();
        if self == DType::BitnetHf {
            return Err(Error::Unsupported("bitnet-hf sizes depend on the packed shape".into()));
        }
        if row % block != 0 {
            return Err(Error::Unsupported(format!(
                "{} stores rows in blocks of {block} values; a row of {row} values is not a multiple",
                self.name()
            )));
        }
        let tail = self.format().map_or(0, |f| u64::from(f.info().tensor_tail_bytes));
        (count / block)
            .checked_mul(size)
            .and_then(|bytes| bytes.checked_add(tail))
            .ok_or(Error::SizeOverflow { what: "tensor bytes" })
    }
}

impl core::fmt::Display for DType {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// Number of values of a row-major shape (1 for a 0-d shape), overflow-checked.
pub fn element_count(shape: &[u64]) -> Result<u64> {
    shape.iter().try_fold(1u64, |n, &d| n.checked_mul(d)).ok_or(Error::SizeOverflow { what: "element count" })
}

/// One tensor of a model file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The name, exactly as stored.
    pub name: String,
    pub dtype: DType,
    /// Row-major shape (outermost first); the last dimension is the row length.
    pub shape: Vec<u64>,
    /// Absolute offset of the tensor's first byte in its file.
    pub offset: u64,
    /// Stored bytes.
    pub byte_len: u64,
}

impl TensorInfo {
    /// GGUF's `ne`: the shape reversed, so that `ne[0]` is the row length.
    pub fn ne(&self) -> Vec<u64> {
        self.shape.iter().rev().copied().collect()
    }

    /// Number of values.
    pub fn element_count(&self) -> u64 {
        // Checked when the header was read.
        element_count(&self.shape).unwrap_or(u64::MAX)
    }

    /// Stored bits per value (`None` for an empty tensor).
    pub fn bits_per_weight(&self) -> Option<f64> {
        let n = self.element_count();
        (n > 0).then(|| self.byte_len as f64 * 8.0 / n as f64)
    }
}

/// The metadata of a model file.
#[derive(Clone, Debug, PartialEq)]
pub enum Metadata {
    /// safetensors `__metadata__` (string to string), in file order.
    Safetensors(Vec<(String, String)>),
    /// GGUF key-value pairs, in file order.
    Gguf(Vec<(String, GgufValue)>),
}

impl Metadata {
    /// Number of entries.
    pub fn len(&self) -> usize {
        match self {
            Metadata::Safetensors(m) => m.len(),
            Metadata::Gguf(m) => m.len(),
        }
    }

    /// Whether there are no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The header of a model file.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelHeader {
    pub format: Format,
    /// GGUF version (2 or 3); `None` for safetensors.
    pub version: Option<u32>,
    /// Total file size, as given.
    pub file_size: u64,
    /// Bytes of the header that were parsed (8 + JSON length for safetensors; up to the
    /// end of the tensor infos for GGUF).
    pub header_len: u64,
    /// Offset of the data section (GGUF: aligned).
    pub data_offset: u64,
    /// GGUF data alignment (`general.alignment`, default 32); `None` for safetensors.
    pub alignment: Option<u32>,
    pub metadata: Metadata,
    /// Tensors in file order: GGUF tensor-info order; safetensors by data offset.
    pub tensors: Vec<TensorInfo>,
}

impl ModelHeader {
    /// Sum of every tensor's stored bytes.
    pub fn tensor_bytes(&self) -> u64 {
        self.tensors.iter().fold(0u64, |sum, t| sum.saturating_add(t.byte_len))
    }
}

/// Reads the header of a safetensors or GGUF file from a prefix of it (the first
/// `prefix.len()` bytes) and the total file size. The format is told by the GGUF magic.
pub fn read_model(prefix: &[u8], file_size: u64) -> Result<ModelHeader> {
    check_prefix(prefix, file_size)?;
    if file_size >= 4 && prefix.len() < 4 {
        return Err(Error::NeedMoreBytes { needed: file_size.min(8) });
    }
    if prefix.starts_with(&gguf::GGUF_MAGIC) {
        gguf::read_gguf(prefix, file_size)
    } else {
        safetensors::read_safetensors(prefix, file_size)
    }
}

/// Indices of `tensors` by offset (ties keep their order).
pub(crate) fn offset_order(tensors: &[TensorInfo]) -> Vec<usize> {
    let mut keys: Vec<(u64, usize)> = tensors.iter().enumerate().map(|(i, t)| (t.offset, i)).collect();
    keys.sort_unstable();
    keys.into_iter().map(|(_, i)| i).collect()
}

/// The first two tensors (in `order`) whose bytes overlap, if any.
pub(crate) fn overlap<'a>(tensors: &'a [TensorInfo], order: &[usize]) -> Option<(&'a str, &'a str)> {
    let mut previous: Option<&TensorInfo> = None;
    for t in order.iter().map(|&i| &tensors[i]).filter(|t| t.byte_len > 0) {
        if let Some(p) = previous {
            if t.offset < p.offset + p.byte_len {
                return Some((&p.name, &t.name));
            }
        }
        previous = Some(t);
    }
    None
}

/// Checks that a prefix is not longer than the file it comes from.
pub(crate) fn check_prefix(prefix: &[u8], file_size: u64) -> Result<()> {
    if prefix.len() as u64 > file_size {
        return Err(Error::InvalidOption {
            name: "fileSize",
            reason: format!("the prefix has {} bytes but the file size is {file_size}", prefix.len()),
        });
    }
    Ok(())
}

/// The prefix length to ask for when `end` bytes are needed: at least `end`, at least
/// twice what was given (so that a growing header takes few rounds), at most the file.
pub(crate) fn need_bytes(end: u64, have: usize, file_size: u64) -> Error {
    let doubled = (have as u64).saturating_mul(2);
    Error::NeedMoreBytes { needed: end.max(doubled).min(file_size) }
}

/// Files far beyond 4 GiB: offsets and sizes stay exact with a 32-bit `usize` (these
/// tests also run as wasm32).
#[cfg(test)]
mod tests {
    use super::gguf::{read_gguf, write_gguf, GgufTensorOut};
    use super::*;
    use crate::io::plan::{plan_conversion, OpKind, OutputFormat, PlanOptions};
    use crate::layout::TernaryLayout;

    const GIB: u64 = 1 << 30;

    /// A header whose tensors lie past 4 GiB; only the header is in memory.
    fn big_gguf() -> (Vec<u8>, u64) {
        let tensors = [
            GgufTensorOut { name: "big.weight".into(), ne: vec![1 << 17, 1 << 17], ggml_type: 1, byte_len: 32 * GIB },
            GgufTensorOut { name: "after.weight".into(), ne: vec![256, 2], ggml_type: 0, byte_len: 2048 },
        ];
        let layout = write_gguf(&[], &tensors, 32).unwrap();
        assert_eq!(layout.offsets[1], layout.header.len() as u64 + 32 * GIB);
        (layout.header, layout.total)
    }

    #[test]
    fn gguf_offsets_past_4_gib() {
        let (header, size) = big_gguf();
        let h = read_gguf(&header, size).unwrap();
        assert_eq!(h.tensors[0].byte_len, 32 * GIB);
        assert_eq!(h.tensors[1].offset, h.data_offset + 32 * GIB);
        assert_eq!(h.tensor_bytes(), 32 * GIB + 2048);
        // One byte short of the file is refused, whatever usize is.
        assert!(matches!(read_gguf(&header, size - 2048 + 1), Err(Error::Malformed { .. })));

        let plan = plan_conversion(std::slice::from_ref(&h), &PlanOptions::default()).unwrap();
        let (big, after) = (&plan.ops[0], &plan.ops[1]);
        assert_eq!((big.kind, big.out_type, big.output_length), (OpKind::Quantize, DType::Tq2_0, (1 << 34) / 256 * 66));
        assert_eq!(after.inputs[0].offset, h.data_offset + 32 * GIB);
        assert!(after.output_offset > 4 * GIB);
        assert_eq!(after.kind, OpKind::Quantize);
        assert_eq!(plan.output_size, (after.output_offset + after.output_length).div_ceil(32) * 32);
        // The small tensor past 4 GiB converts; the huge one refuses a short input.
        let values: Vec<u8> = (0..512u32).flat_map(|i| ((i % 7) as f32 - 3.0).to_le_bytes()).collect();
        assert_eq!(convert_tensor(after, &values, false).unwrap().bytes.len(), 2 * 66);
        assert!(matches!(convert_tensor(big, &values, false).unwrap_err().root(), Error::ByteLength { .. }));
    }

    #[test]
    fn safetensors_offsets_past_4_gib() {
        let entries: Vec<(&str, &str, &[u64], [u64; 2])> = vec![
            ("a.weight", "F32", &[1 << 16, 1 << 15], [0, 8 * GIB]),
            ("b.weight", "F16", &[2, 256], [8 * GIB, 8 * GIB + 1024]),
        ];
        let header = safetensors::write_header(None, &entries);
        let size = header.len() as u64 + 8 * GIB + 1024;
        let h = read_model(&header, size).unwrap();
        assert_eq!(h.tensors[1].offset, header.len() as u64 + 8 * GIB);
        for output in [OutputFormat::Gguf, OutputFormat::BitnetHf] {
            let layout = if output == OutputFormat::Gguf { TernaryLayout::Tq2_0 } else { TernaryLayout::BitnetHf };
            let plan =
                plan_conversion(std::slice::from_ref(&h), &PlanOptions { output, layout, ..PlanOptions::default() })
                    .unwrap();
            assert_eq!(plan.ops[1].inputs[0].offset, header.len() as u64 + 8 * GIB);
            let big = &plan.ops[0];
            assert_eq!(plan.ops[1].output_offset, big.output_offset + big.output_length);
            assert!(plan.output_size > big.output_length);
        }
        // A size past 2^53 still reads (JavaScript cannot pass one, Rust can).
        let huge: Vec<(&str, &str, &[u64], [u64; 2])> = vec![("x", "U8", &[1 << 60], [0, 1 << 60])];
        let header = safetensors::write_header(None, &huge);
        let h = read_model(&header, header.len() as u64 + (1 << 60)).unwrap();
        assert_eq!(h.tensors[0].byte_len, 1 << 60);
    }
}
