//! Int8 activations: symmetric and asymmetric, per tensor, row (token) or block.

use crate::error::{index_by_name, Error, Result};
use crate::kernels::{scalar::round_away, Backend, Kernels};
use crate::layout::blocks::{as_blocks, as_blocks_mut, f16_value, BlockQ8K, BlockQ8_0, QK8_0, QK_K};
use crate::layout::StorageFormat;
use crate::scheme::{check_input, Scope};

/// How int8 values are stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[non_exhaustive]
pub enum Int8Layout {
    /// One i8 per value; scales and zero points beside it.
    #[serde(rename = "plain")]
    Plain,
    /// ggml Q8_0: blocks of 32 with an f16 scale (symmetric, block scope of 32).
    #[serde(rename = "q8_0")]
    Q8_0,
    /// ggml Q8_K: blocks of 256 with an f32 scale and 16-value sums.
    #[serde(rename = "q8_k")]
    Q8K,
}

impl Int8Layout {
    /// Every layout.
    pub const ALL: [Int8Layout; 3] = [Self::Plain, Self::Q8_0, Self::Q8K];

    /// The storage format, where every number about this layout is written.
    pub const fn format(self) -> StorageFormat {
        match self {
            Self::Plain => StorageFormat::Int8,
            Self::Q8_0 => StorageFormat::Q8_0,
            Self::Q8K => StorageFormat::Q8K,
        }
    }

    /// The JS/CLI name.
    pub fn name(self) -> &'static str {
        self.format().name()
    }

    /// Values per block of the ggml layouts; `None` for plain int8, which has no blocks.
    pub fn natural_block(self) -> Option<usize> {
        match self {
            Self::Plain => None,
            Self::Q8_0 | Self::Q8K => Some(self.format().block_values()),
        }
    }

    /// Parses [`Int8Layout::name`].
    pub fn from_name(name: &str) -> Result<Self> {
        Ok(Self::ALL[index_by_name(&Self::ALL.map(Self::name), "layout", "int8 layout", name)?])
    }
}

/// Options of [`quantize_int8`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Int8Options {
    pub layout: Int8Layout,
    pub scope: Scope,
    pub symmetric: bool,
    /// Values are clamped to [-clip, clip] before scaling.
    pub clip: Option<f32>,
    /// The clip bound is this percentile (0 < p <= 100) of |x| within each scope.
    pub percentile: Option<f32>,
    pub backend: Backend,
}

impl Int8Options {
    /// Checks what can be checked before seeing a tensor (everything but the row length).
    pub fn validate(&self) -> Result<()> {
        self.backend
            .kernels()
            .ok_or_else(|| Error::Unsupported(format!("backend {} on this machine", self.backend)))?;
        let cols = match self.scope {
            Scope::Block(n) if n > 0 => n,
            Scope::Block(_) | Scope::Tensor | Scope::Row => self.layout.natural_block().unwrap_or(1),
        };
        check_options(self, cols)
    }
}

impl Default for Int8Options {
    /// Per-token symmetric int8, as BitNet quantizes activations.
    fn default() -> Self {
        Self {
            layout: Int8Layout::Plain,
            scope: Scope::Row,
            symmetric: true,
            clip: None,
            percentile: None,
            backend: Backend::best(),
        }
    }
}

/// A quantized int8 tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct Int8Tensor {
    /// Rows of the row-major matrix.
    pub rows: usize,
    /// Values per row.
    pub cols: usize,
    /// Plain int8 values, or GGUF's Q8_0 or Q8_K blocks.
    pub layout: Int8Layout,
    /// Which values share a scale (and zero point): the tensor, a row or a block.
    pub scope: Scope,
    /// Whether zero maps to zero (no zero points).
    pub symmetric: bool,
    /// The int8 values, row-major.
    pub values: Vec<i8>,
    /// One scale per scope (f16-rounded for Q8_0).
    pub scales: Vec<f32>,
    /// One zero point per scope (all 0 when symmetric).
    pub zero_points: Vec<i32>,
    /// The layout's bytes: the values for `plain`, whole blocks for Q8_0 and Q8_K.
    pub bytes: Vec<u8>,
}

/// The nearest-rank percentile `p` of |x|.
fn abs_percentile(x: &[f32], p: f32) -> f32 {
    let rank = ((p as f64 / 100.0) * x.len() as f64).ceil() as usize;
    crate::scheme::order::abs_select(x, rank.clamp(1, x.len()) - 1)
}

fn check_options(opts: &Int8Options, cols: usize) -> Result<()> {
    if let Some(c) = opts.clip {
        if !(c.is_finite() && c > 0.0) {
            return Err(Error::InvalidOption {
                name: "clip",
                reason: format!("must be a positive finite number, got {}", crate::error::option_value(c)),
            });
        }
    }
    if let Some(p) = opts.percentile {
        if !(p > 0.0 && p <= 100.0) {
            return Err(Error::InvalidOption {
                name: "percentile",
                reason: format!("must be in (0, 100], got {}", crate::error::option_value(p)),
            });
        }
        if opts.clip.is_some() {
            return Err(Error::InvalidOption {
                name: "percentile",
                reason: "give clip or percentile, not both".into(),
            });
        }
    }
    if let Scope::Block(0) = opts.scope {
        return Err(Error::InvalidOption { name: "blockSize", reason: "must be positive".into() });
    }
    let (layout, block) = match (opts.layout, opts.scope) {
        (Int8Layout::Plain, Scope::Block(n)) => ("int8 with the block scope", n),
        (Int8Layout::Plain, _) => return Ok(()),
        (Int8Layout::Q8_0 | Int8Layout::Q8K, _) => (opts.layout.name(), opts.layout.format().block_values()),
    };
    if opts.layout != Int8Layout::Plain
        && (!opts.symmetric || opts.clip.is_some() || opts.percentile.is_some() || opts.scope != Scope::Block(block))
    {
        return Err(Error::Unsupported(format!(
            "{layout} is symmetric absmax per block of {block}: use scope 'block' with blockSize {block}, symmetric, no clip or percentile"
        )));
    }
    if !cols.is_multiple_of(block) {
        return Err(Error::RowNotBlockAligned { layout, block, cols });
    }
    Ok(())
}

/// Quantizes a row-major `rows x cols` tensor to int8.
pub fn quantize_int8(data: &[f32], rows: usize, cols: usize, opts: &Int8Options) -> Result<Int8Tensor> {
    let k = opts
        .backend
        .kernels()
        .ok_or_else(|| Error::Unsupported(format!("backend {} on this machine", opts.backend)))?;
    check_input(k, data, rows, cols, "activations")?;
    check_options(opts, cols)?;
    match opts.layout {
        Int8Layout::Plain => Ok(quantize_plain(k, data, rows, cols, opts)),
        Int8Layout::Q8_0 => {
            let mut bytes = vec![0u8; data.len() / QK8_0 * core::mem::size_of::<BlockQ8_0>()];
            (k.quantize_q8_0)(data, as_blocks_mut(&mut bytes));
            Ok(q8_0_tensor(bytes, rows, cols))
        }
        Int8Layout::Q8K => {
            let mut blocks = vec![BlockQ8K::default(); data.len() / QK_K];
            (k.quantize_q8_k)(data, &mut blocks);
            Ok(q8_k_tensor(&blocks, rows, cols))
        }
    }
}

fn quantize_plain(k: &Kernels, data: &[f32], rows: usize, cols: usize, opts: &Int8Options) -> Int8Tensor {
    let span = opts.scope.span(rows, cols);
    let mut values = vec![0i8; data.len()];
    let mut scales = Vec::with_capacity(data.len() / span);
    let mut zero_points = Vec::with_capacity(data.len() / span);
    for (x, out) in data.chunks(span).zip(values.chunks_mut(span)) {
        let clip = match (opts.clip, opts.percentile) {
            (Some(c), _) => c,
            (None, Some(p)) => abs_percentile(x, p),
            (None, None) => f32::INFINITY,
        };
        let (scale, zero_point) = if opts.symmetric {
            let d = (k.abs_max)(x).min(clip) / 127.0;
            let id = if d == 0.0 { 0.0 } else { 1.0 / d };
            (k.quantize_i8_symmetric)(x, id, clip, out);
            (d, 0)
        } else {
            let (lo, hi) = (k.min_max)(x);
            let (lo, hi) = (lo.min(0.0).max(-clip), hi.max(0.0).min(clip));
            // In f64, since hi - lo can pass f32::MAX for finite inputs.
            let scale = ((hi as f64 - lo as f64) / 255.0) as f32;
            if scale == 0.0 {
                out.fill(0);
                (0.0, 0)
            } else {
                let zero_point = (round_away(-lo / scale) - 128.0).clamp(-128.0, 127.0) as i32;
                (k.quantize_i8_asymmetric)(x, scale, zero_point, lo, hi, out);
                (scale, zero_point)
            }
        };
        scales.push(scale);
        zero_points.push(zero_point);
    }
    let bytes = values.iter().map(|&v| v as u8).collect();
    Int8Tensor {
        rows,
        cols,
        layout: Int8Layout::Plain,
        scope: opts.scope,
        symmetric: opts.symmetric,
        values,
        scales,
        zero_points,
        bytes,
    }
}

fn q8_0_tensor(bytes: Vec<u8>, rows: usize, cols: usize) -> Int8Tensor {
    let blocks = as_blocks::<BlockQ8_0>(&bytes);
    let values = blocks.iter().flat_map(|b| b.qs).collect();
    let scales: Vec<f32> = blocks.iter().map(|b| f16_value(b.d)).collect();
    let zero_points = vec![0; scales.len()];
    Int8Tensor {
        rows,
        cols,
        layout: Int8Layout::Q8_0,
        scope: Scope::Block(QK8_0),
        symmetric: true,
        values,
        scales,
        zero_points,
        bytes,
    }
}

fn q8_k_tensor(blocks: &[BlockQ8K], rows: usize, cols: usize) -> Int8Tensor {
    let mut bytes = vec![0u8; core::mem::size_of_val(blocks)];
    for (b, out) in blocks.iter().zip(bytes.chunks_exact_mut(core::mem::size_of::<BlockQ8K>())) {
        b.write_bytes(out);
    }
    let values = blocks.iter().flat_map(|b| b.qs).collect();
    let scales: Vec<f32> = blocks.iter().map(|b| b.d).collect();
    let zero_points = vec![0; scales.len()];
    Int8Tensor {
        rows,
        cols,
        layout: Int8Layout::Q8K,
        scope: Scope::Block(QK_K),
        symmetric: true,
        values,
        scales,
        zero_points,
        bytes,
    }
}

impl Int8Tensor {
    /// Takes Q8_0 or Q8_K bytes as they are (e.g. from a file) and checks their length.
    pub fn from_bytes(bytes: Vec<u8>, rows: usize, cols: usize, layout: Int8Layout) -> Result<Self> {
        let (block, size) = match layout {
            Int8Layout::Q8_0 | Int8Layout::Q8K => (layout.format().block_values(), layout.format().block_bytes()),
            Int8Layout::Plain => {
                return Err(Error::Unsupported(
                    "plain int8 bytes carry no scales; build the tensor from its parts".into(),
                ))
            }
        };
        if rows == 0 || cols == 0 {
            return Err(Error::EmptyInput { what: "tensor shape" });
        }
        if !cols.is_multiple_of(block) {
            return Err(Error::RowNotBlockAligned { layout: layout.name(), block, cols });
        }
        let n = crate::error::checked_mul(rows, cols, "rows * cols")?;
        let expected = crate::error::checked_mul(n / block, size, "int8 bytes")?;
        if bytes.len() != expected {
            return Err(Error::ByteLength { layout: layout.name(), expected, actual: bytes.len() });
        }
        Ok(match layout {
            Int8Layout::Q8_0 => q8_0_tensor(bytes, rows, cols),
            Int8Layout::Q8K | Int8Layout::Plain => {
                let blocks: Vec<BlockQ8K> = bytes.chunks_exact(size).map(BlockQ8K::read_bytes).collect();
                q8_k_tensor(&blocks, rows, cols)
            }
        })
    }

    /// Every stored byte, scales and zero points included.
    pub fn stored_bytes(&self) -> usize {
        match self.layout {
            // A zero point fits in one byte; symmetric tensors store none.
            Int8Layout::Plain => {
                self.values.len() + 4 * self.scales.len() + if self.symmetric { 0 } else { self.zero_points.len() }
            }
            Int8Layout::Q8_0 | Int8Layout::Q8K => self.bytes.len(),
        }
    }

    /// Dequantized values (q - zero_point) * scale, row-major.
    pub fn dequantize(&self) -> Vec<f32> {
        let k = Backend::best().kernels_or_scalar();
        let mut out = vec![0f32; self.values.len()];
        match self.layout {
            Int8Layout::Q8_0 => (k.dequantize_q8_0)(as_blocks(&self.bytes), &mut out),
            Int8Layout::Plain | Int8Layout::Q8K => {
                let span = self.scope.span(self.rows, self.cols);
                for (((q, o), &s), &z) in
                    self.values.chunks(span).zip(out.chunks_mut(span)).zip(&self.scales).zip(&self.zero_points)
                {
                    (k.dequantize_i8)(q, s, z, o);
                }
            }
        }
        out
    }
}
