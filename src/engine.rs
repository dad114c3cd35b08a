//! The engine: presets, a content-keyed cache, batch quantization and size estimates.

use std::hash::Hasher;
use std::sync::Arc;

use crate::error::{index_by_name, Error, Result};
use crate::layout::blocks::QK_K;
use crate::layout::{StorageFormat, TernaryLayout};
use crate::scheme::int8::{quantize_int8, Int8Options, Int8Tensor};
use crate::scheme::metrics::{error_stats, ErrorStats};
use crate::scheme::ternary::{quantize_ternary, ScaleRule, TernaryOptions, TernaryTensor};
use crate::scheme::Scope;

/// A named configuration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    pub name: &'static str,
    pub description: &'static str,
    pub layout: TernaryLayout,
    pub rule: ScaleRule,
    pub scope: Scope,
}

/// The presets, in the order the docs list them.
pub const PRESETS: [Preset; 5] = [
    Preset {
        name: "bitnet",
        description: "BitNet b1.58: absmean scale per tensor, TQ2_0",
        layout: TernaryLayout::Tq2_0,
        rule: ScaleRule::AbsMean,
        scope: Scope::Tensor,
    },
    Preset {
        name: "compact",
        description: "smallest: absmean scale per tensor, TQ1_0 (1.69 bits/weight)",
        layout: TernaryLayout::Tq1_0,
        rule: ScaleRule::AbsMean,
        scope: Scope::Tensor,
    },
    Preset {
        name: "lossless",
        description: "absmax per 256-block, TQ2_0: exact for weights that are already ternary per block",
        layout: TernaryLayout::Tq2_0,
        rule: ScaleRule::AbsMax,
        scope: Scope::Block(QK_K),
    },
    Preset {
        name: "accurate",
        description: "absmean scale per row, TQ2_0",
        layout: TernaryLayout::Tq2_0,
        rule: ScaleRule::AbsMean,
        scope: Scope::Row,
    },
    Preset {
        name: "best",
        description: "least squared error per 256-block (the optimal rule), TQ2_0: for weights not trained ternary",
        layout: TernaryLayout::Tq2_0,
        rule: ScaleRule::Optimal,
        scope: Scope::Block(QK_K),
    },
];

impl Preset {
    /// Looks a preset up by name.
    pub fn by_name(name: &str) -> Result<Preset> {
        Ok(PRESETS[index_by_name(&PRESETS.map(|p| p.name), "preset", "preset", name)?])
    }

    /// Ternary options of this preset on the best backend.
    pub fn options(&self) -> TernaryOptions {
        TernaryOptions { layout: self.layout, rule: self.rule, scope: self.scope, ..TernaryOptions::default() }
    }
}

/// A 128-bit content hash (two keyed SipHash passes), so that a cache hit means the
/// same bytes with overwhelming probability, never merely the same name.
fn content_hash(data: &[f32]) -> u128 {
    let mut halves = [0u64; 2];
    for (salt, half) in halves.iter_mut().enumerate() {
        #[allow(deprecated)]
        let mut h =
            std::hash::SipHasher::new_with_keys(0x7465_726e_6172_7900 ^ salt as u64, 0x7175_616e_7400 + salt as u64);
        h.write_usize(data.len());
        for chunk in data.chunks(1024) {
            let mut buf = [0u8; 4096];
            for (b, v) in buf.chunks_exact_mut(4).zip(chunk) {
                b.copy_from_slice(&v.to_bits().to_le_bytes());
            }
            h.write(&buf[..chunk.len() * 4]);
        }
        *half = h.finish();
    }
    (halves[0] as u128) << 64 | halves[1] as u128
}

/// The cached tensors with their keys. An engine holds at most a model's tensors, and
/// every lookup first hashes a whole tensor: a search through the keys costs nothing next
/// to that, and a hash table added about 4.7 KB to every optimised `.wasm`.
type Cache = Vec<(CacheKey, Arc<TernaryTensor>)>;

#[derive(Clone, Copy, PartialEq, Eq)]
struct CacheKey {
    content: u128,
    rows: usize,
    cols: usize,
    options: TernaryOptions,
}

/// Cache counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CacheStats {
    pub entries: usize,
    pub hits: u64,
    pub misses: u64,
    /// Stored bytes of the cached tensors.
    pub bytes: usize,
}

/// Quantizes with one configuration and remembers results by content.
#[derive(Default)]
pub struct QuantizationEngine {
    pub weights: TernaryOptions,
    pub activations: Int8Options,
    cache: Cache,
    stats: CacheStats,
}

impl QuantizationEngine {
    /// An engine with these weight and activation options.
    pub fn new(weights: TernaryOptions, activations: Int8Options) -> Self {
        Self { weights, activations, cache: Cache::default(), stats: CacheStats::default() }
    }

    /// Ternary weights, from the cache when the same bytes, shape and options were seen.
    pub fn quantize_weights(&mut self, data: &[f32], rows: usize, cols: usize) -> Result<Arc<TernaryTensor>> {
        let key = CacheKey { content: content_hash(data), rows, cols, options: self.weights };
        if let Some((_, hit)) = self.cache.iter().find(|(cached, _)| *cached == key) {
            self.stats.hits += 1;
            return Ok(Arc::clone(hit));
        }
        let tensor = Arc::new(quantize_ternary(data, rows, cols, &self.weights)?);
        self.stats.misses += 1;
        self.stats.entries += 1;
        self.stats.bytes += tensor.stored_bytes();
        self.cache.push((key, Arc::clone(&tensor)));
        Ok(tensor)
    }

    /// Int8 activations (not cached: activations change with every input).
    pub fn quantize_activations(&self, data: &[f32], rows: usize, cols: usize) -> Result<Int8Tensor> {
        quantize_int8(data, rows, cols, &self.activations)
    }

    /// Ternary weights and their error against the input.
    pub fn quantize_and_measure(
        &mut self,
        data: &[f32],
        rows: usize,
        cols: usize,
    ) -> Result<(Arc<TernaryTensor>, ErrorStats)> {
        let tensor = self.quantize_weights(data, rows, cols)?;
        let stats = error_stats(data, &tensor.dequantize(), self.weights.backend)?;
        Ok((tensor, stats))
    }

    /// The cache counters.
    pub fn cache_stats(&self) -> CacheStats {
        self.stats
    }

    /// Empties the cache; hit and miss counts are kept.
    pub fn clear_cache(&mut self) {
        self.cache.clear();
        self.stats.entries = 0;
        self.stats.bytes = 0;
    }
}

/// One named tensor of a batch.
#[derive(Clone, Copy, Debug)]
pub struct NamedTensor<'a> {
    pub name: &'a str,
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
}

/// What batch quantization reports for one tensor.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorReport {
    pub name: String,
    pub rows: usize,
    pub cols: usize,
    pub layout: TernaryLayout,
    pub bytes_in: usize,
    pub bytes_out: usize,
    pub bits_per_weight: f64,
    pub compression: f64,
    pub zero_fraction: f64,
    pub scale_min: f32,
    pub scale_max: f32,
    pub stats: ErrorStats,
}

/// Totals of a batch.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchReport {
    pub tensors: Vec<TensorReport>,
    pub bytes_in: usize,
    pub bytes_out: usize,
    pub compression: f64,
    pub bits_per_weight: f64,
}

/// Quantizes every tensor with one configuration, with per-tensor error and size.
pub fn quantize_batch(tensors: &[NamedTensor<'_>], opts: &TernaryOptions) -> Result<(Vec<TernaryTensor>, BatchReport)> {
    let mut out = Vec::with_capacity(tensors.len());
    let mut reports = Vec::with_capacity(tensors.len());
    for t in tensors {
        let q = quantize_ternary(t.data, t.rows, t.cols, opts).map_err(|e| e.in_tensor(t.name))?;
        let stats = error_stats(t.data, &q.dequantize(), opts.backend).map_err(|e| e.in_tensor(t.name))?;
        let zeros = q.codes().iter().filter(|&&c| c == 0).count();
        // The min_max kernel, not a fold of f32::min/max: LLVM vectorizes that fold to
        // relaxed min/max in wasm builds with relaxed SIMD (see kernels::wasm32).
        let (scale_min, scale_max) = (opts.backend.kernels_or_scalar().min_max)(&q.scales);
        reports.push(TensorReport {
            name: t.name.to_string(),
            rows: t.rows,
            cols: t.cols,
            layout: q.layout,
            bytes_in: t.data.len() * 4,
            bytes_out: q.stored_bytes(),
            bits_per_weight: q.bits_per_weight(),
            compression: q.compression_vs_f32(),
            zero_fraction: zeros as f64 / q.len() as f64,
            scale_min,
            scale_max,
            stats,
        });
        out.push(q);
    }
    let bytes_in: usize = reports.iter().map(|r| r.bytes_in).sum();
    let bytes_out: usize = reports.iter().map(|r| r.bytes_out).sum();
    let values = bytes_in / 4;
    let report = BatchReport {
        tensors: reports,
        bytes_in,
        bytes_out,
        compression: bytes_in as f64 / bytes_out.max(1) as f64,
        bits_per_weight: bytes_out as f64 * 8.0 / values.max(1) as f64,
    };
    Ok((out, report))
}

/// How one tensor is stored in a size estimate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum StoredAs {
    Ternary,
    /// Rows not a multiple of the ternary block, but of 32.
    Q8_0,
    /// Neither.
    F16,
}

/// Exact stored size of a model in one layout. Sizes are u64: real models pass 4 GiB,
/// which a 32-bit `usize` (wasm32) cannot count.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SizeEstimate {
    pub layout: TernaryLayout,
    pub bytes: u64,
    pub f32_bytes: u64,
    pub f16_bytes: u64,
    pub compression_vs_f32: f64,
    pub bits_per_weight: f64,
    /// How each tensor is stored, in input order.
    pub stored_as: Vec<StoredAs>,
    /// The same model in every format a converter writes weights in: each ternary layout
    /// with one scale per tensor, Q8_0, F16 and F32 (each with the fallbacks above).
    pub by_layout: LayoutSizes,
}

/// Bytes of a model in each format a converter writes weights in.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct LayoutSizes {
    pub tq2_0: u64,
    pub tq1_0: u64,
    #[serde(rename = "bitnet-hf")]
    pub bitnet_hf: u64,
    pub i2_s: u64,
    pub q8_0: u64,
    pub f16: u64,
    pub f32: u64,
}

/// Bytes of a `[rows, cols]` tensor (`n` values) in `layout` with `scope`, and how it is
/// stored: falling back as the converter does where rows are not whole blocks of the
/// layout, to Q8_0 where they are whole blocks of 32, else to F16. `layout` None asks
/// for the Q8_0 fallback itself.
#[inline(never)]
fn tensor_bytes(rows: u64, cols: u64, n: u64, layout: Option<TernaryLayout>, scope: Scope) -> Result<(u64, StoredAs)> {
    let overflow = |what| Error::SizeOverflow { what };
    match layout {
        Some(layout) if layout.row_block().is_none_or(|b| cols.is_multiple_of(b as u64)) => {
            Ok((layout.stored_bytes(rows, cols, scope)?, StoredAs::Ternary))
        }
        _ => {
            let q8_0 = StorageFormat::Q8_0;
            if cols.is_multiple_of(q8_0.block_values() as u64) {
                Ok((q8_0.data_bytes(n).ok_or(overflow("Q8_0 bytes"))?, StoredAs::Q8_0))
            } else {
                Ok((StorageFormat::F16.data_bytes(n).ok_or(overflow("f16 bytes"))?, StoredAs::F16))
            }
        }
    }
}

/// Exact bytes of `[rows, cols]` tensors in `layout` with `scope`, falling back as the
/// converter does: Q8_0 where the row length is a multiple of 32, else F16.
pub fn estimate_model_size(shapes: &[(u64, u64)], layout: TernaryLayout, scope: Scope) -> Result<SizeEstimate> {
    let overflow = |what| Error::SizeOverflow { what };
    let mut bytes = 0u64;
    let mut values = 0u64;
    let mut stored_as = Vec::with_capacity(shapes.len());
    // tq2_0, tq1_0, bitnet-hf, i2_s, then the Q8_0 fallback (None), as in LayoutSizes.
    let others = [
        Some(TernaryLayout::Tq2_0),
        Some(TernaryLayout::Tq1_0),
        Some(TernaryLayout::BitnetHf),
        Some(TernaryLayout::I2S),
        None,
    ];
    let mut totals = [0u64; 5];
    for &(rows, cols) in shapes {
        if rows == 0 || cols == 0 {
            return Err(Error::EmptyInput { what: "tensor shape" });
        }
        let n = rows.checked_mul(cols).ok_or(overflow("rows * cols"))?;
        let (size, how) = tensor_bytes(rows, cols, n, Some(layout), scope)?;
        bytes = bytes.checked_add(size).ok_or(overflow("model bytes"))?;
        values = values.checked_add(n).ok_or(overflow("model values"))?;
        stored_as.push(how);
        for (total, other) in totals.iter_mut().zip(others) {
            *total = total
                .checked_add(tensor_bytes(rows, cols, n, other, Scope::Tensor)?.0)
                .ok_or(overflow("model bytes"))?;
        }
    }
    if values == 0 {
        return Err(Error::EmptyInput { what: "shapes" });
    }
    let f32_bytes = values.checked_mul(4).ok_or(overflow("f32 bytes"))?;
    let [tq2_0, tq1_0, bitnet_hf, i2_s, q8_0] = totals;
    Ok(SizeEstimate {
        layout,
        bytes,
        f32_bytes,
        f16_bytes: values * 2,
        compression_vs_f32: f32_bytes as f64 / bytes as f64,
        bits_per_weight: bytes as f64 * 8.0 / values as f64,
        stored_as,
        by_layout: LayoutSizes { tq2_0, tq1_0, bitnet_hf, i2_s, q8_0, f16: values * 2, f32: f32_bytes },
    })
}
