//! wasm32 backends, chosen at compile time by the `simd128` target feature.

use super::Kernels;

/// The SIMD128 kernel table, in builds with `+simd128`.
pub(crate) fn simd128_kernels() -> Option<&'static Kernels> {
    None
}
