//! # ternary-quant
//!
//! Ternary (BitNet b1.58) weight quantization and int8 activation quantization,
//! byte-exact with ggml's TQ1_0, TQ2_0 and Q8_0 reference quantizers, with kernels
//! for AVX2, AVX-512 and wasm SIMD128 that give the same bytes as the scalar spec.
//!
//! ```
//! use ternary_quant::{quantize_ternary, TernaryOptions, TernaryLayout, ScaleRule, Scope};
//! let w: Vec<f32> = (0..512).map(|i| ((i * 37 % 101) as f32 - 50.0) / 50.0).collect();
//! let opts = TernaryOptions { layout: TernaryLayout::Tq2_0, rule: ScaleRule::AbsMean,
//!                             scope: Scope::Tensor, ..Default::default() };
//! let t = quantize_ternary(&w, 2, 256, &opts).unwrap();
//! assert_eq!(t.bytes.len(), 2 * 66);
//! assert_eq!(t.bits_per_weight(), 2.0625);
//! ```
//!
//! Cargo features (all on by default):
//! - `model-files`: the `io` module, reading, planning and writing safetensors and GGUF;
//! - `scalar-backend`: [`Backend::Scalar`] in wasm32 builds with SIMD128, where it is
//!   otherwise left out to keep the `.wasm` small (every other build always has it);
//! - `console_error_panic_hook`: panic messages in the browser console (wasm32).

pub mod engine;
pub mod error;
pub mod gemv;
#[cfg(feature = "model-files")]
pub mod io;
pub mod kernels;
pub mod layout;
pub mod scheme;

pub use engine::{
    estimate_model_size, quantize_batch, BatchReport, CacheStats, LayoutSizes, NamedTensor, Preset, QuantizationEngine,
    SizeEstimate, StoredAs, TensorReport, PRESETS,
};
pub use error::{Error, Result};
pub use gemv::{mat_vec_f32, ternary_mat_vec, PreparedWeights};
#[cfg(feature = "model-files")]
pub use io::{
    convert_tensor, plan_conversion, read_model, ConversionPlan, ConvertedTensor, DType, ModelHeader, PlanOp,
    PlanOptions, TensorInfo, TensorStats,
};
pub use kernels::Backend;
pub use layout::{FormatInfo, FormatKind, OutputFormat, StorageFormat, TernaryLayout};
pub use scheme::int8::{quantize_int8, Int8Layout, Int8Options, Int8Tensor};
pub use scheme::metrics::{error_stats, ErrorStats};
pub use scheme::ternary::{quantize_ternary, quantize_ternary_weighted, ScaleRule, TernaryOptions, TernaryTensor};
pub use scheme::Scope;

#[cfg(target_arch = "wasm32")]
pub mod wasm;
