//! `config.json`: the architecture and its hyperparameters, as llama.cpp's GGUF keys.

use serde_json::{Map, Value};

use super::arch::Architecture;
use crate::error::{Error, Result};
use crate::io::plan::ScaleSemantics;
use crate::io::GgufValue;

const FILE: &str = "config.json";

/// How RoPE frequencies are scaled.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    None,
    /// Positions divided by `factor`.
    Linear {
        factor: f32,
    },
    /// YaRN, trained on `original_context` positions.
    Yarn {
        factor: f32,
        original_context: u64,
    },
    /// Llama 3.1's per-frequency factors (llama.cpp reads them from a `rope_freqs.weight`
    /// tensor, which the converter computes from these numbers).
    Llama3 {
        factor: f32,
        low_freq_factor: f32,
        high_freq_factor: f32,
        original_context: u64,
    },
}

/// The hyperparameters llama.cpp needs, read from `config.json`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// From `architectures`.
    pub architecture: Architecture,
    /// Rows of the token embedding (`vocab_size`).
    pub vocab_size: u64,
    /// `hidden_size`: the embedding length.
    pub hidden_size: u64,
    /// `intermediate_size`: the feed-forward length.
    pub intermediate_size: u64,
    /// `num_hidden_layers`.
    pub layers: u64,
    /// `num_attention_heads`.
    pub heads: u64,
    /// `num_key_value_heads` (grouped-query attention), else `heads`.
    pub kv_heads: u64,
    /// `head_dim`, else `hidden_size / heads`.
    pub head_dim: u64,
    /// `max_position_embeddings`.
    pub context_length: u64,
    /// `rms_norm_eps`.
    pub rms_norm_eps: f32,
    /// `rope_theta` (10,000 when absent).
    pub rope_theta: f32,
    /// `rope_scaling`.
    pub rope_scaling: RopeScaling,
    /// The output projection is the token embedding (no `lm_head.weight` is needed).
    pub tied_embeddings: bool,
    /// `hidden_act` (BitNet's `relu2` or `silu`), written for llama.cpp where it reads it.
    pub hidden_act: Option<String>,
    /// How packed BitNet weights' `weight_scale` applies, from
    /// `quantization_config.linear_class` (`autobitlinear` multiplies, `bitlinear`
    /// divides).
    pub bitnet_scale: Option<ScaleSemantics>,
}

/// The error for `field` of `config.json`.
pub(crate) fn field_error(file: &str, field: &str, reason: impl Into<String>) -> Error {
    Error::ModelFolder { file: file.to_string(), field: field.to_string(), reason: reason.into() }
}

struct Fields<'a> {
    object: &'a Map<String, Value>,
}

impl Fields<'_> {
    fn value(&self, field: &str) -> Option<&Value> {
        self.object.get(field).filter(|v| !v.is_null())
    }

    fn count(&self, field: &str) -> Result<Option<u64>> {
        match self.value(field) {
            None => Ok(None),
            Some(v) => match v.as_u64() {
                Some(n) if n > 0 && n <= u64::from(u32::MAX) => Ok(Some(n)),
                _ => Err(field_error(FILE, field, format!("must be a positive integer below 2^32, got {v}"))),
            },
        }
    }

    fn required_count(&self, field: &str) -> Result<u64> {
        self.count(field)?.ok_or_else(|| field_error(FILE, field, "missing"))
    }

    fn positive(&self, field: &str) -> Result<Option<f32>> {
        match self.value(field) {
            None => Ok(None),
            Some(v) => match v.as_f64() {
                Some(x) if x > 0.0 && x.is_finite() && (x as f32).is_finite() => Ok(Some(x as f32)),
                _ => Err(field_error(FILE, field, format!("must be a positive number, got {v}"))),
            },
        }
    }
}

impl ModelConfig {
    /// Reads `config.json`'s bytes. Every missing or malformed field is an
    /// [`Error::ModelFolder`] naming it.
    pub fn parse(json: &[u8]) -> Result<ModelConfig> {
        let value: Value = serde_json::from_slice(json).map_err(|e| field_error(FILE, "(file)", e.to_string()))?;
        let object = value.as_object().ok_or_else(|| field_error(FILE, "(file)", "is not a JSON object"))?;
        let fields = Fields { object };
        let architecture = Architecture::from_config(object)?;
        let hidden_size = fields.required_count("hidden_size")?;
        let heads = fields.required_count("num_attention_heads")?;
        let kv_heads = fields.count("num_key_value_heads")?.unwrap_or(heads);
        if heads % kv_heads != 0 {
            return Err(field_error(
                FILE,
                "num_key_value_heads",
                format!("{kv_heads} does not divide num_attention_heads ({heads})"),
            ));
        }
        let head_dim = match fields.count("head_dim")? {
            Some(d) => d,
            None if hidden_size % heads == 0 => hidden_size / heads,
            None => {
                return Err(field_error(
                    FILE,
                    "num_attention_heads",
                    format!("{heads} does not divide hidden_size ({hidden_size}) and head_dim is not given"),
                ))
            }
        };
        if head_dim % 2 != 0 {
            return Err(field_error(FILE, "head_dim", format!("{head_dim} is odd; RoPE rotates pairs")));
        }
        let context_length = fields.required_count("max_position_embeddings")?;
        let rms_norm_eps =
            fields.positive("rms_norm_eps")?.ok_or_else(|| field_error(FILE, "rms_norm_eps", "missing"))?;
        let rope_theta = fields.positive("rope_theta")?.unwrap_or(10_000.0);
        let tied_embeddings = match fields.value("tie_word_embeddings") {
            None => architecture.ties_embeddings_by_default(),
            Some(Value::Bool(b)) => *b,
            Some(v) => return Err(field_error(FILE, "tie_word_embeddings", format!("must be true or false, got {v}"))),
        };
        Ok(ModelConfig {
            architecture,
            vocab_size: fields.required_count("vocab_size")?,
            hidden_size,
            intermediate_size: fields.required_count("intermediate_size")?,
            layers: fields.required_count("num_hidden_layers")?,
            heads,
            kv_heads,
            head_dim,
            context_length,
            rms_norm_eps,
            rope_theta,
            rope_scaling: rope_scaling(&fields, context_length)?,
            tied_embeddings,
            hidden_act: match fields.value("hidden_act") {
                None => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(v) => return Err(field_error(FILE, "hidden_act", format!("must be a string, got {v}"))),
            },
            bitnet_scale: bitnet_scale(&fields)?,
        })
    }

    /// The GGUF keys of the architecture and its hyperparameters, as llama.cpp's
    /// converter writes them (`general.*` keys and the tokenizer come from elsewhere).
    pub fn metadata(&self) -> Vec<(String, GgufValue)> {
        let arch = self.architecture.gguf_name();
        let key = |k: &str| format!("{arch}.{k}");
        let u32_of = |n: u64| GgufValue::U32(n as u32);
        let mut out = vec![
            (key("vocab_size"), u32_of(self.vocab_size)),
            (key("context_length"), u32_of(self.context_length)),
            (key("embedding_length"), u32_of(self.hidden_size)),
            (key("feed_forward_length"), u32_of(self.intermediate_size)),
            (key("block_count"), u32_of(self.layers)),
            (key("attention.head_count"), u32_of(self.heads)),
            (key("attention.head_count_kv"), u32_of(self.kv_heads)),
            (key("rope.freq_base"), GgufValue::F32(self.rope_theta)),
            (key("attention.layer_norm_rms_epsilon"), GgufValue::F32(self.rms_norm_eps)),
            (key("rope.dimension_count"), u32_of(self.head_dim)),
        ];
        if self.head_dim * self.heads != self.hidden_size {
            out.push((key("attention.key_length"), u32_of(self.head_dim)));
            out.push((key("attention.value_length"), u32_of(self.head_dim)));
        }
        if self.architecture == Architecture::Bitnet {
            // llama.cpp reads the activation where it supports more than SiLU for BitNet.
            if let Some(act) = &self.hidden_act {
                out.push((key("hidden_activation"), GgufValue::String(act.as_bytes().to_vec())));
            }
        }
        match self.rope_scaling {
            // llama.cpp's converter states BitNet's unscaled RoPE as linear, factor 1.
            RopeScaling::None if self.architecture == Architecture::Bitnet => {
                out.push((key("rope.scaling.type"), GgufValue::String(b"linear".to_vec())));
                out.push((key("rope.scaling.factor"), GgufValue::F32(1.0)));
            }
            RopeScaling::None | RopeScaling::Llama3 { .. } => {}
            RopeScaling::Linear { factor } => {
                out.push((key("rope.scaling.type"), GgufValue::String(b"linear".to_vec())));
                out.push((key("rope.scaling.factor"), GgufValue::F32(factor)));
            }
            RopeScaling::Yarn { factor, original_context } => {
                out.push((key("rope.scaling.type"), GgufValue::String(b"yarn".to_vec())));
                out.push((key("rope.scaling.factor"), GgufValue::F32(factor)));
                out.push((key("rope.scaling.original_context_length"), u32_of(original_context)));
            }
        }
        out
    }

    /// Llama 3.1's RoPE frequency factors (`rope_freqs.weight`, `head_dim / 2` f32), if
    /// the model scales RoPE that way.
    pub fn rope_freq_factors(&self) -> Option<Vec<f32>> {
        let RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_context } = self.rope_scaling
        else {
            return None;
        };
        // In f32, as the reference converter computes them.
        let context = original_context as f32;
        let (low_wavelength, high_wavelength) = (context / low_freq_factor, context / high_freq_factor);
        let dim = self.head_dim as f32;
        Some(
            (0..self.head_dim / 2)
                .map(|i| {
                    let freq = 1.0 / self.rope_theta.powf((2 * i) as f32 / dim);
                    let wavelength = 2.0 * std::f32::consts::PI / freq;
                    if wavelength < high_wavelength {
                        1.0
                    } else if wavelength > low_wavelength {
                        factor
                    } else {
                        let smooth = (context / wavelength - low_freq_factor) / (high_freq_factor - low_freq_factor);
                        1.0 / ((1.0 - smooth) / factor + smooth)
                    }
                })
                .collect(),
        )
    }
}

/// `quantization_config.linear_class`, for packed BitNet weights.
fn bitnet_scale(fields: &Fields<'_>) -> Result<Option<ScaleSemantics>> {
    const FIELD: &str = "quantization_config.linear_class";
    let Some(config) = fields.value("quantization_config").and_then(Value::as_object) else { return Ok(None) };
    match config.get("linear_class") {
        None => Ok(None),
        Some(Value::String(class)) => match class.as_str() {
            "autobitlinear" => Ok(Some(ScaleSemantics::Multiply)),
            "bitlinear" => Ok(Some(ScaleSemantics::Divide)),
            other => Err(field_error(
                FILE,
                FIELD,
                format!("'{other}' is not supported (expected autobitlinear or bitlinear)"),
            )),
        },
        Some(v) => Err(field_error(FILE, FIELD, format!("must be a string, got {v}"))),
    }
}

fn rope_scaling(fields: &Fields<'_>, context_length: u64) -> Result<RopeScaling> {
    const FIELD: &str = "rope_scaling";
    let Some(value) = fields.value(FIELD) else { return Ok(RopeScaling::None) };
    let object =
        value.as_object().ok_or_else(|| field_error(FILE, FIELD, format!("must be an object, got {value}")))?;
    let inner = Fields { object };
    let kind = inner.value("rope_type").or_else(|| inner.value("type")).and_then(Value::as_str).unwrap_or("");
    let factor = |name: &str| -> Result<f32> {
        inner.positive(name)?.ok_or_else(|| field_error(FILE, &format!("{FIELD}.{name}"), "missing"))
    };
    // The defaults of the reference converter, which reads these fields with them.
    let or_default = |name: &str, default: f32| -> Result<f32> { Ok(inner.positive(name)?.unwrap_or(default)) };
    let original = || -> Result<u64> { Ok(inner.count("original_max_position_embeddings")?.unwrap_or(context_length)) };
    match kind {
        "default" => Ok(RopeScaling::None),
        "linear" => Ok(RopeScaling::Linear { factor: factor("factor")? }),
        "yarn" => Ok(RopeScaling::Yarn { factor: factor("factor")?, original_context: original()? }),
        "llama3" => Ok(RopeScaling::Llama3 {
            factor: or_default("factor", 8.0)?,
            low_freq_factor: or_default("low_freq_factor", 1.0)?,
            high_freq_factor: or_default("high_freq_factor", 4.0)?,
            original_context: inner.count("original_max_position_embeddings")?.unwrap_or(8192),
        }),
        other => Err(field_error(
            FILE,
            &format!("{FIELD}.rope_type"),
            format!("'{other}' is not supported (expected default, linear, yarn or llama3)"),
        )),
    }
}
