//! Properties over random inputs:
//! - codes -> layout -> codes is the identity for every layout, scope and allowed shape;
//! - what absmean and absmax recover from weights that are already ternary, g * q;
//! - every supported backend gives the bytes of `Backend::Scalar`, for every rule,
//!   scope and layout, over random lengths, unaligned starts, ties and signed zeros.

use half::f16;
use proptest::prelude::*;
use proptest::sample::select;
use ternary_quant::{
    quantize_int8, quantize_ternary, Backend, Int8Layout, Int8Options, Int8Tensor, ScaleRule, Scope, TernaryLayout,
    TernaryOptions, TernaryTensor,
};

/// Absmean and median scales are clamped to at least this (BitNet's 1e-5).
const MIN_SCALE: f32 = 1e-5;

// ------------------------------------------------------------------------------------
// Shapes and scopes each layout accepts.

/// (layout, rows, cols, scope): every combination `TernaryLayout::check` accepts, with
/// TQ rows a multiple of 256, bitnet-hf with the tensor scope, codes with any scope.
fn layout_shape() -> impl Strategy<Value = (TernaryLayout, usize, usize, Scope)> {
    let tq = (select(vec![TernaryLayout::Tq2_0, TernaryLayout::Tq1_0]), 1usize..=3, 1usize..=3).prop_flat_map(
        |(layout, rows, blocks)| {
            let cols = 256 * blocks;
            select(vec![Scope::Tensor, Scope::Row, Scope::Block(256)]).prop_map(move |s| (layout, rows, cols, s))
        },
    );
    let bitnet =
        (1usize..=13, 1usize..=40).prop_map(|(rows, cols)| (TernaryLayout::BitnetHf, rows, cols, Scope::Tensor));
    let codes = (1usize..=6, 1usize..=70).prop_flat_map(|(rows, cols)| {
        let mut scopes = vec![Scope::Tensor, Scope::Row];
        scopes.extend((1..=cols).filter(|n| cols % n == 0).map(Scope::Block));
        select(scopes).prop_map(move |s| (TernaryLayout::Codes, rows, cols, s))
    });
    prop_oneof![2 => tq, 1 => bitnet, 2 => codes]
}

/// (layout, rows, cols, Scope::Block(n)): the block-scope subset of [`layout_shape`].
fn block_layout_shape() -> impl Strategy<Value = (TernaryLayout, usize, usize, Scope)> {
    let tq = (select(vec![TernaryLayout::Tq2_0, TernaryLayout::Tq1_0]), 1usize..=3, 1usize..=3)
        .prop_map(|(layout, rows, blocks)| (layout, rows, 256 * blocks, Scope::Block(256)));
    let codes = (1usize..=6, 1usize..=70).prop_flat_map(|(rows, cols)| {
        let sizes: Vec<usize> = (1..=cols).filter(|n| cols % n == 0).collect();
        select(sizes).prop_map(move |n| (TernaryLayout::Codes, rows, cols, Scope::Block(n)))
    });
    prop_oneof![tq, codes]
}

fn scope_count(scope: Scope, rows: usize, cols: usize) -> usize {
    match scope {
        Scope::Tensor => 1,
        Scope::Row => rows,
        Scope::Block(n) => rows * cols / n,
    }
}

fn scope_span(scope: Scope, rows: usize, cols: usize) -> usize {
    match scope {
        Scope::Tensor => rows * cols,
        Scope::Row => cols,
        Scope::Block(n) => n,
    }
}

/// Ternary codes where `zeros` in 0..=5 sets how many are zero: none at 0, all at 5.
fn codes_vec(len: usize) -> impl Strategy<Value = Vec<i8>> {
    (0u8..=5, prop::collection::vec(any::<u8>(), len)).prop_map(|(zeros, raw)| {
        raw.into_iter()
            .map(|r| {
                if r % 5 < zeros {
                    0
                } else if r & 0x80 != 0 {
                    1
                } else {
                    -1
                }
            })
            .collect()
    })
}

/// A positive f16 normal value, as f32: exactly what the TQ layouts store.
fn f16_exact_positive() -> impl Strategy<Value = f32> {
    (1u16..=30, 0u16..1024).prop_map(|(exp, mant)| f16::from_bits((exp << 10) | mant).to_f32())
}

/// log-uniform positive f32 in [lo, hi].
fn log_uniform(lo: f32, hi: f32) -> impl Strategy<Value = f32> {
    (lo.ln()..=hi.ln()).prop_map(move |l| l.exp().clamp(lo, hi))
}

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

fn f16_round(x: f32) -> f32 {
    f16::from_f32(x).to_f32()
}

// ------------------------------------------------------------------------------------
// codes -> layout -> codes

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Packing codes into any layout and reading them back gives the codes; the bytes
    /// have the layout's length; the bytes read back through `from_bytes` give the same
    /// tensor; and `dequantize` is code * scale of the value's scope.
    #[test]
    fn codes_round_trip_through_every_layout(
        (layout, rows, cols, scope, codes, scales) in layout_shape().prop_flat_map(|(layout, rows, cols, scope)| {
            let count = scope_count(scope, rows, cols);
            (
                Just(layout), Just(rows), Just(cols), Just(scope),
                codes_vec(rows * cols),
                prop::collection::vec(prop_oneof![Just(0.0f32), -1e4f32..1e4], count),
            )
        })
    ) {
        let t = TernaryTensor::from_codes(&codes, rows, cols, layout, scope, &scales).unwrap();
        prop_assert_eq!(t.codes(), codes.clone());
        prop_assert_eq!(t.bytes.len(), layout.data_bytes(rows, cols).unwrap());
        prop_assert_eq!(t.scales.len(), scales.len());
        let stored: Vec<f32> = match layout {
            TernaryLayout::Tq2_0 | TernaryLayout::Tq1_0 => scales.iter().map(|&s| f16_round(s)).collect(),
            _ => scales.clone(),
        };
        prop_assert!(same_bits(&t.scales, &stored), "scales {:?} vs {:?}", t.scales, stored);

        let side = match layout {
            TernaryLayout::Tq2_0 | TernaryLayout::Tq1_0 => None,
            _ => Some(scales.as_slice()),
        };
        let back = TernaryTensor::from_bytes(t.bytes.clone(), rows, cols, layout, scope, side).unwrap();
        prop_assert_eq!(back.codes(), codes.clone());
        prop_assert_eq!(&back.bytes, &t.bytes);
        prop_assert!(same_bits(&back.scales, &t.scales));

        let span = scope_span(scope, rows, cols);
        let expected: Vec<f32> = codes.iter().enumerate().map(|(i, &q)| q as f32 * stored[i / span]).collect();
        prop_assert!(same_bits(&t.dequantize(), &expected));
    }
}

// ------------------------------------------------------------------------------------
// Weights that are already ternary: w = g * q.
//
// absmean: s = max(mean|w|, 1e-5) = max(g * f, 1e-5) where f is the fraction of nonzero
// codes of the scope. For g >= 1e-5, s <= g, so |w / s| = g / s >= 1 for every nonzero q
// (it rounds and clamps back to +-1) and 0 stays 0: the codes come back exactly, whatever
// f is. The scale is g exactly only when every code of the scope is nonzero (f = 1, and
// the f64 sum n * g divided by n is exact); with some zeros it is strictly below g (for
// scopes under 2^23 values, where g * (n - 1) / n cannot round up to g), and an all-zero
// scope gets scale 0. For g <= 4e-6 the clamp wins, s = 1e-5, and |w / s| <= 0.4 rounds
// every code to 0.
//
// absmax: d = max|w| = g for any scope holding a nonzero code, and g * (1/g) rounds to 1,
// so codes and g come back exactly (the TQ layouts store f16(g), which is g when g is an
// f16 value), and the dequantized weights are w bit for bit.

fn ternary_weights(codes: &[i8], g: f32) -> Vec<f32> {
    codes.iter().map(|&q| q as f32 * g).collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn absmean_recovers_ternary_codes_and_the_scale_only_when_dense(
        (layout, rows, cols, scope, codes) in layout_shape().prop_flat_map(|(layout, rows, cols, scope)| {
            (Just(layout), Just(rows), Just(cols), Just(scope), codes_vec(rows * cols))
        }),
        g in log_uniform(2e-5, 1e4),
        backend in select(Backend::supported()),
    ) {
        let w = ternary_weights(&codes, g);
        let opts = TernaryOptions { layout, rule: ScaleRule::AbsMean, scope, backend };
        let t = quantize_ternary(&w, rows, cols, &opts).unwrap();
        prop_assert_eq!(t.codes(), codes.clone());

        let span = scope_span(scope, rows, cols);
        for (s, (scale, scope_codes)) in t.scales.iter().zip(codes.chunks(span)).enumerate() {
            let nonzero = scope_codes.iter().filter(|&&q| q != 0).count();
            // The TQ layouts store the scale as f16; compare with the f16 of the facts.
            let stored = |x: f32| match layout {
                TernaryLayout::Tq2_0 | TernaryLayout::Tq1_0 => f16_round(x),
                _ => x,
            };
            if nonzero == 0 {
                prop_assert_eq!(*scale, 0.0, "scope {}: all-zero scope", s);
            } else if nonzero == scope_codes.len() {
                prop_assert_eq!(*scale, stored(g), "scope {}: every code nonzero", s);
            } else {
                let expected = (g as f64 * nonzero as f64 / scope_codes.len() as f64) as f32;
                let expected = expected.max(MIN_SCALE);
                prop_assert!(expected < g);
                prop_assert_eq!(*scale, stored(expected), "scope {}: {} of {} nonzero", s, nonzero, scope_codes.len());
                if !matches!(layout, TernaryLayout::Tq2_0 | TernaryLayout::Tq1_0) {
                    prop_assert!(*scale < g);
                }
            }
        }
    }

    #[test]
    fn absmean_zeroes_weights_below_the_scale_clamp(
        (layout, rows, cols, scope, codes) in layout_shape().prop_flat_map(|(layout, rows, cols, scope)| {
            (Just(layout), Just(rows), Just(cols), Just(scope), codes_vec(rows * cols))
        }),
        g in log_uniform(1e-9, 4e-6),
    ) {
        let w = ternary_weights(&codes, g);
        let opts = TernaryOptions { layout, rule: ScaleRule::AbsMean, scope, backend: Backend::Scalar };
        let t = quantize_ternary(&w, rows, cols, &opts).unwrap();
        prop_assert!(t.codes().iter().all(|&q| q == 0));
        let span = scope_span(scope, rows, cols);
        for (scale, scope_codes) in t.scales.iter().zip(codes.chunks(span)) {
            let expected = if scope_codes.iter().all(|&q| q == 0) { 0.0 } else { MIN_SCALE };
            let expected = match layout {
                TernaryLayout::Tq2_0 | TernaryLayout::Tq1_0 => f16_round(expected),
                _ => expected,
            };
            prop_assert_eq!(*scale, expected);
        }
    }

    /// Absmax per block (any block size for the codes layout, 256 for TQ) with one g per
    /// block gives back the codes, each block's g and the weights bit for bit.
    #[test]
    fn absmax_per_block_recovers_codes_and_scales_exactly(
        (layout, rows, cols, scope, codes, gs) in block_layout_shape()
            .prop_flat_map(|(layout, rows, cols, scope)| {
                let count = scope_count(scope, rows, cols);
                (Just(layout), Just(rows), Just(cols), Just(scope), codes_vec(rows * cols),
                 prop::collection::vec(f16_exact_positive(), count))
            }),
        backend in select(Backend::supported()),
    ) {
        let span = scope_span(scope, rows, cols);
        let w: Vec<f32> = codes.iter().enumerate().map(|(i, &q)| q as f32 * gs[i / span]).collect();
        let opts = TernaryOptions { layout, rule: ScaleRule::AbsMax, scope, backend };
        let t = quantize_ternary(&w, rows, cols, &opts).unwrap();
        prop_assert_eq!(t.codes(), codes.clone());
        for (b, (scale, block)) in t.scales.iter().zip(codes.chunks(span)).enumerate() {
            let expected = if block.iter().all(|&q| q == 0) { 0.0 } else { gs[b] };
            prop_assert_eq!(*scale, expected, "block {}", b);
        }
        prop_assert!(same_bits(&t.dequantize(), &w));
    }

    /// The same for one g over a tensor or a row, in every layout (bitnet-hf included).
    #[test]
    fn absmax_recovers_a_single_scale_in_every_layout(
        (layout, rows, cols, scope, codes) in layout_shape().prop_flat_map(|(layout, rows, cols, scope)| {
            (Just(layout), Just(rows), Just(cols), Just(scope), codes_vec(rows * cols))
        }),
        g in f16_exact_positive(),
        backend in select(Backend::supported()),
    ) {
        let w = ternary_weights(&codes, g);
        let opts = TernaryOptions { layout, rule: ScaleRule::AbsMax, scope, backend };
        let t = quantize_ternary(&w, rows, cols, &opts).unwrap();
        prop_assert_eq!(t.codes(), codes);
        prop_assert!(same_bits(&t.dequantize(), &w));
    }
}

// ------------------------------------------------------------------------------------
// Every backend equals scalar.

/// Values that stress the kernels: ordinary ones, signed zeros, exact ties at several
/// scales (k/2 and k/2 * 2^e), denormals, large values and one-ulp neighbours of ties.
fn value() -> impl Strategy<Value = f32> {
    prop_oneof![
        6 => -10.0f32..10.0,
        1 => Just(0.0f32),
        1 => Just(-0.0f32),
        2 => (-8i32..=8).prop_map(|k| k as f32 * 0.5),
        2 => (-254i32..=254, -20i32..=20).prop_map(|(k, e)| k as f32 * 0.5 * 2f32.powi(e)),
        1 => (-254i32..=254).prop_map(|k| {
            let v = k as f32 * 0.5;
            f32::from_bits(v.to_bits() + 1)
        }),
        1 => prop::num::f32::SUBNORMAL,
        1 => prop::num::f32::NORMAL,
    ]
}

fn data(len: usize) -> impl Strategy<Value = (Vec<f32>, usize)> {
    (0usize..64).prop_flat_map(move |offset| (prop::collection::vec(value(), offset + len), Just(offset)))
}

fn assert_ternary_same(
    a: &Result<TernaryTensor, ternary_quant::Error>,
    b: &Result<TernaryTensor, ternary_quant::Error>,
) -> Result<(), TestCaseError> {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            prop_assert_eq!(&a.bytes, &b.bytes);
            prop_assert!(same_bits(&a.scales, &b.scales), "scales {:?} vs {:?}", a.scales, b.scales);
            prop_assert_eq!((a.rows, a.cols, a.layout, a.scope), (b.rows, b.cols, b.layout, b.scope));
        }
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        _ => prop_assert!(false, "one backend failed: {:?} vs {:?}", a.as_ref().err(), b.as_ref().err()),
    }
    Ok(())
}

fn assert_int8_same(
    a: &Result<Int8Tensor, ternary_quant::Error>,
    b: &Result<Int8Tensor, ternary_quant::Error>,
) -> Result<(), TestCaseError> {
    match (a, b) {
        (Ok(a), Ok(b)) => {
            prop_assert_eq!(&a.bytes, &b.bytes);
            prop_assert_eq!(&a.values, &b.values);
            prop_assert!(same_bits(&a.scales, &b.scales), "scales {:?} vs {:?}", a.scales, b.scales);
            prop_assert_eq!(&a.zero_points, &b.zero_points);
        }
        (Err(a), Err(b)) => prop_assert_eq!(a, b),
        _ => prop_assert!(false, "one backend failed: {:?} vs {:?}", a.as_ref().err(), b.as_ref().err()),
    }
    Ok(())
}

/// Ternary shapes for the backend comparison: the layout shapes above plus longer rows.
fn ternary_case() -> impl Strategy<Value = (TernaryLayout, usize, usize, Scope)> {
    let long = (1usize..=4, 1usize..=1100).prop_flat_map(|(rows, cols)| {
        let mut scopes = vec![Scope::Tensor, Scope::Row];
        scopes.extend((1..=cols).filter(|n| cols % n == 0).map(Scope::Block));
        (select(vec![TernaryLayout::Codes, TernaryLayout::BitnetHf]), select(scopes)).prop_map(move |(layout, s)| {
            let s = if layout == TernaryLayout::BitnetHf { Scope::Tensor } else { s };
            (layout, rows, cols, s)
        })
    });
    prop_oneof![layout_shape(), long]
}

fn int8_case() -> impl Strategy<Value = (Int8Options, usize, usize)> {
    let plain = (1usize..=4, 1usize..=1100).prop_flat_map(|(rows, cols)| {
        let mut scopes = vec![Scope::Tensor, Scope::Row];
        scopes.extend((1..=cols).filter(|n| cols % n == 0).map(Scope::Block));
        let clipping = prop_oneof![
            Just((None, None)),
            (0.01f32..20.0).prop_map(|c| (Some(c), None)),
            (0.5f32..=100.0).prop_map(|p| (None, Some(p))),
        ];
        (select(scopes), any::<bool>(), clipping).prop_map(move |(scope, symmetric, (clip, percentile))| {
            let opts =
                Int8Options { layout: Int8Layout::Plain, scope, symmetric, clip, percentile, backend: Backend::Scalar };
            (opts, rows, cols)
        })
    });
    let blocks = (select(vec![(Int8Layout::Q8_0, 32usize), (Int8Layout::Q8K, 256)]), 1usize..=4, 1usize..=8).prop_map(
        |((layout, block), rows, blocks)| {
            let opts = Int8Options {
                layout,
                scope: Scope::Block(block),
                symmetric: true,
                clip: None,
                percentile: None,
                backend: Backend::Scalar,
            };
            (opts, rows, block * blocks)
        },
    );
    prop_oneof![plain, blocks]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn every_backend_quantizes_ternary_as_scalar(
        ((layout, rows, cols, scope), (buf, offset)) in ternary_case().prop_flat_map(|case| (Just(case), data(case.1 * case.2))),
        rule in select(ScaleRule::ALL.to_vec()),
    ) {
        let x = &buf[offset..];
        let opts = TernaryOptions { layout, rule, scope, backend: Backend::Scalar };
        let scalar = quantize_ternary(x, rows, cols, &opts);
        prop_assert!(scalar.is_ok(), "{:?}", scalar);
        for backend in Backend::supported() {
            let other = quantize_ternary(x, rows, cols, &TernaryOptions { backend, ..opts });
            assert_ternary_same(&scalar, &other)?;
        }
    }

    #[test]
    fn every_backend_quantizes_int8_as_scalar(
        ((opts, rows, cols), (buf, offset)) in int8_case().prop_flat_map(|case| (Just(case), data(case.1 * case.2))),
    ) {
        let x = &buf[offset..];
        let scalar = quantize_int8(x, rows, cols, &opts);
        prop_assert!(scalar.is_ok(), "{:?}", scalar);
        for backend in Backend::supported() {
            let other = quantize_int8(x, rows, cols, &Int8Options { backend, ..opts });
            assert_int8_same(&scalar, &other)?;
        }
    }
}

#[test]
fn scalar_is_always_supported() {
    let supported = Backend::supported();
    assert_eq!(supported.first(), Some(&Backend::Scalar));
    assert!(supported.contains(&Backend::best()));
}

// ------------------------------------------------------------------------------------
// Int8: the dequantized values stay within one step of the (clipped) input.

fn int8_error_within_one_step(x: &[f32], rows: usize, cols: usize, opts: &Int8Options) -> Result<(), TestCaseError> {
    let t = quantize_int8(x, rows, cols, opts).unwrap();
    let deq = t.dequantize();
    let span = scope_span(opts.scope, rows, cols);
    for (i, (&v, &d)) in x.iter().zip(&deq).enumerate() {
        let scale = t.scales[i / span];
        prop_assert!(scale.is_finite() && d.is_finite(), "value {}: {} gives scale {} and {}", i, v, scale, d);
        let err = (v as f64 - d as f64).abs();
        prop_assert!(err <= scale as f64 * 1.000_001, "value {}: {} -> {} (scale {})", i, v, d, scale);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Symmetric and asymmetric int8 of values up to 1e30 in magnitude.
    #[test]
    fn int8_dequantizes_within_one_step(
        (rows, cols, scope, x) in (1usize..=4, 1usize..=300).prop_flat_map(|(rows, cols)| {
            let mut scopes = vec![Scope::Tensor, Scope::Row];
            scopes.extend((1..=cols).filter(|n| cols % n == 0).map(Scope::Block));
            let v = prop_oneof![4 => -10.0f32..10.0, 1 => -1e30f32..1e30, 1 => Just(-0.0f32)];
            (Just(rows), Just(cols), select(scopes), prop::collection::vec(v, rows * cols))
        }),
        symmetric in any::<bool>(),
    ) {
        let opts = Int8Options { layout: Int8Layout::Plain, scope, symmetric, clip: None, percentile: None, backend: Backend::Scalar };
        int8_error_within_one_step(&x, rows, cols, &opts)?;
    }

    /// The same near f32::MAX, where the asymmetric range max(x,0) - min(x,0) overflows f32.
    #[test]
    fn int8_asymmetric_handles_values_near_f32_max(
        x in prop::collection::vec(prop_oneof![Just(3.0e38f32), Just(-3.0e38f32), -1.0f32..1.0], 2..40),
    ) {
        let opts = Int8Options { layout: Int8Layout::Plain, scope: Scope::Tensor, symmetric: false, clip: None, percentile: None, backend: Backend::Scalar };
        int8_error_within_one_step(&x, 1, x.len(), &opts)?;
    }
}

// ------------------------------------------------------------------------------------
// Bytes read with a scope must agree with the scales they carry.

/// TQ bytes read back with the tensor scope keep only the first block's f16 scale in
/// `scales`, while `dequantize` uses every block's own scale, and the matrix-vector
/// product of TQ1_0 uses `scales`: the two disagree on the same tensor.
#[test]
fn tq_bytes_read_with_a_wide_scope_agree_with_their_blocks() {
    let w: Vec<f32> = (0..512).map(|i| if i < 256 { 1.0 } else { 2.0 }).collect();
    let opts = TernaryOptions {
        layout: TernaryLayout::Tq1_0,
        rule: ScaleRule::AbsMax,
        scope: Scope::Block(256),
        backend: Backend::Scalar,
    };
    let bytes = quantize_ternary(&w, 1, 512, &opts).unwrap().bytes;
    match TernaryTensor::from_bytes(bytes, 1, 512, TernaryLayout::Tq1_0, Scope::Tensor, None) {
        Err(_) => {} // rejecting blocks whose scales differ within one scope is fine
        Ok(t) => {
            let x = vec![1.0f32; 512];
            let y = ternary_quant::ternary_mat_vec(&t, &x, Backend::Scalar).unwrap();
            let reference: f32 = t.dequantize().iter().sum();
            assert_eq!(y, vec![reference], "scales {:?}", t.scales);
        }
    }
}
