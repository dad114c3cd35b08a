//! Error metrics of a reconstruction against its reference, summed in f64.

use crate::error::{Error, Result};
use crate::kernels::{Backend, Kernels, MetricSums};

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
    let mut sums = ErrorSums::new(backend)?;
    if reference.is_empty() {
        return Err(Error::EmptyInput { what: "original" });
    }
    sums.add(reference, approx)?;
    Ok(sums.finish())
}

/// [`error_stats`] accumulated over consecutive chunks, for callers that reconstruct a
/// tensor a piece at a time rather than hold a second copy of it. The figures equal the
/// whole-slice ones up to the order of the f64 sums.
pub(crate) struct ErrorSums {
    kernels: &'static Kernels,
    sums: MetricSums,
    /// Values added so far: the index of the next chunk's first value.
    count: usize,
}

impl ErrorSums {
    pub(crate) fn new(backend: Backend) -> Result<Self> {
        let kernels =
            backend.kernels().ok_or_else(|| Error::Unsupported(format!("backend {backend} on this machine")))?;
        let sums = MetricSums { ref_sq: 0.0, err_sq: 0.0, dot: 0.0, approx_sq: 0.0, max_abs_err: 0.0 };
        Ok(Self { kernels, sums, count: 0 })
    }

    /// Adds the next chunk; non-finite values are errors with their index in the whole.
    pub(crate) fn add(&mut self, reference: &[f32], approx: &[f32]) -> Result<()> {
        let k = self.kernels;
        if approx.len() != reference.len() {
            return Err(Error::ShapeMismatch {
                what: "reconstructed",
                expected: reference.len(),
                actual: approx.len(),
            });
        }
        for (what, x) in [("original", reference), ("reconstructed", approx)] {
            if let Some(i) = (k.first_non_finite)(x) {
                return Err(Error::NonFinite { what, index: self.count + i, value: x[i] });
            }
        }
        let s = (k.metric_sums)(reference, approx);
        if self.count == 0 {
            self.sums = s;
        } else {
            self.sums.ref_sq += s.ref_sq;
            self.sums.err_sq += s.err_sq;
            self.sums.dot += s.dot;
            self.sums.approx_sq += s.approx_sq;
            self.sums.max_abs_err = self.sums.max_abs_err.max(s.max_abs_err);
        }
        self.count += reference.len();
        Ok(())
    }

    /// The metrics of everything added (at least one value).
    pub(crate) fn finish(&self) -> ErrorStats {
        let s = &self.sums;
        let n = self.count as f64;
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
        ErrorStats { mse, rmse: mse.sqrt(), max_abs_error: s.max_abs_err, snr_db, cosine }
    }
}

/// `n` standard Gaussian values from a fixed seed (xorshift64 and Box-Muller), the same
/// on every machine: probes and test weights that anyone can draw again.
pub fn gaussian_probe(n: usize) -> Vec<f32> {
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut uniform = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u1, u2) = (uniform(), uniform());
            ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32).map(|i| ((i.wrapping_mul(2654435761) ^ seed) % 2001) as f32 / 1000.0 - 1.0).collect()
    }

    #[test]
    fn chunked_sums_match_the_whole_and_place_non_finite_values() {
        let (x, y) = (data(1000, 1), data(1000, 2));
        let whole = error_stats(&x, &y, Backend::Scalar).unwrap();
        let mut one = ErrorSums::new(Backend::Scalar).unwrap();
        one.add(&x, &y).unwrap();
        assert_eq!(one.finish(), whole, "one chunk is the whole computation");

        let mut chunked = ErrorSums::new(Backend::Scalar).unwrap();
        for (a, b) in x.chunks(96).zip(y.chunks(96)) {
            chunked.add(a, b).unwrap();
        }
        let got = chunked.finish();
        for (g, w) in [(got.mse, whole.mse), (got.snr_db, whole.snr_db), (got.cosine, whole.cosine)] {
            assert!((g - w).abs() <= 1e-12 * w.abs(), "{g} vs {w}");
        }
        assert_eq!(got.max_abs_error, whole.max_abs_error);

        let mut bad = y.clone();
        bad[250] = f32::NAN;
        let mut sums = ErrorSums::new(Backend::Scalar).unwrap();
        sums.add(&x[..200], &bad[..200]).unwrap();
        let err = sums.add(&x[200..], &bad[200..]).unwrap_err();
        assert!(
            matches!(err, Error::NonFinite { what: "reconstructed", index: 250, value } if value.is_nan()),
            "{err:?}"
        );
    }
}
