//! The scalar kernels: the specification every SIMD backend reproduces bit for bit.
//!
//! Floating-point sums are order-sensitive, so their order is part of the spec:
//! element `i` of a slice is added into lane `i % SUM_LANES` (an f64 accumulator
//! starting at +0.0), and the lanes are folded by [`fold_lanes`]. A SIMD backend
//! with 4, 8 or 16 lanes per register keeps 16 logical lanes and pads tails with
//! +0.0, which leaves every lane unchanged. No FMA is used anywhere.

use super::{CodeRule, MetricSums, FEW_SORTED, ROUND_BIAS, SUM_LANES};
#[cfg(target_arch = "x86_64")]
use super::{TALLIES, TALLY_LIMIT, TALLY_ROUNDING};
use crate::layout::blocks::{f16_value, BlockQ8K, BlockQ8_0, BlockTq1_0, BlockTq2_0, BlockTq2_0x16, QK8_0, QK_K};

/// Folds the logical lanes pairwise: lane i += lane i+8, then +4, +2, +1 (the f64 sums,
/// and the f32 lanes of `dot_f32`).
#[inline]
pub fn fold_lanes<T: Copy + core::ops::AddAssign>(mut lanes: [T; SUM_LANES]) -> T {
    let mut step = SUM_LANES / 2;
    while step > 0 {
        for i in 0..step {
            lanes[i] += lanes[i + step];
        }
        step /= 2;
    }
    lanes[0]
}

/// Round half away from zero for |v| well below 2^23, as `roundf`.
#[inline]
pub fn round_away(v: f32) -> f32 {
    v.round()
}

/// round_away(clamp(v, -127, 127)) as i8. Only a scale below ~3.7e-37, whose
/// reciprocal overflows, makes v infinite (clamped) or NaN (0 * inf, read as 0); such a
/// scale is 0 once stored as f16, so those codes never change a dequantized value.
///
/// Written as the SIMD kernels' bias add and a truncating conversion because
/// `f32::round` is a library call where the ISA has no round-half-away instruction
/// (wasm32, x86 without SSE4.1), which made this the whole cost of the scalar int8
/// quantizers.
#[inline]
pub fn round_away_i8(v: f32) -> i8 {
    let v = v.clamp(-127.0, 127.0);
    // `as i32` truncates toward zero and reads NaN as 0.
    (v + ROUND_BIAS.copysign(v)) as i32 as i8
}

/// Index of the first NaN or infinity.
pub fn first_non_finite(x: &[f32]) -> Option<usize> {
    x.iter().position(|v| !v.is_finite())
}

/// Sum of |x| in the lane order of the module docs.
pub fn abs_sum(x: &[f32]) -> f64 {
    let mut lanes = [0f64; SUM_LANES];
    for chunk in x.chunks(SUM_LANES) {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            *lane += v.abs() as f64;
        }
    }
    fold_lanes(lanes)
}

/// max |x| over the non-NaN values, or 0 for an empty slice.
///
/// Compared as integers: the bits of non-negative floats order as their values, and a
/// NaN's magnitude bits lie above infinity's, so a NaN shows in the maximum and sends the
/// slice to the slower pass that skips it. Lanes of independent maxima let the common case
/// run at the speed of the loads (max is exact in any order).
pub fn abs_max(x: &[f32]) -> f32 {
    const LANES: usize = 8;
    let magnitude = |v: &f32| v.to_bits() & 0x7fff_ffff;
    let mut lanes = [0u32; LANES];
    let mut chunks = x.chunks_exact(LANES);
    for chunk in &mut chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane = (*lane).max(magnitude(v));
        }
    }
    let tail = chunks.remainder().iter().map(magnitude);
    let max = lanes.into_iter().chain(tail).max().unwrap_or(0);
    if max <= f32::INFINITY.to_bits() {
        f32::from_bits(max)
    } else {
        let finite_or_infinite = x.iter().map(magnitude).filter(|&m| m <= f32::INFINITY.to_bits());
        f32::from_bits(finite_or_infinite.max().unwrap_or(0))
    }
}

/// (min, max) of x; (+inf, -inf) for an empty slice. -0.0 and +0.0 compare equal,
/// so callers must not depend on which zero is returned.
pub fn min_max(x: &[f32]) -> (f32, f32) {
    x.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)))
}

/// (sum of |x| over |x| > t, count of such x), for the TWN rule.
pub fn abs_sum_above(x: &[f32], t: f32) -> (f64, u64) {
    let mut lanes = [0f64; SUM_LANES];
    let mut count = 0u64;
    for chunk in x.chunks(SUM_LANES) {
        for (lane, &v) in lanes.iter_mut().zip(chunk) {
            let a = v.abs();
            if a > t {
                *lane += a as f64;
                count += 1;
            }
        }
    }
    (fold_lanes(lanes), count)
}

/// For each threshold t: (sum of |x| * scale rounded to an integer (to nearest, ties to
/// even) over |x| > t, count of such x). Every |x| * scale must be at most 2^15
/// (`TALLY_LIMIT`); the sums are exact integers, so any order of addition gives them.
#[cfg(target_arch = "x86_64")]
pub fn abs_tallies_above(x: &[f32], scale: f32, thresholds: &[f32; TALLIES]) -> [(u64, u64); TALLIES] {
    let mut tallies = [(0u64, 0u64); TALLIES];
    for &v in x {
        let a = v.abs();
        debug_assert!(a * scale <= TALLY_LIMIT, "|x| * scale must stay at most 2^15");
        let q = u64::from((a * scale + TALLY_ROUNDING).to_bits() - TALLY_ROUNDING.to_bits());
        for (tally, &t) in tallies.iter_mut().zip(thresholds) {
            if a > t {
                tally.0 += q;
                tally.1 += 1;
            }
        }
    }
    tallies
}

/// The bits of every |x| with low < |x| <= high, in order of x: the first `out.len()` of
/// them in `out`; returns how many there are.
#[cfg(target_arch = "x86_64")]
pub fn abs_bits_within(x: &[f32], low: f32, high: f32, out: &mut [u32]) -> usize {
    let mut found = 0;
    for &v in x {
        let a = v.abs();
        if a > low && a <= high {
            if let Some(o) = out.get_mut(found) {
                *o = a.to_bits();
            }
            found += 1;
        }
    }
    found
}

/// Up to [`FEW_SORTED`] magnitudes' bits in decreasing order, by insertion.
pub fn sort_few_decreasing(values: &mut [u32]) {
    debug_assert!(values.len() <= FEW_SORTED);
    for i in 1..values.len() {
        let v = values[i];
        let mut j = i;
        while j > 0 && values[j - 1] < v {
            values[j] = values[j - 1];
            j -= 1;
        }
        values[j] = v;
    }
}

/// The vector sorts' frame: each value goes to the place `greater(padded, v)` gives,
/// the number of values greater than v in `padded` (the values, then zeros up to
/// [`FEW_SORTED`], which are greater than none). A run of equal values shares one place;
/// the places after it stay marked (`u32::MAX`, no magnitude's bits) and take the value
/// before them. The first place always has a value, the largest.
#[cfg(any(target_arch = "x86_64", target_feature = "simd128"))]
#[inline(always)]
pub(crate) fn sort_by_places(values: &mut [u32], greater: impl Fn(&[u32; FEW_SORTED], u32) -> usize) {
    let mut padded = [0u32; FEW_SORTED];
    padded[..values.len()].copy_from_slice(values);
    let mut places = [u32::MAX; FEW_SORTED];
    for &v in values.iter() {
        places[greater(&padded, v)] = v;
    }
    let mut last = 0;
    for (o, &p) in values.iter_mut().zip(&places) {
        last = if p == u32::MAX { last } else { p };
        *o = last;
    }
}

/// The ternary code q in {-1, 0, 1} of one value.
#[inline]
pub fn ternary_code(v: f32, rule: CodeRule) -> i8 {
    match rule {
        // clamp(round_away(v * inv), -1, 1) is 1 exactly when v * inv >= 0.5; a NaN
        // product (0 * inf) compares false and gives 0.
        CodeRule::Scaled { inv } => {
            let s = v * inv;
            (s >= 0.5) as i8 - (s <= -0.5) as i8
        }
        CodeRule::Threshold { threshold } => (v > threshold) as i8 - (v < -threshold) as i8,
    }
}

/// Ternary codes q of every value.
pub fn ternary_codes(x: &[f32], rule: CodeRule, out: &mut [i8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = ternary_code(v, rule);
    }
}

/// Quantizes `x` (a multiple of 256 values) into TQ2_0 blocks that all get scale bits `d`.
pub fn pack_tq2_0(x: &[f32], rule: CodeRule, d: [u8; 2], out: &mut [BlockTq2_0]) {
    for (block, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        for half in 0..2 {
            for m in 0..32 {
                let mut byte = 0u8;
                for lane in 0..4 {
                    let c = (ternary_code(xb[half * 128 + lane * 32 + m], rule) + 1) as u8;
                    byte |= c << (2 * lane);
                }
                block.qs[half * 32 + m] = byte;
            }
        }
        block.d = d;
    }
}

/// Codes (q in {-1,0,1}) of TQ2_0 blocks. The code 3 cannot come from a quantizer; it
/// reads as +2 (c - 1), as ggml's dequantizer does.
pub fn unpack_tq2_0(blocks: &[BlockTq2_0], out: &mut [i8]) {
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        for half in 0..2 {
            for lane in 0..4 {
                for m in 0..32 {
                    let c = (block.qs[half * 32 + m] >> (2 * lane)) & 3;
                    ob[half * 128 + lane * 32 + m] = c as i8 - 1;
                }
            }
        }
    }
}

/// Dequantized values of TQ2_0 blocks: q * f16(d).
pub fn dequantize_tq2_0(blocks: &[BlockTq2_0], out: &mut [f32]) {
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        let d = f16_value(block.d);
        for half in 0..2 {
            for lane in 0..4 {
                for m in 0..32 {
                    let c = (block.qs[half * 32 + m] >> (2 * lane)) & 3;
                    ob[half * 128 + lane * 32 + m] = (c as i8 - 1) as f32 * d;
                }
            }
        }
    }
}

/// Powers of three of the TQ1_0 digits, most significant first.
const POW3: [u8; 5] = [81, 27, 9, 3, 1];

/// Maps a base-3 number b < 243 to the byte whose top digits a multiply-by-3 extracts.
#[inline]
fn tq1_scale_byte(b: u16) -> u8 {
    (b * 256).div_ceil(243) as u8
}

/// Quantizes `x` (a multiple of 256 values) into TQ1_0 blocks with scale bits `d`.
pub fn pack_tq1_0(x: &[f32], rule: CodeRule, d: [u8; 2], out: &mut [BlockTq1_0]) {
    for (block, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        let c = |i: usize| (ternary_code(xb[i], rule) + 1) as u16;
        for m in 0..32 {
            let b: u16 = (0..5).map(|n| c(n * 32 + m) * POW3[n] as u16).sum();
            block.qs[m] = tq1_scale_byte(b);
        }
        for m in 0..16 {
            let b: u16 = (0..5).map(|n| c(160 + n * 16 + m) * POW3[n] as u16).sum();
            block.qs[32 + m] = tq1_scale_byte(b);
        }
        for m in 0..4 {
            let b: u16 = (0..4).map(|n| c(240 + n * 4 + m) * POW3[n] as u16).sum();
            block.qh[m] = tq1_scale_byte(b);
        }
        block.d = d;
    }
}

/// Digit n (0 = most significant) of a TQ1_0 byte: multiply by 3^n, keep 8 bits, then
/// the top digit is (byte * 3) >> 8.
#[inline]
fn tq1_digit(byte: u8, n: usize) -> i8 {
    let shifted = byte.wrapping_mul(POW3[4 - n]);
    (((shifted as u16) * 3) >> 8) as i8 - 1
}

/// Codes of TQ1_0 blocks.
pub fn unpack_tq1_0(blocks: &[BlockTq1_0], out: &mut [i8]) {
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        for n in 0..5 {
            for m in 0..32 {
                ob[n * 32 + m] = tq1_digit(block.qs[m], n);
            }
            for m in 0..16 {
                ob[160 + n * 16 + m] = tq1_digit(block.qs[32 + m], n);
            }
        }
        for n in 0..4 {
            for m in 0..4 {
                ob[240 + n * 4 + m] = tq1_digit(block.qh[m], n);
            }
        }
    }
}

/// Dequantized values of TQ1_0 blocks.
pub fn dequantize_tq1_0(blocks: &[BlockTq1_0], out: &mut [f32]) {
    let mut codes = [0i8; QK_K];
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        unpack_tq1_0(core::slice::from_ref(block), &mut codes);
        let d = f16_value(block.d);
        for (o, &q) in ob.iter_mut().zip(&codes) {
            *o = q as f32 * d;
        }
    }
}

/// One packed bitnet-hf row: byte `k = sum over i of c(sources[i][k]) << 2i`. Missing
/// sources (when the row count is not a multiple of 4) contribute zero bits, as
/// transformers' `pack_weights` does.
pub fn pack_bitnet_hf_row(sources: &[&[f32]], rule: CodeRule, out: &mut [u8]) {
    for (k, o) in out.iter_mut().enumerate() {
        let mut byte = 0u8;
        for (i, src) in sources.iter().enumerate() {
            byte |= ((ternary_code(src[k], rule) + 1) as u8) << (2 * i);
        }
        *o = byte;
    }
}

/// `f32::clamp(v, lo, hi)` for bounds known to be ordered: the same comparisons (a NaN
/// `v` stays NaN), without `f32::clamp`'s bounds check, whose panic message would link
/// float formatting into every build.
#[inline(always)]
pub(crate) fn clamp_ordered(v: f32, lo: f32, hi: f32) -> f32 {
    if v < lo {
        lo
    } else if v > hi {
        hi
    } else {
        v
    }
}

/// Symmetric int8: q = clamp(round_away(clamp(x, -clip, clip) * id), -127, 127).
pub fn quantize_i8_symmetric(x: &[f32], id: f32, clip: f32, out: &mut [i8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        let s = clamp_ordered(v, -clip, clip) * id;
        *o = round_away_i8(s);
    }
}

/// Asymmetric int8: q = clamp(round_away(clamp(x, lo, hi) / scale) + zero_point, -128, 127).
/// `scale` must be positive.
pub fn quantize_i8_asymmetric(x: &[f32], scale: f32, zero_point: i32, lo: f32, hi: f32, out: &mut [i8]) {
    let zp = zero_point as f32;
    for (o, &v) in out.iter_mut().zip(x) {
        // Clamping before rounding keeps |s| small, where round_away is exact.
        let s = (clamp_ordered(v, lo, hi) / scale).clamp(-512.0, 512.0);
        *o = (round_away(s) + zp).clamp(-128.0, 127.0) as i8;
    }
}

/// (q - zero_point) * scale.
pub fn dequantize_i8(q: &[i8], scale: f32, zero_point: i32, out: &mut [f32]) {
    for (o, &v) in out.iter_mut().zip(q) {
        *o = (v as i32 - zero_point) as f32 * scale;
    }
}

/// The codes of one Q8 block with scale `d` = abs_max / 127: round_away_i8(v / d) for
/// each value (v times the reciprocal, 0 for a zero scale).
#[inline]
fn block_codes_i8(xb: &[f32], d: f32, qs: &mut [i8]) {
    let id = if d == 0.0 { 0.0 } else { 1.0 / d };
    for (q, &v) in qs.iter_mut().zip(xb) {
        *q = round_away_i8(v * id);
    }
}

/// Q8_0 blocks of `x` (a multiple of 32 values), as ggml's reference quantizer.
pub fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
    for (block, xb) in out.iter_mut().zip(x.chunks_exact(QK8_0)) {
        let d = abs_max(xb) / 127.0;
        block_codes_i8(xb, d, &mut block.qs);
        block.d = crate::layout::blocks::f16_bits(d);
    }
}

/// Dequantized Q8_0 blocks.
pub fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK8_0)) {
        let d = f16_value(block.d);
        for (o, &q) in ob.iter_mut().zip(&block.qs) {
            *o = q as f32 * d;
        }
    }
}

/// Q8_K blocks of `x` (a multiple of 256 values), with the symmetric rule of the int8
/// scheme (d = absmax/127, round half away) and the 16-value sums.
///
/// Each block is: d = abs_max / 127, codes `round_away_i8(v * (1 / d))` (0 for d = 0),
/// bsums the sums of 16 codes. In wasm, blocks of finite values with a normal d (every
/// block of real activations) take a shorter path to the same bytes: there the clamp, the
/// sign copy and the saturating conversion of `round_away_i8` cost more than the rest
/// (`q8_k_finite_block`). Natively that path measured 10% slower than this one.
pub fn quantize_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
    for (block, xb) in out.iter_mut().zip(x.chunks_exact(QK_K)) {
        #[cfg(target_arch = "wasm32")]
        {
            // The largest magnitude's bits, in four lanes; above the largest finite
            // f32's bits when the block holds an infinity or a NaN.
            let mut lanes = [0u32; 4];
            for chunk in xb.chunks_exact(4) {
                for (lane, v) in lanes.iter_mut().zip(chunk) {
                    *lane = (*lane).max(v.to_bits() & 0x7fff_ffff);
                }
            }
            let max = lanes.into_iter().max().unwrap_or(0);
            let d = f32::from_bits(max) / 127.0;
            if max <= f32::MAX.to_bits() && d >= f32::MIN_POSITIVE {
                q8_k_finite_block(xb, d, block);
                continue;
            }
        }
        let d = abs_max(xb) / 127.0;
        // Sixteen codes at a time, summed while they are made.
        for ((qs, xs), sum) in block.qs.chunks_exact_mut(16).zip(xb.chunks_exact(16)).zip(&mut block.bsums) {
            block_codes_i8(xs, d, qs);
            *sum = qs.iter().map(|&q| q as i16).sum();
        }
        block.d = d;
    }
}

/// A Q8_K block of finite values whose scale `d` (abs_max / 127) is a normal number.
///
/// The codes are `round_away_i8(v * id)` without its clamp: with d normal, v * id is at
/// most 127 * (1 + 3 * 2^-24) in magnitude (three roundings), so adding the rounding bias
/// stays under 128 and truncation gives what the clamp would (127 for the few products
/// just above 127). The truncated value r, an integer in [-127, 127], becomes an integer
/// by adding 1.5 * 2^23 (the sum's bits are 0x4B40_0000 + r, whose low byte is r as an
/// i8) rather than by the saturating conversion, which V8 makes several instructions.
/// The sums add four biased bytes (code + 128) per 32-bit word in two 16-bit lanes.
#[cfg(target_arch = "wasm32")]
#[inline]
fn q8_k_finite_block(xb: &[f32], d: f32, block: &mut BlockQ8K) {
    const ONE_AND_A_HALF_2_23: f32 = 12_582_912.0;
    let id = 1.0 / d;
    for (q, &v) in block.qs.iter_mut().zip(xb) {
        let p = v * id;
        *q = ((p + ROUND_BIAS.copysign(p)).trunc() + ONE_AND_A_HALF_2_23).to_bits() as i8;
    }
    for (sum, qs) in block.bsums.iter_mut().zip(block.qs.chunks_exact(16)) {
        let mut pairs = 0u32;
        for w in qs.chunks_exact(4) {
            let biased = u32::from_le_bytes([w[0] as u8, w[1] as u8, w[2] as u8, w[3] as u8]) ^ 0x8080_8080;
            pairs += (biased & 0x00ff_00ff) + ((biased >> 8) & 0x00ff_00ff);
        }
        *sum = ((pairs & 0xffff) + (pairs >> 16)) as i16 - 16 * 128;
    }
    block.d = d;
}

/// Dequantized Q8_K blocks.
pub fn dequantize_q8_k(blocks: &[BlockQ8K], out: &mut [f32]) {
    for (block, ob) in blocks.iter().zip(out.chunks_exact_mut(QK_K)) {
        for (o, &q) in ob.iter_mut().zip(&block.qs) {
            *o = q as f32 * block.d;
        }
    }
}

/// IEEE half bits -> f32.
pub fn f16_to_f32(src: &[u16], out: &mut [f32]) {
    for (o, &h) in out.iter_mut().zip(src) {
        *o = half::f16::from_bits(h).to_f32();
    }
}

/// f32 -> IEEE half bits, rounded to nearest even, exactly as `half::f16::from_f32`:
/// beyond the largest half (65504, up to the rounding) gives infinity, and a NaN stays
/// a NaN with its sign, its top ten payload bits and the quiet bit set.
pub fn f32_to_f16(src: &[f32], out: &mut [u16]) {
    for (o, &v) in out.iter_mut().zip(src) {
        *o = half::f16::from_f32(v).to_bits();
    }
}

/// bfloat16 bits -> f32 (exact: bf16 is the top half of an f32).
pub fn bf16_to_f32(src: &[u16], out: &mut [f32]) {
    for (o, &h) in out.iter_mut().zip(src) {
        *o = f32::from_bits((h as u32) << 16);
    }
}

/// The metric sums of the spec, lane by lane: value `i` of a run adds to lane
/// `i % SUM_LANES`, and [`finish`](Self::finish) folds the lanes. SIMD kernels fill the
/// lanes their own way, then add their tail here.
pub(crate) struct MetricLanes {
    pub ref_sq: [f64; SUM_LANES],
    pub err_sq: [f64; SUM_LANES],
    pub dot: [f64; SUM_LANES],
    pub approx_sq: [f64; SUM_LANES],
    pub max_abs_err: f64,
}

impl MetricLanes {
    pub fn new() -> Self {
        let zero = [0f64; SUM_LANES];
        Self { ref_sq: zero, err_sq: zero, dot: zero, approx_sq: zero, max_abs_err: 0.0 }
    }

    /// Adds at most `SUM_LANES` values, the first to lane 0.
    pub fn add(&mut self, reference: &[f32], approx: &[f32]) {
        for (lane, (&r, &a)) in reference.iter().zip(approx).enumerate() {
            let (r, a) = (r as f64, a as f64);
            let e = r - a;
            self.ref_sq[lane] += r * r;
            self.err_sq[lane] += e * e;
            self.dot[lane] += r * a;
            self.approx_sq[lane] += a * a;
            self.max_abs_err = self.max_abs_err.max(e.abs());
        }
    }

    pub fn finish(self) -> MetricSums {
        MetricSums {
            ref_sq: fold_lanes(self.ref_sq),
            err_sq: fold_lanes(self.err_sq),
            dot: fold_lanes(self.dot),
            approx_sq: fold_lanes(self.approx_sq),
            max_abs_err: self.max_abs_err,
        }
    }
}

/// The sums behind the error metrics of `reference` against `approx` (same length).
pub fn metric_sums(reference: &[f32], approx: &[f32]) -> MetricSums {
    let mut lanes = MetricLanes::new();
    for (rc, ac) in reference.chunks(SUM_LANES).zip(approx.chunks(SUM_LANES)) {
        lanes.add(rc, ac);
    }
    lanes.finish()
}

/// Integer dot product of one TQ2_0 block with one Q8_K block: sum of q_w * q_x.
#[inline]
pub fn dot_tq2_0_q8_k_block(w: &BlockTq2_0, x: &BlockQ8K) -> i32 {
    let mut sum = 0i32;
    for half in 0..2 {
        for lane in 0..4 {
            for m in 0..32 {
                let c = ((w.qs[half * 32 + m] >> (2 * lane)) & 3) as i32;
                sum += c * x.qs[half * 128 + lane * 32 + m] as i32;
            }
        }
    }
    // sum (c - 1) * q = sum c * q - sum q, and bsums hold sum q per 16 values.
    sum - x.bsums.iter().map(|&s| s as i32).sum::<i32>()
}

/// sum over blocks b of (f16(w_b.d) * x_b.d) * isum_b, accumulated in block order.
pub fn dot_tq2_0_q8_k(w: &[BlockTq2_0], x: &[BlockQ8K]) -> f32 {
    dot_tq2_0_q8_k_with(w, x, |xb| xb.d, dot_tq2_0_q8_k_block)
}

/// [`dot_tq2_0_q8_k`] with the integer block products `isum_b` from `block_dot`: the
/// spec's scaling and order, for kernels that compute those products their own way, from
/// Q8_K blocks or from a form of them prepared for the purpose (`scale_of` gives d_x).
#[inline(always)]
pub(crate) fn dot_tq2_0_q8_k_with<X>(
    w: &[BlockTq2_0],
    x: &[X],
    scale_of: impl Fn(&X) -> f32,
    block_dot: impl Fn(&BlockTq2_0, &X) -> i32,
) -> f32 {
    let mut acc = 0f32;
    for (wb, xb) in w.iter().zip(x) {
        acc += (f16_value(wb.d) * scale_of(xb)) * block_dot(wb, xb) as f32;
    }
    acc
}

/// `y[r]` = [`dot_tq2_0_q8_k`] of row r of w with x, for every r.
pub fn gemv_tq2_0_q8_k(w: &[BlockTq2_0], x: &[BlockQ8K], y: &mut [f32]) {
    gemv_rows(w, x.len(), y, |row| dot_tq2_0_q8_k(row, x));
}

/// A GEMV of `y.len()` rows of `per_row` blocks, one call of `row_dot` per row; rows of
/// no blocks give 0.
#[inline(always)]
pub(crate) fn gemv_rows(w: &[BlockTq2_0], per_row: usize, y: &mut [f32], row_dot: impl Fn(&[BlockTq2_0]) -> f32) {
    debug_assert_eq!(w.len(), y.len() * per_row);
    if per_row == 0 {
        y.fill(0.0);
        return;
    }
    for (yr, row) in y.iter_mut().zip(w.chunks_exact(per_row)) {
        *yr = row_dot(row);
    }
}

/// `y[r]` for the 16 rows of each group of interleaved blocks (`x.len()` blocks per
/// group, `y.len()` = 16 * groups): as [`gemv_tq2_0_q8_k`], sum over blocks b of
/// (d_w * d_x) * isum_b in block order, with isum_b = sum (c - 1) * q from the codes and
/// the values themselves (the bsums are not read).
#[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))] // see gemv::interleaved_for
pub fn gemv_tq2_0x16_q8_k(w: &[BlockTq2_0x16], x: &[BlockQ8K], y: &mut [f32]) {
    if x.is_empty() {
        y.fill(0.0);
        return;
    }
    for (group, ys) in w.chunks_exact(x.len()).zip(y.chunks_exact_mut(16)) {
        for (r, yr) in ys.iter_mut().enumerate() {
            let mut acc = 0f32;
            for (wb, xb) in group.iter().zip(x) {
                let mut isum = 0i32;
                for (j, bytes) in wb.qs.iter().enumerate() {
                    let (half, m) = (j / 32, j % 32);
                    for lane in 0..4 {
                        let c = ((bytes[r] >> (2 * lane)) & 3) as i32;
                        isum += (c - 1) * xb.qs[half * 128 + lane * 32 + m] as i32;
                    }
                }
                acc += (wb.d[r] * xb.d) * isum as f32;
            }
            *yr = acc;
        }
    }
}

/// Integer dot product of ternary codes with int8 values.
pub fn dot_codes_i8(w: &[i8], x: &[i8]) -> i64 {
    w.iter().zip(x).map(|(&a, &b)| a as i64 * b as i64).sum()
}

/// f32 dot product: 16 logical f32 lanes (element i into lane i % 16), folded pairwise.
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; SUM_LANES];
    for (ac, bc) in a.chunks(SUM_LANES).zip(b.chunks(SUM_LANES)) {
        for (lane, (&x, &y)) in lanes.iter_mut().zip(ac.iter().zip(bc)) {
            *lane += x * y;
        }
    }
    fold_lanes(lanes)
}

/// Quantizes `x` (a multiple of 128 values) into I2_S code bytes (bitnet.cpp, x86):
/// value `b*128 + g*32 + p` goes to byte `b*32 + p`, bits `6 - 2g`, as c = q + 1.
pub fn pack_i2_s(x: &[f32], rule: CodeRule, out: &mut [u8]) {
    for (xb, ob) in x.chunks_exact(128).zip(out.chunks_exact_mut(32)) {
        for (p, o) in ob.iter_mut().enumerate() {
            let mut byte = 0u8;
            for g in 0..4 {
                byte |= ((ternary_code(xb[g * 32 + p], rule) + 1) as u8) << (6 - 2 * g);
            }
            *o = byte;
        }
    }
}

/// Codes of I2_S code bytes (the 32-byte tail excluded). The code 3 reads as +2.
pub fn unpack_i2_s(bytes: &[u8], out: &mut [i8]) {
    for (bb, ob) in bytes.chunks_exact(32).zip(out.chunks_exact_mut(128)) {
        for (p, &byte) in bb.iter().enumerate() {
            for g in 0..4 {
                ob[g * 32 + p] = ((byte >> (6 - 2 * g)) & 3) as i8 - 1;
            }
        }
    }
}
