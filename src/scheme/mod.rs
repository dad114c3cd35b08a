//! The math: how values become codes and scales.

pub mod int8;
pub mod metrics;
mod optimal;
mod order;
pub mod ternary;

use crate::error::{Error, Result};

/// Where scales apply; it lives with the layouts, which store one scale per scope.
pub use crate::layout::Scope;

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
