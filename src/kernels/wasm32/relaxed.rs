//! wasm32 relaxed-SIMD kernels: the SIMD128 kernels, with the TQ2_0 x Q8_K dot product
//! on `i32x4.relaxed_dot_i8x16_i7x16_add_s`.
//!
//! Relaxed instructions may give different results on different engines; this module
//! uses one only where every result the proposal allows is the same exact integer.
//! `i32x4_relaxed_dot_i8x16_i7x16_add(a, b, c)` multiplies byte lanes a[i] (signed) by
//! b[i], adds the products in pairs into 16-bit sums, adds pairs of those into each
//! i32 lane and adds c. The proposal leaves two things to the engine:
//! 1. b[i] with its top bit set may be read as signed or as unsigned;
//! 2. the 16-bit pair sums may saturate or not (x86's `pmaddubsw` saturates, Arm's
//!    `sdot` and V8's fallback do not).
//!
//! Here b holds the stored 2-bit TQ2_0 fields c = q + 1, in {0, 1, 2} (3 where a file
//! holds one; the spec multiplies it as 3), and a the Q8_K activations, any int8:
//! 1. b[i] <= 3 < 128, so its top bit is clear and both readings give the same value;
//! 2. |a[i] * b[i]| <= 128 * 3 = 384, so a pair sum lies in [-768, 762], far inside
//!    the i16 range: saturating and wrapping sums are the exact sum;
//! 3. the i32 lane then holds the exact sum of four products plus c (no overflow: see
//!    the bound in the kernel).
//!
//! So every allowed lowering returns sum c * a exactly, and the dot product subtracts
//! sum a (the block's bsums) as the spec does: sum (c - 1) * a = sum c * a - sum a.
//! Activations clamped to [-127, 127], as Q8_K's quantizer writes them, are a special
//! case; -128 is covered too. `tests::relaxed_dot_is_exact_for_two_bit_codes` checks
//! the engine's instruction on every (a, b) pair in [-128, 127] x [0, 3] and every pair
//! sum, and pkg-tests/fixtures/relaxed-dot.mjs repeats it in Node and Chromium.
//!
//! That argument is about the proposal; an engine can still get the instruction wrong.
//! Node 20 behind `--experimental-wasm-relaxed-simd` does, in its baseline compiler
//! (Liftoff drops the accumulator; TurboFan is exact), which the exhaustive test shows.
//! So these tests run there with `--no-liftoff`, and the npm loader runs the instruction
//! once before it picks this build.
//!
//! Compiled only with `+simd128` and the crate feature `relaxed-simd`; relaxed SIMD is
//! enabled on the functions here alone (see the parent module for why). The kernel table
//! is the SIMD128 one with the functions defined here in place of SIMD128's (a local
//! item shadows the glob import).

use core::arch::wasm32::*;

use super::super::scalar;
use super::simd128::{gemv_tq2_0_q8_k_with, hsum_i32, ld};
use crate::layout::blocks::{BlockQ8K, BlockTq2_0};

pub use super::simd128::*;

/// Integer dot product of one TQ2_0 block with one Q8_K block, as the spec's
/// `dot_tq2_0_q8_k_block`.
///
/// Each 16-byte group of qs holds four code vectors, one per 2-bit field; a field is
/// brought to the low bits by a 16-bit shift (the bits the shift moves across the byte
/// boundary are masked off), which V8 runs as one instruction where a byte shift costs
/// several.
#[inline]
#[target_feature(enable = "relaxed-simd")]
fn dot_tq2_0_q8_k_block(w: &BlockTq2_0, x: &BlockQ8K) -> i32 {
    let three = u8x16_splat(3);
    // Two accumulators, so that consecutive dot products do not wait on each other.
    // Each call adds at most 4 * 384 to a lane, eight calls per accumulator: |lane| <
    // 2^14.
    let mut acc = [i32x4_splat(0); 2];
    for g in 0..4 {
        let (h, m0) = (g / 2, g % 2 * 16);
        let b = ld(&w.qs, h * 32 + m0);
        for l in 0..4 {
            let c = v128_and(u16x8_shr(b, 2 * l as u32), three);
            let xv = ld(&x.qs, h * 128 + l * 32 + m0);
            acc[l % 2] = i32x4_relaxed_dot_i8x16_i7x16_add(xv, c, acc[l % 2]);
        }
    }
    let ones = i16x8_splat(1);
    let bs = i32x4_add(i32x4_dot_i16x8(ld(&x.bsums, 0), ones), i32x4_dot_i16x8(ld(&x.bsums, 8), ones));
    hsum_i32(i32x4_sub(i32x4_add(acc[0], acc[1]), bs))
}

/// sum over blocks b of (f16(w_b.d) * x_b.d) * isum_b, accumulated in block order.
pub fn dot_tq2_0_q8_k(w: &[BlockTq2_0], x: &[BlockQ8K]) -> f32 {
    dot_tq2_0_q8_k_relaxed(w, x)
}

// The block kernel inlines only into a caller with the same target features.
#[target_feature(enable = "relaxed-simd")]
fn dot_tq2_0_q8_k_relaxed(w: &[BlockTq2_0], x: &[BlockQ8K]) -> f32 {
    scalar::dot_tq2_0_q8_k_with(w, x, |w, x| dot_tq2_0_q8_k_block(w, x))
}

/// [`super::simd128::gemv_tq2_0_q8_k_with`]'s block sums with the relaxed dot product:
/// each row's sum c * q, as in `dot_tq2_0_q8_k_block`.
#[inline]
#[target_feature(enable = "relaxed-simd")]
fn block_sums<const R: usize>(w: [&BlockTq2_0; R], x: &BlockQ8K) -> [v128; R] {
    let three = u8x16_splat(3);
    let mut acc = [i32x4_splat(0); R];
    for g in 0..4 {
        let (h, m0) = (g / 2, g % 2 * 16);
        let b: [v128; R] = core::array::from_fn(|r| ld(&w[r].qs, h * 32 + m0));
        for l in 0..4 {
            let xv = ld(&x.qs, h * 128 + l * 32 + m0);
            for (a, &br) in acc.iter_mut().zip(&b) {
                *a = i32x4_relaxed_dot_i8x16_i7x16_add(xv, v128_and(u16x8_shr(br, 2 * l as u32), three), *a);
            }
        }
    }
    acc
}

/// y = W x for TQ2_0 rows, four rows at a time (see `simd128::gemv_tq2_0_q8_k_with`).
pub fn gemv_tq2_0_q8_k(w: &[BlockTq2_0], x: &[BlockQ8K], y: &mut [f32]) {
    gemv_tq2_0_q8_k_relaxed(w, x, y)
}

#[target_feature(enable = "relaxed-simd")]
fn gemv_tq2_0_q8_k_relaxed(w: &[BlockTq2_0], x: &[BlockQ8K], y: &mut [f32]) {
    gemv_tq2_0_q8_k_with::<4>(w, x, y, |w, x| block_sums::<4>(w, x), dot_tq2_0_q8_k)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The instruction on every pair of byte lanes (a0, a1) in [-128, 127]^2 with every
    /// pair of codes (b0, b1) in [0, 3]^2: once alone in its i32 lane (which is then one
    /// 16-bit pair sum, where a saturating engine would differ) and once next to a
    /// second pair (a1, a0) with codes of its own, always with an accumulator; all four
    /// lanes at once, so a carry between lanes would show. Every result is the exact
    /// integer.
    #[target_feature(enable = "relaxed-simd")]
    fn relaxed_dot(a: v128, b: v128, c: v128) -> v128 {
        i32x4_relaxed_dot_i8x16_i7x16_add(a, b, c)
    }

    #[test]
    fn relaxed_dot_is_exact_for_two_bit_codes() {
        let mut checked = 0u32;
        for a0 in -128i32..=127 {
            for a1 in -128i32..=127 {
                for (second, first_codes) in [false, true].into_iter().flat_map(|s| (0..4).map(move |q| (s, q))) {
                    let mut av = [0i8; 16];
                    let mut bv = [0u8; 16];
                    let mut want = [0i32; 4];
                    for j in 0..4usize {
                        // Code pairs 4q..4q+4 of the 16, one per lane; the second pair
                        // takes them in the opposite order.
                        let k = 4 * first_codes + j as i32;
                        let (b0, b1) = (k / 4, k % 4);
                        let (b2, b3) = if second { ((15 - k) / 4, (15 - k) % 4) } else { (0, 0) };
                        av[4 * j..4 * j + 4].copy_from_slice(&[a0 as i8, a1 as i8, a1 as i8, a0 as i8]);
                        bv[4 * j..4 * j + 4].copy_from_slice(&[b0 as u8, b1 as u8, b2 as u8, b3 as u8]);
                        want[j] = a0 * b0 + a1 * b1 + a1 * b2 + a0 * b3 + 1000 * j as i32 - 7;
                    }
                    let c = i32x4(-7, 993, 1993, 2993);
                    let got = relaxed_dot(ld(&av, 0), ld(&bv, 0), c);
                    let got = [
                        i32x4_extract_lane::<0>(got),
                        i32x4_extract_lane::<1>(got),
                        i32x4_extract_lane::<2>(got),
                        i32x4_extract_lane::<3>(got),
                    ];
                    assert_eq!(got, want, "a = {av:?}, b = {bv:?}");
                    checked += 1;
                }
            }
        }
        assert_eq!(checked, 256 * 256 * 8);
    }
}
