//! wasm32 backends, chosen at compile time by the `simd128` target feature.

use super::Kernels;

#[cfg(target_feature = "simd128")]
pub mod simd128;

/// The SIMD128 kernel table. `kernel_table!` is defined after this module is declared,
/// so its textual scope does not reach here; the table is spelled out instead (a missing
/// or misnamed kernel is a compile error either way).
#[cfg(target_feature = "simd128")]
static TABLE: Kernels = {
    use simd128 as m;
    Kernels {
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
};

/// The SIMD128 kernel table, in builds with `+simd128` (a compile-time choice: a wasm
/// module either validates with SIMD instructions or does not load at all).
pub(crate) fn simd128_kernels() -> Option<&'static Kernels> {
    #[cfg(target_feature = "simd128")]
    return Some(&TABLE);
    #[cfg(not(target_feature = "simd128"))]
    None
}
