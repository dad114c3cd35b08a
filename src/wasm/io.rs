//! Model files from JavaScript: read a header, plan a conversion, convert tensors.
//!
//! JavaScript moves the bytes (Node `fs`, browser `Blob.slice`); these functions only see
//! the slices they are given. Every size and offset crosses as a plain number (exact up
//! to 2^53); nothing here can panic on input from JavaScript.
//!
//! ```js
//! // 1. Inspect: start with the first MiB; read more while the header goes on.
//! let r = inspectModel(first1MiB, fileSize);
//! // r is { needBytes: 4194304 } when the prefix is too short: read that many bytes
//! // from the start of the file (never more than its size) and call again. Otherwise:
//! // { format: 'gguf', version: 3, fileSize, headerLength, dataOffset: 1234432,
//! //   alignment: 32, metadata: { 'general.architecture': 'llama', ... },
//! //   tensors: [{ name: 'blk.0.attn_q.weight', dtype: 'F16', shape: [4096, 4096],
//! //               offset: 1234432, byteLength: 33554432, bitsPerWeight: 16 }, ...],
//! //   totalBytes: 13476839424 }
//! // safetensors: format 'safetensors', version null, alignment null, metadata is the
//! // `__metadata__` object (strings). Shapes are row-major (outermost first, as numpy);
//! // a GGUF `ne` is that reversed. `offset` is absolute in the file.
//! // GGUF metadata values: numbers (64-bit integers beyond 2^53 as decimal strings),
//! // booleans, strings (invalid UTF-8 replaced by U+FFFD), arrays; an array of more than
//! // 256 elements is summarised as { type: 'STRING', length: 128256 } (its element type
//! // in gguf-py's names: UINT8 .. FLOAT64, STRING, ARRAY).
//!
//! // 2. Sharded safetensors: read the index, then each shard's header.
//! const index = parseSafetensorsIndex(indexJsonBytes);
//! // { files: ['model-00001-of-00002.safetensors', ...] (sorted), weightMap: { name: file } }
//!
//! // 3. Plan. Inputs in order; `name` is needed only with `index`.
//! const plan = planConversion(
//!   [{ prefix, fileSize, name: 'model-00001-of-00002.safetensors' }, ...],
//!   { output: 'gguf',            // or 'bitnet-hf'
//!     layout: 'tq2_0',           // tq2_0 | tq1_0 | i2_s (gguf), bitnet-hf (default per output)
//!     rule: 'absmean', scope: 'tensor', blockSize: 256,
//!     forceTernary: ['a.weight'], forceKeep: ['b.weight'],   // names; forceKeep wins
//!     bitnetScale: 'multiply',   // how bitnet-hf inputs' weight_scale applies (or 'divide')
//!     index: indexJsonBytes });  // optional: checks every tensor is in its named shard
//! // When an input's prefix is too short: { needBytes: 2097152, input: 0 }: read more of
//! // input 0 and call again. Otherwise a ConversionPlan:
//! plan.output;       // 'gguf' | 'bitnet-hf'
//! plan.header;       // Uint8Array: the output's bytes from offset 0 to its data section
//! plan.outputSize;   // total output bytes; gaps between ops are zero bytes
//! plan.opCount;
//! plan.op(i);        // {
//! //   index: 3, name: 'model.layers.0.mlp.down_proj.weight',
//! //   kind: 'quantize' | 'repack' | 'convert' | 'q8_0' | 'copy',
//! //   inputs: [{ file: 0, offset: 123456, length: 4194304 }],  // + the weight_scale
//! //                                     // range for a bitnet-hf input weight
//! //   inputLength: 4194304, outputOffset: 98304, outputLength: 135168,
//! //   inType: 'F32', outType: 'TQ2_0', shape: [1024, 1024], bitsPerWeight: 2.0625,
//! //   fallbackReason: null,  // e.g. "rows of 3200 values are not a multiple of TQ2_0's
//! //                          // block of 256; stored as Q8_0 (3200 is a multiple of 32), ..."
//! //   scaleName: null }      // bitnet-hf output: 'x.weight_scale', written (4 bytes,
//! //                          // F32) right after the packed weight, inside outputLength
//! plan.ops();        // every op, as an array of those objects
//! // For 'copy' ops, copy the input range to the output offset in chunks yourself.
//! // Otherwise read the input ranges, concatenated in order, and convert:
//! const r = plan.convertTensor(i, inputBytes, /* measure */ true);
//! // { bytes: Uint8Array (exactly outputLength), stats: { name, shape, kind, inType,
//! //   outType, bytesIn, bytesOut, bitsPerWeight, scaleMin, scaleMax, scaleMean, mse,
//! //   rmse, maxAbsError, snrDb, cosine, zeroFraction } | null }
//! // (stats figures that do not apply are null; snrDb is Infinity when exact.)
//! plan.free();
//! ```

use js_sys::{Array, Object, Reflect, Uint8Array};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};
use wasm_bindgen::prelude::*;

use super::options::Options;
use crate::error::Error;
use crate::io::{self, GgufValue, Metadata, ModelHeader, OutputFormat, PlanOptions, ScaleSemantics};
use crate::{Backend, ScaleRule, Scope, TernaryLayout};

/// Arrays longer than this are summarised in `inspectModel`.
const ARRAY_LIMIT: usize = 256;
const MAX_SAFE: f64 = 9007199254740991.0;

fn js_error(e: Error) -> JsError {
    JsError::new(&e.to_string())
}

/// Maps become plain objects and `None` becomes `null`.
fn to_js<T: Serialize + ?Sized>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(
            &serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true).serialize_missing_as_null(true),
        )
        .map_err(|e| JsError::new(&format!("cannot convert result: {e}")))
}

fn set(object: &Object, key: &str, value: &JsValue) -> Result<(), JsError> {
    Reflect::set(object, &JsValue::from_str(key), value)
        .map(|_| ())
        .map_err(|_| JsError::new(&format!("cannot set '{key}' on the result")))
}

/// A file size from JavaScript: a whole number in [0, 2^53).
fn size_arg(value: f64, what: &str) -> Result<u64, JsError> {
    if value.fract() == 0.0 && (0.0..=MAX_SAFE).contains(&value) {
        Ok(value as u64)
    } else {
        Err(JsError::new(&format!("{what}: {value} is not a whole number of bytes")))
    }
}

fn need_bytes_object(needed: u64, input: Option<usize>) -> Result<JsValue, JsError> {
    let object = Object::new();
    set(&object, "needBytes", &JsValue::from_f64(needed as f64))?;
    if let Some(i) = input {
        set(&object, "input", &JsValue::from_f64(i as f64))?;
    }
    Ok(object.into())
}

/// A GGUF value as JavaScript sees it (see the module docs).
struct ValueView<'a>(&'a GgufValue);

fn wide_int<S: Serializer>(s: S, v: i128) -> Result<S::Ok, S::Error> {
    if (v.unsigned_abs() as f64) <= MAX_SAFE {
        s.serialize_f64(v as f64)
    } else {
        s.serialize_str(&v.to_string())
    }
}

impl Serialize for ValueView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            GgufValue::U8(v) => s.serialize_f64(*v as f64),
            GgufValue::I8(v) => s.serialize_f64(*v as f64),
            GgufValue::U16(v) => s.serialize_f64(*v as f64),
            GgufValue::I16(v) => s.serialize_f64(*v as f64),
            GgufValue::U32(v) => s.serialize_f64(*v as f64),
            GgufValue::I32(v) => s.serialize_f64(*v as f64),
            GgufValue::F32(v) => s.serialize_f64(*v as f64),
            GgufValue::F64(v) => s.serialize_f64(*v),
            GgufValue::U64(v) => wide_int(s, *v as i128),
            GgufValue::I64(v) => wide_int(s, *v as i128),
            GgufValue::Bool(v) => s.serialize_bool(*v),
            GgufValue::String(b) => s.serialize_str(&String::from_utf8_lossy(b)),
            GgufValue::Array(a) if a.len() > ARRAY_LIMIT => {
                let mut map = s.serialize_map(Some(2))?;
                map.serialize_entry("type", a.elem_type().name())?;
                map.serialize_entry("length", &(a.len() as f64))?;
                map.end()
            }
            GgufValue::Array(a) => {
                let mut seq = s.serialize_seq(Some(a.len()))?;
                for item in a.iter() {
                    seq.serialize_element(&ValueView(&item))?;
                }
                seq.end()
            }
        }
    }
}

struct MetadataView<'a>(&'a Metadata);

impl Serialize for MetadataView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.0.len()))?;
        match self.0 {
            Metadata::Safetensors(m) => {
                for (k, v) in m {
                    map.serialize_entry(k, v)?;
                }
            }
            Metadata::Gguf(m) => {
                for (k, v) in m {
                    map.serialize_entry(k, &ValueView(v))?;
                }
            }
        }
        map.end()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TensorView<'a> {
    name: &'a str,
    dtype: &'static str,
    shape: &'a [u64],
    offset: u64,
    byte_length: u64,
    bits_per_weight: Option<f64>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ModelView<'a> {
    format: &'static str,
    version: Option<u32>,
    file_size: u64,
    header_length: u64,
    data_offset: u64,
    alignment: Option<u32>,
    metadata: MetadataView<'a>,
    tensors: Vec<TensorView<'a>>,
    total_bytes: u64,
}

fn model_view(h: &ModelHeader) -> ModelView<'_> {
    ModelView {
        format: h.format.name(),
        version: h.version,
        file_size: h.file_size,
        header_length: h.header_len,
        data_offset: h.data_offset,
        alignment: h.alignment,
        metadata: MetadataView(&h.metadata),
        tensors: h
            .tensors
            .iter()
            .map(|t| TensorView {
                name: &t.name,
                dtype: t.dtype.name(),
                shape: &t.shape,
                offset: t.offset,
                byte_length: t.byte_len,
                bits_per_weight: t.bits_per_weight(),
            })
            .collect(),
        total_bytes: h.tensor_bytes(),
    }
}

/// Reads a safetensors or GGUF header from the first bytes of a file of `fileSize`
/// bytes. Returns `{ needBytes }` when the prefix is too short (see the module docs).
#[wasm_bindgen(js_name = inspectModel)]
pub fn inspect_model(prefix: &[u8], file_size: f64) -> Result<JsValue, JsError> {
    let size = size_arg(file_size, "inspectModel fileSize")?;
    match io::read_model(prefix, size) {
        Ok(header) => to_js(&model_view(&header)),
        Err(Error::NeedMoreBytes { needed }) => need_bytes_object(needed, None),
        Err(e) => Err(js_error(e)),
    }
}

/// Parses a `*.safetensors.index.json`: `{ files, weightMap }`.
/// The values of `bytes` read as `dtype` (`F32`, `F16` or `BF16`, little-endian).
#[wasm_bindgen(js_name = decodeFloats)]
pub fn decode_floats(dtype: &str, bytes: &[u8]) -> Result<Vec<f32>, JsError> {
    let dtype = io::DType::from_safetensors(dtype)
        .ok_or_else(|| JsError::new(&format!("decodeFloats: unknown dtype '{dtype}' (expected F32, F16 or BF16)")))?;
    io::convert::decode_float_bytes(dtype, bytes).map_err(js_error)
}

#[wasm_bindgen(js_name = parseSafetensorsIndex)]
pub fn parse_safetensors_index(json: &[u8]) -> Result<JsValue, JsError> {
    struct WeightMap<'a>(&'a [(String, String)]);
    impl Serialize for WeightMap<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut map = s.serialize_map(Some(self.0.len()))?;
            for (k, v) in self.0 {
                map.serialize_entry(k, v)?;
            }
            map.end()
        }
    }
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct IndexView<'a> {
        files: &'a [String],
        weight_map: WeightMap<'a>,
    }
    let index = io::parse_safetensors_index(json).map_err(js_error)?;
    to_js(&IndexView { files: &index.files, weight_map: WeightMap(&index.weight_map) })
}

const PLAN_KEYS: &[&str] = &[
    "output",
    "layout",
    "rule",
    "scope",
    "blockSize",
    "forceTernary",
    "forceKeep",
    "bitnetScale",
    "index",
    "model",
    "imatrix",
];
/// The files of a Hugging Face model folder that the converter reads besides the
/// weights, by their key in the `model` option: config.json (required) first.
const FOLDER_FILES: [(&str, &str); 6] = [
    ("config", "config.json"),
    ("tokenizerJson", "tokenizer.json"),
    ("tokenizerModel", "tokenizer.model"),
    ("tokenizerConfig", "tokenizer_config.json"),
    ("generationConfig", "generation_config.json"),
    ("addedTokens", "added_tokens.json"),
];

/// The files that may hold a model folder's weights, in the order they are preferred:
/// an index (whose shards `parseSafetensorsIndex` lists), else one safetensors file.
const WEIGHT_FILES: [&str; 2] = ["model.safetensors.index.json", "model.safetensors"];

/// Which file of a model folder to open for its weights, from the names of the folder's
/// files: what the CLI and the demo open.
#[wasm_bindgen(js_name = folderWeights)]
pub fn folder_weights(names: js_sys::Array) -> Result<String, JsError> {
    let names: Vec<String> = names.iter().filter_map(|n| n.as_string()).collect();
    WEIGHT_FILES
        .iter()
        .find(|w| names.iter().any(|n| n == *w))
        .map(|w| w.to_string())
        .ok_or_else(|| JsError::new("no model.safetensors or model.safetensors.index.json in the model folder"))
}

/// The files of a model folder that the `model` option of `planConversion` takes, as
/// `[{ key, file, required }]`: what the CLI and the demo read from a folder.
#[wasm_bindgen(js_name = folderFiles)]
pub fn folder_files() -> Result<JsValue, JsError> {
    #[derive(Serialize)]
    struct FolderFile {
        key: &'static str,
        file: &'static str,
        required: bool,
    }
    let files: Vec<FolderFile> =
        FOLDER_FILES.iter().map(|&(key, file)| FolderFile { key, file, required: key == "config" }).collect();
    to_js(&files)
}

/// The `model` option: a Hugging Face model folder's files, as bytes.
fn model_folder(value: &JsValue) -> Result<io::hf::ModelFolder, JsError> {
    let keys: Vec<&str> = std::iter::once("name").chain(FOLDER_FILES.iter().map(|&(key, _)| key)).collect();
    let o = Options::read(value, "options.model", &keys)?;
    let file = |key: &str| -> Result<Option<Vec<u8>>, JsError> {
        o.value(key).map(|v| bytes_of(&v, &format!("options.model.{key}"))).transpose()
    };
    let config_json = file("config")?.ok_or_else(|| JsError::new("options.model.config (config.json) is missing"))?;
    let (tokenizer_json, tokenizer_model) = (file("tokenizerJson")?, file("tokenizerModel")?);
    let (tokenizer_config_json, generation_config_json) = (file("tokenizerConfig")?, file("generationConfig")?);
    let added_tokens_json = file("addedTokens")?;
    let files = io::hf::TokenizerFiles {
        tokenizer_json: tokenizer_json.as_deref(),
        tokenizer_model: tokenizer_model.as_deref(),
        tokenizer_config_json: tokenizer_config_json.as_deref(),
        added_tokens_json: added_tokens_json.as_deref(),
        config_json: None,
        generation_config_json: generation_config_json.as_deref(),
    };
    io::hf::ModelFolder::from_files(o.string("name")?, &config_json, files).map_err(js_error)
}
const INPUT_KEYS: &[&str] = &["prefix", "fileSize", "name"];

/// Bytes given as a Uint8Array (or a string, as UTF-8).
fn bytes_of(value: &JsValue, what: &str) -> Result<Vec<u8>, JsError> {
    if let Some(array) = value.dyn_ref::<Uint8Array>() {
        Ok(array.to_vec())
    } else if let Some(text) = value.as_string() {
        Ok(text.into_bytes())
    } else {
        Err(JsError::new(&format!("{what} must be a Uint8Array")))
    }
}

/// A set of names, built by insertion (collecting would pull in a second sort).
fn name_set(names: Option<Vec<String>>) -> std::collections::BTreeSet<String> {
    let mut set = std::collections::BTreeSet::new();
    for name in names.unwrap_or_default() {
        set.insert(name);
    }
    set
}

fn plan_options(options: &JsValue) -> Result<(PlanOptions, Option<Vec<u8>>), JsError> {
    let o = Options::read(options, "conversion options", PLAN_KEYS)?;
    let index = o.value("index").map(|index| bytes_of(&index, "options.index")).transpose()?;
    let output = OutputFormat::from_name(o.string("output")?.as_deref().unwrap_or("gguf")).map_err(js_error)?;
    let default_layout = match output {
        OutputFormat::Gguf => "tq2_0",
        OutputFormat::BitnetHf => "bitnet-hf",
    };
    let layout =
        TernaryLayout::from_name(o.string("layout")?.as_deref().unwrap_or(default_layout)).map_err(js_error)?;
    let rule = ScaleRule::from_name(o.string("rule")?.as_deref().unwrap_or("absmean")).map_err(js_error)?;
    let scope =
        Scope::from_name(o.string("scope")?.as_deref().unwrap_or("tensor"), o.size("blockSize")?.unwrap_or(256))
            .map_err(js_error)?;
    let bitnet_scale =
        o.string("bitnetScale")?.as_deref().map(ScaleSemantics::from_name).transpose().map_err(js_error)?;
    let opts = PlanOptions {
        output,
        layout,
        rule,
        scope,
        force_ternary: name_set(o.strings("forceTernary")?),
        force_keep: name_set(o.strings("forceKeep")?),
        bitnet_scale,
        backend: Backend::best(),
        model: o.value("model").map(|m| model_folder(&m)).transpose()?,
        importance: o
            .value("imatrix")
            .map(|m| bytes_of(&m, "options.imatrix").and_then(|b| io::read_imatrix(&b).map_err(js_error)))
            .transpose()?,
    };
    Ok((opts, index))
}

/// Plans a conversion of one model (a file, or the shards of one checkpoint) into one
/// output file. Returns a [`ConversionPlan`], or `{ needBytes, input }` when the prefix
/// of input `input` is too short (see the module docs).
#[wasm_bindgen(js_name = planConversion)]
pub fn plan_conversion(inputs: JsValue, options: JsValue) -> Result<JsValue, JsError> {
    let (opts, index) = plan_options(&options)?;
    let list = inputs
        .dyn_ref::<Array>()
        .ok_or_else(|| JsError::new("planConversion: inputs must be an array of { prefix, fileSize }"))?;
    let mut headers = Vec::with_capacity(list.length() as usize);
    let mut names = Vec::with_capacity(list.length() as usize);
    for (i, input) in list.iter().enumerate() {
        let what = format!("planConversion input {i}");
        if input.is_undefined() || input.is_null() {
            return Err(JsError::new(&format!("{what} must be {{ prefix, fileSize }}")));
        }
        let input = Options::read(&input, &what, INPUT_KEYS)?;
        let prefix = bytes_of(&input.value("prefix").unwrap_or(JsValue::UNDEFINED), &format!("{what}: prefix"))?;
        let size_value =
            input.number("fileSize")?.ok_or_else(|| JsError::new(&format!("{what}: fileSize must be a number")))?;
        let size = size_arg(size_value, &format!("{what}: fileSize"))?;
        names.push(input.string("name")?);
        match io::read_model(&prefix, size) {
            Ok(header) => headers.push(header),
            Err(Error::NeedMoreBytes { needed }) => return need_bytes_object(needed, Some(i)),
            Err(e) => return Err(JsError::new(&format!("{what}: {e}"))),
        }
    }
    if let Some(index) = index {
        let index = io::parse_safetensors_index(&index).map_err(js_error)?;
        let shards = names
            .iter()
            .zip(&headers)
            .enumerate()
            .map(|(i, (name, header))| {
                let name = name.as_deref().ok_or_else(|| {
                    JsError::new(&format!("planConversion input {i}: a name is needed to check it against the index"))
                })?;
                Ok((name, header))
            })
            .collect::<Result<Vec<_>, JsError>>()?;
        io::check_shards(&index, &shards).map_err(js_error)?;
    }
    let inner = io::plan_conversion(&headers, &opts).map_err(js_error)?;
    Ok(ConversionPlan { inner, input: io::convert::InputBuffer::new(), input_op: None }.into())
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RangeView {
    file: usize,
    offset: u64,
    length: u64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OpView<'a> {
    index: usize,
    name: &'a str,
    kind: &'static str,
    inputs: Vec<RangeView>,
    input_length: u64,
    output_offset: u64,
    output_length: u64,
    in_type: &'static str,
    out_type: &'static str,
    shape: &'a [u64],
    bits_per_weight: Option<f64>,
    fallback_reason: Option<&'a str>,
    scale_name: Option<&'a str>,
    /// The output is the input's bytes: the caller may copy them in chunks.
    copies_bytes: bool,
    /// Heads of a Q or K projection whose rows are reordered for llama.cpp's RoPE: the
    /// op must be converted whole.
    row_order: Option<u64>,
    /// The op converts in pieces (`ConversionPlan.chunkedOp`).
    chunkable: bool,
    /// The importance matrix weighs this tensor's columns.
    importance: bool,
}

fn op_view(index: usize, op: &io::PlanOp) -> OpView<'_> {
    OpView {
        index,
        name: &op.name,
        kind: op.kind.name(),
        inputs: op.inputs.iter().map(|r| RangeView { file: r.file, offset: r.offset, length: r.length }).collect(),
        input_length: op.input_length(),
        output_offset: op.output_offset,
        output_length: op.output_length,
        in_type: op.in_type.name(),
        out_type: op.out_type.name(),
        shape: &op.shape,
        bits_per_weight: op.bits_per_weight(),
        fallback_reason: op.fallback_reason.as_deref(),
        scale_name: op.scale_name.as_deref(),
        copies_bytes: op.copies_bytes(),
        row_order: op.row_order.map(|o| o.heads),
        chunkable: io::ChunkedConversion::supports(op),
        importance: op.importance.is_some(),
    }
}

/// A planned conversion: the output header, its size, and one op per output tensor.
#[wasm_bindgen]
pub struct ConversionPlan {
    inner: io::ConversionPlan,
    /// The input of `convertBuffered`, filled by JavaScript through `inputBuffer`.
    input: io::convert::InputBuffer,
    /// The op that `input` was last prepared for.
    input_op: Option<usize>,
}

fn converted_object(converted: &io::ConvertedTensor) -> Result<JsValue, JsError> {
    let object = Object::new();
    set(&object, "bytes", &Uint8Array::from(converted.bytes.as_slice()).into())?;
    let stats = match &converted.stats {
        Some(s) => to_js(s)?,
        None => JsValue::NULL,
    };
    set(&object, "stats", &stats)?;
    set(&object, "ternaryFitDb", &converted.ternary_fit_db.map_or(JsValue::NULL, JsValue::from_f64))?;
    Ok(object.into())
}

/// The one-line warning for a conversion whose ternarised tensors fit ternary values
/// badly (`ternaryFitDb` of each converted op), or undefined.
#[wasm_bindgen(js_name = ternaryFitWarning)]
pub fn ternary_fit_warning(fits: Vec<f64>) -> Option<String> {
    io::convert::far_from_ternary(&fits)
}

#[wasm_bindgen]
impl ConversionPlan {
    /// `gguf` or `bitnet-hf`.
    #[wasm_bindgen(getter)]
    pub fn output(&self) -> String {
        self.inner.output.name().into()
    }

    /// The output's first bytes, up to its data section (a copy).
    #[wasm_bindgen(getter)]
    pub fn header(&self) -> Vec<u8> {
        self.inner.header.clone()
    }

    /// Total output bytes.
    #[wasm_bindgen(getter, js_name = outputSize)]
    pub fn output_size(&self) -> f64 {
        self.inner.output_size as f64
    }

    /// The model folder says its weights were trained ternary (BitNet): a low
    /// `ternaryFitDb` is then expected, not a warning.
    #[wasm_bindgen(getter, js_name = trainedTernary)]
    pub fn trained_ternary(&self) -> bool {
        self.inner.trained_ternary
    }

    /// Number of ops.
    #[wasm_bindgen(getter, js_name = opCount)]
    pub fn op_count(&self) -> usize {
        self.inner.ops.len()
    }

    fn get_op(&self, i: usize) -> Result<&io::PlanOp, JsError> {
        self.inner.ops.get(i).ok_or_else(|| JsError::new(&format!("no op {i}: this plan has {}", self.inner.ops.len())))
    }

    /// Op `i` as a plain object (see the module docs).
    pub fn op(&self, i: usize) -> Result<JsValue, JsError> {
        to_js(&op_view(i, self.get_op(i)?))
    }

    /// Every op, as an array of plain objects.
    pub fn ops(&self) -> Result<JsValue, JsError> {
        let views: Vec<OpView<'_>> = self.inner.ops.iter().enumerate().map(|(i, op)| op_view(i, op)).collect();
        to_js(&views)
    }

    /// Converts op `i`'s input bytes (its input ranges concatenated) into
    /// `{ bytes, stats }`; `stats` is null unless `measure` is true.
    #[wasm_bindgen(js_name = convertTensor)]
    pub fn convert_tensor(&self, i: usize, bytes: &[u8], measure: Option<bool>) -> Result<JsValue, JsError> {
        let op = self.get_op(i)?;
        converted_object(&io::convert_tensor(op, bytes, measure.unwrap_or(false)).map_err(js_error)?)
    }

    /// A `Uint8Array` view of this plan's own input buffer, sized to op `i`'s input
    /// length, for [`convertBuffered`](Self::convert_buffered): reading the input
    /// straight into wasm memory saves the copy that `convertTensor` makes, and F32
    /// input is then converted in place. The buffer is kept and reused by later ops.
    ///
    /// The view is a view of wasm memory, which any later wasm call may grow; growing
    /// detaches it (its `byteLength` becomes 0). It is also stale once the next
    /// `inputBuffer` call may have moved the buffer, or the plan is freed. So: fill it
    /// right after getting it, with no other call into this wasm instance until it is
    /// filled, then call `convertBuffered(i)`; get a new view for every op.
    #[wasm_bindgen(js_name = inputBuffer)]
    pub fn input_buffer(&mut self, i: usize) -> Result<Uint8Array, JsError> {
        let length = self.get_op(i)?.input_length();
        let length = usize::try_from(length)
            .ok()
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(|| JsError::new(&format!("op {i}: its input of {length} bytes does not fit in wasm memory")))?;
        self.input_op = Some(i);
        let bytes = self.input.prepare(length);
        // SAFETY: the view aliases `self.input`'s storage, which stays put until the next
        // `prepare` (through `inputBuffer`) or until the plan is freed, and nothing here
        // allocates before the view is returned. Not using it after any other wasm call
        // is JavaScript's side of the contract documented above.
        Ok(unsafe { Uint8Array::view(bytes) })
    }

    /// Converts op `i` from the input buffer that `inputBuffer(i)` returned, now filled;
    /// the same `{ bytes, stats }` as `convertTensor` with those bytes.
    #[wasm_bindgen(js_name = convertBuffered)]
    pub fn convert_buffered(&self, i: usize, measure: Option<bool>) -> Result<JsValue, JsError> {
        let op = self.get_op(i)?;
        if self.input_op != Some(i) {
            return Err(JsError::new(&format!("convertBuffered({i}): call inputBuffer({i}) and fill it first")));
        }
        converted_object(&io::convert::convert_buffered(op, &self.input, measure.unwrap_or(false)).map_err(js_error)?)
    }

    /// Op `i` converted a piece at a time (see [`ChunkedOp`]); an error for ops that
    /// convert only whole (`chunkable` false). `measure` adds statistics at the end.
    #[wasm_bindgen(js_name = chunkedOp)]
    pub fn chunked_op(&self, i: usize, measure: Option<bool>) -> Result<ChunkedOp, JsError> {
        let op = self.get_op(i)?;
        Ok(ChunkedOp {
            inner: io::ChunkedConversion::new(op, measure.unwrap_or(false)).map_err(js_error)?,
            input: io::convert::InputBuffer::new(),
        })
    }
}

/// One op converted a piece at a time, so that memory holds a piece, not the tensor:
/// give it the op's input in order, in pieces of `chunkBytes(max)` bytes (the last one
/// what remains), write each output after the previous one from the op's output
/// offset, then call `finish()` for the statistics.
#[wasm_bindgen]
pub struct ChunkedOp {
    inner: io::ChunkedConversion,
    /// The input of `convertBuffered`, filled by JavaScript through `inputBuffer`.
    input: io::convert::InputBuffer,
}

#[wasm_bindgen]
impl ChunkedOp {
    /// Input bytes of a piece of at most `maxBytes` (at least the smallest piece).
    #[wasm_bindgen(js_name = chunkBytes)]
    pub fn chunk_bytes(&self, max_bytes: f64) -> Result<f64, JsError> {
        Ok(self.inner.chunk_bytes(size_arg(max_bytes, "maxBytes")?) as f64)
    }

    /// The output bytes of the next piece of input.
    pub fn convert(&mut self, bytes: &[u8]) -> Result<Vec<u8>, JsError> {
        self.inner.convert(bytes).map_err(js_error)
    }

    /// A `Uint8Array` view of this op's own input buffer, `length` bytes, for
    /// [`convertBuffered`](Self::convert_buffered): the next piece read straight into
    /// wasm memory. The same contract as `ConversionPlan.inputBuffer`: fill it right
    /// away, with no other call into this wasm instance until it is filled.
    #[wasm_bindgen(js_name = inputBuffer)]
    pub fn input_buffer(&mut self, length: f64) -> Result<Uint8Array, JsError> {
        let length = usize::try_from(size_arg(length, "length")?)
            .ok()
            .filter(|&n| n <= isize::MAX as usize)
            .ok_or_else(|| JsError::new(&format!("inputBuffer: {length} bytes do not fit in wasm memory")))?;
        let bytes = self.input.prepare(length);
        // SAFETY: as in `ConversionPlan::input_buffer`: the view aliases `self.input`'s
        // storage, which stays put until the next `prepare` or until this object is
        // freed, and nothing allocates before the view is returned.
        Ok(unsafe { Uint8Array::view(bytes) })
    }

    /// The output bytes of the piece that `inputBuffer` returned, now filled.
    #[wasm_bindgen(js_name = convertBuffered)]
    pub fn convert_buffered(&mut self) -> Result<Vec<u8>, JsError> {
        self.inner.convert(self.input.bytes()).map_err(js_error)
    }

    /// How ternary a tensor ternarised from floats is (see `convertTensor`), once its
    /// first piece is converted; else null.
    #[wasm_bindgen(getter, js_name = ternaryFitDb)]
    pub fn ternary_fit_db(&self) -> Option<f64> {
        self.inner.ternary_fit_db()
    }

    /// The op's statistics (null unless measuring), once all its input was given.
    /// Frees this object.
    pub fn finish(self) -> Result<JsValue, JsError> {
        match self.inner.finish().map_err(js_error)? {
            Some(stats) => to_js(&stats),
            None => Ok(JsValue::NULL),
        }
    }
}
