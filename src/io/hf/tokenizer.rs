//! The tokenizer files of a model folder, as GGUF's `tokenizer.ggml.*` keys.
//!
//! Two vocabularies, chosen as llama.cpp's converter chooses them:
//! - `llama` (SentencePiece): from `tokenizer.model` when the folder has one; pieces,
//!   scores and piece types as they are, tokens added by `tokenizer.json` or
//!   `added_tokens.json` over them;
//! - `gpt2` (byte-level BPE): from `tokenizer.json`'s BPE model; tokens by id, merges,
//!   and a pre-tokenizer name that llama.cpp knows, recognised from the
//!   `pre_tokenizer`'s split pattern.
//!
//! Special token ids come from `tokenizer_config.json` (resolved through the added
//! tokens), then from `config.json`/`generation_config.json` for any still unset;
//! `add_bos_token`/`add_eos_token` and `chat_template` from `tokenizer_config.json`.

use std::collections::HashMap;

use serde_json::{Map, Value};

use super::config::{field_error, ModelConfig};
use super::sentencepiece::{self, read_pieces};
use crate::error::Result;
use crate::io::gguf::GgufArray;
use crate::io::GgufValue;

/// The tokenizer files of a folder; any may be absent.
#[derive(Clone, Copy, Debug, Default)]
pub struct TokenizerFiles<'a> {
    pub tokenizer_json: Option<&'a [u8]>,
    pub tokenizer_model: Option<&'a [u8]>,
    pub tokenizer_config_json: Option<&'a [u8]>,
    pub added_tokens_json: Option<&'a [u8]>,
    pub config_json: Option<&'a [u8]>,
    pub generation_config_json: Option<&'a [u8]>,
}

const TOKENIZER_JSON: &str = "tokenizer.json";
const TOKENIZER_CONFIG: &str = "tokenizer_config.json";

/// GGUF token types (the same numbers as SentencePiece's piece types).
const NORMAL: i32 = sentencepiece::NORMAL;
const CONTROL: i32 = sentencepiece::CONTROL;
const USER_DEFINED: i32 = sentencepiece::USER_DEFINED;
const UNUSED: i32 = sentencepiece::UNUSED;

fn parse_json(file: &str, bytes: &[u8]) -> Result<Map<String, Value>> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(field_error(file, "(file)", "is not a JSON object")),
        Err(e) => Err(field_error(file, "(file)", e.to_string())),
    }
}

/// One token added over the model's vocabulary (`tokenizer.json`'s `added_tokens`).
#[derive(Clone, Debug)]
struct AddedToken {
    id: u64,
    content: String,
    special: bool,
}

fn added_tokens(json: &Map<String, Value>) -> Result<Vec<AddedToken>> {
    let Some(list) = json.get("added_tokens").filter(|v| !v.is_null()) else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or_else(|| field_error(TOKENIZER_JSON, "added_tokens", "must be an array"))?;
    list.iter()
        .enumerate()
        .map(|(i, t)| {
            let id = t.get("id").and_then(Value::as_u64);
            let content = t.get("content").and_then(Value::as_str);
            match (id, content) {
                (Some(id), Some(content)) => Ok(AddedToken {
                    id,
                    content: content.to_string(),
                    special: t.get("special").and_then(Value::as_bool).unwrap_or(false),
                }),
                _ => {
                    Err(field_error(TOKENIZER_JSON, &format!("added_tokens[{i}]"), "needs an integer id and a content"))
                }
            }
        })
        .collect()
}

/// Tokens that llama.cpp's converter treats as control tokens even when not marked
/// special.
fn looks_special(token: &str) -> bool {
    matches!(token, "<pad>" | "<mask>" | "<2mass>" | "[@BOS@]")
        || (token.starts_with("<|") && token.ends_with("|>"))
        || (token.starts_with("<｜") && token.ends_with("｜>"))
        || (token.starts_with("<start_of_") && token.ends_with('>'))
        || (token.starts_with("<end_of_") && token.ends_with('>'))
}

/// The tokenizer keys of the GGUF for a model with `config`.
pub fn tokenizer_metadata(files: &TokenizerFiles<'_>, config: &ModelConfig) -> Result<Vec<(String, GgufValue)>> {
    let tokenizer_json = files.tokenizer_json.map(|b| parse_json(TOKENIZER_JSON, b)).transpose()?;
    let added = tokenizer_json.as_ref().map(added_tokens).transpose()?.unwrap_or_default();
    let mut out = match (files.tokenizer_model, &tokenizer_json) {
        (Some(model), _) => sentencepiece_vocab(model, files.added_tokens_json, &added, config)?,
        (None, Some(json)) => bpe_vocab(json, &added, config)?,
        (None, None) => {
            return Err(field_error(
                TOKENIZER_JSON,
                "(file)",
                "missing: the folder needs tokenizer.json or tokenizer.model",
            ))
        }
    };
    out.extend(special_tokens(files, &added)?);
    Ok(out)
}

fn string_array(items: Vec<String>) -> GgufValue {
    GgufValue::Array(GgufArray::of_strings(items.into_iter().map(String::into_bytes).collect()))
}

fn key(name: &str, value: GgufValue) -> (String, GgufValue) {
    (format!("tokenizer.ggml.{name}"), value)
}

fn sentencepiece_vocab(
    model: &[u8],
    added_tokens_json: Option<&[u8]>,
    added: &[AddedToken],
    config: &ModelConfig,
) -> Result<Vec<(String, GgufValue)>> {
    let pieces = read_pieces(model)?;
    let size = config.vocab_size.max(pieces.len() as u64) as usize;
    let mut tokens: Vec<String> = pieces.iter().map(|p| p.text.clone()).collect();
    let mut scores: Vec<f32> = pieces.iter().map(|p| p.score).collect();
    let mut types: Vec<i32> = pieces.iter().map(|p| p.kind).collect();
    let mut extra: Vec<(u64, String, bool)> = added.iter().map(|t| (t.id, t.content.clone(), t.special)).collect();
    if let Some(bytes) = added_tokens_json {
        let map = parse_json("added_tokens.json", bytes)?;
        for (content, id) in map {
            let id =
                id.as_u64().ok_or_else(|| field_error("added_tokens.json", &content, "must map to an integer id"))?;
            extra.push((id, content, false));
        }
    }
    for i in tokens.len()..size {
        tokens.push(format!("[PAD{i}]"));
        scores.push(-1000.0);
        types.push(UNUSED);
    }
    for (id, content, special) in extra {
        let i = usize::try_from(id).ok().filter(|&i| i < size).ok_or_else(|| {
            field_error(TOKENIZER_JSON, "added_tokens", format!("id {id} of '{content}' is past vocab_size {size}"))
        })?;
        if i < pieces.len() && pieces[i].text == content {
            continue;
        }
        types[i] = if special || looks_special(&content) { CONTROL } else { USER_DEFINED };
        tokens[i] = content;
        scores[i] = -1000.0;
    }
    Ok(vec![
        key("model", GgufValue::String(b"llama".to_vec())),
        key("pre", GgufValue::String(b"default".to_vec())),
        key("tokens", string_array(tokens)),
        key("scores", GgufValue::Array(GgufArray::of_f32(&scores))),
        key("token_type", GgufValue::Array(GgufArray::of_i32(&types))),
    ])
}

fn bpe_vocab(
    json: &Map<String, Value>,
    added: &[AddedToken],
    config: &ModelConfig,
) -> Result<Vec<(String, GgufValue)>> {
    let model =
        json.get("model").and_then(Value::as_object).ok_or_else(|| field_error(TOKENIZER_JSON, "model", "missing"))?;
    match model.get("type").and_then(Value::as_str) {
        Some("BPE") => {}
        other => {
            return Err(field_error(
                TOKENIZER_JSON,
                "model.type",
                format!(
                    "{} is not handled without tokenizer.model (byte-level BPE is)",
                    other.map_or("a missing type".to_string(), |t| format!("'{t}'"))
                ),
            ))
        }
    }
    let vocab = model
        .get("vocab")
        .and_then(Value::as_object)
        .ok_or_else(|| field_error(TOKENIZER_JSON, "model.vocab", "missing or not an object"))?;
    let mut by_id: HashMap<u64, &str> = HashMap::with_capacity(vocab.len() + added.len());
    for (token, id) in vocab {
        let id = id
            .as_u64()
            .ok_or_else(|| field_error(TOKENIZER_JSON, "model.vocab", format!("'{token}' has no integer id")))?;
        by_id.insert(id, token);
    }
    let added_by_id: HashMap<u64, &AddedToken> = added.iter().map(|t| (t.id, t)).collect();
    for t in added {
        by_id.insert(t.id, &t.content);
    }
    let size = config.vocab_size.max(by_id.keys().max().map_or(0, |m| m + 1));
    let mut tokens = Vec::with_capacity(size as usize);
    let mut types = Vec::with_capacity(size as usize);
    for id in 0..size {
        let (token, kind) = match (by_id.get(&id), added_by_id.get(&id)) {
            (None, _) => (format!("[PAD{id}]"), UNUSED),
            (Some(token), Some(t)) if t.special || looks_special(token) => (token.to_string(), CONTROL),
            (Some(token), Some(_)) => (token.replace('\u{2581}', " "), USER_DEFINED),
            (Some(token), None) => (token.to_string(), NORMAL),
        };
        tokens.push(token);
        types.push(kind);
    }
    let merges = merges(model)?;
    Ok(vec![
        key("model", GgufValue::String(b"gpt2".to_vec())),
        key("pre", GgufValue::String(pre_tokenizer_name(json)?.as_bytes().to_vec())),
        key("tokens", string_array(tokens)),
        key("token_type", GgufValue::Array(GgufArray::of_i32(&types))),
        key("merges", string_array(merges)),
    ])
}

/// `model.merges`, as "a b" strings (tokenizers writes either those or `["a", "b"]` pairs).
fn merges(model: &Map<String, Value>) -> Result<Vec<String>> {
    let Some(list) = model.get("merges") else { return Ok(Vec::new()) };
    let list = list.as_array().ok_or_else(|| field_error(TOKENIZER_JSON, "model.merges", "must be an array"))?;
    list.iter()
        .enumerate()
        .map(|(i, m)| match m {
            Value::String(s) => Ok(s.clone()),
            Value::Array(pair) => match pair.as_slice() {
                [Value::String(a), Value::String(b)] => Ok(format!("{a} {b}")),
                _ => Err(field_error(TOKENIZER_JSON, &format!("model.merges[{i}]"), "must be two strings")),
            },
            _ => Err(field_error(TOKENIZER_JSON, &format!("model.merges[{i}]"), "must be a string or a pair")),
        })
        .collect()
}

/// The split patterns of the pre-tokenizers llama.cpp implements, by its name for them.
const PRE_TOKENIZERS: &[(&str, &str)] = &[
    (
        "llama-bpe",
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    ),
    (
        "qwen2",
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+",
    ),
];

/// The name llama.cpp gives this tokenizer's pre-tokenizer: a known split pattern, or
/// GPT-2's byte-level split (a `ByteLevel` pre-tokenizer that splits by its own regex).
fn pre_tokenizer_name(json: &Map<String, Value>) -> Result<&'static str> {
    let pre = json.get("pre_tokenizer").filter(|v| !v.is_null());
    let mut steps: Vec<&Value> = Vec::new();
    if let Some(pre) = pre {
        match pre.get("pretokenizers").and_then(Value::as_array) {
            Some(list) => steps.extend(list),
            None => steps.push(pre),
        }
    }
    let pattern = steps.iter().find_map(|s| {
        (s.get("type").and_then(Value::as_str) == Some("Split"))
            .then(|| s.get("pattern").and_then(|p| p.get("Regex")).and_then(Value::as_str))
            .flatten()
    });
    if let Some(pattern) = pattern {
        return PRE_TOKENIZERS.iter().find(|(_, p)| *p == pattern).map(|(name, _)| *name).ok_or_else(|| {
            field_error(
                TOKENIZER_JSON,
                "pre_tokenizer",
                format!("the split pattern {pattern:?} is not one llama.cpp implements"),
            )
        });
    }
    let gpt2_split = steps.iter().any(|s| {
        s.get("type").and_then(Value::as_str) == Some("ByteLevel")
            && s.get("use_regex").and_then(Value::as_bool).unwrap_or(true)
    });
    if gpt2_split {
        Ok("gpt-2")
    } else {
        Err(field_error(TOKENIZER_JSON, "pre_tokenizer", "not a byte-level BPE pre-tokenizer llama.cpp implements"))
    }
}

/// A token named in `tokenizer_config.json`: a string or an `{"content": ...}` object.
fn token_content(value: &Value) -> Option<&str> {
    value.as_str().or_else(|| value.get("content").and_then(Value::as_str))
}

fn special_tokens(files: &TokenizerFiles<'_>, added: &[AddedToken]) -> Result<Vec<(String, GgufValue)>> {
    let mut out = Vec::new();
    let tokenizer_config = files.tokenizer_config_json.map(|b| parse_json(TOKENIZER_CONFIG, b)).transpose()?;
    let config = files.config_json.map(|b| parse_json("config.json", b)).transpose()?;
    let generation = files.generation_config_json.map(|b| parse_json("generation_config.json", b)).transpose()?;
    for name in ["bos", "eos", "unk", "sep", "pad", "cls", "mask"] {
        let field = format!("{name}_token");
        let from_tokenizer = tokenizer_config
            .as_ref()
            .and_then(|c| c.get(&field))
            .and_then(token_content)
            .and_then(|content| added.iter().find(|t| t.content == content).map(|t| t.id));
        let id_field = format!("{name}_token_id");
        let from_configs = [&config, &generation]
            .into_iter()
            .flatten()
            .find_map(|c| c.get(&id_field).and_then(|v| v.as_u64().or_else(|| v.get(0).and_then(Value::as_u64))));
        if let Some(id) = from_tokenizer.or(from_configs) {
            let id = u32::try_from(id).map_err(|_| field_error(TOKENIZER_CONFIG, &field, "id past 2^32"))?;
            let key_name = if name == "pad" { "padding_token_id".to_string() } else { format!("{name}_token_id") };
            out.push(key(&key_name, GgufValue::U32(id)));
        }
    }
    if let Some(c) = &tokenizer_config {
        for name in ["add_bos_token", "add_eos_token"] {
            match c.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::Bool(b)) => out.push(key(name, GgufValue::Bool(*b))),
                Some(v) => return Err(field_error(TOKENIZER_CONFIG, name, format!("must be true or false, got {v}"))),
            }
        }
        match c.get("chat_template") {
            None | Some(Value::Null) => {}
            Some(Value::String(t)) => {
                out.push(("tokenizer.chat_template".to_string(), GgufValue::String(t.clone().into_bytes())))
            }
            Some(Value::Array(named)) => {
                for (i, entry) in named.iter().enumerate() {
                    let (Some(name), Some(template)) =
                        (entry.get("name").and_then(Value::as_str), entry.get("template").and_then(Value::as_str))
                    else {
                        return Err(field_error(
                            TOKENIZER_CONFIG,
                            &format!("chat_template[{i}]"),
                            "needs a name and a template",
                        ));
                    };
                    let key_name = if name == "default" {
                        "tokenizer.chat_template".to_string()
                    } else {
                        format!("tokenizer.chat_template.{name}")
                    };
                    out.push((key_name, GgufValue::String(template.as_bytes().to_vec())));
                }
            }
            Some(v) => {
                return Err(field_error(TOKENIZER_CONFIG, "chat_template", format!("must be a string, got {v}")))
            }
        }
    }
    Ok(out)
}
