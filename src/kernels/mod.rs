//! Kernels and their backends.
//!
//! Every backend module (`scalar`, `x86_64::avx2`, `x86_64::avx512`, `wasm32::simd128`,
//! `wasm32::relaxed`) has functions of the same names and signatures; [`Kernels`] is the table of them.
//! On x86_64 the best backend is detected at run time and cached; on wasm32 it is fixed
//! at compile time by the `simd128` target feature and the `relaxed-simd` crate feature. The scalar module is the spec.

/// The kernel list, written once: every backend module has each of these functions
/// under the same name and signature. `for_each_kernel!(m)` (or `for_each_kernel!(m, arg)`)
/// calls macro `m` with the list (after `(arg)`), which is how the [`Kernels`] struct,
/// each backend's table and the x86 safe wrappers are written from it. Adding a kernel
/// is one line here plus its function in every backend; the compiler finds a backend
/// that lacks it.
// Defined before the backend modules so that its textual scope reaches them.
macro_rules! for_each_kernel {
    ($callback:ident $(, $arg:path)?) => {
        $callback! {
            $(($arg))?
        /// Index of the first NaN or infinity.
        fn first_non_finite(x: &[f32]) -> Option<usize>;
        /// Sum of |x| in the 16-lane order of the spec.
        fn abs_sum(x: &[f32]) -> f64;
        /// max |x|, or 0 for an empty slice.
        fn abs_max(x: &[f32]) -> f32;
        /// (min, max) of x; (+inf, -inf) for an empty slice.
        fn min_max(x: &[f32]) -> (f32, f32);
        /// (sum of |x| over |x| > t, count of such x).
        fn abs_sum_above(x: &[f32], t: f32) -> (f64, u64);
        // The two kernels of the optimal rule's tallies, which only x86 builds take
        // (`scheme::optimal::tallies`).
        #[cfg(target_arch = "x86_64")]
        /// For each threshold t: (sum of |x| * scale rounded to an integer (to nearest, ties to
        /// even) over |x| > t, count of such x); `scale` keeps every |x| * scale at most 2^15.
        fn abs_tallies_above(x: &[f32], scale: f32, thresholds: &[f32; $crate::kernels::TALLIES]) -> [(u64, u64); $crate::kernels::TALLIES];
        #[cfg(target_arch = "x86_64")]
        /// The bits of every |x| with low < |x| <= high, in order of x: the first `out.len()`
        /// of them in `out` (the rest of `out` may change); returns how many there are.
        fn abs_bits_within(x: &[f32], low: f32, high: f32, out: &mut [u32]) -> usize;
        /// Up to [`FEW_SORTED`](crate::kernels::FEW_SORTED) magnitudes' bits (each at most
        /// 0x7fff_ffff) in decreasing order.
        fn sort_few_decreasing(values: &mut [u32]);
        /// Ternary codes q of every value.
        fn ternary_codes(x: &[f32], rule: $crate::kernels::CodeRule, out: &mut [i8]);
        /// TQ2_0 blocks of `x` (a multiple of 256 values), all with scale bits `d`.
        fn pack_tq2_0(x: &[f32], rule: $crate::kernels::CodeRule, d: [u8; 2], out: &mut [$crate::layout::blocks::BlockTq2_0]);
        /// Codes of TQ2_0 blocks.
        fn unpack_tq2_0(blocks: &[$crate::layout::blocks::BlockTq2_0], out: &mut [i8]);
        /// Dequantized values of TQ2_0 blocks.
        fn dequantize_tq2_0(blocks: &[$crate::layout::blocks::BlockTq2_0], out: &mut [f32]);
        /// TQ1_0 blocks of `x` (a multiple of 256 values), all with scale bits `d`.
        fn pack_tq1_0(x: &[f32], rule: $crate::kernels::CodeRule, d: [u8; 2], out: &mut [$crate::layout::blocks::BlockTq1_0]);
        /// Codes of TQ1_0 blocks.
        fn unpack_tq1_0(blocks: &[$crate::layout::blocks::BlockTq1_0], out: &mut [i8]);
        /// Dequantized values of TQ1_0 blocks.
        fn dequantize_tq1_0(blocks: &[$crate::layout::blocks::BlockTq1_0], out: &mut [f32]);
        /// I2_S code bytes of `x` (a multiple of 128 values).
        fn pack_i2_s(x: &[f32], rule: $crate::kernels::CodeRule, out: &mut [u8]);
        /// Codes of I2_S code bytes.
        fn unpack_i2_s(bytes: &[u8], out: &mut [i8]);
        /// One packed bitnet-hf row.
        fn pack_bitnet_hf_row(sources: &[&[f32]], rule: $crate::kernels::CodeRule, out: &mut [u8]);
        /// Symmetric int8.
        fn quantize_i8_symmetric(x: &[f32], id: f32, clip: f32, out: &mut [i8]);
        /// Asymmetric int8.
        fn quantize_i8_asymmetric(x: &[f32], scale: f32, zero_point: i32, lo: f32, hi: f32, out: &mut [i8]);
        /// (q - zero_point) * scale.
        fn dequantize_i8(q: &[i8], scale: f32, zero_point: i32, out: &mut [f32]);
        /// Q8_0 blocks of `x` (a multiple of 32 values).
        fn quantize_q8_0(x: &[f32], out: &mut [$crate::layout::blocks::BlockQ8_0]);
        /// Dequantized Q8_0 blocks.
        fn dequantize_q8_0(blocks: &[$crate::layout::blocks::BlockQ8_0], out: &mut [f32]);
        /// Q8_K blocks of `x` (a multiple of 256 values).
        fn quantize_q8_k(x: &[f32], out: &mut [$crate::layout::blocks::BlockQ8K]);
        /// Dequantized Q8_K blocks.
        fn dequantize_q8_k(blocks: &[$crate::layout::blocks::BlockQ8K], out: &mut [f32]);
        /// IEEE half bits -> f32.
        fn f16_to_f32(src: &[u16], out: &mut [f32]);
        /// bfloat16 bits -> f32.
        fn bf16_to_f32(src: &[u16], out: &mut [f32]);
        /// f32 -> IEEE half bits, rounded to nearest even, as `half`.
        fn f32_to_f16(src: &[f32], out: &mut [u16]);
        /// The sums behind the error metrics.
        fn metric_sums(reference: &[f32], approx: &[f32]) -> $crate::kernels::MetricSums;
        /// sum over blocks of (f16(d_w) * d_x) * isum, in block order.
        fn dot_tq2_0_q8_k(w: &[$crate::layout::blocks::BlockTq2_0], x: &[$crate::layout::blocks::BlockQ8K]) -> f32;
        /// `y[r] = dot_tq2_0_q8_k(row r of w, x)` for every r: `w` holds y.len() rows of
        /// x.len() blocks each.
        fn gemv_tq2_0_q8_k(w: &[$crate::layout::blocks::BlockTq2_0], x: &[$crate::layout::blocks::BlockQ8K], y: &mut [f32]);
        // The GEMV by table lookup, which only wasm32 SIMD128 builds take
        // (`gemv::PreparedWeights`).
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        /// `y` = the GEMV of interleaved TQ2_0 rows (16 per group, x.len() blocks each) by
        /// x, each row as `dot_tq2_0_q8_k` with isum from the codes and values.
        fn gemv_tq2_0x16_q8_k(w: &[$crate::layout::blocks::BlockTq2_0x16], x: &[$crate::layout::blocks::BlockQ8K], y: &mut [f32]);
        /// Integer dot product of ternary codes with int8 values.
        fn dot_codes_i8(w: &[i8], x: &[i8]) -> i64;
        /// f32 dot product in 16 f32 lanes.
        fn dot_f32(a: &[f32], b: &[f32]) -> f32;
        }
    };
}

/// The [`Kernels`] struct: one fn pointer per kernel of the list.
macro_rules! kernels_struct {
    ($( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?; )*) => {
        /// A set of kernels; every backend provides one with identical results.
        #[allow(clippy::type_complexity)]
        pub struct Kernels {
            $( $(#[$doc])* pub $name: fn($($ty),*) $(-> $ret)?, )*
        }
    };
}

/// A [`Kernels`] table of the functions of module `$m`.
macro_rules! table_of {
    (($m:path) $( $(#[$doc:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)?; )*) => {{
        use $m as m;
        // The list's attributes carry its `cfg`s over to the fields; its doc comments come
        // along and document nothing here.
        #[allow(unused_doc_comments)]
        let table = $crate::kernels::Kernels { $( $(#[$doc])* $name: m::$name, )* };
        table
    }};
}

/// Fills a [`Kernels`] table from a module that has every kernel by name.
macro_rules! kernel_table {
    ($m:path) => {
        for_each_kernel!(table_of, $m)
    };
}

pub mod scalar;
#[cfg(target_arch = "wasm32")]
pub mod wasm32;
#[cfg(target_arch = "x86_64")]
pub mod x86_64;

use std::sync::atomic::{AtomicU8, Ordering};

/// The largest f32 below 0.5 (0.5 - 2^-25). For |v| <= 2^22,
/// `trunc(v + copysign(ROUND_BIAS, v)) == v.round()` (round half away from zero): the
/// kernels clamp to +-127 or +-512 before rounding, so this holds for every input.
pub(crate) const ROUND_BIAS: f32 = 0.499_999_97;

/// Number of logical f64 accumulators in every floating-point sum (see `scalar`).
pub const SUM_LANES: usize = 16;

/// The most values `sort_few_decreasing` sorts.
pub const FEW_SORTED: usize = 64;

/// How many thresholds one pass of `abs_tallies_above` counts at.
#[cfg(target_arch = "x86_64")] // the tallies, built for x86 only, as the constants below
pub const TALLIES: usize = 8;

/// The bound that `abs_tallies_above` puts on |x| * scale: small enough for the vector
/// forms to add a value and its count in one 32-bit lane (see `TALLY_COUNT`).
#[cfg(target_arch = "x86_64")]
pub(crate) const TALLY_LIMIT: f32 = 32768.0;

/// 2^23: v + 2^23 rounds v in [0, 2^23) to an integer, to nearest with ties to even, and
/// holds it in the low bits of its representation (which is 0x4B00_0000 + the integer).
/// One add instead of a conversion, which is several instructions in V8.
#[cfg(target_arch = "x86_64")]
pub(crate) const TALLY_ROUNDING: f32 = 8_388_608.0;

/// What a lane adds per value in the packed vector tallies: the count sits above bit 22,
/// the sum of rounded values (each at most 2^15) under it, so a lane holds 64 values
/// before the sum could reach the count (2^22) and before the count (2^28) nears 2^32.
#[cfg(target_arch = "x86_64")]
pub(crate) const TALLY_COUNT: u32 = 1 << 22;

/// Added to the bits of v + [`TALLY_ROUNDING`], gives the rounded v plus [`TALLY_COUNT`].
#[cfg(target_arch = "x86_64")]
pub(crate) const TALLY_PACK: u32 = TALLY_COUNT.wrapping_sub(0x4B00_0000);

/// How many values one packed 32-bit lane may tally before it must be emptied.
#[cfg(target_arch = "x86_64")]
pub(crate) const TALLY_LANE_VALUES: usize = 64;

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

for_each_kernel!(kernels_struct);

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
    /// wasm32 SIMD128 with relaxed SIMD, in the instructions whose results are the same
    /// on every engine for the values they get.
    RelaxedSimd,
}

impl Backend {
    /// Every backend, whether or not this machine runs it.
    pub const ALL: [Backend; 5] =
        [Backend::Scalar, Backend::Avx2, Backend::Avx512, Backend::Simd128, Backend::RelaxedSimd];

    /// The lower-case name used in the JS API and reports.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Scalar => "scalar",
            Backend::Avx2 => "avx2",
            Backend::Avx512 => "avx512",
            Backend::Simd128 => "simd128",
            Backend::RelaxedSimd => "relaxed-simd",
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
            #[cfg(target_arch = "wasm32")]
            Backend::RelaxedSimd => wasm32::relaxed_kernels(),
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
