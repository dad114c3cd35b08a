//! Ternary weights: the four scale rules over the three scopes, and the tensor type.

use crate::error::{index_by_name, Error, Result};
use crate::kernels::{Backend, CodeRule, Kernels};
use crate::layout::blocks::{as_blocks, as_blocks_mut, f16_bits, f16_value, BlockTq1_0, BlockTq2_0, ByteBlock, QK_K};
use crate::layout::{bitnet_hf, TernaryLayout};
use crate::scheme::order::abs_select;
use crate::scheme::{check_finite, check_shape, optimal, Scope};

/// Lower bound of the absmean and median scales, as BitNet b1.58 clamps them.
pub const MIN_SCALE: f32 = 1e-5;
/// TWN threshold factor: t = 0.7 * mean|w|.
pub const TWN_THRESHOLD_FACTOR: f64 = 0.7;

/// How a scope's scale is chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScaleRule {
    /// BitNet b1.58: g = max(mean|w|, 1e-5), q = clamp(round(w / g), -1, 1).
    AbsMean,
    /// ggml's TQ reference: d = max|w|, q = round(w / d).
    AbsMax,
    /// b1.58 Reloaded: g = max(median|w|, 1e-5), codes as absmean.
    Median,
    /// Ternary weight networks: threshold 0.7 mean|w|, scale the mean of |w| above it.
    Twn,
    /// The least squared error over {-s, 0, +s}: the k largest |w| take sign(w) and
    /// share s = (their sum) / k, for the k that maximises (their sum)^2 / k.
    Optimal,
}

impl ScaleRule {
    /// Every rule.
    pub const ALL: [ScaleRule; 5] = [Self::AbsMean, Self::AbsMax, Self::Median, Self::Twn, Self::Optimal];

    /// The JS/CLI name.
    pub fn name(self) -> &'static str {
        match self {
            Self::AbsMean => "absmean",
            Self::AbsMax => "absmax",
            Self::Median => "median",
            Self::Twn => "twn",
            Self::Optimal => "optimal",
        }
    }

    /// Parses [`ScaleRule::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(Self::ALL[index_by_name(&Self::ALL.map(Self::name), "rule", "rule", name)?])
    }
}

/// A scope's scale and the rule that turns its values into codes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScopeScale {
    /// The dequantization scale (value = q * scale), before any f16 rounding.
    pub scale: f32,
    /// How values become codes.
    pub code: CodeRule,
}

impl ScopeScale {
    pub(crate) const ZERO: Self = Self { scale: 0.0, code: CodeRule::Scaled { inv: 0.0 } };
}

/// The median of |x| (mean of the two middle values for an even count).
fn abs_median(x: &[f32]) -> f32 {
    let mid = x.len() / 2;
    let upper = abs_select(x, mid);
    if x.len() % 2 == 1 {
        upper
    } else {
        ((abs_select(x, mid - 1) as f64 + upper as f64) / 2.0) as f32
    }
}

/// The scale and code rule of one scope of finite values.
pub fn scope_scale(k: &Kernels, x: &[f32], rule: ScaleRule) -> ScopeScale {
    match rule {
        ScaleRule::Optimal => optimal::optimal_scale(k, x),
        ScaleRule::AbsMean | ScaleRule::Twn => scale_from_abs_sum(k, x, rule, (k.abs_sum)(x)),
        ScaleRule::AbsMax => {
            let d = (k.abs_max)(x);
            let inv = if d == 0.0 { 0.0 } else { 1.0 / d };
            ScopeScale { scale: d, code: CodeRule::Scaled { inv } }
        }
        ScaleRule::Median => {
            if (k.abs_max)(x) == 0.0 {
                return ScopeScale::ZERO;
            }
            let g = abs_median(x).max(MIN_SCALE);
            ScopeScale { scale: g, code: CodeRule::Scaled { inv: 1.0 / g } }
        }
    }
}

/// The absmean or TWN scale of a scope whose sum of |x| is `sum`.
fn scale_from_abs_sum(k: &Kernels, x: &[f32], rule: ScaleRule, sum: f64) -> ScopeScale {
    if sum == 0.0 {
        return ScopeScale::ZERO;
    }
    let mean = sum / x.len() as f64;
    if rule == ScaleRule::AbsMean {
        let g = (mean as f32).max(MIN_SCALE);
        return ScopeScale { scale: g, code: CodeRule::Scaled { inv: 1.0 / g } };
    }
    let threshold = (TWN_THRESHOLD_FACTOR * mean) as f32;
    let (above, count) = (k.abs_sum_above)(x, threshold);
    let scale = if count == 0 { 0.0 } else { (above / count as f64) as f32 };
    ScopeScale { scale, code: CodeRule::Threshold { threshold } }
}

/// The scale of a whole tensor, checking every value on the way.
fn tensor_scale(k: &Kernels, data: &[f32], rule: ScaleRule) -> Result<ScopeScale> {
    match rule {
        ScaleRule::AbsMean | ScaleRule::Twn => {
            // The sum of |x| is finite exactly when every value is (2^61 values of at most
            // f32::MAX cannot overflow an f64), so the reduction doubles as the check and
            // only a bad sum pays for the search of the first bad index.
            let sum = (k.abs_sum)(data);
            if !sum.is_finite() {
                check_finite(k, data, 0, "weights")?;
            }
            Ok(scale_from_abs_sum(k, data, rule, sum))
        }
        ScaleRule::AbsMax | ScaleRule::Median | ScaleRule::Optimal => {
            // The optimal rule's counting pass over a long tensor doubles as the check;
            // only a bad tensor pays for the search of the first bad index.
            if rule == ScaleRule::Optimal {
                if let Some(scale) = optimal::long_tensor_scale(k, data) {
                    return Ok(scale);
                }
            }
            check_finite(k, data, 0, "weights")?;
            Ok(scope_scale(k, data, rule))
        }
    }
}

/// Options of [`quantize_ternary`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TernaryOptions {
    pub layout: TernaryLayout,
    pub rule: ScaleRule,
    pub scope: Scope,
    pub backend: Backend,
}

impl TernaryOptions {
    /// Checks what can be checked before seeing a tensor: the layout takes the scope,
    /// and the backend runs here.
    pub fn validate(&self) -> Result<()> {
        self.backend
            .kernels()
            .ok_or_else(|| Error::Unsupported(format!("backend {} on this machine", self.backend)))?;
        self.layout.check_scope(self.scope)
    }
}

impl Default for TernaryOptions {
    /// The `bitnet` preset: TQ2_0, absmean, one scale per tensor.
    fn default() -> Self {
        Self { layout: TernaryLayout::Tq2_0, rule: ScaleRule::AbsMean, scope: Scope::Tensor, backend: Backend::best() }
    }
}

/// A quantized ternary tensor: its layout's exact bytes plus the scales they hold.
#[derive(Clone, Debug, PartialEq)]
pub struct TernaryTensor {
    /// Rows of the row-major matrix (output features of a weight).
    pub rows: usize,
    /// Values per row (input features).
    pub cols: usize,
    /// How the codes are packed into `bytes`.
    pub layout: TernaryLayout,
    /// Which values share a scale: the tensor, a row or a block.
    pub scope: Scope,
    /// Exactly the layout's bytes (for TQ layouts the f16 scales are inside).
    pub bytes: Vec<u8>,
    /// One scale per scope, as stored (f16-rounded for the TQ layouts).
    pub scales: Vec<f32>,
}

/// The kernels of `opts.backend`, once the shape and the layout's needs are checked.
fn checked_kernels(data: &[f32], rows: usize, cols: usize, opts: &TernaryOptions) -> Result<&'static Kernels> {
    let k = opts
        .backend
        .kernels()
        .ok_or_else(|| Error::Unsupported(format!("backend {} on this machine", opts.backend)))?;
    check_shape(data, rows, cols, "weights")?;
    opts.layout.check(rows, cols, opts.scope)?;
    Ok(k)
}

/// Quantizes a row-major `rows x cols` tensor to ternary.
///
/// Row and block scopes are checked, measured and packed one scope at a time, while the
/// scope is in cache: one pass over memory. The tensor scope needs its scale before the
/// first code, so it reads the data twice.
pub fn quantize_ternary(data: &[f32], rows: usize, cols: usize, opts: &TernaryOptions) -> Result<TernaryTensor> {
    let k = checked_kernels(data, rows, cols, opts)?;
    let rule = opts.rule;
    if opts.scope == Scope::Tensor {
        let scale = tensor_scale(k, data, rule)?;
        return pack_scopes(k, data, rows, cols, opts.layout, opts.scope, |_, _| Ok(scale));
    }
    let span = opts.scope.span(rows, cols);
    pack_scopes(k, data, rows, cols, opts.layout, opts.scope, |i, x| {
        check_finite(k, x, i * span, "weights")?;
        Ok(scope_scale(k, x, rule))
    })
}

/// [`quantize_ternary`] with an importance per column (llama.cpp's imatrix for this
/// weight: the mean squared activation each input column sees). `optimal` then
/// minimises sum c (w - q s)^2 with c the value's column importance, and `absmean`
/// takes the importance-weighted mean of |w|; `absmax`, `median` and `twn` take no
/// importance. Importances must be finite and not negative, one per column.
pub fn quantize_ternary_weighted(
    data: &[f32],
    rows: usize,
    cols: usize,
    opts: &TernaryOptions,
    importance: &[f32],
) -> Result<TernaryTensor> {
    let k = checked_kernels(data, rows, cols, opts)?;
    if importance.len() != cols {
        return Err(Error::ShapeMismatch {
            what: "importance (one per column)",
            expected: cols,
            actual: importance.len(),
        });
    }
    if let Some((i, &c)) = importance.iter().enumerate().find(|(_, c)| !(c.is_finite() && **c >= 0.0)) {
        return Err(Error::InvalidOption {
            name: "importance",
            reason: format!(
                "column {i} has {}; importances are finite and not negative",
                crate::error::option_value(c)
            ),
        });
    }
    let span = opts.scope.span(rows, cols);
    let rule = opts.rule;
    pack_scopes(k, data, rows, cols, opts.layout, opts.scope, |i, x| {
        check_finite(k, x, i * span, "weights")?;
        let weights = ColumnWeights { importance, first: (i * span) % cols };
        Ok(match rule {
            ScaleRule::Optimal => optimal::optimal_weighted(x, |i| weights.at(i)),
            ScaleRule::AbsMean => absmean_weighted(x, weights),
            ScaleRule::AbsMax | ScaleRule::Median | ScaleRule::Twn => scope_scale(k, x, rule),
        })
    })
}

/// The importance of each value of a scope: value i sits in column (first + i) mod cols.
#[derive(Clone, Copy)]
struct ColumnWeights<'a> {
    importance: &'a [f32],
    first: usize,
}

impl ColumnWeights<'_> {
    fn at(&self, i: usize) -> f32 {
        self.importance[(self.first + i) % self.importance.len()]
    }
}

/// The importance-weighted mean of |x| as the absmean scale; sums in value order.
fn absmean_weighted(x: &[f32], w: ColumnWeights<'_>) -> ScopeScale {
    let (mut sum, mut weight) = (0f64, 0f64);
    for (i, &v) in x.iter().enumerate() {
        let c = f64::from(w.at(i));
        sum += c * f64::from(v.abs());
        weight += c;
    }
    if sum == 0.0 {
        return ScopeScale::ZERO;
    }
    let g = ((sum / weight) as f32).max(MIN_SCALE);
    ScopeScale { scale: g, code: CodeRule::Scaled { inv: 1.0 / g } }
}

/// Packs data scope by scope; `scale_of(i, x)` gives scope i's scale (or an error) just
/// before its values are packed.
fn pack_scopes(
    k: &Kernels,
    data: &[f32],
    rows: usize,
    cols: usize,
    layout: TernaryLayout,
    scope: Scope,
    mut scale_of: impl FnMut(usize, &[f32]) -> Result<ScopeScale>,
) -> Result<TernaryTensor> {
    let span = scope.span(rows, cols);
    let mut bytes = vec![0u8; layout.data_bytes(rows, cols)?];
    let mut scales = Vec::with_capacity(scope.count(rows, cols));
    match layout {
        TernaryLayout::Tq2_0 => pack_tq_scopes(k.pack_tq2_0, data, span, &mut bytes, &mut scales, scale_of)?,
        TernaryLayout::Tq1_0 => pack_tq_scopes(k.pack_tq1_0, data, span, &mut bytes, &mut scales, scale_of)?,
        TernaryLayout::BitnetHf => {
            let s = scale_of(0, data)?;
            pack_bitnet_hf(k, data, rows, cols, s.code, &mut bytes);
            scales.push(s.scale);
        }
        TernaryLayout::I2S => {
            let s = scale_of(0, data)?;
            let (codes, tail) = bytes.split_at_mut(rows * cols / 4);
            (k.pack_i2_s)(data, s.code, codes);
            tail[..4].copy_from_slice(&s.scale.to_le_bytes());
            scales.push(s.scale);
        }
        TernaryLayout::Codes => {
            // SAFETY: i8 and u8 have the same size and alignment, and every bit
            // pattern is valid for both; the borrow of `bytes` is carried over.
            let codes = unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<i8>(), bytes.len()) };
            for (i, (x, out)) in data.chunks(span).zip(codes.chunks_mut(span)).enumerate() {
                let s = scale_of(i, x)?;
                (k.ternary_codes)(x, s.code, out);
                scales.push(s.scale);
            }
        }
    }
    Ok(TernaryTensor { rows, cols, layout, scope, bytes, scales })
}

impl TernaryTensor {
    /// Packs given codes (each in {-1, 0, 1}) and per-scope scales into a layout.
    pub fn from_codes(
        codes: &[i8],
        rows: usize,
        cols: usize,
        layout: TernaryLayout,
        scope: Scope,
        scales: &[f32],
    ) -> Result<Self> {
        layout.check(rows, cols, scope)?;
        let n = rows * cols;
        if codes.len() != n {
            return Err(Error::ShapeMismatch { what: "codes", expected: n, actual: codes.len() });
        }
        let count = scope.count(rows, cols);
        if scales.len() != count {
            return Err(Error::ShapeMismatch { what: "scales", expected: count, actual: scales.len() });
        }
        if let Some(index) = codes.iter().position(|c| !(-1..=1).contains(c)) {
            return Err(Error::InvalidCode { layout: "codes", index, code: codes[index] as i32 });
        }
        if let Some(index) = scales.iter().position(|s| !s.is_finite()) {
            return Err(Error::NonFinite { what: "scales", index, value: scales[index] });
        }
        let as_values: Vec<f32> = codes.iter().map(|&c| c as f32).collect();
        // A code c as f32 times 1 is its own code under the scaled rule.
        pack_scopes(Backend::best().kernels_or_scalar(), &as_values, rows, cols, layout, scope, |i, _| {
            Ok(ScopeScale { scale: scales[i], code: CodeRule::Scaled { inv: 1.0 } })
        })
    }

    /// Takes a layout's bytes as they are (e.g. read from a file) and checks them.
    /// `side_scales` are the scales stored outside the bytes (bitnet-hf, codes); the TQ
    /// layouts read theirs from the bytes and take `None`.
    pub fn from_bytes(
        bytes: Vec<u8>,
        rows: usize,
        cols: usize,
        layout: TernaryLayout,
        scope: Scope,
        side_scales: Option<&[f32]>,
    ) -> Result<Self> {
        layout.check(rows, cols, scope)?;
        let expected = layout.data_bytes(rows, cols)?;
        if bytes.len() != expected {
            return Err(Error::ByteLength { layout: layout.name(), expected, actual: bytes.len() });
        }
        let count = scope.count(rows, cols);
        let scales = match (layout, side_scales) {
            (TernaryLayout::Tq2_0 | TernaryLayout::Tq1_0, None) => {
                let block_size = layout.format().block_bytes();
                let blocks_per_scope = scope.span(rows, cols) / layout.format().block_values();
                let mut scales = Vec::with_capacity(count);
                for (s, scope_bytes) in bytes.chunks(block_size * blocks_per_scope).enumerate() {
                    let d = |b: &[u8]| [b[block_size - 2], b[block_size - 1]];
                    let first = d(scope_bytes);
                    // Every block stores its own scale; a wider scope is only true when they agree.
                    if let Some(b) = scope_bytes.chunks(block_size).position(|b| d(b) != first) {
                        return Err(Error::Unsupported(format!(
                            "{layout} block {} has a scale other than block {} of the same {} scope; read it with the block scope",
                            s * blocks_per_scope + b,
                            s * blocks_per_scope,
                            scope.name()
                        )));
                    }
                    scales.push(f16_value(first));
                }
                scales
            }
            (TernaryLayout::I2S, None) => {
                let at = rows * cols / 4;
                let scale = f32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
                if !scale.is_finite() {
                    return Err(Error::NonFinite { what: "I2_S scale", index: 0, value: scale });
                }
                vec![scale]
            }
            (TernaryLayout::BitnetHf | TernaryLayout::Codes, Some(s)) if s.len() == count => s.to_vec(),
            (TernaryLayout::BitnetHf | TernaryLayout::Codes, Some(s)) => {
                return Err(Error::ShapeMismatch { what: "scales", expected: count, actual: s.len() })
            }
            (TernaryLayout::BitnetHf | TernaryLayout::Codes, None) => {
                return Err(Error::Unsupported(format!("{} keeps its scales outside the bytes; pass them", layout)))
            }
            (_, Some(_)) => return Err(Error::Unsupported(format!("{} holds its scales inside the bytes", layout))),
        };
        let tensor = Self { rows, cols, layout, scope, bytes, scales };
        tensor.try_codes()?;
        Ok(tensor)
    }

    /// Number of values.
    pub fn len(&self) -> usize {
        self.rows * self.cols
    }

    /// Whether the tensor has no values (never true for a quantized tensor).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every stored byte, scales included.
    pub fn stored_bytes(&self) -> usize {
        self.bytes.len() + self.layout.side_scale_bytes(self.scales.len())
    }

    /// Stored bits per weight, from the real bytes.
    pub fn bits_per_weight(&self) -> f64 {
        self.stored_bytes() as f64 * 8.0 / self.len() as f64
    }

    /// Compression against f32.
    pub fn compression_vs_f32(&self) -> f64 {
        (self.len() * 4) as f64 / self.stored_bytes() as f64
    }

    fn try_codes(&self) -> Result<Vec<i8>> {
        let k = Backend::best().kernels_or_scalar();
        let mut codes = vec![0i8; self.len()];
        match self.layout {
            TernaryLayout::Tq2_0 => {
                (k.unpack_tq2_0)(as_blocks::<BlockTq2_0>(&self.bytes), &mut codes);
                if let Some(index) = codes.iter().position(|&c| c == 2) {
                    return Err(Error::InvalidCode { layout: "tq2_0", index, code: 3 });
                }
            }
            TernaryLayout::Tq1_0 => (k.unpack_tq1_0)(as_blocks::<BlockTq1_0>(&self.bytes), &mut codes),
            TernaryLayout::I2S => {
                (k.unpack_i2_s)(&self.bytes[..self.len() / 4], &mut codes);
                if let Some(index) = codes.iter().position(|&c| c == 2) {
                    return Err(Error::InvalidCode { layout: "i2_s", index, code: 3 });
                }
            }
            TernaryLayout::BitnetHf => {
                if let Some((index, code)) = bitnet_hf::unpack(&self.bytes, self.rows, self.cols, &mut codes) {
                    return Err(Error::InvalidCode { layout: "bitnet-hf", index, code });
                }
            }
            TernaryLayout::Codes => {
                for (c, &b) in codes.iter_mut().zip(&self.bytes) {
                    *c = b as i8;
                }
                if let Some(index) = codes.iter().position(|c| !(-1..=1).contains(c)) {
                    return Err(Error::InvalidCode { layout: "codes", index, code: codes[index] as i32 });
                }
            }
        }
        Ok(codes)
    }

    /// The codes q in {-1, 0, 1}, row-major.
    pub fn codes(&self) -> Vec<i8> {
        // Construction validated the bytes, so unpacking cannot find a bad code.
        self.try_codes().unwrap_or_default()
    }

    /// The scale that applies to value `index`.
    fn scale_of(&self, index: usize) -> f32 {
        self.scales[index / self.scope.span(self.rows, self.cols)]
    }

    /// Dequantized values q * scale, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let k = Backend::best().kernels_or_scalar();
        let mut out = vec![0f32; self.len()];
        match self.layout {
            TernaryLayout::Tq2_0 => (k.dequantize_tq2_0)(as_blocks::<BlockTq2_0>(&self.bytes), &mut out),
            TernaryLayout::Tq1_0 => (k.dequantize_tq1_0)(as_blocks::<BlockTq1_0>(&self.bytes), &mut out),
            TernaryLayout::BitnetHf | TernaryLayout::I2S | TernaryLayout::Codes => {
                for (i, (o, q)) in out.iter_mut().zip(self.codes()).enumerate() {
                    *o = q as f32 * self.scale_of(i);
                }
            }
        }
        out
    }
}
/// Packs each scope of `span` values into TQ blocks that share its f16 scale, and keeps
/// that scale as stored.
fn pack_tq_scopes<B: ByteBlock>(
    pack: fn(&[f32], CodeRule, [u8; 2], &mut [B]),
    data: &[f32],
    span: usize,
    bytes: &mut [u8],
    scales: &mut Vec<f32>,
    mut scale_of: impl FnMut(usize, &[f32]) -> Result<ScopeScale>,
) -> Result<()> {
    let blocks = as_blocks_mut::<B>(bytes);
    for (i, (x, out)) in data.chunks(span).zip(blocks.chunks_mut(span / QK_K)).enumerate() {
        let s = scale_of(i, x)?;
        pack(x, s.code, f16_bits(s.scale), out);
        scales.push(f16_value(f16_bits(s.scale)));
    }
    Ok(())
}

/// Quantizes and packs a row-major `[rows, cols]` tensor into transformers' BitNet
/// packing, four weight rows per packed row.
fn pack_bitnet_hf(k: &Kernels, data: &[f32], rows: usize, cols: usize, rule: CodeRule, out: &mut [u8]) {
    for (r, out_row) in out.chunks_exact_mut(cols).enumerate().take(bitnet_hf::packed_rows(rows)) {
        let mut sources: [&[f32]; 4] = [&[]; 4];
        let mut count = 0;
        for row in bitnet_hf::rows_of_packed_row(rows, r) {
            sources[count] = &data[row * cols..(row + 1) * cols];
            count += 1;
        }
        (k.pack_bitnet_hf_row)(&sources[..count], rule, out_row);
    }
}
