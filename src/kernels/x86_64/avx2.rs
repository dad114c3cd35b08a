//! AVX2 kernels (with F16C), bit-identical to `scalar`.
//!
//! Every public function is a safe wrapper around the `#[target_feature]` function of
//! the same name in `imp`; the table that holds the wrappers is only handed out after
//! run-time detection (see `super::avx2_kernels`). Floating-point sums keep the 16
//! logical f64 lanes of the spec as four ymm of 4 f64 (or two ymm of 8 f32 for
//! `dot_f32`); a tail is copied into a padded 16-value buffer and added like a full
//! chunk, which leaves every lane it does not reach unchanged. Element-wise kernels
//! finish their tails with the scalar code, which gives the same values by definition.

// Safe wrappers, one per kernel of the list, for the AVX2 table (see `super::safe_wrappers`).
for_each_kernel!(safe_wrappers);

/// The `#[target_feature]` kernels. Callers must make sure the CPU has every feature
/// named in their attributes; pointers are derived from slices, and every access stays
/// within the slice lengths (full vectors only, then scalar code or a padded copy).
pub(super) mod imp {
    use core::arch::x86_64::*;

    use super::super::{ROUND_BIAS, TQ1_MUL, TQ1_SHIFT};
    use crate::kernels::{
        scalar, CodeRule, MetricSums, SUM_LANES, TALLIES, TALLY_COUNT, TALLY_LANE_VALUES, TALLY_PACK, TALLY_ROUNDING,
    };
    use crate::layout::blocks::{BlockQ8K, BlockQ8_0, BlockTq1_0, BlockTq2_0, QK8_0, QK_K};

    /// The last `n % 16` values of `x` in a buffer padded with `pad`, if there are any.
    #[inline]
    fn padded_tail(x: &[f32], pad: f32) -> Option<[f32; 16]> {
        let tail = &x[x.len() - x.len() % 16..];
        (!tail.is_empty()).then(|| {
            let mut buf = [pad; 16];
            buf[..tail.len()].copy_from_slice(tail);
            buf
        })
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn abs_ps(v: __m256) -> __m256 {
        _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MAX)))
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn abs_pd(v: __m256d) -> __m256d {
        _mm256_and_pd(v, _mm256_castsi256_pd(_mm256_set1_epi64x(i64::MAX)))
    }

    /// Four f32 at `p` as f64.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn load4_pd(p: *const f32) -> __m256d {
        _mm256_cvtps_pd(_mm_loadu_ps(p))
    }

    /// The spec's fold of 16 f64 lanes held as four ymm.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn fold(acc: &[__m256d; 4]) -> f64 {
        let mut lanes = [0f64; SUM_LANES];
        for (j, &a) in acc.iter().enumerate() {
            _mm256_storeu_pd(lanes.as_mut_ptr().add(4 * j), a);
        }
        scalar::fold_lanes(lanes)
    }

    /// Max over lanes of non-negative, non-NaN values.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn hmax(v: __m256) -> f32 {
        let m = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let m = _mm_max_ps(m, _mm_movehl_ps(m, m));
        _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)))
    }

    /// [sum a, sum b, sum c, sum d] of four vectors of 8 i32.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn hsum4(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m128i {
        let t = _mm256_hadd_epi32(_mm256_hadd_epi32(a, b), _mm256_hadd_epi32(c, d));
        _mm_add_epi32(_mm256_castsi256_si128(t), _mm256_extracti128_si256::<1>(t))
    }

    /// `v.clamp(lo, hi)` lane-wise, NaN kept: the constant is the first operand, so a
    /// NaN in `v` is what max/min return.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn clamp(v: __m256, lo: __m256, hi: __m256) -> __m256 {
        _mm256_min_ps(hi, _mm256_max_ps(lo, v))
    }

    /// v + copysign(ROUND_BIAS, v).
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn add_bias(v: __m256) -> __m256 {
        let sign = _mm256_and_ps(v, _mm256_castsi256_ps(_mm256_set1_epi32(i32::MIN)));
        _mm256_add_ps(v, _mm256_or_ps(sign, _mm256_set1_ps(ROUND_BIAS)))
    }

    /// Truncates to i32, with NaN read as 0 (as `v as i32`, for |v| < 2^31).
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn trunc_i32(v: __m256) -> __m256i {
        let ordered = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
        _mm256_and_si256(_mm256_cvttps_epi32(v), ordered)
    }

    /// round_away_i8(v * id), the Q8 rule, as i32 lanes.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn q8_codes(v: __m256, id: __m256) -> __m256i {
        let s = clamp(_mm256_mul_ps(v, id), _mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
        trunc_i32(add_bias(s))
    }

    /// Four vectors of 8 i32 (in i8 range) as 32 bytes, in order.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn pack_i8(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m256i {
        let v = _mm256_packs_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    /// Four vectors of 8 i32 (in u8 range) as 32 bytes, in order.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn pack_u8(a: __m256i, b: __m256i, c: __m256i, d: __m256i) -> __m256i {
        let v = _mm256_packus_epi16(_mm256_packs_epi32(a, b), _mm256_packs_epi32(c, d));
        _mm256_permutevar8x32_epi32(v, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7))
    }

    /// f16 bits -> f32, exact (F16C).
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn f16_scalar(bits: [u8; 2]) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(u16::from_le_bytes(bits) as i32)))
    }

    /// f32 -> f16 bits, round to nearest even (F16C).
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn f16_bits(x: f32) -> [u8; 2] {
        let h = _mm_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(_mm_set_ss(x));
        (_mm_cvtsi128_si32(h) as u16).to_le_bytes()
    }

    /// Broadcast forms of a [`CodeRule`]: with `THRESHOLD` false, q = 1 where
    /// v * mul >= hi and -1 where v * mul <= lo; with it true, q = 1 where v > hi and -1
    /// where v < lo.
    #[derive(Clone, Copy)]
    struct Rule {
        mul: __m256,
        hi: __m256,
        lo: __m256,
    }

    impl Rule {
        /// q = [plus] - [minus] per lane, in {-1, 0, 1}.
        #[inline]
        #[target_feature(enable = "avx2,f16c")]
        unsafe fn codes<const THRESHOLD: bool>(self, v: __m256) -> __m256i {
            let (plus, minus) = if THRESHOLD {
                (_mm256_cmp_ps::<_CMP_GT_OQ>(v, self.hi), _mm256_cmp_ps::<_CMP_LT_OQ>(v, self.lo))
            } else {
                let s = _mm256_mul_ps(v, self.mul);
                (_mm256_cmp_ps::<_CMP_GE_OQ>(s, self.hi), _mm256_cmp_ps::<_CMP_LE_OQ>(s, self.lo))
            };
            // The masks are -1 where true, so minus - plus is [plus] - [minus].
            _mm256_sub_epi32(_mm256_castps_si256(minus), _mm256_castps_si256(plus))
        }

        /// `acc + q * w` lane-wise: with `acc` already holding `w` (the c = 1 part),
        /// this adds c * w for the stored code c = q + 1 of `v`.
        #[inline]
        #[target_feature(enable = "avx2,f16c")]
        unsafe fn add_code<const THRESHOLD: bool>(self, acc: __m256i, v: __m256, w: __m256i) -> __m256i {
            _mm256_add_epi32(acc, _mm256_sign_epi32(w, self.codes::<THRESHOLD>(v)))
        }
    }

    /// Calls `$f::<THRESHOLD>(Rule, args...)` for the variant of `$rule`.
    macro_rules! with_rule {
        ($rule:expr, $f:ident($($arg:expr),*)) => {
            match $rule {
                CodeRule::Scaled { inv } => $f::<false>(
                    Rule { mul: _mm256_set1_ps(inv), hi: _mm256_set1_ps(0.5), lo: _mm256_set1_ps(-0.5) },
                    $($arg),*
                ),
                CodeRule::Threshold { threshold } => $f::<true>(
                    Rule { mul: _mm256_set1_ps(1.0), hi: _mm256_set1_ps(threshold), lo: _mm256_set1_ps(-threshold) },
                    $($arg),*
                ),
            }
        };
    }

    /// |v| as integer bits: above 0x7f7f_ffff exactly for NaN and infinities.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn abs_bits(v: __m256) -> __m256i {
        _mm256_and_si256(_mm256_castps_si256(v), _mm256_set1_epi32(i32::MAX))
    }

    /// Bits set where a lane of `v` is NaN or infinite.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn non_finite_mask(v: __m256) -> u32 {
        let bad = _mm256_cmpgt_epi32(abs_bits(v), _mm256_set1_epi32(0x7f7f_ffff));
        _mm256_movemask_ps(_mm256_castsi256_ps(bad)) as u32
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn first_non_finite(x: &[f32]) -> Option<usize> {
        let (p, n) = (x.as_ptr(), x.len());
        let mut i = 0;
        while i + 32 <= n {
            let (a, b) = (_mm256_loadu_ps(p.add(i)), _mm256_loadu_ps(p.add(i + 8)));
            let (c, d) = (_mm256_loadu_ps(p.add(i + 16)), _mm256_loadu_ps(p.add(i + 24)));
            // The largest |bits| of the 32 values is above the finite range only if one
            // of them is NaN or infinite; only then look at each vector.
            let top = _mm256_max_epi32(
                _mm256_max_epi32(abs_bits(a), abs_bits(b)),
                _mm256_max_epi32(abs_bits(c), abs_bits(d)),
            );
            if _mm256_movemask_epi8(_mm256_cmpgt_epi32(top, _mm256_set1_epi32(0x7f7f_ffff))) != 0 {
                let m =
                    non_finite_mask(a) | non_finite_mask(b) << 8 | non_finite_mask(c) << 16 | non_finite_mask(d) << 24;
                return Some(i + m.trailing_zeros() as usize);
            }
            i += 32;
        }
        scalar::first_non_finite(&x[i..]).map(|j| i + j)
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn abs_sum(x: &[f32]) -> f64 {
        let mut acc = [_mm256_setzero_pd(); 4];
        let mut add = |p: *const f32| {
            for (j, a) in acc.iter_mut().enumerate() {
                *a = _mm256_add_pd(*a, abs_pd(load4_pd(p.add(4 * j))));
            }
        };
        let chunks = x.chunks_exact(16);
        let tail = padded_tail(x, 0.0);
        for c in chunks {
            add(c.as_ptr());
        }
        if let Some(t) = tail {
            add(t.as_ptr());
        }
        fold(&acc)
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn abs_max(x: &[f32]) -> f32 {
        let (p, n) = (x.as_ptr(), x.len());
        // The running max is the second operand, so a NaN |x| leaves it unchanged.
        let mut m = [_mm256_setzero_ps(); 4];
        let mut i = 0;
        while i + 32 <= n {
            for (j, m) in m.iter_mut().enumerate() {
                *m = _mm256_max_ps(abs_ps(_mm256_loadu_ps(p.add(i + 8 * j))), *m);
            }
            i += 32;
        }
        let v = hmax(_mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3])));
        x[i..].iter().fold(v, |m, &v| m.max(v.abs()))
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn min_max(x: &[f32]) -> (f32, f32) {
        let (p, n) = (x.as_ptr(), x.len());
        // The running values are the second operands: a NaN leaves them unchanged.
        let mut lo = [_mm256_set1_ps(f32::INFINITY); 2];
        let mut hi = [_mm256_set1_ps(f32::NEG_INFINITY); 2];
        let mut i = 0;
        while i + 16 <= n {
            for j in 0..2 {
                let v = _mm256_loadu_ps(p.add(i + 8 * j));
                lo[j] = _mm256_min_ps(v, lo[j]);
                hi[j] = _mm256_max_ps(v, hi[j]);
            }
            i += 16;
        }
        let mut l = [0f32; 8];
        let mut h = [0f32; 8];
        _mm256_storeu_ps(l.as_mut_ptr(), _mm256_min_ps(lo[0], lo[1]));
        _mm256_storeu_ps(h.as_mut_ptr(), _mm256_max_ps(hi[0], hi[1]));
        let init = (l.iter().fold(f32::INFINITY, |a, &b| a.min(b)), h.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)));
        x[i..].iter().fold(init, |(lo, hi), &v| (lo.min(v), hi.max(v)))
    }

    /// Each value goes to the place given by the number of greater values, counted eight
    /// compares at a time (see the SIMD128 form).
    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn sort_few_decreasing(values: &mut [u32]) {
        let width = values.len().next_multiple_of(8);
        scalar::sort_by_places(values, |padded, v| {
            let s = _mm256_set1_epi32(v as i32);
            let mut greater = _mm256_setzero_si256();
            for c in padded[..width].chunks_exact(8) {
                greater = _mm256_sub_epi32(greater, _mm256_cmpgt_epi32(_mm256_loadu_si256(c.as_ptr().cast()), s));
            }
            let g = _mm_add_epi32(_mm256_castsi256_si128(greater), _mm256_extracti128_si256::<1>(greater));
            let g = _mm_add_epi32(g, _mm_shuffle_epi32::<0b01_00_11_10>(g));
            let g = _mm_add_epi32(g, _mm_shuffle_epi32::<0b10_11_00_01>(g));
            _mm_cvtsi128_si32(g) as usize
        });
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn abs_sum_above(x: &[f32], t: f32) -> (f64, u64) {
        let tv = _mm256_set1_pd(t as f64);
        let mut acc = [_mm256_setzero_pd(); 4];
        let mut counts = _mm256_setzero_si256();
        let mut add = |p: *const f32| {
            for (j, a) in acc.iter_mut().enumerate() {
                let v = abs_pd(load4_pd(p.add(4 * j)));
                // |x| > t compares the same in f64 as in f32; unselected lanes add +0.0,
                // which leaves a lane (never -0.0) unchanged.
                let k = _mm256_cmp_pd::<_CMP_GT_OQ>(v, tv);
                *a = _mm256_add_pd(*a, _mm256_and_pd(v, k));
                // Counted in lanes (k is -1 where counted), not by a popcount of
                // the mask, which the enabled features leave to scalar instructions.
                counts = _mm256_sub_epi64(counts, _mm256_castpd_si256(k));
            }
        };
        let tail = padded_tail(x, f32::NAN);
        for c in x.chunks_exact(16) {
            add(c.as_ptr());
        }
        if let Some(t) = tail {
            add(t.as_ptr());
        }
        let mut lanes = [0u64; 4];
        _mm256_storeu_si256(lanes.as_mut_ptr().cast(), counts);
        (fold(&acc), lanes.iter().sum())
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn abs_tallies_above(
        x: &[f32],
        scale: f32,
        thresholds: &[f32; TALLIES],
    ) -> [(u64, u64); TALLIES] {
        let (scale_v, count_v) = (_mm256_set1_ps(scale), _mm256_set1_epi32(TALLY_PACK as i32));
        let rounding = _mm256_set1_ps(TALLY_ROUNDING);
        let mut ts = [_mm256_setzero_ps(); TALLIES];
        for (v, &t) in ts.iter_mut().zip(thresholds) {
            *v = _mm256_set1_ps(t);
        }
        let mut tallies = [(0u64, 0u64); TALLIES];
        let whole = x.len() / 8 * 8;
        // Each lane takes one value of an 8-value chunk, so a run of 64 chunks fills it.
        for run in x[..whole].chunks(8 * TALLY_LANE_VALUES) {
            let mut lanes = [_mm256_setzero_si256(); TALLIES];
            for c in run.chunks_exact(8) {
                let a = abs_ps(_mm256_loadu_ps(c.as_ptr()));
                let rounded = _mm256_add_ps(_mm256_mul_ps(a, scale_v), rounding);
                let packed = _mm256_add_epi32(_mm256_castps_si256(rounded), count_v);
                for (lane, t) in lanes.iter_mut().zip(&ts) {
                    let above = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(a, *t));
                    *lane = _mm256_add_epi32(*lane, _mm256_and_si256(above, packed));
                }
            }
            // Below 2^25 and 2^9: the lanes' sums fit 32 bits.
            let field = _mm256_set1_epi32((TALLY_COUNT - 1) as i32);
            let units = |l: __m256i| _mm256_and_si256(l, field);
            let counts = |l: __m256i| _mm256_srli_epi32::<22>(l);
            for (four, l) in tallies.chunks_exact_mut(4).zip(lanes.chunks_exact(4)) {
                let (mut u, mut c) = ([0u32; 4], [0u32; 4]);
                _mm_storeu_si128(u.as_mut_ptr().cast(), hsum4(units(l[0]), units(l[1]), units(l[2]), units(l[3])));
                _mm_storeu_si128(c.as_mut_ptr().cast(), hsum4(counts(l[0]), counts(l[1]), counts(l[2]), counts(l[3])));
                for (tally, (u, c)) in four.iter_mut().zip(u.into_iter().zip(c)) {
                    *tally = (tally.0 + u64::from(u), tally.1 + u64::from(c));
                }
            }
        }
        let tail = scalar::abs_tallies_above(&x[whole..], scale, thresholds);
        for (tally, (sum, count)) in tallies.iter_mut().zip(tail) {
            *tally = (tally.0 + sum, tally.1 + count);
        }
        tallies
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn abs_bits_within(x: &[f32], low: f32, high: f32, out: &mut [u32]) -> usize {
        let (lo, hi) = (_mm256_set1_ps(low), _mm256_set1_ps(high));
        let (p, n) = (x.as_ptr(), x.len());
        let (mut i, mut found) = (0, 0);
        while i + 8 <= n {
            let a = abs_ps(_mm256_loadu_ps(p.add(i)));
            let within = _mm256_and_ps(_mm256_cmp_ps::<_CMP_GT_OQ>(a, lo), _mm256_cmp_ps::<_CMP_LE_OQ>(a, hi));
            let mut mask = _mm256_movemask_ps(within) as u32;
            while mask != 0 {
                if let Some(o) = out.get_mut(found) {
                    *o = x[i + mask.trailing_zeros() as usize].to_bits() & 0x7fff_ffff;
                }
                found += 1;
                mask &= mask - 1;
            }
            i += 8;
        }
        let rest = out.get_mut(found..).unwrap_or_default();
        found + scalar::abs_bits_within(&x[i..], low, high, rest)
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn ternary_codes(x: &[f32], rule: CodeRule, out: &mut [i8]) {
        with_rule!(rule, codes_with(x, out));
        let done = x.len().min(out.len()) / 32 * 32;
        scalar::ternary_codes(&x[done..], rule, &mut out[done..]);
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn codes_with<const T: bool>(r: Rule, x: &[f32], out: &mut [i8]) {
        let n = x.len().min(out.len());
        let (p, o) = (x.as_ptr(), out.as_mut_ptr());
        let mut i = 0;
        while i + 32 <= n {
            let q = [0, 8, 16, 24].map(|j| r.codes::<T>(_mm256_loadu_ps(p.add(i + j))));
            _mm256_storeu_si256(o.add(i).cast(), pack_i8(q[0], q[1], q[2], q[3]));
            i += 32;
        }
    }

    /// How far ahead (in f32 values) the block quantizers prefetch.
    const PREFETCH_DISTANCE: usize = 8 * QK_K;

    /// Prefetches the 1 KiB of one block of 256 f32. Prefetches never fault, and the
    /// pointer is only formed with `wrapping_add`, so it may point past the slice.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn prefetch_block(p: *const f32) {
        for line in 0..16 {
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(16 * line).cast());
        }
    }

    rule_kernel!("avx2,f16c", fn pack_tq2_0(x: &[f32], rule: CodeRule, d: [u8; 2], out: &mut [BlockTq2_0]) by rule => pack_tq2_0_with(x, d, out));

    /// Calls `pack` on each whole block of 256 values and the block it fills, prefetching
    /// ahead.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn each_block<B>(x: &[f32], out: &mut [B], mut pack: impl FnMut(*const f32, &mut B)) {
        let blocks = out.len().min(x.len() / QK_K);
        for (b, block) in out[..blocks].iter_mut().enumerate() {
            let xb = x.as_ptr().add(b * QK_K);
            prefetch_block(xb.wrapping_add(PREFETCH_DISTANCE));
            pack(xb, block);
        }
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn pack_tq2_0_with<const T: bool>(r: Rule, x: &[f32], d: [u8; 2], out: &mut [BlockTq2_0]) {
        each_block(x, out, |xb, block| {
            block.d = d;
            // Byte h*32 + m holds the codes of values h*128 + l*32 + m at bits 2l.
            for h in 0..2 {
                let acc = [0, 8, 16, 24].map(|m| {
                    let mut acc = _mm256_set1_epi32(0x55);
                    for l in 0..4 {
                        let v = _mm256_loadu_ps(xb.add(h * 128 + l * 32 + m));
                        acc = r.add_code::<T>(acc, v, _mm256_set1_epi32(1 << (2 * l)));
                    }
                    acc
                });
                let bytes = pack_u8(acc[0], acc[1], acc[2], acc[3]);
                _mm256_storeu_si256(block.qs.as_mut_ptr().add(h * 32).cast(), bytes);
            }
        })
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn unpack_tq2_0(blocks: &[BlockTq2_0], out: &mut [i8]) {
        let count = blocks.len().min(out.len() / QK_K);
        let (three, one) = (_mm256_set1_epi8(3), _mm256_set1_epi8(1));
        for (b, block) in blocks[..count].iter().enumerate() {
            let o = out.as_mut_ptr().add(b * QK_K);
            for h in 0..2 {
                let q = _mm256_loadu_si256(block.qs.as_ptr().add(h * 32).cast());
                for l in 0..4 {
                    let c = _mm256_and_si256(_mm256_srl_epi16(q, _mm_cvtsi32_si128(2 * l as i32)), three);
                    _mm256_storeu_si256(o.add(h * 128 + l * 32).cast(), _mm256_sub_epi8(c, one));
                }
            }
        }
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn dequantize_tq2_0(blocks: &[BlockTq2_0], out: &mut [f32]) {
        let count = blocks.len().min(out.len() / QK_K);
        for (b, block) in blocks[..count].iter().enumerate() {
            let d = f16_scalar(block.d);
            // The four products (c - 1) * d of the spec; permutevar8x32 reads the low 3
            // bits of each index, so the table repeats them and no mask is needed.
            let [v0, v1, v2, v3] = [-1.0f32, 0.0, 1.0, 2.0].map(|q| q * d);
            let table = _mm256_setr_ps(v0, v1, v2, v3, v0, v1, v2, v3);
            let o = out.as_mut_ptr().add(b * QK_K);
            for h in 0..2 {
                for m in [0, 8, 16, 24] {
                    let bytes = _mm256_cvtepu8_epi32(_mm_loadl_epi64(block.qs.as_ptr().add(h * 32 + m).cast()));
                    for l in 0..4 {
                        let idx = _mm256_srl_epi32(bytes, _mm_cvtsi32_si128(2 * l as i32));
                        _mm256_storeu_ps(o.add(h * 128 + l * 32 + m), _mm256_permutevar8x32_ps(table, idx));
                    }
                }
            }
        }
    }

    /// (b * 256 + 242) / 243 lane-wise for 0 <= b < 243.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn tq1_scale(b: __m256i) -> __m256i {
        let v = _mm256_add_epi32(_mm256_slli_epi32::<8>(b), _mm256_set1_epi32(242));
        _mm256_srli_epi32::<{ TQ1_SHIFT as i32 }>(_mm256_mullo_epi32(v, _mm256_set1_epi32(TQ1_MUL)))
    }

    rule_kernel!("avx2,f16c", fn pack_tq1_0(x: &[f32], rule: CodeRule, d: [u8; 2], out: &mut [BlockTq1_0]) by rule => pack_tq1_0_with(x, d, out));

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn pack_tq1_0_with<const T: bool>(r: Rule, x: &[f32], d: [u8; 2], out: &mut [BlockTq1_0]) {
        const POW3: [i32; 5] = [81, 27, 9, 3, 1];
        each_block(x, out, |xb, block| {
            block.d = d;
            // Sum of c * 3^(4-n) starts at sum of 3^(4-n) = 121 (every c = 1).
            let digits = |base: usize, stride: usize, m: usize| {
                let mut acc = _mm256_set1_epi32(121);
                for (n, &w) in POW3.iter().enumerate() {
                    acc = r.add_code::<T>(acc, _mm256_loadu_ps(xb.add(base + n * stride + m)), _mm256_set1_epi32(w));
                }
                tq1_scale(acc)
            };
            let first = [0, 8, 16, 24].map(|m| digits(0, 32, m));
            let bytes = pack_u8(first[0], first[1], first[2], first[3]);
            _mm256_storeu_si256(block.qs.as_mut_ptr().cast(), bytes);
            let second = [0, 8].map(|m| digits(160, 16, m));
            let words = |v: __m256i| _mm_packs_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v));
            _mm_storeu_si128(
                block.qs.as_mut_ptr().add(32).cast(),
                _mm_packus_epi16(words(second[0]), words(second[1])),
            );
            // qh: value 240 + n*4 + m is lane n*4 + m of two vectors, with weight
            // 3^(4-n); the 128-bit halves are then summed.
            let wa = _mm256_setr_epi32(81, 81, 81, 81, 27, 27, 27, 27);
            let wb = _mm256_setr_epi32(9, 9, 9, 9, 3, 3, 3, 3);
            let ca = r.add_code::<T>(wa, _mm256_loadu_ps(xb.add(240)), wa);
            let cb = r.add_code::<T>(wb, _mm256_loadu_ps(xb.add(248)), wb);
            let s = _mm256_add_epi32(ca, cb);
            let s = _mm256_add_epi32(s, _mm256_permute2x128_si256::<0x01>(s, s));
            let q = words(tq1_scale(s));
            block.qh = (_mm_cvtsi128_si32(_mm_packus_epi16(q, q)) as u32).to_le_bytes();
        })
    }

    /// Digits of TQ1_0 bytes held in u16 lanes: ((b * pow mod 256) * 3 >> 8) - 1. The
    /// AVX-512 backend uses it for its 256-bit lanes.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    pub(in crate::kernels::x86_64) unsafe fn tq1_digits(b: __m256i, pow: __m256i) -> __m256i {
        let t = _mm256_and_si256(_mm256_mullo_epi16(b, pow), _mm256_set1_epi16(0xff));
        let t = _mm256_add_epi16(t, _mm256_add_epi16(t, t));
        _mm256_sub_epi16(_mm256_srli_epi16::<8>(t), _mm256_set1_epi16(1))
    }

    /// 16 i16 lanes (in i8 range) as 16 bytes, in order.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn narrow16(v: __m256i) -> __m128i {
        _mm_packs_epi16(_mm256_castsi256_si128(v), _mm256_extracti128_si256::<1>(v))
    }

    /// Codes of one TQ1_0 block into `o[..256]`.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn unpack_tq1_0_block(block: &BlockTq1_0, o: *mut i8) {
        const POW: [i16; 5] = [1, 3, 9, 27, 81];
        let qs = block.qs.as_ptr();
        let a0 = _mm256_cvtepu8_epi16(_mm_loadu_si128(qs.cast()));
        let a1 = _mm256_cvtepu8_epi16(_mm_loadu_si128(qs.add(16).cast()));
        let b = _mm256_cvtepu8_epi16(_mm_loadu_si128(qs.add(32).cast()));
        for (n, &pow) in POW.iter().enumerate() {
            let pow = _mm256_set1_epi16(pow);
            let v = _mm256_packs_epi16(tq1_digits(a0, pow), tq1_digits(a1, pow));
            _mm256_storeu_si256(o.add(n * 32).cast(), _mm256_permute4x64_epi64::<0b11_01_10_00>(v));
            _mm_storeu_si128(o.add(160 + n * 16).cast(), narrow16(tq1_digits(b, pow)));
        }
        // qh: lane n*4 + m is digit n of qh[m].
        let h = _mm256_cvtepu8_epi16(_mm_set1_epi32(i32::from_le_bytes(block.qh)));
        let pow = _mm256_setr_epi16(1, 1, 1, 1, 3, 3, 3, 3, 9, 9, 9, 9, 27, 27, 27, 27);
        _mm_storeu_si128(o.add(240).cast(), narrow16(tq1_digits(h, pow)));
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn unpack_tq1_0(blocks: &[BlockTq1_0], out: &mut [i8]) {
        let count = blocks.len().min(out.len() / QK_K);
        for (b, block) in blocks[..count].iter().enumerate() {
            unpack_tq1_0_block(block, out.as_mut_ptr().add(b * QK_K));
        }
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn dequantize_tq1_0(blocks: &[BlockTq1_0], out: &mut [f32]) {
        let count = blocks.len().min(out.len() / QK_K);
        let mut codes = [0i8; QK_K];
        for (b, block) in blocks[..count].iter().enumerate() {
            unpack_tq1_0_block(block, codes.as_mut_ptr());
            let d = _mm256_set1_ps(f16_scalar(block.d));
            let o = out.as_mut_ptr().add(b * QK_K);
            for j in (0..QK_K).step_by(8) {
                let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(codes.as_ptr().add(j).cast()));
                _mm256_storeu_ps(o.add(j), _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
            }
        }
    }

    rule_kernel!("avx2,f16c", fn pack_i2_s(x: &[f32], rule: CodeRule, out: &mut [u8]) by rule => pack_i2_s_with(x, out));

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn pack_i2_s_with<const T: bool>(r: Rule, x: &[f32], out: &mut [u8]) {
        let blocks = (out.len() / 32).min(x.len() / 128);
        for b in 0..blocks {
            let xb = x.as_ptr().add(b * 128);
            prefetch_block(xb.wrapping_add(PREFETCH_DISTANCE));
            // Byte p holds the codes of values g*32 + p at bits 6 - 2g.
            let acc = [0, 8, 16, 24].map(|m| {
                let mut acc = _mm256_set1_epi32(0x55);
                for g in 0..4 {
                    let v = _mm256_loadu_ps(xb.add(g * 32 + m));
                    acc = r.add_code::<T>(acc, v, _mm256_set1_epi32(1 << (6 - 2 * g)));
                }
                acc
            });
            _mm256_storeu_si256(out.as_mut_ptr().add(b * 32).cast(), pack_u8(acc[0], acc[1], acc[2], acc[3]));
        }
    }

    #[target_feature(enable = "avx2,f16c")]
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

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn pack_bitnet_hf_row(sources: &[&[f32]], rule: CodeRule, out: &mut [u8]) {
        if sources.len() > 4 || sources.iter().any(|s| s.len() < out.len()) {
            // Outside the layout's contract; the spec decides (and panics where it does).
            return scalar::pack_bitnet_hf_row(sources, rule, out);
        }
        with_rule!(rule, pack_bitnet_hf_row_with(sources, out));
        let done = out.len() / 32 * 32;
        let mut rest: [&[f32]; 4] = [&[]; 4];
        for (r, s) in rest.iter_mut().zip(sources) {
            *r = &s[done..];
        }
        scalar::pack_bitnet_hf_row(&rest[..sources.len()], rule, &mut out[done..]);
    }

    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn pack_bitnet_hf_row_with<const T: bool>(r: Rule, sources: &[&[f32]], out: &mut [u8]) {
        let base: i32 = (0..sources.len()).map(|i| 1 << (2 * i)).sum();
        let n = out.len();
        let mut k = 0;
        while k + 32 <= n {
            let acc = [0, 8, 16, 24].map(|j| {
                let mut acc = _mm256_set1_epi32(base);
                for (i, src) in sources.iter().enumerate() {
                    acc =
                        r.add_code::<T>(acc, _mm256_loadu_ps(src.as_ptr().add(k + j)), _mm256_set1_epi32(1 << (2 * i)));
                }
                acc
            });
            _mm256_storeu_si256(out.as_mut_ptr().add(k).cast(), pack_u8(acc[0], acc[1], acc[2], acc[3]));
            k += 32;
        }
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn quantize_i8_symmetric(x: &[f32], id: f32, clip: f32, out: &mut [i8]) {
        let n = x.len().min(out.len());
        let (lo, hi) = (_mm256_set1_ps(-clip), _mm256_set1_ps(clip));
        let idv = _mm256_set1_ps(id);
        let mut i = 0;
        while i + 32 <= n {
            let q = [0, 8, 16, 24].map(|j| q8_codes(clamp(_mm256_loadu_ps(x.as_ptr().add(i + j)), lo, hi), idv));
            _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), pack_i8(q[0], q[1], q[2], q[3]));
            i += 32;
        }
        scalar::quantize_i8_symmetric(&x[i..], id, clip, &mut out[i..]);
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn quantize_i8_asymmetric(
        x: &[f32],
        scale: f32,
        zero_point: i32,
        lo: f32,
        hi: f32,
        out: &mut [i8],
    ) {
        let n = x.len().min(out.len());
        let (lov, hiv) = (_mm256_set1_ps(lo), _mm256_set1_ps(hi));
        let sv = _mm256_set1_ps(scale);
        let zp = _mm256_set1_ps(zero_point as f32);
        let (min_s, max_s) = (_mm256_set1_ps(-512.0), _mm256_set1_ps(512.0));
        let (min_q, max_q) = (_mm256_set1_ps(-128.0), _mm256_set1_ps(127.0));
        let mut i = 0;
        while i + 32 <= n {
            let q = [0, 8, 16, 24].map(|j| {
                let v = clamp(_mm256_loadu_ps(x.as_ptr().add(i + j)), lov, hiv);
                let s = clamp(_mm256_div_ps(v, sv), min_s, max_s);
                // Same f32 steps as the spec: round, add the zero point, clamp, convert.
                let r = _mm256_round_ps::<{ _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC }>(add_bias(s));
                trunc_i32(clamp(_mm256_add_ps(r, zp), min_q, max_q))
            });
            _mm256_storeu_si256(out.as_mut_ptr().add(i).cast(), pack_i8(q[0], q[1], q[2], q[3]));
            i += 32;
        }
        scalar::quantize_i8_asymmetric(&x[i..], scale, zero_point, lo, hi, &mut out[i..]);
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn dequantize_i8(q: &[i8], scale: f32, zero_point: i32, out: &mut [f32]) {
        let n = q.len().min(out.len());
        let sv = _mm256_set1_ps(scale);
        let zp = _mm256_set1_epi32(zero_point);
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_cvtepi8_epi32(_mm_loadl_epi64(q.as_ptr().add(i).cast()));
            let v = _mm256_cvtepi32_ps(_mm256_sub_epi32(v, zp));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_mul_ps(v, sv));
            i += 8;
        }
        scalar::dequantize_i8(&q[i..], scale, zero_point, &mut out[i..]);
    }

    /// The 8 maxima of 8 vectors of non-negative, non-NaN values, in order.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn hmax8(v: &[__m256; 8]) -> __m256 {
        let t: [__m256; 4] = core::array::from_fn(|k| {
            _mm256_max_ps(_mm256_unpacklo_ps(v[2 * k], v[2 * k + 1]), _mm256_unpackhi_ps(v[2 * k], v[2 * k + 1]))
        });
        let u: [__m256; 2] = core::array::from_fn(|k| {
            let (a, b) = (t[2 * k], t[2 * k + 1]);
            _mm256_max_ps(_mm256_shuffle_ps::<0b01_00_01_00>(a, b), _mm256_shuffle_ps::<0b11_10_11_10>(a, b))
        });
        _mm256_max_ps(_mm256_permute2f128_ps::<0x20>(u[0], u[1]), _mm256_permute2f128_ps::<0x31>(u[0], u[1]))
    }

    /// One Q8_0 block with the reciprocal scale `id` and scale bits `d`.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn q8_0_block(xb: *const f32, id: __m256, d: [u8; 2], block: &mut BlockQ8_0) {
        let q = [0, 8, 16, 24].map(|j| q8_codes(_mm256_loadu_ps(xb.add(j)), id));
        _mm256_storeu_si256(block.qs.as_mut_ptr().cast(), pack_i8(q[0], q[1], q[2], q[3]));
        block.d = d;
    }

    /// NaN-ignoring max |v| of the 32 values at `xb`, as the spec's fold of f32::max.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn q8_0_absmax(xb: *const f32) -> __m256 {
        [0, 8, 16, 24].iter().fold(_mm256_setzero_ps(), |m, &j| _mm256_max_ps(abs_ps(_mm256_loadu_ps(xb.add(j))), m))
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn quantize_q8_0(x: &[f32], out: &mut [BlockQ8_0]) {
        let blocks = out.len().min(x.len() / QK8_0);
        let (out, p) = (&mut out[..blocks], x.as_ptr());
        // Eight blocks at a time: their maxima in one vector, then d = amax / 127,
        // id = 1 / d (0 where d = 0) and the f16 bits of d lane-wise, the spec's steps.
        let mut groups = out.chunks_exact_mut(8);
        for (g, group) in (&mut groups).enumerate() {
            let xg = p.add(g * 8 * QK8_0);
            prefetch_block(xg.wrapping_add(PREFETCH_DISTANCE));
            let amax = hmax8(&core::array::from_fn(|j| q8_0_absmax(xg.add(j * QK8_0))));
            let d = _mm256_div_ps(amax, _mm256_set1_ps(127.0));
            let nonzero = _mm256_cmp_ps::<_CMP_NEQ_UQ>(d, _mm256_setzero_ps());
            let id = _mm256_and_ps(_mm256_div_ps(_mm256_set1_ps(1.0), d), nonzero);
            let (mut ids, mut bits) = ([0f32; 8], [0u16; 8]);
            _mm256_storeu_ps(ids.as_mut_ptr(), id);
            _mm_storeu_si128(bits.as_mut_ptr().cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(d));
            for (j, block) in group.iter_mut().enumerate() {
                q8_0_block(xg.add(j * QK8_0), _mm256_set1_ps(ids[j]), bits[j].to_le_bytes(), block);
            }
        }
        let done = blocks / 8 * 8;
        for (b, block) in groups.into_remainder().iter_mut().enumerate() {
            let xb = p.add((done + b) * QK8_0);
            let d = hmax(q8_0_absmax(xb)) / 127.0;
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            q8_0_block(xb, _mm256_set1_ps(id), f16_bits(d), block);
        }
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn dequantize_q8_0(blocks: &[BlockQ8_0], out: &mut [f32]) {
        let count = blocks.len().min(out.len() / QK8_0);
        for (b, block) in blocks[..count].iter().enumerate() {
            let d = _mm256_set1_ps(f16_scalar(block.d));
            let o = out.as_mut_ptr().add(b * QK8_0);
            for j in [0, 8, 16, 24] {
                let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(block.qs.as_ptr().add(j).cast()));
                _mm256_storeu_ps(o.add(j), _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
            }
        }
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn quantize_q8_k(x: &[f32], out: &mut [BlockQ8K]) {
        let blocks = out.len().min(x.len() / QK_K);
        for (b, block) in out[..blocks].iter_mut().enumerate() {
            let xb = x.as_ptr().add(b * QK_K);
            prefetch_block(xb.wrapping_add(PREFETCH_DISTANCE));
            let mut m = [_mm256_setzero_ps(); 4];
            for j in 0..32 {
                m[j % 4] = _mm256_max_ps(abs_ps(_mm256_loadu_ps(xb.add(8 * j))), m[j % 4]);
            }
            let d = hmax(_mm256_max_ps(_mm256_max_ps(m[0], m[1]), _mm256_max_ps(m[2], m[3]))) / 127.0;
            let id = _mm256_set1_ps(if d == 0.0 { 0.0 } else { 1.0 / d });
            // 64 values at a time: 64 codes, then the four sums of 16.
            for g in 0..4 {
                let q = [0, 1, 2, 3, 4, 5, 6, 7].map(|j| q8_codes(_mm256_loadu_ps(xb.add(64 * g + 8 * j)), id));
                let qs = block.qs.as_mut_ptr().add(64 * g);
                _mm256_storeu_si256(qs.cast(), pack_i8(q[0], q[1], q[2], q[3]));
                _mm256_storeu_si256(qs.add(32).cast(), pack_i8(q[4], q[5], q[6], q[7]));
                let [s0, s1, s2, s3] = [0, 2, 4, 6].map(|j| _mm256_add_epi32(q[j], q[j + 1]));
                let sums = hsum4(s0, s1, s2, s3);
                _mm_storel_epi64(block.bsums.as_mut_ptr().add(4 * g).cast(), _mm_packs_epi32(sums, sums));
            }
            block.d = d;
        }
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn dequantize_q8_k(blocks: &[BlockQ8K], out: &mut [f32]) {
        let count = blocks.len().min(out.len() / QK_K);
        for (b, block) in blocks[..count].iter().enumerate() {
            let d = _mm256_set1_ps(block.d);
            let o = out.as_mut_ptr().add(b * QK_K);
            for j in (0..QK_K).step_by(8) {
                let q = _mm256_cvtepi8_epi32(_mm_loadl_epi64(block.qs.as_ptr().add(j).cast()));
                _mm256_storeu_ps(o.add(j), _mm256_mul_ps(_mm256_cvtepi32_ps(q), d));
            }
        }
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn f16_to_f32(src: &[u16], out: &mut [f32]) {
        let n = src.len().min(out.len());
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm_loadu_si128(src.as_ptr().add(i).cast());
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_cvtph_ps(h));
            i += 8;
        }
        scalar::f16_to_f32(&src[i..], &mut out[i..]);
    }

    /// F16C rounds to nearest even and quiets a NaN keeping its sign and top payload
    /// bits, as the spec does. The AVX-512 backend uses it as it is.
    #[target_feature(enable = "avx2,f16c")]
    pub(in crate::kernels::x86_64) unsafe fn f32_to_f16(src: &[f32], out: &mut [u16]) {
        let n = src.len().min(out.len());
        let mut i = 0;
        while i + 8 <= n {
            let v = _mm256_loadu_ps(src.as_ptr().add(i));
            let h = _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v);
            _mm_storeu_si128(out.as_mut_ptr().add(i).cast(), h);
            i += 8;
        }
        scalar::f32_to_f16(&src[i..n], &mut out[i..n]);
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn bf16_to_f32(src: &[u16], out: &mut [f32]) {
        let n = src.len().min(out.len());
        let mut i = 0;
        while i + 8 <= n {
            let h = _mm256_cvtepu16_epi32(_mm_loadu_si128(src.as_ptr().add(i).cast()));
            _mm256_storeu_ps(out.as_mut_ptr().add(i), _mm256_castsi256_ps(_mm256_slli_epi32::<16>(h)));
            i += 8;
        }
        scalar::bf16_to_f32(&src[i..], &mut out[i..]);
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn metric_sums(reference: &[f32], approx: &[f32]) -> MetricSums {
        let n = reference.len().min(approx.len());
        let (reference, approx) = (&reference[..n], &approx[..n]);
        let z = _mm256_setzero_pd();
        // acc[j] holds [ref_sq, err_sq, dot, approx_sq] of lanes 4j..4j+4.
        let mut acc = [[z; 4]; 4];
        let mut max_err = z;
        let mut add = |r: *const f32, a: *const f32| {
            for (j, acc) in acc.iter_mut().enumerate() {
                let (r, a) = (load4_pd(r.add(4 * j)), load4_pd(a.add(4 * j)));
                let e = _mm256_sub_pd(r, a);
                acc[0] = _mm256_add_pd(acc[0], _mm256_mul_pd(r, r));
                acc[1] = _mm256_add_pd(acc[1], _mm256_mul_pd(e, e));
                acc[2] = _mm256_add_pd(acc[2], _mm256_mul_pd(r, a));
                acc[3] = _mm256_add_pd(acc[3], _mm256_mul_pd(a, a));
                // The running max is the second operand: a NaN error leaves it unchanged.
                max_err = _mm256_max_pd(abs_pd(e), max_err);
            }
        };
        for (r, a) in reference.chunks_exact(16).zip(approx.chunks_exact(16)) {
            add(r.as_ptr(), a.as_ptr());
        }
        if let (Some(r), Some(a)) = (padded_tail(reference, 0.0), padded_tail(approx, 0.0)) {
            add(r.as_ptr(), a.as_ptr());
        }
        let mut m = [0f64; 4];
        _mm256_storeu_pd(m.as_mut_ptr(), max_err);
        let sum = |k: usize| fold(&acc.map(|a| a[k]));
        MetricSums {
            ref_sq: sum(0),
            err_sq: sum(1),
            dot: sum(2),
            approx_sq: sum(3),
            max_abs_err: m.iter().fold(0f64, |a, &b| a.max(b)),
        }
    }

    /// The integer dot product of one TQ2_0 block with one Q8_K block, spread over the
    /// lanes of a ymm: sum of c * q (maddubs of codes c = q_w + 1 as unsigned bytes)
    /// minus the bsums.
    #[inline]
    #[target_feature(enable = "avx2,f16c")]
    unsafe fn tq2_block_dot(w: &BlockTq2_0, x: &BlockQ8K) -> __m256i {
        let three = _mm256_set1_epi8(3);
        let xq = x.qs.as_ptr();
        let mut sum = _mm256_setzero_si256();
        for h in 0..2 {
            let q = _mm256_loadu_si256(w.qs.as_ptr().add(h * 32).cast());
            let codes = [
                _mm256_and_si256(q, three),
                _mm256_and_si256(_mm256_srli_epi16::<2>(q), three),
                _mm256_and_si256(_mm256_srli_epi16::<4>(q), three),
                _mm256_and_si256(_mm256_srli_epi16::<6>(q), three),
            ];
            for (l, c) in codes.into_iter().enumerate() {
                // |c0*x0 + c1*x1| <= 768 and eight of them fit an i16 lane.
                let xv = _mm256_loadu_si256(xq.add(h * 128 + l * 32).cast());
                sum = _mm256_add_epi16(sum, _mm256_maddubs_epi16(c, xv));
            }
        }
        let ones = _mm256_set1_epi16(1);
        let bsums = _mm256_loadu_si256(x.bsums.as_ptr().cast());
        _mm256_sub_epi32(_mm256_madd_epi16(sum, ones), _mm256_madd_epi16(bsums, ones))
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn gemv_tq2_0_q8_k(w: &[BlockTq2_0], x: &[BlockQ8K], y: &mut [f32]) {
        scalar::gemv_rows(w, x.len(), y, |row| dot_tq2_0_q8_k(row, x));
    }

    #[target_feature(enable = "avx2,f16c")]
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
            let v = tq2_block_dot(wb, xb);
            let isum = _mm_cvtsi128_si32(hsum4(v, v, v, v));
            acc += (f16_scalar(wb.d) * xb.d) * isum as f32;
        }
        acc
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn dot_codes_i8(w: &[i8], x: &[i8]) -> i64 {
        // Exact for any i8: sign-extend to i16 and madd; each step adds at most 2 * 2^14
        // per i32 lane, so 32768 steps fit before the sums move to i64.
        const STEPS: usize = 32768;
        let n = w.len().min(x.len());
        let mut total = 0i64;
        let mut i = 0;
        while i + 16 <= n {
            let end = (n / 16 * 16).min(i + 16 * STEPS);
            let mut acc = _mm256_setzero_si256();
            while i < end {
                let wv = _mm256_cvtepi8_epi16(_mm_loadu_si128(w.as_ptr().add(i).cast()));
                let xv = _mm256_cvtepi8_epi16(_mm_loadu_si128(x.as_ptr().add(i).cast()));
                acc = _mm256_add_epi32(acc, _mm256_madd_epi16(wv, xv));
                i += 16;
            }
            let mut t = [0i32; 8];
            _mm256_storeu_si256(t.as_mut_ptr().cast(), acc);
            total += t.iter().map(|&v| v as i64).sum::<i64>();
        }
        total + scalar::dot_codes_i8(&w[i..n], &x[i..n])
    }

    #[target_feature(enable = "avx2,f16c")]
    pub(super) unsafe fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len().min(b.len());
        let (a, b) = (&a[..n], &b[..n]);
        let mut acc = [_mm256_setzero_ps(); 2];
        let mut add = |x: *const f32, y: *const f32| {
            for (j, acc) in acc.iter_mut().enumerate() {
                let p = _mm256_mul_ps(_mm256_loadu_ps(x.add(8 * j)), _mm256_loadu_ps(y.add(8 * j)));
                *acc = _mm256_add_ps(*acc, p);
            }
        };
        for (x, y) in a.chunks_exact(16).zip(b.chunks_exact(16)) {
            add(x.as_ptr(), y.as_ptr());
        }
        if let (Some(x), Some(y)) = (padded_tail(a, 0.0), padded_tail(b, 0.0)) {
            add(x.as_ptr(), y.as_ptr());
        }
        let mut lanes = [0f32; SUM_LANES];
        _mm256_storeu_ps(lanes.as_mut_ptr(), acc[0]);
        _mm256_storeu_ps(lanes.as_mut_ptr().add(8), acc[1]);
        scalar::fold_lanes(lanes)
    }
}
