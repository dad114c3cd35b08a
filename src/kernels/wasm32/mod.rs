//! wasm32 backends, chosen at compile time by the `simd128` target feature.

use super::Kernels;

#[cfg(target_feature = "simd128")]
pub mod simd128;

#[cfg(target_feature = "simd128")]
pub(super) static TABLE: Kernels = kernel_table!(self::simd128);

/// The SIMD128 kernel table, in builds with `+simd128` (a compile-time choice: a wasm
/// module either validates with SIMD instructions or does not load at all).
pub(crate) fn simd128_kernels() -> Option<&'static Kernels> {
    #[cfg(target_feature = "simd128")]
    return Some(&TABLE);
    #[cfg(not(target_feature = "simd128"))]
    None
}
