//! A model folder's tensors as llama.cpp reads them: GGUF names, shapes checked against
//! `config.json`, and the RoPE row order of LLaMA-style Q and K projections.

use super::arch::{Architecture, TensorName};
use super::config::{field_error, ModelConfig};
use super::tokenizer::{tokenizer_metadata, TokenizerFiles};
use crate::error::Result;
use crate::io::plan::{OpKind, PlanOp};
use crate::io::DType;
use crate::io::GgufValue;

/// A model folder to convert to a runnable GGUF: its config, name and tokenizer keys.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelFolder {
    pub config: ModelConfig,
    /// `general.name`.
    pub name: String,
    /// The `tokenizer.*` keys ([`super::tokenizer_metadata`]).
    pub tokenizer: Vec<(String, GgufValue)>,
}

impl ModelFolder {
    /// A model folder from the bytes of its `config.json` and tokenizer files (`files`'s
    /// own `config_json` is set to it); `name` is `general.name`, by default the
    /// architecture's GGUF name. Errors name the file and the field.
    pub fn from_files(name: Option<String>, config_json: &[u8], files: TokenizerFiles<'_>) -> Result<ModelFolder> {
        let config = ModelConfig::parse(config_json)?;
        let files = TokenizerFiles { config_json: Some(config_json), ..files };
        let tokenizer = tokenizer_metadata(&files, &config)?;
        let name = name.unwrap_or_else(|| config.architecture.gguf_name().to_string());
        Ok(ModelFolder { config, name, tokenizer })
    }
}

/// The row order llama.cpp's "normal" RoPE needs of a Q or K projection written by
/// transformers, whose RoPE rotates the two halves of each head: within each head of
/// `head_dim` rows, output row `2j + s` is input row `s * head_dim / 2 + j`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RopeRowOrder {
    pub heads: u64,
}

impl RopeRowOrder {
    /// Reorders the `rows` rows of `bytes` (each `row_bytes` long, from the start; any
    /// bytes after the rows, such as I2_S's tail, stay) in place.
    pub fn apply(self, bytes: &mut [u8], rows: usize, row_bytes: usize) {
        let heads = self.heads as usize;
        if heads == 0
            || !rows.is_multiple_of(heads)
            || !(rows / heads).is_multiple_of(2)
            || rows * row_bytes > bytes.len()
        {
            return;
        }
        let head_rows = rows / heads;
        let half = head_rows / 2;
        let mut head = vec![0u8; head_rows * row_bytes];
        for h in 0..heads {
            let start = h * head_rows * row_bytes;
            let block = &mut bytes[start..start + head_rows * row_bytes];
            for j in 0..half {
                for s in 0..2 {
                    let from = (s * half + j) * row_bytes;
                    let to = (2 * j + s) * row_bytes;
                    head[to..to + row_bytes].copy_from_slice(&block[from..from + row_bytes]);
                }
            }
            block.copy_from_slice(&head);
        }
    }
}

/// What one GGUF tensor's shape must be, from the config.
fn expected_shape(config: &ModelConfig, gguf_name: &str) -> Option<(Vec<u64>, &'static str)> {
    let c = config;
    let q = c.heads * c.head_dim;
    let kv = c.kv_heads * c.head_dim;
    let (hidden, inter, vocab) = (c.hidden_size, c.intermediate_size, c.vocab_size);
    let part = gguf_name.strip_prefix("blk.").map_or(gguf_name, |r| r.split_once('.').map_or(r, |(_, p)| p));
    Some(match part {
        "token_embd.weight" | "output.weight" => (vec![vocab, hidden], "vocab_size"),
        "output_norm.weight" | "attn_norm.weight" | "ffn_norm.weight" => (vec![hidden], "hidden_size"),
        "attn_q.weight" => (vec![q, hidden], "num_attention_heads"),
        "attn_k.weight" | "attn_v.weight" => (vec![kv, hidden], "num_key_value_heads"),
        "attn_q.bias" => (vec![q], "num_attention_heads"),
        "attn_k.bias" | "attn_v.bias" => (vec![kv], "num_key_value_heads"),
        "attn_output.weight" => (vec![hidden, q], "num_attention_heads"),
        "attn_sub_norm.weight" => (vec![hidden], "hidden_size"),
        "ffn_gate.weight" | "ffn_up.weight" => (vec![inter, hidden], "intermediate_size"),
        "ffn_down.weight" => (vec![hidden, inter], "intermediate_size"),
        "ffn_sub_norm.weight" => (vec![inter], "intermediate_size"),
        _ => return None,
    })
}

/// Renames the plan's ops to GGUF names, drops the tensors llama.cpp does not read,
/// sets the RoPE row order of Q and K, and checks every shape and layer against the
/// config. Returns the metadata keys of the model (architecture, name,
/// hyperparameters, tokenizer).
pub(crate) fn apply(model: &ModelFolder, ops: &mut Vec<PlanOp>) -> Result<Vec<(String, GgufValue)>> {
    let config = &model.config;
    let arch = config.architecture;
    let mut kept = Vec::with_capacity(ops.len());
    let mut has_embedding = false;
    for mut op in ops.drain(..) {
        let gguf_name = match arch.gguf_tensor_name(&op.name) {
            Some(TensorName::Gguf(name)) => name,
            Some(TensorName::Skip) => continue,
            None => {
                return Err(field_error(
                    "model.safetensors",
                    &op.name,
                    format!("not a tensor of {} (architectures: {})", arch.gguf_name(), arch.hf_names()[0]),
                ))
            }
        };
        if gguf_name == "output.weight" && arch == Architecture::Bitnet {
            // llama.cpp's bitnet graph multiplies by the token embedding; it has no
            // output tensor, and refuses files that carry one.
            if config.tied_embeddings {
                continue;
            }
            return Err(field_error(
                "config.json",
                "tie_word_embeddings",
                "false, but llama.cpp's bitnet architecture always uses the token embedding as the output \
                 projection, so a separate lm_head.weight cannot be run",
            ));
        }
        if let Some(layer) = gguf_name.strip_prefix("blk.").and_then(|r| r.split_once('.')).map(|(l, _)| l) {
            if layer.parse::<u64>().map_or(true, |l| l >= config.layers) {
                return Err(field_error(
                    "config.json",
                    "num_hidden_layers",
                    format!("{} contradicts tensor {} (layer {layer})", config.layers, op.name),
                ));
            }
        }
        if let Some((shape, field)) = expected_shape(config, &gguf_name) {
            if op.shape != shape {
                return Err(field_error(
                    "config.json",
                    field,
                    format!(
                        "contradicts tensor {}: its shape is {:?}, the config gives {:?}",
                        op.name, op.shape, shape
                    ),
                ));
            }
        }
        has_embedding |= gguf_name == "token_embd.weight";
        if arch.permutes_qk() {
            let heads = match gguf_name.rsplit('.').nth(1) {
                Some("attn_q") => Some(config.heads),
                Some("attn_k") => Some(config.kv_heads),
                _ => None,
            };
            op.row_order = heads.map(|heads| RopeRowOrder { heads });
        }
        op.name = gguf_name;
        kept.push(op);
    }
    if !has_embedding {
        return Err(field_error(
            "model.safetensors",
            "model.embed_tokens.weight",
            "missing: the model has no token embedding",
        ));
    }
    if let Some(factors) = config.rope_freq_factors() {
        // llama.cpp reads Llama 3.1's RoPE frequency factors from this tensor, which its
        // own converter computes from config.json and writes first.
        if let Some(first) = kept.first() {
            let op = PlanOp {
                name: "rope_freqs.weight".into(),
                kind: OpKind::Constant,
                inputs: Vec::new(),
                in_type: DType::F32,
                out_type: DType::F32,
                shape: vec![factors.len() as u64],
                output_offset: 0,
                output_length: 4 * factors.len() as u64,
                fallback_reason: None,
                scale_name: None,
                scale_dtype: None,
                row_order: None,
                values: factors,
                importance: None,
                ..first.clone()
            };
            kept.insert(0, op);
        }
    }
    *ops = kept;
    let mut metadata = vec![
        ("general.architecture".to_string(), GgufValue::String(arch.gguf_name().as_bytes().to_vec())),
        ("general.name".to_string(), GgufValue::String(model.name.as_bytes().to_vec())),
    ];
    metadata.extend(config.metadata());
    metadata.extend(model.tokenizer.iter().cloned());
    Ok(metadata)
}
