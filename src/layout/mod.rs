//! Byte layouts: what a quantized tensor looks like in memory and in files.

pub mod bitnet_hf;
pub mod blocks;
mod scope;

use crate::error::{checked_mul, Error, Result};
use blocks::{BlockTq1_0, BlockTq2_0, QK_K};
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
pub const QK_I2_S: usize = 128;
/// Bytes after the I2_S codes; the first four hold the f32 scale.
pub const I2_S_TAIL: usize = 32;

impl TernaryLayout {
    /// Every layout.
    pub const ALL: [TernaryLayout; 5] = [Self::Tq2_0, Self::Tq1_0, Self::BitnetHf, Self::I2S, Self::Codes];

    /// The name used in the JS API, the CLI and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tq2_0 => "tq2_0",
            Self::Tq1_0 => "tq1_0",
            Self::BitnetHf => "bitnet-hf",
            Self::I2S => "i2_s",
            Self::Codes => "codes",
        }
    }

    /// Parses [`TernaryLayout::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        Self::ALL.into_iter().find(|l| l.name() == name).ok_or_else(|| Error::InvalidOption {
            name: "layout",
            reason: format!("unknown layout '{name}' (expected tq2_0, tq1_0, bitnet-hf, i2_s or codes)"),
        })
    }

    /// Values per block whose length rows must be a multiple of, if any.
    pub fn row_block(self) -> Option<usize> {
        match self {
            Self::Tq2_0 | Self::Tq1_0 => Some(QK_K),
            Self::I2S => Some(QK_I2_S),
            Self::BitnetHf | Self::Codes => None,
        }
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
            _ => Ok(()),
        }
    }

    /// Whether this layout can store scales of this scope at all, whatever the shape.
    pub fn check_scope(self, scope: Scope) -> Result<()> {
        match (self, scope) {
            (_, Scope::Block(0)) => Err(Error::InvalidOption { name: "blockSize", reason: "must be positive".into() }),
            (Self::Tq2_0 | Self::Tq1_0, Scope::Block(n)) if n != QK_K => Err(Error::Unsupported(format!(
                "{} stores one scale per 256 values, so the block scope needs blockSize 256, not {n}",
                self.name()
            ))),
            (Self::BitnetHf | Self::I2S, Scope::Row | Scope::Block(_)) => {
                Err(Error::Unsupported(format!("{} stores one scale per tensor; use the tensor scope", self.name())))
            }
            _ => Ok(()),
        }
    }

    /// Length of [`crate::TernaryTensor::bytes`] for a tensor this layout can store.
    pub fn data_bytes(self, rows: usize, cols: usize) -> Result<usize> {
        let n = checked_mul(rows, cols, "rows * cols")?;
        match self {
            Self::Tq2_0 => checked_mul(n / QK_K, core::mem::size_of::<BlockTq2_0>(), "TQ2_0 bytes"),
            Self::Tq1_0 => checked_mul(n / QK_K, core::mem::size_of::<BlockTq1_0>(), "TQ1_0 bytes"),
            Self::BitnetHf => checked_mul(rows.div_ceil(4), cols, "bitnet-hf bytes"),
            Self::I2S => (n / 4).checked_add(I2_S_TAIL).ok_or(Error::SizeOverflow { what: "I2_S bytes" }),
            Self::Codes => Ok(n),
        }
    }

    /// Bytes of scales stored beside the data (TQ layouts keep theirs inside it).
    pub fn side_scale_bytes(self, scopes: usize) -> usize {
        match self {
            Self::Tq2_0 | Self::Tq1_0 | Self::I2S => 0,
            Self::BitnetHf | Self::Codes => 4 * scopes,
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
        let data = match self {
            Self::Tq2_0 => n / QK_K as u64 * 66,
            Self::Tq1_0 => n / QK_K as u64 * 54,
            Self::BitnetHf => rows.div_ceil(4).checked_mul(cols).ok_or(overflow("bitnet-hf bytes"))?,
            Self::I2S => n / 4 + I2_S_TAIL as u64,
            Self::Codes => n,
        };
        let side = match self {
            Self::BitnetHf | Self::Codes => scopes.checked_mul(4).ok_or(overflow("scale bytes"))?,
            _ => 0,
        };
        data.checked_add(side).ok_or(overflow("stored bytes"))
    }
}

impl core::fmt::Display for TernaryLayout {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}
