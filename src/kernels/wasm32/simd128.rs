//! wasm32 SIMD128 kernels.
//!
//! Every function has the name, the signature and, bit for bit, the result of its
//! counterpart in [`scalar`], which is the spec. How the SIMD forms keep to it:
//! - Floating-point sums keep the 16 logical lanes of the spec: in each 16-value chunk,
//!   values 2j and 2j+1 go to the f64x2 accumulator j (f32x4 accumulator j/4 for
//!   `dot_f32`). After the vector loop the lanes are read out, the tail is added lane by
//!   lane as in `scalar`, and `scalar::fold_lanes` folds them.
//! - Maxima and minima use `pmax`/`pmin` with the accumulator first, which keeps the
//!   accumulator when the new value is NaN, as `f32::max`/`f32::min` do.
//! - Rounding half away from zero is `trunc(v + copysign(0.49999997, v))`, exact for
//!   |v| <= 512, which covers every value that is not saturated to the int8 range anyway;
//!   `f32x4_nearest` (half to even) is never used.
//! - Element-wise kernels run their tail (fewer than one vector) through `scalar`.
//! - No relaxed-simd and no fused multiply-add (`relaxed` overrides the kernels where a
//!   relaxed instruction gives the same bits on every engine).
//! - Some operations are written in a roundabout form because LLVM rewrites the obvious
//!   one into a sequence that V8 runs several times slower (nested saturating narrows,
//!   `u8x16_narrow_i16x8`, `x + x + x` on bytes, integer compares of small values); the
//!   helpers say where.
//!
//! The module is compiled only with `+simd128`, so its functions are safe to call.

use core::arch::wasm32::*;

use super::super::scalar;
use super::super::{CodeRule, MetricSums, ROUND_BIAS, SUM_LANES};
use crate::layout::blocks::{f16_bits, BlockQ8K, BlockQ8_0, BlockTq1_0, BlockTq2_0, BlockTq2_0x16, QK8_0, QK_K};

/// Element types that 16-byte loads and stores may read and write: plain numbers of 1, 2
/// or 4 bytes, for which every bit pattern is a valid value.
pub(super) trait Lane: Copy {}
impl Lane for f32 {}
impl Lane for u8 {}
impl Lane for i8 {}
impl Lane for u16 {}
impl Lane for i16 {}
impl Lane for u32 {}

/// Loads the 16 bytes that start at element `at` of `s` (bounds-checked).
#[inline(always)]
pub(super) fn ld<T: Lane>(s: &[T], at: usize) -> v128 {
    let c = &s[at..at + 16 / core::mem::size_of::<T>()];
    // SAFETY: `c` is exactly 16 readable bytes (16 / size_of::<T>() elements of T), and
    // v128_load has no alignment requirement.
    unsafe { v128_load(c.as_ptr().cast::<v128>()) }
}

/// Stores 16 bytes at element `at` of `s` (bounds-checked).
#[inline(always)]
pub(super) fn st<T: Lane>(s: &mut [T], at: usize, v: v128) {
    let c = &mut s[at..at + 16 / core::mem::size_of::<T>()];
    // SAFETY: `c` is exactly 16 writable bytes, every bit pattern is a valid T (`Lane`),
    // and v128_store has no alignment requirement.
    unsafe { v128_store(c.as_mut_ptr().cast::<v128>(), v) }
}

// pmax(a, b) = a < b ? b : a and pmin(a, b) = b < a ? b : a, lane by lane. In builds
// with relaxed SIMD, LLVM lowers `f32x4_pmax`/`f32x4_pmin` (and f64x2_pmax) to
// `relaxed_max`/`relaxed_min`, whose results for a NaN or two zeros differ between
// engines (V8 on x86 returns the other operand), and the target features of a wasm
// module apply to every function in it; there the comparison and `v128_bitselect`
// are written out, which LLVM leaves as they are.

/// pmax of four f32 lanes: the first operand unless it is less than the second.
#[inline(always)]
fn pmax(a: v128, b: v128) -> v128 {
    #[cfg(not(feature = "relaxed-simd"))]
    return f32x4_pmax(a, b);
    #[cfg(feature = "relaxed-simd")]
    return v128_bitselect(b, a, f32x4_lt(a, b));
}

/// pmin of four f32 lanes: the first operand unless the second is less than it.
#[inline(always)]
fn pmin(a: v128, b: v128) -> v128 {
    #[cfg(not(feature = "relaxed-simd"))]
    return f32x4_pmin(a, b);
    #[cfg(feature = "relaxed-simd")]
    return v128_bitselect(b, a, f32x4_lt(b, a));
}

/// pmax of two f64 lanes.
#[inline(always)]
fn pmax_f64(a: v128, b: v128) -> v128 {
    #[cfg(not(feature = "relaxed-simd"))]
    return f64x2_pmax(a, b);
    #[cfg(feature = "relaxed-simd")]
    return v128_bitselect(b, a, f64x2_lt(a, b));
}

/// |v| of four f32 lanes. (`f32x4_abs` costs V8 three instructions, as it rebuilds the
/// mask every time; LLVM keeps this `and` as it is.)
#[inline(always)]
fn abs_f32(v: v128) -> v128 {
    v128_and(v, u32x4_splat(0x7fff_ffff))
}

/// The high two f32 lanes promoted to f64.
#[inline(always)]
fn promote_high(v: v128) -> v128 {
    f64x2_promote_low_f32x4(i64x2_shuffle::<1, 1>(v, v))
}

/// Reads 8 f64x2 accumulators out as the 16 logical lanes.
#[inline(always)]
fn f64_lanes(acc: &[v128; 8]) -> [f64; SUM_LANES] {
    let mut lanes = [0f64; SUM_LANES];
    for (pair, a) in lanes.chunks_exact_mut(2).zip(acc) {
        pair[0] = f64x2_extract_lane::<0>(*a);
        pair[1] = f64x2_extract_lane::<1>(*a);
    }
    lanes
}

/// Largest of the four f32 lanes; the lanes hold no NaN.
#[inline(always)]
fn hmax(v: v128) -> f32 {
    let v = pmax(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let v = pmax(v, i32x4_shuffle::<1, 0, 3, 2>(v, v));
    f32x4_extract_lane::<0>(v)
}

/// Wrapping sum of the four i32 lanes.
#[inline(always)]
pub(super) fn hsum_i32(v: v128) -> i32 {
    let v = i32x4_add(v, i32x4_shuffle::<2, 3, 0, 1>(v, v));
    let v = i32x4_add(v, i32x4_shuffle::<1, 0, 3, 2>(v, v));
    i32x4_extract_lane::<0>(v)
}

/// f32 lanes rounded half away from zero, as f32; exact for |v| <= 512.
#[inline(always)]
fn round_away_f32(v: v128) -> v128 {
    let half = v128_or(v128_and(v, f32x4_splat(-0.0)), f32x4_splat(ROUND_BIAS));
    f32x4_trunc(f32x4_add(v, half))
}

/// `v.clamp(lo, hi)` lane-wise, as `f32::clamp` (NaN stays NaN).
#[inline(always)]
fn clamp(v: v128, lo: v128, hi: v128) -> v128 {
    // pmax(v, lo) = v < lo ? lo : v, then pmin(., hi) = hi < . ? hi : .
    pmin(pmax(v, lo), hi)
}

/// Sixteen f32 lanes (four vectors) holding integers r >= -1024 (of any size above, +inf
/// included) or NaN, as i8 lanes saturated to [-128, 127]; NaN gives 0, as `as i8` does.
#[inline(always)]
fn integral_f32_to_i8(r: [v128; 4]) -> v128 {
    const OFFSET: i16 = 1024;
    // NaN lanes become +0.0. Then r + 1.5 * 2^23 is exact for |r| < 2^22 and leaves
    // 0x4b40_0000 + r in its bits (larger r leave a larger positive number), so the i32
    // lanes hold r + OFFSET >= 0: cheaper than i32x4_trunc_sat_f32x4 in V8.
    let int = |x: v128| {
        let x = v128_and(x, f32x4_eq(x, x));
        i32x4_sub(f32x4_add(x, f32x4_splat(12_582_912.0)), i32x4_splat(0x4b40_0000 - OFFSET as i32))
    };
    // The offset comes off between the two saturating narrowings. (With nothing between
    // them LLVM rewrites the first into a clamp and a shuffle, which V8 runs far slower.)
    let lo = i16x8_sub(i16x8_narrow_i32x4(int(r[0]), int(r[1])), i16x8_splat(OFFSET));
    let hi = i16x8_sub(i16x8_narrow_i32x4(int(r[2]), int(r[3])), i16x8_splat(OFFSET));
    i8x16_narrow_i16x8(lo, hi)
}

/// i16 lanes holding values in 0..=255 plus `U8_BIAS` (that is, minus 128) as u8 lanes.
/// `u8x16_narrow_i16x8` would do without the bias, but LLVM wraps it in clamps.
#[inline(always)]
fn biased_to_u8(lo: v128, hi: v128) -> v128 {
    v128_xor(i8x16_narrow_i16x8(lo, hi), i8x16_splat(i8::MIN))
}

/// The bias of [`biased_to_u8`].
const U8_BIAS: i16 = -128;

/// Sixteen i8 lanes as four f32x4 vectors.
#[inline(always)]
fn i8_to_f32(q: v128) -> [v128; 4] {
    let lo = i16x8_extend_low_i8x16(q);
    let hi = i16x8_extend_high_i8x16(q);
    [
        f32x4_convert_i32x4(i32x4_extend_low_i16x8(lo)),
        f32x4_convert_i32x4(i32x4_extend_high_i16x8(lo)),
        f32x4_convert_i32x4(i32x4_extend_low_i16x8(hi)),
        f32x4_convert_i32x4(i32x4_extend_high_i16x8(hi)),
    ]
}

/// Stores q * d for sixteen i8 lanes at element `at` of `out`.
#[inline(always)]
fn store_scaled(out: &mut [f32], at: usize, q: v128, d: v128) {
    for (k, f) in i8_to_f32(q).into_iter().enumerate() {
        st(out, at + 4 * k, f32x4_mul(f, d));
    }
}

/// IEEE half bits to f32, exactly as `half::f16::to_f32` (NaN gets its quiet bit set).
#[inline(always)]
fn f16_to_f32_one(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let em = (h & 0x7fff) as u32;
    let bits = if em < 0x400 {
        // Zero or subnormal: em * 2^-24, exact in f32.
        (em as f32 * (1.0 / 16_777_216.0)).to_bits()
    } else if em < 0x7c00 {
        (em << 13) + (112 << 23)
    } else {
        ((em << 13) + (224 << 23)) | if em > 0x7c00 { 0x40_0000 } else { 0 }
    };
    f32::from_bits(sign | bits)
}

/// The f16 scale bytes of a block as f32.
#[inline(always)]
fn f16_scale(d: [u8; 2]) -> f32 {
    f16_to_f32_one(u16::from_le_bytes(d))
}

/// Four f16 values (the low 16 bits of each u32 lane) to f32, as [`f16_to_f32_one`].
#[inline(always)]
#[cfg(feature = "model-files")]
fn f16x4_to_f32x4(h: v128) -> v128 {
    let em = v128_and(h, u32x4_splat(0x7fff));
    let sign = i32x4_shl(v128_xor(h, em), 16);
    // em << 13 read as f32 is the value times 2^-112, normal or subnormal alike, so one
    // exact multiplication by 2^112 rebiases it. Infinities and NaNs (exponent 31) get the
    // f32 exponent 255 OR-ed in and, for NaN, the quiet bit, as `half` sets it.
    // The tests are f32 comparisons: LLVM turns integer ones here into unsigned 16-bit
    // compares, which V8 runs in four instructions each.
    let scaled = f32x4_mul(i32x4_shl(em, 13), f32x4_splat(f32::from_bits((127 + 112) << 23)));
    let inf_nan = f32x4_ge(scaled, f32x4_splat(65536.0));
    let v = v128_or(scaled, v128_and(inf_nan, u32x4_splat(0x7f80_0000)));
    let quiet = v128_and(f32x4_ne(v, v), u32x4_splat(0x40_0000));
    v128_or(v128_or(v, quiet), sign)
}

/// Index of the first NaN or infinity.
pub fn first_non_finite(x: &[f32]) -> Option<usize> {
    // |v| as bits is above 0x7f7f_ffff exactly for NaN and infinities; the running u32
    // maximum of those bits over 64 values tells whether the chunk has one.
    let abs_mask = u32x4_splat(0x7fff_ffff);
    let mut chunks = x.chunks_exact(64);
    for (ci, c) in chunks.by_ref().enumerate() {
        let mut m = [u32x4_splat(0); 4];
        for k in 0..4 {
            for (j, mj) in m.iter_mut().enumerate() {
                *mj = u32x4_max(*mj, v128_and(ld(c, 16 * k + 4 * j), abs_mask));
            }
        }
        let m = u32x4_max(u32x4_max(m[0], m[1]), u32x4_max(m[2], m[3]));
        if v128_any_true(u32x4_gt(m, u32x4_splat(0x7f7f_ffff))) {
            return scalar::first_non_finite(c).map(|i| ci * 64 + i);
        }
    }
    let done = x.len() - chunks.remainder().len();
    scalar::first_non_finite(chunks.remainder()).map(|i| done + i)
}

/// Sum of |x| in the lane order of the spec.
pub fn abs_sum(x: &[f32]) -> f64 {
    let mut acc = [f64x2_splat(0.0); 8];
    let mut chunks = x.chunks_exact(16);
    for c in chunks.by_ref() {
        for j in 0..4 {
            let v = abs_f32(ld(c, 4 * j));
            acc[2 * j] = f64x2_add(acc[2 * j], f64x2_promote_low_f32x4(v));
            acc[2 * j + 1] = f64x2_add(acc[2 * j + 1], promote_high(v));
        }
    }
    let mut lanes = f64_lanes(&acc);
    for (lane, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        *lane += v.abs() as f64;
    }
    scalar::fold_lanes(lanes)
}

/// max |x|, or 0 for an empty slice.
pub fn abs_max(x: &[f32]) -> f32 {
    let mut m = [f32x4_splat(0.0); 4];
    let mut chunks = x.chunks_exact(16);
    for c in chunks.by_ref() {
        for (j, mj) in m.iter_mut().enumerate() {
            *mj = pmax(*mj, abs_f32(ld(c, 4 * j)));
        }
    }
    // The tail as one more chunk, padded with zeros (|x| >= 0 leaves the maxima as they
    // are), rather than a scalar fold, which LLVM vectorizes to relaxed_max in relaxed
    // builds.
    let rest = chunks.remainder();
    let mut tail = [0f32; 16];
    tail[..rest.len()].copy_from_slice(rest);
    for (j, mj) in m.iter_mut().enumerate() {
        *mj = pmax(*mj, abs_f32(ld(&tail, 4 * j)));
    }
    hmax(pmax(pmax(m[0], m[1]), pmax(m[2], m[3])))
}

/// (min, max) of x; (+inf, -inf) for an empty slice. Which zero comes back for a signed
/// zero extreme is unspecified, as in the spec.
pub fn min_max(x: &[f32]) -> (f32, f32) {
    let mut lo = [f32x4_splat(f32::INFINITY); 4];
    let mut hi = [f32x4_splat(f32::NEG_INFINITY); 4];
    let mut chunks = x.chunks_exact(16);
    for c in chunks.by_ref() {
        for j in 0..4 {
            let v = ld(c, 4 * j);
            lo[j] = pmin(lo[j], v);
            hi[j] = pmax(hi[j], v);
        }
    }
    let (mut l, mut h) = (f32::INFINITY, f32::NEG_INFINITY);
    let (mut ls, mut hs) = ([0f32; 4], [0f32; 4]);
    for (lv, hv) in lo.into_iter().zip(hi) {
        st(&mut ls, 0, lv);
        st(&mut hs, 0, hv);
        l = ls.iter().fold(l, |l, &v| l.min(v));
        h = hs.iter().fold(h, |h, &v| h.max(v));
    }
    chunks.remainder().iter().fold((l, h), |(l, h), &v| (l.min(v), h.max(v)))
}

/// (sum of |x| over |x| > t, count of such x), in the lane order of the spec.
pub fn abs_sum_above(x: &[f32], t: f32) -> (f64, u64) {
    // A value at or below t adds +0.0 to its lane instead of nothing: the lanes start at
    // +0.0 and only ever add values >= +0.0, so they are never -0.0 and +0.0 leaves them
    // unchanged.
    let tv = f32x4_splat(t);
    let mut acc = [f64x2_splat(0.0); 8];
    // Each i32 lane counts at most len/4 < 2^30 values (a wasm32 slice of f32).
    let mut count = i32x4_splat(0);
    let mut chunks = x.chunks_exact(16);
    for c in chunks.by_ref() {
        for j in 0..4 {
            let a = abs_f32(ld(c, 4 * j));
            let above = f32x4_gt(a, tv);
            let a = v128_and(a, above);
            count = i32x4_sub(count, above);
            acc[2 * j] = f64x2_add(acc[2 * j], f64x2_promote_low_f32x4(a));
            acc[2 * j + 1] = f64x2_add(acc[2 * j + 1], promote_high(a));
        }
    }
    let mut lanes = f64_lanes(&acc);
    let mut counts = [0u32; 4];
    st(&mut counts, 0, count);
    let mut n: u64 = counts.iter().map(|&c| c as u64).sum();
    for (lane, &v) in lanes.iter_mut().zip(chunks.remainder()) {
        let a = v.abs();
        if a > t {
            *lane += a as f64;
            n += 1;
        }
    }
    (scalar::fold_lanes(lanes), n)
}

/// Up to [`FEW_SORTED`](super::super::FEW_SORTED) magnitudes' bits in decreasing order:
/// each value goes to the place given by the number of greater values, counted four
/// compares at a time without a branch (an insertion sort mispredicts one at almost every
/// value); signed compares order the bits of magnitudes.
pub fn sort_few_decreasing(values: &mut [u32]) {
    let width = values.len().next_multiple_of(4);
    scalar::sort_by_places(values, |padded, v| {
        let s = u32x4_splat(v);
        let greater = padded[..width].chunks_exact(4).fold(u32x4_splat(0), |g, c| i32x4_sub(g, i32x4_gt(ld(c, 0), s)));
        hsum_i32(greater) as usize
    });
}

/// A code rule as vectors: for four f32 lanes, the masks (all ones or zero) of q = -1
/// and of q = +1.
trait Rule: Copy {
    fn masks(self, v: v128) -> (v128, v128);
}

/// `CodeRule::Scaled`: q = (v*inv >= 0.5) - (v*inv <= -0.5); a NaN product gives 0.
#[derive(Clone, Copy)]
struct Scaled {
    inv: v128,
}

impl Rule for Scaled {
    #[inline(always)]
    fn masks(self, v: v128) -> (v128, v128) {
        let s = f32x4_mul(v, self.inv);
        (f32x4_le(s, f32x4_splat(-0.5)), f32x4_ge(s, f32x4_splat(0.5)))
    }
}

/// `CodeRule::Threshold`: q = (v > t) - (v < -t).
#[derive(Clone, Copy)]
struct Threshold {
    t: v128,
    neg_t: v128,
}

impl Rule for Threshold {
    #[inline(always)]
    fn masks(self, v: v128) -> (v128, v128) {
        (f32x4_lt(v, self.neg_t), f32x4_gt(v, self.t))
    }
}

/// Calls `$f(code, args...)` with the vector form of a `CodeRule`, so that each rule gets
/// its own monomorphized loop.
macro_rules! with_rule {
    ($rule:expr, $f:ident($($arg:expr),*)) => {
        match $rule {
            CodeRule::Scaled { inv } => $f(Scaled { inv: f32x4_splat(inv) }, $($arg),*),
            CodeRule::Threshold { threshold } => {
                $f(Threshold { t: f32x4_splat(threshold), neg_t: f32x4_splat(-threshold) }, $($arg),*)
            }
        }
    };
}

/// Codes of x[at..at+16] as two i16x8 vectors.
#[inline(always)]
fn q16<C: Rule>(code: C, x: &[f32], at: usize) -> (v128, v128) {
    let m: [(v128, v128); 4] = core::array::from_fn(|j| code.masks(ld(x, at + 4 * j)));
    // q = (mask of -1) - (mask of +1), with the masks narrowed to i16 first.
    let q = |a: (v128, v128), b: (v128, v128)| i16x8_sub(i16x8_narrow_i32x4(a.0, b.0), i16x8_narrow_i32x4(a.1, b.1));
    (q(m[0], m[1]), q(m[2], m[3]))
}

/// Codes c = q + 1 of x[at..at+16] as u8 lanes.
#[inline(always)]
fn c8<C: Rule>(code: C, x: &[f32], at: usize) -> v128 {
    let (lo, hi) = q16(code, x, at);
    i8x16_add(i8x16_narrow_i16x8(lo, hi), i8x16_splat(1))
}

/// Ternary codes q of every value.
pub fn ternary_codes(x: &[f32], rule: CodeRule, out: &mut [i8]) {
    let n = x.len().min(out.len());
    let (x, out) = (&x[..n], &mut out[..n]);
    let mut xs = x.chunks_exact(16);
    let mut os = out.chunks_exact_mut(16);
    with_rule!(rule, codes_with(&mut xs, &mut os));
    scalar::ternary_codes(xs.remainder(), rule, os.into_remainder());
}

#[inline(always)]
fn codes_with<C: Rule>(code: C, xs: &mut core::slice::ChunksExact<f32>, os: &mut core::slice::ChunksExactMut<i8>) {
    for (xc, oc) in xs.zip(os) {
        let (lo, hi) = q16(code, xc, 0);
        st(oc, 0, i8x16_narrow_i16x8(lo, hi));
    }
}

/// Quantizes `x` (a multiple of 256 values) into TQ2_0 blocks that all get scale bits `d`.
pub fn pack_tq2_0(x: &[f32], rule: CodeRule, d: [u8; 2], out: &mut [BlockTq2_0]) {
    with_rule!(rule, pack_tq2_0_with(x, d, out));
}

#[inline(always)]
fn pack_tq2_0_with<C: Rule>(code: C, x: &[f32], d: [u8; 2], out: &mut [BlockTq2_0]) {
    for (block, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        // The four 16-byte groups of qs: half h, bytes m0..m0+16.
        for g in 0..4 {
            let (h, m0) = (g / 2, g % 2 * 16);
            // byte = sum over l of (q_l + 1) << 2l = 85 + sum of q_l << 2l, in 0..=170.
            let mut lo = i16x8_splat(85 + U8_BIAS);
            let mut hi = i16x8_splat(85 + U8_BIAS);
            for l in 0..4 {
                let (a, b) = q16(code, xb, h * 128 + l * 32 + m0);
                lo = i16x8_add(lo, i16x8_shl(a, 2 * l as u32));
                hi = i16x8_add(hi, i16x8_shl(b, 2 * l as u32));
            }
            st(&mut block.qs, h * 32 + m0, biased_to_u8(lo, hi));
        }
        block.d = d;
    }
}

/// The codes q of 16 TQ2_0 bytes for lane l: ((b >> 2l) & 3) - 1. The shift runs on u16
/// lanes (wasm has no native byte shift); the bits it moves across a byte boundary are
/// masked off.
#[inline(always)]
fn tq2_lane(b: v128, l: u32) -> v128 {
    i8x16_sub(v128_and(u16x8_shr(b, 2 * l), u8x16_splat(3)), i8x16_splat(1))
}

/// Codes (q in {-1,0,1}) of TQ2_0 blocks; the code 3 reads as +2, as in the spec.
pub fn unpack_tq2_0(blocks: &[BlockTq2_0], out: &mut [i8]) {
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        // The four 16-byte groups of qs: half h, bytes m0..m0+16.
        for g in 0..4 {
            let (h, m0) = (g / 2, g % 2 * 16);
            let b = ld(&block.qs, h * 32 + m0);
            st(ob, h * 128 + m0, tq2_lane(b, 0));
            st(ob, h * 128 + 32 + m0, tq2_lane(b, 1));
            st(ob, h * 128 + 64 + m0, tq2_lane(b, 2));
            st(ob, h * 128 + 96 + m0, tq2_lane(b, 3));
        }
    }
}

/// Dequantized values of TQ2_0 blocks: q * f16(d).
pub fn dequantize_tq2_0(blocks: &[BlockTq2_0], out: &mut [f32]) {
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = f32x4_splat(f16_scale(block.d));
        let (three, one) = (u32x4_splat(3), i32x4_splat(1));
        // The four 16-byte groups of qs: half h, bytes m0..m0+16.
        for g in 0..4 {
            let (h, m0) = (g / 2, g % 2 * 16);
            let b = ld(&block.qs, h * 32 + m0);
            // Each byte in its own u32 lane, then q = ((w >> 2l) & 3) - 1 in i32 lanes.
            let (lo, hi) = (u16x8_extend_low_u8x16(b), u16x8_extend_high_u8x16(b));
            let w = [
                u32x4_extend_low_u16x8(lo),
                u32x4_extend_high_u16x8(lo),
                u32x4_extend_low_u16x8(hi),
                u32x4_extend_high_u16x8(hi),
            ];
            for (l, shift) in [0u32, 2, 4, 6].into_iter().enumerate() {
                for (k, &w) in w.iter().enumerate() {
                    let q = i32x4_sub(v128_and(u32x4_shr(w, shift), three), one);
                    st(ob, h * 128 + l * 32 + m0 + 4 * k, f32x4_mul(f32x4_convert_i32x4(q), d));
                }
            }
        }
    }
}

/// x * 3 in u8 lanes, for x < 86. (Saturating adds: LLVM turns wrapping ones into an i8
/// multiply, which wasm lacks and which it then widens.)
#[inline(always)]
fn times3(x: v128) -> v128 {
    u8x16_add_sat(u8x16_add_sat(x, x), x)
}

/// Base-3 digits, most significant first, as u8 lanes (each sum stays below 243).
#[inline(always)]
fn horner(digits: [v128; 5]) -> v128 {
    let mut b = digits[0];
    for &c in &digits[1..] {
        b = i8x16_add(times3(b), c);
    }
    b
}

/// (b * 256 + 242) / 243 for u8 lanes b < 243, as the spec's `tq1_scale_byte`.
#[inline(always)]
fn tq1_scale_bytes(b: v128) -> v128 {
    // (b*256 + 242) / 243 = b + (13b + 242) / 243, and for every b < 243 that quotient is
    // the Q15 rounding product of 13b + 118 and 135 (found by search; the test checks all
    // 243 values).
    let f = |b: v128| {
        let q = i16x8_q15mulr_sat(i16x8_add(i16x8_mul(b, i16x8_splat(13)), i16x8_splat(118)), i16x8_splat(135));
        i16x8_add(i16x8_add(b, q), i16x8_splat(U8_BIAS))
    };
    biased_to_u8(f(u16x8_extend_low_u8x16(b)), f(u16x8_extend_high_u8x16(b)))
}

/// Quantizes `x` (a multiple of 256 values) into TQ1_0 blocks with scale bits `d`.
pub fn pack_tq1_0(x: &[f32], rule: CodeRule, d: [u8; 2], out: &mut [BlockTq1_0]) {
    with_rule!(rule, pack_tq1_0_with(x, d, out));
}

#[inline(always)]
fn pack_tq1_0_with<C: Rule>(code: C, x: &[f32], d: [u8; 2], out: &mut [BlockTq1_0]) {
    for (block, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        // c[k] holds the codes of values 16k..16k+16.
        let c: [v128; 16] = core::array::from_fn(|k| c8(code, xb, 16 * k));
        // qs[m], m < 32: digits c(n*32 + m), n = 0..5.
        st(&mut block.qs, 0, tq1_scale_bytes(horner([c[0], c[2], c[4], c[6], c[8]])));
        st(&mut block.qs, 16, tq1_scale_bytes(horner([c[1], c[3], c[5], c[7], c[9]])));
        // qs[32 + m], m < 16: digits c(160 + n*16 + m).
        st(&mut block.qs, 32, tq1_scale_bytes(horner([c[10], c[11], c[12], c[13], c[14]])));
        // qh[m], m < 4: digits c(240 + n*4 + m), n = 0..4, then one more factor 3.
        let v = c[15];
        let y1 = i8x16_shuffle::<4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7, 4, 5, 6, 7>(v, v);
        let y2 = i8x16_shuffle::<8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11, 8, 9, 10, 11>(v, v);
        let y3 = i8x16_shuffle::<12, 13, 14, 15, 12, 13, 14, 15, 12, 13, 14, 15, 12, 13, 14, 15>(v, v);
        let b = i8x16_add(times3(i8x16_add(times3(i8x16_add(times3(v), y1)), y2)), y3);
        let qh = tq1_scale_bytes(times3(b));
        block.qh = u32x4_extract_lane::<0>(qh).to_le_bytes();
        block.d = d;
    }
}

/// Stores the `count` TQ1_0 digits of 16 bytes, most significant first, at
/// `at + n*stride`: digit n of byte b is the top digit of s = b * 3^n mod 256, that is
/// (s * 3) >> 8, and s * 3 mod 256 is the next s.
///
/// The bytes are handled as u16 lanes, even bytes and odd bytes apart, where the
/// multiplication by 3 is native.
#[inline(always)]
fn tq1_digits(b: v128, count: usize, out: &mut [i8], at: usize, stride: usize) {
    let (byte, three) = (u16x8_splat(0xff), u16x8_splat(3));
    let mut even = v128_and(b, byte);
    let mut odd = u16x8_shr(b, 8);
    for n in 0..count {
        let (te, to) = (i16x8_mul(even, three), i16x8_mul(odd, three));
        // Digits 0..=2 back into their bytes, then q = digit - 1 per byte.
        let d = v128_or(u16x8_shr(te, 8), i16x8_shl(u16x8_shr(to, 8), 8));
        st(out, at + n * stride, i8x16_sub(d, i8x16_splat(1)));
        even = v128_and(te, byte);
        odd = v128_and(to, byte);
    }
}

/// Codes of one TQ1_0 block into 256 values.
#[inline(always)]
fn unpack_tq1_0_block(block: &BlockTq1_0, ob: &mut [i8]) {
    tq1_digits(ld(&block.qs, 0), 5, ob, 0, 32);
    tq1_digits(ld(&block.qs, 16), 5, ob, 16, 32);
    tq1_digits(ld(&block.qs, 32), 5, ob, 160, 16);
    // Value 240 + n*4 + m is digit n of qh[m]: lane n*4 + m gets qh[m] * 3^n mod 256,
    // multiplied as u16 lanes (even and odd bytes apart; the odd products keep their low
    // byte in the high byte of the lane).
    let s = u32x4_splat(u32::from_le_bytes(block.qh));
    let (even, odd) = (v128_and(s, u16x8_splat(0x00ff)), v128_and(s, u16x8_splat(0xff00)));
    let p = i16x8(1, 1, 3, 3, 9, 9, 27, 27);
    let s = v128_or(v128_and(i16x8_mul(even, p), u16x8_splat(0x00ff)), i16x8_mul(odd, p));
    tq1_digits(s, 1, ob, 240, 0);
}

/// Codes of TQ1_0 blocks.
pub fn unpack_tq1_0(blocks: &[BlockTq1_0], out: &mut [i8]) {
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        unpack_tq1_0_block(block, ob);
    }
}

/// Dequantized values of TQ1_0 blocks.
pub fn dequantize_tq1_0(blocks: &[BlockTq1_0], out: &mut [f32]) {
    let mut codes = [0i8; QK_K];
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        unpack_tq1_0_block(block, &mut codes);
        let d = f32x4_splat(f16_scale(block.d));
        for k in 0..QK_K / 16 {
            store_scaled(ob, 16 * k, ld(&codes, 16 * k), d);
        }
    }
}

/// I2_S code bytes of `x` (a multiple of 128 values): value g*32 + p goes to byte p,
/// bits 6 - 2g.
pub fn pack_i2_s(x: &[f32], rule: CodeRule, out: &mut [u8]) {
    with_rule!(rule, pack_i2_s_with(x, out));
}

#[inline(always)]
fn pack_i2_s_with<C: Rule>(code: C, x: &[f32], out: &mut [u8]) {
    for (ob, xb) in out.chunks_exact_mut(32).zip(x.chunks_exact(128)) {
        for m0 in [0, 16] {
            // byte = sum over g of (q_g + 1) << (6 - 2g) = 85 + sum of q_g << (6 - 2g).
            let mut lo = i16x8_splat(85 + U8_BIAS);
            let mut hi = i16x8_splat(85 + U8_BIAS);
            for g in 0..4 {
                let (a, b) = q16(code, xb, g * 32 + m0);
                lo = i16x8_add(lo, i16x8_shl(a, 6 - 2 * g as u32));
                hi = i16x8_add(hi, i16x8_shl(b, 6 - 2 * g as u32));
            }
            st(ob, m0, biased_to_u8(lo, hi));
        }
    }
}

/// Codes of I2_S code bytes; the code 3 reads as +2, as in the spec.
pub fn unpack_i2_s(bytes: &[u8], out: &mut [i8]) {
    for (bb, ob) in bytes.chunks_exact(32).zip(out.chunks_exact_mut(128)) {
        for m0 in [0, 16] {
            let b = ld(bb, m0);
            for g in 0..4 {
                st(ob, g * 32 + m0, tq2_lane(b, 3 - g as u32));
            }
        }
    }
}

/// One packed bitnet-hf row: byte k = sum over i of c(sources[i][k]) << 2i.
pub fn pack_bitnet_hf_row(sources: &[&[f32]], rule: CodeRule, out: &mut [u8]) {
    if sources.len() > 4 {
        // Not a valid call (codes would leave the byte); keep the spec's behaviour.
        return scalar::pack_bitnet_hf_row(sources, rule, out);
    }
    with_rule!(rule, pack_bitnet_hf_row_with(sources, rule, out));
}

#[inline(always)]
fn pack_bitnet_hf_row_with<C: Rule>(code: C, sources: &[&[f32]], rule: CodeRule, out: &mut [u8]) {
    let n = out.len();
    let count = sources.len();
    // Every source needs n values, as in the spec (which indexes src[k] for k < n).
    let src: [&[f32]; 4] = core::array::from_fn(|i| sources.get(i).map_or(&[][..], |s| &s[..n]));
    let vec_end = n / 16 * 16;
    for k in (0..vec_end).step_by(16) {
        let mut lo = i16x8_splat(U8_BIAS);
        let mut hi = i16x8_splat(U8_BIAS);
        for (i, s) in src[..count].iter().enumerate() {
            let (a, b) = q16(code, s, k);
            let one = i16x8_splat(1 << (2 * i));
            lo = i16x8_add(lo, i16x8_add(i16x8_shl(a, 2 * i as u32), one));
            hi = i16x8_add(hi, i16x8_add(i16x8_shl(b, 2 * i as u32), one));
        }
        st(out, k, biased_to_u8(lo, hi));
    }
    let tail: [&[f32]; 4] = core::array::from_fn(|i| if i < count { &src[i][vec_end..] } else { &[][..] });
    scalar::pack_bitnet_hf_row(&tail[..count], rule, &mut out[vec_end..]);
}

/// Symmetric int8: q = clamp(round_away(clamp(x, -clip, clip) * id), -127, 127).
pub fn quantize_i8_symmetric(x: &[f32], id: f32, clip: f32, out: &mut [i8]) {
    let n = x.len().min(out.len());
    let (x, out) = (&x[..n], &mut out[..n]);
    let (neg_clip, clip_v, idv) = (f32x4_splat(-clip), f32x4_splat(clip), f32x4_splat(id));
    let lo = f32x4_splat(-127.0);
    let mut xs = x.chunks_exact(16);
    let mut os = out.chunks_exact_mut(16);
    for (xc, oc) in xs.by_ref().zip(os.by_ref()) {
        // Above 127 only the saturating narrowing clamps, to the same 127.
        let r: [v128; 4] = core::array::from_fn(|j| {
            let s = f32x4_mul(clamp(ld(xc, 4 * j), neg_clip, clip_v), idv);
            round_away_f32(pmax(s, lo))
        });
        st(oc, 0, integral_f32_to_i8(r));
    }
    scalar::quantize_i8_symmetric(xs.remainder(), id, clip, os.into_remainder());
}

/// Asymmetric int8: q = clamp(round_away(clamp(x, lo, hi) / scale) + zero_point, -128, 127).
pub fn quantize_i8_asymmetric(x: &[f32], scale: f32, zero_point: i32, lo: f32, hi: f32, out: &mut [i8]) {
    let n = x.len().min(out.len());
    let (x, out) = (&x[..n], &mut out[..n]);
    let (lov, hiv, sv, zp) = (f32x4_splat(lo), f32x4_splat(hi), f32x4_splat(scale), f32x4_splat(zero_point as f32));
    let (s_lo, s_hi) = (f32x4_splat(-512.0), f32x4_splat(512.0));
    let (q_lo, q_hi) = (f32x4_splat(-128.0), f32x4_splat(127.0));
    let mut xs = x.chunks_exact(16);
    let mut os = out.chunks_exact_mut(16);
    for (xc, oc) in xs.by_ref().zip(os.by_ref()) {
        // s is clamped to +-512 as in the spec (a zero point far outside -128..=127 can
        // bring even s = 512 back into range), and r to the i8 range, which also keeps it
        // within what integral_f32_to_i8 converts exactly.
        let r: [v128; 4] = core::array::from_fn(|j| {
            let s = clamp(f32x4_div(clamp(ld(xc, 4 * j), lov, hiv), sv), s_lo, s_hi);
            clamp(f32x4_add(round_away_f32(s), zp), q_lo, q_hi)
        });
        st(oc, 0, integral_f32_to_i8(r));
    }
    scalar::quantize_i8_asymmetric(xs.remainder(), scale, zero_point, lo, hi, os.into_remainder());
}

/// (q - zero_point) * scale.
pub fn dequantize_i8(q: &[i8], scale: f32, zero_point: i32, out: &mut [f32]) {
    let n = q.len().min(out.len());
    let (q, out) = (&q[..n], &mut out[..n]);
    let (sv, zp) = (f32x4_splat(scale), i32x4_splat(zero_point));
    let mut qs = q.chunks_exact(16);
    let mut os = out.chunks_exact_mut(16);
    for (qc, oc) in qs.by_ref().zip(os.by_ref()) {
        let v = ld(qc, 0);
        let lo = i16x8_extend_low_i8x16(v);
        let hi = i16x8_extend_high_i8x16(v);
        let w = [
            i32x4_extend_low_i16x8(lo),
            i32x4_extend_high_i16x8(lo),
            i32x4_extend_low_i16x8(hi),
            i32x4_extend_high_i16x8(hi),
        ];
        for (j, w) in w.into_iter().enumerate() {
            st(oc, 4 * j, f32x4_mul(f32x4_convert_i32x4(i32x4_sub(w, zp)), sv));
        }
    }
    scalar::dequantize_i8(qs.remainder(), scale, zero_point, os.into_remainder());
}

/// max |x| of a block whose length is a multiple of 16.
#[inline(always)]
fn block_abs_max(xb: &[f32]) -> f32 {
    let mut m = [f32x4_splat(0.0); 4];
    for c in xb.chunks_exact(16) {
        for (j, mj) in m.iter_mut().enumerate() {
            *mj = pmax(*mj, abs_f32(ld(c, 4 * j)));
        }
    }
    hmax(pmax(pmax(m[0], m[1]), pmax(m[2], m[3])))
}

/// round_away_i8(x * id) of x[at..at+16], as i8 lanes.
#[inline(always)]
fn quantize_16(x: &[f32], at: usize, id: v128) -> v128 {
    // Above 127 only the saturating narrowing clamps, to the same 127.
    let lo = f32x4_splat(-127.0);
    integral_f32_to_i8(core::array::from_fn(|j| round_away_f32(pmax(f32x4_mul(ld(x, at + 4 * j), id), lo))))
}

/// The block scale d = max|x| / 127 and its reciprocal (0 for d = 0), as the spec.
#[inline(always)]
fn block_scale(xb: &[f32]) -> (f32, f32) {
    let d = block_abs_max(xb) / 127.0;
    (d, if d == 0.0 { 0.0 } else { 1.0 / d })
}

/// Q8_0 blocks of `x` (a multiple of 32 values), as ggml's reference quantizer.
pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    let n = out.len().min(x.len() / QK8_0);
    let (x, out) = (&x[..n * QK8_0], &mut out[..n]);
    // Four blocks at a time, so that the two divisions per block run as vectors and the
    // blocks' dependency chains overlap.
    let mut xs = x.chunks_exact(4 * QK8_0);
    let mut os = out.chunks_exact_mut(4);
    let zero = f32x4_splat(0.0);
    for (xc, oc) in xs.by_ref().zip(os.by_ref()) {
        // Each block's max |x| as four lanes, then the four blocks' maxima in one vector.
        let m: [v128; 4] = core::array::from_fn(|b| {
            let mut m = [zero; 2];
            for k in 0..8 {
                m[k % 2] = pmax(m[k % 2], abs_f32(ld(xc, QK8_0 * b + 4 * k)));
            }
            pmax(m[0], m[1])
        });
        let half = |a: v128, b: v128| pmax(i32x4_shuffle::<0, 1, 4, 5>(a, b), i32x4_shuffle::<2, 3, 6, 7>(a, b));
        let (m01, m23) = (half(m[0], m[1]), half(m[2], m[3]));
        let amax = pmax(i32x4_shuffle::<0, 2, 4, 6>(m01, m23), i32x4_shuffle::<1, 3, 5, 7>(m01, m23));
        // d = max/127 and id = d == 0 ? 0 : 1/d, as the spec's scalar divisions.
        let d = f32x4_div(amax, f32x4_splat(127.0));
        let id = v128_andnot(f32x4_div(f32x4_splat(1.0), d), f32x4_eq(d, zero));
        let mut ds = [0f32; 4];
        st(&mut ds, 0, d);
        let ids = [
            i32x4_shuffle::<0, 0, 0, 0>(id, id),
            i32x4_shuffle::<1, 1, 1, 1>(id, id),
            i32x4_shuffle::<2, 2, 2, 2>(id, id),
            i32x4_shuffle::<3, 3, 3, 3>(id, id),
        ];
        for (b, block) in oc.iter_mut().enumerate() {
            st(&mut block.qs, 0, quantize_16(xc, QK8_0 * b, ids[b]));
            st(&mut block.qs, 16, quantize_16(xc, QK8_0 * b + 16, ids[b]));
            block.d = f16_bits(ds[b]);
        }
    }
    for (block, xb) in os.into_remainder().iter_mut().zip(xs.remainder().chunks_exact(QK8_0)) {
        let (d, id) = block_scale(xb);
        let id = f32x4_splat(id);
        st(&mut block.qs, 0, quantize_16(xb, 0, id));
        st(&mut block.qs, 16, quantize_16(xb, 16, id));
        block.d = f16_bits(d);
    }
}

/// Dequantized Q8_0 blocks.
pub fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK8_0)) {
        let d = f32x4_splat(f16_scale(block.d));
        store_scaled(ob, 0, ld(&block.qs, 0), d);
        store_scaled(ob, 16, ld(&block.qs, 16), d);
    }
}

/// Q8_K blocks of `x` (a multiple of 256 values) with their 16-value sums.
pub fn quantize_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    for (block, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let (d, id) = block_scale(xb);
        let id = f32x4_splat(id);
        // Sums of 16 values, four at a time: pairwise i8 -> i16 -> i32 sums, then the
        // four 4-lane vectors are transposed and added into one.
        let mut sums = [i32x4_splat(0); 4];
        for (g, sum) in sums.iter_mut().enumerate() {
            let t: [v128; 4] = core::array::from_fn(|k| {
                let j = 4 * g + k;
                let q = quantize_16(xb, 16 * j, id);
                st(&mut block.qs, 16 * j, q);
                i32x4_extadd_pairwise_i16x8(i16x8_extadd_pairwise_i8x16(q))
            });
            let u01 = i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(t[0], t[1]), i32x4_shuffle::<1, 3, 5, 7>(t[0], t[1]));
            let u23 = i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(t[2], t[3]), i32x4_shuffle::<1, 3, 5, 7>(t[2], t[3]));
            *sum = i32x4_add(i32x4_shuffle::<0, 2, 4, 6>(u01, u23), i32x4_shuffle::<1, 3, 5, 7>(u01, u23));
        }
        // |sum| <= 16 * 128 fits i16.
        st(&mut block.bsums, 0, i16x8_narrow_i32x4(sums[0], sums[1]));
        st(&mut block.bsums, 8, i16x8_narrow_i32x4(sums[2], sums[3]));
        block.d = d;
    }
}

/// Dequantized Q8_K blocks.
pub fn dequantize_q8_k(blocks: &[BlockQ8K], out: &mut [f32]) {
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = f32x4_splat(block.d);
        for k in 0..QK_K / 16 {
            store_scaled(ob, 16 * k, ld(&block.qs, 16 * k), d);
        }
    }
}

/// 16-bit bits -> f32, 16 at a time: `widen` turns four of them, zero-extended to 32
/// bits, into four f32; the scalar kernel `tail` takes the rest.
#[inline(always)]
#[cfg(feature = "model-files")]
fn widen_u16(src: &[u16], out: &mut [f32], widen: impl Fn(v128) -> v128, tail: fn(&[u16], &mut [f32])) {
    let n = src.len().min(out.len());
    let (src, out) = (&src[..n], &mut out[..n]);
    let mut ss = src.chunks_exact(16);
    let mut os = out.chunks_exact_mut(16);
    for (sc, oc) in ss.by_ref().zip(os.by_ref()) {
        for k in [0, 8] {
            let h = ld(sc, k);
            st(oc, k, widen(u32x4_extend_low_u16x8(h)));
            st(oc, k + 4, widen(u32x4_extend_high_u16x8(h)));
        }
    }
    tail(ss.remainder(), os.into_remainder());
}

// The lean builds (no model files) never convert float tensors: their table holds the
// scalar twins, which are smaller, instead of these.
#[cfg(not(feature = "model-files"))]
pub use scalar::{bf16_to_f32, f16_to_f32, f32_to_f16};

/// IEEE half bits -> f32 (exact, as `half`).
#[cfg(feature = "model-files")]
pub fn f16_to_f32(src: &[u16], out: &mut [f32]) {
    widen_u16(src, out, f16x4_to_f32x4, scalar::f16_to_f32);
}

/// Four f32 to IEEE half bits in the low 16 bits of each u32 lane, exactly as
/// [`scalar::f32_to_f16`]: normal halves round by adding 0xfff plus the lowest kept bit
/// before the shift (nearest even), subnormal ones by an f32 addition of 0.5 that leaves
/// the half's bits at the bottom of the sum (the addition rounds to nearest even).
#[inline(always)]
#[cfg(feature = "model-files")]
fn f32x4_to_f16x4(v: v128) -> v128 {
    let a = v128_and(v, u32x4_splat(0x7fff_ffff));
    let sign = u32x4_shr(v128_and(v, u32x4_splat(0x8000_0000)), 16);
    let odd = v128_and(u32x4_shr(a, 13), u32x4_splat(1));
    // Rebias the exponent from 127 to 15 and round, all in one wrapping add.
    let normal = u32x4_shr(i32x4_add(i32x4_add(a, u32x4_splat(0xc800_0fff)), odd), 13);
    let subnormal = i32x4_sub(f32x4_add(a, f32x4_splat(0.5)), u32x4_splat(0x3f00_0000));
    let nan = v128_or(u32x4_splat(0x7e00), v128_and(u32x4_shr(a, 13), u32x4_splat(0x3ff)));
    let finite = v128_bitselect(subnormal, normal, i32x4_lt(a, u32x4_splat(0x3880_0000)));
    let finite = v128_bitselect(u32x4_splat(0x7c00), finite, i32x4_ge(a, u32x4_splat(0x4780_0000)));
    v128_or(sign, v128_bitselect(nan, finite, i32x4_gt(a, u32x4_splat(0x7f80_0000))))
}

/// f32 -> IEEE half bits, rounded to nearest even, as `half`.
#[cfg(feature = "model-files")]
pub fn f32_to_f16(src: &[f32], out: &mut [u16]) {
    let n = src.len().min(out.len());
    let (src, out) = (&src[..n], &mut out[..n]);
    let mut ss = src.chunks_exact(8);
    let mut os = out.chunks_exact_mut(8);
    for (sc, oc) in ss.by_ref().zip(os.by_ref()) {
        st(oc, 0, u16x8_narrow_i32x4(f32x4_to_f16x4(ld(sc, 0)), f32x4_to_f16x4(ld(sc, 4))));
    }
    scalar::f32_to_f16(ss.remainder(), os.into_remainder());
}

/// bfloat16 bits -> f32 (exact: bf16 is the top half of an f32).
#[cfg(feature = "model-files")]
pub fn bf16_to_f32(src: &[u16], out: &mut [f32]) {
    widen_u16(src, out, |v| i32x4_shl(v, 16), scalar::bf16_to_f32);
}

/// The sums behind the error metrics of `reference` against `approx`, in the lane order
/// of the spec.
pub fn metric_sums(reference: &[f32], approx: &[f32]) -> MetricSums {
    let n = reference.len().min(approx.len());
    let (reference, approx) = (&reference[..n], &approx[..n]);
    let zero = f64x2_splat(0.0);
    let (mut ref_sq, mut err_sq, mut dot, mut approx_sq) = ([zero; 8], [zero; 8], [zero; 8], [zero; 8]);
    let mut max_err = zero;
    let mut rs = reference.chunks_exact(16);
    let mut as_ = approx.chunks_exact(16);
    for (rc, ac) in rs.by_ref().zip(as_.by_ref()) {
        for j in 0..4 {
            let (rv, av) = (ld(rc, 4 * j), ld(ac, 4 * j));
            let halves =
                [(f64x2_promote_low_f32x4(rv), f64x2_promote_low_f32x4(av)), (promote_high(rv), promote_high(av))];
            for (k, (r, a)) in halves.into_iter().enumerate() {
                let i = 2 * j + k;
                let e = f64x2_sub(r, a);
                ref_sq[i] = f64x2_add(ref_sq[i], f64x2_mul(r, r));
                err_sq[i] = f64x2_add(err_sq[i], f64x2_mul(e, e));
                dot[i] = f64x2_add(dot[i], f64x2_mul(r, a));
                approx_sq[i] = f64x2_add(approx_sq[i], f64x2_mul(a, a));
                max_err = pmax_f64(max_err, v128_and(e, u64x2_splat(0x7fff_ffff_ffff_ffff)));
            }
        }
    }
    let mut lanes = scalar::MetricLanes {
        ref_sq: f64_lanes(&ref_sq),
        err_sq: f64_lanes(&err_sq),
        dot: f64_lanes(&dot),
        approx_sq: f64_lanes(&approx_sq),
        max_abs_err: 0f64.max(f64x2_extract_lane::<0>(max_err)).max(f64x2_extract_lane::<1>(max_err)),
    };
    lanes.add(rs.remainder(), as_.remainder());
    lanes.finish()
}

/// The activations that field l of 16-byte group g of a TQ2_0 block's qs multiplies, as
/// `[X << 8, X >> 8]` in i16 lanes.
#[inline(always)]
fn shifted_group(x: &BlockQ8K, g: usize, l: usize) -> [v128; 2] {
    let xv = ld(&x.qs, g / 2 * 128 + l * 32 + g % 2 * 16);
    [i16x8_shl(xv, 8), i16x8_shr(xv, 8)]
}

/// The i32 lanes of sum c * q over one block (c the stored 2-bit fields), from each
/// 16-byte group g of qs and field l given as `shifted(g, l)`: the group's activations as
/// `[X << 8, X >> 8]` in i16 lanes.
///
/// Neither side is widened. Sixteen bytes are read as eight i16 lanes, lane k holding
/// bytes 2k (low) and 2k+1 (high): for the activations, `X << 8` is 256 * x[2k] and
/// `X >> 8` (arithmetic) is x[2k+1]; for the codes, `B & 0x0003` is c[2k] and
/// `B & 0x0300` is 256 * c[2k+1]. Both products are then 256 * c * x, which
/// `i32x4_dot_i16x8` sums exactly. Lanes 1 and 3 of a byte use the masks 0x000c/0x0c00
/// (one more factor 4), and lanes 2 and 3 read `B >> 4` (the bits that the shift moves
/// across the byte boundary are masked off).
#[inline(always)]
fn block_code_sums(w: &BlockTq2_0, shifted: impl Fn(usize, usize) -> [v128; 2]) -> v128 {
    let (even1, odd1) = (u16x8_splat(0x0003), u16x8_splat(0x0300));
    let (even4, odd4) = (u16x8_splat(0x000c), u16x8_splat(0x0c00));
    // acc1 sums 256 * c * q, acc4 1024 * c * q; per lane at most 16 (32) products of
    // magnitude <= 2 * 3 * 32768 (* 4) each, far below 2^31.
    let mut acc1 = i32x4_splat(0);
    let mut acc4 = i32x4_splat(0);
    // The four 16-byte groups of qs: half h, bytes m0..m0+16.
    for g in 0..4 {
        let (h, m0) = (g / 2, g % 2 * 16);
        let b = ld(&w.qs, h * 32 + m0);
        let b4 = u16x8_shr(b, 4);
        let term = |c: v128, l: usize, even: v128, odd: v128| {
            let [x_even, x_odd] = shifted(g, l);
            i32x4_add(i32x4_dot_i16x8(v128_and(c, even), x_even), i32x4_dot_i16x8(v128_and(c, odd), x_odd))
        };
        acc1 = i32x4_add(acc1, i32x4_add(term(b, 0, even1, odd1), term(b4, 2, even1, odd1)));
        acc4 = i32x4_add(acc4, i32x4_add(term(b, 1, even4, odd4), term(b4, 3, even4, odd4)));
    }
    i32x4_add(i32x4_shr(acc1, 8), i32x4_shr(acc4, 10))
}

/// The i32 lanes of sum q over a Q8_K block (from its bsums): sum (c - 1) * q is
/// sum c * q less this.
#[inline(always)]
fn bsum_lanes(x: &BlockQ8K) -> v128 {
    let ones = i16x8_splat(1);
    i32x4_add(i32x4_dot_i16x8(ld(&x.bsums, 0), ones), i32x4_dot_i16x8(ld(&x.bsums, 8), ones))
}

/// sum over blocks b of (f16(w_b.d) * x_b.d) * isum_b, accumulated in block order: the
/// GEMV's row kernel on x prepared as the GEMV prepares it, so that the .wasm holds one
/// copy of the block kernel (the product of a row is the GEMV's business; this kernel is
/// there for comparisons).
pub fn dot_tq2_0_q8_k(w: &[BlockTq2_0], x: &[BlockQ8K]) -> f32 {
    let prepared: Vec<PreparedQ8K> = x.iter().take(w.len()).map(PreparedQ8K::of).collect();
    row_dot(w, &prepared)
}

/// A Q8_K block as the row kernel multiplies it, prepared once per GEMV instead of once
/// per row: the shifted activations of [`block_code_sums`] and the sum of the values.
struct PreparedQ8K {
    shifted: [[v128; 2]; 16],
    sum: i32,
    d: f32,
}

impl PreparedQ8K {
    fn of(x: &BlockQ8K) -> Self {
        let shifted = core::array::from_fn(|i| shifted_group(x, i / 4, i % 4));
        Self { shifted, sum: hsum_i32(bsum_lanes(x)), d: x.d }
    }
}

/// `y[r] = dot_tq2_0_q8_k(row r of w, x)` for every r. The activations' shifts are made
/// once, not once per row: the row kernel is left with two masks, two multiply-adds and an
/// add per 16 codes, which is where its time goes.
pub fn gemv_tq2_0_q8_k(w: &[BlockTq2_0], x: &[BlockQ8K], y: &mut [f32]) {
    let prepared: Vec<PreparedQ8K> = x.iter().map(PreparedQ8K::of).collect();
    scalar::gemv_rows(w, x.len(), y, |row| row_dot(row, &prepared));
}

/// The dot product of a row with prepared activations (`sum c * q - sum q` per block).
// Out of line: the GEMV and the dot product share this one copy in the .wasm.
#[inline(never)]
fn row_dot(row: &[BlockTq2_0], prepared: &[PreparedQ8K]) -> f32 {
    scalar::dot_tq2_0_q8_k_with(
        row,
        prepared,
        |p| p.d,
        |wb, p| hsum_i32(block_code_sums(wb, |g, l| p.shifted[4 * g + l])).wrapping_sub(p.sum),
    )
}

/// The lookup tables of one Q8_K block for [`gemv_tq2_0x16_q8_k`]. For byte j of a TQ2_0
/// block, whose low nibble holds the codes (c0, c1) of values m and m + 32 of its half and
/// whose high nibble those of m + 64 and m + 96, `tables[j]` maps a nibble c0 + 4 * c1 to
/// (c0 - 1) * q_a + (c1 - 1) * q_b for its pair (a, b), in two parts: each value split as
/// q = 16 * (q >> 4) + (q & 15), tables `[low nibble, q & 15]`, `[high nibble, q & 15]`,
/// `[low nibble, q >> 4]`, `[high nibble, q >> 4]`. An entry lies in [-30, 30] (low part)
/// or [-16, 16] (high part), so four of them add in i8 without overflow.
struct PairTables {
    tables: [[v128; 4]; QK_K / 4],
    d: f32,
}

impl PairTables {
    fn of(x: &BlockQ8K) -> Self {
        let tables = core::array::from_fn(|j| {
            let at = (j / 32) * 128 + j % 32;
            let [a, b, c, e] = [0, 32, 64, 96].map(|o| x.qs[at + o]);
            [
                pair_table(a & 15, b & 15),
                pair_table(c & 15, e & 15),
                pair_table(a >> 4, b >> 4),
                pair_table(c >> 4, e >> 4),
            ]
        });
        Self { tables, d: x.d }
    }
}

/// The 16 entries (c0 - 1) * u + (c1 - 1) * v for nibbles c0 + 4 * c1 (entries with a code
/// 3 are never looked up: they hold what the masks give).
#[inline(always)]
fn pair_table(u: i8, v: i8) -> v128 {
    const FIRST_PLUS: v128 = u8x16(0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0);
    const FIRST_MINUS: v128 = u8x16(255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0);
    const SECOND_PLUS: v128 = u8x16(0, 0, 0, 0, 0, 0, 0, 0, 255, 255, 255, 255, 0, 0, 0, 0);
    const SECOND_MINUS: v128 = u8x16(255, 255, 255, 255, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    let (u, v) = (i8x16_splat(u), i8x16_splat(v));
    let first = i8x16_sub(v128_and(u, FIRST_PLUS), v128_and(u, FIRST_MINUS));
    let second = i8x16_sub(v128_and(v, SECOND_PLUS), v128_and(v, SECOND_MINUS));
    i8x16_add(first, second)
}

/// `y` for 16 interleaved rows per group by table lookup: per byte column j, the 16 rows'
/// nibbles index the activations' pair tables with `i8x16.swizzle`, so 16 rows advance
/// four values each in 4 lookups (2 per part). Four lookups add in i8, then widen into i16
/// sums per part (at most 32 * 120 per block); per block, isum = low + 16 * high is exact
/// and scaled as the spec does, in block order.
pub fn gemv_tq2_0x16_q8_k(w: &[BlockTq2_0x16], x: &[BlockQ8K], y: &mut [f32]) {
    if x.is_empty() {
        y.fill(0.0);
        return;
    }
    let tables: Vec<PairTables> = x.iter().map(PairTables::of).collect();
    let nibble = u8x16_splat(15);
    for (group, ys) in w.chunks_exact(x.len()).zip(y.chunks_exact_mut(16)) {
        let mut acc = [f32x4_splat(0.0); 4];
        for (wb, t) in group.iter().zip(&tables) {
            // Rows 0-7 and 8-15 of the low part, then of the high part.
            let mut sums = [i16x8_splat(0); 4];
            for j in (0..QK_K / 4).step_by(2) {
                let (v0, v1) = (ld(&wb.qs[j], 0), ld(&wb.qs[j + 1], 0));
                let index = [v128_and(v0, nibble), u8x16_shr(v0, 4), v128_and(v1, nibble), u8x16_shr(v1, 4)];
                let (t0, t1) = (&t.tables[j], &t.tables[j + 1]);
                let part = |p: usize| {
                    let first = i8x16_add(i8x16_swizzle(t0[p], index[0]), i8x16_swizzle(t0[p + 1], index[1]));
                    i8x16_add(first, i8x16_add(i8x16_swizzle(t1[p], index[2]), i8x16_swizzle(t1[p + 1], index[3])))
                };
                let (low, high) = (part(0), part(2));
                sums[0] = i16x8_add(sums[0], i16x8_extend_low_i8x16(low));
                sums[1] = i16x8_add(sums[1], i16x8_extend_high_i8x16(low));
                sums[2] = i16x8_add(sums[2], i16x8_extend_low_i8x16(high));
                sums[3] = i16x8_add(sums[3], i16x8_extend_high_i8x16(high));
            }
            let d_x = f32x4_splat(t.d);
            for (k, a) in acc.iter_mut().enumerate() {
                let (low, high) = (sums[k / 2], sums[2 + k / 2]);
                let (low, high) = if k % 2 == 0 {
                    (i32x4_extend_low_i16x8(low), i32x4_extend_low_i16x8(high))
                } else {
                    (i32x4_extend_high_i16x8(low), i32x4_extend_high_i16x8(high))
                };
                let isum = i32x4_add(low, i32x4_shl(high, 4));
                *a = f32x4_add(*a, f32x4_mul(f32x4_mul(ld(&wb.d, 4 * k), d_x), f32x4_convert_i32x4(isum)));
            }
        }
        for (k, a) in acc.into_iter().enumerate() {
            st(ys, 4 * k, a);
        }
    }
}

/// Integer dot product of ternary codes with int8 values.
pub fn dot_codes_i8(w: &[i8], x: &[i8]) -> i64 {
    let n = w.len().min(x.len());
    let (w, x) = (&w[..n], &x[..n]);
    // Per 16 values each i32 lane grows by at most 4 * 128^2 = 2^16, so a run of 2^18
    // values (2^14 steps) stays below 2^30 before it is added into the i64 total.
    const RUN: usize = 1 << 18;
    let mut total = 0i64;
    for (wr, xr) in w.chunks(RUN).zip(x.chunks(RUN)) {
        let mut acc = i32x4_splat(0);
        let mut ws = wr.chunks_exact(16);
        let mut xs = xr.chunks_exact(16);
        for (wc, xc) in ws.by_ref().zip(xs.by_ref()) {
            let (a, b) = (ld(wc, 0), ld(xc, 0));
            let lo = i32x4_dot_i16x8(i16x8_extend_low_i8x16(a), i16x8_extend_low_i8x16(b));
            let hi = i32x4_dot_i16x8(i16x8_extend_high_i8x16(a), i16x8_extend_high_i8x16(b));
            acc = i32x4_add(acc, i32x4_add(lo, hi));
        }
        let wide = i64x2_add(i64x2_extend_low_i32x4(acc), i64x2_extend_high_i32x4(acc));
        total += i64x2_extract_lane::<0>(wide) + i64x2_extract_lane::<1>(wide);
        total += scalar::dot_codes_i8(ws.remainder(), xs.remainder());
    }
    total
}

/// f32 dot product: 16 logical f32 lanes (element i into lane i % 16), folded pairwise.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [f32x4_splat(0.0); 4];
    let mut as_ = a.chunks_exact(16);
    let mut bs = b.chunks_exact(16);
    for (ac, bc) in as_.by_ref().zip(bs.by_ref()) {
        for (j, acc) in acc.iter_mut().enumerate() {
            *acc = f32x4_add(*acc, f32x4_mul(ld(ac, 4 * j), ld(bc, 4 * j)));
        }
    }
    let mut lanes = [0f32; SUM_LANES];
    for (j, v) in acc.into_iter().enumerate() {
        st(&mut lanes, 4 * j, v);
    }
    for (lane, (&x, &y)) in lanes.iter_mut().zip(as_.remainder().iter().zip(bs.remainder())) {
        *lane += x * y;
    }
    scalar::fold_lanes(lanes)
}

/// Differential tests: every kernel against `scalar`, bit for bit, over random lengths,
/// start offsets, ties, signed zeros, subnormals, huge values and non-finite values.
// Checks of this module's own helpers against their specification. Every kernel is
// checked against the scalar spec, on every length, offset and special value, by
// `kernels::tests`, which runs each supported backend.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tq1_scale_bytes_match_spec() {
        for start in (0..243u16).step_by(16) {
            let b: [u8; 16] = core::array::from_fn(|i| (start + i as u16).min(242) as u8);
            let mut out = [0u8; 16];
            st(&mut out, 0, tq1_scale_bytes(ld(&b, 0)));
            for (o, &b) in out.iter().zip(&b) {
                // The spec's (b * 256 + 242) / 243.
                assert_eq!(*o as u16, (b as u16 * 256).div_ceil(243), "b = {b}");
            }
        }
    }

    #[test]
    fn one_half_converts_as_the_spec_bit_for_bit() {
        let all: Vec<u16> = (0..=u16::MAX).collect();
        let mut want = vec![0f32; all.len()];
        scalar::f16_to_f32(&all, &mut want);
        // Strict bits, NaN payloads included: no arithmetic touches them.
        for (h, w) in all.iter().zip(&want) {
            assert_eq!(f16_to_f32_one(*h).to_bits(), w.to_bits(), "f16 {h:#06x}");
        }
    }
}
