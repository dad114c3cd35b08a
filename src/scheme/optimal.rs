//! The optimal rule: the scale and codes of least squared error over {-s, 0, +s}.
//!
//! For a given s the best codes are q = sign(x) where |x| > s / 2, so the nonzero codes go
//! to the largest |x|: taking the values with |x| >= a leaves the error
//! sum x^2 - S^2 / K at s = S / K, with S the sum of the taken |x| and K their count (with
//! importances c: S = sum c |x|, K = sum c, and the error weighted alike). The best
//! candidate maximises S^2 / K. Within a run of equal |x| that objective is convex in how
//! much of the run is taken, so only the ends of runs are candidates, and the codes are a
//! threshold: the same for every backend and every scope size.
//!
//! What every path computes, bit for bit: each candidate's S and K are the exact sums
//! rounded once to f64 (so the order of summation cannot matter), its score is S * S / K
//! (candidates with K = 0 have none), and the first candidate in decreasing order of a
//! with the strictly greatest score wins; s = S / K rounded to f32, and the codes take
//! |x| >= a.
//!
//! On x86, short scopes (blocks, rows of up to 4096 values) take tallies first: one
//! vector pass counts |x| above eight thresholds and sums it, rounded to integers, which
//! bounds every candidate's score; passes narrow down where the optimum lies until few
//! values are left there, and those are gathered, sorted and scored exactly
//! (`tallies::by_tallies`). Longer scopes, and the rare short ones whose largest value is too
//! small for the tallies' unit, take the slot path, which never sorts the scope. One pass counts the values and sums their
//! mantissas (exactly, in integers) per slot of the leading bits of |x|; the slots' edges
//! give exact candidates, and a slot's inner candidates can beat its edges by no more
//! than a bound computed from the slot's upper edge, (S + n hi)^2 / (K + n). Only the
//! slots whose bound reaches the best edge score (within a margin far above f64 rounding)
//! are sorted and scanned run by run. A short scope whose optimum may lie below its
//! window of slots is counted again over the whole range; importance-weighted scopes
//! take the sorting path.

use crate::kernels::{CodeRule, Kernels, FEW_SORTED};
use crate::scheme::order::{radix_sort, sort_decreasing};
use crate::scheme::ternary::ScopeScale;

#[cfg(target_arch = "x86_64")]
mod tallies;

/// How much an approximate score may trail the best one and still be checked exactly: far
/// above the relative rounding error of the f64 running sums that the pruning uses.
const MARGIN: f64 = 1e-9;

/// An exact sum of non-negative values that are f32 numbers or products of two: a
/// fixed-point number in units of 2^-298 (the least such product), 640 bits wide (the
/// largest product is below 2^256, and 2^48 of them still fit).
struct ExactSum([u64; 10]);

/// The exponent of the unit of [`ExactSum`].
const UNIT_EXPONENT: i32 = -298;

impl ExactSum {
    const ZERO: Self = Self([0; 10]);

    /// Adds `mantissa * 2^shift` units.
    fn add(&mut self, mantissa: u64, shift: u32) {
        let (word, bit) = ((shift / 64) as usize, shift % 64);
        let (low, high) = if bit == 0 { (mantissa, 0) } else { (mantissa << bit, mantissa >> (64 - bit)) };
        let (sum, overflow) = self.0[word].overflowing_add(low);
        self.0[word] = sum;
        // high < 2^63 when bit > 0, so adding the carry cannot wrap.
        let mut carry = high + u64::from(overflow);
        for w in &mut self.0[word + 1..] {
            if carry == 0 {
                break;
            }
            let (sum, overflow) = w.overflowing_add(carry);
            *w = sum;
            carry = u64::from(overflow);
        }
    }

    /// The sum rounded to the nearest f64, ties to even.
    fn to_f64(&self) -> f64 {
        let Some(top) = self.0.iter().rposition(|&w| w != 0) else {
            return 0.0;
        };
        let zeros = self.0[top].leading_zeros();
        let below = if top > 0 { self.0[top - 1] } else { 0 };
        // The 64 bits from the leading one down, and whether any bit under them is set.
        let (leading, rest_below) = if zeros == 0 {
            (self.0[top], below)
        } else {
            ((self.0[top] << zeros) | (below >> (64 - zeros)), below << zeros)
        };
        let sticky = rest_below != 0 || self.0[..top.saturating_sub(1)].iter().any(|&w| w != 0);
        let mut mantissa = leading >> 11;
        let dropped = leading & 0x7ff;
        if dropped > 0x400 || (dropped == 0x400 && (sticky || mantissa & 1 == 1)) {
            mantissa += 1; // 2^53 at most, still exact
        }
        let leading_exponent = 64 * top as i32 + 63 - zeros as i32 + UNIT_EXPONENT;
        mantissa as f64 * power_of_two(leading_exponent - 52)
    }
}

/// 2^e for e in f64's normal range.
fn power_of_two(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// The significand of a non-negative finite f32 as an integer (the implicit bit included).
fn significand(bits: u32) -> u64 {
    u64::from((bits & 0x7f_ffff) | (u32::from(bits >= 0x80_0000) << 23))
}

/// Where [`significand`]`(bits)` sits in [`ExactSum`] units: a value is its significand
/// times 2^(max(e, 1) - 150).
fn unit_shift(bits: u32) -> u32 {
    (bits >> 23).max(1) + 148
}

/// The longest scope that counts and sums below its largest value (the tallies, and the
/// slot path's window of slots): where [`floor_bits`] makes f64 sums exact. Longer ones,
/// long tensors, count over the whole range.
const SHORT_SCOPE: usize = 4096;

/// The bits of a power of two below every value that the winner of a scope can take: a
/// scope of `len` values whose largest |x| has the biased exponent `top_exponent`. Only
/// values above top / (2 sqrt(len)) can be taken (the proof is at `tallies::by_tallies`),
/// and this lies a binade lower still, for the rounding of the scores. `None` where that
/// is below the normal range of f32. For scopes of up to [`SHORT_SCOPE`] values, sums of values at
/// or above it are exact in f64: they are multiples of 2^-23 of it and below 2^44 of those.
fn floor_bits(top_exponent: i32, len: usize) -> Option<u32> {
    let log2_len = len.next_power_of_two().trailing_zeros() as i32;
    let exponent = top_exponent - 2 - (log2_len + 1) / 2;
    (exponent >= 1).then_some((exponent as u32) << 23)
}

/// The candidate that wins so far, and the rule it gives.
struct Best {
    score: f64,
    sum: f64,
    weight: f64,
    least_taken: u32,
}

impl Best {
    const NONE: Self = Self { score: 0.0, sum: 0.0, weight: 0.0, least_taken: 0 };

    /// Offers a candidate: sum and weight already rounded, `least_taken` the bits of the
    /// smallest |x| it takes.
    fn offer(&mut self, sum: f64, weight: f64, least_taken: u32) {
        if weight > 0.0 {
            let score = sum * sum / weight;
            if score > self.score {
                *self = Self { score, sum, weight, least_taken };
            }
        }
    }

    fn scale(&self) -> ScopeScale {
        if self.score == 0.0 {
            return ScopeScale::ZERO;
        }
        // |x| > the f32 just below the least taken value exactly when |x| >= it.
        let threshold = f32::from_bits(self.least_taken - 1);
        ScopeScale { scale: (self.sum / self.weight) as f32, code: CodeRule::Threshold { threshold } }
    }
}

/// The optimal scale of one scope of finite values.
pub(crate) fn optimal_scale(k: &Kernels, x: &[f32]) -> ScopeScale {
    // Over a block or a row, a few vector passes cost less than the slot path's one
    // counting pass.
    #[cfg(target_arch = "x86_64")]
    if x.len() <= SHORT_SCOPE {
        if let Some(found) = tallies::by_tallies(k, x) {
            return found;
        }
    }
    optimal_by_slots(k, x)
}

/// The optimal scale of a long tensor (over [`SHORT_SCOPE`] values) that may hold NaN or
/// infinities, checked by its counting pass ([`by_whole_range`]) instead of by a pass of
/// its own: `None` if it holds one, or if the tensor is short (which the caller checks
/// and scales as any scope).
pub(crate) fn long_tensor_scale(k: &Kernels, x: &[f32]) -> Option<ScopeScale> {
    (x.len() > SHORT_SCOPE).then(|| by_whole_range(k, x)).flatten()
}

/// The whole range's slots: `bits >> WHOLE_SHIFT` of |x|, 2^(23 - WHOLE_SHIFT) per binade.
const WHOLE_SHIFT: u32 = 15;
/// The key of the highest slot of the whole range, that of the largest NaN.
const WHOLE_TOP: u32 = 0x7fff_ffff >> WHOLE_SHIFT;

/// The slot path over the whole range of f32 (its window holds every value, so it always
/// decides): `None` when x holds NaN or infinities, which (their exponent bits all ones,
/// and only they) fill its first slots.
fn by_whole_range(k: &Kernels, x: &[f32]) -> Option<ScopeScale> {
    let mut slots = vec![(0, 0); WHOLE_TOP as usize + 2];
    count_slots(x, WHOLE_SHIFT, WHOLE_TOP, &mut slots);
    let non_finite = (WHOLE_TOP - (f32::INFINITY.to_bits() >> WHOLE_SHIFT)) as usize;
    if slots[..=non_finite].iter().any(|&(count, _)| count > 0) {
        return None;
    }
    Some(by_counted_slots(k, x, WHOLE_SHIFT, WHOLE_TOP, &slots).unwrap_or(ScopeScale::ZERO))
}

/// The slot path: for long scopes, and for the short ones that the tallies leave.
fn optimal_by_slots(k: &Kernels, x: &[f32]) -> ScopeScale {
    // Short scopes (blocks, short rows) count in 128 slots of 1/8 binade below their
    // largest value; the whole range in slots of 1/256 binade is the way for longer ones
    // and the fallback.
    let found = if x.len() <= SHORT_SCOPE {
        let top = (k.abs_max)(x).to_bits() >> 20;
        by_slots(k, x, 20, top, &mut [(0, 0); 129])
    } else {
        None
    };
    found.or_else(|| by_whole_range(k, x)).unwrap_or(ScopeScale::ZERO)
}

/// Sorts values in decreasing order: few by the backend's kernel, more by radix.
fn sort_taken(k: &Kernels, values: &mut [u32]) {
    if values.len() <= FEW_SORTED {
        (k.sort_few_decreasing)(values);
    } else {
        sort_decreasing(values);
    }
}

/// The optimal scale with value i's error weighted by `weight(i)` (finite, not negative).
pub(crate) fn optimal_weighted(x: &[f32], weight: impl Fn(usize) -> f32) -> ScopeScale {
    by_sorting(x, weight)
}

/// The fast path over slots of the bits of |x| above bit `shift` (so one exponent a
/// slot): slot i holds the values whose key `bits >> shift` is `top - i`, and the last
/// slot the values below the others; each slot counts its values and sums their
/// significands (exactly: they share the exponent). `None` when the optimum may lie in
/// that last slot.
fn by_slots(k: &Kernels, x: &[f32], shift: u32, top: u32, slots: &mut [(u64, u64)]) -> Option<ScopeScale> {
    count_slots(x, shift, top, slots);
    by_counted_slots(k, x, shift, top, slots)
}

/// The counting pass of [`by_slots`]. It sums the stored fraction bits; the implicit
/// leading bit, which every value of a slot shares, is added per slot after it. Not
/// inlined, for the size of the wasm builds: it has three callers and runs once per scope.
#[inline(never)]
fn count_slots(x: &[f32], shift: u32, top: u32, slots: &mut [(u64, u64)]) {
    let window = slots.len() - 1;
    for &v in x {
        let bits = v.to_bits() & 0x7fff_ffff;
        let slot = &mut slots[((top - (bits >> shift)) as usize).min(window)];
        slot.0 += 1;
        slot.1 += u64::from(bits & 0x7f_ffff);
    }
}

/// [`by_slots`] after its counting pass.
fn by_counted_slots(k: &Kernels, x: &[f32], shift: u32, top: u32, slots: &[(u64, u64)]) -> Option<ScopeScale> {
    debug_assert!(shift <= 23, "one exponent a slot");
    let window = slots.len() - 1;
    let key_bits = |i: usize| top.wrapping_sub(i as u32) << shift;
    let slot = |i: usize| {
        let (count, fractions) = slots[i];
        (count, fractions + count * (significand(key_bits(i)) & 0x80_0000))
    };
    // Counts and sums stay below 2^63, so they convert as signed integers (one
    // instruction where unsigned ones take several).
    let unit = |i: usize| power_of_two(unit_shift(key_bits(i)) as i32 - 298);
    let slot_value = |i: usize, significands: u64| significands as i64 as f64 * unit(i);
    let upper_edge = |i: usize| f64::from(f32::from_bits(key_bits(i).wrapping_add(1 << shift)));
    // Below slot i (prefix sum S and count K before it, upper edge u) no candidate
    // scores above max(S^2 / K, (S + r u)^2 / (K + r)), r the values left: the values
    // there are below u and the score is convex in how many are taken. Both walks stop
    // where that falls short.
    let total = x.len() as f64;
    // Scores are compared as fractions (square, count), so that the walks do not divide.
    let out_of_reach = |sum: f64, count: f64, upper: f64, (square, of): (f64, f64)| {
        let reach = sum + (total - count) * upper;
        sum * sum * of < square * count && reach * reach * of < square * total
    };
    // One walk from the top: the best edge (a slot and every slot above it taken), with
    // f64 running sums, and for each slot the most its candidates could score.
    let (mut small, mut large) = ([0f64; 129], Vec::new());
    let reach_of = if slots.len() <= small.len() {
        &mut small[..]
    } else {
        large.resize(slots.len(), 0f64);
        &mut large[..]
    };
    let (mut sum, mut count, mut best, mut highest, mut walked) = (0f64, 0f64, (0f64, 1f64), usize::MAX, 0);
    for (i, reach_of) in reach_of.iter_mut().enumerate().take(window + 1) {
        let upper = upper_edge(i);
        if out_of_reach(sum, count, upper, best) {
            break;
        }
        walked = i + 1;
        let (n, significands) = slot(i);
        if n == 0 {
            continue;
        }
        highest = highest.min(i);
        let n = n as i64 as f64;
        // Convexity puts the inner candidates under the chord from the edge before the
        // slot to its end (all of it at the upper edge): when the end is lower, the
        // first inner candidate trails that edge by at least (edge - end) / n, which must
        // stay far above rounding for the slot to be left out.
        let reach = sum + n * upper;
        let end = reach * reach / (count + n);
        let edge_before = if count > 0.0 { sum * sum / count } else { 0.0 };
        // Comparisons, not f64::max: wasm's f64.max treats NaN otherwise, so max is a call.
        *reach_of = if end >= edge_before * (1.0 - n * 1e-12) && edge_before > end { edge_before } else { end };
        sum += slot_value(i, significands);
        count += n;
        if i < window && sum * sum * best.1 > best.0 * count {
            best = (sum * sum, count);
        }
    }
    // The slots whose candidates could reach the best edge, scanned as one range.
    let best_edge = best.0 / best.1;
    let limit = best_edge * (1.0 - MARGIN);
    let reaching = |i: &usize| slot(*i).0 > 0 && reach_of[*i] >= limit;
    let first = (0..walked).find(reaching).unwrap_or(usize::MAX);
    let last = (0..walked).rev().find(reaching).unwrap_or(0);
    if first > last || last == window {
        return None; // nothing marked, or the optimum may lie below the window
    }
    // The values of the range, in decreasing order; written branch-free, each value at
    // the next free place, which moves on only when the value is in the range.
    let (low, span) = (key_bits(last), ((last - first + 1) as u32) << shift);
    let in_range = (first..=last).map(|i| slot(i).0).sum::<u64>() as usize;
    let (mut on_stack, mut on_heap) = ([0u32; 257], Vec::new());
    let buffer = if in_range < on_stack.len() {
        &mut on_stack[..=in_range]
    } else {
        on_heap.resize(in_range + 1, 0);
        &mut on_heap[..]
    };
    let in_span = |v: &f32| (v.to_bits() & 0x7fff_ffff).wrapping_sub(low) < span;
    let mut kept = 0;
    // Long scopes have few values in the range: a vector test of 16 at a time skips
    // most of them.
    for part in x.chunks(16) {
        if part.iter().fold(false, |any, v| any | in_span(v)) {
            for v in part {
                buffer[kept] = v.to_bits() & 0x7fff_ffff;
                kept += usize::from(in_span(v));
            }
        }
    }
    let taken = &mut buffer[..in_range];
    sort_taken(k, taken);
    // A short scope whose range lies at or above its floor sums exactly in f64 (see
    // `floor_bits`, from the top slot's exponent, which is at least the largest value's);
    // the others keep exact sums as well.
    let in_f64 = x.len() <= SHORT_SCOPE && floor_bits((key_bits(0) >> 23) as i32, x.len()).is_some_and(|f| low >= f);
    // The slots above the range are taken whole by every candidate in it.
    let (mut exact, mut rough, mut count) = (ExactSum::ZERO, 0f64, 0usize);
    for i in highest..first {
        let (n, significands) = slot(i);
        if !in_f64 {
            exact.add(significands, unit_shift(key_bits(i)));
        }
        rough += slot_value(i, significands);
        count += n as usize;
    }
    // Each run's end in the range: scored roughly with f64 sums, and exactly where that
    // comes near the best.
    let mut best = Best::NONE;
    for (j, &bits) in taken.iter().enumerate() {
        if !in_f64 {
            exact.add(significand(bits), unit_shift(bits));
        }
        rough += f64::from(f32::from_bits(bits));
        if taken.get(j + 1) == Some(&bits) {
            continue;
        }
        let taken_count = (count + j + 1) as f64;
        let to_beat = if best.score > best_edge { best.score } else { best_edge };
        if rough * rough >= to_beat * (1.0 - MARGIN) * taken_count {
            best.offer(if in_f64 { rough } else { exact.to_f64() }, taken_count, bits);
        }
    }
    Some(best.scale())
}

/// The path that sorts: every candidate in decreasing order of |x|, scored exactly.
fn by_sorting(x: &[f32], weight: impl Fn(usize) -> f32) -> ScopeScale {
    let mut keys: Vec<u64> =
        x.iter().enumerate().map(|(i, v)| (u64::from(v.to_bits() & 0x7fff_ffff) << 32) | i as u64).collect();
    let mut spare = vec![0u64; x.len()];
    let sorted = radix_sort(&mut keys, &mut spare, [32, 40, 48, 56]);
    let (mut sum, mut total, mut best) = (ExactSum::ZERO, ExactSum::ZERO, Best::NONE);
    let mut keys = sorted.iter().rev().peekable();
    while let Some(&key) = keys.next() {
        let bits = (key >> 32) as u32;
        let c = weight((key & 0xffff_ffff) as usize).to_bits();
        // A product of two values is the product of their significands times
        // 2^(shifts - 298) units.
        sum.add(significand(c) * significand(bits), unit_shift(c) + unit_shift(bits) - 298);
        total.add(significand(c), unit_shift(c));
        if keys.peek().is_none_or(|&&next| (next >> 32) as u32 != bits) {
            best.offer(sum.to_f64(), total.to_f64(), bits);
        }
    }
    best.scale()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn xorshift(mut s: u64) -> impl FnMut() -> u64 {
        move || {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s
        }
    }

    /// Scopes that stress the fast path: Gaussian-like values, outliers far above the
    /// rest, long runs of ties, zeros, subnormals, ranges wider than the window and
    /// than 64 binades, already-ternary values.
    fn scopes() -> Vec<Vec<f32>> {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        let mut uniform = move || (next() >> 40) as f32 / (1u64 << 24) as f32;
        let mut out = Vec::new();
        for (case, &n) in [1usize, 2, 3, 7, 31, 256, 257, 1000, 4096, 4097, 9000].iter().cycle().take(66).enumerate() {
            let x: Vec<f32> = (0..n)
                .map(|i| {
                    let g = uniform() + uniform() + uniform() + uniform() - 2.0;
                    match case % 6 {
                        0 => g,
                        1 if i % 97 == 0 => g * 3000.0,
                        2 => [0.0, 0.25, -0.25, 1.0, -1.0][i * 7 % 5],
                        3 => g * f32::from_bits(1 << 23) * [1.0, 1e-6, 1e30][i % 3],
                        4 => (g * 8.0).round() * 0.125,
                        5 if i % 5 == 0 => g * 1e-40,
                        _ => g * 0.02,
                    }
                })
                .collect();
            out.push(x);
        }
        out.push(vec![0.0; 300]);
        out.push(vec![-2.5; 5000]);
        out.push([vec![f32::MAX; 3], vec![f32::from_bits(1); 5]].concat());
        out
    }

    fn same(a: ScopeScale, b: ScopeScale, what: &str) {
        assert_eq!(a.scale.to_bits(), b.scale.to_bits(), "{what}: scale");
        assert_eq!(a.code, b.code, "{what}: codes");
    }

    /// The fast path, in every configuration and with short chunks, gives the sorting
    /// path's scale and threshold.
    #[test]
    fn slots_agree_with_sorting() {
        let k = crate::kernels::Backend::Scalar.kernels().unwrap();
        let mut decided = [0; 3];
        let all = scopes();
        for (c, x) in all.iter().enumerate() {
            let want = by_sorting(x, |_| 1.0);
            same(optimal_scale(k, x), want, &format!("scope {c} ({} values)", x.len()));
            let top = (k.abs_max)(x).to_bits();
            let found = [
                by_slots(k, x, 20, top >> 20, &mut [(0, 0); 129]),
                by_slots(k, x, WHOLE_SHIFT, WHOLE_TOP, &mut vec![(0, 0); WHOLE_TOP as usize + 2]),
                by_slots(k, x, 17, top >> 17, &mut [(0, 0); 257]),
            ];
            for (config, found) in found.into_iter().enumerate() {
                if let Some(got) = found {
                    same(got, want, &format!("scope {c} ({} values), configuration {config}", x.len()));
                    decided[config] += 1;
                }
            }
        }
        // The window holds the optimum of every scope here, however wide its range: values
        // 2^-16 of the largest or less cannot score as high as it does alone.
        assert_eq!(decided[..2], [all.len(); 2]);
        assert!(decided[2] >= all.len() / 2, "{decided:?}");
    }

    /// Magnitudes that make the tallying path work: a few shared values (long runs of
    /// ties), runs a few f32 steps apart, zeros of both signs, subnormals, the extremes
    /// of f32, and values spread over more binades than its sums stay exact for.
    fn adversarial_value() -> impl proptest::strategy::Strategy<Value = f32> {
        use proptest::prelude::*;
        prop_oneof![
            4 => -2.0f32..2.0,
            2 => proptest::sample::select(vec![0.0f32, -0.0, 0.5, -0.5, 1.0, -1.0, 0.25, 0.75]),
            1 => (1u32..0x80_0000).prop_map(f32::from_bits),
            1 => -1e-30f32..1e-30,
            1 => (1u32..0x7f80_0000).prop_map(f32::from_bits),
            1 => proptest::sample::select(vec![f32::MAX, -f32::MAX, f32::MIN_POSITIVE, f32::from_bits(1)]),
            1 => -1e-7f32..1e-7,
            // Runs a few f32 steps apart near the top: regions too narrow to split evenly.
            2 => (0u32..6).prop_map(|d| f32::from_bits(1.5f32.to_bits() - d)),
        ]
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(600))]

        /// The tallying path, taken alone and through `optimal_scale` on every backend
        /// of the build, gives the sorting path's scale and threshold bit for bit.
        #[test]
        fn tallies_agree_with_sorting(
            // Blocks mostly, and rows up to the longest probed scope.
            x in proptest::prop_oneof![
                proptest::collection::vec(adversarial_value(), 1..=300),
                proptest::collection::vec(adversarial_value(), 1..=SHORT_SCOPE),
            ],
            scale in proptest::sample::select(vec![1.0f32, 1e-20, 1e20, 3.0e-39]),
        ) {
            // Scopes are checked for NaN and infinity before their scale is sought.
            let x: Vec<f32> = x.iter().map(|v| v * scale).filter(|v| v.is_finite()).collect();
            let want = by_sorting(&x, |_| 1.0);
            for backend in [crate::kernels::Backend::Scalar, crate::kernels::Backend::best()] {
                let k = backend.kernels().unwrap();
                same(optimal_scale(k, &x), want, &format!("{backend}, {} values", x.len()));
                #[cfg(target_arch = "x86_64")]
                if let Some(got) = tallies::by_tallies(k, &x) {
                    same(got, want, &format!("{backend}, tallies alone, {} values", x.len()));
                }
            }
        }
    }

    /// On Gaussian-like blocks with outliers (the benchmark's weights) the tallying path
    /// decides every block itself, and as the sorting path does.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn tallies_decide_ordinary_blocks() {
        let k = crate::kernels::Backend::best().kernels().unwrap();
        let mut next = xorshift(0x2545_f491_4f6c_dd1d);
        let mut uniform = move || (next() >> 40) as f32 / (1u64 << 24) as f32;
        for block in 0..400 {
            let x: Vec<f32> = (0..256)
                .map(|i| {
                    let g = uniform() + uniform() + uniform() + uniform() - 2.0;
                    if (block * 256 + i) % 997 == 0 {
                        g * 8.0
                    } else {
                        g * 0.02
                    }
                })
                .collect();
            let got = tallies::by_tallies(k, &x).expect("decided");
            same(got, by_sorting(&x, |_| 1.0), &format!("block {block}"));
        }
    }

    /// A long tensor's counting pass finds NaN and infinities of either sign, and passes
    /// every finite value, the extremes included; short tensors are left to the caller.
    #[test]
    fn tensor_counting_finds_non_finite_values() {
        let k = crate::kernels::Backend::best().kernels().unwrap();
        let mut x: Vec<f32> = (0..5000).map(|i| ((i * 37 % 101) as f32 - 50.0) / 64.0).collect();
        x[10] = f32::MAX;
        x[11] = -f32::MAX;
        x[12] = f32::from_bits(1);
        x[13] = -0.0;
        same(long_tensor_scale(k, &x).expect("finite"), by_sorting(&x, |_| 1.0), "extremes");
        assert!(long_tensor_scale(k, &x[..SHORT_SCOPE]).is_none(), "short");
        for bad in [f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::from_bits(0x7fff_ffff)] {
            let mut y = x.clone();
            y[4999] = bad;
            assert!(long_tensor_scale(k, &y).is_none(), "{bad}");
        }
    }

    /// A run of values a few f32 steps below the largest, more than the path gathers at
    /// once: the thresholds that split so narrow a region stay in decreasing order.
    #[test]
    #[cfg(target_arch = "x86_64")]
    fn tallies_split_narrow_regions() {
        let k = crate::kernels::Backend::best().kernels().unwrap();
        let below = f32::from_bits(1.5f32.to_bits() - 1);
        let mut x = vec![1.5];
        x.extend([below; 14]);
        x.push(f32::from_bits(0x3F13_B0C8));
        x.extend([0.0; 4]);
        let want = by_sorting(&x, |_| 1.0);
        same(tallies::by_tallies(k, &x).expect("decided"), want, "tallies");
        same(optimal_scale(k, &x), want, "optimal_scale");
    }

    /// Exact sums round like f64 addition does where that is exact, and ties go to even.
    #[test]
    fn exact_sums_round_to_nearest_even() {
        let of = |values: &[f32]| {
            let mut s = ExactSum::ZERO;
            for v in values {
                s.add(significand(v.to_bits()), unit_shift(v.to_bits()));
            }
            s.to_f64()
        };
        assert_eq!(of(&[]), 0.0);
        assert_eq!(of(&[1.5, 2.25, f32::MIN_POSITIVE / 8.0]), 3.75 + f64::from(f32::MIN_POSITIVE / 8.0));
        assert_eq!(of(&[f32::MAX, f32::MAX]), 2.0 * f64::from(f32::MAX));
        // 2^53 + 1 is a tie between 2^53 and 2^53 + 2: even wins; a sticky bit breaks it.
        let big = 2f32.powi(53);
        assert_eq!(of(&[big, 1.0]), 2f64.powi(53));
        assert_eq!(of(&[big, 1.0, 2f32.powi(-100)]), 2f64.powi(53) + 2.0);
        assert_eq!(of(&[big, 3.0]), 2f64.powi(53) + 4.0);
        let tiny = f32::from_bits(1);
        assert_eq!(of(&[tiny; 3]), 3.0 * f64::from(tiny));
    }
}
