//! The architectures a model folder may hold, and their tensor names in GGUF.

use serde_json::{Map, Value};

use super::config::field_error;
use crate::error::Result;

/// A Hugging Face architecture this crate converts for llama.cpp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Architecture {
    /// `LlamaForCausalLM`: Llama 2/3, SmolLM, TinyLlama, Falcon3 (incl. its 1.58-bit
    /// models), Llama3-8B-1.58.
    Llama,
    /// `MistralForCausalLM`, which llama.cpp runs as `llama`.
    Mistral,
    /// `Qwen2ForCausalLM`.
    Qwen2,
    /// `BitNetForCausalLM` (microsoft/bitnet-b1.58-2B-4T), with its sub-norms.
    Bitnet,
}

impl Architecture {
    /// Every architecture.
    pub const ALL: [Architecture; 4] = [Self::Llama, Self::Mistral, Self::Qwen2, Self::Bitnet];

    /// The names `config.json`'s `architectures` lists for it.
    pub fn hf_names(self) -> &'static [&'static str] {
        match self {
            Self::Llama => &["LlamaForCausalLM"],
            Self::Mistral => &["MistralForCausalLM"],
            Self::Qwen2 => &["Qwen2ForCausalLM"],
            Self::Bitnet => &["BitNetForCausalLM", "BitnetForCausalLM"],
        }
    }

    /// `general.architecture` in GGUF.
    pub fn gguf_name(self) -> &'static str {
        match self {
            Self::Llama | Self::Mistral => "llama",
            Self::Qwen2 => "qwen2",
            Self::Bitnet => "bitnet",
        }
    }

    /// Whether `tie_word_embeddings` is true when `config.json` leaves it out (the
    /// transformers config class's default).
    pub fn ties_embeddings_by_default(self) -> bool {
        match self {
            Self::Llama | Self::Mistral | Self::Qwen2 | Self::Bitnet => false,
        }
    }

    /// Whether llama.cpp rotates adjacent pairs (its "normal" RoPE) where transformers
    /// rotates halves, so that Q and K rows must be permuted on the way in.
    pub fn permutes_qk(self) -> bool {
        match self {
            Self::Llama | Self::Mistral => true,
            Self::Qwen2 | Self::Bitnet => false,
        }
    }

    /// The architecture `config.json` names in `architectures`.
    pub(crate) fn from_config(config: &Map<String, Value>) -> Result<Architecture> {
        let listed = config.get("architectures").and_then(Value::as_array).and_then(|a| a.first());
        let name = listed
            .and_then(Value::as_str)
            .ok_or_else(|| field_error("config.json", "architectures", "missing; it names the model class"))?;
        Self::ALL.into_iter().find(|a| a.hf_names().contains(&name)).ok_or_else(|| {
            let supported: Vec<&str> = Self::ALL.iter().flat_map(|a| a.hf_names().iter().copied()).collect();
            field_error(
                "config.json",
                "architectures",
                format!("{name} is not supported (supported: {})", supported.join(", ")),
            )
        })
    }

    /// Where a Hugging Face tensor goes in GGUF; `None` for a name this architecture
    /// does not have.
    pub fn gguf_tensor_name(self, hf_name: &str) -> Option<TensorName> {
        if hf_name.ends_with(".rotary_emb.inv_freq") {
            return Some(TensorName::Skip);
        }
        let global = match hf_name {
            "model.embed_tokens.weight" => Some("token_embd.weight"),
            "model.norm.weight" => Some("output_norm.weight"),
            "lm_head.weight" => Some("output.weight"),
            _ => None,
        };
        if let Some(name) = global {
            return Some(TensorName::Gguf(name.to_string()));
        }
        let rest = hf_name.strip_prefix("model.layers.")?;
        let (layer, part) = rest.split_once('.')?;
        let layer: u32 = layer.parse().ok()?;
        let (module, suffix) = part.rsplit_once('.')?;
        if !matches!(suffix, "weight" | "bias" | "weight_scale") {
            return None;
        }
        let gguf = match module {
            "input_layernorm" => "attn_norm",
            "self_attn.q_proj" => "attn_q",
            "self_attn.k_proj" => "attn_k",
            "self_attn.v_proj" => "attn_v",
            "self_attn.o_proj" => "attn_output",
            "post_attention_layernorm" => "ffn_norm",
            "mlp.gate_proj" => "ffn_gate",
            "mlp.up_proj" => "ffn_up",
            "mlp.down_proj" => "ffn_down",
            "self_attn.attn_sub_norm" | "self_attn.inner_attn_ln" if self == Self::Bitnet => "attn_sub_norm",
            "mlp.ffn_sub_norm" | "mlp.ffn_layernorm" if self == Self::Bitnet => "ffn_sub_norm",
            _ => return None,
        };
        Some(TensorName::Gguf(format!("blk.{layer}.{gguf}.{suffix}")))
    }
}

/// Where a Hugging Face tensor goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TensorName {
    /// Written under this GGUF name.
    Gguf(String),
    /// Not written.
    Skip,
}
