//! The math: how values become codes and scales.

pub mod int8;
pub mod metrics;
pub mod ternary;

use crate::error::{Error, Result};

/// The set of values that share one scale.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scope {
    /// One scale for the whole tensor.
    Tensor,
    /// One scale per row (per output channel for weights, per token for activations).
    Row,
    /// One scale per run of n values within a row.
    Block(usize),
}

impl Scope {
    /// Parses the JS/CLI names `tensor`, `row` and `block` (with its block size).
    pub fn from_name(name: &str, block_size: usize) -> Result<Self> {
        match name {
            "tensor" => Ok(Self::Tensor),
            "row" => Ok(Self::Row),
            "block" => Ok(Self::Block(block_size)),
            _ => Err(Error::InvalidOption {
                name: "scope",
                reason: format!("unknown scope '{name}' (expected tensor, row or block)"),
            }),
        }
    }

    /// The JS/CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tensor => "tensor",
            Self::Row => "row",
            Self::Block(_) => "block",
        }
    }

    /// Number of scopes in a `rows x cols` tensor (block scopes must divide `cols`).
    pub fn count(self, rows: usize, cols: usize) -> usize {
        match self {
            Self::Tensor => 1,
            Self::Row => rows,
            Self::Block(n) => rows * cols.div_ceil(n.max(1)),
        }
    }

    /// Elements per scope in a `rows x cols` tensor; every scope is a contiguous run.
    pub fn span(self, rows: usize, cols: usize) -> usize {
        match self {
            Self::Tensor => rows * cols,
            Self::Row => cols,
            Self::Block(n) => n,
        }
    }
}

/// Checks the data against its shape: non-empty and of exactly `rows * cols` values.
pub(crate) fn check_shape(data: &[f32], rows: usize, cols: usize, what: &'static str) -> Result<()> {
    if data.is_empty() || rows == 0 || cols == 0 {
        return Err(Error::EmptyInput { what });
    }
    let expected = crate::error::checked_mul(rows, cols, "rows * cols")?;
    if data.len() != expected {
        return Err(Error::ShapeMismatch { what, expected, actual: data.len() });
    }
    Ok(())
}

/// Checks that every value of `x` is finite; `offset` is the index of `x[0]` in the
/// whole input, so the error names the input's index.
pub(crate) fn check_finite(
    kernels: &crate::kernels::Kernels,
    x: &[f32],
    offset: usize,
    what: &'static str,
) -> Result<()> {
    match (kernels.first_non_finite)(x) {
        Some(i) => Err(Error::NonFinite { what, index: offset + i, value: x[i] }),
        None => Ok(()),
    }
}

/// Checks the data against its shape and the input policy: non-empty, exact length,
/// every value finite.
pub(crate) fn check_input(
    kernels: &crate::kernels::Kernels,
    data: &[f32],
    rows: usize,
    cols: usize,
    what: &'static str,
) -> Result<()> {
    check_shape(data, rows, cols, what)?;
    check_finite(kernels, data, 0, what)
}
