//! A Hugging Face model folder planned into a GGUF llama.cpp can run: names, keys,
//! shape checks and the RoPE row order of Q and K.
#![cfg(feature = "model-files")]

mod io_util;

use io_util::*;
use ternary_quant::io::hf::{tokenizer_metadata, Architecture, ModelConfig, ModelFolder, TokenizerFiles};
use ternary_quant::io::{plan_conversion, DType, GgufValue, Metadata, PlanOptions};
use ternary_quant::Error;

const HIDDEN: u64 = 256;
const HEADS: u64 = 4;
const KV_HEADS: u64 = 2;
const HEAD_DIM: u64 = HIDDEN / HEADS;
const INTER: u64 = 512;
const VOCAB: u64 = 8;

fn config_json(arch: &str) -> serde_json::Value {
    serde_json::json!({
        "architectures": [arch],
        "hidden_size": HIDDEN, "intermediate_size": INTER, "num_hidden_layers": 1,
        "num_attention_heads": HEADS, "num_key_value_heads": KV_HEADS,
        "max_position_embeddings": 512, "rms_norm_eps": 1e-6, "vocab_size": VOCAB
    })
}

fn tokenizer_json() -> String {
    serde_json::json!({
        "added_tokens": [{ "id": 0, "content": "<s>", "special": true }],
        "pre_tokenizer": { "type": "ByteLevel", "add_prefix_space": false },
        "model": { "type": "BPE", "vocab": { "<s>": 0, "a": 1, "b": 2, "ab": 3 }, "merges": ["a b"] }
    })
    .to_string()
}

fn folder(arch: &str) -> ModelFolder {
    let config = ModelConfig::parse(config_json(arch).to_string().as_bytes()).unwrap();
    let tokenizer_json = tokenizer_json();
    let files = TokenizerFiles { tokenizer_json: Some(tokenizer_json.as_bytes()), ..Default::default() };
    let tokenizer = tokenizer_metadata(&files, &config).unwrap();
    ModelFolder { config, name: "tiny".into(), tokenizer }
}

fn model_tensors() -> Vec<T> {
    let layer = |part: &str| format!("model.layers.0.{part}");
    vec![
        f32_tensor("model.embed_tokens.weight", &[VOCAB, HIDDEN], 1),
        f32_tensor(&layer("input_layernorm.weight"), &[HIDDEN], 2),
        f32_tensor(&layer("self_attn.q_proj.weight"), &[HEADS * HEAD_DIM, HIDDEN], 3),
        f32_tensor(&layer("self_attn.k_proj.weight"), &[KV_HEADS * HEAD_DIM, HIDDEN], 4),
        f32_tensor(&layer("self_attn.v_proj.weight"), &[KV_HEADS * HEAD_DIM, HIDDEN], 5),
        f32_tensor(&layer("self_attn.o_proj.weight"), &[HIDDEN, HEADS * HEAD_DIM], 6),
        f32_tensor(&layer("self_attn.rotary_emb.inv_freq"), &[HEAD_DIM / 2], 7),
        f32_tensor(&layer("post_attention_layernorm.weight"), &[HIDDEN], 8),
        f32_tensor(&layer("mlp.gate_proj.weight"), &[INTER, HIDDEN], 9),
        f32_tensor(&layer("mlp.up_proj.weight"), &[INTER, HIDDEN], 10),
        f32_tensor(&layer("mlp.down_proj.weight"), &[HIDDEN, INTER], 11),
        f32_tensor("model.norm.weight", &[HIDDEN], 12),
        f32_tensor("lm_head.weight", &[VOCAB, HIDDEN], 13),
    ]
}

fn key<'a>(metadata: &'a [(String, GgufValue)], key: &str) -> Option<&'a GgufValue> {
    metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

/// The values of tensor `name` of a converted GGUF, decoded (F16 and F32 only).
fn float_values(file: &[u8], name: &str) -> Vec<f32> {
    let h = header(file);
    let t = h.tensors.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name} missing"));
    let bytes = &file[t.offset as usize..(t.offset + t.byte_len) as usize];
    match t.dtype {
        DType::F16 => f16_values(bytes),
        DType::F32 => f32_values(bytes),
        other => panic!("{name} is {other}"),
    }
}

#[test]
fn a_llama_folder_becomes_a_llama_gguf() {
    let input = safetensors_file(None, &model_tensors());
    let opts = PlanOptions { model: Some(folder("LlamaForCausalLM")), ..PlanOptions::default() };
    let plan = plan_conversion(&[header(&input)], &opts).unwrap();
    let out = run(&plan, &[&input]).unwrap();
    let h = header(&out);
    let names: Vec<&str> = h.tensors.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "token_embd.weight",
            "blk.0.attn_norm.weight",
            "blk.0.attn_q.weight",
            "blk.0.attn_k.weight",
            "blk.0.attn_v.weight",
            "blk.0.attn_output.weight",
            "blk.0.ffn_norm.weight",
            "blk.0.ffn_gate.weight",
            "blk.0.ffn_up.weight",
            "blk.0.ffn_down.weight",
            "output_norm.weight",
            "output.weight",
        ]
    );
    let dtype = |name: &str| h.tensors.iter().find(|t| t.name == name).unwrap().dtype;
    assert_eq!(dtype("blk.0.attn_q.weight"), DType::Tq2_0);
    assert_eq!(dtype("blk.0.ffn_down.weight"), DType::Tq2_0);
    assert_eq!(dtype("token_embd.weight"), DType::F16);
    assert_eq!(dtype("output_norm.weight"), DType::F32);
    let Metadata::Gguf(metadata) = &h.metadata else { panic!("not a GGUF") };
    assert_eq!(metadata[0].0, "general.architecture", "llama.cpp reads the architecture first");
    assert_eq!(key(metadata, "general.architecture"), Some(&GgufValue::String(b"llama".to_vec())));
    assert_eq!(key(metadata, "general.name"), Some(&GgufValue::String(b"tiny".to_vec())));
    assert_eq!(key(metadata, "llama.block_count"), Some(&GgufValue::U32(1)));
    assert_eq!(key(metadata, "llama.attention.head_count_kv"), Some(&GgufValue::U32(2)));
    assert_eq!(key(metadata, "tokenizer.ggml.model"), Some(&GgufValue::String(b"gpt2".to_vec())));
    assert_eq!(key(metadata, "general.file_type"), Some(&GgufValue::U32(37)));
}

/// transformers' RoPE rotates halves; llama.cpp's rotates pairs. Row 2j+s of each head
/// of the output must be row s*half+j of the input.
#[test]
fn q_and_k_rows_are_reordered_per_head_and_v_is_not() {
    let tensors = model_tensors();
    let input = safetensors_file(None, &tensors);
    let mut opts = PlanOptions { model: Some(folder("MistralForCausalLM")), ..PlanOptions::default() };
    for name in ["q_proj", "k_proj", "v_proj"] {
        opts.force_keep.insert(format!("model.layers.0.self_attn.{name}.weight"));
    }
    let plan = plan_conversion(&[header(&input)], &opts).unwrap();
    let out = run(&plan, &[&input]).unwrap();
    let cols = HIDDEN as usize;
    for (hf, gguf, heads) in [("q_proj", "attn_q", HEADS), ("k_proj", "attn_k", KV_HEADS), ("v_proj", "attn_v", 0)] {
        let source = tensors.iter().find(|t| t.name.contains(hf)).unwrap();
        let original = f16_values(&f16_bytes(&f32_values(&source.bytes)));
        let converted = float_values(&out, &format!("blk.0.{gguf}.weight"));
        let half = HEAD_DIM as usize / 2;
        let rows = original.len() / cols;
        for row in 0..rows {
            let from = if heads == 0 {
                row
            } else {
                let (head, within) = (row / (2 * half), row % (2 * half));
                head * 2 * half + (within % 2) * half + within / 2
            };
            assert_eq!(
                converted[row * cols..(row + 1) * cols],
                original[from * cols..(from + 1) * cols],
                "{gguf} row {row}"
            );
        }
    }
}

#[test]
fn qwen2_keeps_the_row_order_and_its_biases() {
    let mut tensors = model_tensors();
    tensors.push(f32_tensor("model.layers.0.self_attn.q_proj.bias", &[HIDDEN], 20));
    let input = safetensors_file(None, &tensors);
    let opts = PlanOptions { model: Some(folder("Qwen2ForCausalLM")), ..PlanOptions::default() };
    let plan = plan_conversion(&[header(&input)], &opts).unwrap();
    assert!(plan.ops.iter().all(|op| op.row_order.is_none()));
    let out = run(&plan, &[&input]).unwrap();
    let bias = tensors.last().unwrap();
    assert_eq!(float_values(&out, "blk.0.attn_q.bias"), f32_values(&bias.bytes));
}

fn folder_error(tensors: &[T], model: ModelFolder) -> (String, String, String) {
    let input = safetensors_file(None, tensors);
    let opts = PlanOptions { model: Some(model), ..PlanOptions::default() };
    match plan_conversion(&[header(&input)], &opts).map(drop).unwrap_err().root().clone() {
        Error::ModelFolder { file, field, reason } => (file, field, reason),
        other => panic!("expected a model-folder error, got {other:?}"),
    }
}

#[test]
fn a_config_that_contradicts_the_tensors_is_named() {
    let mut model = folder("LlamaForCausalLM");
    model.config.kv_heads = 4;
    let (file, field, reason) = folder_error(&model_tensors(), model);
    assert_eq!((file.as_str(), field.as_str()), ("config.json", "num_key_value_heads"));
    assert!(reason.contains("model.layers.0.self_attn.k_proj.weight"), "{reason}");

    let mut model = folder("LlamaForCausalLM");
    model.config.layers = 0;
    let (_, field, _) = folder_error(&model_tensors(), model);
    assert_eq!(field, "num_hidden_layers");

    let mut tensors = model_tensors();
    tensors.push(f32_tensor("model.vision_tower.weight", &[4], 30));
    let (file, field, _) = folder_error(&tensors, folder("LlamaForCausalLM"));
    assert_eq!((file.as_str(), field.as_str()), ("model.safetensors", "model.vision_tower.weight"));

    let tensors: Vec<T> = model_tensors().into_iter().filter(|t| !t.name.contains("embed")).collect();
    let (_, field, reason) = folder_error(&tensors, folder("LlamaForCausalLM"));
    assert_eq!(field, "model.embed_tokens.weight");
    assert!(reason.starts_with("missing"), "{reason}");
}

fn bitnet_folder(config: serde_json::Value) -> ModelFolder {
    folder_with("BitNetForCausalLM", config)
}

/// A folder of `arch` whose config.json also has the fields of `config`.
fn folder_with(arch: &str, config: serde_json::Value) -> ModelFolder {
    let mut value = config_json(arch);
    value.as_object_mut().unwrap().extend(config.as_object().unwrap().clone());
    let config = ModelConfig::parse(value.to_string().as_bytes()).unwrap();
    let tokenizer_json = tokenizer_json();
    let files = TokenizerFiles { tokenizer_json: Some(tokenizer_json.as_bytes()), ..Default::default() };
    let tokenizer = tokenizer_metadata(&files, &config).unwrap();
    ModelFolder { config, name: "tiny-bitnet".into(), tokenizer }
}

fn bitnet_tensors() -> Vec<T> {
    let mut tensors = model_tensors();
    tensors.push(f32_tensor("model.layers.0.self_attn.attn_sub_norm.weight", &[HIDDEN], 40));
    tensors.push(f32_tensor("model.layers.0.mlp.ffn_sub_norm.weight", &[INTER], 41));
    tensors
}

/// BitNet: sub-norms named and shape-checked, the activation and llama.cpp's RoPE keys
/// written, and the output projection always the token embedding (a tied lm_head is
/// left out; an untied one is refused, since llama.cpp's bitnet graph cannot use it).
#[test]
fn bitnet_sub_norms_keys_and_the_tied_output() {
    let model = bitnet_folder(serde_json::json!({ "tie_word_embeddings": true, "hidden_act": "relu2" }));
    assert_eq!(model.config.architecture, Architecture::Bitnet);
    let input = safetensors_file(None, &bitnet_tensors());
    let opts = PlanOptions { model: Some(model), ..PlanOptions::default() };
    let plan = plan_conversion(&[header(&input)], &opts).unwrap();
    let names: Vec<&str> = plan.ops.iter().map(|op| op.name.as_str()).collect();
    assert!(names.contains(&"blk.0.attn_sub_norm.weight") && names.contains(&"blk.0.ffn_sub_norm.weight"));
    assert!(!names.contains(&"output.weight"), "{names:?}");
    assert!(plan.ops.iter().all(|op| op.row_order.is_none()), "bitnet's RoPE rotates halves, as transformers");
    assert!(plan.trained_ternary, "a BitNet folder says its weights were trained ternary");
    let Metadata::Gguf(metadata) = &header(&run(&plan, &[&input]).unwrap()).metadata else { panic!() };
    let string = |s: &str| Some(GgufValue::String(s.as_bytes().to_vec()));
    assert_eq!(key(metadata, "general.architecture").cloned(), string("bitnet"));
    assert_eq!(key(metadata, "bitnet.hidden_activation").cloned(), string("relu2"));
    assert_eq!(key(metadata, "bitnet.rope.scaling.type").cloned(), string("linear"));
    assert_eq!(key(metadata, "bitnet.rope.scaling.factor"), Some(&GgufValue::F32(1.0)));

    let (file, field, reason) = folder_error(&bitnet_tensors(), bitnet_folder(serde_json::json!({})));
    assert_eq!((file.as_str(), field.as_str()), ("config.json", "tie_word_embeddings"));
    assert!(reason.contains("lm_head.weight"), "{reason}");
}

/// Packed BitNet weights (U8 + `weight_scale`, as microsoft/bitnet-b1.58-2B-4T ships
/// them, and Falcon3-1.58bit and Llama3-8B-1.58 as LlamaForCausalLM) convert to TQ2_0
/// and TQ1_0 with their codes and scale kept exactly; the scale's meaning comes from
/// config.json's `quantization_config.linear_class`.
#[test]
fn packed_bitnet_weights_convert_losslessly() {
    use ternary_quant::{Scope, TernaryLayout, TernaryTensor};
    let codes: Vec<i8> =
        values((INTER * HIDDEN) as usize, 50).iter().map(|v| (v * 3.0).round().clamp(-1.0, 1.0) as i8).collect();
    let packed = TernaryTensor::from_codes(
        &codes,
        INTER as usize,
        HIDDEN as usize,
        TernaryLayout::BitnetHf,
        Scope::Tensor,
        &[1.0],
    )
    .unwrap();
    // The folder's tensors, the up projection packed (BitNet's with its sub-norms).
    let input_of = |arch: &str| {
        let all = if arch == "BitNetForCausalLM" { bitnet_tensors() } else { model_tensors() };
        let mut tensors: Vec<T> =
            all.into_iter().filter(|t| !t.name.contains("up_proj") && t.name != "lm_head.weight").collect();
        tensors.push(t("model.layers.0.mlp.up_proj.weight", "U8", &[INTER / 4, HIDDEN], packed.bytes.clone()));
        tensors.push(t("model.layers.0.mlp.up_proj.weight_scale", "BF16", &[1], bf16_bytes(&[4.0])));
        safetensors_file(None, &tensors)
    };
    for (arch, class, scale) in [
        ("BitNetForCausalLM", "autobitlinear", 4.0f32),
        ("BitNetForCausalLM", "bitlinear", 0.25),
        ("LlamaForCausalLM", "bitlinear", 0.25),
    ] {
        let model = folder_with(
            arch,
            serde_json::json!({
                "tie_word_embeddings": true,
                "quantization_config": { "quant_method": "bitnet", "linear_class": class, "quantization_mode": "offline" }
            }),
        );
        let input = input_of(arch);
        for layout in [TernaryLayout::Tq2_0, TernaryLayout::Tq1_0] {
            let opts = PlanOptions { model: Some(model.clone()), layout, ..PlanOptions::default() };
            let plan = plan_conversion(&[header(&input)], &opts).unwrap();
            let out = run(&plan, &[&input]).unwrap();
            let h = header(&out);
            let up = h.tensors.iter().find(|t| t.name == "blk.0.ffn_up.weight").unwrap();
            assert!(h.tensors.iter().all(|t| !t.name.ends_with("_scale")), "the scale is folded into the weight");
            let bytes = out[up.offset as usize..(up.offset + up.byte_len) as usize].to_vec();
            let got =
                TernaryTensor::from_bytes(bytes, INTER as usize, HIDDEN as usize, layout, Scope::Block(256), None)
                    .unwrap();
            assert_eq!(got.codes(), codes, "{arch} {class} {layout}");
            assert!(got.scales.iter().all(|&s| s == scale), "{arch} {class} {layout}: {:?}", &got.scales[..2]);
        }
    }
    let (field, _) = match ModelConfig::parse(
        serde_json::json!({ "quantization_config": { "linear_class": "fancy" } })
            .as_object()
            .map(|extra| {
                let mut v = config_json("BitNetForCausalLM");
                v.as_object_mut().unwrap().extend(extra.clone());
                v.to_string()
            })
            .unwrap()
            .as_bytes(),
    ) {
        Err(Error::ModelFolder { field, reason, .. }) => (field, reason),
        other => panic!("{other:?}"),
    };
    assert_eq!(field, "quantization_config.linear_class");
}

/// Llama 3.1's RoPE scaling: llama.cpp reads the per-frequency factors from
/// `rope_freqs.weight`, which the converter computes and writes (F32, head_dim / 2
/// values) ahead of the model's tensors, as llama.cpp's converter does.
#[test]
fn llama3_rope_scaling_writes_rope_freqs() {
    let mut value = config_json("LlamaForCausalLM");
    value["rope_scaling"] = serde_json::json!({
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 64
    });
    let config = ModelConfig::parse(value.to_string().as_bytes()).unwrap();
    let factors = config.rope_freq_factors().unwrap();
    assert_eq!(factors.len() as u64, HEAD_DIM / 2);
    assert!(factors.contains(&1.0) && factors.contains(&8.0), "{factors:?}");
    let tokenizer_json = tokenizer_json();
    let files = TokenizerFiles { tokenizer_json: Some(tokenizer_json.as_bytes()), ..Default::default() };
    let tokenizer = tokenizer_metadata(&files, &config).unwrap();
    let model = ModelFolder { config, name: "tiny".into(), tokenizer };
    let input = safetensors_file(None, &model_tensors());
    let plan =
        plan_conversion(&[header(&input)], &PlanOptions { model: Some(model), ..PlanOptions::default() }).unwrap();
    let first = &plan.ops[0];
    assert_eq!((first.name.as_str(), first.kind.name(), first.out_type), ("rope_freqs.weight", "constant", DType::F32));
    assert!(first.inputs.is_empty());
    let out = run(&plan, &[&input]).unwrap();
    assert_eq!(float_values(&out, "rope_freqs.weight"), factors);
    assert!(!plan.trained_ternary);
    // Without scaling there is no such tensor.
    let plan = plan_conversion(
        &[header(&input)],
        &PlanOptions { model: Some(folder("LlamaForCausalLM")), ..PlanOptions::default() },
    )
    .unwrap();
    assert!(plan.ops.iter().all(|op| op.name != "rope_freqs.weight"));
}
