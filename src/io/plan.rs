//! The streaming conversion plan: input headers in; the output header, the output size
//! and one operation per output tensor out.
//!
//! The caller then, for each op, reads its input ranges (concatenated, in order),
//! passes them to [`crate::io::convert_tensor`] (or copies them itself when the op is a
//! [`OpKind::Copy`]) and writes the result at the op's output offset. Ops are in output
//! order; the bytes between the header's end, the ops' ranges and the output size are
//! zeros (alignment padding in GGUF).
//!
//! # Which tensors become ternary
//! A tensor is ternarised when its name is in `force_ternary`, or when it is 2-D and its
//! name matches none of the [`DEFAULT_KEEP`] patterns, unless its name is in
//! `force_keep` (which wins over `force_ternary`). The patterns are substrings, except
//! `output.weight`, which must start the name or follow a `.`: GGUF names the attention
//! output projection `blk.N.attn_output.weight`, which a plain substring would keep.
//! `token_embd` is GGUF's name for the token embedding.
//!
//! A tensor chosen for ternary that cannot be stored so gets a fallback and a reason:
//! - rows whose length is not a multiple of the layout's block (256 for TQ1_0/TQ2_0,
//!   128 for I2_S): Q8_0 where the row length is a multiple of 32, else F16, as
//!   llama.cpp's quantizer falls back;
//! - fewer than 2 dimensions (bitnet-hf: not exactly 2), no values, or an input type
//!   that cannot be decoded: kept as any other tensor.
//!
//! # Tensors that stay as they are
//! - GGUF output: F32/F16/BF16 become F16 with 2 or more dimensions and F32 with fewer
//!   (llama.cpp's convention); already-quantized GGUF tensors (Q8_0, TQ1_0, TQ2_0,
//!   K-quants...) and integer tensors are copied; other safetensors dtypes (U8, U16..,
//!   BOOL, F8) are an error, since GGUF has no type for them.
//! - bitnet-hf output: safetensors dtypes are copied; GGUF Q8_0/TQ1_0/TQ2_0/I2_S
//!   tensors are decoded to F32; other ggml types are an error.
//!
//! # Already-ternary inputs
//! GGUF TQ1_0/TQ2_0/I2_S tensors and bitnet-hf weights (a U8 `[R, in]` tensor `N` with
//! a one-value float sibling `N_scale`, read as `[4R, in]`) are re-packed: their codes
//! are kept exactly and so are their scales (TQ blocks keep theirs; a per-tensor scale
//! g becomes d = f16(g) in every TQ block). bitnet-hf and I2_S hold one scale per
//! tensor, so converting TQ blocks whose scales differ is an error at conversion time
//! (blocks whose codes are all zero may have any scale). A tensor already in the output
//! layout is copied. The rule and scope options only apply to tensors quantized from
//! floats. For GGUF output, a bitnet-hf weight's scale
//! tensor is folded into the weight and not written.
//!
//! The transformers BitNet integration multiplies by `weight_scale` in `AutoBitLinear`
//! and divides by it in `BitLinear`; the safetensors header does not say which (the
//! model's config.json does). [`PlanOptions::bitnet_scale`] chooses; by default a model
//! folder's `config.json` (`quantization_config.linear_class`) says, else it is `Divide`
//! when an input's `__metadata__.quantization_config` names `linear_class` `bitlinear`,
//! else `Multiply`.
//!
//! # Output files
//! - GGUF v3. From a GGUF input, every metadata key is kept in order with its value,
//!   except `general.file_type` (set to 36 for TQ1_0, 37 for TQ2_0, as llama.cpp's
//!   LLAMA_FTYPE_MOSTLY_TQ1_0/TQ2_0, and 40 for I2_S, bitnet.cpp's
//!   LLAMA_FTYPE_MOSTLY_I2_S) and `general.quantization_version` (2), which are set in
//!   place or appended; the input's alignment is kept. From safetensors, the metadata is
//!   only `general.file_type`, `general.quantization_version` and `general.alignment`
//!   (32): a safetensors file has no architecture or hyperparameters, so the output is a
//!   tensor container that llama.cpp can read but not run as a model.
//! - safetensors (bitnet-hf): tensors in input order, contiguous, each ternarised
//!   weight `[out, in]` as U8 `[ceil(out/4), in]` immediately followed by its
//!   `<name>_scale` (F32, shape \[1\], multiply semantics). `__metadata__` keeps the
//!   inputs' keys (the first shard's value wins), gains `"format": "pt"` when absent
//!   (transformers refuses files without it) and sets `quantization_config` to
//!   [`QUANTIZATION_CONFIG`].
//!
//! Tensor names are kept exactly. Outputs are deterministic: input order throughout
//! (input files in the order given; within a file, GGUF tensor-info order or safetensors
//! data order).

use std::collections::{BTreeSet, HashMap, HashSet};

use super::gguf::{write_gguf, GgufTensorOut, GgufValue};
use super::hf::{self, ModelFolder, RopeRowOrder};
use super::imatrix::ImportanceMatrix;
use super::{element_count, safetensors, DType, Format, Metadata, ModelHeader, TensorInfo};
use crate::error::{index_by_name, one_of, Error, Result};
use crate::layout::blocks::QK8_0;
pub use crate::layout::OutputFormat;
use crate::layout::{StorageFormat, TernaryLayout};
use crate::{Backend, ScaleRule, Scope};

/// Name patterns of tensors that are not ternarised by default (see the module docs).
pub const DEFAULT_KEEP: [&str; 7] = ["embed", "lm_head", "output.weight", "norm", "wte", "wpe", "token_embd"];

/// The `quantization_config` written into a bitnet-hf file's `__metadata__`.
pub const QUANTIZATION_CONFIG: &str =
    r#"{"quant_method":"bitnet","linear_class":"autobitlinear","quantization_mode":"offline"}"#;

/// ggml's quantization version (GGML_QNT_VERSION).
pub const QUANTIZATION_VERSION: u32 = 2;

/// How a bitnet-hf `weight_scale` applies to the codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScaleSemantics {
    /// value = q * scale (transformers' `AutoBitLinear`).
    Multiply,
    /// value = q / scale (transformers' `BitLinear`).
    Divide,
}

impl ScaleSemantics {
    /// `multiply` or `divide`.
    pub fn name(self) -> &'static str {
        match self {
            ScaleSemantics::Multiply => "multiply",
            ScaleSemantics::Divide => "divide",
        }
    }

    /// Parses [`ScaleSemantics::name`].
    pub fn from_name(name: &str) -> Result<ScaleSemantics> {
        let all = [Self::Multiply, Self::Divide];
        Ok(all[index_by_name(&all.map(Self::name), "bitnetScale", "value", name)?])
    }
}

/// Options of [`plan_conversion`].
#[derive(Clone, Debug, PartialEq)]
pub struct PlanOptions {
    pub output: OutputFormat,
    /// tq2_0, tq1_0 or i2_s for GGUF; bitnet-hf for safetensors.
    pub layout: TernaryLayout,
    pub rule: ScaleRule,
    pub scope: Scope,
    /// Names ternarised whatever the default says.
    pub force_ternary: BTreeSet<String>,
    /// Names never ternarised (wins over `force_ternary`).
    pub force_keep: BTreeSet<String>,
    /// How bitnet-hf inputs' scales apply; `None` reads the inputs' metadata.
    pub bitnet_scale: Option<ScaleSemantics>,
    pub backend: Backend,
    /// A Hugging Face model folder's config and tokenizer: the GGUF gets llama.cpp's
    /// tensor names and model keys, so that llama.cpp can run it.
    pub model: Option<ModelFolder>,
    /// llama.cpp's importance matrix: tensors ternarised from floats whose (GGUF) name it
    /// lists weigh each column's error by it (the `optimal` and `absmean` rules).
    pub importance: Option<ImportanceMatrix>,
}

impl Default for PlanOptions {
    /// GGUF with the `bitnet` preset: TQ2_0, absmean, one scale per tensor.
    fn default() -> Self {
        Self {
            output: OutputFormat::Gguf,
            layout: TernaryLayout::Tq2_0,
            rule: ScaleRule::AbsMean,
            scope: Scope::Tensor,
            force_ternary: BTreeSet::new(),
            force_keep: BTreeSet::new(),
            bitnet_scale: None,
            backend: Backend::best(),
            model: None,
            importance: None,
        }
    }
}

/// What an op does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OpKind {
    /// Floats (or Q8_0) quantized to the ternary layout.
    Quantize,
    /// An already-ternary input re-packed, codes and scales kept.
    Repack,
    /// Converted to F16 or F32 (also the F16 fallback).
    Convert,
    /// The Q8_0 fallback for rows the ternary layout cannot hold.
    Q8_0,
    /// The bytes as they are; the caller may copy them in chunks without converting.
    Copy,
    /// Values the converter computes (Llama 3.1's `rope_freqs.weight`), from no input.
    Constant,
}

impl OpKind {
    /// `quantize`, `repack`, `convert`, `q8_0`, `copy` or `constant`.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Quantize => "quantize",
            OpKind::Repack => "repack",
            OpKind::Convert => "convert",
            OpKind::Q8_0 => "q8_0",
            OpKind::Copy => "copy",
            OpKind::Constant => "constant",
        }
    }
}

/// A byte range of an input file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InputRange {
    /// Index of the input file, in the order the plan was given them.
    pub file: usize,
    /// Absolute offset in that file.
    pub offset: u64,
    pub length: u64,
}

/// One output tensor: where its input is, what happens to it, and where it goes.
#[derive(Clone, Debug, PartialEq)]
pub struct PlanOp {
    /// The tensor's name (kept from the input).
    pub name: String,
    pub kind: OpKind,
    /// The tensor's bytes, then for a bitnet-hf input its scale tensor's bytes.
    pub inputs: Vec<InputRange>,
    pub in_type: DType,
    /// The stored type: F16, F32, Q8_0, TQ2_0, TQ1_0, I2_S, `bitnet-hf` (U8 + scale),
    /// or the input type for copies.
    pub out_type: DType,
    /// Row-major shape of the values (a bitnet-hf weight's unpacked shape).
    pub shape: Vec<u64>,
    /// Absolute offset in the output file.
    pub output_offset: u64,
    /// Bytes written there (for bitnet-hf: the packed weight then its 4-byte F32 scale).
    pub output_length: u64,
    /// Why a tensor chosen for ternary was stored otherwise.
    pub fallback_reason: Option<String>,
    /// bitnet-hf output: the scale tensor written right after the weight.
    pub scale_name: Option<String>,
    /// bitnet-hf input: the dtype of the scale tensor (`inputs[1]`).
    pub scale_dtype: Option<DType>,
    pub scale_semantics: ScaleSemantics,
    pub rule: ScaleRule,
    pub scope: Scope,
    pub backend: Backend,
    /// The rows of the output reordered for llama.cpp's RoPE (Q and K of LLaMA-style
    /// models from a model folder). Such an op is converted whole by
    /// [`crate::io::convert_tensor`], even when it is a copy: a byte copy would keep the
    /// input's row order.
    pub row_order: Option<RopeRowOrder>,
    /// The values a [`OpKind::Constant`] op writes (as its `out_type`); empty for the
    /// others.
    pub values: Vec<f32>,
    /// For a tensor ternarised from floats: the importance of each column, from
    /// [`PlanOptions::importance`].
    pub importance: Option<Vec<f32>>,
}

impl PlanOp {
    /// Total input bytes (the sum of the input ranges).
    pub fn input_length(&self) -> u64 {
        self.inputs.iter().map(|r| r.length).sum()
    }

    /// Number of values.
    pub fn element_count(&self) -> u64 {
        element_count(&self.shape).unwrap_or(u64::MAX)
    }

    /// Output bits per value (`None` for an empty tensor).
    pub fn bits_per_weight(&self) -> Option<f64> {
        let n = self.element_count();
        (n > 0).then(|| self.output_length as f64 * 8.0 / n as f64)
    }

    /// Whether the output is the input's bytes as they are, so that the caller may copy
    /// them in chunks instead of converting.
    pub fn copies_bytes(&self) -> bool {
        self.kind == OpKind::Copy && self.row_order.is_none()
    }

    /// The ternary layout this op writes, if any.
    pub fn out_layout(&self) -> Option<TernaryLayout> {
        self.out_type.format().and_then(TernaryLayout::from_format)
    }
}

/// The whole plan.
#[derive(Clone, Debug, PartialEq)]
pub struct ConversionPlan {
    pub output: OutputFormat,
    /// The output's first bytes, up to its data section (padding included).
    pub header: Vec<u8>,
    /// Size of the whole output file.
    pub output_size: u64,
    /// One op per output tensor, in output order.
    pub ops: Vec<PlanOp>,
    /// The model folder says its weights were trained ternary (a BitNet architecture,
    /// or a BitNet `quantization_config`): its own forward pass ternarises them, so
    /// converting them is faithful however far from ternary their stored values are.
    pub trained_ternary: bool,
}

/// Whether a tensor is ternarised by default: 2-D, and no [`DEFAULT_KEEP`] pattern in
/// its name (see the module docs for `output.weight`).
pub fn default_ternary(name: &str, shape: &[u64]) -> bool {
    shape.len() == 2 && !kept_by_name(name)
}

fn kept_by_name(name: &str) -> bool {
    DEFAULT_KEEP.iter().any(|&p| {
        if p == "output.weight" {
            name.match_indices(p).any(|(i, _)| i == 0 || name.as_bytes()[i - 1] == b'.')
        } else {
            name.contains(p)
        }
    })
}

/// A tensor as the plan sees it: bitnet-hf weights carry their scale.
struct Entry<'a> {
    file: usize,
    tensor: &'a TensorInfo,
    /// The scale sibling of a bitnet-hf weight.
    scale: Option<&'a TensorInfo>,
}

impl Entry<'_> {
    fn in_type(&self) -> DType {
        if self.scale.is_some() {
            DType::BitnetHf
        } else {
            self.tensor.dtype
        }
    }

    /// Row-major shape of the values.
    fn shape(&self) -> Vec<u64> {
        let mut shape = self.tensor.shape.clone();
        if self.scale.is_some() {
            // [R, in] packs [4R, in]; the exact row count is not in the file.
            shape[0] = shape[0].saturating_mul(4);
        }
        shape
    }

    fn inputs(&self, scale_file: usize) -> Vec<InputRange> {
        let mut inputs = vec![InputRange { file: self.file, offset: self.tensor.offset, length: self.tensor.byte_len }];
        if let Some(s) = self.scale {
            inputs.push(InputRange { file: scale_file, offset: s.offset, length: s.byte_len });
        }
        inputs
    }
}

/// The ternary layout's dtype.
fn layout_dtype(layout: TernaryLayout) -> Result<DType> {
    DType::from_format(layout.format())
        .ok_or_else(|| Error::Unsupported(format!("the {layout} layout has no model-file type")))
}

fn check_options(inputs: &[ModelHeader], opts: &PlanOptions) -> Result<()> {
    let first = inputs.first().ok_or(Error::EmptyInput { what: "input files" })?;
    if inputs.iter().any(|h| h.format != first.format) {
        return Err(Error::Unsupported("inputs mix safetensors and GGUF files".into()));
    }
    if opts.model.is_some() && (first.format != Format::Safetensors || opts.output != OutputFormat::Gguf) {
        return Err(Error::Unsupported(
            "a model folder converts from its safetensors files to GGUF; use --output gguf".into(),
        ));
    }
    if first.format == Format::Gguf && inputs.len() > 1 {
        return Err(Error::Unsupported(
            "GGUF input is one file; merge split GGUF files (llama-gguf-split --merge) first".into(),
        ));
    }
    if !opts.layout.format().info().outputs.contains(&opts.output) {
        let expected = one_of(&opts.output.ternary_formats().map(StorageFormat::name).collect::<Vec<_>>());
        return Err(Error::InvalidOption {
            name: "layout",
            reason: format!("{} output takes layout {expected}, not {}", opts.output.name(), opts.layout),
        });
    }
    // The scope rules of the layout, on a row length every layout accepts.
    opts.layout.stored_bytes(1, 256, opts.scope)?;
    if opts.backend.kernels().is_none() {
        return Err(Error::Unsupported(format!("backend {} on this machine", opts.backend)));
    }
    Ok(())
}

/// The scale semantics read from safetensors metadata, if any input names its class.
fn detected_semantics(inputs: &[ModelHeader]) -> Option<ScaleSemantics> {
    inputs.iter().find_map(|h| match &h.metadata {
        Metadata::Safetensors(m) => {
            #[derive(serde::Deserialize)]
            struct Config {
                linear_class: Option<String>,
            }
            let (_, config) = m.iter().find(|(k, _)| k == "quantization_config")?;
            let config: Config = serde_json::from_str(config).ok()?;
            match config.linear_class?.as_str() {
                "bitlinear" => Some(ScaleSemantics::Divide),
                "autobitlinear" => Some(ScaleSemantics::Multiply),
                _ => None,
            }
        }
        Metadata::Gguf(_) => None,
    })
}

/// A decision for one entry, before offsets are known.
struct Decision {
    kind: OpKind,
    out_type: DType,
    reason: Option<String>,
    output_length: u64,
}

fn fallback_for_rows(layout: TernaryLayout, cols: u64, in_type: DType, shape: &[u64]) -> Result<Option<Decision>> {
    let block = match layout.row_block() {
        Some(b) if !cols.is_multiple_of(b as u64) => b,
        _ => return Ok(None),
    };
    let name = layout_dtype(layout)?.name();
    let (out_type, why) = if cols.is_multiple_of(QK8_0 as u64) {
        (DType::Q8_0, format!("stored as Q8_0 ({cols} is a multiple of 32), as llama.cpp falls back"))
    } else {
        (DType::F16, format!("stored as F16 ({cols} is not a multiple of 32 either), as llama.cpp falls back"))
    };
    let kind = match (in_type == out_type, out_type) {
        (true, _) => OpKind::Copy,
        (false, DType::Q8_0) => OpKind::Q8_0,
        (false, _) => OpKind::Convert,
    };
    Ok(Some(Decision {
        kind,
        out_type,
        reason: Some(format!("rows of {cols} values are not a multiple of {name}'s block of {block}; {why}")),
        output_length: out_type.tensor_bytes(shape)?,
    }))
}

/// Why a tensor chosen for ternary cannot be, before looking at its row length.
fn ternary_blocker(in_type: DType, shape: &[u64], output: OutputFormat) -> Result<Option<String>> {
    Ok(if output == OutputFormat::BitnetHf && shape.len() != 2 {
        Some(format!("bitnet-hf packs 2-D weights only; this tensor has {} dimensions", shape.len()))
    } else if shape.len() < 2 {
        Some(format!("ternary layouts need 2 or more dimensions; this tensor has {}", shape.len()))
    } else if !in_type.is_decodable() {
        Some(format!("{in_type} values cannot be decoded, so they cannot be ternarised"))
    } else if element_count(shape)? == 0 {
        Some("the tensor has no values".into())
    } else {
        None
    })
}

fn keep_gguf(in_type: DType, shape: &[u64], stored_len: u64) -> Result<Decision> {
    let (kind, out_type) = match in_type {
        DType::F32 | DType::F16 | DType::BF16 | DType::BitnetHf => {
            let target = if shape.len() >= 2 { DType::F16 } else { DType::F32 };
            (if in_type == target { OpKind::Copy } else { OpKind::Convert }, target)
        }
        t if t.ggml_id().is_some() => (OpKind::Copy, t),
        t => return Err(Error::Unsupported(format!("dtype {t} has no GGUF type"))),
    };
    let output_length = if kind == OpKind::Copy { stored_len } else { out_type.tensor_bytes(shape)? };
    Ok(Decision { kind, out_type, reason: None, output_length })
}

fn keep_bitnet_hf(in_type: DType, shape: &[u64], stored_len: u64) -> Result<Decision> {
    if in_type.safetensors_name().is_some() {
        return Ok(Decision { kind: OpKind::Copy, out_type: in_type, reason: None, output_length: stored_len });
    }
    if in_type.is_decodable() && in_type != DType::BitnetHf {
        return Ok(Decision {
            kind: OpKind::Convert,
            out_type: DType::F32,
            reason: None,
            output_length: DType::F32.tensor_bytes(shape)?,
        });
    }
    Err(Error::Unsupported(format!("{in_type} cannot be stored in safetensors nor decoded")))
}

/// Bytes of a bitnet-hf weight `[rows, cols]`: the packed codes and the 4-byte scale.
fn bitnet_hf_len(shape: &[u64]) -> Result<u64> {
    TernaryLayout::BitnetHf.stored_bytes(shape[0], shape[1], Scope::Tensor)
}

fn decide(entry: &Entry<'_>, wants_ternary: bool, opts: &PlanOptions) -> Result<Decision> {
    let in_type = entry.in_type();
    let shape = entry.shape();
    let stored_len = entry.tensor.byte_len;
    // bitnet-hf into bitnet-hf: the weight and its scale are copied as they are.
    if opts.output == OutputFormat::BitnetHf && entry.scale.is_some() {
        return Ok(Decision { kind: OpKind::Copy, out_type: DType::U8, reason: None, output_length: stored_len });
    }
    let mut reason = None;
    if wants_ternary {
        reason = ternary_blocker(in_type, &shape, opts.output)?;
        if reason.is_none() {
            let cols = *shape.last().expect("2 or more dimensions");
            if let Some(fallback) = fallback_for_rows(opts.layout, cols, in_type, &shape)? {
                return Ok(fallback);
            }
            let out_type = layout_dtype(opts.layout)?;
            if in_type == out_type {
                // Re-packing into the same layout would give the same bytes.
                return Ok(Decision { kind: OpKind::Copy, out_type, reason: None, output_length: stored_len });
            }
            let kind = if in_type.is_ternary() { OpKind::Repack } else { OpKind::Quantize };
            let output_length = match opts.output {
                OutputFormat::Gguf => out_type.tensor_bytes(&shape)?,
                OutputFormat::BitnetHf => bitnet_hf_len(&shape)?,
            };
            return Ok(Decision { kind, out_type, reason: None, output_length });
        }
    }
    let mut kept = match opts.output {
        OutputFormat::Gguf => keep_gguf(in_type, &shape, stored_len)?,
        OutputFormat::BitnetHf => keep_bitnet_hf(in_type, &shape, stored_len)?,
    };
    kept.reason = reason;
    Ok(kept)
}

/// Plans the conversion of one model (one file, or the shards of one checkpoint in the
/// order given) into one output file.
pub fn plan_conversion(inputs: &[ModelHeader], opts: &PlanOptions) -> Result<ConversionPlan> {
    check_options(inputs, opts)?;

    // Every tensor, with names unique across the inputs.
    let mut by_name: HashMap<&str, (usize, &TensorInfo)> = HashMap::new();
    for (file, header) in inputs.iter().enumerate() {
        for t in &header.tensors {
            if by_name.insert(&t.name, (file, t)).is_some() {
                return Err(Error::Malformed {
                    format: "safetensors shards",
                    reason: format!("tensor \"{}\" is in more than one input file", t.name),
                });
            }
        }
    }
    for (option, names) in [("forceTernary", &opts.force_ternary), ("forceKeep", &opts.force_keep)] {
        if let Some(missing) = names.iter().find(|n| !by_name.contains_key(n.as_str())) {
            return Err(Error::InvalidOption {
                name: option,
                reason: format!("'{missing}' is not a tensor of the input"),
            });
        }
    }

    // bitnet-hf weights: a 2-D U8 tensor with a one-value float `<name>_scale` sibling.
    let mut scale_of: HashMap<&str, (usize, &TensorInfo)> = HashMap::new();
    for (&name, &(_, t)) in &by_name {
        if t.dtype != DType::U8 || t.shape.len() != 2 {
            continue;
        }
        if let Some(&(file, s)) = by_name.get(format!("{name}_scale").as_str()) {
            if s.dtype.is_float() && s.element_count() == 1 {
                scale_of.insert(name, (file, s));
            }
        }
    }
    let scale_names: HashSet<&str> = scale_of.values().map(|(_, s)| s.name.as_str()).collect();
    let semantics = opts
        .bitnet_scale
        .or_else(|| opts.model.as_ref().and_then(|m| m.config.bitnet_scale))
        .or_else(|| detected_semantics(inputs))
        .unwrap_or(ScaleSemantics::Multiply);

    let mut ops = Vec::new();
    for (file, header) in inputs.iter().enumerate() {
        for t in &header.tensors {
            // A scale folded into its weight has no op of its own in GGUF.
            if opts.output == OutputFormat::Gguf && scale_names.contains(t.name.as_str()) {
                continue;
            }
            let scale = scale_of.get(t.name.as_str()).copied();
            let entry = Entry { file, tensor: t, scale: scale.map(|(_, s)| s) };
            let shape = entry.shape();
            let wants = !opts.force_keep.contains(&t.name)
                && (opts.force_ternary.contains(&t.name) || default_ternary(&t.name, &shape));
            let d = decide(&entry, wants, opts).map_err(|e| e.in_tensor(&t.name))?;
            // A copy into safetensors is of the tensor alone, as stored: a bitnet-hf
            // weight's scale is copied by its own op.
            let entry = if d.kind == OpKind::Copy && opts.output == OutputFormat::BitnetHf {
                Entry { scale: None, ..entry }
            } else {
                entry
            };
            let is_bitnet_out = d.out_type == DType::BitnetHf;
            ops.push(PlanOp {
                name: t.name.clone(),
                kind: d.kind,
                inputs: entry.inputs(scale.map_or(file, |(f, _)| f)),
                in_type: entry.in_type(),
                out_type: d.out_type,
                shape: entry.shape(),
                output_offset: 0,
                output_length: d.output_length,
                fallback_reason: d.reason,
                scale_name: is_bitnet_out.then(|| format!("{}_scale", t.name)),
                scale_dtype: entry.scale.map(|s| s.dtype),
                scale_semantics: semantics,
                rule: opts.rule,
                scope: opts.scope,
                backend: opts.backend,
                row_order: None,
                values: Vec::new(),
                importance: None,
            });
        }
    }

    let model_metadata = match &opts.model {
        Some(model) => hf::tensors::apply(model, &mut ops)?,
        None => Vec::new(),
    };
    if let Some(matrix) = &opts.importance {
        for op in ops.iter_mut().filter(|op| op.kind == OpKind::Quantize) {
            let Some(values) = matrix.entries.get(&op.name) else { continue };
            let cols = op.shape.last().copied().unwrap_or(0);
            if values.len() as u64 != cols {
                return Err(Error::Unsupported(format!(
                    "the importance matrix has {} values for tensor '{}', which has rows of {cols}",
                    values.len(),
                    op.name
                )));
            }
            op.importance = Some(values.clone());
        }
    }
    let (header, output_size) = match opts.output {
        OutputFormat::Gguf => layout_gguf(inputs, opts, model_metadata, &mut ops)?,
        OutputFormat::BitnetHf => layout_bitnet_hf(inputs, &mut ops)?,
    };
    let trained_ternary = opts
        .model
        .as_ref()
        .is_some_and(|m| m.config.architecture == hf::Architecture::Bitnet || m.config.bitnet_scale.is_some());
    Ok(ConversionPlan { output: opts.output, header, output_size, ops, trained_ternary })
}

/// Sets a key's value in place, or appends it.
fn set_key(metadata: &mut Vec<(String, GgufValue)>, key: &str, value: GgufValue) {
    match metadata.iter_mut().find(|(k, _)| k == key) {
        Some((_, v)) => *v = value,
        None => metadata.push((key.to_string(), value)),
    }
}

fn layout_gguf(
    inputs: &[ModelHeader],
    opts: &PlanOptions,
    model_metadata: Vec<(String, GgufValue)>,
    ops: &mut [PlanOp],
) -> Result<(Vec<u8>, u64)> {
    let ftype = opts.layout.format().info().file_type.ok_or_else(|| {
        Error::Unsupported(format!("{} has no llama.cpp file type; GGUF output takes none", opts.layout))
    })?;
    let input = &inputs[0];
    let (mut metadata, alignment) = match &input.metadata {
        Metadata::Gguf(m) => (m.clone(), input.alignment.unwrap_or(super::gguf::DEFAULT_ALIGNMENT)),
        Metadata::Safetensors(_) => (model_metadata, super::gguf::DEFAULT_ALIGNMENT),
    };
    set_key(&mut metadata, "general.file_type", GgufValue::U32(ftype));
    set_key(&mut metadata, "general.quantization_version", GgufValue::U32(QUANTIZATION_VERSION));
    if input.format == Format::Safetensors {
        set_key(&mut metadata, "general.alignment", GgufValue::U32(alignment));
    }
    let tensors: Vec<GgufTensorOut> =
        ops.iter()
            .map(|op| {
                let ggml_type = op.out_type.ggml_id().ok_or_else(|| {
                    Error::Unsupported(format!("{} has no GGUF type", op.out_type)).in_tensor(&op.name)
                })?;
                Ok(GgufTensorOut {
                    name: op.name.clone(),
                    ne: op.shape.iter().rev().copied().collect(),
                    ggml_type,
                    byte_len: op.output_length,
                })
            })
            .collect::<Result<_>>()?;
    let layout = write_gguf(&metadata, &tensors, alignment)?;
    for (op, offset) in ops.iter_mut().zip(&layout.offsets) {
        op.output_offset = *offset;
    }
    Ok((layout.header, layout.total))
}

fn layout_bitnet_hf(inputs: &[ModelHeader], ops: &mut [PlanOp]) -> Result<(Vec<u8>, u64)> {
    let mut metadata: Vec<(String, String)> = Vec::new();
    for h in inputs {
        if let Metadata::Safetensors(m) = &h.metadata {
            for (k, v) in m {
                if !metadata.iter().any(|(key, _)| key == k) {
                    metadata.push((k.clone(), v.clone()));
                }
            }
        }
    }
    if !metadata.iter().any(|(k, _)| k == "format") {
        metadata.insert(0, ("format".into(), "pt".into()));
    }
    match metadata.iter_mut().find(|(k, _)| k == "quantization_config") {
        Some((_, v)) => *v = QUANTIZATION_CONFIG.into(),
        None => metadata.push(("quantization_config".into(), QUANTIZATION_CONFIG.into())),
    }

    struct Out {
        name: String,
        dtype: &'static str,
        shape: Vec<u64>,
        range: [u64; 2],
    }
    let overflow = || Error::SizeOverflow { what: "safetensors data offsets" };
    let mut outs = Vec::with_capacity(ops.len());
    let mut names = HashSet::new();
    let mut at = 0u64;
    for op in ops.iter() {
        let end = at.checked_add(op.output_length).ok_or_else(overflow)?;
        if let Some(scale_name) = &op.scale_name {
            let packed = end - 4;
            let shape = vec![op.shape[0].div_ceil(4), op.shape[1]];
            outs.push(Out { name: op.name.clone(), dtype: "U8", shape, range: [at, packed] });
            outs.push(Out { name: scale_name.clone(), dtype: "F32", shape: vec![1], range: [packed, end] });
        } else {
            let dtype = op.out_type.safetensors_name().ok_or_else(|| {
                Error::Unsupported(format!("{} has no safetensors dtype", op.out_type)).in_tensor(&op.name)
            })?;
            outs.push(Out { name: op.name.clone(), dtype, shape: op.shape.clone(), range: [at, end] });
        }
        at = end;
    }
    for o in &outs {
        if !names.insert(o.name.as_str()) {
            return Err(Error::Unsupported(format!(
                "the output would have two tensors named '{}' (a weight's new `_scale` tensor meets an input tensor)",
                o.name
            )));
        }
    }
    let entries: Vec<(&str, &str, &[u64], [u64; 2])> =
        outs.iter().map(|o| (o.name.as_str(), o.dtype, o.shape.as_slice(), o.range)).collect();
    let header = safetensors::write_header(Some(&metadata), &entries);
    let mut at = header.len() as u64;
    for op in ops.iter_mut() {
        op.output_offset = at;
        at = at.checked_add(op.output_length).ok_or_else(overflow)?;
    }
    Ok((header, at))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::io::{convert_tensor, read_model};

    /// bitnet-hf into bitnet-hf: the weight's op copies the weight's bytes alone (its
    /// scale has its own op), so that its input is exactly its output.
    #[test]
    fn bitnet_hf_weight_copied_without_its_scale() {
        let entries: Vec<(&str, &str, &[u64], [u64; 2])> =
            vec![("w", "U8", &[1, 256], [0, 256]), ("w_scale", "F32", &[1], [256, 260])];
        let mut file = safetensors::write_header(None, &entries);
        let data_at = file.len();
        file.extend((0..256).map(|i| [0b01_01_01_01u8, 0b10_01_00_10][i % 2]));
        file.extend_from_slice(&0.5f32.to_le_bytes());
        let h = read_model(&file, file.len() as u64).unwrap();
        let opts =
            PlanOptions { output: OutputFormat::BitnetHf, layout: TernaryLayout::BitnetHf, ..Default::default() };
        let plan = plan_conversion(std::slice::from_ref(&h), &opts).unwrap();
        let w = &plan.ops[0];
        assert_eq!((w.name.as_str(), w.kind, w.in_type, w.scale_dtype), ("w", OpKind::Copy, DType::U8, None));
        assert_eq!(w.inputs, [InputRange { file: 0, offset: data_at as u64, length: 256 }]);
        assert_eq!(w.input_length(), w.output_length);
        for op in &plan.ops {
            let input: Vec<u8> = op
                .inputs
                .iter()
                .flat_map(|r| file[r.offset as usize..(r.offset + r.length) as usize].iter().copied())
                .collect();
            assert_eq!(convert_tensor(op, &input, true).unwrap().bytes, input, "{}", op.name);
        }
        // Into GGUF the scale still rides with its weight.
        let plan = plan_conversion(std::slice::from_ref(&h), &PlanOptions::default()).unwrap();
        assert_eq!((plan.ops.len(), plan.ops[0].inputs.len()), (1, 2));
    }

    /// An empty safetensors tensor may have a dimension over 2^63 - 1; GGUF cannot
    /// store it, so the plan refuses it instead of writing a header no reader takes.
    #[test]
    fn gguf_output_refuses_dimensions_over_i64() {
        let entries: Vec<(&str, &str, &[u64], [u64; 2])> = vec![("w", "F32", &[1 << 63, 0], [0, 0])];
        let header = safetensors::write_header(None, &entries);
        let h = read_model(&header, header.len() as u64).unwrap();
        let e = plan_conversion(std::slice::from_ref(&h), &PlanOptions::default()).unwrap_err();
        assert!(matches!(e, Error::Unsupported(_)) && e.to_string().contains("'w'"), "{e}");
        let opts =
            PlanOptions { output: OutputFormat::BitnetHf, layout: TernaryLayout::BitnetHf, ..Default::default() };
        let plan = plan_conversion(std::slice::from_ref(&h), &opts).unwrap();
        assert_eq!(read_model(&plan.header, plan.output_size).unwrap().tensors[0].shape, [1 << 63, 0]);
    }
}
