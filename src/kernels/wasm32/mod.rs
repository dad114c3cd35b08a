//! wasm32 backends, chosen at compile time (a wasm module either validates with its
//! instructions or does not load at all, so there is nothing to detect at run time):
//! SIMD128 by the `simd128` target feature, relaxed SIMD by the crate feature
//! `relaxed-simd` on top of it.
//!
//! Relaxed SIMD is a crate feature, enabled per function in `relaxed`, and never the
//! target feature for the whole crate: with `+relaxed-simd`, LLVM lowers SIMD128's
//! `f32x4_pmax`/`f32x4_pmin` (and the f64x2 ones) to `relaxed_max`/`relaxed_min`, whose
//! NaN results differ between engines, which changed `abs_max` on V8.

use super::Kernels;

#[cfg(target_feature = "simd128")]
pub mod simd128;

#[cfg(all(target_feature = "simd128", feature = "relaxed-simd"))]
pub mod relaxed;

#[cfg(target_feature = "simd128")]
pub(super) static TABLE: Kernels = kernel_table!(self::simd128);

#[cfg(all(target_feature = "simd128", feature = "relaxed-simd"))]
pub(super) static RELAXED_TABLE: Kernels = kernel_table!(self::relaxed);

/// The SIMD128 kernel table, in builds with `+simd128`.
pub(crate) fn simd128_kernels() -> Option<&'static Kernels> {
    #[cfg(target_feature = "simd128")]
    return Some(&TABLE);
    #[cfg(not(target_feature = "simd128"))]
    None
}

/// The relaxed-SIMD kernel table, in `+simd128` builds with the `relaxed-simd` feature.
pub(crate) fn relaxed_kernels() -> Option<&'static Kernels> {
    #[cfg(all(target_feature = "simd128", feature = "relaxed-simd"))]
    return Some(&RELAXED_TABLE);
    #[cfg(not(all(target_feature = "simd128", feature = "relaxed-simd")))]
    None
}

// See the module doc: a crate-wide +relaxed-simd would change SIMD128 kernels' results.
#[cfg(target_feature = "relaxed-simd")]
compile_error!(
    "build relaxed SIMD with `--features relaxed-simd` and `-C target-feature=+simd128`, not with +relaxed-simd for the whole crate (LLVM then lowers the SIMD128 kernels' pmin/pmax to relaxed_min/max, whose NaN results differ between engines)"
);
