//! The wasm-bindgen layer: option parsing, handles and typed-array copies over the core.
//! Nothing here computes; every call returns `Result<_, JsError>` and none can panic on
//! input from JavaScript.

#[cfg(feature = "model-files")]
mod io;
mod options;

use wasm_bindgen::prelude::*;

use crate::engine::{self, Preset, PRESETS};
use crate::layout::blocks::{QK8_0, QK_K};
use crate::{Backend, Int8Layout, Int8Options, ScaleRule, Scope, TernaryLayout, TernaryOptions};
use options::Options;

#[wasm_bindgen(start)]
fn start() {
    #[cfg(feature = "console_error_panic_hook")]
    console_error_panic_hook::set_once();
}

fn js_error(e: crate::Error) -> JsError {
    JsError::new(&e.to_string())
}

const TERNARY_KEYS: &[&str] = &["preset", "layout", "rule", "scope", "blockSize"];
const INT8_KEYS: &[&str] = &["layout", "scope", "blockSize", "symmetric", "clip", "percentile"];
const ENGINE_KEYS: &[&str] = &["preset", "layout", "rule", "scope", "blockSize", "activations"];

fn to_js<T: serde::Serialize>(value: &T) -> Result<JsValue, JsError> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::new().serialize_maps_as_objects(true))
        .map_err(|e| JsError::new(&format!("cannot convert result: {e}")))
}

/// f32 values in wasm memory that JavaScript fills through a view, so that a large input
/// reaches the kernels without the copy that passing a `Float32Array` makes. The
/// functions below take the inputs they quantize (and the W of `matVecF32`) this way;
/// the package entry wraps a `Float32Array` in a short-lived copy (`new F32Buffer(n, array)`), which is
/// that same single copy. The other f32 inputs come as `&[f32]`: each buffer argument
/// costs the module its own borrow glue, which the 150 KB bar of the lean builds does
/// not leave room for.
#[wasm_bindgen]
pub struct F32Buffer {
    values: Vec<f32>,
}

#[wasm_bindgen]
impl F32Buffer {
    /// `length` zeros, or a copy of `source` (of that length): an error rather than a
    /// trap when wasm memory cannot hold them.
    #[wasm_bindgen(constructor)]
    pub fn new(length: usize, source: Option<js_sys::Float32Array>) -> Result<F32Buffer, JsError> {
        let mut values = Vec::new();
        values.try_reserve_exact(length).map_err(|_| JsError::new("F32Buffer: not enough free wasm memory"))?;
        match source {
            // SAFETY: the capacity reserved above holds `length` values, the array's
            // length, and the copy initialises every one of them.
            Some(array) if array.length() as usize == length => unsafe {
                array.raw_copy_to_ptr(values.as_mut_ptr());
                values.set_len(length);
            },
            Some(_) => return Err(JsError::new("F32Buffer: the source's length differs from the length given")),
            None => values.resize(length, 0.0),
        }
        Ok(Self { values })
    }

    #[wasm_bindgen(getter)]
    pub fn length(&self) -> usize {
        self.values.len()
    }

    /// A `Float32Array` over the buffer itself. It stays valid until the wasm memory
    /// grows (any call into the module may grow it; growing detaches the view) or the
    /// buffer is freed: fill it right away.
    pub fn view(&mut self) -> js_sys::Float32Array {
        // SAFETY: the view aliases `self.values`, which never reallocates after
        // construction and lives until the buffer is freed; nothing here allocates
        // between making the view and returning it. Not writing through it after a
        // memory growth or after `free` is JavaScript's side of the contract above.
        unsafe { js_sys::Float32Array::view_mut_raw(self.values.as_mut_ptr(), self.values.len()) }
    }
}

/// The name of the kernel backend this build runs.
#[wasm_bindgen]
pub fn backend() -> String {
    Backend::best().name().to_string()
}

/// Ternary options: a preset (default `bitnet`) with any of its fields replaced.
fn ternary_options(o: &Options) -> Result<TernaryOptions, JsError> {
    let preset = Preset::by_name(o.string("preset")?.as_deref().unwrap_or("bitnet")).map_err(js_error)?;
    let mut opts = preset.options();
    if let Some(layout) = o.string("layout")? {
        opts.layout = TernaryLayout::from_name(&layout).map_err(js_error)?;
    }
    if let Some(rule) = o.string("rule")? {
        opts.rule = ScaleRule::from_name(&rule).map_err(js_error)?;
    }
    let block_size = o.size("blockSize")?;
    let default_block = match opts.scope {
        Scope::Block(n) => n,
        _ => QK_K,
    };
    if let Some(scope) = o.string("scope")? {
        opts.scope = Scope::from_name(&scope, block_size.unwrap_or(default_block)).map_err(js_error)?;
    } else if let (Some(n), Scope::Block(_)) = (block_size, opts.scope) {
        opts.scope = Scope::Block(n);
    }
    Ok(opts)
}

/// Int8 options; the scope defaults to rows for plain int8 and to the layout's block
/// otherwise.
fn int8_options(o: &Options) -> Result<Int8Options, JsError> {
    let layout = Int8Layout::from_name(o.string("layout")?.as_deref().unwrap_or("plain")).map_err(js_error)?;
    // Plain int8 with the block scope takes Q8_0's block unless told otherwise.
    let natural_block = layout.natural_block().unwrap_or(QK8_0);
    let default_scope = if layout == Int8Layout::Plain { "row" } else { "block" };
    let scope_name = o.string("scope")?;
    Ok(Int8Options {
        layout,
        scope: Scope::from_name(
            scope_name.as_deref().unwrap_or(default_scope),
            o.size("blockSize")?.unwrap_or(natural_block),
        )
        .map_err(js_error)?,
        symmetric: o.boolean("symmetric")?.unwrap_or(true),
        clip: o.number("clip")?.map(|v| v as f32),
        percentile: o.number("percentile")?.map(|v| v as f32),
        backend: Backend::best(),
    })
}

fn scope_block_size(scope: Scope) -> Option<usize> {
    match scope {
        Scope::Block(n) => Some(n),
        _ => None,
    }
}

/// The getters both tensor handles share: shape, layout, scope, bytes, scales and values
/// of `inner`.
macro_rules! tensor_getters {
    ($handle:ident) => {
        #[wasm_bindgen]
        impl $handle {
            #[wasm_bindgen(getter)]
            pub fn rows(&self) -> usize {
                self.inner.rows
            }
            #[wasm_bindgen(getter)]
            pub fn cols(&self) -> usize {
                self.inner.cols
            }
            #[wasm_bindgen(getter)]
            pub fn layout(&self) -> String {
                self.inner.layout.name().into()
            }
            #[wasm_bindgen(getter)]
            pub fn scope(&self) -> String {
                self.inner.scope.name().into()
            }
            /// A copy of exactly the layout's bytes (one copy, out of wasm memory).
            #[wasm_bindgen(getter)]
            pub fn bytes(&self) -> js_sys::Uint8Array {
                self.inner.bytes.as_slice().into()
            }
            /// A copy of the per-scope scales, as stored.
            #[wasm_bindgen(getter)]
            pub fn scales(&self) -> js_sys::Float32Array {
                self.inner.scales.as_slice().into()
            }
            /// Every stored byte, scales included.
            #[wasm_bindgen(getter, js_name = byteLength)]
            pub fn byte_length(&self) -> usize {
                self.inner.stored_bytes()
            }
            /// The dequantized values (a copy).
            pub fn dequantize(&self) -> Vec<f32> {
                self.inner.dequantize()
            }
        }
    };
}

tensor_getters!(TernaryTensor);
tensor_getters!(Int8Tensor);

/// A ternary tensor held in wasm memory. Getters copy out into new typed arrays.
#[wasm_bindgen]
pub struct TernaryTensor {
    inner: crate::TernaryTensor,
    stats: Option<crate::ErrorStats>,
    /// The form `ternaryMatVec` reads (`gemv::interleaved_for`), made on its first call:
    /// a tensor that is never multiplied costs nothing more.
    interleaved: std::cell::OnceCell<Vec<crate::layout::blocks::BlockTq2_0x16>>,
}

impl TernaryTensor {
    fn new(inner: crate::TernaryTensor, stats: Option<crate::ErrorStats>) -> Self {
        Self { inner, stats, interleaved: std::cell::OnceCell::new() }
    }
}

#[wasm_bindgen]
impl TernaryTensor {
    #[wasm_bindgen(getter, js_name = blockSize)]
    pub fn block_size(&self) -> Option<usize> {
        scope_block_size(self.inner.scope)
    }
    #[wasm_bindgen(getter, js_name = bitsPerWeight)]
    pub fn bits_per_weight(&self) -> f64 {
        self.inner.bits_per_weight()
    }
    /// Error statistics, when the tensor came from `quantizeAndMeasure`.
    #[wasm_bindgen(getter)]
    pub fn stats(&self) -> Result<JsValue, JsError> {
        match &self.stats {
            Some(s) => to_js(s),
            None => Ok(JsValue::UNDEFINED),
        }
    }
    /// The codes q in {-1, 0, 1}, row-major (a copy).
    pub fn codes(&self) -> Vec<i8> {
        self.inner.codes()
    }
}

/// Quantizes row-major f32 weights to ternary.
#[wasm_bindgen(js_name = quantizeTernary)]
pub fn quantize_ternary(
    data: &F32Buffer,
    rows: usize,
    cols: usize,
    options: JsValue,
) -> Result<TernaryTensor, JsError> {
    let opts = ternary_options(&Options::read(&options, "ternary options", TERNARY_KEYS)?)?;
    let inner = crate::quantize_ternary(&data.values, rows, cols, &opts).map_err(js_error)?;
    Ok(TernaryTensor::new(inner, None))
}

/// An int8 tensor held in wasm memory. Getters copy out into new typed arrays.
#[wasm_bindgen]
pub struct Int8Tensor {
    inner: crate::Int8Tensor,
}

#[wasm_bindgen]
impl Int8Tensor {
    #[wasm_bindgen(getter)]
    pub fn symmetric(&self) -> bool {
        self.inner.symmetric
    }
    #[wasm_bindgen(getter)]
    pub fn values(&self) -> js_sys::Int8Array {
        self.inner.values.as_slice().into()
    }
    #[wasm_bindgen(getter, js_name = zeroPoints)]
    pub fn zero_points(&self) -> js_sys::Int32Array {
        self.inner.zero_points.as_slice().into()
    }
}

/// Quantizes row-major f32 activations to int8.
#[wasm_bindgen(js_name = quantizeInt8)]
pub fn quantize_int8(data: &F32Buffer, rows: usize, cols: usize, options: JsValue) -> Result<Int8Tensor, JsError> {
    let opts = int8_options(&Options::read(&options, "int8 options", INT8_KEYS)?)?;
    let inner = crate::quantize_int8(&data.values, rows, cols, &opts).map_err(js_error)?;
    Ok(Int8Tensor { inner })
}

/// `{ mse, rmse, maxAbsError, snrDb, cosine }` of `reconstructed` against `original`.
#[wasm_bindgen(js_name = errorStats)]
pub fn error_stats(original: &[f32], reconstructed: &[f32]) -> Result<JsValue, JsError> {
    to_js(&crate::error_stats(original, reconstructed, Backend::best()).map_err(js_error)?)
}

/// y = W x with ternary W; x is quantized to int8 inside. The first call on a TQ2_0
/// tensor in the SIMD128 build keeps a copy of its rows interleaved for a GEMV by table
/// lookup beside it (1.03 times the tensor's bytes, freed with it); where that memory
/// cannot be had, the tensor keeps using the row kernel, with the same results.
#[wasm_bindgen(js_name = ternaryMatVec)]
pub fn ternary_mat_vec(w: &TernaryTensor, x: &[f32]) -> Result<Vec<f32>, JsError> {
    let backend = Backend::best();
    let interleaved = w.interleaved.get_or_init(|| crate::gemv::interleaved_for(&w.inner, backend));
    crate::gemv::mat_vec_with(&w.inner, interleaved, x, backend).map_err(js_error)
}

/// y = W x in f32.
#[wasm_bindgen(js_name = matVecF32)]
pub fn mat_vec_f32(w: &F32Buffer, rows: usize, cols: usize, x: &[f32]) -> Result<Vec<f32>, JsError> {
    crate::mat_vec_f32(&w.values, rows, cols, x, Backend::best()).map_err(js_error)
}

/// Quantizes with one configuration and caches weights by content, shape and options.
#[wasm_bindgen]
pub struct QuantizationEngine {
    inner: engine::QuantizationEngine,
}

#[wasm_bindgen]
impl QuantizationEngine {
    #[wasm_bindgen(constructor)]
    pub fn new(config: JsValue) -> Result<QuantizationEngine, JsError> {
        let config = Options::read(&config, "engine options", ENGINE_KEYS)?;
        let weights = ternary_options(&config)?;
        let activations = int8_options(&config.nested("activations", "engine activations options", INT8_KEYS)?)?;
        weights.validate().map_err(js_error)?;
        activations.validate().map_err(js_error)?;
        Ok(Self { inner: engine::QuantizationEngine::new(weights, activations) })
    }

    #[wasm_bindgen(js_name = quantizeWeights)]
    pub fn quantize_weights(&mut self, data: &F32Buffer, rows: usize, cols: usize) -> Result<TernaryTensor, JsError> {
        let t = self.inner.quantize_weights(&data.values, rows, cols).map_err(js_error)?;
        Ok(TernaryTensor::new((*t).clone(), None))
    }

    #[wasm_bindgen(js_name = quantizeActivations)]
    pub fn quantize_activations(&self, data: &[f32], rows: usize, cols: usize) -> Result<Int8Tensor, JsError> {
        Ok(Int8Tensor { inner: self.inner.quantize_activations(data, rows, cols).map_err(js_error)? })
    }

    /// The tensor, with its error statistics in `stats`.
    #[wasm_bindgen(js_name = quantizeAndMeasure)]
    pub fn quantize_and_measure(
        &mut self,
        data: &F32Buffer,
        rows: usize,
        cols: usize,
    ) -> Result<TernaryTensor, JsError> {
        let (t, stats) = self.inner.quantize_and_measure(&data.values, rows, cols).map_err(js_error)?;
        Ok(TernaryTensor::new((*t).clone(), Some(stats)))
    }

    #[wasm_bindgen(js_name = cacheStats)]
    pub fn cache_stats(&self) -> Result<JsValue, JsError> {
        to_js(&self.inner.cache_stats())
    }

    #[wasm_bindgen(js_name = clearCache)]
    pub fn clear_cache(&mut self) {
        self.inner.clear_cache()
    }
}

/// The result of `quantizeBatch`: one tensor per input, plus the report.
#[wasm_bindgen]
pub struct BatchResult {
    names: Vec<String>,
    tensors: Vec<crate::TernaryTensor>,
    report: crate::BatchReport,
}

#[wasm_bindgen]
impl BatchResult {
    #[wasm_bindgen(getter)]
    pub fn names(&self) -> Vec<String> {
        self.names.clone()
    }
    /// Tensor `i` as a new handle (a copy).
    pub fn tensor(&self, i: usize) -> Result<TernaryTensor, JsError> {
        let inner = self.tensors.get(i).ok_or_else(|| JsError::new(&format!("no tensor {i} in this batch")))?;
        Ok(TernaryTensor::new(inner.clone(), self.report.tensors.get(i).map(|r| r.stats)))
    }
    #[wasm_bindgen(getter)]
    pub fn report(&self) -> Result<JsValue, JsError> {
        to_js(&self.report)
    }
}

/// Quantizes named tensors (`names[i]`, `data[i]`, `shapes[2i..2i+2]`) with one configuration.
#[wasm_bindgen(js_name = quantizeBatch)]
pub fn quantize_batch(
    names: Vec<String>,
    data: Vec<js_sys::Float32Array>,
    shapes: Vec<usize>,
    options: JsValue,
) -> Result<BatchResult, JsError> {
    let opts = ternary_options(&Options::read(&options, "batch options", TERNARY_KEYS)?)?;
    if data.len() != names.len() || shapes.len() != 2 * names.len() {
        return Err(JsError::new(&format!(
            "quantizeBatch: {} names, {} arrays and {} shape numbers do not match",
            names.len(),
            data.len(),
            shapes.len()
        )));
    }
    let copies: Vec<Vec<f32>> = data.iter().map(|a| a.to_vec()).collect();
    let tensors: Vec<engine::NamedTensor<'_>> = names
        .iter()
        .zip(&copies)
        .zip(shapes.chunks_exact(2))
        .map(|((name, data), shape)| engine::NamedTensor { name, data, rows: shape[0], cols: shape[1] })
        .collect();
    let (tensors, report) = engine::quantize_batch(&tensors, &opts).map_err(js_error)?;
    Ok(BatchResult { names, tensors, report })
}

/// Exact stored size of `[rows, cols]` shapes (flattened pairs) with the given options.
/// Shapes come as f64 so that models past 4 GiB count exactly.
#[wasm_bindgen(js_name = estimateModelSize)]
pub fn estimate_model_size(shapes: Vec<f64>, options: JsValue) -> Result<JsValue, JsError> {
    let opts = ternary_options(&Options::read(&options, "size options", TERNARY_KEYS)?)?;
    if !shapes.len().is_multiple_of(2) {
        return Err(JsError::new("estimateModelSize: shapes must be [rows, cols] pairs"));
    }
    const MAX_SAFE: f64 = 9007199254740991.0;
    if let Some(bad) = shapes.iter().find(|v| !(v.fract() == 0.0 && **v >= 1.0 && **v <= MAX_SAFE)) {
        let bad = options::describe(&JsValue::from_f64(*bad));
        return Err(JsError::new(&format!("estimateModelSize: {bad} is not a positive integer dimension")));
    }
    let pairs: Vec<(u64, u64)> = shapes.chunks_exact(2).map(|s| (s[0] as u64, s[1] as u64)).collect();
    to_js(&engine::estimate_model_size(&pairs, opts.layout, opts.scope).map_err(js_error)?)
}

/// The names of the scale rules, in the engine's order.
#[wasm_bindgen(js_name = ruleList)]
pub fn rule_list() -> Vec<String> {
    crate::ScaleRule::ALL.iter().map(|r| r.name().to_string()).collect()
}

/// The presets as plain objects.
#[wasm_bindgen(js_name = presetList)]
pub fn preset_list() -> Result<JsValue, JsError> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct PresetView {
        name: &'static str,
        description: &'static str,
        layout: &'static str,
        rule: &'static str,
        scope: &'static str,
        block_size: Option<usize>,
    }
    let views: Vec<PresetView> = PRESETS
        .iter()
        .map(|p| PresetView {
            name: p.name,
            description: p.description,
            layout: p.layout.name(),
            rule: p.rule.name(),
            scope: p.scope.name(),
            block_size: scope_block_size(p.scope),
        })
        .collect();
    to_js(&views)
}

/// The storage formats as plain objects: the table of `layout::format`, so that JS
/// keeps no list or number of its own. Only the model-file builds carry it: their
/// users (the converter, the CLI, the demo's conversions) are the ones that need it, and
/// it would cost the lean builds about 2.6 KB.
#[cfg(feature = "model-files")]
#[wasm_bindgen(js_name = formatList)]
pub fn format_list() -> Result<JsValue, JsError> {
    #[derive(serde::Serialize)]
    #[serde(rename_all = "camelCase")]
    struct FormatView {
        name: &'static str,
        type_name: &'static str,
        kind: &'static str,
        block_values: u32,
        block_bytes: u32,
        tensor_tail_bytes: u32,
        side_scale_bytes: u32,
        ggml_type: Option<u32>,
        file_type: Option<u32>,
        outputs: Vec<&'static str>,
    }
    let views: Vec<FormatView> = crate::StorageFormat::ALL
        .iter()
        .map(|f| {
            let info = f.info();
            FormatView {
                name: info.name,
                type_name: info.type_name,
                kind: info.kind.name(),
                block_values: info.block_values,
                block_bytes: info.block_bytes,
                tensor_tail_bytes: info.tensor_tail_bytes,
                side_scale_bytes: info.side_scale_bytes,
                ggml_type: info.ggml_type,
                file_type: info.file_type,
                outputs: info.outputs.iter().map(|o| o.name()).collect(),
            }
        })
        .collect();
    to_js(&views)
}
