use super::*;
use crate::io::GgufValue;
use crate::Error;

fn llama_config() -> serde_json::Value {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "hidden_size": 256,
        "intermediate_size": 768,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 2048,
        "rms_norm_eps": 1e-5,
        "rope_theta": 500000.0,
        "vocab_size": 300,
        "tie_word_embeddings": true
    })
}

fn parse(value: &serde_json::Value) -> crate::Result<ModelConfig> {
    ModelConfig::parse(value.to_string().as_bytes())
}

fn folder_error(value: &serde_json::Value) -> (String, String) {
    match parse(value) {
        Err(Error::ModelFolder { file, field, reason }) => {
            assert_eq!(file, "config.json");
            (field, reason)
        }
        other => panic!("expected a config.json error, got {other:?}"),
    }
}

#[test]
fn llama_hyperparameters_become_llama_keys() {
    let config = parse(&llama_config()).unwrap();
    assert_eq!(config.architecture, Architecture::Llama);
    assert_eq!((config.head_dim, config.kv_heads, config.tied_embeddings), (64, 2, true));
    let metadata = config.metadata();
    let get = |key: &str| metadata.iter().find(|(k, _)| k == key).map(|(_, v)| v.clone());
    assert_eq!(get("llama.embedding_length"), Some(GgufValue::U32(256)));
    assert_eq!(get("llama.feed_forward_length"), Some(GgufValue::U32(768)));
    assert_eq!(get("llama.block_count"), Some(GgufValue::U32(2)));
    assert_eq!(get("llama.attention.head_count"), Some(GgufValue::U32(4)));
    assert_eq!(get("llama.attention.head_count_kv"), Some(GgufValue::U32(2)));
    assert_eq!(get("llama.context_length"), Some(GgufValue::U32(2048)));
    assert_eq!(get("llama.rope.freq_base"), Some(GgufValue::F32(500000.0)));
    assert_eq!(get("llama.rope.dimension_count"), Some(GgufValue::U32(64)));
    assert_eq!(get("llama.attention.layer_norm_rms_epsilon"), Some(GgufValue::F32(1e-5)));
    assert_eq!(get("llama.vocab_size"), Some(GgufValue::U32(300)));
    assert_eq!(get("llama.attention.key_length"), None, "only written when head_dim differs");
    assert_eq!(get("llama.rope.scaling.type"), None);
}

#[test]
fn defaults_follow_the_transformers_config_classes() {
    let mut value = llama_config();
    let object = value.as_object_mut().unwrap();
    for key in ["num_key_value_heads", "rope_theta", "tie_word_embeddings"] {
        object.remove(key);
    }
    let config = parse(&value).unwrap();
    assert_eq!((config.kv_heads, config.rope_theta, config.tied_embeddings), (4, 10_000.0, false));
}

#[test]
fn an_explicit_head_dim_writes_key_and_value_lengths() {
    let mut value = llama_config();
    value["head_dim"] = 128.into();
    let config = parse(&value).unwrap();
    let metadata = config.metadata();
    assert!(metadata.contains(&("llama.attention.key_length".into(), GgufValue::U32(128))));
    assert!(metadata.contains(&("llama.rope.dimension_count".into(), GgufValue::U32(128))));
}

#[test]
fn architectures_map_to_llama_cpp_names() {
    for (hf, gguf) in [
        ("MistralForCausalLM", "llama"),
        ("Qwen2ForCausalLM", "qwen2"),
        ("BitNetForCausalLM", "bitnet"),
        ("LlamaForCausalLM", "llama"),
    ] {
        let mut value = llama_config();
        value["architectures"] = serde_json::json!([hf]);
        assert_eq!(parse(&value).unwrap().architecture.gguf_name(), gguf, "{hf}");
    }
}

#[test]
fn an_unknown_architecture_names_itself_and_the_supported_ones() {
    let mut value = llama_config();
    value["architectures"] = serde_json::json!(["GPT2LMHeadModel"]);
    let (field, reason) = folder_error(&value);
    assert_eq!(field, "architectures");
    assert!(reason.starts_with("GPT2LMHeadModel is not supported"), "{reason}");
    for name in ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM", "BitNetForCausalLM"] {
        assert!(reason.contains(name), "{reason}");
    }
}

#[test]
fn missing_and_malformed_fields_are_named() {
    for (key, replacement, reason) in [
        ("hidden_size", None, "missing"),
        ("hidden_size", Some(serde_json::json!("256")), "must be a positive integer"),
        ("num_hidden_layers", Some(serde_json::json!(0)), "must be a positive integer"),
        ("rms_norm_eps", Some(serde_json::json!(-1.0)), "must be a positive number"),
        ("num_key_value_heads", Some(serde_json::json!(3)), "does not divide"),
        ("tie_word_embeddings", Some(serde_json::json!("yes")), "must be true or false"),
        ("architectures", None, "missing"),
    ] {
        let mut value = llama_config();
        match replacement {
            Some(v) => value[key] = v,
            None => {
                value.as_object_mut().unwrap().remove(key);
            }
        }
        let (field, message) = folder_error(&value);
        assert_eq!(field, key);
        assert!(message.contains(reason), "{key}: {message}");
    }
    let err = ModelConfig::parse(b"{ not json").unwrap_err();
    assert!(err.to_string().starts_with("config.json: (file): "), "{err}");
}

#[test]
fn rope_scaling_kinds() {
    let mut value = llama_config();
    value["rope_scaling"] = serde_json::json!({ "type": "linear", "factor": 2.0 });
    let metadata = parse(&value).unwrap().metadata();
    assert!(metadata.contains(&("llama.rope.scaling.type".into(), GgufValue::String(b"linear".to_vec()))));
    assert!(metadata.contains(&("llama.rope.scaling.factor".into(), GgufValue::F32(2.0))));

    value["rope_scaling"] = serde_json::json!({ "rope_type": "dynamic", "factor": 2.0 });
    let (field, reason) = folder_error(&value);
    assert_eq!((field.as_str(), reason.starts_with("'dynamic' is not supported")), ("rope_scaling.rope_type", true));
}

#[test]
fn llama3_rope_factors_match_the_reference_converter() {
    let mut value = llama_config();
    value["hidden_size"] = 256.into();
    value["rope_scaling"] = serde_json::json!({
        "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 8192
    });
    let config = parse(&value).unwrap();
    assert!(!config.metadata().iter().any(|(k, _)| k.starts_with("llama.rope.scaling")));
    // convert_hf_to_gguf.py's formula in float32 (numpy), base 500000, head_dim 64.
    let mut expected = vec![1.0f32; 15];
    expected.extend([1.553_414_6, 2.694_53, 5.257_327]);
    expected.extend([8.0; 14]);
    let factors = config.rope_freq_factors().unwrap();
    assert_eq!(factors.len(), 32);
    for (i, (got, want)) in factors.iter().zip(&expected).enumerate() {
        assert!((got - want).abs() <= 2e-6 * want, "factor {i}: {got} vs {want}");
    }
}

#[test]
fn tensor_names_follow_gguf() {
    let name = |arch: Architecture, hf: &str| arch.gguf_tensor_name(hf);
    let gguf = |s: &str| Some(TensorName::Gguf(s.to_string()));
    let llama = Architecture::Llama;
    assert_eq!(name(llama, "model.embed_tokens.weight"), gguf("token_embd.weight"));
    assert_eq!(name(llama, "model.norm.weight"), gguf("output_norm.weight"));
    assert_eq!(name(llama, "lm_head.weight"), gguf("output.weight"));
    assert_eq!(name(llama, "model.layers.11.self_attn.q_proj.weight"), gguf("blk.11.attn_q.weight"));
    assert_eq!(name(llama, "model.layers.0.self_attn.o_proj.weight"), gguf("blk.0.attn_output.weight"));
    assert_eq!(name(llama, "model.layers.0.mlp.down_proj.weight"), gguf("blk.0.ffn_down.weight"));
    assert_eq!(name(llama, "model.layers.0.post_attention_layernorm.weight"), gguf("blk.0.ffn_norm.weight"));
    assert_eq!(name(Architecture::Qwen2, "model.layers.1.self_attn.k_proj.bias"), gguf("blk.1.attn_k.bias"));
    assert_eq!(name(llama, "model.layers.0.self_attn.rotary_emb.inv_freq"), Some(TensorName::Skip));
    let bitnet = Architecture::Bitnet;
    assert_eq!(name(bitnet, "model.layers.3.self_attn.attn_sub_norm.weight"), gguf("blk.3.attn_sub_norm.weight"));
    assert_eq!(name(bitnet, "model.layers.3.mlp.ffn_sub_norm.weight"), gguf("blk.3.ffn_sub_norm.weight"));
    assert_eq!(name(llama, "model.layers.3.mlp.ffn_sub_norm.weight"), None);
    assert_eq!(name(llama, "model.layers.x.mlp.up_proj.weight"), None);
    assert_eq!(name(llama, "vision_tower.weight"), None);
}

mod sentencepiece_model {
    use super::super::sentencepiece::{read_pieces, Piece, BYTE, CONTROL, NORMAL};
    use crate::Error;

    fn varint(mut n: u64, out: &mut Vec<u8>) {
        while n >= 0x80 {
            out.push((n as u8 & 0x7f) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
    }

    fn field(number: u64, wire: u64, payload: &[u8], out: &mut Vec<u8>) {
        varint(number << 3 | wire, out);
        if wire == 2 {
            varint(payload.len() as u64, out);
        }
        out.extend_from_slice(payload);
    }

    fn piece(text: &str, score: f32, kind: Option<u64>) -> Vec<u8> {
        let mut p = Vec::new();
        field(1, 2, text.as_bytes(), &mut p);
        field(2, 5, &score.to_le_bytes(), &mut p);
        if let Some(kind) = kind {
            let mut v = Vec::new();
            varint(kind, &mut v);
            field(3, 0, &v, &mut p);
        }
        p
    }

    fn model() -> Vec<u8> {
        let mut m = Vec::new();
        field(1, 2, &piece("<s>", 0.0, Some(3)), &mut m);
        // A trainer_spec (field 2) between the pieces is skipped.
        field(2, 2, &[0x08, 0x96, 0x01], &mut m);
        field(1, 2, &piece("▁the", -1.5, None), &mut m);
        field(1, 2, &piece("<0x0A>", 0.0, Some(6)), &mut m);
        m
    }

    #[test]
    fn pieces_are_read_in_order_with_scores_and_types() {
        let pieces = read_pieces(&model()).unwrap();
        assert_eq!(
            pieces,
            [
                Piece { text: "<s>".into(), score: 0.0, kind: CONTROL },
                Piece { text: "▁the".into(), score: -1.5, kind: NORMAL },
                Piece { text: "<0x0A>".into(), score: 0.0, kind: BYTE },
            ]
        );
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        let m = model();
        for len in 1..m.len() {
            match read_pieces(&m[..len]) {
                Ok(pieces) => assert!(pieces.len() < 3, "a prefix of {len} bytes read every piece"),
                Err(Error::ModelFolder { file, .. }) => assert_eq!(file, "tokenizer.model"),
                Err(other) => panic!("{other:?}"),
            }
        }
        assert!(read_pieces(b"").is_err());
        let mut bad = Vec::new();
        field(1, 2, &piece("x", 0.0, Some(9)), &mut bad);
        assert!(read_pieces(&bad).unwrap_err().to_string().contains("has type 9"));
    }
}

mod tokenizers {
    use super::super::tokenizer::{tokenizer_metadata, TokenizerFiles};
    use super::{llama_config, parse};
    use crate::io::GgufValue;
    use crate::Error;

    const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

    fn bpe_json(pre_tokenizer: serde_json::Value) -> serde_json::Value {
        serde_json::json!({
            "added_tokens": [
                { "id": 5, "content": "<|begin_of_text|>", "special": true },
                { "id": 6, "content": "<|end_of_text|>", "special": true },
                { "id": 7, "content": "hello world", "special": false }
            ],
            "pre_tokenizer": pre_tokenizer,
            "model": {
                "type": "BPE",
                "vocab": { "a": 0, "b": 1, "ab": 2, "Ġ": 3, "Ġab": 4 },
                "merges": [["a", "b"], "Ġ ab"]
            }
        })
    }

    fn llama3_pre() -> serde_json::Value {
        serde_json::json!({ "type": "Sequence", "pretokenizers": [
            { "type": "Split", "pattern": { "Regex": LLAMA3_SPLIT }, "behavior": "Isolated", "invert": false },
            { "type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false }
        ]})
    }

    fn metadata(files: TokenizerFiles<'_>) -> crate::Result<Vec<(String, GgufValue)>> {
        let mut config = llama_config();
        config["vocab_size"] = 10.into();
        tokenizer_metadata(&files, &parse(&config).unwrap())
    }

    fn get<'a>(m: &'a [(String, GgufValue)], key: &str) -> Option<&'a GgufValue> {
        m.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn strings(v: Option<&GgufValue>) -> Vec<String> {
        let Some(GgufValue::Array(a)) = v else { panic!("not an array: {v:?}") };
        (0..a.len())
            .map(|i| match a.get(i) {
                Some(GgufValue::String(s)) => String::from_utf8(s).unwrap(),
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn ints(v: Option<&GgufValue>) -> Vec<i32> {
        let Some(GgufValue::Array(a)) = v else { panic!("not an array: {v:?}") };
        (0..a.len())
            .map(|i| match a.get(i) {
                Some(GgufValue::I32(n)) => n,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn byte_level_bpe_becomes_gpt2_with_types_merges_and_padding() {
        let json = bpe_json(llama3_pre()).to_string();
        let tokenizer_config = serde_json::json!({
            "bos_token": "<|begin_of_text|>",
            "eos_token": { "content": "<|end_of_text|>" },
            "add_bos_token": true,
            "chat_template": "{{ messages }}"
        })
        .to_string();
        let files = TokenizerFiles { tokenizer_config_json: Some(tokenizer_config.as_bytes()), ..Default::default() };
        let m = metadata(TokenizerFiles { tokenizer_json: Some(json.as_bytes()), ..files }).unwrap();
        assert_eq!(get(&m, "tokenizer.ggml.model"), Some(&GgufValue::String(b"gpt2".to_vec())));
        assert_eq!(get(&m, "tokenizer.ggml.pre"), Some(&GgufValue::String(b"llama-bpe".to_vec())));
        assert_eq!(
            strings(get(&m, "tokenizer.ggml.tokens")),
            ["a", "b", "ab", "Ġ", "Ġab", "<|begin_of_text|>", "<|end_of_text|>", "hello world", "[PAD8]", "[PAD9]"]
        );
        assert_eq!(ints(get(&m, "tokenizer.ggml.token_type")), [1, 1, 1, 1, 1, 3, 3, 4, 5, 5]);
        assert_eq!(strings(get(&m, "tokenizer.ggml.merges")), ["a b", "Ġ ab"]);
        assert_eq!(get(&m, "tokenizer.ggml.bos_token_id"), Some(&GgufValue::U32(5)));
        assert_eq!(get(&m, "tokenizer.ggml.eos_token_id"), Some(&GgufValue::U32(6)));
        assert_eq!(get(&m, "tokenizer.ggml.add_bos_token"), Some(&GgufValue::Bool(true)));
        assert_eq!(get(&m, "tokenizer.chat_template"), Some(&GgufValue::String(b"{{ messages }}".to_vec())));
    }

    #[test]
    fn ids_missing_from_tokenizer_config_come_from_the_model_configs() {
        let json = bpe_json(serde_json::json!({ "type": "ByteLevel", "add_prefix_space": false })).to_string();
        let generation = serde_json::json!({ "eos_token_id": [6, 5], "bos_token_id": 5 }).to_string();
        let files = TokenizerFiles { generation_config_json: Some(generation.as_bytes()), ..Default::default() };
        let m = metadata(TokenizerFiles { tokenizer_json: Some(json.as_bytes()), ..files }).unwrap();
        assert_eq!(get(&m, "tokenizer.ggml.pre"), Some(&GgufValue::String(b"gpt-2".to_vec())));
        assert_eq!(get(&m, "tokenizer.ggml.bos_token_id"), Some(&GgufValue::U32(5)));
        assert_eq!(get(&m, "tokenizer.ggml.eos_token_id"), Some(&GgufValue::U32(6)));
        assert_eq!(get(&m, "tokenizer.ggml.add_bos_token"), None);
    }

    fn folder_error(files: TokenizerFiles<'_>) -> (String, String, String) {
        match metadata(files) {
            Err(Error::ModelFolder { file, field, reason }) => (file, field, reason),
            other => panic!("expected a model-folder error, got {other:?}"),
        }
    }

    #[test]
    fn tokenizers_we_do_not_handle_are_named() {
        let unknown_split =
            bpe_json(serde_json::json!({ "type": "Split", "pattern": { "Regex": "\\w+" } })).to_string();
        let (file, field, reason) =
            folder_error(TokenizerFiles { tokenizer_json: Some(unknown_split.as_bytes()), ..Default::default() });
        assert_eq!((file.as_str(), field.as_str()), ("tokenizer.json", "pre_tokenizer"));
        assert!(reason.contains("\\\\w+"), "{reason}");

        let mut wordpiece = bpe_json(llama3_pre());
        wordpiece["model"]["type"] = "WordPiece".into();
        let wordpiece = wordpiece.to_string();
        let (_, field, reason) =
            folder_error(TokenizerFiles { tokenizer_json: Some(wordpiece.as_bytes()), ..Default::default() });
        assert_eq!(field, "model.type");
        assert!(reason.starts_with("'WordPiece' is not handled"), "{reason}");

        let (file, _, reason) = folder_error(TokenizerFiles::default());
        assert_eq!(file, "tokenizer.json");
        assert!(reason.starts_with("missing"), "{reason}");

        let (file, field, _) = folder_error(TokenizerFiles { tokenizer_json: Some(b"[1, 2"), ..Default::default() });
        assert_eq!((file.as_str(), field.as_str()), ("tokenizer.json", "(file)"));

        let json = bpe_json(llama3_pre()).to_string();
        let (file, field, _) = folder_error(TokenizerFiles {
            tokenizer_json: Some(json.as_bytes()),
            tokenizer_config_json: Some(br#"{"add_bos_token": "yes"}"#),
            ..Default::default()
        });
        assert_eq!((file.as_str(), field.as_str()), ("tokenizer_config.json", "add_bos_token"));
    }
}
