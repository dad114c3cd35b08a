//! The storage formats, each named once with every fact the rest of the crate, the JS
//! package and the demo need about it.
//!
//! [`StorageFormat::info`] is the one place where a format's block size, bytes per
//! block, ggml type id and llama.cpp file type are written; the `#[repr(C)]` blocks of
//! [`super::blocks`] are checked against it at compile time. The ternary and int8
//! layouts, the model-file dtypes and the JS API read their numbers from here, and every
//! match over formats is exhaustive, so a new format is a compile error wherever it
//! needs a decision.

use super::blocks::{BlockQ8K, BlockQ8_0, BlockTq1_0, BlockTq2_0, QK8_0, QK_K};
use crate::error::{index_by_name, Result};

/// A model file kind the converter writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OutputFormat {
    /// GGUF v3 with TQ2_0, TQ1_0 or I2_S ternary tensors.
    Gguf,
    /// safetensors in transformers' BitNet packing.
    BitnetHf,
}

impl OutputFormat {
    /// Every output format.
    pub const ALL: [OutputFormat; 2] = [OutputFormat::Gguf, OutputFormat::BitnetHf];

    /// `gguf` or `bitnet-hf`.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Gguf => "gguf",
            OutputFormat::BitnetHf => "bitnet-hf",
        }
    }

    /// Parses [`OutputFormat::name`].
    pub fn from_name(name: &str) -> Result<OutputFormat> {
        Ok(Self::ALL[index_by_name(&Self::ALL.map(Self::name), "output", "output", name)?])
    }

    /// The ternary formats this output can hold, first the default.
    pub fn ternary_formats(self) -> impl Iterator<Item = StorageFormat> {
        StorageFormat::ALL
            .into_iter()
            .filter(move |f| f.info().kind == FormatKind::Ternary && f.info().outputs.contains(&self))
    }
}

/// What a format's values are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FormatKind {
    /// Codes in {-1, 0, +1} times a scale.
    Ternary,
    /// Signed bytes times a scale.
    Int8,
    /// IEEE or bfloat floats.
    Float,
}

impl FormatKind {
    /// `ternary`, `int8` or `float`.
    pub fn name(self) -> &'static str {
        match self {
            FormatKind::Ternary => "ternary",
            FormatKind::Int8 => "int8",
            FormatKind::Float => "float",
        }
    }
}

/// How the values of a format sit in its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Packing {
    /// ggml blocks of `block_values` along a row, each with its own f16 (Q8_K: f32)
    /// scale inside; packed by the `pack_*`/`quantize_*` kernels and unpacked by the
    /// `unpack_*`/`dequantize_*` kernels of the same name.
    GgmlBlocks,
    /// bitnet.cpp's I2_S: 2-bit codes interleaved in blocks of 128 (`pack_i2_s`,
    /// `unpack_i2_s`), then a tail whose first four bytes are the per-tensor f32 scale.
    InterleavedWithTail,
    /// transformers' BitNet packing: row `i*R + r` of R = ceil(rows / 4) packed rows at
    /// bits 2i..2i+1 of packed row r (`pack_bitnet_hf_row`, [`super::bitnet_hf`]).
    FourRowsPerByte,
    /// One signed byte per value, with f32 scales (and int8 zero points) beside.
    BytePerValue,
    /// Little-endian floats of `block_bytes` each.
    Float,
}

/// Everything about one storage format:
/// - `name`: the name in the JS API, the CLI and options (`tq2_0`, `q8_0`, `f16`...);
/// - `type_name`: the name files and reports give the stored type (ggml's `TQ2_0`,
///   safetensors' `F16`...);
/// - `block_values`, `block_bytes`: values per block along a row (rows must be a
///   multiple of it) and its bytes, scales inside the block included;
/// - `tensor_tail_bytes`: bytes stored once per tensor after the blocks;
/// - `side_scale_bytes`: bytes of f32 scale stored beside the data for each scope;
/// - `ggml_type`: GGUF's tensor type id, if ggml has this format;
/// - `file_type`: llama.cpp's `general.file_type` for a model mostly in this format;
/// - `outputs`: the model files the converter writes this format into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FormatInfo {
    pub name: &'static str,
    pub type_name: &'static str,
    pub kind: FormatKind,
    pub packing: Packing,
    pub block_values: u32,
    pub block_bytes: u32,
    pub tensor_tail_bytes: u32,
    pub side_scale_bytes: u32,
    pub ggml_type: Option<u32>,
    pub file_type: Option<u32>,
    pub outputs: &'static [OutputFormat],
}

/// Every format a tensor of this crate can be stored in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageFormat {
    Tq2_0,
    Tq1_0,
    I2S,
    BitnetHf,
    Codes,
    Q8_0,
    Q8K,
    Int8,
    F32,
    F16,
    BF16,
}

const GGUF: &[OutputFormat] = &[OutputFormat::Gguf];
const BITNET_HF: &[OutputFormat] = &[OutputFormat::BitnetHf];
const BOTH: &[OutputFormat] = &[OutputFormat::Gguf, OutputFormat::BitnetHf];
const NONE: &[OutputFormat] = &[];

const fn ternary(
    name: &'static str,
    type_name: &'static str,
    packing: Packing,
    (block_values, block_bytes): (u32, u32),
    ggml_type: Option<u32>,
    file_type: Option<u32>,
    outputs: &'static [OutputFormat],
) -> FormatInfo {
    FormatInfo {
        name,
        type_name,
        kind: FormatKind::Ternary,
        packing,
        block_values,
        block_bytes,
        tensor_tail_bytes: 0,
        side_scale_bytes: 0,
        ggml_type,
        file_type,
        outputs,
    }
}

const fn float(name: &'static str, type_name: &'static str, bytes: u32, ggml: u32, file_type: u32) -> FormatInfo {
    FormatInfo {
        name,
        type_name,
        kind: FormatKind::Float,
        packing: Packing::Float,
        block_values: 1,
        block_bytes: bytes,
        tensor_tail_bytes: 0,
        side_scale_bytes: 0,
        ggml_type: Some(ggml),
        file_type: Some(file_type),
        outputs: BOTH,
    }
}

const fn int8(name: &'static str, type_name: &'static str, block: (u32, u32), ggml: Option<u32>) -> FormatInfo {
    FormatInfo {
        name,
        type_name,
        kind: FormatKind::Int8,
        packing: Packing::GgmlBlocks,
        block_values: block.0,
        block_bytes: block.1,
        tensor_tail_bytes: 0,
        side_scale_bytes: 0,
        ggml_type: ggml,
        file_type: None,
        outputs: NONE,
    }
}

const TQ2_0: FormatInfo = ternary("tq2_0", "TQ2_0", Packing::GgmlBlocks, (256, 66), Some(35), Some(37), GGUF);
const TQ1_0: FormatInfo = ternary("tq1_0", "TQ1_0", Packing::GgmlBlocks, (256, 54), Some(34), Some(36), GGUF);
// bitnet.cpp's type 36 and LLAMA_FTYPE_MOSTLY_I2_S; its blocks of 128 values hold 32
// bytes of codes. Upstream ggml leaves type 36 unassigned, but its file type 40 is
// MOSTLY_Q1_0: only bitnet.cpp reads these files.
const I2_S: FormatInfo = FormatInfo {
    tensor_tail_bytes: 32,
    ..ternary("i2_s", "I2_S", Packing::InterleavedWithTail, (128, 32), Some(36), Some(40), GGUF)
};
// Files store it as U8 `[ceil(rows / 4), cols]` beside a `<name>_scale` tensor.
const BITNET_HF_PACKED: FormatInfo = FormatInfo {
    side_scale_bytes: 4,
    ..ternary("bitnet-hf", "bitnet-hf", Packing::FourRowsPerByte, (1, 1), None, None, BITNET_HF)
};
const CODES: FormatInfo =
    FormatInfo { side_scale_bytes: 4, ..ternary("codes", "codes", Packing::BytePerValue, (1, 1), None, None, NONE) };
// llama.cpp's LLAMA_FTYPE_MOSTLY_Q8_0; the converter's fallback for rows TQ cannot hold.
const Q8_0: FormatInfo = FormatInfo { file_type: Some(7), outputs: GGUF, ..int8("q8_0", "Q8_0", (32, 34), Some(8)) };
const Q8_K: FormatInfo = int8("q8_k", "Q8_K", (256, 292), Some(15));
// Scales and zero points beside the bytes; their count depends on the scope.
const INT8: FormatInfo = FormatInfo { packing: Packing::BytePerValue, ..int8("plain", "int8", (1, 1), None) };
const F32: FormatInfo = float("f32", "F32", 4, 0, 0);
const F16: FormatInfo = float("f16", "F16", 2, 1, 1);
// GGUF output stores bfloat16 inputs as F16, as llama.cpp's converter does by default.
const BF16: FormatInfo = FormatInfo { outputs: BITNET_HF, ..float("bf16", "BF16", 2, 30, 32) };

impl StorageFormat {
    /// Every format, ternary first.
    pub const ALL: [StorageFormat; 11] = [
        Self::Tq2_0,
        Self::Tq1_0,
        Self::I2S,
        Self::BitnetHf,
        Self::Codes,
        Self::Q8_0,
        Self::Q8K,
        Self::Int8,
        Self::F32,
        Self::F16,
        Self::BF16,
    ];

    /// The facts of this format.
    pub const fn info(self) -> &'static FormatInfo {
        match self {
            Self::Tq2_0 => &TQ2_0,
            Self::Tq1_0 => &TQ1_0,
            Self::I2S => &I2_S,
            Self::BitnetHf => &BITNET_HF_PACKED,
            Self::Codes => &CODES,
            Self::Q8_0 => &Q8_0,
            Self::Q8K => &Q8_K,
            Self::Int8 => &INT8,
            Self::F32 => &F32,
            Self::F16 => &F16,
            Self::BF16 => &BF16,
        }
    }

    /// [`FormatInfo::name`].
    pub const fn name(self) -> &'static str {
        self.info().name
    }

    /// The format of a ggml type id, if it is one of these.
    pub fn from_ggml_type(id: u32) -> Option<StorageFormat> {
        Self::ALL.into_iter().find(|f| f.info().ggml_type == Some(id))
    }

    /// Values per block along a row, as a `usize`.
    pub const fn block_values(self) -> usize {
        self.info().block_values as usize
    }

    /// Bytes per block, as a `usize`.
    pub const fn block_bytes(self) -> usize {
        self.info().block_bytes as usize
    }

    /// Stored bytes of `values` values (a multiple of the block), tail included, scales
    /// beside the data excluded; `None` on overflow.
    pub fn data_bytes(self, values: u64) -> Option<u64> {
        let info = self.info();
        (values / u64::from(info.block_values))
            .checked_mul(u64::from(info.block_bytes))?
            .checked_add(u64::from(info.tensor_tail_bytes))
    }
}

// The block structs are the layouts; the table's numbers must be theirs.
const _: () = assert!(core::mem::size_of::<BlockTq2_0>() == StorageFormat::Tq2_0.block_bytes());
const _: () = assert!(StorageFormat::Tq2_0.block_values() == QK_K);
const _: () = assert!(core::mem::size_of::<BlockTq1_0>() == StorageFormat::Tq1_0.block_bytes());
const _: () = assert!(StorageFormat::Tq1_0.block_values() == QK_K);
const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == StorageFormat::Q8_0.block_bytes());
const _: () = assert!(StorageFormat::Q8_0.block_values() == QK8_0);
const _: () = assert!(core::mem::size_of::<BlockQ8K>() == StorageFormat::Q8K.block_bytes());
const _: () = assert!(StorageFormat::Q8K.block_values() == QK_K);
const _: () = assert!(StorageFormat::I2S.block_values() == 4 * StorageFormat::I2S.block_bytes());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_type_ids_are_unique() {
        for (i, a) in StorageFormat::ALL.iter().enumerate() {
            for b in &StorageFormat::ALL[i + 1..] {
                assert_ne!(a.name(), b.name());
                assert_ne!(a.info().type_name, b.info().type_name);
                if a.info().ggml_type.is_some() {
                    assert_ne!(a.info().ggml_type, b.info().ggml_type, "{a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn each_output_takes_its_ternary_formats() {
        let gguf: Vec<_> = OutputFormat::Gguf.ternary_formats().collect();
        assert_eq!(gguf, [StorageFormat::Tq2_0, StorageFormat::Tq1_0, StorageFormat::I2S]);
        let hf: Vec<_> = OutputFormat::BitnetHf.ternary_formats().collect();
        assert_eq!(hf, [StorageFormat::BitnetHf]);
    }

    #[test]
    fn data_bytes_count_blocks_and_tails() {
        assert_eq!(StorageFormat::Tq2_0.data_bytes(512), Some(132));
        assert_eq!(StorageFormat::I2S.data_bytes(256), Some(64 + 32));
        assert_eq!(StorageFormat::F16.data_bytes(3), Some(6));
        assert_eq!(StorageFormat::Q8_0.data_bytes(u64::MAX), None);
    }
}
