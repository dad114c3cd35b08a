//! Error metrics of a reconstruction against its reference, summed in f64.

use crate::error::{Error, Result};
use crate::kernels::Backend;

/// How far a reconstruction is from its reference.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorStats {
    pub mse: f64,
    pub rmse: f64,
    pub max_abs_error: f64,
    /// 10 log10(sum x^2 / sum err^2); +inf when the error is zero.
    pub snr_db: f64,
    /// Cosine similarity; 1 when both are all zero, 0 when exactly one is.
    pub cosine: f64,
}

/// Metrics of `approx` against `reference`. Both must be finite, non-empty and of one length.
pub fn error_stats(reference: &[f32], approx: &[f32], backend: Backend) -> Result<ErrorStats> {
    let k = backend.kernels().ok_or_else(|| Error::Unsupported(format!("backend {backend} on this machine")))?;
    if reference.is_empty() {
        return Err(Error::EmptyInput { what: "original" });
    }
    if approx.len() != reference.len() {
        return Err(Error::ShapeMismatch { what: "reconstructed", expected: reference.len(), actual: approx.len() });
    }
    for (what, x) in [("original", reference), ("reconstructed", approx)] {
        if let Some(index) = (k.first_non_finite)(x) {
            return Err(Error::NonFinite { what, index, value: x[index] });
        }
    }
    let s = (k.metric_sums)(reference, approx);
    let n = reference.len() as f64;
    let mse = s.err_sq / n;
    let snr_db = if s.err_sq == 0.0 { f64::INFINITY } else { 10.0 * (s.ref_sq / s.err_sq).log10() };
    let norms = s.ref_sq.sqrt() * s.approx_sq.sqrt();
    let cosine = if norms > 0.0 {
        (s.dot / norms).clamp(-1.0, 1.0)
    } else if s.ref_sq == 0.0 && s.approx_sq == 0.0 {
        1.0
    } else {
        0.0
    };
    Ok(ErrorStats { mse, rmse: mse.sqrt(), max_abs_error: s.max_abs_err, snr_db, cosine })
}
