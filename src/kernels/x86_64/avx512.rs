//! AVX-512 kernels (F, BW, VL, DQ, VNNI, GFNI, with F16C and POPCNT), bit-identical to `scalar`.
//!
//! Every public function is a safe wrapper around the `#[target_feature]` function of
//! the same name in `imp`; the table that holds the wrappers is only handed out after
//! run-time detection (see `super::avx512_kernels`). Floating-point sums keep the 16
//! logical f64 lanes of the spec: one zmm of 16 f32 is widened to lanes 0..8 and 8..16,
//! and tails are masked loads, whose +0.0 padding leaves every lane unchanged.
//!
//! The AVX-512 intrinsics are stable since Rust 1.89, so this module needs that
//! compiler (the crate's `rust-version` must be at least 1.89).

// Safe wrappers, one per kernel of the list, for the AVX-512 table (see `super::safe_wrappers`).
for_each_kernel!(safe_wrappers);

/// The `#[target_feature]` kernels. Callers must make sure the CPU has every feature
/// named in their attributes; pointers are derived from slices, and every access stays
/// within the slice lengths (masked loads and stores for tails).
mod imp {
    use core::arch::x86_64::*;

    // The 256-bit lanes of TQ1_0's last 96 values take the AVX2 digits as they are.
    use super::super::avx2::imp::tq1_digits as tq1_digits_256;
    // Narrowing to f16 is bound by memory; the F16C kernel serves as it is.
    pub(super) use super::super::avx2::imp::f32_to_f16;

    use super::super::{ROUND_BIAS, TQ1_MUL, TQ1_SHIFT};
    use crate::kernels::{
        scalar, CodeRule, MetricSums, SUM_LANES, TALLIES, TALLY_COUNT, TALLY_LANE_VALUES, TALLY_PACK, TALLY_ROUNDING,
    };
    use crate::layout::blocks::{BlockQ8K, BlockQ8_0, BlockTq1_0, BlockTq2_0, QK8_0, QK_K};

    /// fpclass categories QNaN | +Inf | -Inf | SNaN.
    const NON_FINITE: i32 = 0x01 | 0x08 | 0x10 | 0x80;
    /// roundscale immediate: truncate, no exceptions.
    const TRUNC: i32 = _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC;
    /// ternary-logic immediate of (a & b) | c.
    const AND_OR: i32 = 0xEA;

    /// A mask of the first `n` (at most 16) lanes.
    #[inline]
    fn mask16(n: usize) -> __mmask16 {
        debug_assert!(n <= 16);
        ((1u32 << n) - 1) as __mmask16
    }

    /// A mask of the first `n` (at most 64) bytes.
    #[inline]
    fn mask64(n: usize) -> __mmask64 {
        debug_assert!(n <= 64);
        if n == 64 {
            u64::MAX
        } else {
            (1u64 << n) - 1
        }
    }

    /// 16 f32 -> the f64 lanes 0..8 and 8..16.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn widen(v: __m512) -> (__m512d, __m512d) {
        let lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
        let hi = _mm512_cvtps_pd(_mm512_extractf32x8_ps::<1>(v));
        (lo, hi)
    }

    /// The spec's fold of 16 f64 lanes held as lanes 0..8 and 8..16.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn fold(lo: __m512d, hi: __m512d) -> f64 {
        let mut lanes = [0f64; SUM_LANES];
        _mm512_storeu_pd(lanes.as_mut_ptr(), lo);
        _mm512_storeu_pd(lanes.as_mut_ptr().add(8), hi);
        scalar::fold_lanes(lanes)
    }

    /// round_away(v) as i32 for |v| <= 2^22, and 0 for NaN (as `v.round() as i32`).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn round_away_i32(v: __m512) -> __m512i {
        let biased = _mm512_add_ps(v, copysign_bias(v));
        _mm512_maskz_cvttps_epi32(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v), biased)
    }

    /// copysign(ROUND_BIAS, v).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn copysign_bias(v: __m512) -> __m512 {
        let sign = _mm512_set1_epi32(i32::MIN);
        let bias = _mm512_set1_epi32(ROUND_BIAS.to_bits() as i32);
        _mm512_castsi512_ps(_mm512_ternarylogic_epi32::<AND_OR>(sign, _mm512_castps_si512(v), bias))
    }

    /// `v.clamp(lo, hi)` lane-wise, NaN kept: the constant is the first operand, so a
    /// NaN in `v` is what max/min return.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn clamp(v: __m512, lo: __m512, hi: __m512) -> __m512 {
        _mm512_min_ps(hi, _mm512_max_ps(lo, v))
    }

    /// round_away_i8(v * id), the Q8 rule, as i32 lanes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn q8_codes(v: __m512, id: __m512) -> __m512i {
        let s = _mm512_mul_ps(v, id);
        round_away_i32(clamp(s, _mm512_set1_ps(-127.0), _mm512_set1_ps(127.0)))
    }

    /// f16 bits -> f32, exact (F16C).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn f16_scalar(bits: [u8; 2]) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(u16::from_le_bytes(bits) as i32)))
    }

    /// f32 -> f16 bits, round to nearest even (F16C).
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn f16_bits(x: f32) -> [u8; 2] {
        let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(x));
        (_mm_cvtsi128_si32(h) as u16).to_le_bytes()
    }

    /// Max over lanes of non-negative, non-NaN values.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn hmax(v: __m512) -> f32 {
        let m = _mm256_max_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps::<1>(v));
        let m = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps::<1>(m));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        let m = _mm_max_ss(m, _mm_movehdup_ps(m));
        _mm_cvtss_f32(m)
    }

    /// Lane k (of four 128-bit lanes) of the result holds the sums of lane k of a, b, c, d.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn transpose_add4(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> __m512i {
        let ab = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
        let cd = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
        _mm512_add_epi32(_mm512_unpacklo_epi64(ab, cd), _mm512_unpackhi_epi64(ab, cd))
    }

    /// Adds pairs of 128-bit lanes: [a0+a1, a2+a3, b0+b1, b2+b3].
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn add_lane_pairs(a: __m512i, b: __m512i) -> __m512i {
        let even = _mm512_shuffle_i32x4::<0b10_00_10_00>(a, b);
        let odd = _mm512_shuffle_i32x4::<0b11_01_11_01>(a, b);
        _mm512_add_epi32(even, odd)
    }

    /// The four horizontal sums [sum a, sum b, sum c, sum d].
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn hsum4(a: __m512i, b: __m512i, c: __m512i, d: __m512i) -> __m128i {
        let t = transpose_add4(a, b, c, d);
        let t = _mm256_add_epi32(_mm512_castsi512_si256(t), _mm512_extracti64x4_epi64::<1>(t));
        _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t))
    }

    /// The 16 horizontal sums of 16 vectors, in order.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn hsum16(v: &[__m512i; 16]) -> __m512i {
        let u0 = transpose_add4(v[0], v[1], v[2], v[3]);
        let u1 = transpose_add4(v[4], v[5], v[6], v[7]);
        let u2 = transpose_add4(v[8], v[9], v[10], v[11]);
        let u3 = transpose_add4(v[12], v[13], v[14], v[15]);
        add_lane_pairs(add_lane_pairs(u0, u1), add_lane_pairs(u2, u3))
    }

    /// Broadcast forms of a [`CodeRule`]: with `THRESHOLD` false, q = 1 where
    /// v * mul >= hi and -1 where v * mul <= lo; with it true, q = 1 where v > hi and -1
    /// where v < lo.
    #[derive(Clone, Copy)]
    struct Rule {
        mul: __m512,
        hi: __m512,
        lo: __m512,
    }

    impl Rule {
        /// The (+1, -1) lane masks of the codes of `v`.
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
        unsafe fn masks<const THRESHOLD: bool>(self, v: __m512) -> (__mmask16, __mmask16) {
            if THRESHOLD {
                (_mm512_cmp_ps_mask::<_CMP_GT_OQ>(v, self.hi), _mm512_cmp_ps_mask::<_CMP_LT_OQ>(v, self.lo))
            } else {
                let s = _mm512_mul_ps(v, self.mul);
                (_mm512_cmp_ps_mask::<_CMP_GE_OQ>(s, self.hi), _mm512_cmp_ps_mask::<_CMP_LE_OQ>(s, self.lo))
            }
        }

        /// `acc + c * w` lane-wise, where c = q + 1 is the stored code of `v` and
        /// `acc` already holds `w` (the c = 1 part).
        #[inline]
        #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
        unsafe fn add_code<const THRESHOLD: bool>(self, acc: __m512i, v: __m512, w: __m512i) -> __m512i {
            let (plus, minus) = self.masks::<THRESHOLD>(v);
            let acc = _mm512_mask_add_epi32(acc, plus, acc, w);
            _mm512_mask_sub_epi32(acc, minus, acc, w)
        }
    }

    /// Calls `$f::<THRESHOLD>(Rule, args...)` for the variant of `$rule`.
    macro_rules! with_rule {
        ($rule:expr, $f:ident($($arg:expr),*)) => {
            match $rule {
                CodeRule::Scaled { inv } => $f::<false>(
                    Rule { mul: _mm512_set1_ps(inv), hi: _mm512_set1_ps(0.5), lo: _mm512_set1_ps(-0.5) },
                    $($arg),*
                ),
                CodeRule::Threshold { threshold } => $f::<true>(
                    Rule { mul: _mm512_set1_ps(1.0), hi: _mm512_set1_ps(threshold), lo: _mm512_set1_ps(-threshold) },
                    $($arg),*
                ),
            }
        };
    }

    /// Values of `x` before its first 64-byte boundary (at most `x.len()`). Streaming
    /// from memory, zmm loads that straddle cache lines cost about a quarter of the
    /// bandwidth, so the reductions load from aligned addresses after this head.
    #[inline]
    fn head_len(x: &[f32]) -> usize {
        ((64 - x.as_ptr() as usize % 64) % 64 / 4).min(x.len())
    }

    /// Visits `x` as a masked head up to its first 64-byte boundary, aligned full
    /// vectors, and a masked tail: `f(v, valid, start)` gets the values `start..` in
    /// the low lanes of `v` (+0.0 in the others) and the mask of lanes that hold one.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn for_each_aligned(x: &[f32], mut f: impl FnMut(__m512, __mmask16, usize)) {
        let (p, n) = (x.as_ptr(), x.len());
        let h = head_len(x);
        if h > 0 {
            f(_mm512_maskz_loadu_ps(mask16(h), p), mask16(h), 0);
        }
        let mut i = h;
        while i + 16 <= n {
            f(_mm512_loadu_ps(p.add(i)), u16::MAX, i);
            i += 16;
        }
        if i < n {
            f(_mm512_maskz_loadu_ps(mask16(n - i), p.add(i)), mask16(n - i), i);
        }
    }

    /// As [`for_each_aligned`] for the sums: every vector `f(a, b, valid)` gets is in the
    /// spec's lane order (lane L holds values i with i % 16 == L, each lane in order of
    /// i), with `b` read at the same indices as `a` (`b.len() >= a.len()`). After the
    /// head of h values, an aligned load holds values whose lane is shifted by h, which
    /// one permute undoes.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn for_each_lanes(a: &[f32], b: &[f32], mut f: impl FnMut(__m512, __m512, __mmask16)) {
        debug_assert!(b.len() >= a.len());
        let (pa, pb, n) = (a.as_ptr(), b.as_ptr(), a.len());
        let h = head_len(a);
        if h > 0 {
            let k = mask16(h);
            f(_mm512_maskz_loadu_ps(k, pa), _mm512_maskz_loadu_ps(k, pb), k);
        }
        // Lane L takes register lane (L - h) mod 16.
        let iota = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
        let rot = _mm512_and_si512(_mm512_add_epi32(iota, _mm512_set1_epi32(16 - h as i32)), _mm512_set1_epi32(15));
        let mut i = h;
        while i + 16 <= n {
            let va = _mm512_permutexvar_ps(rot, _mm512_loadu_ps(pa.add(i)));
            let vb = _mm512_permutexvar_ps(rot, _mm512_loadu_ps(pb.add(i)));
            f(va, vb, u16::MAX);
            i += 16;
        }
        if i < n {
            let k = mask16(n - i);
            let va = _mm512_permutexvar_ps(rot, _mm512_maskz_loadu_ps(k, pa.add(i)));
            let vb = _mm512_permutexvar_ps(rot, _mm512_maskz_loadu_ps(k, pb.add(i)));
            let k = k as u32;
            f(va, vb, ((k << h | k >> (16 - h)) & 0xffff) as __mmask16);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn first_non_finite(x: &[f32]) -> Option<usize> {
        let (p, n) = (x.as_ptr(), x.len());
        let check = |v: __m512, valid: __mmask16, start: usize| {
            let k = _mm512_mask_fpclass_ps_mask::<NON_FINITE>(valid, v);
            (k != 0).then(|| start + k.trailing_zeros() as usize)
        };
        let h = head_len(x);
        if h > 0 {
            if let Some(i) = check(_mm512_maskz_loadu_ps(mask16(h), p), mask16(h), 0) {
                return Some(i);
            }
        }
        let mut i = h;
        while i + 64 <= n {
            let k0 = _mm512_fpclass_ps_mask::<NON_FINITE>(_mm512_loadu_ps(p.add(i))) as u64;
            let k1 = _mm512_fpclass_ps_mask::<NON_FINITE>(_mm512_loadu_ps(p.add(i + 16))) as u64;
            let k2 = _mm512_fpclass_ps_mask::<NON_FINITE>(_mm512_loadu_ps(p.add(i + 32))) as u64;
            let k3 = _mm512_fpclass_ps_mask::<NON_FINITE>(_mm512_loadu_ps(p.add(i + 48))) as u64;
            let k = k0 | k1 << 16 | k2 << 32 | k3 << 48;
            if k != 0 {
                return Some(i + k.trailing_zeros() as usize);
            }
            i += 64;
        }
        while i < n {
            let m = mask16((n - i).min(16));
            if let Some(i) = check(_mm512_maskz_loadu_ps(m, p.add(i)), m, i) {
                return Some(i);
            }
            i += 16;
        }
        None
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn abs_sum(x: &[f32]) -> f64 {
        let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        for_each_lanes(x, x, |v, _, _| {
            let (a, b) = widen(_mm512_abs_ps(v));
            lo = _mm512_add_pd(lo, a);
            hi = _mm512_add_pd(hi, b);
        });
        fold(lo, hi)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn abs_max(x: &[f32]) -> f32 {
        let (p, n) = (x.as_ptr(), x.len());
        // The running max is the second operand, so a NaN |x| leaves it unchanged; the
        // +0.0 padding of the masked head and tail cannot raise it.
        let h = head_len(x);
        let mut m = [_mm512_setzero_ps(); 4];
        if h > 0 {
            m[0] = _mm512_max_ps(_mm512_abs_ps(_mm512_maskz_loadu_ps(mask16(h), p)), m[0]);
        }
        let mut i = h;
        while i + 64 <= n {
            for (j, m) in m.iter_mut().enumerate() {
                *m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(p.add(i + 16 * j))), *m);
            }
            i += 64;
        }
        while i < n {
            let v = _mm512_maskz_loadu_ps(mask16((n - i).min(16)), p.add(i));
            m[0] = _mm512_max_ps(_mm512_abs_ps(v), m[0]);
            i += 16;
        }
        hmax(_mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3])))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn min_max(x: &[f32]) -> (f32, f32) {
        let mut lo = _mm512_set1_ps(f32::INFINITY);
        let mut hi = _mm512_set1_ps(f32::NEG_INFINITY);
        // The running values are the second operands: a NaN leaves them unchanged.
        for_each_aligned(x, |v, k, _| {
            lo = _mm512_mask_min_ps(lo, k, v, lo);
            hi = _mm512_mask_max_ps(hi, k, v, hi);
        });
        let mut l = [0f32; 16];
        let mut h = [0f32; 16];
        _mm512_storeu_ps(l.as_mut_ptr(), lo);
        _mm512_storeu_ps(h.as_mut_ptr(), hi);
        (l.iter().fold(f32::INFINITY, |a, &b| a.min(b)), h.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)))
    }

    /// Each value goes to the place given by the number of greater values, sixteen
    /// compares to a mask (see the SIMD128 form).
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn sort_few_decreasing(values: &mut [u32]) {
        let width = values.len().next_multiple_of(16);
        scalar::sort_by_places(values, |padded, v| {
            let s = _mm512_set1_epi32(v as i32);
            padded[..width]
                .chunks_exact(16)
                .map(|c| _mm512_cmpgt_epi32_mask(_mm512_loadu_si512(c.as_ptr().cast()), s).count_ones() as usize)
                .sum()
        });
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn abs_sum_above(x: &[f32], t: f32) -> (f64, u64) {
        let tv = _mm512_set1_ps(t);
        let (mut lo, mut hi) = (_mm512_setzero_pd(), _mm512_setzero_pd());
        // Counted in lanes (a masked subtract of -1), not by a popcount of the mask,
        // which the enabled features leave to a sequence of scalar instructions.
        let mut counts = _mm512_setzero_si512();
        for_each_lanes(x, x, |v, _, valid| {
            let a = _mm512_abs_ps(v);
            let k = _mm512_mask_cmp_ps_mask::<_CMP_GT_OQ>(valid, a, tv);
            let (a0, a1) = widen(a);
            lo = _mm512_mask_add_pd(lo, k as __mmask8, lo, a0);
            hi = _mm512_mask_add_pd(hi, (k >> 8) as __mmask8, hi, a1);
            counts = _mm512_mask_sub_epi32(counts, k, counts, _mm512_set1_epi32(-1));
        });
        // Each lane counts at most len / 16 + 1 values.
        let mut lanes = [0u32; 16];
        _mm512_storeu_si512(lanes.as_mut_ptr().cast(), counts);
        (fold(lo, hi), lanes.iter().map(|&c| u64::from(c)).sum())
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn abs_tallies_above(
        x: &[f32],
        scale: f32,
        thresholds: &[f32; TALLIES],
    ) -> [(u64, u64); TALLIES] {
        let (scale_v, count_v) = (_mm512_set1_ps(scale), _mm512_set1_epi32(TALLY_PACK as i32));
        let rounding = _mm512_set1_ps(TALLY_ROUNDING);
        let mut ts = [_mm512_setzero_ps(); TALLIES];
        for (v, &t) in ts.iter_mut().zip(thresholds) {
            *v = _mm512_set1_ps(t);
        }
        let mut tallies = [(0u64, 0u64); TALLIES];
        let whole = x.len() / 16 * 16;
        // Each lane takes one value of a 16-value chunk, so a run of 64 chunks fills it.
        for run in x[..whole].chunks(16 * TALLY_LANE_VALUES) {
            let mut lanes = [_mm512_setzero_si512(); TALLIES];
            for c in run.chunks_exact(16) {
                let a = _mm512_abs_ps(_mm512_loadu_ps(c.as_ptr()));
                let rounded = _mm512_add_ps(_mm512_mul_ps(a, scale_v), rounding);
                let packed = _mm512_add_epi32(_mm512_castps_si512(rounded), count_v);
                for (lane, t) in lanes.iter_mut().zip(&ts) {
                    let above = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, *t);
                    *lane = _mm512_mask_add_epi32(*lane, above, *lane, packed);
                }
            }
            // Below 2^26 and 2^10: the lanes' sums fit 32 bits.
            let field = _mm512_set1_epi32((TALLY_COUNT - 1) as i32);
            for (tally, lane) in tallies.iter_mut().zip(lanes) {
                tally.0 += u64::from(_mm512_reduce_add_epi32(_mm512_and_si512(lane, field)) as u32);
                tally.1 += u64::from(_mm512_reduce_add_epi32(_mm512_srli_epi32::<22>(lane)) as u32);
            }
        }
        let tail = scalar::abs_tallies_above(&x[whole..], scale, thresholds);
        for (tally, (sum, count)) in tallies.iter_mut().zip(tail) {
            *tally = (tally.0 + sum, tally.1 + count);
        }
        tallies
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn abs_bits_within(x: &[f32], low: f32, high: f32, out: &mut [u32]) -> usize {
        let (lo, hi) = (_mm512_set1_ps(low), _mm512_set1_ps(high));
        let (p, n) = (x.as_ptr(), x.len());
        let (mut i, mut found) = (0, 0);
        while i + 16 <= n {
            let a = _mm512_abs_ps(_mm512_loadu_ps(p.add(i)));
            // Two compares and an and: the masked-compare form made LLVM fail ("Cannot emit
            // physreg copy instruction") in LTO builds.
            let k = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(a, lo) & _mm512_cmp_ps_mask::<_CMP_LE_OQ>(a, hi);
            let bits = _mm512_maskz_compress_epi32(k, _mm512_castps_si512(a));
            if found + 16 <= out.len() {
                // The lanes past the values found are overwritten by the next ones, or
                // lie past them.
                _mm512_storeu_si512(out.as_mut_ptr().add(found).cast(), bits);
            } else {
                let mut lanes = [0u32; 16];
                _mm512_storeu_si512(lanes.as_mut_ptr().cast(), bits);
                for (o, &b) in out.iter_mut().skip(found).zip(&lanes[..k.count_ones() as usize]) {
                    *o = b;
                }
            }
            found += k.count_ones() as usize;
            i += 16;
        }
        let rest = out.get_mut(found..).unwrap_or_default();
        found + scalar::abs_bits_within(&x[i..], low, high, rest)
    }

    rule_kernel!("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt", fn ternary_codes(x: &[f32], rule: CodeRule, out: &mut [i8]) by rule => codes_with(x, out));

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn codes_with<const T: bool>(r: Rule, x: &[f32], out: &mut [i8]) {
        let n = x.len().min(out.len());
        let (p, o) = (x.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        while i + 64 <= n {
            let (mut plus, mut minus) = (0u64, 0u64);
            for j in 0..4 {
                let (a, b) = r.masks::<T>(_mm512_loadu_ps(p.add(i + 16 * j)));
                plus |= (a as u64) << (16 * j);
                minus |= (b as u64) << (16 * j);
            }
            // q = plus - minus: both hold for a negative threshold.
            let one = _mm512_set1_epi8(1);
            let q = _mm512_maskz_mov_epi8(plus, one);
            let q = _mm512_mask_sub_epi8(q, minus, q, one);
            _mm512_storeu_si512(o.add(i).cast(), q);
            i += 64;
        }
        while i < n {
            let k = mask16((n - i).min(16));
            let (plus, minus) = r.masks::<T>(_mm512_maskz_loadu_ps(k, p.add(i)));
            let one = _mm512_set1_epi32(1);
            let q = _mm512_maskz_mov_epi32(plus, one);
            let q = _mm512_mask_sub_epi32(q, minus, q, one);
            _mm512_mask_cvtepi32_storeu_epi8(o.add(i).cast(), k, q);
            i += 16;
        }
    }

    /// How far ahead (in f32 values) the block quantizers prefetch.
    const PREFETCH_DISTANCE: usize = 8 * QK_K;

    /// Prefetches the 1 KiB of one block of 256 f32. Prefetches never fault, and the
    /// pointer is only formed with `wrapping_add`, so it may point past the slice.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn prefetch_block(p: *const f32) {
        for line in 0..16 {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(16 * line).cast());
        }
    }

    rule_kernel!("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt", fn pack_tq2_0(x: &[f32], rule: CodeRule, d: [u8; 2], out: &mut [BlockTq2_0]) by rule => pack_tq2_0_with(x, d, out));

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn pack_tq2_0_with<const T: bool>(r: Rule, x: &[f32], d: [u8; 2], out: &mut [BlockTq2_0]) {
        let blocks = out.len().min(x.len() / QK_K);
        for (b, block) in out[..blocks].iter_mut().enumerate() {
            let xb = x.as_ptr().add(b * QK_K);
            prefetch_block(xb.wrapping_add(PREFETCH_DISTANCE));
            let qs = block.qs.as_mut_ptr();
            // Byte h*32 + m holds the codes of values h*128 + l*32 + m at bits 2l.
            for h in 0..2 {
                for m in [0, 16] {
                    let mut acc = _mm512_set1_epi32(0x55);
                    for l in 0..4 {
                        let v = _mm512_loadu_ps(xb.add(h * 128 + l * 32 + m));
                        acc = r.add_code::<T>(acc, v, _mm512_set1_epi32(1 << (2 * l)));
                    }
                    _mm_storeu_si128(qs.add(h * 32 + m).cast(), _mm512_cvtepi32_epi8(acc));
                }
            }
            block.d = d;
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn unpack_tq2_0(blocks: &[BlockTq2_0], out: &mut [i8]) {
        let count = blocks.len().min(out.len() / QK_K);
        let (three, one) = (_mm512_set1_epi8(3), _mm512_set1_epi8(1));
        for (b, block) in blocks[..count].iter().enumerate() {
            let q = _mm512_loadu_si512(block.qs.as_ptr().cast());
            let o = out.as_mut_ptr().add(b * QK_K);
            // Lane l of both halves: bytes 0..32 are values l*32.., bytes 32..64 are 128 + l*32..
            for l in 0..4 {
                let c = _mm512_and_si512(_mm512_srl_epi16(q, _mm_cvtsi32_si128(2 * l as i32)), three);
                let v = _mm512_sub_epi8(c, one);
                _mm256_storeu_si256(o.add(l * 32).cast(), _mm512_castsi512_si256(v));
                _mm256_storeu_si256(o.add(128 + l * 32).cast(), _mm512_extracti64x4_epi64::<1>(v));
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn dequantize_tq2_0(blocks: &[BlockTq2_0], out: &mut [f32]) {
        let count = blocks.len().min(out.len() / QK_K);
        for (b, block) in blocks[..count].iter().enumerate() {
            let d = f16_scalar(block.d);
            // The four products (c - 1) * d of the spec; permutexvar reads the low 4 bits
            // of each index, so the table repeats them and no mask is needed.
            let [v0, v1, v2, v3] = [-1.0f32, 0.0, 1.0, 2.0].map(|q| q * d);
            let table = _mm512_setr_ps(v0, v1, v2, v3, v0, v1, v2, v3, v0, v1, v2, v3, v0, v1, v2, v3);
            let o = out.as_mut_ptr().add(b * QK_K);
            for h in 0..2 {
                for m in [0, 16] {
                    let bytes = _mm512_cvtepu8_epi32(_mm_loadu_si128(block.qs.as_ptr().add(h * 32 + m).cast()));
                    for l in 0..4 {
                        let idx = _mm512_srl_epi32(bytes, _mm_cvtsi32_si128(2 * l as i32));
                        _mm512_storeu_ps(o.add(h * 128 + l * 32 + m), _mm512_permutexvar_ps(idx, table));
                    }
                }
            }
        }
    }

    /// (b * 256 + 242) / 243 lane-wise for 0 <= b < 243.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn tq1_scale(b: __m512i) -> __m512i {
        let v = _mm512_add_epi32(_mm512_slli_epi32::<8>(b), _mm512_set1_epi32(242));
        _mm512_srli_epi32::<TQ1_SHIFT>(_mm512_mullo_epi32(v, _mm512_set1_epi32(TQ1_MUL)))
    }

    rule_kernel!("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt", fn pack_tq1_0(x: &[f32], rule: CodeRule, d: [u8; 2], out: &mut [BlockTq1_0]) by rule => pack_tq1_0_with(x, d, out));

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn pack_tq1_0_with<const T: bool>(r: Rule, x: &[f32], d: [u8; 2], out: &mut [BlockTq1_0]) {
        const POW3: [i32; 5] = [81, 27, 9, 3, 1];
        let blocks = out.len().min(x.len() / QK_K);
        for (b, block) in out[..blocks].iter_mut().enumerate() {
            let xb = x.as_ptr().add(b * QK_K);
            prefetch_block(xb.wrapping_add(PREFETCH_DISTANCE));
            let qs = block.qs.as_mut_ptr();
            // Sum of c * 3^(4-n) starts at sum of 3^(4-n) = 121 (every c = 1).
            for m in [0, 16] {
                let mut acc = _mm512_set1_epi32(121);
                for (n, &w) in POW3.iter().enumerate() {
                    acc = r.add_code::<T>(acc, _mm512_loadu_ps(xb.add(n * 32 + m)), _mm512_set1_epi32(w));
                }
                _mm_storeu_si128(qs.add(m).cast(), _mm512_cvtepi32_epi8(tq1_scale(acc)));
            }
            let mut acc = _mm512_set1_epi32(121);
            for (n, &w) in POW3.iter().enumerate() {
                acc = r.add_code::<T>(acc, _mm512_loadu_ps(xb.add(160 + n * 16)), _mm512_set1_epi32(w));
            }
            _mm_storeu_si128(qs.add(32).cast(), _mm512_cvtepi32_epi8(tq1_scale(acc)));
            // qh: value 240 + n*4 + m is lane n*4 + m, with weight 3^(4-n); the four
            // 128-bit lanes are then summed.
            let w = _mm512_setr_epi32(81, 81, 81, 81, 27, 27, 27, 27, 9, 9, 9, 9, 3, 3, 3, 3);
            let c = r.add_code::<T>(w, _mm512_loadu_ps(xb.add(240)), w);
            let c = _mm512_add_epi32(c, _mm512_shuffle_i32x4::<0b01_00_11_10>(c, c));
            let c = _mm512_add_epi32(c, _mm512_shuffle_i32x4::<0b10_11_00_01>(c, c));
            let bytes = _mm512_cvtepi32_epi8(tq1_scale(c));
            block.qh = (_mm_cvtsi128_si32(bytes) as u32).to_le_bytes();
            block.d = d;
        }
    }

    /// Digits of TQ1_0 bytes held in u16 lanes: ((b * pow mod 256) * 3 >> 8) - 1.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn tq1_digits(b: __m512i, pow: __m512i) -> __m512i {
        let t = _mm512_and_si512(_mm512_mullo_epi16(b, pow), _mm512_set1_epi16(0xff));
        let t = _mm512_add_epi16(t, _mm512_add_epi16(t, t));
        _mm512_sub_epi16(_mm512_srli_epi16::<8>(t), _mm512_set1_epi16(1))
    }

    /// Codes of one TQ1_0 block into `o[..256]`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn unpack_tq1_0_block(block: &BlockTq1_0, o: *mut i8) {
        const POW: [i16; 5] = [1, 3, 9, 27, 81];
        let qs = block.qs.as_ptr();
        let a = _mm512_cvtepu8_epi16(_mm256_loadu_si256(qs.cast()));
        let b = _mm256_cvtepu8_epi16(_mm_loadu_si128(qs.add(32).cast()));
        for (n, &pow) in POW.iter().enumerate() {
            let da = tq1_digits(a, _mm512_set1_epi16(pow));
            _mm256_storeu_si256(o.add(n * 32).cast(), _mm512_cvtepi16_epi8(da));
            let db = tq1_digits_256(b, _mm256_set1_epi16(pow));
            _mm_storeu_si128(o.add(160 + n * 16).cast(), _mm256_cvtepi16_epi8(db));
        }
        // qh: lane n*4 + m is digit n of qh[m].
        let h = _mm256_cvtepu8_epi16(_mm_set1_epi32(i32::from_le_bytes(block.qh)));
        let pow = _mm256_setr_epi16(1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27);
        _mm_storeu_si128(o.add(240).cast(), _mm256_cvtepi16_epi8(tq1_digits_256(h, pow)));
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn unpack_tq1_0(blocks: &[BlockTq1_0], out: &mut [i8]) {
        let count = blocks.len().min(out.len() / QK_K);
        for (b, block) in blocks[..count].iter().enumerate() {
            unpack_tq1_0_block(block, out.as_mut_ptr().add(b * QK_K));
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn dequantize_tq1_0(blocks: &[BlockTq1_0], out: &mut [f32]) {
        let count = blocks.len().min(out.len() / QK_K);
        let mut codes = [0i8; QK_K];
        for (b, block) in blocks[..count].iter().enumerate() {
            unpack_tq1_0_block(block, codes.as_mut_ptr());
            let d = _mm512_set1_ps(f16_scalar(block.d));
            let o = out.as_mut_ptr().add(b * QK_K);
            for j in (0..QK_K).step_by(16) {
                let q = _mm512_cvtepi8_epi32(_mm_loadu_si128(codes.as_ptr().add(j).cast()));
                _mm512_storeu_ps(o.add(j), _mm512_mul_ps(_mm512_cvtepi32_ps(q), d));
            }
        }
    }

    rule_kernel!("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt", fn pack_i2_s(x: &[f32], rule: CodeRule, out: &mut [u8]) by rule => pack_i2_s_with(x, out));

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn pack_i2_s_with<const T: bool>(r: Rule, x: &[f32], out: &mut [u8]) {
        let blocks = (out.len() / 32).min(x.len() / 128);
        for b in 0..blocks {
            let xb = x.as_ptr().add(b * 128);
            prefetch_block(xb.wrapping_add(PREFETCH_DISTANCE));
            // Byte p holds the codes of values g*32 + p at bits 6 - 2g.
            for m in [0, 16] {
                let mut acc = _mm512_set1_epi32(0x55);
                for g in 0..4 {
                    let v = _mm512_loadu_ps(xb.add(g * 32 + m));
                    acc = r.add_code::<T>(acc, v, _mm512_set1_epi32(1 << (6 - 2 * g)));
                }
                _mm_storeu_si128(out.as_mut_ptr().add(b * 32 + m).cast(), _mm512_cvtepi32_epi8(acc));
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn unpack_i2_s(bytes: &[u8], out: &mut [i8]) {
        let count = (bytes.len() / 32).min(out.len() / 128);
        let (three, one) = (_mm256_set1_epi8(3), _mm256_set1_epi8(1));
        for b in 0..count {
            let q = _mm256_loadu_si256(bytes.as_ptr().add(b * 32).cast());
            let o = out.as_mut_ptr().add(b * 128);
            for g in 0..4 {
                let c = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(6 - 2 * g as i32)), three);
                _mm256_storeu_si256(o.add(g * 32).cast(), _mm256_sub_epi8(c, one));
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn pack_bitnet_hf_row(sources: &[&[f32]], rule: CodeRule, out: &mut [u8]) {
        if sources.len() > 4 || sources.iter().any(|s| s.len() < out.len()) {
            // Outside the layout's contract; the spec decides (and panics where it does).
            return scalar::pack_bitnet_hf_row(sources, rule, out);
        }
        with_rule!(rule, pack_bitnet_hf_row_with(sources, out))
    }

    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn pack_bitnet_hf_row_with<const T: bool>(r: Rule, sources: &[&[f32]], out: &mut [u8]) {
        let base: i32 = (0..sources.len()).map(|i| 1 << (2 * i)).sum();
        let n = out.len();
        let mut k = 0;
        while k < n {
            let m = mask16((n - k).min(16));
            let mut acc = _mm512_set1_epi32(base);
            for (i, src) in sources.iter().enumerate() {
                let v = _mm512_maskz_loadu_ps(m, src.as_ptr().add(k));
                acc = r.add_code::<T>(acc, v, _mm512_set1_epi32(1 << (2 * i)));
            }
            _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(k).cast(), m, acc);
            k += 16;
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn quantize_i8_symmetric(x: &[f32], id: f32, clip: f32, out: &mut [i8]) {
        let n = x.len().min(out.len());
        let (lo, hi) = (_mm512_set1_ps(-clip), _mm512_set1_ps(clip));
        let id = _mm512_set1_ps(id);
        let mut i = 0;
        while i < n {
            let k = mask16((n - i).min(16));
            let v = clamp(_mm512_maskz_loadu_ps(k, x.as_ptr().add(i)), lo, hi);
            let q = q8_codes(v, id);
            if k == u16::MAX {
                _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), _mm512_cvtepi32_epi8(q));
            } else {
                _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(i).cast(), k, q);
            }
            i += 16;
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn quantize_i8_asymmetric(
        x: &[f32],
        scale: f32,
        zero_point: i32,
        lo: f32,
        hi: f32,
        out: &mut [i8],
    ) {
        let n = x.len().min(out.len());
        let (lo, hi) = (_mm512_set1_ps(lo), _mm512_set1_ps(hi));
        let scale = _mm512_set1_ps(scale);
        let zp = _mm512_set1_ps(zero_point as f32);
        let (min_s, max_s) = (_mm512_set1_ps(-512.0), _mm512_set1_ps(512.0));
        let (min_q, max_q) = (_mm512_set1_ps(-128.0), _mm512_set1_ps(127.0));
        let mut i = 0;
        while i < n {
            let k = mask16((n - i).min(16));
            let v = clamp(_mm512_maskz_loadu_ps(k, x.as_ptr().add(i)), lo, hi);
            let s = clamp(_mm512_div_ps(v, scale), min_s, max_s);
            // Same f32 steps as the spec: round, add the zero point, clamp, convert.
            let r = _mm512_roundscale_ps::<TRUNC>(_mm512_add_ps(s, copysign_bias(s)));
            let r = clamp(_mm512_add_ps(r, zp), min_q, max_q);
            let q = _mm512_maskz_cvttps_epi32(_mm512_cmp_ps_mask::<_CMP_ORD_Q>(r, r), r);
            _mm512_mask_cvtepi32_storeu_epi8(out.as_mut_ptr().add(i).cast(), k, q);
            i += 16;
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn dequantize_i8(q: &[i8], scale: f32, zero_point: i32, out: &mut [f32]) {
        let n = q.len().min(out.len());
        let scale = _mm512_set1_ps(scale);
        let zp = _mm512_set1_epi32(zero_point);
        let mut i = 0;
        while i < n {
            let k = mask16((n - i).min(16));
            let b = _mm_maskz_loadu_epi8(k, q.as_ptr().add(i));
            let v = _mm512_sub_epi32(_mm512_cvtepi8_epi32(b), zp);
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), k, _mm512_mul_ps(_mm512_cvtepi32_ps(v), scale));
            i += 16;
        }
    }

    /// The 8 maxima of 8 vectors of non-negative, non-NaN values, in lanes 0..8.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn hmax8(v: &[__m512; 8]) -> __m512 {
        // Pairs, then quads within each 128-bit lane, then across lanes, as `hsum16`.
        let t: [__m512; 4] = core::array::from_fn(|k| {
            let (a, b) = (v[2 * k], v[2 * k + 1]);
            _mm512_max_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
        });
        let u: [__m512; 2] = core::array::from_fn(|k| {
            let (a, b) = (t[2 * k], t[2 * k + 1]);
            _mm512_max_ps(_mm512_shuffle_ps::<0b01_00_01_00>(a, b), _mm512_shuffle_ps::<0b11_10_11_10>(a, b))
        });
        let pairs = |a: __m512, b: __m512| {
            _mm512_max_ps(_mm512_shuffle_f32x4::<0b10_00_10_00>(a, b), _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b))
        };
        let w = pairs(u[0], u[1]);
        pairs(w, w)
    }

    /// One Q8_0 block with the reciprocal scale `id` and scale bits `d`.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn q8_0_block(xb: *const f32, id: __m512, d: [u8; 2], block: &mut BlockQ8_0) {
        let qs = block.qs.as_mut_ptr();
        _mm_storeu_si128(qs.cast(), _mm512_cvtepi32_epi8(q8_codes(_mm512_loadu_ps(xb), id)));
        _mm_storeu_si128(qs.add(16).cast(), _mm512_cvtepi32_epi8(q8_codes(_mm512_loadu_ps(xb.add(16)), id)));
        block.d = d;
    }

    /// NaN-ignoring max |v| of the 32 values at `xb`, as the spec's fold of f32::max.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn q8_0_absmax(xb: *const f32) -> __m512 {
        let m = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb)), _mm512_setzero_ps());
        _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb.add(16))), m)
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
        let blocks = out.len().min(x.len() / QK8_0);
        let (out, p) = (&mut out[..blocks], x.as_ptr());
        // Eight blocks at a time: their maxima in one vector, then d = amax / 127,
        // id = 1 / d (0 where d = 0) and the f16 bits of d lane-wise, the spec's steps.
        // (Sixteen at a time was slower from DRAM on 64-byte aligned input.)
        let mut groups = out.chunks_exact_mut(8);
        for (g, group) in (&mut groups).enumerate() {
            let xg = p.add(g * 8 * QK8_0);
            prefetch_block(xg.wrapping_add(PREFETCH_DISTANCE));
            let amax = hmax8(&core::array::from_fn(|j| q8_0_absmax(xg.add(j * QK8_0))));
            let d = _mm512_div_ps(amax, _mm512_set1_ps(127.0));
            let nonzero = _mm512_cmp_ps_mask::<_CMP_NEQ_UQ>(d, _mm512_setzero_ps());
            let id = _mm512_maskz_div_ps(nonzero, _mm512_set1_ps(1.0), d);
            let (mut ids, mut bits) = ([0f32; 16], [0u16; 16]);
            _mm512_storeu_ps(ids.as_mut_ptr(), id);
            _mm256_storeu_si256(bits.as_mut_ptr().cast(), _mm512_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d));
            for (j, block) in group.iter_mut().enumerate() {
                q8_0_block(xg.add(j * QK8_0), _mm512_set1_ps(ids[j]), bits[j].to_le_bytes(), block);
            }
        }
        let done = blocks / 8 * 8;
        for (b, block) in groups.into_remainder().iter_mut().enumerate() {
            let xb = p.add((done + b) * QK8_0);
            let d = hmax(q8_0_absmax(xb)) / 127.0;
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            q8_0_block(xb, _mm512_set1_ps(id), f16_bits(d), block);
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
        let count = blocks.len().min(out.len() / QK8_0);
        for (b, block) in blocks[..count].iter().enumerate() {
            let d = _mm512_set1_ps(f16_scalar(block.d));
            let o = out.as_mut_ptr().add(b * QK8_0);
            for j in [0, 16] {
                let q = _mm512_cvtepi8_epi32(_mm_loadu_si128(block.qs.as_ptr().add(j).cast()));
                _mm512_storeu_ps(o.add(j), _mm512_mul_ps(_mm512_cvtepi32_ps(q), d));
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn quantize_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
        let blocks = out.len().min(x.len() / QK_K);
        for (b, block) in out[..blocks].iter_mut().enumerate() {
            let xb = x.as_ptr().add(b * QK_K);
            prefetch_block(xb.wrapping_add(PREFETCH_DISTANCE));
            let mut m = [_mm512_setzero_ps(); 4];
            for j in 0..16 {
                m[j % 4] = _mm512_max_ps(_mm512_abs_ps(_mm512_loadu_ps(xb.add(16 * j))), m[j % 4]);
            }
            let d = hmax(_mm512_max_ps(_mm512_max_ps(m[0], m[1]), _mm512_max_ps(m[2], m[3]))) / 127.0;
            let id = _mm512_set1_ps(if d == 0.0 { 0.0 } else { 1.0 / d });
            let mut q = [_mm512_setzero_si512(); 16];
            for (j, q) in q.iter_mut().enumerate() {
                *q = q8_codes(_mm512_loadu_ps(xb.add(16 * j)), id);
                _mm_storeu_si128(block.qs.as_mut_ptr().add(16 * j).cast(), _mm512_cvtepi32_epi8(*q));
            }
            _mm256_storeu_si256(block.bsums.as_mut_ptr().cast(), _mm512_cvtepi32_epi16(hsum16(&q)));
            block.d = d;
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn dequantize_q8_k(blocks: &[BlockQ8K], out: &mut [f32]) {
        let count = blocks.len().min(out.len() / QK_K);
        for (b, block) in blocks[..count].iter().enumerate() {
            let d = _mm512_set1_ps(block.d);
            let o = out.as_mut_ptr().add(b * QK_K);
            for j in (0..QK_K).step_by(16) {
                let q = _mm512_cvtepi8_epi32(_mm_loadu_si128(block.qs.as_ptr().add(j).cast()));
                _mm512_storeu_ps(o.add(j), _mm512_mul_ps(_mm512_cvtepi32_ps(q), d));
            }
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn f16_to_f32(src: &[u16], out: &mut [f32]) {
        let n = src.len().min(out.len());
        let mut i = 0;
        while i + 16 <= n {
            let h = _mm256_loadu_si256(src.as_ptr().add(i).cast());
            _mm512_storeu_ps(out.as_mut_ptr().add(i), _mm512_cvtph_ps(h));
            i += 16;
        }
        if i < n {
            let k = mask16(n - i);
            let h = _mm256_maskz_loadu_epi16(k, src.as_ptr().add(i).cast());
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), k, _mm512_cvtph_ps(h));
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn bf16_to_f32(src: &[u16], out: &mut [f32]) {
        let n = src.len().min(out.len());
        let mut i = 0;
        while i < n {
            let k = mask16((n - i).min(16));
            let h = _mm256_maskz_loadu_epi16(k, src.as_ptr().add(i).cast());
            let v = _mm512_slli_epi32::<16>(_mm512_cvtepu16_epi32(h));
            _mm512_mask_storeu_ps(out.as_mut_ptr().add(i), k, _mm512_castsi512_ps(v));
            i += 16;
        }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn metric_sums(reference: &[f32], approx: &[f32]) -> MetricSums {
        let n = reference.len().min(approx.len());
        let z = _mm512_setzero_pd();
        // [ref_sq, err_sq, dot, approx_sq] for lanes 0..8 and 8..16.
        let mut acc = [[z; 2]; 4];
        let mut max_err = z;
        for_each_lanes(&reference[..n], approx, |r, a, _| {
            let (r, a) = (widen(r), widen(a));
            for (h, (r, a)) in [r.0, r.1].into_iter().zip([a.0, a.1]).enumerate() {
                let e = _mm512_sub_pd(r, a);
                acc[0][h] = _mm512_add_pd(acc[0][h], _mm512_mul_pd(r, r));
                acc[1][h] = _mm512_add_pd(acc[1][h], _mm512_mul_pd(e, e));
                acc[2][h] = _mm512_add_pd(acc[2][h], _mm512_mul_pd(r, a));
                acc[3][h] = _mm512_add_pd(acc[3][h], _mm512_mul_pd(a, a));
                // The running max is the second operand: a NaN error leaves it unchanged.
                max_err = _mm512_max_pd(_mm512_abs_pd(e), max_err);
            }
        });
        let mut m = [0f64; 8];
        _mm512_storeu_pd(m.as_mut_ptr(), max_err);
        MetricSums {
            ref_sq: fold(acc[0][0], acc[0][1]),
            err_sq: fold(acc[1][0], acc[1][1]),
            dot: fold(acc[2][0], acc[2][1]),
            approx_sq: fold(acc[3][0], acc[3][1]),
            max_abs_err: m.iter().fold(0f64, |a, &b| a.max(b)),
        }
    }

    /// The integer dot product of one TQ2_0 block with one Q8_K block, spread over the
    /// lanes of a zmm: sum of c * q (VNNI, codes c = q_w + 1 as unsigned bytes) minus the
    /// bsums.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn tq2_block_dot(w: &BlockTq2_0, x: &BlockQ8K) -> __m512i {
        // GF(2) affine matrices that move bits 2l, 2l+1 of every byte to bits 0, 1 (row
        // 7 - k of the matrix selects output bit k), l = 0/1 in the low/high 256 bits
        // and l = 2/3 in the second pair.
        const fn pick(l: u32) -> i64 {
            (((1u64 << (2 * l)) << 56) | ((1u64 << (2 * l + 1)) << 48)) as i64
        }
        let sel01 = _mm512_setr_epi64(pick(0), pick(0), pick(0), pick(0), pick(1), pick(1), pick(1), pick(1));
        let sel23 = _mm512_setr_epi64(pick(2), pick(2), pick(2), pick(2), pick(3), pick(3), pick(3), pick(3));
        let qs = w.qs.as_ptr();
        let h0 = _mm512_broadcast_i64x4(_mm256_loadu_si256(qs.cast()));
        let h1 = _mm512_broadcast_i64x4(_mm256_loadu_si256(qs.add(32).cast()));
        let xq = x.qs.as_ptr();
        // -sum of bsums, pairwise into the low 8 lanes.
        let bsums = _mm512_zextsi256_si512(_mm256_loadu_si256(x.bsums.as_ptr().cast()));
        let acc = _mm512_dpwssd_epi32(_mm512_setzero_si512(), bsums, _mm512_set1_epi16(-1));
        // x bytes 64k..64k+64 are values (h, l) = (k/2, 2(k%2)), (k/2, 2(k%2)+1).
        let acc =
            _mm512_dpbusd_epi32(acc, _mm512_gf2p8affine_epi64_epi8::<0>(h0, sel01), _mm512_loadu_si512(xq.cast()));
        let acc = _mm512_dpbusd_epi32(
            acc,
            _mm512_gf2p8affine_epi64_epi8::<0>(h0, sel23),
            _mm512_loadu_si512(xq.add(64).cast()),
        );
        let acc = _mm512_dpbusd_epi32(
            acc,
            _mm512_gf2p8affine_epi64_epi8::<0>(h1, sel01),
            _mm512_loadu_si512(xq.add(128).cast()),
        );
        _mm512_dpbusd_epi32(acc, _mm512_gf2p8affine_epi64_epi8::<0>(h1, sel23), _mm512_loadu_si512(xq.add(192).cast()))
    }

    /// Sum of the lanes of a zmm of i32.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn hsum(v: __m512i) -> i32 {
        _mm_cvtsi128_si32(hsum4(v, v, v, v))
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn gemv_tq2_0_q8_k(w: &[BlockTq2_0], x: &[BlockQ8K], y: &mut [f32]) {
        scalar::gemv_rows(w, x.len(), y, |row| dot_tq2_0_q8_k(row, x));
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn dot_tq2_0_q8_k(w: &[BlockTq2_0], x: &[BlockQ8K]) -> f32 {
        let n = w.len().min(x.len());
        let mut acc = 0f32;
        let mut b = 0;
        // Four blocks at a time: integer sums and scale products in vectors, then the
        // f32 accumulation in block order, as the spec.
        while b + 4 <= n {
            let (w4, x4) = (&w[b..b + 4], &x[b..b + 4]);
            let isum = hsum4(
                tq2_block_dot(&w4[0], &x4[0]),
                tq2_block_dot(&w4[1], &x4[1]),
                tq2_block_dot(&w4[2], &x4[2]),
                tq2_block_dot(&w4[3], &x4[3]),
            );
            let dw = _mm_cvtph_ps(_mm_setr_epi16(
                i16::from_le_bytes(w4[0].d),
                i16::from_le_bytes(w4[1].d),
                i16::from_le_bytes(w4[2].d),
                i16::from_le_bytes(w4[3].d),
                0,
                0,
                0,
                0,
            ));
            let dx = _mm_setr_ps(x4[0].d, x4[1].d, x4[2].d, x4[3].d);
            let p = _mm_mul_ps(_mm_mul_ps(dw, dx), _mm_cvtepi32_ps(isum));
            let mut t = [0f32; 4];
            _mm_storeu_ps(t.as_mut_ptr(), p);
            acc += t[0];
            acc += t[1];
            acc += t[2];
            acc += t[3];
            b += 4;
        }
        for (wb, xb) in w[b..n].iter().zip(&x[b..n]) {
            acc += (f16_scalar(wb.d) * xb.d) * hsum(tq2_block_dot(wb, xb)) as f32;
        }
        acc
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn dot_codes_i8(w: &[i8], x: &[i8]) -> i64 {
        // sum w*x = sum (w + 128) * x - 128 * sum x, with w + 128 = w ^ 0x80 unsigned.
        // Each dpbusd adds at most 4 * 255 * 128 per lane, so 8192 steps fit an i32.
        const STEPS: usize = 8192;
        let n = w.len().min(x.len());
        let flip = _mm512_set1_epi8(i8::MIN);
        let ones = _mm512_set1_epi8(1);
        let mut total = 0i64;
        let mut i = 0;
        while i < n {
            let end = n.min(i + 64 * STEPS);
            let (mut wx, mut sx) = (_mm512_setzero_si512(), _mm512_setzero_si512());
            while i < end {
                let k = mask64((end - i).min(64));
                let wv = _mm512_xor_si512(_mm512_maskz_loadu_epi8(k, w.as_ptr().add(i)), flip);
                let xv = _mm512_maskz_loadu_epi8(k, x.as_ptr().add(i));
                wx = _mm512_dpbusd_epi32(wx, wv, xv);
                sx = _mm512_dpbusd_epi32(sx, ones, xv);
                i += 64;
            }
            total += widen_sum(wx) - 128 * widen_sum(sx);
        }
        total
    }

    /// Sum of 16 i32 lanes in i64.
    #[inline]
    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    unsafe fn widen_sum(v: __m512i) -> i64 {
        let lo = _mm512_cvtepi32_epi64(_mm512_castsi512_si256(v));
        let hi = _mm512_cvtepi32_epi64(_mm512_extracti64x4_epi64::<1>(v));
        let mut t = [0i64; 8];
        _mm512_storeu_si512(t.as_mut_ptr().cast(), _mm512_add_epi64(lo, hi));
        t.iter().sum()
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,gfni,f16c,popcnt")]
    pub(super) unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let mut acc = _mm512_setzero_ps();
        // Loads of `a` (a matrix row in a GEMV) are the aligned ones.
        for_each_lanes(&a[..n], b, |x, y, _| acc = _mm512_add_ps(acc, _mm512_mul_ps(x, y)));
        let mut lanes = [0f32; SUM_LANES];
        _mm512_storeu_ps(lanes.as_mut_ptr(), acc);
        scalar::fold_lanes(lanes)
    }
}
