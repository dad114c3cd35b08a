//! Differential tests: every kernel of every supported backend against the scalar spec,
//! bit for bit, over random lengths 0..1100, start offsets 0..64 and hard values
//! (huge, denormal, signed zeros, exact rounding ties, NaN and infinities).
//!
//! The comparison treats two NaNs as equal whatever their payloads (LLVM does not
//! preserve NaN payloads, even in the scalar code); every other value must have the same
//! bits. `min_max` may differ in the sign of a zero result, as its contract says.

#[cfg(target_arch = "x86_64")]
use super::TALLIES;
use super::{scalar, Backend, CodeRule, Kernels, MetricSums, FEW_SORTED};
use crate::gemv::interleave_tq2_0 as interleave_rows;
use crate::layout::blocks::{BlockQ8K, BlockQ8_0, BlockTq1_0, BlockTq2_0, QK8_0, QK_K};
use core::fmt::Debug;

/// Random cases per kernel and backend.
const CASES: usize = 300;

/// xorshift64*: small, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn u32(&mut self) -> u32 {
        (self.u64() >> 32) as u32
    }

    /// Uniform in 0..n (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.u64() % n as u64) as usize
    }

    /// Uniform integer in lo..hi.
    fn range(&mut self, lo: i32, hi: i32) -> i32 {
        lo + self.below((hi - lo) as usize) as i32
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn normal(&mut self) -> f64 {
        let (u, v) = (self.unit().max(1e-300), self.unit());
        (-2.0 * u.ln()).sqrt() * (2.0 * core::f64::consts::PI * v).cos()
    }

    fn sign(&mut self) -> f32 {
        if self.chance(0.5) {
            -1.0
        } else {
            1.0
        }
    }

    /// 2^e for e in lo..hi.
    fn pow2(&mut self, lo: i32, hi: i32) -> f32 {
        2f32.powi(self.range(lo, hi))
    }

    /// A test length: often near a multiple of 16 or small, up to 1100.
    fn len(&mut self) -> usize {
        match self.below(4) {
            0 => self.below(70),
            1 => (self.below(68) * 16 + 15 + self.below(3)).saturating_sub(16),
            _ => self.below(1100),
        }
    }
}

/// What the values of a case look like.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    Normal,
    Uniform,
    Huge,
    /// Random exponents over 2^-30..2^60, where the order of a sum shows.
    Spread,
    /// Small values with a few +-2^25 or +-2^54 among them: every small value added
    /// after one of those rounds (in f32 or f64), so a sum shows which values share a
    /// lane, and in which order.
    Lumpy,
    Denormal,
    Zeros,
    /// (k + 0.5) * unit for k in -kmax..kmax, sometimes one ulp off.
    Ties,
    /// Normal values with NaN and infinities.
    Special,
    /// Each value of a random other kind.
    Mixed,
}

const KINDS: [Kind; 10] = [
    Kind::Normal,
    Kind::Uniform,
    Kind::Huge,
    Kind::Spread,
    Kind::Lumpy,
    Kind::Denormal,
    Kind::Zeros,
    Kind::Ties,
    Kind::Special,
    Kind::Mixed,
];

/// How to draw values.
#[derive(Clone, Copy, Debug)]
struct Gen {
    kind: Kind,
    scale: f32,
    unit: f32,
    kmax: i32,
}

impl Gen {
    fn random(rng: &mut Rng, finite: bool) -> Self {
        let kinds: &[Kind] = if finite { &KINDS[..8] } else { &KINDS };
        let kind = kinds[rng.below(kinds.len())];
        let scale = 10f32.powi(rng.range(-4, 5));
        Self { kind, scale, unit: scale * rng.pow2(-2, 3), kmax: 130 }
    }

    fn ties(unit: f32, kmax: i32) -> Self {
        Self { kind: Kind::Ties, scale: unit, unit, kmax }
    }

    fn value(&self, rng: &mut Rng) -> f32 {
        match self.kind {
            Kind::Normal => (rng.normal() * self.scale as f64) as f32,
            Kind::Uniform => ((rng.unit() * 2.0 - 1.0) * self.scale as f64) as f32,
            Kind::Huge => rng.sign() * (10f64.powf(25.0 + 13.5 * rng.unit()) as f32).min(f32::MAX),
            Kind::Spread => rng.sign() * (rng.unit() as f32 + 1.0) * rng.pow2(-30, 60),
            Kind::Lumpy if rng.chance(1.0 / 24.0) => rng.sign() * [2f32.powi(25), 2f32.powi(54)][rng.below(2)],
            Kind::Lumpy => rng.sign() * rng.unit() as f32 * 4.0,
            Kind::Denormal => f32::from_bits(rng.u32() & 0x807f_ffff),
            Kind::Zeros => [0.0, -0.0, 1.0, -1.0][rng.below(4)] * if rng.chance(0.8) { 0.0 } else { self.scale },
            Kind::Ties => {
                let v = (rng.range(-self.kmax, self.kmax) as f32 + 0.5) * self.unit;
                match rng.below(6) {
                    0 => f32::from_bits(v.to_bits() + 1),
                    1 if v != 0.0 => f32::from_bits(v.to_bits() - 1),
                    _ => v,
                }
            }
            Kind::Special => match rng.below(12) {
                0 => f32::NAN,
                1 => f32::INFINITY,
                2 => f32::NEG_INFINITY,
                3 => f32::from_bits(0x7f80_0001 | rng.u32() & 0x807f_ffff),
                _ => (rng.normal() * self.scale as f64) as f32,
            },
            Kind::Mixed => {
                let kind = KINDS[rng.below(9)];
                Self { kind, ..*self }.value(rng)
            }
        }
    }

    fn values(&self, rng: &mut Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.value(rng)).collect()
    }
}

/// A slice of `len` values starting at a random offset 0..64 of a larger buffer (whose
/// padding is also random, so reads past the end would show).
impl Gen {
    fn buffer(&self, rng: &mut Rng, len: usize) -> (Vec<f32>, usize) {
        let off = rng.below(64);
        let pad = rng.below(64);
        (self.values(rng, off + len + pad), off)
    }
}

/// Equality of kernel outputs: same bits, except that NaN equals NaN.
trait Same: Debug {
    fn same(&self, other: &Self) -> bool;

    fn mismatch(&self, other: &Self) -> Option<String> {
        (!self.same(other)).then(|| format!("want {self:?}, got {other:?}"))
    }
}

impl Same for f32 {
    fn same(&self, other: &Self) -> bool {
        self.to_bits() == other.to_bits() || (self.is_nan() && other.is_nan())
    }
}

impl Same for f64 {
    fn same(&self, other: &Self) -> bool {
        self.to_bits() == other.to_bits() || (self.is_nan() && other.is_nan())
    }
}

macro_rules! same_by_eq {
    ($($t:ty),*) => {$(
        impl Same for $t {
            fn same(&self, other: &Self) -> bool {
                self == other
            }
        }
    )*};
}
same_by_eq!(i8, u8, u16, u32, i64, u64, usize, BlockTq2_0, BlockTq1_0, BlockQ8_0);

impl Same for BlockQ8K {
    fn same(&self, other: &Self) -> bool {
        self.d.same(&other.d) && self.qs == other.qs && self.bsums == other.bsums
    }
}

impl Same for MetricSums {
    fn same(&self, o: &Self) -> bool {
        self.ref_sq.same(&o.ref_sq)
            && self.err_sq.same(&o.err_sq)
            && self.dot.same(&o.dot)
            && self.approx_sq.same(&o.approx_sq)
            && self.max_abs_err.same(&o.max_abs_err)
    }
}

impl<T: Same> Same for Option<T> {
    fn same(&self, other: &Self) -> bool {
        match (self, other) {
            (Some(a), Some(b)) => a.same(b),
            (None, None) => true,
            _ => false,
        }
    }
}

impl<A: Same, B: Same> Same for (A, B) {
    fn same(&self, other: &Self) -> bool {
        self.0.same(&other.0) && self.1.same(&other.1)
    }
}

impl<T: Same> Same for [T] {
    fn same(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().zip(other).all(|(a, b)| a.same(b))
    }

    fn mismatch(&self, other: &Self) -> Option<String> {
        if self.len() != other.len() {
            return Some(format!("lengths {} and {}", self.len(), other.len()));
        }
        let i = self.iter().zip(other).position(|(a, b)| !a.same(b))?;
        Some(format!("first difference at [{i}] of {}: want {:?}, got {:?}", self.len(), self[i], other[i]))
    }
}

/// Panics with the case when a backend's output is not the spec's.
#[track_caller]
fn check<T: Same + ?Sized>(what: &str, backend: Backend, case: &dyn Debug, want: &T, got: &T) {
    if let Some(m) = want.mismatch(got) {
        panic!("{what} on {backend} differs from scalar: {m}\ncase: {case:?}");
    }
}

/// Runs kernel `$name` of the spec and of backend table `$k` on copies of `$init`, the
/// output after `$args`, and checks that both leave the same values.
macro_rules! check_kernel {
    ($name:ident, $b:expr, $k:expr, $case:expr, $init:expr, ($($arg:expr),*)) => {{
        let init = $init;
        let (mut want, mut got) = (init.clone(), init);
        scalar::$name($($arg,)* &mut want);
        ($k.$name)($($arg,)* &mut got);
        check(stringify!($name), $b, $case, &want[..], &got[..]);
    }};
}

/// Every supported backend but the spec itself.
fn backends() -> Vec<(Backend, &'static Kernels)> {
    Backend::supported()
        .into_iter()
        .filter(|&b| b != Backend::Scalar)
        .map(|b| (b, b.kernels().expect("supported backends have a table")))
        .collect()
}

/// Runs `case` CASES times per backend with a fresh deterministic generator.
fn each_case(seed: u64, mut case: impl FnMut(&mut Rng, Backend, &'static Kernels)) {
    for (b, k) in backends() {
        let mut rng = Rng::new(seed ^ b as u64);
        for _ in 0..CASES {
            case(&mut rng, b, k);
        }
    }
}

/// As [`each_case`], with a length `n` (`rng.len()`) as each case's first draw.
fn each_len_case(seed: u64, mut case: impl FnMut(&mut Rng, Backend, &'static Kernels, usize)) {
    each_case(seed, |rng, b, k| {
        let n = rng.len();
        case(rng, b, k, n)
    });
}

fn random_bytes(rng: &mut Rng, n: usize) -> Vec<u8> {
    (0..n).map(|_| rng.u32() as u8).collect()
}

/// A code rule for `x`: a realistic scale, an exact power of two, or an edge case.
fn random_rule(rng: &mut Rng, x: &[f32]) -> CodeRule {
    let mean = x.iter().filter(|v| v.is_finite()).map(|v| v.abs() as f64).sum::<f64>() / x.len().max(1) as f64;
    let g = if mean > 0.0 && rng.chance(0.7) { mean as f32 } else { rng.pow2(-20, 20) };
    match rng.below(12) {
        0..=3 => CodeRule::Scaled { inv: 1.0 / g },
        4 => CodeRule::Scaled { inv: 0.0 },
        5 => CodeRule::Scaled { inv: f32::INFINITY },
        6 => CodeRule::Scaled { inv: [f32::NAN, -1.0 / g, f32::MAX][rng.below(3)] },
        7..=9 => CodeRule::Threshold { threshold: 0.7 * g },
        _ => CodeRule::Threshold { threshold: [0.0, -0.0, -g, f32::INFINITY, f32::NAN][rng.below(5)] },
    }
}

/// Values for a code rule: random data, or exact ternary ties at +-0.5 / +-1.5 scale.
fn ternary_data(rng: &mut Rng, n: usize) -> (Vec<f32>, usize, CodeRule) {
    if rng.chance(0.3) {
        let g = if rng.chance(0.5) { rng.pow2(-10, 10) } else { 10f32.powi(rng.range(-3, 3)) * 0.37 };
        let gen = Gen::ties(g, 2);
        let (data, off) = gen.buffer(rng, n);
        let rule = if rng.chance(0.8) {
            CodeRule::Scaled { inv: 1.0 / g }
        } else {
            CodeRule::Threshold { threshold: 0.5 * g }
        };
        (data, off, rule)
    } else {
        let gen = Gen::random(rng, false);
        let (data, off) = gen.buffer(rng, n);
        let rule = random_rule(rng, &data[off..off + n]);
        (data, off, rule)
    }
}

#[test]
fn first_non_finite() {
    each_len_case(1, |rng, b, k, n| {
        let gen = Gen::random(rng, true);
        let (mut data, off) = gen.buffer(rng, n);
        if n > 0 && rng.chance(0.7) {
            let bad = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, f32::from_bits(0xff80_0001)][rng.below(4)];
            data[off + rng.below(n)] = bad;
            if rng.chance(0.3) {
                data[off + rng.below(n)] = bad;
            }
        }
        let x = &data[off..off + n];
        check("first_non_finite", b, &(n, off), &scalar::first_non_finite(x), &(k.first_non_finite)(x));
    });
}

/// A NaN anywhere, in an unaligned head, the vector body or the tail, leaves the largest
/// |x| of the other values.
#[test]
fn abs_max_passes_over_nan_anywhere() {
    let data: Vec<f32> = (0..200).map(|i| ((i * 37) % 101) as f32 * 0.25 - 12.0).collect();
    for backend in Backend::supported() {
        let k = backend.kernels().unwrap();
        for off in 0..17 {
            for at in 0..80 {
                let mut copy = data.clone();
                copy[off + at] = f32::NAN;
                let x = &copy[off..off + 120];
                check("abs_max", backend, &(off, at), &scalar::abs_max(x), &(k.abs_max)(x));
            }
        }
    }
}

#[test]
fn reductions() {
    each_len_case(2, |rng, b, k, n| {
        let gen = Gen::random(rng, false);
        let (data, off) = gen.buffer(rng, n);
        let x = &data[off..off + n];
        let case = (n, off, gen);
        check("abs_sum", b, &case, &scalar::abs_sum(x), &(k.abs_sum)(x));
        check("abs_max", b, &case, &scalar::abs_max(x), &(k.abs_max)(x));
        let (want, got) = (scalar::min_max(x), (k.min_max)(x));
        let zero_sign_only = |a: f32, b: f32| a.same(&b) || (a == 0.0 && b == 0.0);
        assert!(
            zero_sign_only(want.0, got.0) && zero_sign_only(want.1, got.1),
            "min_max on {b}: want {want:?}, got {got:?}, case {case:?}"
        );
        let t = match rng.below(6) {
            0 if n > 0 => x[rng.below(n)].abs(),
            1 => 0.0,
            2 => -1.0,
            3 => [f32::INFINITY, f32::NAN][rng.below(2)],
            _ => (scalar::abs_sum(x) / n.max(1) as f64 * 0.7) as f32,
        };
        check("abs_sum_above", b, &(case, t), &scalar::abs_sum_above(x, t), &(k.abs_sum_above)(x, t));
    });
}

/// |v| for a value v of `x` (not empty), or the f32 just below or just above it.
#[cfg(target_arch = "x86_64")]
fn near_a_value(rng: &mut Rng, x: &[f32]) -> f32 {
    let v = x[rng.below(x.len())].abs();
    [v, f32::from_bits(v.to_bits().saturating_sub(1)), f32::from_bits(v.to_bits() + 1)][rng.below(3)]
}

/// Tallies at thresholds drawn from the values, around them and at the edges, with the
/// scale that puts the largest |x| at most 2^15; and a run of equal values at the
/// limit long enough to fill every packed lane of every backend.
#[test]
#[cfg(target_arch = "x86_64")]
fn abs_tallies_above() {
    let tallies = |b: Backend, k: &Kernels, case: &dyn Debug, x: &[f32], scale: f32, ts: &[f32; TALLIES]| {
        check(
            "abs_tallies_above",
            b,
            case,
            &scalar::abs_tallies_above(x, scale, ts)[..],
            &(k.abs_tallies_above)(x, scale, ts)[..],
        );
    };
    each_len_case(12, |rng, b, k, n| {
        let gen = Gen::random(rng, false);
        let (mut data, off) = gen.buffer(rng, n);
        // The scopes it serves are finite.
        data.iter_mut().filter(|v| !v.is_finite()).for_each(|v| *v = 0.0);
        let x = &data[off..off + n];
        let top = scalar::abs_max(x);
        // The largest power of two that keeps top * scale at most 2^15.
        let scale = if top == 0.0 || top.log2() < -100.0 { 1.0 } else { 2f32.powi(14 - top.log2().floor() as i32) };
        let ts: [f32; TALLIES] = core::array::from_fn(|_| match rng.below(5) {
            0 | 1 if n > 0 => near_a_value(rng, x),
            2 => [0.0, -1.0, top][rng.below(3)],
            _ => top * rng.below(1000) as f32 / 1000.0,
        });
        tallies(b, k, &(n, off, gen, scale, ts), x, scale, &ts);
    });
    let at_limit = vec![-32768.0f32; 4099];
    for (b, k) in backends() {
        let ts = [0.0, 1.0, 32767.0, 32767.99, 40000.0, -1.0, 0.5, 2.0];
        tallies(b, k, &"a run at the limit", &at_limit, 1.0, &ts);
        tallies(b, k, &"a run at the limit, scaled", &at_limit[3..], 0.999, &ts);
    }
}

/// The values within bounds drawn from the data, around them and at the edges, into
/// outputs with room for all, for some and for none.
#[test]
#[cfg(target_arch = "x86_64")]
fn abs_bits_within() {
    each_len_case(13, |rng, b, k, n| {
        let gen = Gen::random(rng, true);
        let (data, off) = gen.buffer(rng, n);
        let x = &data[off..off + n];
        let mut bound = || match rng.below(4) {
            0 | 1 if n > 0 => near_a_value(rng, x),
            2 => [0.0, -1.0, f32::INFINITY, f32::NAN][rng.below(4)],
            _ => rng.pow2(-20, 20),
        };
        let (a, c) = (bound(), bound());
        let (low, high) = if rng.chance(0.8) && a > c { (c, a) } else { (a, c) };
        let room = [n + 16, n, rng.below(n + 1), 0][rng.below(4)];
        let init = vec![0xdead_beefu32; room];
        let (mut want, mut got) = (init.clone(), init);
        let case = (n, off, gen, low, high, room);
        let found = (scalar::abs_bits_within(x, low, high, &mut want), (k.abs_bits_within)(x, low, high, &mut got));
        check("abs_bits_within (count)", b, &case, &found.0, &found.1);
        let written = found.0.min(room);
        check("abs_bits_within", b, &case, &want[..written], &got[..written]);
    });
}

/// Sorts of every length up to FEW_SORTED: magnitudes of every size, runs of equal ones,
/// zeros and the largest magnitude; the spec itself against the standard library's sort.
#[test]
fn sort_few_decreasing() {
    let mut rng = Rng::new(0x5eed_5027);
    for n in 0..=FEW_SORTED {
        for _ in 0..24 {
            let shared = [0, 1, 0x3f80_0000, 0x7f7f_ffff, 0x7fff_ffff, rng.u32() & 0x7fff_ffff];
            let values: Vec<u32> =
                (0..n).map(|_| if rng.chance(0.4) { shared[rng.below(6)] } else { rng.u32() & 0x7fff_ffff }).collect();
            let mut want = values.clone();
            want.sort_unstable_by(|a, b| b.cmp(a));
            let mut spec = values.clone();
            scalar::sort_few_decreasing(&mut spec);
            assert_eq!(spec, want, "the spec sorts {values:?}");
            for (b, k) in backends() {
                let mut got = values.clone();
                (k.sort_few_decreasing)(&mut got);
                check("sort_few_decreasing", b, &values, &want[..], &got[..]);
            }
        }
    }
}

#[test]
fn ternary_codes() {
    each_len_case(3, |rng, b, k, n| {
        let (data, off, rule) = ternary_data(rng, n);
        let x = &data[off..off + n];
        let out_len = if rng.chance(0.8) { n } else { rng.len() };
        let init: Vec<i8> = random_bytes(rng, out_len).into_iter().map(|v| v as i8).collect();
        check_kernel!(ternary_codes, b, k, &(n, off, rule), init, (x, rule));
    });
}

/// Block-aligned data: `blocks` blocks of `size` values (up to about 1100 values, and
/// at least 5 blocks), sometimes with a few extra.
fn block_data(rng: &mut Rng, size: usize) -> (usize, usize) {
    let blocks = rng.below((1100 / size).max(5) + 1);
    let extra = if rng.chance(0.2) { rng.below(size) } else { 0 };
    (blocks, blocks * size + extra)
}

/// An output length in blocks: usually `blocks`, sometimes fewer or more.
fn out_blocks(rng: &mut Rng, blocks: usize) -> usize {
    match rng.below(8) {
        0 => blocks.saturating_sub(1),
        1 => blocks + 1,
        _ => blocks,
    }
}

fn tq2_blocks(rng: &mut Rng, n: usize) -> Vec<BlockTq2_0> {
    (0..n)
        .map(|_| {
            let bytes = random_bytes(rng, 66);
            let mut block = BlockTq2_0 { qs: [0; 64], d: [bytes[64], bytes[65]] };
            block.qs.copy_from_slice(&bytes[..64]);
            block
        })
        .collect()
}

fn tq1_blocks(rng: &mut Rng, n: usize) -> Vec<BlockTq1_0> {
    (0..n)
        .map(|_| {
            let bytes = random_bytes(rng, 54);
            let mut block = BlockTq1_0 { qs: [0; 48], qh: [0; 4], d: [bytes[52], bytes[53]] };
            block.qs.copy_from_slice(&bytes[..48]);
            block.qh.copy_from_slice(&bytes[48..52]);
            block
        })
        .collect()
}

/// The signature of the TQ packing kernels.
type PackTq<B> = fn(&[f32], CodeRule, [u8; 2], &mut [B]);

/// A TQ packer against the spec: random scopes of blocks, into random stale blocks.
fn pack_tq<B: Clone>(
    seed: u64,
    what: &str,
    stale_blocks: fn(&mut Rng, usize) -> Vec<B>,
    spec: PackTq<B>,
    kernel: fn(&Kernels) -> PackTq<B>,
) where
    [B]: Same,
{
    each_case(seed, |rng, b, k| {
        let (blocks, n) = block_data(rng, QK_K);
        let (data, off, rule) = ternary_data(rng, n);
        let x = &data[off..off + n];
        let d = [rng.u32() as u8, rng.u32() as u8];
        let out_len = out_blocks(rng, blocks);
        let init = stale_blocks(rng, out_len);
        let (mut want, mut got) = (init.clone(), init);
        spec(x, rule, d, &mut want);
        kernel(k)(x, rule, d, &mut got);
        check(what, b, &(n, off, rule), &want[..], &got[..]);
    });
}

#[test]
fn pack_tq2_0() {
    pack_tq(4, "pack_tq2_0", tq2_blocks, scalar::pack_tq2_0, |k| k.pack_tq2_0);
}

#[test]
fn pack_tq1_0() {
    pack_tq(5, "pack_tq1_0", tq1_blocks, scalar::pack_tq1_0, |k| k.pack_tq1_0);
}

#[test]
fn pack_tq1_0_every_digit_combination() {
    // Every base-3 number 0..243 in every byte position of the first two groups and
    // every 4-digit number in qh, so the division by 243 is checked for every input.
    let codes: Vec<f32> = (0..243 * 5).map(|i| ((i / 5) / 3usize.pow(4 - (i % 5) as u32) % 3) as f32 - 1.0).collect();
    for (b, k) in backends() {
        for shift in 0..243 {
            let mut x = vec![0f32; QK_K];
            for (m, byte) in (0..48).map(|m| (m, (m + shift) % 243)) {
                let (group, count, base) = if m < 32 { (m, 32, 0) } else { (m - 32, 16, 160) };
                for n in 0..5 {
                    x[base + n * count + group] = codes[byte * 5 + n];
                }
            }
            for m in 0..4 {
                for n in 0..4 {
                    x[240 + n * 4 + m] = codes[((m + shift) % 81 * 3) * 5 + n];
                }
            }
            let rule = CodeRule::Scaled { inv: 1.0 };
            let zero = BlockTq1_0 { qs: [0; 48], qh: [0; 4], d: [0; 2] };
            let (mut want, mut got) = ([zero], [zero]);
            scalar::pack_tq1_0(&x, rule, [1, 2], &mut want);
            (k.pack_tq1_0)(&x, rule, [1, 2], &mut got);
            check("pack_tq1_0 (all digits)", b, &shift, &want[..], &got[..]);
        }
    }
}

#[test]
fn unpack_and_dequantize_tq() {
    each_case(6, |rng, b, k| {
        let count = rng.below(7);
        let off = rng.below(3);
        let out_len = out_blocks(rng, count) * QK_K + if rng.chance(0.2) { rng.below(QK_K) } else { 0 };
        let case = (count, off, out_len);

        let w2 = tq2_blocks(rng, off + count);
        let init: Vec<i8> = random_bytes(rng, out_len).into_iter().map(|v| v as i8).collect();
        check_kernel!(unpack_tq2_0, b, k, &case, init.clone(), (&w2[off..]));

        let w1 = tq1_blocks(rng, off + count);
        check_kernel!(unpack_tq1_0, b, k, &case, init, (&w1[off..]));

        let init = Gen::random(rng, false).values(rng, out_len);
        check_kernel!(dequantize_tq2_0, b, k, &case, init.clone(), (&w2[off..]));

        check_kernel!(dequantize_tq1_0, b, k, &case, init, (&w1[off..]));
    });
}

#[test]
fn pack_and_unpack_i2_s() {
    each_case(21, |rng, b, k| {
        let (blocks, n) = block_data(rng, 128);
        let (data, off, rule) = ternary_data(rng, n);
        let x = &data[off..off + n];
        let out_len = out_blocks(rng, blocks) * 32 + if rng.chance(0.2) { rng.below(32) } else { 0 };
        let init = random_bytes(rng, out_len);
        check_kernel!(pack_i2_s, b, k, &(n, off, rule), init, (x, rule));

        // Any byte pattern unpacks the same way, code 3 included.
        let bytes_off = rng.below(3);
        let bytes = random_bytes(rng, bytes_off + out_len);
        let codes_len = out_blocks(rng, blocks) * 128 + if rng.chance(0.2) { rng.below(128) } else { 0 };
        let init: Vec<i8> = random_bytes(rng, codes_len).into_iter().map(|v| v as i8).collect();
        check_kernel!(unpack_i2_s, b, k, &(out_len, bytes_off, codes_len), init, (&bytes[bytes_off..]));
    });
}

#[test]
fn pack_bitnet_hf_row() {
    each_len_case(7, |rng, b, k, n| {
        let count = rng.below(5);
        let (data, off, rule) = ternary_data(rng, (n + 70) * count);
        let sources: Vec<&[f32]> =
            (0..count).map(|i| &data[off + i * (n + 70)..off + i * (n + 70) + n + rng.below(70)]).collect();
        let init = random_bytes(rng, n);
        check_kernel!(pack_bitnet_hf_row, b, k, &(n, count, off, rule), init, (&sources, rule));
    });
}

#[test]
fn quantize_i8_symmetric() {
    each_len_case(8, |rng, b, k, n| {
        let d = rng.pow2(-12, 12);
        let gen = if rng.chance(0.5) { Gen::ties(d, 130) } else { Gen::random(rng, false) };
        let (data, off) = gen.buffer(rng, n);
        let x = &data[off..off + n];
        let clip = if rng.chance(0.7) { f32::INFINITY } else { d * rng.range(0, 200) as f32 };
        let id = match rng.below(8) {
            0 => 0.0,
            1 => f32::INFINITY,
            2 => 1.0 / (scalar::abs_max(x) / 127.0),
            _ => 1.0 / d,
        };
        let out_len = if rng.chance(0.9) { n } else { rng.len() };
        let init: Vec<i8> = random_bytes(rng, out_len).into_iter().map(|v| v as i8).collect();
        check_kernel!(quantize_i8_symmetric, b, k, &(n, off, gen, id, clip), init, (x, id, clip));
    });
}

#[test]
fn quantize_i8_asymmetric() {
    each_len_case(9, |rng, b, k, n| {
        let scale = if rng.chance(0.7) { rng.pow2(-12, 12) } else { rng.unit() as f32 * 3.0 + 1e-6 };
        let gen = if rng.chance(0.5) { Gen::ties(scale, 600) } else { Gen::random(rng, false) };
        let (data, off) = gen.buffer(rng, n);
        let x = &data[off..off + n];
        let (lo, hi) = match rng.below(3) {
            0 => (f32::NEG_INFINITY, f32::INFINITY),
            1 => (-scale * rng.range(0, 300) as f32, scale * rng.range(0, 300) as f32),
            _ => {
                let (lo, hi) = scalar::min_max(x);
                (lo.min(0.0), hi.max(0.0))
            }
        };
        let zero_point = if rng.chance(0.9) { rng.range(-128, 128) } else { [i32::MIN / 2, 1 << 30][rng.below(2)] };
        let init: Vec<i8> = random_bytes(rng, n).into_iter().map(|v| v as i8).collect();
        check_kernel!(
            quantize_i8_asymmetric,
            b,
            k,
            &(n, off, gen, scale, zero_point, lo, hi),
            init,
            (x, scale, zero_point, lo, hi)
        );
    });
}

#[test]
fn dequantize_i8() {
    each_len_case(10, |rng, b, k, n| {
        let off = rng.below(64);
        let q: Vec<i8> = random_bytes(rng, off + n).into_iter().map(|v| v as i8).collect();
        let scale = match rng.below(6) {
            0 => 0.0,
            1 => -rng.unit() as f32,
            2 => f32::NAN,
            _ => (rng.unit() * 0.1) as f32,
        };
        let zero_point = rng.range(-128, 128);
        let init = Gen::random(rng, false).values(rng, n);
        check_kernel!(dequantize_i8, b, k, &(n, off, scale, zero_point), init, (&q[off..], scale, zero_point));
    });
}

/// Blocks of `size` values with exact ties: one value is +-127 * s (so d = s exactly)
/// and the others are (k + 0.5) * s.
fn q8_tie_data(rng: &mut Rng, blocks: usize, size: usize) -> Vec<f32> {
    let mut x = Vec::with_capacity(blocks * size);
    for _ in 0..blocks {
        let s = rng.pow2(-20, 20);
        let peak = rng.below(size);
        x.extend((0..size).map(|i| {
            if i == peak {
                rng.sign() * 127.0 * s
            } else {
                (rng.range(-127, 127) as f32 + 0.5) * s
            }
        }));
    }
    x
}

#[test]
fn quantize_q8() {
    each_case(11, |rng, b, k| {
        let size = if rng.chance(0.5) { QK8_0 } else { QK_K };
        let (blocks, n) = block_data(rng, size);
        let (data, off) = if rng.chance(0.4) {
            let off = rng.below(64);
            let mut data = Gen::random(rng, true).values(rng, off);
            data.extend(q8_tie_data(rng, blocks + 1, size));
            (data, off)
        } else {
            Gen::random(rng, false).buffer(rng, n)
        };
        let x = &data[off..off + n];
        let case = (size, n, off);
        if size == QK8_0 {
            let init: Vec<BlockQ8_0> =
                (0..out_blocks(rng, blocks)).map(|_| BlockQ8_0 { d: [1, 2], qs: [7; QK8_0] }).collect();
            check_kernel!(quantize_q8_0, b, k, &case, init, (x));
        } else {
            let init = vec![BlockQ8K { d: 3.0, qs: [5; QK_K], bsums: [9; 16] }; out_blocks(rng, blocks)];
            check_kernel!(quantize_q8_k, b, k, &case, init, (x));
        }
    });
}

/// The scalar Q8_K quantizer's short path for finite blocks gives the bytes of its
/// definition (abs_max, `round_away_i8(v * (1 / d))`, sums of 16 codes) on hard data:
/// ties, NaN and infinities, and scales near and below the smallest normal f32.
#[test]
fn quantize_q8_k_is_its_definition() {
    let mut rng = Rng::new(43);
    for _ in 0..CASES {
        let blocks = 1 + rng.below(4);
        let mut x = match rng.below(3) {
            0 => q8_tie_data(&mut rng, blocks, QK_K),
            1 => Gen::random(&mut rng, true).values(&mut rng, blocks * QK_K),
            _ => Gen::random(&mut rng, false).values(&mut rng, blocks * QK_K),
        };
        if rng.chance(0.3) {
            let s = rng.pow2(-148, -100);
            x.iter_mut().for_each(|v| *v *= s);
        }
        let mut got = vec![BlockQ8K { d: 3.0, qs: [5; QK_K], bsums: [9; 16] }; blocks];
        scalar::quantize_q8_k(&x, &mut got);
        for (i, (block, xb)) in got.iter().zip(x.chunks_exact(QK_K)).enumerate() {
            let d = scalar::abs_max(xb) / 127.0;
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            let codes: Vec<i8> = xb.iter().map(|&v| scalar::round_away_i8(v * id)).collect();
            assert_eq!(block.d.to_bits(), d.to_bits(), "block {i}");
            assert_eq!(&block.qs[..], &codes[..], "block {i}, d = {d:e}");
            for (s, c) in block.bsums.iter().zip(codes.chunks(16)) {
                assert_eq!(*s as i32, c.iter().map(|&q| q as i32).sum::<i32>(), "block {i}");
            }
        }
    }
}

fn q8_k_blocks(rng: &mut Rng, n: usize) -> Vec<BlockQ8K> {
    (0..n)
        .map(|_| {
            let mut block = BlockQ8K::default();
            for q in block.qs.iter_mut() {
                *q = rng.u32() as i8;
            }
            for s in block.bsums.iter_mut() {
                *s = rng.u32() as i16;
            }
            block.d = match rng.below(10) {
                0 => 0.0,
                1 => f32::INFINITY,
                2 => f32::from_bits(rng.u32()),
                _ => (rng.normal() * 0.01) as f32,
            };
            block
        })
        .collect()
}

#[test]
fn dequantize_q8() {
    each_case(12, |rng, b, k| {
        let count = rng.below(20);
        let off = rng.below(3);
        let bytes = random_bytes(rng, (off + count) * 34);
        let q8_0: &[BlockQ8_0] = crate::layout::blocks::as_blocks(&bytes);
        let out_len = out_blocks(rng, count) * QK8_0 + rng.below(QK8_0);
        let init = Gen::random(rng, false).values(rng, out_len.max(QK_K * 3));
        check_kernel!(dequantize_q8_0, b, k, &(count, off, out_len), init[..out_len].to_vec(), (&q8_0[off..]));

        let q8_k = q8_k_blocks(rng, 3);
        let out_len = rng.below(QK_K * 3);
        check_kernel!(dequantize_q8_k, b, k, &out_len, init[..out_len].to_vec(), (&q8_k));
    });
}

#[test]
fn half_conversions() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    for (b, k) in backends() {
        let mut rng = Rng::new(13);
        for off in 0..64 {
            let src = &all[off * 7..];
            let n = src.len() - rng.below(40);
            let (mut want, mut got) = (vec![1f32; n], vec![1f32; n]);
            scalar::f16_to_f32(src, &mut want);
            (k.f16_to_f32)(src, &mut got);
            check("f16_to_f32", b, &(off, n), &want[..], &got[..]);
            // bf16 NaNs must keep their exact bits (the conversion is a shift).
            scalar::bf16_to_f32(src, &mut want);
            (k.bf16_to_f32)(src, &mut got);
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits() as u64).collect::<Vec<_>>();
            check("bf16_to_f32", b, &(off, n), &bits(&want)[..], &bits(&got)[..]);
        }
        for _ in 0..CASES {
            let n = rng.len();
            let off = rng.below(64);
            let src: Vec<u16> = (0..off + n).map(|_| rng.u32() as u16).collect();
            let out_len = if rng.chance(0.8) { n } else { rng.len() };
            check_kernel!(f16_to_f32, b, k, &(off, n, out_len), vec![2f32; out_len], (&src[off..]));
            check_kernel!(bf16_to_f32, b, k, &(off, n, out_len), vec![2f32; out_len], (&src[off..]));
        }
    }
}

#[test]
fn metric_sums() {
    each_len_case(14, |rng, b, k, n| {
        let finite = rng.chance(0.7);
        let gen = Gen::random(rng, finite);
        let (reference, off) = gen.buffer(rng, n);
        let r = &reference[off..off + n];
        let approx: Vec<f32> = match rng.below(3) {
            0 => r.to_vec(),
            1 => r.iter().map(|&v| v + (rng.normal() * 0.01) as f32 * gen.scale).collect(),
            _ => {
                let extra = rng.below(3);
                Gen::random(rng, true).values(rng, n + extra)
            }
        };
        let a = &approx[..approx.len() - rng.below(2).min(approx.len())];
        check("metric_sums", b, &(n, off, gen), &scalar::metric_sums(r, a), &(k.metric_sums)(r, a));
    });
}

#[test]
fn dot_f32() {
    each_len_case(15, |rng, b, k, n| {
        let finite = rng.chance(0.8);
        let (x, xo) = Gen::random(rng, finite).buffer(rng, n);
        let (y, yo) = Gen::random(rng, true).buffer(rng, n);
        let (x, y) = (&x[xo..xo + n], &y[yo..yo + n - rng.below(2).min(n)]);
        check("dot_f32", b, &(n, xo, yo), &scalar::dot_f32(x, y), &(k.dot_f32)(x, y));
    });
}

#[test]
fn dot_codes_i8() {
    each_len_case(16, |rng, b, k, n| {
        let off = rng.below(64);
        let w: Vec<i8> =
            (0..off + n).map(|_| if rng.chance(0.8) { rng.range(-1, 2) as i8 } else { rng.u32() as i8 }).collect();
        let x: Vec<i8> = random_bytes(rng, n + 5).into_iter().map(|v| v as i8).collect();
        let (w, x) = (&w[off..], &x[..n + rng.below(5)]);
        check("dot_codes_i8", b, &(n, off), &scalar::dot_codes_i8(w, x), &(k.dot_codes_i8)(w, x));
    });
    // Long extreme inputs, past the point where an i32 accumulator would overflow.
    for (b, k) in backends() {
        for (wv, xv) in [(-128i8, -128i8), (127, -128), (-128, 127)] {
            let n = 1_100_037;
            let (w, x) = (vec![wv; n], vec![xv; n]);
            check("dot_codes_i8 (long)", b, &(wv, xv), &scalar::dot_codes_i8(&w, &x), &(k.dot_codes_i8)(&w, &x));
        }
    }
}

/// Activations for the TQ2_0 products: random Q8_K blocks, or (half the time) blocks with
/// consistent bsums, quantized from data.
fn q8_k_activations(rng: &mut Rng, count: usize) -> Vec<BlockQ8K> {
    if rng.chance(0.5) {
        return q8_k_blocks(rng, count);
    }
    let data = Gen::random(rng, true).values(rng, count * QK_K);
    let mut x = vec![BlockQ8K::default(); count];
    scalar::quantize_q8_k(&data, &mut x);
    x
}

#[test]
fn dot_tq2_0_q8_k() {
    each_case(17, |rng, b, k| {
        let count = rng.below(21);
        let w = tq2_blocks(rng, count + 1);
        let x = q8_k_activations(rng, count);
        let woff = rng.below(2);
        let w = &w[woff..woff + count - rng.below(2).min(count)];
        check("dot_tq2_0_q8_k", b, &(count, woff), &scalar::dot_tq2_0_q8_k(w, &x), &(k.dot_tq2_0_q8_k)(w, &x));
    });
}

/// GEMVs of a few rows of a few blocks (none included), with activations from random
/// blocks and from quantized data: each row as the spec's dot product.
#[test]
fn gemv_tq2_0_q8_k() {
    each_case(29, |rng, b, k| {
        let (rows, per_row) = (rng.below(5), rng.below(4));
        let w = tq2_blocks(rng, rows * per_row);
        let x = q8_k_activations(rng, per_row);
        let (mut want, mut got) = (vec![f32::NAN; rows], vec![f32::NAN; rows]);
        scalar::gemv_tq2_0_q8_k(&w, &x, &mut want);
        (k.gemv_tq2_0_q8_k)(&w, &x, &mut got);
        for (r, row) in w.chunks(per_row.max(1)).enumerate().take(rows) {
            let dot = if per_row == 0 { 0.0 } else { scalar::dot_tq2_0_q8_k(row, &x) };
            assert_eq!(want[r].to_bits(), dot.to_bits(), "the spec's GEMV, row {r}");
        }
        check("gemv_tq2_0_q8_k", b, &(rows, per_row), &want[..], &got[..]);
    });
}

/// TQ2_0 blocks without the code 3, a quarter of them all q = -1 and a quarter all
/// q = +1: with activations of one extreme value throughout, those take the lookup
/// kernels' i8 and i16 sums to their bounds.
fn tq2_blocks_without_code_3(rng: &mut Rng, n: usize) -> Vec<BlockTq2_0> {
    let mut blocks = tq2_blocks(rng, n);
    for block in &mut blocks {
        match rng.below(4) {
            0 => block.qs = [0x00; 64],
            1 => block.qs = [0xAA; 64],
            _ => block.qs.iter_mut().for_each(|byte| *byte &= !((*byte & (*byte >> 1) & 0x55) << 1)),
        }
    }
    blocks
}

/// Q8_K activations, some blocks all -128 or all 127, with bsums that are the sums of
/// their values (which the row kernels read and the interleaved ones do not).
fn q8_k_extreme_activations(rng: &mut Rng, count: usize) -> Vec<BlockQ8K> {
    let mut x = q8_k_activations(rng, count);
    for block in &mut x {
        match rng.below(4) {
            0 => block.qs = [-128; QK_K],
            1 => block.qs = [127; QK_K],
            _ => {}
        }
        for (s, q) in block.bsums.iter_mut().zip(block.qs.chunks_exact(16)) {
            *s = q.iter().map(|&v| v as i16).sum();
        }
    }
    x
}

/// The interleaved GEMV's spec gives the row GEMV's results, bit for bit, on the rows of
/// whole groups; interleaving refuses the code 3.
#[test]
fn interleaved_gemv_spec_is_the_row_gemv() {
    let mut rng = Rng::new(31);
    for _ in 0..60 {
        let (rows, per_row) = (rng.below(40), rng.below(3));
        let w = tq2_blocks_without_code_3(&mut rng, rows * per_row);
        let x = q8_k_extreme_activations(&mut rng, per_row);
        let interleaved = interleave_rows(&w, per_row).expect("no code 3");
        let grouped = if per_row == 0 { 0 } else { rows / 16 * 16 };
        assert_eq!(interleaved.len(), grouped / 16 * per_row);
        let (mut want, mut got) = (vec![f32::NAN; grouped], vec![f32::NAN; grouped]);
        scalar::gemv_tq2_0_q8_k(&w[..grouped * per_row], &x, &mut want);
        scalar::gemv_tq2_0x16_q8_k(&interleaved, &x, &mut got);
        check("gemv_tq2_0x16_q8_k (spec)", Backend::Scalar, &(rows, per_row), &want[..], &got[..]);
        if rows >= 16 && per_row > 0 {
            let mut with_3 = w.clone();
            let (b, j) = (rng.below(16 * per_row), rng.below(64));
            with_3[b].qs[j] |= 3 << (2 * rng.below(4));
            assert!(interleave_rows(&with_3, per_row).is_none(), "a code 3 at block {b}, byte {j}");
        }
    }
}

/// Each backend's interleaved GEMV against the spec, on groups of rows of a few blocks
/// with random activations (bsums unrelated to the values) or extreme ones.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[test]
fn gemv_tq2_0x16_q8_k() {
    each_case(37, |rng, b, k| {
        let (groups, per_row) = (rng.below(3), rng.below(4));
        let w = tq2_blocks_without_code_3(rng, 16 * groups * per_row);
        let x = if rng.chance(0.5) { q8_k_blocks(rng, per_row) } else { q8_k_extreme_activations(rng, per_row) };
        let w = interleave_rows(&w, per_row).expect("no code 3");
        check_kernel!(gemv_tq2_0x16_q8_k, b, k, &(groups, per_row), vec![f32::NAN; 16 * groups], (&w, &x));
    });
}

/// `trunc(v + copysign(0.49999997, v))`, the SIMD form of round half away from zero.
fn round_by_bias(v: f32) -> f32 {
    (v + 0.499_999_97f32.copysign(v)).trunc()
}

#[test]
fn round_bias_equals_round_half_away() {
    assert_eq!(0.499_999_97f32.to_bits(), 0.5f32.to_bits() - 1);
    let named =
        [2.5f32, -2.5, 0.5, -0.5, 1.5, -1.5, 0.499_999_97, -0.499_999_97, 511.5, -511.5, 127.5, 126.5, 0.0, -0.0];
    let mut values: Vec<f32> = named.to_vec();
    // Every tie k + 0.5 up to 512, and its neighbours.
    for k in -513..=512 {
        let t = k as f32 + 0.5;
        for d in -3i32..=3 {
            values.push(f32::from_bits((t.to_bits() as i32 + d) as u32));
        }
    }
    // Every f32 around +-0.5 and +-1.5, where the bias matters most.
    for c in [0.5f32, 1.5, 2.5] {
        let lo = (c - 0.01).to_bits();
        let hi = (c + 0.01).to_bits();
        for bits in lo..=hi {
            values.push(f32::from_bits(bits));
            values.push(-f32::from_bits(bits));
        }
    }
    let mut rng = Rng::new(99);
    for _ in 0..1_000_000 {
        values.push(((rng.unit() * 2.0 - 1.0) * 512.0) as f32);
        let tiny = f32::from_bits(rng.u32() & 0x3fff_ffff);
        values.push(tiny * rng.sign());
    }
    for v in values.into_iter().filter(|v| v.abs() <= 512.0) {
        assert_eq!(round_by_bias(v).to_bits(), v.round().to_bits(), "v = {v:e} ({:#x})", v.to_bits());
    }
}

/// A deliberately wrong kernel: round half to even, as `_MM_FROUND_TO_NEAREST_INT` does.
fn quantize_i8_half_even(x: &[f32], id: f32, clip: f32, out: &mut [i8]) {
    for (o, &v) in out.iter_mut().zip(x) {
        *o = (v.clamp(-clip, clip) * id).clamp(-127.0, 127.0).round_ties_even() as i8;
    }
}

/// A deliberately wrong sum: 8 lanes instead of 16.
fn abs_sum_8_lanes(x: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    for (i, v) in x.iter().enumerate() {
        lanes[i % 8] += v.abs() as f64;
    }
    lanes.iter().sum()
}

#[test]
fn the_comparison_catches_wrong_kernels() {
    let mut rng = Rng::new(21);
    let d = 0.25f32;
    let x = Gen::ties(d, 130).values(&mut rng, 1000);
    let (mut want, mut got) = (vec![0i8; x.len()], vec![0i8; x.len()]);
    scalar::quantize_i8_symmetric(&x, 1.0 / d, f32::INFINITY, &mut want);
    quantize_i8_half_even(&x, 1.0 / d, f32::INFINITY, &mut got);
    let found = want[..].mismatch(&got[..]).expect("half-to-even rounding went unnoticed");
    assert!(found.starts_with("first difference at ["), "{found}");

    // f64 sums of f32 values of similar size are often exact in any order. After 2^54
    // (f64 ulp 4), each small value added to its lane rounds, and which values share a
    // lane with it depends on the lane count.
    let x: Vec<f32> = (0..1000).map(|i| if i == 0 { 2f32.powi(54) } else { rng.unit() as f32 * 3.99 }).collect();
    assert!(!scalar::abs_sum(&x).same(&abs_sum_8_lanes(&x)), "a different summation order went unnoticed");

    // And the comparison itself: bits, not values.
    assert!(!0.0f32.same(&-0.0));
    assert!(f32::NAN.same(&-f32::NAN));
    assert!(!1.0f64.same(&(1.0 + f64::EPSILON)));
}

#[test]
fn clamp_ordered_is_f32_clamp_for_ordered_bounds() {
    let specials = [0.0, -0.0, 1.0, -1.0, 0.5, 127.0, -128.0, f32::MIN_POSITIVE, f32::MAX, f32::INFINITY];
    let mut rng = Rng::new(23);
    let mut values: Vec<f32> = specials.iter().flat_map(|&v| [v, -v]).collect();
    values.extend([f32::NAN, -f32::NAN]);
    values.extend((0..200).map(|_| (rng.normal() * 200.0) as f32));
    for &lo in &values {
        for &hi in values.iter().filter(|&&hi| lo <= hi) {
            for &v in &values {
                let (want, got) = (v.clamp(lo, hi), scalar::clamp_ordered(v, lo, hi));
                assert!(want.same(&got), "clamp({v}, {lo}, {hi}): {want} vs {got}");
            }
        }
    }
}

#[cfg(all(target_arch = "wasm32", target_feature = "simd128", not(feature = "relaxed-simd")))]
#[test]
fn simd128_builds_run_the_simd128_table() {
    assert!(Backend::Simd128.is_supported());
    assert!(!Backend::RelaxedSimd.is_supported());
    assert_eq!(Backend::best(), Backend::Simd128);
}

/// Relaxed builds run the relaxed table and keep the SIMD128 one, so the differential
/// tests compare both with the spec.
#[cfg(all(target_arch = "wasm32", target_feature = "simd128", feature = "relaxed-simd"))]
#[test]
fn relaxed_builds_run_the_relaxed_table() {
    assert!(Backend::Simd128.is_supported());
    assert_eq!(Backend::best(), Backend::RelaxedSimd);
    assert!(backends().iter().any(|&(b, _)| b == Backend::RelaxedSimd));
    let relaxed = Backend::RelaxedSimd.kernels().unwrap().dot_tq2_0_q8_k as usize;
    assert_ne!(relaxed, Backend::Simd128.kernels().unwrap().dot_tq2_0_q8_k as usize);
}

/// f32 to f16 gives the spec's bits on every backend, NaNs included: every f16 value and
/// the midpoints around it (ties round to even), every exponent with random mantissas,
/// every offset and tail.
#[test]
fn f32_to_f16_rounds_as_the_spec() {
    let mut rng = Rng::new(17);
    let mut values: Vec<f32> = Vec::new();
    for h in 0..=u16::MAX {
        let f = half::f16::from_bits(h).to_f32();
        let bits = f.to_bits();
        values.extend([f, f32::from_bits(bits.wrapping_add(1)), f32::from_bits(bits.wrapping_sub(1))]);
        // The midpoint to the next half up, and its neighbours.
        let mid = f32::from_bits(bits.wrapping_add(1 << 12));
        values.extend([mid, f32::from_bits(mid.to_bits() + 1), f32::from_bits(mid.to_bits() - 1)]);
    }
    for e in 0..256u32 {
        for _ in 0..64 {
            values.push(f32::from_bits((rng.u32() & 0x807f_ffff) | (e << 23)));
        }
    }
    values.extend([65504.0, 65519.99, 65520.0, 65536.0, f32::MAX, f32::INFINITY, f32::NAN, -f32::NAN]);
    values.extend([f32::from_bits(0x7f80_0001), f32::from_bits(0xffc0_1234), 5.960_464_5e-8, 2.980_232_2e-8]);
    let mut want = vec![0u16; values.len()];
    scalar::f32_to_f16(&values, &mut want);
    for (b, k) in backends() {
        let mut got = vec![0u16; values.len()];
        (k.f32_to_f16)(&values, &mut got);
        for (v, (w, g)) in values.iter().zip(want.iter().zip(&got)) {
            assert_eq!(w, g, "{b}: f32 {:#010x}", v.to_bits());
        }
        for off in 0..9 {
            let n = values.len() - off - rng.below(20);
            check_kernel!(f32_to_f16, b, k, &(off, n), vec![7u16; n], (&values[off..off + n]));
        }
    }
}

/// f16 to f32 keeps every bit, NaN payloads included, on every backend: the conversion
/// is exact and no arithmetic touches a NaN.
#[test]
fn f16_to_f32_keeps_nan_payloads() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let mut want = vec![0f32; all.len()];
    scalar::f16_to_f32(&all, &mut want);
    for (b, k) in backends() {
        let mut got = vec![0f32; all.len()];
        (k.f16_to_f32)(&all, &mut got);
        for (h, (w, g)) in all.iter().zip(want.iter().zip(&got)) {
            assert_eq!(w.to_bits(), g.to_bits(), "{b}: f16 {h:#06x}");
        }
    }
}

/// The scalar spec's fast rounding is `f32::round` (half away from zero) after the clamp:
/// on every value within 64 ulps of each integer and each tie k + 0.5 up to 129, both
/// signs, on every 97th bit pattern up to 256, on random bit patterns, and on NaN,
/// infinities, zeros and subnormals.
#[test]
fn round_away_i8_is_round_half_away_after_the_clamp() {
    let definition = |v: f32| if v.is_nan() { 0 } else { v.clamp(-127.0, 127.0).round() as i8 };
    let mut values = vec![f32::NAN, -f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e-45, -1e-45];
    for half_steps in 0..=258u32 {
        let centre = half_steps as f32 * 0.5;
        for ulps in -64i32..=64 {
            let v = f32::from_bits(centre.to_bits().wrapping_add_signed(ulps));
            if v.is_finite() {
                values.extend([v, -v]);
            }
        }
    }
    let mut rng = Rng::new(31);
    values.extend((0..200_000).map(|_| f32::from_bits(rng.u32())));
    values.extend((0..200_000).map(|_| (rng.u32() as f32 / u32::MAX as f32 - 0.5) * 300.0));
    // Every 97th bit pattern from 2^-20 to 256, both signs, checked as generated (a list
    // of them would take 90 MB, which the wasm test runs would have to grow memory for).
    let every_97th = (2f32.powi(-20).to_bits()..256f32.to_bits()).step_by(97).map(f32::from_bits);
    for v in values.into_iter().chain(every_97th.flat_map(|v| [v, -v])) {
        assert_eq!(scalar::round_away_i8(v), definition(v), "{v:e} ({:#010x})", v.to_bits());
    }
}

/// The scalar spec's `abs_max` is the fold of `f32::max` over |x| (which passes over NaN)
/// on every length up to 40 with NaN, infinities and signed zeros mixed in.
#[test]
fn abs_max_is_the_max_of_the_magnitudes() {
    let mut rng = Rng::new(32);
    let specials = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -0.0, 0.0, 1e-40, -3.5];
    for n in 0..=40 {
        for _ in 0..200 {
            let x: Vec<f32> = (0..n)
                .map(|_| match rng.below(4) {
                    0 => specials[rng.below(specials.len())],
                    _ => (rng.u32() as f32 / u32::MAX as f32 - 0.5) * 8.0,
                })
                .collect();
            let definition = x.iter().fold(0f32, |m, &v| m.max(v.abs()));
            assert_eq!(scalar::abs_max(&x).to_bits(), definition.to_bits(), "{x:?}");
        }
    }
}
