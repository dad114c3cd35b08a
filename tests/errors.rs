//! Every typed error the public API can produce: the variant, its fields, and a Display
//! message that names the facts a user needs to fix the call.

use ternary_quant::{
    error_stats, estimate_model_size, quantize_batch, quantize_int8, quantize_ternary, ternary_mat_vec, Backend, Error,
    Int8Layout, Int8Options, Int8Tensor, NamedTensor, Preset, QuantizationEngine, ScaleRule, Scope, TernaryLayout,
    TernaryOptions, TernaryTensor,
};

fn ternary(layout: TernaryLayout, rule: ScaleRule, scope: Scope) -> TernaryOptions {
    TernaryOptions { layout, rule, scope, backend: Backend::Scalar }
}

fn tq2_block() -> TernaryOptions {
    ternary(TernaryLayout::Tq2_0, ScaleRule::AbsMax, Scope::Block(256))
}

fn int8(layout: Int8Layout, scope: Scope) -> Int8Options {
    Int8Options { layout, scope, symmetric: true, clip: None, percentile: None, backend: Backend::Scalar }
}

fn q8_0() -> Int8Options {
    int8(Int8Layout::Q8_0, Scope::Block(32))
}

/// The error of a call that must fail.
fn err<T: std::fmt::Debug>(r: Result<T, Error>) -> Error {
    r.expect_err("the call must fail")
}

/// Asserts that the Display message contains every fragment.
fn says(e: &Error, fragments: &[&str]) {
    let msg = e.to_string();
    for f in fragments {
        assert!(msg.contains(f), "message {msg:?} should mention {f:?}");
    }
}

fn ramp(n: usize) -> Vec<f32> {
    (0..n).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect()
}

// ------------------------------------------------------------------------------------

#[test]
fn empty_input() {
    let cases: Vec<(Error, &str)> = vec![
        (err(quantize_ternary(&[], 0, 256, &tq2_block())), "weights"),
        (err(quantize_ternary(&[], 1, 256, &tq2_block())), "weights"),
        (err(quantize_ternary(&[1.0; 256], 0, 256, &tq2_block())), "weights"),
        (
            err(quantize_ternary(&[1.0; 4], 4, 0, &ternary(TernaryLayout::Codes, ScaleRule::AbsMean, Scope::Tensor))),
            "weights",
        ),
        (err(quantize_int8(&[], 1, 32, &q8_0())), "activations"),
        (err(quantize_int8(&[], 0, 0, &Int8Options::default())), "activations"),
        (err(TernaryTensor::from_codes(&[], 0, 4, TernaryLayout::Codes, Scope::Tensor, &[])), "tensor shape"),
        (err(TernaryTensor::from_bytes(vec![], 0, 256, TernaryLayout::Tq2_0, Scope::Tensor, None)), "tensor shape"),
        (err(Int8Tensor::from_bytes(vec![], 0, 32, Int8Layout::Q8_0)), "tensor shape"),
        (err(error_stats(&[], &[], Backend::Scalar)), "original"),
        (err(estimate_model_size(&[], TernaryLayout::Tq2_0, Scope::Tensor)), "shapes"),
        (err(QuantizationEngine::default().quantize_weights(&[], 0, 0)), "weights"),
    ];
    for (e, what) in cases {
        match &e {
            Error::EmptyInput { what: w } => assert_eq!(*w, what),
            other => panic!("expected EmptyInput, got {other:?}"),
        }
        says(&e, &["empty input", what]);
    }
    // A matrix-vector product with an empty x.
    let w = quantize_ternary(&ramp(256), 1, 256, &tq2_block()).unwrap();
    match err(ternary_mat_vec(&w, &[], Backend::Scalar)) {
        Error::EmptyInput { what } => assert_eq!(what, "x"),
        other => panic!("expected EmptyInput, got {other:?}"),
    }
}

#[test]
fn non_finite_names_the_first_bad_index() {
    // (position, value) pairs; a later NaN never hides an earlier infinity and vice versa.
    for (bad, value, shown) in
        [(vec![5usize], f32::NAN, "NaN"), (vec![7, 9], f32::INFINITY, "inf"), (vec![0, 3], f32::NEG_INFINITY, "-inf")]
    {
        let mut x = ramp(512);
        x[bad[0]] = value;
        for &later in &bad[1..] {
            x[later] = f32::NAN;
        }
        for e in [
            err(quantize_ternary(&x, 2, 256, &tq2_block())),
            err(quantize_int8(&x, 2, 256, &q8_0())),
            err(QuantizationEngine::default().quantize_weights(&x, 1, 512)),
        ] {
            match &e {
                Error::NonFinite { index, value: v, what } => {
                    assert_eq!(*index, bad[0], "{e}");
                    assert!(v.to_bits() == value.to_bits() || (v.is_nan() && value.is_nan()), "{e}");
                    assert!(*what == "weights" || *what == "activations", "{e}");
                }
                other => panic!("expected NonFinite, got {other:?}"),
            }
            says(&e, &["non-finite", &format!("index {}", bad[0]), shown]);
        }
    }
}

#[test]
fn non_finite_index_is_exact_on_every_backend_and_position() {
    let n = 1100;
    for backend in Backend::supported() {
        for pos in [0, 1, 7, 8, 15, 16, 17, 31, 32, 63, 64, 255, 256, 257, 1000, n - 1] {
            for value in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
                let mut x = ramp(n);
                x[pos] = value;
                if pos + 3 < n {
                    x[pos + 3] = f32::NAN;
                }
                let opts = TernaryOptions { backend, ..ternary(TernaryLayout::Codes, ScaleRule::AbsMean, Scope::Row) };
                let i8opts = Int8Options { backend, ..Int8Options::default() };
                for e in [err(quantize_ternary(&x, 1, n, &opts)), err(quantize_int8(&x, 1, n, &i8opts))] {
                    match e {
                        Error::NonFinite { index, .. } => assert_eq!(index, pos, "{backend}: {e}"),
                        other => panic!("expected NonFinite, got {other:?}"),
                    }
                }
            }
        }
    }
}

#[test]
fn non_finite_scales_and_metrics() {
    match err(TernaryTensor::from_codes(&[1, 0, -1, 1], 2, 2, TernaryLayout::Codes, Scope::Row, &[1.0, f32::NAN])) {
        Error::NonFinite { what, index, .. } => assert_eq!((what, index), ("scales", 1)),
        other => panic!("expected NonFinite, got {other:?}"),
    }
    let e = err(error_stats(&[1.0, 2.0, 3.0], &[1.0, 2.0, f32::INFINITY], Backend::Scalar));
    match &e {
        Error::NonFinite { what, index, value } => {
            assert_eq!((*what, *index, *value), ("reconstructed", 2, f32::INFINITY));
        }
        other => panic!("expected NonFinite, got {other:?}"),
    }
    says(&e, &["reconstructed", "index 2", "inf"]);
}

#[test]
fn shape_mismatch() {
    let checks: Vec<(Error, &str, usize, usize)> = vec![
        (err(quantize_ternary(&[0.5; 300], 1, 256, &tq2_block())), "weights", 256, 300),
        (
            err(quantize_ternary(&[0.5; 10], 3, 4, &ternary(TernaryLayout::Codes, ScaleRule::Twn, Scope::Tensor))),
            "weights",
            12,
            10,
        ),
        (err(quantize_int8(&[0.5; 31], 1, 32, &q8_0())), "activations", 32, 31),
        (err(TernaryTensor::from_codes(&[0; 5], 2, 3, TernaryLayout::Codes, Scope::Tensor, &[1.0])), "codes", 6, 5),
        (err(TernaryTensor::from_codes(&[0; 6], 2, 3, TernaryLayout::Codes, Scope::Row, &[1.0])), "scales", 2, 1),
        (
            err(TernaryTensor::from_bytes(
                vec![0x55; 6],
                5,
                3,
                TernaryLayout::BitnetHf,
                Scope::Tensor,
                Some(&[1.0, 2.0]),
            ))
            .clone(),
            "scales",
            1,
            2,
        ),
        (err(error_stats(&[1.0, 2.0], &[1.0], Backend::Scalar)), "reconstructed", 2, 1),
    ];
    for (e, what, expected, actual) in checks {
        match &e {
            Error::ShapeMismatch { what: w, expected: x, actual: a } => {
                assert_eq!((*w, *x, *a), (what, expected, actual), "{e}")
            }
            other => panic!("expected ShapeMismatch, got {other:?}"),
        }
        says(&e, &["shape mismatch", what, &format!("expected {expected}"), &format!("got {actual}")]);
    }
    let w = quantize_ternary(&ramp(512), 2, 256, &tq2_block()).unwrap();
    match err(ternary_mat_vec(&w, &[1.0; 255], Backend::Scalar)) {
        Error::ShapeMismatch { what, expected, actual } => assert_eq!((what, expected, actual), ("x", 256, 255)),
        other => panic!("expected ShapeMismatch, got {other:?}"),
    }
}

#[test]
fn size_overflow() {
    let codes = ternary(TernaryLayout::Codes, ScaleRule::AbsMean, Scope::Tensor);
    let checks: Vec<(Error, &str)> = vec![
        (err(quantize_ternary(&[1.0], usize::MAX, 2, &codes)), "rows * cols"),
        (err(quantize_ternary(&[1.0; 4], usize::MAX / 4 + 1, 4, &codes)), "rows * cols"),
        (err(quantize_int8(&[1.0], usize::MAX, 2, &Int8Options::default())), "rows * cols"),
        (
            err(TernaryTensor::from_codes(&[0], usize::MAX, 3, TernaryLayout::Codes, Scope::Tensor, &[1.0])),
            "rows * cols",
        ),
        (
            err(TernaryTensor::from_bytes(vec![], usize::MAX, 256, TernaryLayout::Tq2_0, Scope::Tensor, None)),
            "rows * cols",
        ),
        (err(Int8Tensor::from_bytes(vec![], usize::MAX, 32, Int8Layout::Q8_0)), "rows * cols"),
        (err(TernaryLayout::Tq2_0.data_bytes(usize::MAX, 256)), "rows * cols"),
        // Codes of a 1 x usize::MAX tensor are usize::MAX bytes; its 4-byte scale overflows.
        (err(TernaryLayout::Codes.stored_bytes(1, u64::MAX, Scope::Tensor)), "stored bytes"),
        (err(estimate_model_size(&[(u64::MAX, 2)], TernaryLayout::Tq2_0, Scope::Tensor)), "rows * cols"),
        // Two codes tensors of 2^63 values: 2^64 + 8 bytes in all.
        (
            err(estimate_model_size(&[(1 << 32, 1 << 31), (1 << 32, 1 << 31)], TernaryLayout::Codes, Scope::Tensor)),
            "model bytes",
        ),
        // Four TQ2_0 tensors of 2^62 values: 2^64 values in all.
        (err(estimate_model_size(&[(1 << 22, 1 << 40); 4], TernaryLayout::Tq2_0, Scope::Tensor)), "model values"),
    ];
    for (e, what) in checks {
        match &e {
            Error::SizeOverflow { what: w } => assert_eq!(*w, what, "{e}"),
            other => panic!("expected SizeOverflow, got {other:?}"),
        }
        says(&e, &["size overflow", what]);
    }
}

/// Every multiplication of a model estimate is checked: the F16 fallback `n * 2`, the
/// Q8_0 fallback `n / 32 * 34` and the f32 size `values * 4`.
#[test]
fn size_overflow_in_model_estimates() {
    let shapes = [
        (1u64, u64::MAX),        // F16 fallback: n * 2
        (1, u64::MAX - 31),      // Q8_0 fallback: n / 32 * 34
        (1, u64::MAX / 2 - 256), // codes: values * 4 for f32_bytes
    ];
    for (shape, layout) in shapes.into_iter().zip([TernaryLayout::Tq2_0, TernaryLayout::Tq2_0, TernaryLayout::Codes]) {
        let result = std::panic::catch_unwind(|| estimate_model_size(&[shape], layout, Scope::Tensor));
        match result {
            Ok(Err(Error::SizeOverflow { .. })) => {}
            Ok(other) => panic!("{shape:?} in {layout}: expected SizeOverflow, got {other:?}"),
            Err(_) => panic!("{shape:?} in {layout}: estimate_model_size panicked instead of returning SizeOverflow"),
        }
    }
}

#[test]
fn row_not_block_aligned() {
    let checks: Vec<(Error, &str, usize, usize)> = vec![
        (err(quantize_ternary(&ramp(384), 1, 384, &tq2_block())), "tq2_0", 256, 384),
        (
            err(quantize_ternary(
                &ramp(200),
                2,
                100,
                &ternary(TernaryLayout::Tq1_0, ScaleRule::AbsMean, Scope::Tensor),
            )),
            "tq1_0",
            256,
            100,
        ),
        // Q8_0 and Q8_K name themselves when their rows do not fit their blocks.
        (err(quantize_int8(&ramp(48), 1, 48, &q8_0())), "q8_0", 32, 48),
        (err(quantize_int8(&ramp(32), 1, 32, &int8(Int8Layout::Q8K, Scope::Block(256)))), "q8_k", 256, 32),
        (
            err(quantize_int8(&ramp(48), 1, 48, &int8(Int8Layout::Plain, Scope::Block(32)))),
            "int8 with the block scope",
            32,
            48,
        ),
        (
            err(quantize_ternary(
                &ramp(12),
                1,
                12,
                &ternary(TernaryLayout::Codes, ScaleRule::AbsMean, Scope::Block(5)),
            )),
            "codes with the block scope",
            5,
            12,
        ),
        (
            err(TernaryTensor::from_bytes(vec![0; 99], 1, 384, TernaryLayout::Tq2_0, Scope::Tensor, None)),
            "tq2_0",
            256,
            384,
        ),
        (err(Int8Tensor::from_bytes(vec![0; 51], 1, 48, Int8Layout::Q8_0)), "q8_0", 32, 48),
        (err(TernaryLayout::Tq2_0.stored_bytes(4, 384, Scope::Tensor)), "tq2_0", 256, 384),
    ];
    for (e, layout, block, cols) in checks {
        match &e {
            Error::RowNotBlockAligned { layout: l, block: b, cols: c } => {
                assert_eq!((*l, *b, *c), (layout, block, cols), "{e}")
            }
            other => panic!("expected RowNotBlockAligned, got {other:?}"),
        }
        says(&e, &[layout, &format!("multiple of {block}"), &format!("got {cols}")]);
    }
    // The exact message of the common case.
    let e = err(quantize_ternary(&ramp(384), 1, 384, &tq2_block()));
    assert_eq!(e.to_string(), "tq2_0 needs rows whose length is a multiple of 256; got 384");
}

#[test]
fn unsupported_combinations() {
    let w = ramp(512);
    let checks: Vec<(Error, &[&str])> = vec![
        (
            err(quantize_ternary(&w, 2, 256, &ternary(TernaryLayout::BitnetHf, ScaleRule::AbsMean, Scope::Row))),
            &["bitnet-hf", "tensor scope"],
        ),
        (
            err(quantize_ternary(&w, 2, 256, &ternary(TernaryLayout::BitnetHf, ScaleRule::AbsMean, Scope::Block(4)))),
            &["bitnet-hf", "tensor scope"],
        ),
        (
            err(quantize_ternary(&w, 2, 256, &ternary(TernaryLayout::Tq2_0, ScaleRule::AbsMax, Scope::Block(128)))),
            &["tq2_0", "256", "128"],
        ),
        (
            err(quantize_ternary(&w, 2, 256, &ternary(TernaryLayout::Tq1_0, ScaleRule::AbsMax, Scope::Block(512)))),
            &["tq1_0", "256", "512"],
        ),
        (err(quantize_int8(&w, 2, 256, &Int8Options { symmetric: false, ..q8_0() })), &["q8_0", "symmetric"]),
        (err(quantize_int8(&w, 2, 256, &Int8Options { clip: Some(1.0), ..q8_0() })), &["q8_0", "clip"]),
        (err(quantize_int8(&w, 2, 256, &Int8Options { percentile: Some(99.0), ..q8_0() })), &["q8_0", "percentile"]),
        (err(quantize_int8(&w, 2, 256, &int8(Int8Layout::Q8_0, Scope::Row))), &["q8_0", "block"]),
        (err(quantize_int8(&w, 2, 256, &int8(Int8Layout::Q8K, Scope::Block(32)))), &["q8_k", "256"]),
        (
            err(TernaryTensor::from_bytes(vec![0; 66], 1, 256, TernaryLayout::Tq2_0, Scope::Block(256), Some(&[1.0]))),
            &["tq2_0", "inside the bytes"],
        ),
        (
            err(TernaryTensor::from_bytes(vec![0x55; 4], 1, 4, TernaryLayout::BitnetHf, Scope::Tensor, None)),
            &["bitnet-hf", "outside the bytes"],
        ),
        (err(Int8Tensor::from_bytes(vec![0; 4], 1, 4, Int8Layout::Plain)), &["plain"]),
    ];
    for (e, fragments) in checks {
        assert!(matches!(e, Error::Unsupported(_)), "expected Unsupported, got {e:?}");
        says(&e, &["unsupported"]);
        says(&e, fragments);
    }
}

#[test]
fn unsupported_backends_are_refused_by_name() {
    let unsupported: Vec<Backend> = Backend::ALL.into_iter().filter(|b| !b.is_supported()).collect();
    for backend in unsupported {
        let w = ramp(256);
        let t = quantize_ternary(&w, 1, 256, &TernaryOptions { backend, ..tq2_block() });
        let i = quantize_int8(&w, 1, 256, &Int8Options { backend, ..q8_0() });
        let s = error_stats(&w, &w, backend);
        for e in [err(t), err(i), err(s)] {
            assert!(matches!(e, Error::Unsupported(_)), "{e:?}");
            says(&e, &[backend.name(), "this machine"]);
        }
    }
}

#[test]
fn invalid_options() {
    let w = ramp(256);
    let checks: Vec<(Error, &str, &[&str])> = vec![
        (
            err(quantize_ternary(&w, 1, 256, &ternary(TernaryLayout::Codes, ScaleRule::AbsMean, Scope::Block(0)))),
            "blockSize",
            &["positive"],
        ),
        (
            err(quantize_ternary(&w, 1, 256, &ternary(TernaryLayout::Tq2_0, ScaleRule::AbsMax, Scope::Block(0)))),
            "blockSize",
            &[],
        ),
        (
            err(quantize_ternary(&w, 1, 256, &ternary(TernaryLayout::BitnetHf, ScaleRule::AbsMax, Scope::Block(0)))),
            "blockSize",
            &[],
        ),
        (err(quantize_int8(&w, 1, 256, &int8(Int8Layout::Plain, Scope::Block(0)))), "blockSize", &["positive"]),
        (err(quantize_int8(&w, 1, 256, &int8(Int8Layout::Q8_0, Scope::Block(0)))), "blockSize", &[]),
        (err(TernaryTensor::from_codes(&[0; 4], 1, 4, TernaryLayout::Codes, Scope::Block(0), &[])), "blockSize", &[]),
    ];
    let mut checks = checks;
    for p in [0.0, -1.0, 100.5, f32::NAN, f32::INFINITY] {
        let opts = Int8Options { percentile: Some(p), ..Int8Options::default() };
        checks.push((err(quantize_int8(&w, 1, 256, &opts)), "percentile", &["(0, 100]"]));
    }
    for c in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let opts = Int8Options { clip: Some(c), ..Int8Options::default() };
        checks.push((err(quantize_int8(&w, 1, 256, &opts)), "clip", &["positive finite"]));
    }
    let both = Int8Options { clip: Some(1.0), percentile: Some(99.0), ..Int8Options::default() };
    checks.push((err(quantize_int8(&w, 1, 256, &both)), "percentile", &["not both"]));
    // Unknown names.
    checks.push((err(TernaryLayout::from_name("tq3_0")), "layout", &["tq3_0", "tq2_0"]));
    checks.push((err(ScaleRule::from_name("absmedian")), "rule", &["absmedian", "absmean"]));
    checks.push((err(Scope::from_name("column", 32)), "scope", &["column", "tensor"]));
    checks.push((err(Preset::by_name("fast")), "preset", &["fast", "bitnet"]));
    checks.push((err(Int8Layout::from_name("q4_0")), "layout", &["q4_0", "q8_0"]));
    checks.push((err(TernaryLayout::from_name("TQ2_0")), "layout", &["TQ2_0"]));
    checks.push((err(ScaleRule::from_name("")), "rule", &[]));
    for (e, name, fragments) in checks {
        match &e {
            Error::InvalidOption { name: n, .. } => assert_eq!(*n, name, "{e}"),
            other => panic!("expected InvalidOption {name}, got {other:?}"),
        }
        says(&e, &["invalid option", name]);
        says(&e, fragments);
    }
    // The boundary that is allowed, and every known name, parse.
    quantize_int8(&w, 1, 256, &Int8Options { percentile: Some(100.0), ..Int8Options::default() }).unwrap();
    for l in TernaryLayout::ALL {
        assert_eq!(TernaryLayout::from_name(l.name()).unwrap(), l);
    }
    for r in ScaleRule::ALL {
        assert_eq!(ScaleRule::from_name(r.name()).unwrap(), r);
    }
    for l in Int8Layout::ALL {
        assert_eq!(Int8Layout::from_name(l.name()).unwrap(), l);
    }
    for s in [Scope::Tensor, Scope::Row, Scope::Block(64)] {
        assert_eq!(Scope::from_name(s.name(), 64).unwrap(), s);
    }
    for p in ["bitnet", "compact", "lossless", "accurate", "best"] {
        assert_eq!(Preset::by_name(p).unwrap().name, p);
    }
}

#[test]
fn byte_length() {
    let checks: Vec<(Error, &str, usize, usize)> = vec![
        (
            err(TernaryTensor::from_bytes(vec![0; 65], 1, 256, TernaryLayout::Tq2_0, Scope::Block(256), None)),
            "tq2_0",
            66,
            65,
        ),
        (
            err(TernaryTensor::from_bytes(vec![0; 133], 2, 256, TernaryLayout::Tq2_0, Scope::Row, None)),
            "tq2_0",
            132,
            133,
        ),
        (
            err(TernaryTensor::from_bytes(vec![0; 55], 1, 256, TernaryLayout::Tq1_0, Scope::Tensor, None)),
            "tq1_0",
            54,
            55,
        ),
        // bitnet-hf [5, 3] packs into ceil(5/4) = 2 rows of 3 bytes.
        (
            err(TernaryTensor::from_bytes(vec![0x55; 15], 5, 3, TernaryLayout::BitnetHf, Scope::Tensor, Some(&[1.0]))),
            "bitnet-hf",
            6,
            15,
        ),
        (
            err(TernaryTensor::from_bytes(vec![0; 5], 2, 3, TernaryLayout::Codes, Scope::Tensor, Some(&[1.0]))),
            "codes",
            6,
            5,
        ),
        (err(Int8Tensor::from_bytes(vec![0; 33], 1, 32, Int8Layout::Q8_0)), "q8_0", 34, 33),
        (err(Int8Tensor::from_bytes(vec![0; 293], 1, 256, Int8Layout::Q8K)), "q8_k", 292, 293),
    ];
    for (e, layout, expected, actual) in checks {
        match &e {
            Error::ByteLength { layout: l, expected: x, actual: a } => {
                assert_eq!((*l, *x, *a), (layout, expected, actual), "{e}")
            }
            other => panic!("expected ByteLength, got {other:?}"),
        }
        says(&e, &[layout, &format!("expected {expected} bytes"), &format!("got {actual}")]);
    }
}

/// TQ2_0 bytes of all-zero codes (stored code 1 in every 2-bit field) and scale 1.
fn tq2_zero_codes(blocks: usize) -> Vec<u8> {
    let t =
        TernaryTensor::from_codes(&vec![0; 256 * blocks], 1, 256 * blocks, TernaryLayout::Tq2_0, Scope::Tensor, &[1.0])
            .unwrap();
    assert!(t.bytes.chunks(66).all(|b| b[..64].iter().all(|&x| x == 0x55)));
    t.bytes
}

#[test]
fn invalid_code_in_tq2_0_bytes() {
    // Value h*128 + l*32 + m sits in byte h*32 + m, bits 2l..2l+1. Stored code 3 (0b11) is
    // not a ternary code. Two bad values: byte 32+5 lane 2 is value 128+64+5 = 197, and
    // byte 40 lane 0 of the second block is value 256+128+8 = 392; the first is reported.
    let mut bytes = tq2_zero_codes(2);
    bytes[32 + 5] |= 0b11 << 4;
    bytes[66 + 40] |= 0b11;
    let e = err(TernaryTensor::from_bytes(bytes.clone(), 1, 512, TernaryLayout::Tq2_0, Scope::Tensor, None));
    match &e {
        Error::InvalidCode { layout, index, .. } => assert_eq!((*layout, *index), ("tq2_0", 197), "{e}"),
        other => panic!("expected InvalidCode, got {other:?}"),
    }
    says(&e, &["tq2_0", "invalid code", "index 197"]);
    // Byte order is not value order: byte 0 lane 3 is value 96, byte 1 lane 0 is value 1.
    let mut bytes = tq2_zero_codes(1);
    bytes[0] |= 0b11 << 6;
    bytes[1] |= 0b11;
    match err(TernaryTensor::from_bytes(bytes, 1, 256, TernaryLayout::Tq2_0, Scope::Tensor, None)) {
        Error::InvalidCode { index, .. } => assert_eq!(index, 1),
        other => panic!("expected InvalidCode, got {other:?}"),
    }
}

/// A stored 2-bit code 3 (0b11) is reported as the code that was stored, 3.
#[test]
fn invalid_code_reports_the_stored_code() {
    let mut bytes = tq2_zero_codes(1);
    bytes[7] |= 0b11 << 2;
    match err(TernaryTensor::from_bytes(bytes, 1, 256, TernaryLayout::Tq2_0, Scope::Tensor, None)) {
        Error::InvalidCode { code, .. } => assert_eq!(code, 3, "the stored code is 0b11"),
        other => panic!("expected InvalidCode, got {other:?}"),
    }
    match err(TernaryTensor::from_bytes(vec![0xFF; 4], 1, 4, TernaryLayout::BitnetHf, Scope::Tensor, Some(&[1.0]))) {
        Error::InvalidCode { code, .. } => assert_eq!(code, 3, "the stored code is 0b11"),
        other => panic!("expected InvalidCode, got {other:?}"),
    }
}

#[test]
fn invalid_code_in_bitnet_hf_bytes() {
    // [5, 3] packs into R = 2 rows: packed row r, bits 2i..2i+1 hold weight row i*2 + r.
    // Bad bits at packed row 0, column 0, i = 2 (weight row 4: value 12) and packed row 1,
    // column 2, i = 0 (weight row 1: value 5); the lower value index is reported.
    let mut bytes = vec![0b0101_0101u8; 6];
    bytes[0] |= 0b11 << 4;
    bytes[3 + 2] |= 0b11;
    let e = err(TernaryTensor::from_bytes(bytes, 5, 3, TernaryLayout::BitnetHf, Scope::Tensor, Some(&[1.0])));
    match &e {
        Error::InvalidCode { layout, index, .. } => assert_eq!((*layout, *index), ("bitnet-hf", 5), "{e}"),
        other => panic!("expected InvalidCode, got {other:?}"),
    }
    says(&e, &["bitnet-hf", "index 5"]);
}

#[test]
fn invalid_code_in_codes() {
    let e = err(TernaryTensor::from_codes(&[1, 0, -1, 5, 7], 1, 5, TernaryLayout::Codes, Scope::Tensor, &[1.0]));
    match &e {
        Error::InvalidCode { layout, index, code } => assert_eq!((*layout, *index, *code), ("codes", 3, 5)),
        other => panic!("expected InvalidCode, got {other:?}"),
    }
    says(&e, &["codes", "invalid code 5", "index 3"]);
    // The same check on every layout's from_codes, and on codes read from bytes.
    for layout in TernaryLayout::ALL {
        let (rows, cols) = (1, 256);
        let mut codes = vec![0i8; rows * cols];
        codes[200] = -2;
        match err(TernaryTensor::from_codes(&codes, rows, cols, layout, Scope::Tensor, &[1.0])) {
            Error::InvalidCode { index, code, .. } => assert_eq!((index, code), (200, -2), "{layout}"),
            other => panic!("{layout}: expected InvalidCode, got {other:?}"),
        }
    }
    let e =
        err(TernaryTensor::from_bytes(vec![1, 0, 0xFE, 2], 1, 4, TernaryLayout::Codes, Scope::Tensor, Some(&[1.0])));
    match e {
        Error::InvalidCode { layout, index, code } => assert_eq!((layout, index, code), ("codes", 2, -2)),
        other => panic!("expected InvalidCode, got {other:?}"),
    }
}

/// quantize_batch names the tensor in `Error::Tensor` and keeps the error's own kind
/// underneath, so a NaN or a misaligned row still matches NonFinite or RowNotBlockAligned.
#[test]
fn batch_errors_keep_their_variant() {
    let mut nan = ramp(256);
    nan[3] = f32::NAN;
    let batch = [NamedTensor { name: "w", data: &nan, rows: 1, cols: 256 }];
    let e = err(quantize_batch(&batch, &tq2_block()));
    assert!(matches!(&e, Error::Tensor { name, .. } if name == "w"), "{e:?}");
    match e.root() {
        Error::NonFinite { index, .. } => assert_eq!(*index, 3),
        other => panic!("expected NonFinite, got {other:?}"),
    }
    let odd = ramp(384);
    let batch = [NamedTensor { name: "w", data: &odd, rows: 1, cols: 384 }];
    match err(quantize_batch(&batch, &tq2_block())).root() {
        Error::RowNotBlockAligned { cols, .. } => assert_eq!(*cols, 384),
        other => panic!("expected RowNotBlockAligned, got {other:?}"),
    }
}

#[test]
fn batch_errors_name_the_tensor() {
    let good = ramp(256);
    let mut nan = ramp(256);
    nan[3] = f32::NAN;
    let batch = [
        NamedTensor { name: "layers.0.w", data: &good, rows: 1, cols: 256 },
        NamedTensor { name: "layers.1.w", data: &nan, rows: 1, cols: 256 },
    ];
    let e = err(quantize_batch(&batch, &tq2_block()));
    says(&e, &["layers.1.w", "index 3"]);
}
