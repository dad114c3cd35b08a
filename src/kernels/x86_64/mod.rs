//! x86_64 backends, chosen at run time by CPU feature detection.

use super::Kernels;

/// The AVX2 kernel table, when this CPU has every feature it uses.
pub(crate) fn avx2_kernels() -> Option<&'static Kernels> {
    None
}

/// The AVX-512 kernel table, when this CPU has every feature it uses.
pub(crate) fn avx512_kernels() -> Option<&'static Kernels> {
    None
}
