//! The math of section 3 on small inputs whose answers can be worked out by hand.

use ternary_quant::*;

fn opts(layout: TernaryLayout, rule: ScaleRule, scope: Scope) -> TernaryOptions {
    TernaryOptions { layout, rule, scope, backend: Backend::Scalar }
}

#[test]
fn absmean_scale_codes_and_clamp() {
    // mean|w| = (0.1 + 0.2 + 0.3 + 1.4) / 4 = 0.5; w/g = 0.2, -0.4, 0.6, -2.8.
    let w = [0.1f32, -0.2, 0.3, -1.4];
    let t = quantize_ternary(&w, 1, 4, &opts(TernaryLayout::Codes, ScaleRule::AbsMean, Scope::Tensor)).unwrap();
    assert_eq!(t.scales, vec![0.5]);
    assert_eq!(t.codes(), vec![0, 0, 1, -1]);
    assert_eq!(t.dequantize(), vec![0.0, 0.0, 0.5, -0.5]);
    // Tiny weights: the scale is clamped to 1e-5.
    let w = [1e-7f32, -2e-6, 6e-6, 0.0];
    let t = quantize_ternary(&w, 1, 4, &opts(TernaryLayout::Codes, ScaleRule::AbsMean, Scope::Tensor)).unwrap();
    assert_eq!(t.scales, vec![1e-5]);
    assert_eq!(t.codes(), vec![0, 0, 1, 0]);
}

#[test]
fn ties_round_half_away_from_zero() {
    // g = mean(|0.5|, |-0.5|, |1|, |2|) = 1; 0.5 -> 1 and -0.5 -> -1 (away from zero).
    let w = [0.5f32, -0.5, 1.0, 2.0];
    let t = quantize_ternary(&w, 1, 4, &opts(TernaryLayout::Codes, ScaleRule::AbsMean, Scope::Tensor)).unwrap();
    assert_eq!(t.scales, vec![1.0]);
    assert_eq!(t.codes(), vec![1, -1, 1, 1]);
    // Just below the tie rounds to zero.
    let w = [0.49999997f32, -0.49999997, 1.0, 2.0 + 2.0 * 2.9802322e-8];
    let t = quantize_ternary(&w, 1, 4, &opts(TernaryLayout::Codes, ScaleRule::AbsMean, Scope::Tensor)).unwrap();
    assert_eq!(t.codes()[..2], [0, 0]);
}

#[test]
fn absmax_median_and_twn() {
    let w = [0.1f32, -0.2, 0.3, -0.4, 0.5, -0.6, 0.7, -0.8];
    let t = quantize_ternary(&w, 1, 8, &opts(TernaryLayout::Codes, ScaleRule::AbsMax, Scope::Tensor)).unwrap();
    assert_eq!(t.scales, vec![0.8]);
    // w / 0.8 = .125 .25 .375 .5 .625 .75 .875 1 (0.4 * (1/0.8) rounds up to 0.5 in f32)
    assert_eq!(t.codes(), vec![0, 0, 0, -1, 1, -1, 1, -1]);

    // median of |w| with an even count is the mean of the two middle values: (0.4+0.5)/2.
    let t = quantize_ternary(&w, 1, 8, &opts(TernaryLayout::Codes, ScaleRule::Median, Scope::Tensor)).unwrap();
    assert_eq!(t.scales, vec![0.45]);
    assert_eq!(t.codes(), vec![0, 0, 1, -1, 1, -1, 1, -1]);

    // TWN: t = 0.7 * 0.45 = 0.315; above it: 0.4..0.8 -> mean 0.6.
    let t = quantize_ternary(&w, 1, 8, &opts(TernaryLayout::Codes, ScaleRule::Twn, Scope::Tensor)).unwrap();
    assert_eq!(t.scales, vec![0.6]);
    assert_eq!(t.codes(), vec![0, 0, 0, -1, 1, -1, 1, -1]);
}

#[test]
fn all_zero_scopes_give_scale_zero_for_every_rule() {
    let mut w = vec![0f32; 512];
    w[300] = 1.0; // the second row is not all zero
    for rule in ScaleRule::ALL {
        let t = quantize_ternary(&w, 2, 256, &opts(TernaryLayout::Tq2_0, rule, Scope::Row)).unwrap();
        assert_eq!(t.scales[0], 0.0, "{rule:?}");
        assert!(t.scales[1] > 0.0, "{rule:?}");
        assert!(t.codes()[..256].iter().all(|&c| c == 0));
        assert_eq!(t.codes()[300], 1);
    }
}

#[test]
fn scopes_give_one_scale_each() {
    let w: Vec<f32> = (0..4 * 512).map(|i| ((i * 7919 % 1000) as f32 - 500.0) / 250.0).collect();
    let row = quantize_ternary(&w, 4, 512, &opts(TernaryLayout::Tq2_0, ScaleRule::AbsMean, Scope::Row)).unwrap();
    assert_eq!(row.scales.len(), 4);
    let block =
        quantize_ternary(&w, 4, 512, &opts(TernaryLayout::Tq2_0, ScaleRule::AbsMax, Scope::Block(256))).unwrap();
    assert_eq!(block.scales.len(), 8);
    let codes =
        quantize_ternary(&w, 4, 512, &opts(TernaryLayout::Codes, ScaleRule::AbsMean, Scope::Block(64))).unwrap();
    assert_eq!(codes.scales.len(), 32);
    assert_eq!(codes.stored_bytes(), 4 * 512 + 32 * 4);
    // Every block's scale is that block's mean |w|.
    for (b, s) in codes.scales.iter().enumerate() {
        let mean = w[b * 64..(b + 1) * 64].iter().map(|v| v.abs() as f64).sum::<f64>() / 64.0;
        assert!((*s as f64 - mean).abs() < 1e-6, "block {b}");
    }
}

#[test]
fn real_bytes_give_bits_per_weight() {
    let w = vec![0.25f32; 4096];
    let bpw = |layout, scope| quantize_ternary(&w, 4, 1024, &opts(layout, ScaleRule::AbsMean, scope)).unwrap();
    assert_eq!(bpw(TernaryLayout::Tq2_0, Scope::Tensor).bits_per_weight(), 2.0625);
    assert_eq!(bpw(TernaryLayout::Tq1_0, Scope::Tensor).bits_per_weight(), 1.6875);
    assert_eq!(bpw(TernaryLayout::I2S, Scope::Tensor).stored_bytes(), 4096 / 4 + 32);
    assert_eq!(bpw(TernaryLayout::BitnetHf, Scope::Tensor).stored_bytes(), 1024 + 4);
    assert_eq!(bpw(TernaryLayout::Codes, Scope::Row).stored_bytes(), 4096 + 16);
}

#[test]
fn int8_symmetric_asymmetric_clip_percentile() {
    let x = [-1.0f32, -0.5, 0.0, 0.25, 0.5, 1.27];
    let sym = quantize_int8(&x, 1, 6, &Int8Options { scope: Scope::Tensor, ..Default::default() }).unwrap();
    assert_eq!(sym.scales, vec![0.01]);
    assert_eq!(sym.values, vec![-100, -50, 0, 25, 50, 127]);

    // Asymmetric: range [-1, 1.27], scale 2.27/255, zero point round(1/scale) - 128.
    let asym =
        quantize_int8(&x, 1, 6, &Int8Options { scope: Scope::Tensor, symmetric: false, ..Default::default() }).unwrap();
    let scale = 2.27f32 / 255.0;
    assert_eq!(asym.scales, vec![scale]);
    let zp = (1.0f32 / scale).round() as i32 - 128;
    assert_eq!(asym.zero_points, vec![zp]);
    assert_eq!(asym.values[0], -128);
    assert_eq!(asym.values[5], 127);
    let back = asym.dequantize();
    for (a, b) in x.iter().zip(&back) {
        assert!((a - b).abs() <= scale / 2.0 + 1e-6, "{a} vs {b}");
    }

    // Clip at 0.5: larger values saturate.
    let clipped =
        quantize_int8(&x, 1, 6, &Int8Options { scope: Scope::Tensor, clip: Some(0.5), ..Default::default() }).unwrap();
    assert_eq!(clipped.values, vec![-127, -127, 0, 64, 127, 127]);

    // The 50th percentile of |x| (nearest rank: 3rd of 6 sorted = 0.5) is the clip bound.
    let pct =
        quantize_int8(&x, 1, 6, &Int8Options { scope: Scope::Tensor, percentile: Some(50.0), ..Default::default() })
            .unwrap();
    assert_eq!(pct.values, clipped.values);
}

#[test]
fn int8_per_row_and_block_scopes() {
    let x: Vec<f32> = (0..128).map(|i| (i as f32 - 64.0) / 8.0).collect();
    let row = quantize_int8(&x, 2, 64, &Int8Options::default()).unwrap();
    assert_eq!(row.scales.len(), 2);
    assert_eq!(row.scales[0], 8.0 / 127.0);
    let q8 = quantize_int8(
        &x,
        2,
        64,
        &Int8Options { layout: Int8Layout::Q8_0, scope: Scope::Block(32), ..Default::default() },
    )
    .unwrap();
    assert_eq!(q8.bytes.len(), 4 * 34);
    assert_eq!(q8.stored_bytes(), 136);
    let qk = quantize_int8(
        &[x.clone(), x.clone()].concat(),
        1,
        256,
        &Int8Options { layout: Int8Layout::Q8K, scope: Scope::Block(256), ..Default::default() },
    )
    .unwrap();
    assert_eq!(qk.bytes.len(), 292);
    // bsums: each group of 16 values' sum, stored after d and qs.
    let bsum0 = i16::from_le_bytes([qk.bytes[260], qk.bytes[261]]);
    assert_eq!(bsum0 as i32, qk.values[..16].iter().map(|&v| v as i32).sum::<i32>());
    let back = Int8Tensor::from_bytes(qk.bytes.clone(), 1, 256, Int8Layout::Q8K).unwrap();
    assert_eq!(back.values, qk.values);
    assert_eq!(back.dequantize(), qk.dequantize());
}

#[test]
fn metrics_by_hand() {
    let a = [1.0f32, 2.0, 3.0, 4.0];
    let b = [1.0f32, 2.0, 3.0, 2.0];
    let s = error_stats(&a, &b, Backend::Scalar).unwrap();
    assert_eq!(s.mse, 1.0);
    assert_eq!(s.rmse, 1.0);
    assert_eq!(s.max_abs_error, 2.0);
    assert!((s.snr_db - 10.0 * (30.0f64 / 4.0).log10()).abs() < 1e-12);
    assert!((s.cosine - 22.0 / (30.0f64.sqrt() * 18.0f64.sqrt())).abs() < 1e-12);
    let exact = error_stats(&a, &a, Backend::Scalar).unwrap();
    assert_eq!(exact.snr_db, f64::INFINITY);
    assert_eq!(exact.cosine, 1.0);
}

#[test]
fn gemv_equals_the_dequantized_product_within_int8_error() {
    let (rows, cols) = (48, 512);
    let w: Vec<f32> = (0..rows * cols).map(|i| (((i * 2654435761usize) % 2001) as f32 - 1000.0) / 997.0).collect();
    let x: Vec<f32> = (0..cols).map(|i| ((i * 40503 % 301) as f32 - 150.0) / 150.0).collect();
    for preset in PRESETS {
        for layout in TernaryLayout::ALL {
            let o = TernaryOptions { layout, ..preset.options() };
            let Ok(t) = quantize_ternary(&w, rows, cols, &o) else { continue };
            let y = ternary_mat_vec(&t, &x, Backend::Scalar).unwrap();
            let reference = mat_vec_f32(&t.dequantize(), rows, cols, &x, Backend::Scalar).unwrap();
            // x is rounded to int8: each |x_k - xq_k d_x| <= d_x / 2, so
            // |y - y_ref| <= sum_k |w_k| d_x / 2 (plus f32 rounding).
            let d_x = x.iter().fold(0f32, |m, v| m.max(v.abs())) / 127.0;
            for r in 0..rows {
                let wr = &t.dequantize()[r * cols..(r + 1) * cols];
                let bound = wr.iter().map(|v| v.abs()).sum::<f32>() * d_x / 2.0 * 1.01 + 1e-4;
                assert!((y[r] - reference[r]).abs() <= bound, "{} {layout}: row {r}", preset.name);
            }
        }
    }
}

#[test]
fn the_first_bad_value_is_named_for_every_rule_scope_and_backend() {
    // The tensor scope finds bad values through its reduction, the others scope by scope;
    // both must name the first bad index of the whole input, with later bad values too.
    // 12 x 512 values: more than the optimal rule's tensor scope counts before checking.
    let (rows, cols) = (12, 512);
    for backend in Backend::supported() {
        for rule in ScaleRule::ALL {
            for scope in [Scope::Tensor, Scope::Row, Scope::Block(256)] {
                let bad_values = [
                    (0, f32::NAN),
                    (511, f32::INFINITY),
                    (1300, f32::NEG_INFINITY),
                    (3071, f32::NAN),
                    (6143, -f32::NAN),
                ];
                for (first, bad) in bad_values {
                    let mut w: Vec<f32> = (0..rows * cols).map(|i| ((i * 31 % 17) as f32 - 8.0) / 8.0).collect();
                    w[first] = bad;
                    if first + 700 < w.len() {
                        w[first + 700] = f32::NAN;
                    }
                    let o = TernaryOptions { layout: TernaryLayout::Tq2_0, rule, scope, backend };
                    match quantize_ternary(&w, rows, cols, &o) {
                        Err(Error::NonFinite { index, .. }) => assert_eq!(index, first, "{backend} {rule:?} {scope:?}"),
                        other => panic!("{backend} {rule:?} {scope:?}: expected NonFinite at {first}, got {other:?}"),
                    }
                }
            }
        }
    }
}

/// A xorshift64 stream from `seed`.
fn xorshift(mut state: u64) -> impl FnMut() -> u64 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    }
}

/// The least squared error over codes in {-1, 0, 1}^n with the best real scale for
/// them, by trying every code vector: sum x^2 - (sum q x)^2 / (sum q^2).
fn brute_force_error(x: &[f32]) -> f64 {
    let n = x.len();
    let total: f64 = x.iter().map(|&v| f64::from(v) * f64::from(v)).sum();
    let mut best = total;
    for mut code in 0..3usize.pow(n as u32) {
        let (mut dot, mut count) = (0f64, 0f64);
        for &v in x {
            let q = (code % 3) as f64 - 1.0;
            code /= 3;
            dot += q * f64::from(v);
            count += q * q;
        }
        if count > 0.0 {
            best = best.min(total - dot * dot / count);
        }
    }
    best
}

fn squared_error(x: &[f32], approx: &[f32]) -> f64 {
    x.iter().zip(approx).map(|(&a, &b)| (f64::from(a) - f64::from(b)).powi(2)).sum()
}

/// The optimal rule reaches the least error of all 3^n code vectors (with a real scale)
/// on small inputs: random values, runs of equal magnitudes, zeros and sign mixes.
#[test]
fn optimal_rule_matches_brute_force() {
    let mut next = xorshift(0x2545_f491_4f6c_dd1d);
    let mut cases = 0;
    for n in 1..=8usize {
        for _ in 0..60 {
            let x: Vec<f32> = (0..n)
                .map(|_| {
                    let r = next();
                    match r % 4 {
                        // Few distinct magnitudes: long runs of ties.
                        0 => [0.0f32, 0.5, 1.0, 2.0][(r >> 8) as usize % 4] * if r & 0x100 != 0 { -1.0 } else { 1.0 },
                        _ => ((r >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0) as f32,
                    }
                })
                .collect();
            let t = quantize_ternary(&x, 1, n, &opts(TernaryLayout::Codes, ScaleRule::Optimal, Scope::Tensor)).unwrap();
            let got = squared_error(&x, &t.dequantize());
            let want = brute_force_error(&x);
            assert!(got <= want * (1.0 + 1e-6) + 1e-12, "{x:?}: optimal rule {got}, brute force {want}");
            cases += 1;
        }
    }
    assert_eq!(cases, 480);
}

/// With the scale stored as f16 (TQ2_0, one per block), the stored d is the best f16 for
/// the chosen codes (no neighbouring f16 value gives less error), and the rule beats
/// absmean's error on Gaussian weights by the margin the exact optimum gives.
#[test]
fn optimal_rule_with_f16_scales_and_its_gain() {
    // Gaussian weights.
    let w: Vec<f32> = ternary_quant::scheme::metrics::gaussian_probe(1 << 16).iter().map(|v| v * 0.05).collect();
    let t = quantize_ternary(&w, 256, 256, &opts(TernaryLayout::Tq2_0, ScaleRule::Optimal, Scope::Block(256))).unwrap();
    let codes = t.codes();
    for (b, (&d, (x, q))) in t.scales.iter().zip(w.chunks(256).zip(codes.chunks(256))).enumerate() {
        let err = |s: f32| -> f64 {
            x.iter().zip(q).map(|(&v, &c)| (f64::from(v) - f64::from(c) * f64::from(s)).powi(2)).sum()
        };
        let h = half::f16::from_f32(d);
        assert_eq!(h.to_f32(), d, "block {b}: the stored scale is an f16");
        for neighbour in [half::f16::from_bits(h.to_bits() + 1), half::f16::from_bits(h.to_bits() - 1)] {
            assert!(err(d) <= err(neighbour.to_f32()), "block {b}: f16 {} beats the stored {d}", neighbour);
        }
    }
    let snr = |rule| {
        let t = quantize_ternary(&w, 256, 256, &opts(TernaryLayout::Codes, rule, Scope::Tensor)).unwrap();
        error_stats(&w, &t.dequantize(), Backend::Scalar).unwrap().snr_db
    };
    let (optimal, absmean) = (snr(ScaleRule::Optimal), snr(ScaleRule::AbsMean));
    assert!(optimal - absmean >= 1.3, "Gaussian, tensor scope: optimal {optimal:.2} dB, absmean {absmean:.2} dB");
}

/// Weights that are already ternary (codes times one scale) come back exactly: the
/// codes, and the scale where the layout stores it exactly.
#[test]
fn optimal_rule_is_lossless_on_ternary_weights() {
    let codes: Vec<i8> = (0..1024u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 30) as i8 % 3 - 1).collect();
    let w: Vec<f32> = codes.iter().map(|&c| f32::from(c) * 0.0625).collect();
    for (layout, scope) in [
        (TernaryLayout::Codes, Scope::Tensor),
        (TernaryLayout::Tq2_0, Scope::Block(256)),
        (TernaryLayout::Tq1_0, Scope::Row),
        (TernaryLayout::BitnetHf, Scope::Tensor),
        (TernaryLayout::I2S, Scope::Tensor),
    ] {
        let t = quantize_ternary(&w, 4, 256, &opts(layout, ScaleRule::Optimal, scope)).unwrap();
        assert_eq!(t.codes(), codes, "{layout} {scope:?}");
        assert_eq!(t.dequantize(), w, "{layout} {scope:?}");
    }
}

/// With importances, the optimal rule reaches the least importance-weighted error of
/// all 3^n code vectors; uniform importances change nothing; absmean takes the weighted
/// mean; bad importances are errors.
#[test]
fn weighted_optimal_rule_matches_brute_force() {
    let mut next = xorshift(0x1234_5678_9abc_def1);
    for n in 1..=7usize {
        for _ in 0..50 {
            let x: Vec<f32> =
                (0..n).map(|_| ((next() >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0) as f32).collect();
            let c: Vec<f32> = (0..n).map(|_| [0.0f32, 0.5, 1.0, 4.0][(next() >> 20) as usize % 4]).collect();
            let t =
                quantize_ternary_weighted(&x, 1, n, &opts(TernaryLayout::Codes, ScaleRule::Optimal, Scope::Tensor), &c)
                    .unwrap();
            let weighted = |approx: &[f32]| -> f64 {
                x.iter()
                    .zip(approx)
                    .zip(&c)
                    .map(|((&a, &b), &w)| f64::from(w) * (f64::from(a) - f64::from(b)).powi(2))
                    .sum()
            };
            let got = weighted(&t.dequantize());
            let total: f64 = x.iter().zip(&c).map(|(&a, &w)| f64::from(w) * f64::from(a).powi(2)).sum();
            let mut want = total;
            for mut code in 0..3usize.pow(n as u32) {
                let (mut dot, mut count) = (0f64, 0f64);
                for (&v, &w) in x.iter().zip(&c) {
                    let q = (code % 3) as f64 - 1.0;
                    code /= 3;
                    dot += f64::from(w) * q * f64::from(v);
                    count += f64::from(w) * q * q;
                }
                if count > 0.0 {
                    want = want.min(total - dot * dot / count);
                }
            }
            assert!(got <= want * (1.0 + 1e-6) + 1e-12, "{x:?} {c:?}: weighted optimal {got}, brute force {want}");
        }
    }
    // Uniform importance: the unweighted optimal rule's bytes.
    let w: Vec<f32> = ternary_quant::scheme::metrics::gaussian_probe(4 * 512);
    for scope in [Scope::Tensor, Scope::Row, Scope::Block(256)] {
        let o = opts(TernaryLayout::Tq2_0, ScaleRule::Optimal, scope);
        let plain = quantize_ternary(&w, 4, 512, &o).unwrap();
        let weighted = quantize_ternary_weighted(&w, 4, 512, &o, &[2.0; 512]).unwrap();
        assert_eq!(weighted.codes(), plain.codes(), "{scope:?}");
        assert_eq!(weighted.scales, plain.scales, "{scope:?}");
    }
    // Every backend gives the scalar bytes, for both weighted rules and every scope.
    let importance: Vec<f32> = (0..512).map(|i| (i % 7) as f32 * 0.5).collect();
    for rule in [ScaleRule::Optimal, ScaleRule::AbsMean] {
        for scope in [Scope::Tensor, Scope::Row, Scope::Block(256)] {
            let o = |backend| TernaryOptions { layout: TernaryLayout::Tq2_0, rule, scope, backend };
            let want = quantize_ternary_weighted(&w, 4, 512, &o(Backend::Scalar), &importance).unwrap();
            for backend in Backend::supported() {
                let got = quantize_ternary_weighted(&w, 4, 512, &o(backend), &importance).unwrap();
                assert_eq!((&got.bytes, &got.scales), (&want.bytes, &want.scales), "{backend} {rule:?} {scope:?}");
            }
        }
    }
    // Weighted absmean: the column-weighted mean of |w|.
    let t = quantize_ternary_weighted(
        &[1.0, -3.0],
        1,
        2,
        &opts(TernaryLayout::Codes, ScaleRule::AbsMean, Scope::Tensor),
        &[3.0, 1.0],
    )
    .unwrap();
    assert_eq!(t.scales, [1.5]);
    let o = opts(TernaryLayout::Codes, ScaleRule::Optimal, Scope::Tensor);
    assert!(matches!(quantize_ternary_weighted(&[1.0, 2.0], 1, 2, &o, &[1.0]), Err(Error::ShapeMismatch { .. })));
    let err = quantize_ternary_weighted(&[1.0, 2.0], 1, 2, &o, &[1.0, -1.0]).unwrap_err().to_string();
    assert!(err.contains("importance") && err.contains("column 1 has -1"), "{err}");
}
