//! Converting tensors: bytes equal to the core quantizers, exact re-packing of ternary
//! inputs both ways, fallbacks, statistics and errors.
#![cfg(feature = "model-files")]

mod io_util;

use io_util::*;
use ternary_quant::io::convert::{convert_buffered, InputBuffer};
use ternary_quant::io::gguf::read_gguf;
use ternary_quant::io::{
    convert_tensor, plan_conversion, ChunkedConversion, DType, OpKind, OutputFormat, PlanOp, PlanOptions, TensorStats,
};
use ternary_quant::{
    error_stats, quantize_int8, quantize_ternary, Backend, ConversionPlan, Error, Int8Layout, Int8Options, ScaleRule,
    Scope, TernaryLayout, TernaryOptions, TernaryTensor,
};

fn op<'a>(plan: &'a ConversionPlan, name: &str) -> &'a PlanOp {
    plan.ops.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("no op {name}"))
}

/// The op's input bytes, from the files.
fn input_of(op: &PlanOp, files: &[&[u8]]) -> Vec<u8> {
    op.inputs.iter().flat_map(|r| files[r.file][r.offset as usize..(r.offset + r.length) as usize].to_vec()).collect()
}

/// The bytes of tensor `name` in a written file.
fn tensor_bytes<'a>(file: &'a [u8], name: &str) -> &'a [u8] {
    let h = header(file);
    let t = h.tensors.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("no tensor {name}"));
    &file[t.offset as usize..(t.offset + t.byte_len) as usize]
}

fn opts(output: OutputFormat, layout: TernaryLayout, rule: ScaleRule, scope: Scope) -> PlanOptions {
    PlanOptions { output, layout, rule, scope, ..PlanOptions::default() }
}

#[test]
fn quantized_bytes_equal_quantize_ternary() {
    let data = values(4 * 512, 11);
    for (dtype, bytes, decoded) in [
        ("F32", f32_bytes(&data), data.clone()),
        ("F16", f16_bytes(&data), f16_values(&f16_bytes(&data))),
        ("BF16", bf16_bytes(&data), data.iter().map(|v| half::bf16::from_f32(*v).to_f32()).collect()),
    ] {
        let file = safetensors_file(None, &[t("w.weight", dtype, &[4, 512], bytes)]);
        for (output, layout, rule, scope) in [
            (OutputFormat::Gguf, TernaryLayout::Tq2_0, ScaleRule::AbsMean, Scope::Tensor),
            (OutputFormat::Gguf, TernaryLayout::Tq2_0, ScaleRule::AbsMax, Scope::Block(256)),
            (OutputFormat::Gguf, TernaryLayout::Tq2_0, ScaleRule::Twn, Scope::Row),
            (OutputFormat::Gguf, TernaryLayout::Tq1_0, ScaleRule::Median, Scope::Tensor),
            (OutputFormat::Gguf, TernaryLayout::I2S, ScaleRule::AbsMean, Scope::Tensor),
            (OutputFormat::BitnetHf, TernaryLayout::BitnetHf, ScaleRule::AbsMean, Scope::Tensor),
        ] {
            let plan = plan_conversion(&[header(&file)], &opts(output, layout, rule, scope)).unwrap();
            let o = op(&plan, "w.weight");
            assert_eq!(o.kind, OpKind::Quantize);
            let got = convert_tensor(o, &input_of(o, &[&file]), false).unwrap();
            let want =
                quantize_ternary(&decoded, 4, 512, &TernaryOptions { layout, rule, scope, backend: Backend::best() })
                    .unwrap();
            let mut want_bytes = want.bytes.clone();
            if layout == TernaryLayout::BitnetHf {
                want_bytes.extend_from_slice(&want.scales[0].to_le_bytes());
            }
            assert_eq!(got.bytes, want_bytes, "{dtype} {layout} {rule:?} {scope:?}");
            assert_eq!(got.stats, None);
        }
    }
}

/// Random ternary codes for a `[rows, cols]` weight.
fn codes(rows: usize, cols: usize, seed: u64) -> Vec<i8> {
    values(rows * cols, seed).iter().map(|v| (v * 30.0).round().clamp(-1.0, 1.0) as i8).collect()
}

#[test]
fn bitnet_hf_to_gguf_and_back_is_exact() {
    for (layout, rows) in [(TernaryLayout::Tq2_0, 8), (TernaryLayout::Tq1_0, 12), (TernaryLayout::I2S, 4)] {
        let q = codes(rows, 512, 21);
        let packed =
            TernaryTensor::from_codes(&q, rows, 512, TernaryLayout::BitnetHf, Scope::Tensor, &[0.375]).unwrap();
        let input = safetensors_file(
            Some(&[("format".into(), "pt".into())]),
            &[
                f32_tensor("model.norm.weight", &[512], 1),
                t("model.layers.0.mlp.gate_proj.weight", "U8", &[rows as u64 / 4, 512], packed.bytes.clone()),
                t("model.layers.0.mlp.gate_proj.weight_scale", "F32", &[1], f32_bytes(&[0.375])),
            ],
        );
        let to_gguf =
            plan_conversion(&[header(&input)], &opts(OutputFormat::Gguf, layout, ScaleRule::AbsMean, Scope::Tensor))
                .unwrap();
        let gguf = run(&to_gguf, &[&input]).unwrap();
        let h = read_gguf(&gguf, gguf.len() as u64).unwrap();
        assert_eq!(h.tensors.len(), 2);
        // The GGUF tensor holds the same codes with d = f16(0.375) = 0.375.
        let stored = TernaryTensor::from_bytes(
            tensor_bytes(&gguf, "model.layers.0.mlp.gate_proj.weight").to_vec(),
            rows,
            512,
            layout,
            Scope::Tensor,
            None,
        )
        .unwrap();
        assert_eq!(stored.codes(), q);
        assert_eq!(stored.scales, [0.375]);

        let back = plan_conversion(
            &[h],
            &PlanOptions { output: OutputFormat::BitnetHf, layout: TernaryLayout::BitnetHf, ..PlanOptions::default() },
        )
        .unwrap();
        let o = op(&back, "model.layers.0.mlp.gate_proj.weight");
        assert_eq!((o.kind, o.in_type, o.out_type), (OpKind::Repack, layout_type(layout), DType::BitnetHf));
        let hf = run(&back, &[&gguf]).unwrap();
        assert_eq!(tensor_bytes(&hf, "model.layers.0.mlp.gate_proj.weight"), packed.bytes.as_slice(), "{layout}");
        assert_eq!(tensor_bytes(&hf, "model.layers.0.mlp.gate_proj.weight_scale"), 0.375f32.to_le_bytes());
        assert_eq!(tensor_bytes(&hf, "model.norm.weight"), tensor_bytes(&input, "model.norm.weight"));
    }
}

fn layout_type(layout: TernaryLayout) -> DType {
    match layout {
        TernaryLayout::Tq2_0 => DType::Tq2_0,
        TernaryLayout::Tq1_0 => DType::Tq1_0,
        _ => DType::I2S,
    }
}

#[test]
fn tq_block_scales_survive_tq2_0_to_tq1_0_and_back() {
    let data = values(3 * 512, 31);
    let tq2 = quantize_ternary(
        &data,
        3,
        512,
        &TernaryOptions {
            layout: TernaryLayout::Tq2_0,
            rule: ScaleRule::AbsMax,
            scope: Scope::Block(256),
            backend: Backend::best(),
        },
    )
    .unwrap();
    let input = gguf_file(&[], &[("blk.0.ffn_up.weight", vec![512, 3], 35, tq2.bytes.clone())], 32);
    let to_tq1 = plan_conversion(
        &[header(&input)],
        &opts(OutputFormat::Gguf, TernaryLayout::Tq1_0, ScaleRule::AbsMean, Scope::Tensor),
    )
    .unwrap();
    let tq1_file = run(&to_tq1, &[&input]).unwrap();
    let back = plan_conversion(&[header(&tq1_file)], &PlanOptions::default()).unwrap();
    let again = run(&back, &[&tq1_file]).unwrap();
    assert_eq!(tensor_bytes(&again, "blk.0.ffn_up.weight"), tq2.bytes.as_slice());

    // bitnet-hf has one scale per tensor: distinct block scales are an error naming the tensor.
    let hf = plan_conversion(
        &[header(&input)],
        &PlanOptions { output: OutputFormat::BitnetHf, layout: TernaryLayout::BitnetHf, ..PlanOptions::default() },
    )
    .unwrap();
    match run(&hf, &[&input]) {
        Err(Error::Tensor { name, source }) => {
            assert_eq!(name, "blk.0.ffn_up.weight");
            let message = source.to_string();
            assert!(message.contains("different scales") && message.contains("bitnet-hf"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn blocks_of_zero_codes_may_hold_any_scale() {
    let mut q = codes(2, 256, 41);
    q[256..].fill(0);
    let mut tq2 = TernaryTensor::from_codes(&q, 2, 256, TernaryLayout::Tq2_0, Scope::Block(256), &[0.5, 0.25]).unwrap();
    let input = gguf_file(&[], &[("w.weight", vec![256, 2], 35, tq2.bytes.clone())], 32);
    let plan = plan_conversion(
        &[header(&input)],
        &PlanOptions { output: OutputFormat::BitnetHf, layout: TernaryLayout::BitnetHf, ..PlanOptions::default() },
    )
    .unwrap();
    let out = run(&plan, &[&input]).unwrap();
    assert_eq!(tensor_bytes(&out, "w.weight_scale"), 0.5f32.to_le_bytes());
    // Equal scales everywhere also pass, into I2_S too.
    tq2 = TernaryTensor::from_codes(&codes(2, 256, 42), 2, 256, TernaryLayout::Tq2_0, Scope::Block(256), &[0.5, 0.5])
        .unwrap();
    let input = gguf_file(&[], &[("w.weight", vec![256, 2], 35, tq2.bytes.clone())], 32);
    let plan = plan_conversion(
        &[header(&input)],
        &opts(OutputFormat::Gguf, TernaryLayout::I2S, ScaleRule::AbsMean, Scope::Tensor),
    )
    .unwrap();
    let out = run(&plan, &[&input]).unwrap();
    let i2s = TernaryTensor::from_bytes(
        tensor_bytes(&out, "w.weight").to_vec(),
        2,
        256,
        TernaryLayout::I2S,
        Scope::Tensor,
        None,
    )
    .unwrap();
    assert_eq!(i2s.codes(), tq2.codes());
    assert_eq!(i2s.scales, [0.5]);
}

#[test]
fn fallbacks_equal_the_core_quantizers() {
    let a = values(4 * 384, 51);
    let b = values(3 * 100, 52);
    let file = safetensors_file(
        None,
        &[t("a.weight", "F32", &[4, 384], f32_bytes(&a)), t("b.weight", "F32", &[3, 100], f32_bytes(&b))],
    );
    let plan = plan_conversion(&[header(&file)], &PlanOptions::default()).unwrap();
    let oa = op(&plan, "a.weight");
    assert_eq!(oa.kind, OpKind::Q8_0);
    let got = convert_tensor(oa, &input_of(oa, &[&file]), true).unwrap();
    let q8 = quantize_int8(
        &a,
        4,
        384,
        &Int8Options { layout: Int8Layout::Q8_0, scope: Scope::Block(32), ..Default::default() },
    )
    .unwrap();
    assert_eq!(got.bytes, q8.bytes);
    let stats = got.stats.unwrap();
    assert_eq!(stats.bits_per_weight, Some(8.5));
    assert_eq!(stats.scale_min.unwrap(), q8.scales.iter().fold(f32::INFINITY, |m, &s| m.min(s)) as f64);
    assert!(stats.snr_db.unwrap() > 30.0);

    let ob = op(&plan, "b.weight");
    assert_eq!((ob.kind, ob.out_type), (OpKind::Convert, DType::F16));
    let got = convert_tensor(ob, &input_of(ob, &[&file]), false).unwrap();
    assert_eq!(got.bytes, f16_bytes(&b));
}

#[test]
fn float_conversions_and_their_limits() {
    let norm = values(64, 61);
    let file = safetensors_file(
        None,
        &[
            t("n.norm", "BF16", &[64], bf16_bytes(&norm)),
            t("e.embed", "F32", &[2, 4], f32_bytes(&[1.0, -2.0, 65504.0, 70000.0, 0.0, 0.0, 0.0, 0.0])),
            // The largest f32 below 65520 rounds down to F16's largest value; -65520 is
            // the tie that rounds to infinity.
            t("e.edge", "F32", &[2, 2], f32_bytes(&[65519.996, -65519.996, 0.5, 0.0])),
            t("e.tie", "F32", &[2, 2], f32_bytes(&[65519.996, 0.5, 1.0, -65520.0])),
        ],
    );
    let plan = plan_conversion(&[header(&file)], &PlanOptions::default()).unwrap();
    let n = op(&plan, "n.norm");
    let got = convert_tensor(n, &input_of(n, &[&file]), true).unwrap();
    let exact: Vec<f32> = norm.iter().map(|v| half::bf16::from_f32(*v).to_f32()).collect();
    assert_eq!(got.bytes, f32_bytes(&exact));
    let stats = got.stats.unwrap();
    assert_eq!((stats.mse, stats.snr_db, stats.cosine), (Some(0.0), Some(f64::INFINITY), Some(1.0)));
    let e = op(&plan, "e.embed");
    match convert_tensor(e, &input_of(e, &[&file]), false) {
        Err(Error::Tensor { name, source }) => {
            assert_eq!(name, "e.embed");
            let message = source.to_string();
            assert!(message.contains("70000") && message.contains("index 3"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    let edge = op(&plan, "e.edge");
    let halves = convert_tensor(edge, &input_of(edge, &[&file]), false).unwrap().bytes;
    assert_eq!(halves, [0x7bff_u16, 0xfbff, 0x3800, 0].iter().flat_map(|h| h.to_le_bytes()).collect::<Vec<u8>>());
    let tie = op(&plan, "e.tie");
    match convert_tensor(tie, &input_of(tie, &[&file]), false) {
        Err(Error::Tensor { source, .. }) => {
            let message = source.to_string();
            assert!(message.contains("-65520") && message.contains("index 3"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn non_finite_inputs_name_the_tensor_and_index() {
    let mut data = values(2 * 256, 71);
    data[7] = f32::NAN;
    let file = safetensors_file(None, &[t("w.weight", "F32", &[2, 256], f32_bytes(&data))]);
    let plan = plan_conversion(&[header(&file)], &PlanOptions::default()).unwrap();
    let o = op(&plan, "w.weight");
    match convert_tensor(o, &input_of(o, &[&file]), false) {
        Err(Error::Tensor { name, source }) => {
            assert_eq!(name, "w.weight");
            assert!(matches!(*source, Error::NonFinite { index: 7, .. }), "{source:?}");
        }
        other => panic!("{other:?}"),
    }
    data[7] = 0.0;
    data[300] = f32::NEG_INFINITY;
    let file = safetensors_file(None, &[t("w.weight", "F16", &[2, 256], f16_bytes(&data))]);
    let plan = plan_conversion(&[header(&file)], &PlanOptions::default()).unwrap();
    let o = op(&plan, "w.weight");
    let err = convert_tensor(o, &input_of(o, &[&file]), false).unwrap_err();
    assert!(matches!(err.root(), Error::NonFinite { index: 300, .. }), "{err:?}");
}

#[test]
fn wrong_input_lengths_and_bad_codes_are_errors() {
    let file = safetensors_file(None, &[f32_tensor("w.weight", &[2, 256], 81)]);
    let plan = plan_conversion(&[header(&file)], &PlanOptions::default()).unwrap();
    let o = op(&plan, "w.weight");
    let input = input_of(o, &[&file]);
    for bad in [&input[..input.len() - 1], &[][..]] {
        let err = convert_tensor(o, bad, false).unwrap_err();
        assert!(matches!(err.root(), Error::ByteLength { expected: 2048, .. }), "{err:?}");
    }
    // A TQ2_0 tensor holding the stored code 3.
    let mut tq2 = quantize_ternary(&values(256, 82), 1, 256, &Default::default()).unwrap().bytes;
    tq2[5] |= 0b11;
    let input = gguf_file(&[], &[("w.weight", vec![256, 1], 35, tq2)], 32);
    let plan = plan_conversion(
        &[header(&input)],
        &opts(OutputFormat::Gguf, TernaryLayout::Tq1_0, ScaleRule::AbsMean, Scope::Tensor),
    )
    .unwrap();
    let err = run(&plan, &[&input]).unwrap_err();
    assert!(matches!(err.root(), Error::InvalidCode { code: 3, .. }), "{err:?}");
}

#[test]
fn stats_describe_the_conversion() {
    let file = safetensors_file(None, &[f32_tensor("w.weight", &[4, 512], 91), f32_tensor("x.norm", &[512], 92)]);
    let plan = plan_conversion(&[header(&file)], &PlanOptions::default()).unwrap();
    let o = op(&plan, "w.weight");
    let s = convert_tensor(o, &input_of(o, &[&file]), true).unwrap().stats.unwrap();
    assert_eq!((s.name.as_str(), s.kind, s.in_type, s.out_type), ("w.weight", "quantize", "F32", "TQ2_0"));
    assert_eq!((s.shape.as_slice(), s.bytes_in, s.bytes_out), (&[4u64, 512][..], 4 * 512 * 4, 8 * 66));
    assert_eq!(s.bits_per_weight, Some(2.0625));
    assert_eq!(s.scale_min, s.scale_max);
    assert!(s.scale_min.unwrap() > 0.0);
    let zeros = s.zero_fraction.unwrap();
    assert!(zeros > 0.05 && zeros < 0.95, "{zeros}");
    assert!(s.cosine.unwrap() > 0.6 && s.cosine.unwrap() < 1.0, "{s:?}");
    assert!(s.mse.unwrap() > 0.0 && s.snr_db.unwrap().is_finite());
    assert_eq!(s.rmse.unwrap(), s.mse.unwrap().sqrt());

    let c = op(&plan, "x.norm");
    let s = convert_tensor(c, &input_of(c, &[&file]), true).unwrap().stats.unwrap();
    assert_eq!((s.kind, s.mse, s.zero_fraction, s.scale_mean), ("copy", None, None, None));
    assert_eq!(s.bits_per_weight, Some(32.0));
    let json = serde_json::to_value(&s).unwrap();
    assert!(json.get("snrDb").is_some() && json.get("bytesIn").is_some());
}

/// Measuring decodes TQ2_0, TQ1_0, Q8_0 and F16 outputs a chunk at a time; the figures
/// equal the whole-tensor ones (up to f64 summation order) and the zero fraction is exact.
#[test]
fn chunked_stats_equal_whole_tensor_stats() {
    let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * a.abs().max(b.abs()).max(1e-300);
    // Each tensor spans several 16,384-value chunks and ends in a partial one.
    let tq = values(81 * 1024, 95);
    let q8 = values(200 * 416, 96);
    let f16 = values(300 * 277, 97);
    let file = safetensors_file(
        None,
        &[
            t("tq.weight", "F32", &[81, 1024], f32_bytes(&tq)),
            t("q8.weight", "F32", &[200, 416], f32_bytes(&q8)),
            t("f16.weight", "F32", &[300, 277], f32_bytes(&f16)),
        ],
    );
    for layout in [TernaryLayout::Tq2_0, TernaryLayout::Tq1_0] {
        let plan =
            plan_conversion(&[header(&file)], &opts(OutputFormat::Gguf, layout, ScaleRule::AbsMax, Scope::Block(256)))
                .unwrap();
        let mut cases: Vec<(&str, &[f32], Vec<f32>)> = Vec::new();
        let t = quantize_ternary(
            &tq,
            81,
            1024,
            &TernaryOptions { layout, rule: ScaleRule::AbsMax, scope: Scope::Block(256), backend: Backend::best() },
        )
        .unwrap();
        cases.push(("tq.weight", &tq, t.dequantize()));
        let q = quantize_int8(
            &q8,
            200,
            416,
            &Int8Options { layout: Int8Layout::Q8_0, scope: Scope::Block(32), ..Default::default() },
        )
        .unwrap();
        cases.push(("q8.weight", &q8, q.dequantize()));
        cases.push(("f16.weight", &f16, f16_values(&f16_bytes(&f16))));
        for (name, reference, whole) in cases {
            let o = op(&plan, name);
            let s = convert_tensor(o, &input_of(o, &[&file]), true).unwrap().stats.unwrap();
            let want = error_stats(reference, &whole, Backend::best()).unwrap();
            for (what, got, want) in [
                ("mse", s.mse.unwrap(), want.mse),
                ("rmse", s.rmse.unwrap(), want.rmse),
                ("snrDb", s.snr_db.unwrap(), want.snr_db),
                ("cosine", s.cosine.unwrap(), want.cosine),
            ] {
                assert!(close(got, want), "{layout:?} {name} {what}: {got} chunked, {want} whole");
            }
            assert_eq!(s.max_abs_error.unwrap(), want.max_abs_error, "{layout:?} {name}");
            let zeros = whole.iter().filter(|&&v| v == 0.0).count() as f64 / whole.len() as f64;
            assert_eq!(s.zero_fraction.unwrap(), zeros, "{layout:?} {name}");
            assert!(s.mse.unwrap() > 0.0, "{layout:?} {name}: a lossy output");
        }
    }
}

#[test]
fn divide_semantics_invert_the_scale() {
    let q = codes(4, 256, 101);
    let packed = TernaryTensor::from_codes(&q, 4, 256, TernaryLayout::BitnetHf, Scope::Tensor, &[1.0]).unwrap();
    let config = r#"{"quant_method":"bitnet","linear_class":"bitlinear"}"#;
    let input = safetensors_file(
        Some(&[("quantization_config".into(), config.into())]),
        &[t("w.weight", "U8", &[1, 256], packed.bytes), t("w.weight_scale", "F16", &[], f16_bytes(&[4.0]))],
    );
    let plan = plan_conversion(&[header(&input)], &PlanOptions::default()).unwrap();
    let o = op(&plan, "w.weight");
    let got = convert_tensor(o, &input_of(o, &[&input]), true).unwrap();
    let t = TernaryTensor::from_bytes(got.bytes, 4, 256, TernaryLayout::Tq2_0, Scope::Tensor, None).unwrap();
    assert_eq!(t.scales, [0.25]);
    assert_eq!(t.codes(), q);
    let s = got.stats.unwrap();
    assert_eq!((s.kind, s.in_type, s.mse), ("repack", "bitnet-hf", Some(0.0)));
}

/// `convert_buffered` (F32 read in place from the aligned buffer) gives the same bytes
/// and statistics as `convert_tensor` on an unaligned copy of the input (decoded), for
/// every op kind, float input type and layout; one buffer is reused, growing and
/// shrinking, across all of them.
#[test]
fn buffered_conversion_equals_convert_tensor() {
    let mut buffer = InputBuffer::new();
    let mut checked = 0;
    for (i, dtype) in ["F32", "F16", "BF16"].into_iter().enumerate() {
        let enc = |x: &[f32]| match dtype {
            "F32" => f32_bytes(x),
            "F16" => f16_bytes(x),
            _ => bf16_bytes(x),
        };
        let seed = 100 + 10 * i as u64;
        let file = safetensors_file(
            None,
            &[
                t("model.embed_tokens.weight", dtype, &[8, 256], enc(&values(8 * 256, seed))),
                t("blk.attn.weight", dtype, &[4, 512], enc(&values(4 * 512, seed + 1))),
                t("blk.odd.weight", dtype, &[3, 384], enc(&values(3 * 384, seed + 2))),
                t("blk.small.weight", dtype, &[2, 256], enc(&values(2 * 256, seed + 3))),
                t("blk.norm.weight", dtype, &[256], enc(&values(256, seed + 4))),
            ],
        );
        for (output, layout, rule, scope) in [
            (OutputFormat::Gguf, TernaryLayout::Tq2_0, ScaleRule::AbsMean, Scope::Tensor),
            (OutputFormat::Gguf, TernaryLayout::Tq2_0, ScaleRule::AbsMax, Scope::Block(256)),
            (OutputFormat::Gguf, TernaryLayout::Tq1_0, ScaleRule::Twn, Scope::Row),
            (OutputFormat::Gguf, TernaryLayout::I2S, ScaleRule::Median, Scope::Tensor),
            (OutputFormat::BitnetHf, TernaryLayout::BitnetHf, ScaleRule::AbsMean, Scope::Tensor),
        ] {
            let plan = plan_conversion(&[header(&file)], &opts(output, layout, rule, scope)).unwrap();
            for o in &plan.ops {
                let input = input_of(o, &[&file]);
                // An unaligned copy: F32 is then decoded, not read in place.
                let mut shifted = vec![0u8; input.len() + 1];
                shifted[1..].copy_from_slice(&input);
                buffer.prepare(input.len()).copy_from_slice(&input);
                for measure in [false, true] {
                    let want = convert_tensor(o, &shifted[1..], measure).unwrap();
                    let got = convert_buffered(o, &buffer, measure).unwrap();
                    assert_eq!(got, want, "{dtype} {layout:?} {rule:?} {scope:?} {} measure {measure}", o.name);
                    assert_eq!(got.stats.is_some(), measure);
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * 5 * 5);
    // Grown to the largest input (8 x 256 F32), never beyond a word of padding.
    assert_eq!(buffer.capacity(), 8 * 256 * 4);
}

/// Converts `o` through [`ChunkedConversion`] with pieces of `chunk_bytes(max)` bytes:
/// the concatenated output bytes and the statistics.
fn convert_in_pieces(o: &PlanOp, input: &[u8], max: u64, measure: bool) -> (Vec<u8>, Option<TensorStats>) {
    let mut chunked = ChunkedConversion::new(o, measure).unwrap();
    let piece = chunked.chunk_bytes(max) as usize;
    assert!(piece > 0 && piece as u64 <= max.max(piece as u64));
    let mut out = Vec::new();
    for part in input.chunks(piece) {
        out.extend(chunked.convert(part).unwrap());
    }
    (out, chunked.finish().unwrap())
}

/// Every op that converts in pieces gives, piece by piece, the bytes and the statistics
/// (to the bit, at the piece sizes `chunk_bytes` gives) of the whole tensor: float
/// conversions, copies, Q8_0 and ternary ops with row or block scales, at piece sizes
/// from one granule to more than the tensor. Ops that need the whole tensor are refused.
#[test]
fn chunked_conversions_equal_whole_ones() {
    let file = safetensors_file(
        None,
        &[
            t("model.embed_tokens.weight", "F32", &[96, 512], f32_bytes(&values(96 * 512, 201))),
            t("blk.q.weight", "F16", &[80, 1024], f16_bytes(&values(80 * 1024, 202))),
            t("blk.odd.weight", "BF16", &[70, 416], bf16_bytes(&values(70 * 416, 203))),
            t("blk.norm.weight", "BF16", &[37_000], bf16_bytes(&values(37_000, 204))),
            t("blk.bias", "F32", &[300], f32_bytes(&values(300, 205))),
        ],
    );
    let mut kinds = std::collections::BTreeSet::new();
    for (layout, rule, scope) in [
        (TernaryLayout::Tq2_0, ScaleRule::AbsMax, Scope::Block(256)),
        (TernaryLayout::Tq1_0, ScaleRule::AbsMean, Scope::Row),
        (TernaryLayout::Tq2_0, ScaleRule::AbsMean, Scope::Tensor),
    ] {
        let mut options = opts(OutputFormat::Gguf, layout, rule, scope);
        options.force_keep.insert("blk.bias".into());
        let plan = plan_conversion(&[header(&file)], &options).unwrap();
        for o in &plan.ops {
            let input = input_of(o, &[&file]);
            let whole = convert_tensor(o, &input, true).unwrap();
            if !ChunkedConversion::supports(o) {
                assert!(o.kind == OpKind::Quantize && scope == Scope::Tensor, "{} {:?}", o.name, o.kind);
                assert!(ChunkedConversion::new(o, false).is_err());
                continue;
            }
            kinds.insert(format!("{:?}", o.kind));
            for max in [1, 4096, 30_000, 150_000, 1 << 30] {
                let (bytes, stats) = convert_in_pieces(o, &input, max, true);
                assert_eq!(bytes, whole.bytes, "{} {layout:?} {scope:?} pieces of {max}", o.name);
                let (got, want) = (stats.unwrap(), whole.stats.clone().unwrap());
                if max >= 150_000 || o.kind == OpKind::Copy {
                    assert_eq!(got, want, "{} {layout:?} {scope:?} pieces of {max}", o.name);
                } else {
                    let close = |a: Option<f64>, b: Option<f64>| {
                        a.zip(b).is_none_or(|(a, b)| (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1e-30))
                    };
                    assert!(close(got.mse, want.mse) && close(got.cosine, want.cosine), "{got:?} {want:?}");
                    assert_eq!(
                        (got.scale_min, got.scale_max, got.zero_fraction),
                        (want.scale_min, want.scale_max, want.zero_fraction)
                    );
                }
            }
            let (bytes, stats) = convert_in_pieces(o, &input, 4096, false);
            assert_eq!((bytes, stats), (whole.bytes.clone(), None));
        }
    }
    let want: std::collections::BTreeSet<String> =
        ["Convert", "Copy", "Q8_0", "Quantize"].iter().map(|s| s.to_string()).collect();
    assert_eq!(kinds, want);
}

/// Errors of a piece name the tensor and the value's index in the whole tensor; pieces
/// that are not whole granules, or go past the input, and finishing early are errors.
#[test]
fn chunked_conversion_errors_name_the_tensor_and_the_index() {
    let mut data = values(4 * 1024, 211);
    data[3000] = f32::NAN;
    let mut big = values(4096, 212);
    big[2500] = 1.0e6;
    let file = safetensors_file(
        None,
        &[
            t("w.weight", "F32", &[4, 1024], f32_bytes(&data)),
            t("model.embed_tokens.weight", "F32", &[8, 512], f32_bytes(&big)),
        ],
    );
    let plan = plan_conversion(
        &[header(&file)],
        &opts(OutputFormat::Gguf, TernaryLayout::Tq2_0, ScaleRule::AbsMax, Scope::Block(256)),
    )
    .unwrap();
    let w = op(&plan, "w.weight");
    let input = input_of(w, &[&file]);
    let mut chunked = ChunkedConversion::new(w, true).unwrap();
    assert_eq!(chunked.chunk_bytes(5000), 4096, "one row of 1024 F32 values");
    chunked.convert(&input[..4096]).unwrap();
    chunked.convert(&input[4096..8192]).unwrap();
    match chunked.convert(&input[8192..12288]).unwrap_err() {
        Error::Tensor { name, source } => {
            assert_eq!(name, "w.weight");
            assert!(matches!(*source, Error::NonFinite { index: 3000, .. }), "{source:?}");
        }
        other => panic!("{other:?}"),
    }
    let mut chunked = ChunkedConversion::new(w, false).unwrap();
    for bad in [&input[..100], &input[..0]] {
        let message = chunked.convert(bad).unwrap_err().to_string();
        assert!(message.starts_with("tensor 'w.weight': ") && message.contains("4096 bytes"), "{message}");
    }
    chunked.convert(&input[..4096]).unwrap();
    let err = chunked.finish().unwrap_err();
    assert!(matches!(err.root(), Error::ByteLength { expected: 16384, actual: 4096, .. }), "{err:?}");

    let e = op(&plan, "model.embed_tokens.weight");
    assert_eq!((e.kind, e.out_type), (OpKind::Convert, DType::F16));
    let input = input_of(e, &[&file]);
    let mut chunked = ChunkedConversion::new(e, false).unwrap();
    chunked.convert(&input[..8192]).unwrap();
    let message = chunked.convert(&input[8192..]).unwrap_err().to_string();
    assert!(
        message.starts_with("tensor 'model.embed_tokens.weight': ") && message.contains("at index 2500"),
        "{message}"
    );
    // A tensor of finite values: whole, then one piece too many.
    let fine = safetensors_file(None, &[f32_tensor("model.embed_tokens.weight", &[8, 512], 213)]);
    let plan = plan_conversion(&[header(&fine)], &PlanOptions::default()).unwrap();
    let e = op(&plan, "model.embed_tokens.weight");
    let input = input_of(e, &[&fine]);
    let mut chunked = ChunkedConversion::new(e, false).unwrap();
    chunked.convert(&input).unwrap();
    let message = chunked.convert(&input[..4]).unwrap_err().to_string();
    assert!(message.contains("and 0 bytes remain"), "{message}");
    chunked.finish().unwrap();
}

/// Ternarised tensors say how ternary their values are; a conversion whose median fit
/// is low gets one warning line, one of weights that are ternary already does not.
#[test]
fn ternary_fit_and_the_far_from_ternary_warning() {
    use ternary_quant::io::convert::{far_from_ternary, ternary_fit_db, FAR_FROM_TERNARY_DB};
    let ternary: Vec<f32> = values(4 * 512, 301).iter().map(|v| (v * 3.0).round().clamp(-1.0, 1.0) * 0.25).collect();
    assert_eq!(ternary_fit_db(&ternary, Backend::best()).unwrap(), f64::INFINITY);
    let smooth = values(4 * 512, 302);
    let fit = ternary_fit_db(&smooth, Backend::best()).unwrap();
    assert!(fit > 3.0 && fit < 10.0, "uniform values fit ternary at {fit} dB");

    let file = safetensors_file(
        None,
        &[
            t("a.weight", "F32", &[4, 512], f32_bytes(&smooth)),
            t("b.weight", "F32", &[4, 512], f32_bytes(&ternary)),
            t("c.norm", "F32", &[512], f32_bytes(&values(512, 303))),
        ],
    );
    let plan = plan_conversion(&[header(&file)], &PlanOptions::default()).unwrap();
    let fits: Vec<Option<f64>> =
        plan.ops.iter().map(|o| convert_tensor(o, &input_of(o, &[&file]), false).unwrap().ternary_fit_db).collect();
    assert_eq!(fits, [Some(fit), Some(f64::INFINITY), None], "only ternarised tensors have a fit");

    let warning = far_from_ternary(&[fit, fit, f64::INFINITY]).expect("a median under the bar warns");
    assert!(warning.contains(&format!("{fit:.1} dB")) && warning.contains("--preset best") && !warning.contains('\n'));
    assert_eq!(far_from_ternary(&[fit, f64::INFINITY, f64::INFINITY]), None);
    assert_eq!(far_from_ternary(&[FAR_FROM_TERNARY_DB]), None);
    assert_eq!(far_from_ternary(&[]), None);
}

/// The report's output error: the SNR of y = W x for the fixed Gaussian probe x, from
/// the input's values and the output's, as a direct computation gives it; exact
/// conversions give +inf, and vectors have none.
#[test]
fn output_error_on_the_probe() {
    use ternary_quant::io::convert::probe_vector;
    let (rows, cols) = (24, 512);
    let w = values(rows * cols, 311);
    let file = safetensors_file(
        None,
        &[
            t("w.weight", "F32", &[rows as u64, cols as u64], f32_bytes(&w)),
            t("n.norm", "F32", &[512], f32_bytes(&w[..512])),
        ],
    );
    let plan = plan_conversion(&[header(&file)], &PlanOptions::default()).unwrap();
    let o = op(&plan, "w.weight");
    let s = convert_tensor(o, &input_of(o, &[&file]), true).unwrap().stats.unwrap();
    let q = quantize_ternary(&w, rows, cols, &TernaryOptions::default()).unwrap().dequantize();
    let x = probe_vector(cols);
    let (mut signal, mut noise) = (0f64, 0f64);
    for r in 0..rows {
        let dot = |m: &[f32]| (0..cols).map(|c| f64::from(m[r * cols + c]) * f64::from(x[c])).sum::<f64>();
        let (y, yq) = (dot(&w), dot(&q));
        signal += y * y;
        noise += (y - yq) * (y - yq);
    }
    let want = 10.0 * (signal / noise).log10();
    let got = s.output_snr_db.unwrap();
    assert!((got - want).abs() < 1e-9 * want.abs(), "output SNR {got}, direct {want}");
    assert!(got.is_finite() && got > 0.0);
    let n = op(&plan, "n.norm");
    let s = convert_tensor(n, &input_of(n, &[&file]), true).unwrap().stats.unwrap();
    assert_eq!(s.output_snr_db, None, "a vector has no output error");
    assert_eq!(x, probe_vector(cols), "the probe is fixed");
    let mean = x.iter().map(|&v| f64::from(v)).sum::<f64>() / cols as f64;
    assert!(mean.abs() < 0.2, "a standard Gaussian probe: mean {mean}");
}

/// A plan with an importance matrix weighs the tensors it names, and only those; an
/// entry of the wrong length is an error naming the tensor.
#[test]
fn importance_matrices_weigh_the_tensors_they_name() {
    use ternary_quant::io::ImportanceMatrix;
    use ternary_quant::quantize_ternary_weighted;
    let w = values(4 * 512, 401);
    let file = safetensors_file(
        None,
        &[t("a.weight", "F32", &[4, 512], f32_bytes(&w)), t("b.weight", "F32", &[4, 512], f32_bytes(&w))],
    );
    let importance: Vec<f32> = (0..512).map(|i| if i < 100 { 50.0 } else { 1.0 }).collect();
    let matrix = |values: Vec<f32>| ImportanceMatrix {
        entries: [("a.weight".to_string(), values)].into_iter().collect(),
        datasets: vec![],
        chunk_count: None,
        legacy: true,
    };
    let mut options = opts(OutputFormat::Gguf, TernaryLayout::Tq2_0, ScaleRule::Optimal, Scope::Block(256));
    options.importance = Some(matrix(importance.clone()));
    let plan = plan_conversion(&[header(&file)], &options).unwrap();
    let (a, b) = (op(&plan, "a.weight"), op(&plan, "b.weight"));
    assert_eq!((a.importance.as_deref(), b.importance.as_deref()), (Some(&importance[..]), None));
    let topts = TernaryOptions {
        layout: TernaryLayout::Tq2_0,
        rule: ScaleRule::Optimal,
        scope: Scope::Block(256),
        backend: Backend::best(),
    };
    let want = quantize_ternary_weighted(&w, 4, 512, &topts, &importance).unwrap();
    assert_eq!(convert_tensor(a, &input_of(a, &[&file]), false).unwrap().bytes, want.bytes);
    assert_ne!(convert_tensor(b, &input_of(b, &[&file]), false).unwrap().bytes, want.bytes);
    options.importance = Some(matrix(vec![1.0; 3]));
    let err = plan_conversion(&[header(&file)], &options).unwrap_err().to_string();
    assert!(err.contains("3 values for tensor 'a.weight', which has rows of 512"), "{err}");
}
