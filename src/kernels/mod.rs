//! Kernels and their backends.
//!
//! Every backend module (`scalar`, `x86_64::avx2`, `x86_64::avx512`, `wasm32::simd128`)
//! has functions of the same names and signatures; [`Kernels`] is the table of them.
//! On x86_64 the best backend is detected at run time and cached; on wasm32 it is fixed
//! at compile time by the `simd128` target feature. The scalar module is the spec.

/// Fills a [`Kernels`] table from a module that has every kernel by name.
// Defined before the backend modules so that its textual scope reaches them.
macro_rules! kernel_table {
    ($m:path) => {{
        use $m as m;
        $crate::kernels::Kernels {
            first_non_finite: m::first_non_finite,
            abs_sum: m::abs_sum,
            abs_max: m::abs_max,
            min_max: m::min_max,
            abs_sum_above: m::abs_sum_above,
            ternary_codes: m::ternary_codes,
            pack_tq2_0: m::pack_tq2_0,
            unpack_tq2_0: m::unpack_tq2_0,
            dequantize_tq2_0: m::dequantize_tq2_0,
            pack_tq1_0: m::pack_tq1_0,
            unpack_tq1_0: m::unpack_tq1_0,
            dequantize_tq1_0: m::dequantize_tq1_0,
            pack_bitnet_hf_row: m::pack_bitnet_hf_row,
            pack_i2_s: m::pack_i2_s,
            unpack_i2_s: m::unpack_i2_s,
            quantize_i8_symmetric: m::quantize_i8_symmetric,
            quantize_i8_asymmetric: m::quantize_i8_asymmetric,
            dequantize_i8: m::dequantize_i8,
            quantize_q8_0: m::quantize_q8_0,
            dequantize_q8_0: m::dequantize_q8_0,
            quantize_q8_k: m::quantize_q8_k,
            dequantize_q8_k: m::dequantize_q8_k,
            f16_to_f32: m::f16_to_f32,
            bf16_to_f32: m::bf16_to_f32,
            metric_sums: m::metric_sums,
            dot_tq2_0_q8_k: m::dot_tq2_0_q8_k,
            dot_codes_i8: m::dot_codes_i8,
            dot_f32: m::dot_f32,
        }
    }};
}

pub mod scalar;
#[cfg(target_arch = "wasm32")]
pub mod wasm32;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

use crate::layout::blocks::{BlockQ8K, BlockQ8_0, BlockTq1_0, BlockTq2_0};
use std::sync::atomic::{AtomicU8, Ordering};

/// Number of logical f64 accumulators in every floating-point sum (see `scalar`).
pub const SUM_LANES: usize = 16;

/// How a value becomes a ternary code.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CodeRule {
    /// q = clamp(round_half_away(x * inv), -1, 1), with a NaN product giving 0.
    Scaled { inv: f32 },
    /// q = sign(x) where |x| > threshold, else 0.
    Threshold { threshold: f32 },
}

/// The f64 sums behind the error metrics.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MetricSums {
    /// sum of reference^2
    pub ref_sq: f64,
    /// sum of (reference - approx)^2
    pub err_sq: f64,
    /// sum of reference * approx
    pub dot: f64,
    /// sum of approx^2
    pub approx_sq: f64,
    /// max |reference - approx|
    pub max_abs_err: f64,
}

/// A set of kernels; every backend provides one with identical results.
#[allow(clippy::type_complexity)]
pub struct Kernels {
    pub first_non_finite: fn(&[f32]) -> Option<usize>,
    pub abs_sum: fn(&[f32]) -> f64,
    pub abs_max: fn(&[f32]) -> f32,
    pub min_max: fn(&[f32]) -> (f32, f32),
    pub abs_sum_above: fn(&[f32], f32) -> (f64, u64),
    pub ternary_codes: fn(&[f32], CodeRule, &mut [i8]),
    pub pack_tq2_0: fn(&[f32], CodeRule, [u8; 2], &mut [BlockTq2_0]),
    pub unpack_tq2_0: fn(&[BlockTq2_0], &mut [i8]),
    pub dequantize_tq2_0: fn(&[BlockTq2_0], &mut [f32]),
    pub pack_tq1_0: fn(&[f32], CodeRule, [u8; 2], &mut [BlockTq1_0]),
    pub unpack_tq1_0: fn(&[BlockTq1_0], &mut [i8]),
    pub dequantize_tq1_0: fn(&[BlockTq1_0], &mut [f32]),
    pub pack_bitnet_hf_row: fn(&[&[f32]], CodeRule, &mut [u8]),
    pub pack_i2_s: fn(&[f32], CodeRule, &mut [u8]),
    pub unpack_i2_s: fn(&[u8], &mut [i8]),
    pub quantize_i8_symmetric: fn(&[f32], f32, f32, &mut [i8]),
    pub quantize_i8_asymmetric: fn(&[f32], f32, i32, f32, f32, &mut [i8]),
    pub dequantize_i8: fn(&[i8], f32, i32, &mut [f32]),
    pub quantize_q8_0: fn(&[f32], &mut [BlockQ8_0]),
    pub dequantize_q8_0: fn(&[BlockQ8_0], &mut [f32]),
    pub quantize_q8_k: fn(&[f32], &mut [BlockQ8K]),
    pub dequantize_q8_k: fn(&[BlockQ8K], &mut [f32]),
    pub f16_to_f32: fn(&[u16], &mut [f32]),
    pub bf16_to_f32: fn(&[u16], &mut [f32]),
    pub metric_sums: fn(&[f32], &[f32]) -> MetricSums,
    pub dot_tq2_0_q8_k: fn(&[BlockTq2_0], &[BlockQ8K]) -> f32,
    pub dot_codes_i8: fn(&[i8], &[i8]) -> i64,
    pub dot_f32: fn(&[f32], &[f32]) -> f32,
}

/// The scalar table is always built, except in wasm32 SIMD128 builds without the
/// `scalar-backend` feature: there the SIMD128 kernels cover every input (the scalar
/// functions they call for tails stay), and leaving the table out keeps the unused
/// scalar kernels out of the `.wasm`.
#[cfg(any(not(all(target_arch = "wasm32", target_feature = "simd128")), feature = "scalar-backend"))]
static SCALAR: Kernels = kernel_table!(self::scalar);

/// The table every supported backend falls back to.
fn fallback_kernels() -> &'static Kernels {
    #[cfg(any(not(all(target_arch = "wasm32", target_feature = "simd128")), feature = "scalar-backend"))]
    return &SCALAR;
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(feature = "scalar-backend")))]
    return &wasm32::TABLE;
}

/// A kernel backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Backend {
    /// Portable Rust; the specification.
    Scalar,
    /// x86_64 AVX2 (+FMA-free, +F16C not required).
    Avx2,
    /// x86_64 AVX-512 (F, BW, VL, VNNI).
    Avx512,
    /// wasm32 SIMD128.
    Simd128,
}

impl Backend {
    /// Every backend, whether or not this machine runs it.
    pub const ALL: [Backend; 4] = [Backend::Scalar, Backend::Avx2, Backend::Avx512, Backend::Simd128];

    /// The lower-case name used in the JS API and reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
            Backend::Simd128 => "simd128",
        }
    }

    /// Whether this machine (or this wasm build) can run the backend.
    pub fn is_supported(self) -> bool {
        self.kernels().is_some()
    }

    /// The backends this machine can run, fastest last.
    pub fn supported() -> Vec<Backend> {
        Self::ALL.into_iter().filter(|b| b.is_supported()).collect()
    }

    /// The fastest supported backend, detected once and cached.
    pub fn best() -> Backend {
        const UNSET: u8 = u8::MAX;
        static BEST: AtomicU8 = AtomicU8::new(UNSET);
        match BEST.load(Ordering::Relaxed) {
            UNSET => {
                let best = *Self::supported().last().unwrap_or(&Backend::Scalar);
                BEST.store(best as u8, Ordering::Relaxed);
                best
            }
            i => Self::ALL[i as usize],
        }
    }

    /// The kernel table of this backend, or `None` where it is not supported.
    pub fn kernels(self) -> Option<&'static Kernels> {
        match self {
            #[cfg(any(not(all(target_arch = "wasm32", target_feature = "simd128")), feature = "scalar-backend"))]
            Backend::Scalar => Some(&SCALAR),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx2 => x86_64::avx2_kernels(),
            #[cfg(target_arch = "x86_64")]
            Backend::Avx512 => x86_64::avx512_kernels(),
            #[cfg(target_arch = "wasm32")]
            Backend::Simd128 => wasm32::simd128_kernels(),
            #[allow(unreachable_patterns)]
            _ => None,
        }
    }

    /// The kernel table of a backend already known to be supported.
    pub(crate) fn kernels_or_scalar(self) -> &'static Kernels {
        self.kernels().unwrap_or_else(fallback_kernels)
    }
}

impl core::fmt::Display for Backend {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests;
