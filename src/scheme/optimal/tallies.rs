//! The optimal rule's path for short scopes on x86: tallies of |x| above a few
//! thresholds per vector pass. Not built for wasm: on four lanes its passes cost as much
//! as the slot path they would replace (measured with `wasm_kernel_bench`), and its
//! kernels would only add to the size of the `.wasm`.

use super::{floor_bits, power_of_two, sort_taken, Best, MARGIN};
use crate::kernels::{Kernels, TALLIES};
use crate::scheme::ternary::ScopeScale;

/// How many passes of [`TALLIES`] thresholds [`by_tallies`] makes at most.
const MOST_PASSES: usize = 4;

/// How many values [`by_tallies`] is content to gather, sort and score one by one.
const FEW_ENOUGH: u64 = 24;

/// A probed threshold t, with the tally of the values above it: the sum of their
/// nearest multiples of the unit, and their count.
#[derive(Clone, Copy)]
struct Probe {
    t: f32,
    units: u64,
    count: u64,
}

/// The fast path for short scopes: tallies of |x| above a few thresholds per vector pass
/// (`abs_tallies_above`), which bound every candidate's score from both sides, narrow
/// down where the optimum lies, and leave a few values to score exactly.
///
/// Only values above `top / (2 sqrt(n))` can be taken by the winner: it scores at
/// least top^2 (the first candidate does), so its scale s = S / K is at least
/// top / sqrt(K); and dropping its least taken value a, which would leave an earlier
/// candidate and so a lower score, shows a > s / 2. The floor lies a binade lower
/// still, for the rounding of the scores. So every sum this path makes is of values
/// within a few binades of the largest, exact in f64.
///
/// A tally sums the values rounded to multiples of a unit (2^-15 of the binade above the
/// largest), so the sum above a threshold lies within count / 2 units of the tally:
/// candidates at the thresholds have a score at least that of the low end, and the
/// intervals between thresholds at most what [`interval_reaches`] allows from the high
/// ends. Passes place thresholds in the intervals that could hold the optimum, until few
/// values are left there; those are scored exactly from the exact sum above them.
/// `None` for scopes whose largest value is below 2^-112 (the unit would not be an f32).
pub(super) fn by_tallies(k: &Kernels, x: &[f32]) -> Option<ScopeScale> {
    let top = (k.abs_max)(x);
    if top == 0.0 {
        return Some(ScopeScale::ZERO);
    }
    let top_exponent = (top.to_bits() >> 23) as i32; // biased; top < 2^(top_exponent - 126)
    if top_exponent < 15 {
        return None;
    }
    // 1 / unit, so that top * scale < 2^15.
    let scale = f32::from_bits(((268 - top_exponent) as u32) << 23);
    let unit = power_of_two(top_exponent - 141);
    // top / (2 sqrt(n)) >= 2^(top_exponent - 127 - 1 - ceil(log2(n) / 2)), a binade lower.
    let floor = f32::from_bits(floor_bits(top_exponent, x.len())?);
    // The first pass: thresholds around where Gaussian-like scopes have their optimum
    // (about 3/4 of the mean |x|), and the floor.
    let mean = ((k.abs_sum)(x) / x.len() as f64) as f32;
    let mut thresholds = [1.3f32, 0.88, 0.81, 0.77, 0.73, 0.69, 0.5, 0.0].map(|f| (mean * f).max(floor).min(top));
    // The candidates that could still win lie in (lower.t, upper.t]: the others stay
    // out of reach, as the best known score only grows. The first pass has no lower
    // edge (its last threshold is the floor), so its last probe comes twice.
    let mut probes = [Probe { t: top, units: 0, count: 0 }; TALLIES + 2];
    let mut best = 0f64;
    for pass in 1..=MOST_PASSES {
        debug_assert!(thresholds.windows(2).all(|t| t[0] >= t[1]), "thresholds in decreasing order");
        let tallies = (k.abs_tallies_above)(x, scale, &thresholds);
        // In decreasing order of t (equal ones leave empty intervals).
        for (p, (&t, &(units, count))) in probes[1..].iter_mut().zip(thresholds.iter().zip(&tallies)) {
            *p = Probe { t, units, count };
        }
        if pass == 1 {
            probes[TALLIES + 1] = probes[TALLIES];
        }
        let scores = probes.map(|p| p.low_score(unit));
        best = scores.iter().fold(best, |best, &score| if score > best { score } else { best });
        let limit = best * (1.0 - MARGIN);
        // Only the first and the last interval that reach matter: the search stops at
        // each end's first hit.
        let reaches = |i: usize| interval_reaches(probes[i].high(unit), probes[i + 1].high(unit), limit);
        let Some(first) = (0..=TALLIES).find(|&i| reaches(i)) else {
            return None; // not reached: the best probe's own interval reaches its score
        };
        let last = (first + 1..=TALLIES).rev().find(|&i| reaches(i)).unwrap_or(first);
        let upper = probes[first];
        let below = probes[last + 1];
        // Few values left, or one run of equal ones that no threshold can split.
        let unsplittable = below.t.to_bits() + 1 >= upper.t.to_bits();
        if below.count - upper.count <= FEW_ENOUGH || unsplittable || pass == MOST_PASSES {
            // Exact: every value above upper.t is above the floor.
            let (sum_above, above) = (k.abs_sum_above)(x, upper.t);
            debug_assert_eq!(above, upper.count);
            return Some(gather_and_scan(k, x, (upper.t, sum_above, above), (below.t, 0.0, below.count)));
        }
        split(upper.t, below.t, &mut thresholds);
        (probes[0], probes[TALLIES + 1]) = (upper, below);
    }
    None
}

/// Fills `out` with thresholds evenly spaced between `upper` and `lower` (`lower <
/// upper`), in decreasing order: within (lower, upper], where rounding may put several at
/// `upper` or at the f32 just above `lower` (which leaves empty intervals), never out of
/// order (v decreases with j, and the clamp keeps that).
fn split(upper: f32, lower: f32, out: &mut [f32]) {
    let parts = out.len() as f32 + 1.0;
    for (j, t) in out.iter_mut().enumerate() {
        let v = upper - (upper - lower) * ((j + 1) as f32 / parts);
        *t = if v >= upper {
            upper
        } else if v > lower {
            v
        } else {
            f32::from_bits(lower.to_bits() + 1)
        };
    }
}

impl Probe {
    /// A score that the candidate taking every value above t reaches at least: each value
    /// was rounded to a multiple of the unit, half a unit at most away.
    fn low_score(self, unit: f64) -> f64 {
        let sum = (self.units as f64 - 0.5 * self.count as f64) * unit;
        if self.count == 0 || sum <= 0.0 {
            0.0
        } else {
            sum * sum / self.count as f64
        }
    }

    /// (t, the most the sum above t can be, count), for [`interval_reaches`].
    fn high(self, unit: f64) -> (f32, f64, u64) {
        (self.t, (self.units as f64 + 0.5 * self.count as f64) * unit, self.count)
    }
}

/// Whether a candidate between two probed thresholds could score `limit` or more: it
/// takes every value above `upper.0` and j >= 1 of the values in (lower.0, upper.0], whose
/// sum is at most j * upper.0 (bound `by_high`) and at most their total less the rest at
/// more than lower.0 each (bound `by_low`). The first is the smaller up to the j where
/// the two meet, the second after it, and each is convex in j (real j included), so the
/// most is at j = 1, where they meet, or at the end; both are tried where they meet, so
/// that rounding of the meeting point cannot lower the bound. Scores compare as
/// fractions.
fn interval_reaches(upper: (f32, f64, u64), lower: (f32, f64, u64), limit: f64) -> bool {
    let ((high, sum_above, above), (low, sum_below, below)) = (upper, lower);
    let values = (below - above) as f64;
    let (high, low, above) = (f64::from(high), f64::from(low), above as f64);
    let reaches = |sum: f64, j: f64| sum * sum >= limit * (above + j);
    let by_high = |j: f64| reaches(sum_above + j * high, j);
    let by_low = |j: f64| {
        let sum = sum_below - (values - j) * low;
        reaches(if sum > 0.0 { sum } else { 0.0 }, j)
    };
    // Every value in the interval at `high` bounds both, and is convex in j: most
    // intervals away from the optimum fall short at both ends.
    if values == 0.0 || !(by_high(1.0) || reaches(sum_above + values * high, values)) {
        return false;
    }
    // Comparisons, not f64::max: wasm's f64.max treats NaN otherwise, so max is a call.
    let meet = (sum_below - sum_above - values * low) / (high - low);
    let meet = if meet > values {
        values
    } else if meet > 1.0 {
        meet
    } else {
        1.0
    };
    by_low(values) || by_high(meet) || by_low(meet) || by_high(1.0)
}

/// Scores, in decreasing order, every candidate among the values in (lower.0, upper.0],
/// starting from the exact sum and count above `upper.0`.
fn gather_and_scan(k: &Kernels, x: &[f32], upper: (f32, f64, u64), lower: (f32, f64, u64)) -> ScopeScale {
    let (sum_above, above) = (upper.1, upper.2);
    // Room for a vector store of 16 values past the last one.
    let (mut on_stack, mut on_heap) = ([0u32; 64], Vec::new());
    let in_range = (lower.2 - above) as usize;
    let buffer = if in_range + 16 <= on_stack.len() {
        &mut on_stack[..]
    } else {
        on_heap.resize(in_range + 16, 0);
        &mut on_heap[..]
    };
    let found = (k.abs_bits_within)(x, lower.0, upper.0, buffer);
    debug_assert_eq!(found, in_range);
    let taken = &mut buffer[..in_range];
    sort_taken(k, taken);
    let (mut sum, mut best) = (sum_above, Best::NONE);
    for (j, &bits) in taken.iter().enumerate() {
        // Exact: every value here is within the exact binades of the largest.
        sum += f64::from(f32::from_bits(bits));
        if taken.get(j + 1) != Some(&bits) {
            best.offer(sum, (above as usize + j + 1) as f64, bits);
        }
    }
    best.scale()
}
