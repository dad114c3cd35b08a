//! Plan decisions: default selection, overrides, fallbacks and their reasons, output
//! headers (GGUF and bitnet-hf) read back, metadata kept or written, options refused.
#![cfg(feature = "model-files")]

mod io_util;

use io_util::*;
use ternary_quant::io::gguf::read_gguf;
use ternary_quant::io::plan::{default_ternary, QUANTIZATION_CONFIG};
use ternary_quant::io::{
    plan_conversion, DType, GgufArray, GgufType, GgufValue, Metadata, ModelHeader, OpKind, OutputFormat, PlanOp,
    PlanOptions, ScaleSemantics,
};
use ternary_quant::{Error, ScaleRule, Scope, TernaryLayout};

// llama.cpp's LLAMA_FTYPE_MOSTLY_TQ1_0 and LLAMA_FTYPE_MOSTLY_TQ2_0, bitnet.cpp's
// LLAMA_FTYPE_MOSTLY_I2_S.
const FTYPE_TQ1_0: u32 = 36;
const FTYPE_TQ2_0: u32 = 37;
const FTYPE_I2_S: u32 = 40;

fn op<'a>(ops: &'a [PlanOp], name: &str) -> &'a PlanOp {
    ops.iter().find(|o| o.name == name).unwrap_or_else(|| panic!("no op {name}"))
}

fn gguf_opts(layout: TernaryLayout) -> PlanOptions {
    PlanOptions { layout, ..PlanOptions::default() }
}

fn bitnet_opts() -> PlanOptions {
    PlanOptions { output: OutputFormat::BitnetHf, layout: TernaryLayout::BitnetHf, ..PlanOptions::default() }
}

fn gguf_metadata(h: &ModelHeader) -> &[(String, GgufValue)] {
    match &h.metadata {
        Metadata::Gguf(m) => m,
        _ => panic!("not GGUF"),
    }
}

/// A small llama-like safetensors model.
fn model() -> Vec<u8> {
    let n = |s: &[u64]| s.iter().product::<u64>() as usize;
    safetensors_file(
        Some(&[("format".into(), "pt".into())]),
        &[
            f32_tensor("model.embed_tokens.weight", &[16, 256], 1),
            f32_tensor("model.layers.0.self_attn.q_proj.weight", &[8, 512], 2),
            f32_tensor("model.layers.0.mlp.down_proj.weight", &[4, 384], 3),
            t("model.layers.0.mlp.up_proj.weight", "BF16", &[2, 3200], bf16_bytes(&values(n(&[2, 3200]), 4))),
            t("model.layers.0.odd.weight", "F16", &[3, 100], f16_bytes(&values(300, 5))),
            f32_tensor("model.layers.0.input_layernorm.weight", &[512], 6),
            t("model.norm.weight", "BF16", &[512], bf16_bytes(&values(512, 7))),
            t("lm_head.weight", "F16", &[16, 256], f16_bytes(&values(16 * 256, 8))),
            f32_tensor("model.layers.0.self_attn.k_proj.bias", &[8], 9),
            t("counts", "I64", &[3], vec![1; 24]),
        ],
    )
}

#[test]
fn default_selection_patterns() {
    for (name, expected) in [
        ("model.layers.0.self_attn.q_proj.weight", true),
        ("model.embed_tokens.weight", false),
        ("lm_head.weight", false),
        ("model.layers.3.post_attention_layernorm.weight", false),
        ("transformer.wte.weight", false),
        ("transformer.wpe.weight", false),
        ("output.weight", false),
        ("model.output.weight", false),
        ("blk.0.attn_output.weight", true),
        ("blk.0.ffn_down.weight", true),
        ("token_embd.weight", false),
        ("output_norm.weight", false),
    ] {
        assert_eq!(default_ternary(name, &[4, 256]), expected, "{name}");
    }
    assert!(!default_ternary("model.layers.0.mlp.up_proj.weight", &[256]));
    assert!(!default_ternary("model.layers.0.mlp.up_proj.weight", &[2, 4, 256]));
}

#[test]
fn gguf_from_safetensors_defaults_and_fallbacks() {
    let bytes = model();
    let plan = plan_conversion(&[header(&bytes)], &PlanOptions::default()).unwrap();
    let ops = &plan.ops;
    let check = |name: &str, kind: OpKind, in_type: DType, out_type: DType| {
        let o = op(ops, name);
        assert_eq!((o.kind, o.in_type, o.out_type), (kind, in_type, out_type), "{name}");
        o
    };
    let e = check("model.embed_tokens.weight", OpKind::Convert, DType::F32, DType::F16);
    assert_eq!(e.fallback_reason, None);
    assert_eq!(e.output_length, 16 * 256 * 2);
    let q = check("model.layers.0.self_attn.q_proj.weight", OpKind::Quantize, DType::F32, DType::Tq2_0);
    assert_eq!((q.output_length, q.fallback_reason.as_deref()), (8 * 2 * 66, None));
    assert_eq!(q.bits_per_weight(), Some(2.0625));
    let d = check("model.layers.0.mlp.down_proj.weight", OpKind::Q8_0, DType::F32, DType::Q8_0);
    let reason = d.fallback_reason.as_deref().unwrap();
    assert!(reason.contains("384") && reason.contains("256") && reason.contains("Q8_0"), "{reason}");
    assert_eq!(d.output_length, 4 * 12 * 34);
    let u = check("model.layers.0.mlp.up_proj.weight", OpKind::Q8_0, DType::BF16, DType::Q8_0);
    assert!(u.fallback_reason.as_deref().unwrap().contains("rows of 3200 values"));
    let odd = check("model.layers.0.odd.weight", OpKind::Copy, DType::F16, DType::F16);
    let reason = odd.fallback_reason.as_deref().unwrap();
    assert!(reason.contains("F16") && reason.contains("100"), "{reason}");
    check("model.layers.0.input_layernorm.weight", OpKind::Copy, DType::F32, DType::F32);
    check("model.norm.weight", OpKind::Convert, DType::BF16, DType::F32);
    check("lm_head.weight", OpKind::Copy, DType::F16, DType::F16);
    check("model.layers.0.self_attn.k_proj.bias", OpKind::Copy, DType::F32, DType::F32);
    check("counts", OpKind::Copy, DType::I64, DType::I64);
    assert!(ops
        .iter()
        .filter(|o| o.kind != OpKind::Q8_0 && o.name != "model.layers.0.odd.weight")
        .all(|o| o.fallback_reason.is_none()));

    // The header reads back: names kept, ne reversed, offsets and sizes as planned.
    let mut out = plan.header.clone();
    out.resize(plan.output_size as usize, 0);
    let h = read_gguf(&out, plan.output_size).unwrap();
    assert_eq!(h.version, Some(3));
    assert_eq!(h.data_offset, plan.header.len() as u64);
    assert_eq!(h.tensors.len(), ops.len());
    for (t, o) in h.tensors.iter().zip(ops) {
        assert_eq!(t.name, o.name);
        assert_eq!(t.dtype, o.out_type);
        assert_eq!(t.shape, o.shape);
        assert_eq!(t.offset, o.output_offset);
        assert_eq!(t.byte_len, o.output_length);
    }
    assert_eq!(
        gguf_metadata(&h),
        &[
            ("general.file_type".to_string(), GgufValue::U32(FTYPE_TQ2_0)),
            ("general.quantization_version".to_string(), GgufValue::U32(2)),
            ("general.alignment".to_string(), GgufValue::U32(32)),
        ]
    );
    // The whole output converts and reads back.
    let out = run(&plan, &[&bytes]).unwrap();
    assert_eq!(read_gguf(&out, out.len() as u64).unwrap(), h);
}

#[test]
fn gguf_tensor_names_and_default_selection() {
    let bytes = gguf_file(
        &[("general.architecture".into(), GgufValue::string("llama"))],
        &[
            ("token_embd.weight", vec![256, 4], 0, f32_bytes(&values(1024, 1))),
            ("blk.0.attn_norm.weight", vec![256], 0, f32_bytes(&values(256, 2))),
            ("blk.0.attn_output.weight", vec![256, 4], 0, f32_bytes(&values(1024, 3))),
            ("output.weight", vec![256, 4], 1, f16_bytes(&values(1024, 4))),
        ],
        32,
    );
    let plan = plan_conversion(&[header(&bytes)], &PlanOptions::default()).unwrap();
    let kinds: Vec<(&str, OpKind, DType)> = plan.ops.iter().map(|o| (o.name.as_str(), o.kind, o.out_type)).collect();
    assert_eq!(
        kinds,
        [
            ("token_embd.weight", OpKind::Convert, DType::F16),
            ("blk.0.attn_norm.weight", OpKind::Copy, DType::F32),
            ("blk.0.attn_output.weight", OpKind::Quantize, DType::Tq2_0),
            ("output.weight", OpKind::Copy, DType::F16),
        ]
    );
    // Shapes are row-major: ne [256, 4] is 4 rows of 256.
    assert_eq!(plan.ops[2].shape, [4, 256]);
}

#[test]
fn overrides_and_their_reasons() {
    let bytes = safetensors_file(
        None,
        &[
            f32_tensor("a.norm.weight", &[256], 1),
            f32_tensor("b.q_proj.weight", &[2, 256], 2),
            f32_tensor("c.embed.weight", &[2, 256], 3),
            f32_tensor("d.conv.weight", &[2, 2, 256], 4),
            t("e.ids", "I32", &[2, 256], vec![0; 2048]),
        ],
    );
    let h = header(&bytes);
    let set = |names: &[&str]| names.iter().map(|s| s.to_string()).collect();
    let opts = PlanOptions {
        force_ternary: set(&["a.norm.weight", "c.embed.weight", "d.conv.weight", "e.ids", "b.q_proj.weight"]),
        force_keep: set(&["b.q_proj.weight"]),
        ..PlanOptions::default()
    };
    let plan = plan_conversion(std::slice::from_ref(&h), &opts).unwrap();
    let a = op(&plan.ops, "a.norm.weight");
    assert_eq!((a.kind, a.out_type), (OpKind::Copy, DType::F32));
    assert!(a.fallback_reason.as_deref().unwrap().contains("2 or more dimensions"));
    // force_keep wins over force_ternary.
    let b = op(&plan.ops, "b.q_proj.weight");
    assert_eq!((b.kind, b.out_type, b.fallback_reason.as_deref()), (OpKind::Convert, DType::F16, None));
    let c = op(&plan.ops, "c.embed.weight");
    assert_eq!((c.kind, c.out_type), (OpKind::Quantize, DType::Tq2_0));
    // GGUF takes 3-D tensors as rows of their last dimension.
    let d = op(&plan.ops, "d.conv.weight");
    assert_eq!((d.kind, d.output_length), (OpKind::Quantize, 4 * 66));
    let e = op(&plan.ops, "e.ids");
    assert_eq!((e.kind, e.out_type), (OpKind::Copy, DType::I32));
    assert!(e.fallback_reason.as_deref().unwrap().contains("cannot be decoded"));

    // bitnet-hf packs 2-D weights only.
    let plan = plan_conversion(
        std::slice::from_ref(&h),
        &PlanOptions { output: OutputFormat::BitnetHf, layout: TernaryLayout::BitnetHf, ..opts.clone() },
    )
    .unwrap();
    let d = op(&plan.ops, "d.conv.weight");
    assert_eq!((d.kind, d.out_type), (OpKind::Copy, DType::F32));
    assert!(d.fallback_reason.as_deref().unwrap().contains("2-D"));

    for (force_ternary, force_keep, option) in
        [(set(&["nope"]), set(&[]), "forceTernary"), (set(&[]), set(&["nope"]), "forceKeep")]
    {
        let r = plan_conversion(
            std::slice::from_ref(&h),
            &PlanOptions { force_ternary, force_keep, ..PlanOptions::default() },
        );
        match r {
            Err(Error::InvalidOption { name, reason }) => {
                assert_eq!(name, option);
                assert!(reason.contains("'nope'"));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn layouts_and_file_types() {
    let bytes = safetensors_file(
        None,
        &[
            f32_tensor("a.weight", &[2, 256], 1),
            f32_tensor("b.weight", &[2, 384], 2),
            f32_tensor("c.weight", &[2, 3200], 3),
            f32_tensor("d.weight", &[2, 100], 4),
        ],
    );
    let h = header(&bytes);
    let plan = |layout| plan_conversion(std::slice::from_ref(&h), &gguf_opts(layout)).unwrap();
    let file_type = |p: &ternary_quant::ConversionPlan| {
        let mut out = p.header.clone();
        out.resize(p.output_size as usize, 0);
        let h = read_gguf(&out, p.output_size).unwrap();
        gguf_metadata(&h).iter().find(|(k, _)| k == "general.file_type").unwrap().1.clone()
    };

    let tq1 = plan(TernaryLayout::Tq1_0);
    assert_eq!(file_type(&tq1), GgufValue::U32(FTYPE_TQ1_0));
    assert_eq!(FTYPE_TQ1_0, 36);
    let types: Vec<DType> = tq1.ops.iter().map(|o| o.out_type).collect();
    assert_eq!(types, [DType::Tq1_0, DType::Q8_0, DType::Q8_0, DType::F16]);
    assert_eq!(tq1.ops[0].output_length, 2 * 54);

    let i2s = plan(TernaryLayout::I2S);
    assert_eq!(file_type(&i2s), GgufValue::U32(FTYPE_I2_S));
    let types: Vec<DType> = i2s.ops.iter().map(|o| o.out_type).collect();
    assert_eq!(types, [DType::I2S, DType::I2S, DType::I2S, DType::F16]);
    assert_eq!(i2s.ops[1].output_length, 2 * 384 / 4 + 32);
    let reason = i2s.ops[3].fallback_reason.as_deref().unwrap();
    assert!(reason.contains("I2_S's block of 128") && reason.contains("F16"), "{reason}");

    assert_eq!(file_type(&plan(TernaryLayout::Tq2_0)), GgufValue::U32(37));
}

#[test]
fn options_are_checked() {
    let bytes = safetensors_file(None, &[f32_tensor("a.weight", &[2, 256], 1)]);
    let h = header(&bytes);
    let fails = |opts: PlanOptions| plan_conversion(std::slice::from_ref(&h), &opts).unwrap_err();
    assert!(matches!(fails(gguf_opts(TernaryLayout::BitnetHf)), Error::InvalidOption { name: "layout", .. }));
    assert!(matches!(fails(gguf_opts(TernaryLayout::Codes)), Error::InvalidOption { name: "layout", .. }));
    assert!(matches!(
        fails(PlanOptions { output: OutputFormat::BitnetHf, ..PlanOptions::default() }),
        Error::InvalidOption { name: "layout", .. }
    ));
    assert!(matches!(fails(PlanOptions { scope: Scope::Row, ..gguf_opts(TernaryLayout::I2S) }), Error::Unsupported(_)));
    assert!(matches!(fails(PlanOptions { scope: Scope::Block(128), ..PlanOptions::default() }), Error::Unsupported(_)));
    assert!(matches!(
        fails(PlanOptions { scope: Scope::Block(0), ..PlanOptions::default() }),
        Error::InvalidOption { .. }
    ));
    assert!(matches!(fails(PlanOptions { scope: Scope::Row, ..bitnet_opts() }), Error::Unsupported(_)));
    // Row and block scopes are fine for TQ2_0.
    plan_conversion(std::slice::from_ref(&h), &PlanOptions { scope: Scope::Row, ..PlanOptions::default() }).unwrap();
    plan_conversion(
        std::slice::from_ref(&h),
        &PlanOptions { scope: Scope::Block(256), rule: ScaleRule::AbsMax, ..PlanOptions::default() },
    )
    .unwrap();

    assert!(matches!(plan_conversion(&[], &PlanOptions::default()), Err(Error::EmptyInput { .. })));
    let g = header(&gguf_file(&[], &[("x", vec![4], 0, vec![0; 16])], 32));
    assert!(matches!(plan_conversion(&[h.clone(), g.clone()], &PlanOptions::default()), Err(Error::Unsupported(_))));
    assert!(matches!(plan_conversion(&[g.clone(), g], &PlanOptions::default()), Err(Error::Unsupported(_))));
    // Types GGUF cannot hold.
    let u16s = header(&safetensors_file(None, &[t("ids", "U16", &[4], vec![0; 8])]));
    match plan_conversion(&[u16s], &PlanOptions::default()) {
        Err(Error::Tensor { name, source }) => {
            assert_eq!(name, "ids");
            assert!(source.to_string().contains("U16 has no GGUF type"));
        }
        other => panic!("{other:?}"),
    }
}

fn every_kind_metadata() -> Vec<(String, GgufValue)> {
    let arr = |t, items| GgufValue::Array(GgufArray::new(t, items).unwrap());
    vec![
        ("general.architecture".into(), GgufValue::string("llama")),
        ("general.alignment".into(), GgufValue::U32(64)),
        ("general.file_type".into(), GgufValue::U32(1)),
        ("llama.context_length".into(), GgufValue::U32(4096)),
        ("llama.rope.freq_base".into(), GgufValue::F32(10000.0)),
        ("tokenizer.ggml.tokens".into(), arr(GgufType::String, vec![GgufValue::string("<s>"), GgufValue::string("a")])),
        ("tokenizer.ggml.scores".into(), arr(GgufType::F32, vec![GgufValue::F32(0.0), GgufValue::F32(-1.5)])),
        ("x.nested".into(), arr(GgufType::Array, vec![arr(GgufType::I64, vec![GgufValue::I64(-5)])])),
        ("x.flag".into(), GgufValue::Bool(true)),
        ("x.big".into(), GgufValue::U64(u64::MAX)),
    ]
}

#[test]
fn gguf_to_gguf_keeps_metadata_and_alignment() {
    let q8 = ternary_quant::quantize_int8(
        &values(2 * 256, 3),
        2,
        256,
        &ternary_quant::Int8Options {
            layout: ternary_quant::Int8Layout::Q8_0,
            scope: Scope::Block(32),
            ..Default::default()
        },
    )
    .unwrap();
    let tq2 = ternary_quant::quantize_ternary(&values(4 * 256, 4), 4, 256, &Default::default()).unwrap();
    let metadata = every_kind_metadata();
    let bytes = gguf_file(
        &metadata,
        &[
            ("blk.0.attn_q.weight", vec![256, 4], 35, tq2.bytes.clone()),
            ("blk.0.ffn_up.weight", vec![256, 2], 8, q8.bytes.clone()),
            ("blk.0.ffn_norm.weight", vec![64], 8, q8.bytes[..68].to_vec()),
            ("blk.0.ffn_gate.weight", vec![256, 1], 12, vec![0; 144]),
            ("blk.0.attn_norm.weight", vec![256], 0, f32_bytes(&values(256, 5))),
        ],
        64,
    );
    let input = header(&bytes);
    let plan = plan_conversion(std::slice::from_ref(&input), &gguf_opts(TernaryLayout::Tq1_0)).unwrap();
    let kinds: Vec<(OpKind, DType, DType)> = plan.ops.iter().map(|o| (o.kind, o.in_type, o.out_type)).collect();
    assert_eq!(
        kinds,
        [
            (OpKind::Repack, DType::Tq2_0, DType::Tq1_0),
            (OpKind::Quantize, DType::Q8_0, DType::Tq1_0),
            (OpKind::Copy, DType::Q8_0, DType::Q8_0),
            (OpKind::Copy, DType::GgmlOther(12), DType::GgmlOther(12)),
            (OpKind::Copy, DType::F32, DType::F32),
        ]
    );
    assert!(plan.ops[3].fallback_reason.as_deref().unwrap().contains("Q4_K values cannot be decoded"));
    // Already in the output layout: copied.
    let same = plan_conversion(std::slice::from_ref(&input), &PlanOptions::default()).unwrap();
    assert_eq!((same.ops[0].kind, same.ops[0].out_type), (OpKind::Copy, DType::Tq2_0));

    let out = run(&plan, &[&bytes]).unwrap();
    let h = read_gguf(&out, out.len() as u64).unwrap();
    assert_eq!(h.alignment, Some(64));
    let mut expected = metadata.clone();
    expected[2].1 = GgufValue::U32(FTYPE_TQ1_0);
    expected.push(("general.quantization_version".into(), GgufValue::U32(2)));
    assert_eq!(gguf_metadata(&h), expected.as_slice());
    assert!(h.tensors.iter().all(|t| t.offset % 64 == 0));
    // Copies are byte for byte.
    for (i, o) in plan.ops.iter().enumerate().filter(|(_, o)| o.kind == OpKind::Copy) {
        let (a, b) = (&input.tensors[i], &h.tensors[i]);
        assert_eq!(
            bytes[a.offset as usize..(a.offset + a.byte_len) as usize],
            out[b.offset as usize..(b.offset + b.byte_len) as usize],
            "{}",
            o.name
        );
    }
}

#[test]
fn bitnet_hf_output_header_and_metadata() {
    let bytes = safetensors_file(
        Some(&[("note".into(), "kept".into())]),
        &[
            f32_tensor("model.embed_tokens.weight", &[4, 8], 1),
            f32_tensor("model.layers.0.self_attn.q_proj.weight", &[10, 12], 2),
            f32_tensor("model.layers.0.input_layernorm.weight", &[12], 3),
            t("model.layers.0.mask", "BOOL", &[3], vec![1, 0, 1]),
        ],
    );
    let plan = plan_conversion(&[header(&bytes)], &bitnet_opts()).unwrap();
    let q = op(&plan.ops, "model.layers.0.self_attn.q_proj.weight");
    assert_eq!((q.kind, q.out_type), (OpKind::Quantize, DType::BitnetHf));
    assert_eq!(q.output_length, 3 * 12 + 4);
    assert_eq!(q.scale_name.as_deref(), Some("model.layers.0.self_attn.q_proj.weight_scale"));
    assert!(plan.ops.iter().filter(|o| o.name != q.name).all(|o| o.kind == OpKind::Copy));

    let out = run(&plan, &[&bytes]).unwrap();
    let h = header(&out);
    assert_eq!(
        h.metadata,
        Metadata::Safetensors(vec![
            ("format".into(), "pt".into()),
            ("note".into(), "kept".into()),
            ("quantization_config".into(), QUANTIZATION_CONFIG.into()),
        ])
    );
    let names: Vec<(&str, DType, &[u64])> =
        h.tensors.iter().map(|t| (t.name.as_str(), t.dtype, t.shape.as_slice())).collect();
    assert_eq!(
        names,
        [
            ("model.embed_tokens.weight", DType::F32, &[4u64, 8][..]),
            ("model.layers.0.self_attn.q_proj.weight", DType::U8, &[3, 12][..]),
            ("model.layers.0.self_attn.q_proj.weight_scale", DType::F32, &[1][..]),
            ("model.layers.0.input_layernorm.weight", DType::F32, &[12][..]),
            ("model.layers.0.mask", DType::Bool, &[3][..]),
        ]
    );
    // The reference reader accepts the file (it wants contiguous tensors and padding).
    let st = safetensors::SafeTensors::deserialize(&out).unwrap();
    assert_eq!(st.len(), 5);
    let json: serde_json::Value = serde_json::from_str(QUANTIZATION_CONFIG).unwrap();
    assert_eq!(json["linear_class"], "autobitlinear");

    // A new `_scale` tensor may not meet an input tensor of that name.
    let clash = safetensors_file(None, &[f32_tensor("a.weight", &[4, 8], 1), f32_tensor("a.weight_scale", &[2, 2], 2)]);
    assert!(matches!(plan_conversion(&[header(&clash)], &bitnet_opts()), Err(Error::Unsupported(_))));
}

/// A bitnet-hf checkpoint: packed q_proj with a BF16 scale, plus an embedding.
fn bitnet_checkpoint(metadata: Option<&[(String, String)]>) -> Vec<u8> {
    let codes: Vec<i8> = values(8 * 256, 9).iter().map(|v| (v * 40.0).round().clamp(-1.0, 1.0) as i8).collect();
    let packed =
        ternary_quant::TernaryTensor::from_codes(&codes, 8, 256, TernaryLayout::BitnetHf, Scope::Tensor, &[0.5])
            .unwrap();
    safetensors_file(
        metadata,
        &[
            f32_tensor("model.embed_tokens.weight", &[4, 256], 1),
            t("model.q_proj.weight", "U8", &[2, 256], packed.bytes),
            t("model.q_proj.weight_scale", "BF16", &[1], bf16_bytes(&[0.5])),
        ],
    )
}

#[test]
fn bitnet_hf_inputs_are_recognised() {
    let bytes = bitnet_checkpoint(None);
    let h = header(&bytes);
    let plan = plan_conversion(std::slice::from_ref(&h), &PlanOptions::default()).unwrap();
    assert_eq!(plan.ops.len(), 2, "the scale folds into its weight");
    let q = op(&plan.ops, "model.q_proj.weight");
    assert_eq!((q.kind, q.in_type, q.out_type), (OpKind::Repack, DType::BitnetHf, DType::Tq2_0));
    assert_eq!(q.shape, [8, 256]);
    assert_eq!(q.inputs.len(), 2);
    assert_eq!((q.inputs[1].offset, q.inputs[1].length), (h.tensors[2].offset, 2));
    assert_eq!(q.scale_dtype, Some(DType::BF16));
    assert_eq!(q.scale_semantics, ScaleSemantics::Multiply);

    // Kept as bitnet-hf: both tensors copied as they are.
    let plan = plan_conversion(std::slice::from_ref(&h), &bitnet_opts()).unwrap();
    let kinds: Vec<(&str, OpKind)> = plan.ops.iter().map(|o| (o.name.as_str(), o.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("model.embed_tokens.weight", OpKind::Copy),
            ("model.q_proj.weight", OpKind::Copy),
            ("model.q_proj.weight_scale", OpKind::Copy),
        ]
    );
    // Forced to stay: decoded to F16 in GGUF.
    let keep = PlanOptions { force_keep: ["model.q_proj.weight".to_string()].into(), ..PlanOptions::default() };
    let plan = plan_conversion(std::slice::from_ref(&h), &keep).unwrap();
    let q = op(&plan.ops, "model.q_proj.weight");
    assert_eq!((q.kind, q.out_type, q.output_length), (OpKind::Convert, DType::F16, 8 * 256 * 2));

    // BitLinear checkpoints divide by their scale; the metadata says so, or the option.
    let config = r#"{"quant_method":"bitnet","linear_class":"bitlinear","quantization_mode":"offline"}"#;
    let divided = header(&bitnet_checkpoint(Some(&[("quantization_config".into(), config.into())])));
    let plan = plan_conversion(std::slice::from_ref(&divided), &PlanOptions::default()).unwrap();
    assert_eq!(op(&plan.ops, "model.q_proj.weight").scale_semantics, ScaleSemantics::Divide);
    let opts = PlanOptions { bitnet_scale: Some(ScaleSemantics::Multiply), ..PlanOptions::default() };
    let plan = plan_conversion(&[divided], &opts).unwrap();
    assert_eq!(op(&plan.ops, "model.q_proj.weight").scale_semantics, ScaleSemantics::Multiply);
}

#[test]
fn shards_keep_their_file_index_and_order() {
    let one = safetensors_file(Some(&[("format".into(), "pt".into())]), &[f32_tensor("a.weight", &[2, 256], 1)]);
    let two = safetensors_file(
        Some(&[("format".into(), "pt".into()), ("extra".into(), "x".into())]),
        &[f32_tensor("b.weight", &[2, 256], 2), f32_tensor("c.norm", &[256], 3)],
    );
    let headers = [header(&one), header(&two)];
    for opts in [PlanOptions::default(), bitnet_opts()] {
        let plan = plan_conversion(&headers, &opts).unwrap();
        let files: Vec<(&str, usize)> = plan.ops.iter().map(|o| (o.name.as_str(), o.inputs[0].file)).collect();
        assert_eq!(files, [("a.weight", 0), ("b.weight", 1), ("c.norm", 1)]);
        let out = run(&plan, &[&one, &two]).unwrap();
        let h = header(&out);
        assert_eq!(h.tensors.len(), if opts.output == OutputFormat::Gguf { 3 } else { 5 });
        // Deterministic.
        assert_eq!(plan_conversion(&headers, &opts).unwrap(), plan);
    }
    let plan = plan_conversion(&headers, &bitnet_opts()).unwrap();
    let h = header(&run(&plan, &[&one, &two]).unwrap());
    match h.metadata {
        Metadata::Safetensors(m) => assert_eq!(m[1], ("extra".to_string(), "x".to_string())),
        _ => unreachable!(),
    }
    let dup = header(&safetensors_file(None, &[f32_tensor("a.weight", &[2, 256], 4)]));
    assert!(matches!(
        plan_conversion(&[headers[0].clone(), dup], &PlanOptions::default()),
        Err(Error::Malformed { .. })
    ));
}
