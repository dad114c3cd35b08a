//! wasm32 relaxed-SIMD kernels: the SIMD128 kernels, with the TQ2_0 x Q8_K dot product
//! (the GEMV's row kernel) on `i16x8.relaxed_dot_i8x16_i7x16_s`.
//!
//! Relaxed instructions may give different results on different engines; this module
//! uses one only where every result the proposal allows is the same exact integer.
//! `i16x8_relaxed_dot_i8x16_i7x16(a, b)` multiplies byte lanes a[i] (signed) by b[i]
//! and adds the products in pairs into 16-bit lanes. The proposal leaves two things to
//! the engine:
//! 1. b[i] with its top bit set may be read as signed or as unsigned;
//! 2. the 16-bit pair sums may saturate or not (x86's `pmaddubsw` saturates, Arm's
//!    `sdot`-based and V8's fallback lowerings do not).
//!
//! Here b holds the stored 2-bit TQ2_0 fields c = q + 1, in {0, 1, 2} (3 where a file
//! holds one; the spec multiplies it as 3), and a the Q8_K activations, any int8:
//! 1. b[i] <= 3 < 128, so its top bit is clear and both readings give the same value;
//! 2. |a[i] * b[i]| <= 128 * 3 = 384, so a pair sum lies in [-768, 762], far inside
//!    the i16 range: saturating and wrapping sums are the exact sum.
//!
//! So every allowed lowering returns the exact pair sums of c * a; the kernels add them
//! with plain SIMD128 (bounds in `block_sums`) and subtract sum a (the block's bsums) as
//! the spec does: sum (c - 1) * a = sum c * a - sum a. Activations clamped to
//! [-127, 127], as Q8_K's quantizer writes them, are a special case; -128 is covered
//! too. The same holds for `i32x4.relaxed_dot_i8x16_i7x16_add_s`, which adds those pair
//! sums into i32 lanes, but that form is not used: where the CPU has no AVX-VNNI, V8 runs
//! it as three instructions and a constant, and Node 20's baseline compiler (Liftoff,
//! behind `--experimental-wasm-relaxed-simd`) computes it wrongly (it drops the
//! accumulator; seen here with an exhaustive check like the one below).
//!
//! `tests::relaxed_dot_is_exact_for_two_bit_codes` checks the engine's instruction on
//! every (a, b) pair in [-128, 127] x [0, 3] and every pair sum, and
//! pkg-tests/fixtures/relaxed-dot.mjs repeats it in Node and in Chromium's two compilers.
//!
//! Compiled only with `+simd128` and the crate feature `relaxed-simd`; relaxed SIMD is
//! enabled on the functions here alone (see the parent module for why). The kernel table
//! is the SIMD128 one with the functions defined here in place of SIMD128's (a local
//! item shadows the glob import).

use core::arch::wasm32::*;

use super::super::scalar;
use super::simd128::{hsum_i32, ld};
use crate::layout::blocks::{BlockQ8K, BlockTq2_0};

pub use super::simd128::*;

/// The i32 lanes of sum c * q over one block (the bsums not yet subtracted).
///
/// Each 16-byte group of qs holds four code vectors, one per 2-bit field; a field is
/// brought to the low bits by a 16-bit shift (the bits the shift moves across the byte
/// boundary are masked off), which V8 runs as one instruction where a byte shift costs
/// several. The 16-bit pair sums of `i16x8_relaxed_dot_i8x16_i7x16` (one `pmaddubsw` on
/// x86) are added in i16 lanes and widened once per block: each of the 16 dot products
/// adds at most 768 to a lane, 12,288 in all, within i16. (The i32 form of the
/// instruction widens on every call: V8 runs it as three instructions and a constant
/// where no AVX-VNNI is, which measured no faster than the SIMD128 kernel.)
#[inline]
#[target_feature(enable = "relaxed-simd")]
fn block_sums(w: &BlockTq2_0, x: &BlockQ8K) -> v128 {
    let three = u8x16_splat(3);
    let mut acc = i16x8_splat(0);
    for g in 0..4 {
        let (h, m0) = (g / 2, g % 2 * 16);
        let b = ld(&w.qs, h * 32 + m0);
        for l in 0..4 {
            let c = v128_and(u16x8_shr(b, 2 * l as u32), three);
            acc = i16x8_add(acc, i16x8_relaxed_dot_i8x16_i7x16(ld(&x.qs, h * 128 + l * 32 + m0), c));
        }
    }
    i32x4_extadd_pairwise_i16x8(acc)
}

/// sum over blocks b of (f16(w_b.d) * x_b.d) * isum_b, accumulated in block order.
pub fn dot_tq2_0_q8_k(w: &[BlockTq2_0], x: &[BlockQ8K]) -> f32 {
    dot_tq2_0_q8_k_relaxed(w, x)
}

/// `y[r] = dot_tq2_0_q8_k(row r of w, x)` for every r, with the relaxed row kernel.
pub fn gemv_tq2_0_q8_k(w: &[BlockTq2_0], x: &[BlockQ8K], y: &mut [f32]) {
    scalar::gemv_rows(w, x.len(), y, |row| dot_tq2_0_q8_k_relaxed(row, x));
}

// The block kernel inlines only into a caller with the same target features.
#[target_feature(enable = "relaxed-simd")]
fn dot_tq2_0_q8_k_relaxed(w: &[BlockTq2_0], x: &[BlockQ8K]) -> f32 {
    let ones = i16x8_splat(1);
    scalar::dot_tq2_0_q8_k_with(
        w,
        x,
        |x| x.d,
        |w, x| {
            // sum (c - 1) * q = sum c * q - sum q, with the sums of q in bsums.
            let bs = i32x4_add(i32x4_dot_i16x8(ld(&x.bsums, 0), ones), i32x4_dot_i16x8(ld(&x.bsums, 8), ones));
            hsum_i32(i32x4_sub(block_sums(w, x), bs))
        },
    )
}

#[cfg(test)]
mod tests {
    use super::super::simd128::st;
    use super::*;

    #[target_feature(enable = "relaxed-simd")]
    fn relaxed_dot(a: v128, b: v128) -> v128 {
        i16x8_relaxed_dot_i8x16_i7x16(a, b)
    }

    /// The instruction on every pair of byte lanes (a0, a1) in [-128, 127]^2 with every
    /// pair of codes (b0, b1) in [0, 3]^2, eight pairs per call, each 16-bit lane one
    /// pair sum (where a saturating engine, or one reading the codes as signed, would
    /// differ): every result is the exact integer, lane by lane, so no carry crosses
    /// lanes either.
    #[test]
    fn relaxed_dot_is_exact_for_two_bit_codes() {
        let mut checked = 0u32;
        for a0 in -128i32..=127 {
            for a1 in -128i32..=127 {
                for half in 0..2 {
                    let mut av = [0i8; 16];
                    let mut bv = [0u8; 16];
                    let mut want = [0i16; 8];
                    for j in 0..8 {
                        let k = 8 * half + j as i32;
                        let (b0, b1) = (k / 4, k % 4);
                        av[2 * j..2 * j + 2].copy_from_slice(&[a0 as i8, a1 as i8]);
                        bv[2 * j..2 * j + 2].copy_from_slice(&[b0 as u8, b1 as u8]);
                        want[j] = (a0 * b0 + a1 * b1) as i16;
                    }
                    let mut got = [0i16; 8];
                    st(&mut got, 0, relaxed_dot(ld(&av, 0), ld(&bv, 0)));
                    assert_eq!(got, want, "a = {av:?}, b = {bv:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 256 * 256 * 2);
    }
}
