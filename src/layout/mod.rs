//! Byte layouts: what a quantized tensor looks like in memory and in files.

pub mod bitnet_hf;
pub mod blocks;
pub mod format;
mod scope;

use crate::error::{checked_mul, index_by_name, Error, Result};
pub use format::{FormatInfo, FormatKind, OutputFormat, Packing, StorageFormat};
pub use scope::Scope;

/// Where the ternary codes and scales of a tensor are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum TernaryLayout {
    /// ggml TQ2_0: 66 bytes per 256 values (2.0625 bits/weight).
    #[serde(rename = "tq2_0")]
    Tq2_0,
    /// ggml TQ1_0: 54 bytes per 256 values (1.6875 bits/weight).
    #[serde(rename = "tq1_0")]
    Tq1_0,
    /// transformers' BitNet packing: four rows per byte, one f32 scale per tensor.
    #[serde(rename = "bitnet-hf")]
    BitnetHf,
    /// bitnet.cpp's I2_S (GGUF type 36, x86 layout): 2-bit codes in blocks of 128, then
    /// a 32-byte tail whose first 4 bytes are the per-tensor f32 scale.
    #[serde(rename = "i2_s")]
    I2S,
    /// One signed byte per value, plus one f32 scale per scope.
    #[serde(rename = "codes")]
    Codes,
}

/// Values per I2_S block.
pub const QK_I2_S: usize = StorageFormat::I2S.block_values();
/// Bytes after the I2_S codes; the first four hold the f32 scale.
pub const I2_S_TAIL: usize = StorageFormat::I2S.info().tensor_tail_bytes as usize;

impl TernaryLayout {
    /// Every layout.
    pub const ALL: [TernaryLayout; 5] = [Self::Tq2_0, Self::Tq1_0, Self::BitnetHf, Self::I2S, Self::Codes];

    /// The storage format, where every number about this layout is written.
    pub const fn format(self) -> StorageFormat {
        match self {
            Self::Tq2_0 => StorageFormat::Tq2_0,
            Self::Tq1_0 => StorageFormat::Tq1_0,
            Self::BitnetHf => StorageFormat::BitnetHf,
            Self::I2S => StorageFormat::I2S,
            Self::Codes => StorageFormat::Codes,
        }
    }

    /// The layout stored in `format`, if it is a ternary one.
    pub const fn from_format(format: StorageFormat) -> Option<Self> {
        match format {
            StorageFormat::Tq2_0 => Some(Self::Tq2_0),
            StorageFormat::Tq1_0 => Some(Self::Tq1_0),
            StorageFormat::BitnetHf => Some(Self::BitnetHf),
            StorageFormat::I2S => Some(Self::I2S),
            StorageFormat::Codes => Some(Self::Codes),
            StorageFormat::Q8_0
            | StorageFormat::Q8K
            | StorageFormat::Int8
            | StorageFormat::F32
            | StorageFormat::F16
            | StorageFormat::BF16 => None,
        }
    }

    /// The name used in the JS API, the CLI and reports.
    pub fn name(self) -> &'static str {
        self.format().name()
    }

    /// Parses [`TernaryLayout::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(Self::ALL[index_by_name(&Self::ALL.map(Self::name), "layout", "layout", name)?])
    }

    /// Values per block whose length rows must be a multiple of, if any.
    pub fn row_block(self) -> Option<usize> {
        let block = self.format().block_values();
        (block > 1).then_some(block)
    }

    /// Checks that this layout can store a `rows x cols` tensor with the given scope.
    pub fn check(self, rows: usize, cols: usize, scope: Scope) -> Result<()> {
        if rows == 0 || cols == 0 {
            return Err(Error::EmptyInput { what: "tensor shape" });
        }
        checked_mul(rows, cols, "rows * cols")?;
        self.check_rows_of(cols as u64, scope)
    }

    /// The row-length and scope rules of [`TernaryLayout::check`], for any row count.
    fn check_rows_of(self, cols: u64, scope: Scope) -> Result<()> {
        if let Some(block) = self.row_block() {
            if !cols.is_multiple_of(block as u64) {
                return Err(Error::RowNotBlockAligned { layout: self.name(), block, cols: cols as usize });
            }
        }
        self.check_scope(scope)?;
        match (self, scope) {
            (Self::Codes, Scope::Block(n)) if !cols.is_multiple_of(n as u64) => {
                Err(Error::RowNotBlockAligned { layout: "codes with the block scope", block: n, cols: cols as usize })
            }
            (Self::Tq2_0 | Self::Tq1_0 | Self::BitnetHf | Self::I2S | Self::Codes, _) => Ok(()),
        }
    }

    /// Whether this layout can store scales of this scope at all, whatever the shape.
    pub fn check_scope(self, scope: Scope) -> Result<()> {
        let Scope::Block(n) = scope else {
            return match (self, scope) {
                (Self::BitnetHf | Self::I2S, Scope::Row) => Err(self.one_scale_per_tensor()),
                (Self::Tq2_0 | Self::Tq1_0 | Self::BitnetHf | Self::I2S | Self::Codes, _) => Ok(()),
            };
        };
        if n == 0 {
            return Err(Error::InvalidOption { name: "blockSize", reason: "must be positive".into() });
        }
        let block = self.format().block_values();
        match self {
            Self::Tq2_0 | Self::Tq1_0 if n != block => Err(Error::Unsupported(format!(
                "{} stores one scale per {block} values, so the block scope needs blockSize {block}, not {n}",
                self.name()
            ))),
            Self::BitnetHf | Self::I2S => Err(self.one_scale_per_tensor()),
            Self::Tq2_0 | Self::Tq1_0 | Self::Codes => Ok(()),
        }
    }

    fn one_scale_per_tensor(self) -> Error {
        Error::Unsupported(format!("{} stores one scale per tensor; use the tensor scope", self.name()))
    }

    /// Length of [`crate::TernaryTensor::bytes`] for a tensor this layout can store.
    pub fn data_bytes(self, rows: usize, cols: usize) -> Result<usize> {
        checked_mul(rows, cols, "rows * cols")?;
        let bytes = self.data_bytes_u64(rows as u64, cols as u64)?;
        usize::try_from(bytes).map_err(|_| Error::SizeOverflow { what: self.bytes_what() })
    }

    /// Bytes of scales stored beside the data (TQ layouts keep theirs inside it).
    pub fn side_scale_bytes(self, scopes: usize) -> usize {
        self.format().info().side_scale_bytes as usize * scopes
    }

    /// [`TernaryLayout::data_bytes`] in u64, for shapes a 32-bit `usize` cannot count.
    fn data_bytes_u64(self, rows: u64, cols: u64) -> Result<u64> {
        let overflow = Error::SizeOverflow { what: self.bytes_what() };
        let n = rows.checked_mul(cols).ok_or(Error::SizeOverflow { what: "rows * cols" })?;
        match self.format().info().packing {
            Packing::FourRowsPerByte => rows.div_ceil(4).checked_mul(cols).ok_or(overflow),
            Packing::GgmlBlocks | Packing::InterleavedWithTail | Packing::BytePerValue | Packing::Float => {
                self.format().data_bytes(n).ok_or(overflow)
            }
        }
    }

    fn bytes_what(self) -> &'static str {
        match self {
            Self::Tq2_0 => "TQ2_0 bytes",
            Self::Tq1_0 => "TQ1_0 bytes",
            Self::BitnetHf => "bitnet-hf bytes",
            Self::I2S => "I2_S bytes",
            Self::Codes => "codes bytes",
        }
    }
}

impl TernaryLayout {
    /// Every stored byte of a `rows x cols` tensor, scales included, counted in u64 so
    /// that whole models fit on 32-bit targets too.
    pub fn stored_bytes(self, rows: u64, cols: u64, scope: Scope) -> Result<u64> {
        let overflow = |what| Error::SizeOverflow { what };
        if rows == 0 || cols == 0 {
            return Err(Error::EmptyInput { what: "tensor shape" });
        }
        let n = rows.checked_mul(cols).ok_or(overflow("rows * cols"))?;
        self.check_rows_of(cols, scope)?;
        let scopes = match scope {
            Scope::Tensor => 1,
            Scope::Row => rows,
            Scope::Block(b) => n / b as u64,
        };
        let data = self.data_bytes_u64(rows, cols)?;
        let side =
            scopes.checked_mul(u64::from(self.format().info().side_scale_bytes)).ok_or(overflow("scale bytes"))?;
        data.checked_add(side).ok_or(overflow("stored bytes"))
    }
}

impl core::fmt::Display for TernaryLayout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
