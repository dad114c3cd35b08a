//! The engine: presets, the content-keyed cache, batches and size estimates.

use ternary_quant::*;

fn weights(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s.wrapping_mul(1664525).wrapping_add(1013904223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect()
}

#[test]
fn presets_are_what_the_docs_say() {
    let p = |n| Preset::by_name(n).unwrap();
    assert_eq!(
        (p("bitnet").layout, p("bitnet").rule, p("bitnet").scope),
        (TernaryLayout::Tq2_0, ScaleRule::AbsMean, Scope::Tensor)
    );
    assert_eq!((p("compact").layout, p("compact").rule), (TernaryLayout::Tq1_0, ScaleRule::AbsMean));
    assert_eq!((p("lossless").rule, p("lossless").scope), (ScaleRule::AbsMax, Scope::Block(256)));
    assert_eq!((p("accurate").rule, p("accurate").scope), (ScaleRule::AbsMean, Scope::Row));
    assert_eq!(
        (p("best").layout, p("best").rule, p("best").scope),
        (TernaryLayout::Tq2_0, ScaleRule::Optimal, Scope::Block(256))
    );
}

#[test]
fn the_cache_is_keyed_by_content_not_by_call() {
    let mut engine = QuantizationEngine::new(Preset::by_name("bitnet").unwrap().options(), Int8Options::default());
    let a = weights(4 * 256, 1);
    let mut b = a.clone();
    b[17] += 0.25; // same shape, same options, one value different
    let ta = engine.quantize_weights(&a, 4, 256).unwrap();
    let ta2 = engine.quantize_weights(&a, 4, 256).unwrap();
    assert!(std::sync::Arc::ptr_eq(&ta, &ta2));
    let tb = engine.quantize_weights(&b, 4, 256).unwrap();
    assert_ne!(ta.bytes, tb.bytes);
    // Same bytes, other shape: a different entry.
    engine.quantize_weights(&a, 2, 512).unwrap();
    let s = engine.cache_stats();
    assert_eq!((s.entries, s.hits, s.misses), (3, 1, 3));
    assert_eq!(s.bytes, ta.stored_bytes() + tb.stored_bytes() + 2 * 2 * 66);
    engine.clear_cache();
    let s = engine.cache_stats();
    assert_eq!((s.entries, s.bytes, s.hits), (0, 0, 1));
    engine.quantize_weights(&a, 4, 256).unwrap();
    assert_eq!(engine.cache_stats().misses, 4);
}

#[test]
fn the_cache_separates_options() {
    let a = weights(256, 2);
    let mut e1 = QuantizationEngine::new(Preset::by_name("bitnet").unwrap().options(), Int8Options::default());
    let mut e2 = QuantizationEngine::new(Preset::by_name("compact").unwrap().options(), Int8Options::default());
    assert_ne!(e1.quantize_weights(&a, 1, 256).unwrap().bytes, e2.quantize_weights(&a, 1, 256).unwrap().bytes);
}

#[test]
fn quantize_and_measure_reports_the_real_error() {
    let a = weights(8 * 256, 3);
    let mut engine = QuantizationEngine::new(Preset::by_name("accurate").unwrap().options(), Int8Options::default());
    let (t, stats) = engine.quantize_and_measure(&a, 8, 256).unwrap();
    assert_eq!(stats, error_stats(&a, &t.dequantize(), Backend::Scalar).unwrap());
    assert!(stats.snr_db > 3.0 && stats.snr_db < 20.0, "{stats:?}");
    let x = engine.quantize_activations(&a, 8, 256).unwrap();
    assert_eq!(x.scales.len(), 8);
}

#[test]
fn batches_report_per_tensor_and_totals() {
    let a = weights(4 * 256, 4);
    let b = weights(2 * 512, 5);
    let tensors = [
        NamedTensor { name: "layers.0.q_proj.weight", data: &a, rows: 4, cols: 256 },
        NamedTensor { name: "layers.0.k_proj.weight", data: &b, rows: 2, cols: 512 },
    ];
    let (out, report) = quantize_batch(&tensors, &Preset::by_name("compact").unwrap().options()).unwrap();
    assert_eq!(out.len(), 2);
    assert_eq!(report.tensors[1].name, "layers.0.k_proj.weight");
    assert_eq!(report.bytes_in, 2 * 1024 * 4);
    assert_eq!(report.bytes_out, 2 * 4 * 54);
    assert_eq!(report.bits_per_weight, 1.6875);
    let zeros = out[0].codes().iter().filter(|&&c| c == 0).count();
    assert_eq!(report.tensors[0].zero_fraction, zeros as f64 / 1024.0);

    let bad = [NamedTensor { name: "odd", data: &a[..384], rows: 1, cols: 384 }];
    let err = quantize_batch(&bad, &TernaryOptions::default()).unwrap_err();
    assert!(err.to_string().contains("'odd'"), "{err}");
}

#[test]
fn size_estimates_are_exact_and_fall_back_like_the_converter() {
    let shapes = [(4096, 4096), (384, 384), (10, 100)];
    let e = estimate_model_size(&shapes, TernaryLayout::Tq2_0, Scope::Tensor).unwrap();
    assert_eq!(e.stored_as, vec![StoredAs::Ternary, StoredAs::Q8_0, StoredAs::F16]);
    assert_eq!(e.bytes, 4096 * 4096 / 256 * 66 + 384 * 384 / 32 * 34 + 10 * 100 * 2);
    // The estimate equals what quantizing really stores.
    let w = weights(8 * 1024, 6);
    for layout in TernaryLayout::ALL {
        let t = quantize_ternary(&w, 8, 1024, &TernaryOptions { layout, ..Default::default() }).unwrap();
        let e = estimate_model_size(&[(8, 1024)], layout, Scope::Tensor).unwrap();
        assert_eq!(e.bytes, t.stored_bytes() as u64, "{layout}");
        let sizes = &e.by_layout;
        let by_name =
            [("tq2_0", sizes.tq2_0), ("tq1_0", sizes.tq1_0), ("bitnet-hf", sizes.bitnet_hf), ("i2_s", sizes.i2_s)];
        if let Some(&(_, bytes)) = by_name.iter().find(|(name, _)| *name == layout.name()) {
            assert_eq!(bytes, e.bytes, "{layout}: by_layout agrees with the layout's own estimate");
        }
    }
    // The same model in every format.
    let e = estimate_model_size(&shapes, TernaryLayout::Tq1_0, Scope::Row).unwrap();
    let n = 4096 * 4096 + 384 * 384 + 10 * 100;
    assert_eq!((e.by_layout.f32, e.by_layout.f16), (4 * n, 2 * n));
    assert_eq!(e.by_layout.q8_0, (4096 * 4096 + 384 * 384) / 32 * 34 + 10 * 100 * 2);
    let alone = |layout| estimate_model_size(&shapes, layout, Scope::Tensor).unwrap().bytes;
    assert_eq!(e.by_layout.tq2_0, alone(TernaryLayout::Tq2_0));
    assert_eq!(e.by_layout.tq1_0, alone(TernaryLayout::Tq1_0));
    assert_eq!(e.by_layout.bitnet_hf, alone(TernaryLayout::BitnetHf));
    assert_eq!(e.by_layout.i2_s, alone(TernaryLayout::I2S));
}

#[test]
fn size_estimates_count_past_four_gib() {
    // A 7B-class shape list: 32 layers of 4096x4096 x4 and 11008x4096 x3.
    let mut shapes = Vec::new();
    for _ in 0..32 {
        shapes.extend([(4096u64, 4096u64); 4]);
        shapes.extend([(11008u64, 4096u64); 3]);
    }
    let e = estimate_model_size(&shapes, TernaryLayout::Tq2_0, Scope::Tensor).unwrap();
    let values: u64 = shapes.iter().map(|(r, c)| r * c).sum();
    assert_eq!(e.f32_bytes, values * 4);
    assert!(e.f32_bytes > 1 << 32);
    assert_eq!(e.bytes, values / 256 * 66);
}
