//! Scopes: which values share one scale.

use crate::error::{one_of, Error, Result};

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
                reason: format!("unknown scope '{name}' (expected {})", one_of(&["tensor", "row", "block"])),
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
