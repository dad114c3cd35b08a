//! Converted files against outside readers: gguf-py's GGUFReader and quantizers, and the
//! `safetensors` package with the numpy port of transformers' `unpack_weights`.
//!
//! Each test writes its files to a temporary directory, then runs a script of
//! tests/interop/ with the Python of `TQ_ORACLE_PYTHON` (default `.venv-oracle/bin/python`,
//! a venv with gguf, numpy and safetensors). They are ignored by default; scripts/test.sh
//! runs them with `--ignored`, and run that way a missing Python fails them.
#![cfg(feature = "model-files")]

mod io_util;

use std::path::{Path, PathBuf};
use std::process::Command;

use io_util::*;
use serde_json::{json, Value};
use ternary_quant::io::plan::QUANTIZATION_CONFIG;
use ternary_quant::io::{plan_conversion, DType, Format, OpKind, OutputFormat, PlanOptions, TensorInfo};
use ternary_quant::{Int8Layout, Int8Tensor, ScaleRule, Scope, StorageFormat, TernaryLayout, TernaryTensor};

// llama.cpp's LLAMA_FTYPE_MOSTLY_TQ1_0 and LLAMA_FTYPE_MOSTLY_TQ2_0.
const FTYPE_TQ1_0: u32 = 36;
const FTYPE_TQ2_0: u32 = 37;

const ENV: &str = "TQ_ORACLE_PYTHON";

fn python() -> PathBuf {
    std::env::var_os(ENV)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-oracle/bin/python"))
}

/// Runs tests/interop/SCRIPT with `python`; panics (fails the test) unless it succeeds.
fn run_script_with(python: &Path, script: &str, args: &[&Path]) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop").join(script);
    let out = Command::new(python).arg(&script).args(args).output().unwrap_or_else(|e| {
        panic!(
            "cannot run {} ({e}): set {ENV} to a Python with gguf, numpy and safetensors, or run scripts/test.sh",
            python.display()
        )
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{} failed ({}):\n{stdout}{stderr}", script.display(), out.status);
    eprint!("{stdout}");
}

fn run_script(script: &str, args: &[&Path]) {
    run_script_with(&python(), script, args)
}

/// A fresh directory for one test's files.
fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tq-interop-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A tensor's values as written: decoded by this crate from the output's bytes.
fn decoded(file: &[u8], t: &TensorInfo) -> Vec<f32> {
    let bytes = file[t.offset as usize..(t.offset + t.byte_len) as usize].to_vec();
    let cols = *t.shape.last().unwrap_or(&1) as usize;
    let rows = t.element_count() as usize / cols;
    match t.dtype {
        DType::F32 => f32_values(&bytes),
        DType::F16 => f16_values(&bytes),
        DType::Q8_0 => Int8Tensor::from_bytes(bytes, rows, cols, Int8Layout::Q8_0).unwrap().dequantize(),
        DType::Tq2_0 | DType::Tq1_0 => {
            let layout = if t.dtype == DType::Tq2_0 { TernaryLayout::Tq2_0 } else { TernaryLayout::Tq1_0 };
            TernaryTensor::from_bytes(bytes, rows, cols, layout, Scope::Block(256), None).unwrap().dequantize()
        }
        other => panic!("no decoder for {other}"),
    }
}

/// The expectation of one GGUF output tensor: type, ne, values, and how its bytes
/// relate to its source (byte-exact references where the rule has one).
fn gguf_expectations(
    plan: &ternary_quant::ConversionPlan,
    out: &[u8],
    source_file: &str,
    exact_rule: bool,
) -> Vec<Value> {
    let h = header(out);
    plan.ops
        .iter()
        .zip(&h.tensors)
        .map(|(op, t)| {
            assert_eq!(op.name, t.name);
            let mut e = json!({
                "name": t.name,
                "type": t.dtype.name(),
                "ne": t.ne(),
                "values": decoded(out, t),
            });
            let relation = match op.kind {
                OpKind::Copy => Some("copy"),
                OpKind::Convert => Some("cast"),
                OpKind::Q8_0 => Some("quantize"),
                OpKind::Quantize | OpKind::Repack if exact_rule => Some("quantize"),
                _ => None,
            };
            if let Some(relation) = relation {
                e["source"] = json!({ "file": source_file, "name": op.name });
                e["relation"] = json!(relation);
            }
            e
        })
        .collect()
}

fn write_json(path: &Path, value: &Value) {
    std::fs::write(path, serde_json::to_vec_pretty(value).unwrap()).unwrap();
}

fn safetensors_model() -> Vec<u8> {
    let n = |s: &[u64]| s.iter().product::<u64>() as usize;
    safetensors_file(
        Some(&[("format".into(), "pt".into())]),
        &[
            t("model.embed_tokens.weight", "BF16", &[8, 256], bf16_bytes(&values(n(&[8, 256]), 1))),
            f32_tensor("model.layers.0.self_attn.q_proj.weight", &[8, 512], 2),
            t("model.layers.0.self_attn.o_proj.weight", "F16", &[4, 256], f16_bytes(&values(1024, 3))),
            f32_tensor("model.layers.0.mlp.down_proj.weight", &[4, 384], 4),
            t("model.layers.0.mlp.up_proj.weight", "F16", &[2, 3200], f16_bytes(&values(6400, 5))),
            f32_tensor("model.layers.0.odd.weight", &[3, 100], 6),
            f32_tensor("model.layers.0.input_layernorm.weight", &[512], 7),
            t("model.norm.weight", "BF16", &[512], bf16_bytes(&values(512, 8))),
            t("lm_head.weight", "F16", &[8, 256], f16_bytes(&values(2048, 9))),
        ],
    )
}

#[test]
#[ignore = "needs the oracle venv: run scripts/test.sh"]
fn format_table_matches_gguf_py() {
    let dir = temp_dir("format-table");
    let formats: Vec<Value> = StorageFormat::ALL
        .iter()
        .map(|f| {
            let info = f.info();
            json!({ "typeName": info.type_name, "ggmlType": info.ggml_type, "fileType": info.file_type })
        })
        .collect();
    let ggml_types: Vec<Value> = ternary_quant::io::ggml_types().map(|t| json!([t.0, t.1, t.2, t.3])).collect();
    let path = dir.join("table.json");
    write_json(&path, &json!({ "formats": formats, "ggmlTypes": ggml_types }));
    run_script("check_format_table.py", &[&path]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the oracle venv: run scripts/test.sh"]
fn gguf_from_safetensors_reads_back_in_gguf_py() {
    let dir = temp_dir("st-gguf");
    let input = safetensors_model();
    std::fs::write(dir.join("in.safetensors"), &input).unwrap();
    let cases = [
        ("tq2_0-absmean", TernaryLayout::Tq2_0, ScaleRule::AbsMean, Scope::Tensor, FTYPE_TQ2_0),
        ("tq2_0-absmax", TernaryLayout::Tq2_0, ScaleRule::AbsMax, Scope::Block(256), FTYPE_TQ2_0),
        ("tq1_0-absmax", TernaryLayout::Tq1_0, ScaleRule::AbsMax, Scope::Block(256), FTYPE_TQ1_0),
        ("tq1_0-absmean-row", TernaryLayout::Tq1_0, ScaleRule::AbsMean, Scope::Row, FTYPE_TQ1_0),
    ];
    for (name, layout, rule, scope, ftype) in cases {
        let opts = PlanOptions { layout, rule, scope, ..PlanOptions::default() };
        let plan = plan_conversion(&[header(&input)], &opts).unwrap();
        let out = run(&plan, &[&input]).unwrap();
        let out_path = dir.join(format!("{name}.gguf"));
        std::fs::write(&out_path, &out).unwrap();
        let exact = rule == ScaleRule::AbsMax && scope == Scope::Block(256);
        let expect = json!({
            "metadata": [
                { "key": "general.file_type", "type": "UINT32", "value": ftype },
                { "key": "general.quantization_version", "type": "UINT32", "value": 2 },
                { "key": "general.alignment", "type": "UINT32", "value": 32 },
            ],
            "alignment": 32,
            "tensors": gguf_expectations(&plan, &out, "in.safetensors", exact),
        });
        let expect_path = dir.join(format!("{name}.json"));
        write_json(&expect_path, &expect);
        run_script("check_gguf.py", &[&out_path, &expect_path]);
    }
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the oracle venv: run scripts/test.sh"]
fn gguf_from_gguf_py_keeps_its_metadata() {
    let dir = temp_dir("gguf-gguf");
    let in_path = dir.join("in.gguf");
    run_script("make_gguf.py", &[&in_path]);
    let input = std::fs::read(&in_path).unwrap();
    let h = header(&input);
    assert_eq!((h.format, h.version, h.alignment), (Format::Gguf, Some(3), Some(64)));
    let opts = PlanOptions {
        layout: TernaryLayout::Tq1_0,
        rule: ScaleRule::AbsMax,
        scope: Scope::Block(256),
        ..PlanOptions::default()
    };
    let plan = plan_conversion(std::slice::from_ref(&h), &opts).unwrap();
    let kinds: Vec<(&str, OpKind)> = plan.ops.iter().map(|o| (o.name.as_str(), o.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("token_embd.weight", OpKind::Copy),
            ("blk.0.attn_q.weight", OpKind::Quantize),
            ("blk.0.attn_output.weight", OpKind::Quantize),
            ("blk.0.ffn_down.weight", OpKind::Q8_0),
            ("blk.0.ffn_up.weight", OpKind::Quantize),
            ("blk.0.ffn_gate.weight", OpKind::Repack),
            ("blk.0.attn_k.weight", OpKind::Convert),
            ("output_norm.weight", OpKind::Copy),
        ]
    );
    let out = run(&plan, &[&input]).unwrap();
    let out_path = dir.join("out.gguf");
    std::fs::write(&out_path, &out).unwrap();
    let expect = json!({
        "metadata_from": "in.gguf",
        "metadata_set": [
            { "key": "general.file_type", "type": "UINT32", "value": FTYPE_TQ1_0 },
            { "key": "general.quantization_version", "type": "UINT32", "value": 2 },
        ],
        "alignment": 64,
        "tensors": gguf_expectations(&plan, &out, "in.gguf", true),
    });
    let expect_path = dir.join("out.json");
    write_json(&expect_path, &expect);
    run_script("check_gguf.py", &[&out_path, &expect_path]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs the oracle venv: run scripts/test.sh"]
fn bitnet_hf_reads_back_with_safetensors_and_unpack_weights() {
    let dir = temp_dir("bitnet-hf");
    let input = safetensors_file(
        Some(&[("format".into(), "pt".into()), ("note".into(), "kept".into())]),
        &[
            f32_tensor("model.embed_tokens.weight", &[4, 256], 1),
            f32_tensor("model.layers.0.self_attn.q_proj.weight", &[12, 256], 2),
            f32_tensor("model.layers.0.self_attn.k_proj.weight", &[10, 384], 3),
            t("model.layers.0.self_attn.v_proj.weight", "BF16", &[8, 256], bf16_bytes(&values(2048, 4))),
            f32_tensor("model.layers.0.input_layernorm.weight", &[256], 5),
            f32_tensor("model.layers.0.conv.weight", &[2, 2, 8], 6),
            t("model.layers.0.mask", "BOOL", &[3], vec![1, 0, 1]),
        ],
    );
    std::fs::write(dir.join("in.safetensors"), &input).unwrap();
    let opts =
        PlanOptions { output: OutputFormat::BitnetHf, layout: TernaryLayout::BitnetHf, ..PlanOptions::default() };
    let plan = plan_conversion(&[header(&input)], &opts).unwrap();
    let out = run(&plan, &[&input]).unwrap();
    let out_path = dir.join("out.safetensors");
    std::fs::write(&out_path, &out).unwrap();

    let h = header(&out);
    let find = |name: &str| h.tensors.iter().find(|t| t.name == name).unwrap();
    let mut ternary = Vec::new();
    let mut copies = Vec::new();
    for op in &plan.ops {
        let source = json!({ "file": "in.safetensors", "name": op.name });
        if op.kind == OpKind::Quantize {
            let (rows, cols) = (op.shape[0] as usize, op.shape[1] as usize);
            let packed = find(&op.name);
            let scale = find(op.scale_name.as_deref().unwrap());
            let g = f32_values(&out[scale.offset as usize..(scale.offset + 4) as usize])[0];
            let bytes = out[packed.offset as usize..(packed.offset + packed.byte_len) as usize].to_vec();
            let t = TernaryTensor::from_bytes(bytes, rows, cols, TernaryLayout::BitnetHf, Scope::Tensor, Some(&[g]))
                .unwrap();
            ternary.push(json!({ "name": op.name, "out": rows, "values": t.dequantize(), "source": source }));
        } else {
            assert_eq!(op.kind, OpKind::Copy);
            copies.push(json!({ "name": op.name, "source": source }));
        }
    }
    assert_eq!(ternary.len(), 3);
    let expect = json!({
        "metadata": { "format": "pt", "note": "kept", "quantization_config": QUANTIZATION_CONFIG },
        "tensors": h.tensors.iter().map(|t| json!({ "name": t.name, "dtype": t.dtype.name(), "shape": t.shape })).collect::<Vec<_>>(),
        "ternary": ternary,
        "copies": copies,
    });
    let expect_path = dir.join("out.json");
    write_json(&expect_path, &expect);
    run_script("check_bitnet_hf.py", &[&out_path, &expect_path]);
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[should_panic(expected = "cannot run")]
fn a_missing_python_fails_loudly() {
    run_script_with(Path::new("/nonexistent/python"), "check_gguf.py", &[]);
}
