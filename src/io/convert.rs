//! Converting one planned tensor: its input bytes in, exactly its output bytes out.
//!
//! F32 input whose bytes are 4-byte aligned (as in an [`InputBuffer`]) is read in place
//! as `&[f32]` on little-endian targets (wasm32 is one): no decoded copy is made.

use std::borrow::Cow;

use super::plan::{OpKind, PlanOp, ScaleSemantics};
use super::DType;
use crate::error::{Error, Result};
use crate::kernels::{Backend, Kernels};
use crate::layout::blocks::{as_blocks, BlockQ8_0, BlockTq1_0, BlockTq2_0, QK8_0, QK_K};
use crate::layout::TernaryLayout;
use crate::scheme::int8::{quantize_int8, Int8Layout, Int8Options};
use crate::scheme::metrics::{gaussian_probe, ErrorSums};
use crate::scheme::ternary::{quantize_ternary, quantize_ternary_weighted, ScaleRule, TernaryOptions, TernaryTensor};
use crate::Scope;

/// The output bytes of one op, and its statistics when asked for.
#[derive(Clone, Debug, PartialEq)]
pub struct ConvertedTensor {
    /// Exactly `op.output_length` bytes, to be written at `op.output_offset`.
    pub bytes: Vec<u8>,
    pub stats: Option<TensorStats>,
    /// For a tensor ternarised from floats: how ternary its values are
    /// ([`ternary_fit_db`] of its first [`FIT_SAMPLE`] values).
    pub ternary_fit_db: Option<f64>,
}

/// Values of each ternarised tensor that [`ternary_fit_db`] looks at: enough for a
/// figure stable to about 0.1 dB, few enough to cost little next to the conversion.
pub const FIT_SAMPLE: usize = 1 << 12;

/// How close `values` are to ternary: the SNR, in dB, of their best ternary
/// approximation (the optimal rule, one scale). Weights that are ternary already (codes
/// times a scale) give +inf; weights that were never trained ternary give about 4 to
/// 8 dB (Gaussian 7.2, Laplace 5.8, Student-t(3) 3.9), and so they lose most of what
/// they compute when ternarised, whatever the rule.
/// Every backend gives the same figure (`backend` is where it runs).
pub fn ternary_fit_db(values: &[f32], backend: Backend) -> Result<f64> {
    let opts = TernaryOptions { layout: TernaryLayout::Codes, rule: ScaleRule::Optimal, scope: Scope::Tensor, backend };
    let t = quantize_ternary(values, 1, values.len(), &opts)?;
    Ok(crate::scheme::metrics::error_stats(values, &t.dequantize(), backend)?.snr_db)
}

/// The median ternary fit under which a conversion is called far from ternary.
pub const FAR_FROM_TERNARY_DB: f64 = 20.0;

/// A one-line warning when the ternarised tensors of a conversion were not trained
/// ternary: the median of their [`ternary_fit_db`] figures is under
/// [`FAR_FROM_TERNARY_DB`]. `None` when they are close to ternary, or none was
/// ternarised from floats.
pub fn far_from_ternary(fits: &[f64]) -> Option<String> {
    let mut sorted: Vec<f64> = fits.iter().copied().filter(|f| !f.is_nan()).collect();
    if sorted.is_empty() {
        return None;
    }
    sorted.sort_unstable_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    (median < FAR_FROM_TERNARY_DB).then(|| {
        format!(
            "these weights are far from ternary (the median of {} ternarised tensors fits ternary values at {median:.1} dB SNR; \
             weights trained ternary fit at over {FAR_FROM_TERNARY_DB:.0} dB): the ternary model will lose most of its accuracy. \
             --preset best loses the least; weights kept in F16 (--exclude '.*') or Q8_0 lose nothing that matters",
            sorted.len()
        )
    })
}

/// Per-tensor figures for the conversion report. Error metrics compare the decoded
/// input with the decoded output; they, the scale figures and the zero fraction are
/// `None` where they do not apply (copies, empty tensors, outputs without scales).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TensorStats {
    pub name: String,
    pub shape: Vec<u64>,
    pub kind: &'static str,
    pub in_type: &'static str,
    pub out_type: &'static str,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Output bits per value, scales included.
    pub bits_per_weight: Option<f64>,
    pub scale_min: Option<f64>,
    pub scale_max: Option<f64>,
    pub scale_mean: Option<f64>,
    pub mse: Option<f64>,
    pub rmse: Option<f64>,
    pub max_abs_error: Option<f64>,
    /// +inf when the output is exact.
    pub snr_db: Option<f64>,
    pub cosine: Option<f64>,
    /// Fraction of output values that are zero.
    pub zero_fraction: Option<f64>,
    /// What the error does to a layer's output: the SNR of y = W x, the output against
    /// the input's, over the first 1,024 rows, for a probe x of seeded standard Gaussian
    /// values (the same for every tensor of a row length); `None` for tensors that are
    /// not matrices.
    pub output_snr_db: Option<f64>,
}

/// A reusable input buffer: 4-byte aligned, so that F32 input converts in place. It
/// keeps its storage across ops and grows to the largest input it is given.
#[derive(Clone, Debug, Default)]
pub struct InputBuffer {
    words: Vec<u32>,
    len: usize,
}

impl InputBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the length to `len` bytes and returns them to be filled. Their contents are
    /// unspecified (left from earlier use). Storage grows to exactly what is needed: the
    /// old storage is freed first, so that growing never holds both.
    pub fn prepare(&mut self, len: usize) -> &mut [u8] {
        let words = len.div_ceil(4);
        if self.words.len() < words {
            self.words = Vec::new();
            self.words = vec![0u32; words];
        }
        self.len = len;
        // SAFETY: u8 has alignment 1 and every bit pattern is valid; the storage holds
        // 4 * words.len() >= len initialized bytes, borrowed exclusively through `self`.
        unsafe { core::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), len) }
    }

    /// The bytes set by the last [`prepare`](Self::prepare).
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: as in `prepare`, shared.
        unsafe { core::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }

    /// Bytes of storage held (capacity, not length).
    pub fn capacity(&self) -> usize {
        self.words.capacity() * 4
    }
}

/// [`convert_tensor`] from an [`InputBuffer`] holding the op's input: the same bytes
/// and statistics, with F32 input read in place.
pub fn convert_buffered(op: &PlanOp, input: &InputBuffer, measure: bool) -> Result<ConvertedTensor> {
    convert_tensor(op, input.bytes(), measure)
}

/// Converts one op's input bytes (its input ranges concatenated, in order) into its
/// output bytes. `measure` adds [`TensorStats`]. Errors name the tensor.
pub fn convert_tensor(op: &PlanOp, input: &[u8], measure: bool) -> Result<ConvertedTensor> {
    let mut converted = convert(op, input, measure).map_err(|e| e.in_tensor(&op.name))?;
    if let Some(order) = op.row_order {
        // Every layout a GGUF holds stores whole rows one after another (I2_S's tail
        // comes after them), so reordering output rows reorders the values' rows; the
        // statistics are sums over all values and do not change.
        let rows = to_usize(op.shape.first().copied().unwrap_or(1), "rows")?;
        let tail = op.out_type.format().map_or(0, |f| f.info().tensor_tail_bytes as usize);
        let row_bytes = converted.bytes.len().saturating_sub(tail).checked_div(rows).unwrap_or(0);
        order.apply(&mut converted.bytes, rows, row_bytes);
    }
    Ok(converted)
}

fn to_usize(x: u64, what: &'static str) -> Result<usize> {
    usize::try_from(x).map_err(|_| Error::SizeOverflow { what })
}

/// (rows, cols) of a tensor of 1 or more dimensions: the last dimension is the row.
fn rows_cols(op: &PlanOp) -> Result<(usize, usize)> {
    let cols = to_usize(op.shape.last().copied().unwrap_or(1), "row length")?;
    let n = to_usize(op.element_count(), "element count")?;
    Ok((n.checked_div(cols).unwrap_or(0), cols))
}

fn convert(op: &PlanOp, input: &[u8], measure: bool) -> Result<ConvertedTensor> {
    let produced = produce(op, input, measure, 0)?;
    let ternary_fit_db = produced.fit;
    let stats = if measure {
        let mut figures = Figures::new(op)?;
        figures.add(op, &produced)?;
        Some(figures.finish(op))
    } else {
        None
    };
    Ok(ConvertedTensor { bytes: produced.bytes, stats, ternary_fit_db })
}

/// What converting an op's input gave: its output bytes and, when measuring, what the
/// figures are computed from.
struct Produced<'a> {
    bytes: Vec<u8>,
    reference: Option<Cow<'a, [f32]>>,
    approx: Option<Approx<'a>>,
    scales: Option<Vec<f32>>,
    /// [`ternary_fit_db`] of a ternarised tensor's first values.
    fit: Option<f64>,
}

/// Converts `input` for `op`; `first_index` is the index of its first value in the
/// whole tensor, for the indexes that errors name.
fn produce<'a>(op: &PlanOp, input: &'a [u8], measure: bool, first_index: usize) -> Result<Produced<'a>> {
    let expected = op.input_length();
    if input.len() as u64 != expected {
        return Err(Error::ByteLength {
            layout: op.in_type.name(),
            expected: usize::try_from(expected).unwrap_or(usize::MAX),
            actual: input.len(),
        });
    }
    let mut reference = None;
    let mut approx = None;
    let mut scales = None;
    let mut fit = None;
    let bytes = match op.kind {
        OpKind::Copy => input.to_vec(),
        OpKind::Constant => encode_float(op, &op.values, 0)?,
        OpKind::Convert => {
            let values = decode(op, input, first_index)?;
            let bytes = encode_float(op, &values, first_index)?;
            if measure {
                approx = Some(match op.out_type {
                    DType::F16 => Approx::Output(OutputBlocks::F16),
                    _ => Approx::Values(values.clone()),
                });
                reference = Some(values);
            }
            bytes
        }
        OpKind::Q8_0 => {
            let values = decode(op, input, first_index)?;
            let (rows, cols) = rows_cols(op)?;
            let opts = Int8Options {
                layout: Int8Layout::Q8_0,
                scope: Scope::Block(QK8_0),
                symmetric: true,
                clip: None,
                percentile: None,
                backend: op.backend,
            };
            let q = quantize_int8(&values, rows, cols, &opts)?;
            if measure {
                approx = Some(Approx::Output(OutputBlocks::Q8_0));
                scales = Some(q.scales.clone());
                reference = Some(values);
            }
            q.bytes
        }
        OpKind::Quantize => {
            let values = decode(op, input, first_index)?;
            let (rows, cols) = rows_cols(op)?;
            let layout = op.out_layout().ok_or_else(|| Error::Unsupported(format!("quantize to {}", op.out_type)))?;
            let opts = TernaryOptions { layout, rule: op.rule, scope: op.scope, backend: op.backend };
            let t = match &op.importance {
                Some(importance) => quantize_ternary_weighted(&values, rows, cols, &opts, importance)?,
                None => quantize_ternary(&values, rows, cols, &opts)?,
            };
            if !values.is_empty() {
                fit = Some(ternary_fit_db(&values[..values.len().min(FIT_SAMPLE)], op.backend)?);
            }
            if measure {
                approx = Some(match t.layout {
                    TernaryLayout::Tq2_0 => Approx::Output(OutputBlocks::Tq2_0),
                    TernaryLayout::Tq1_0 => Approx::Output(OutputBlocks::Tq1_0),
                    _ => Approx::Values(Cow::Owned(t.dequantize())),
                });
                scales = Some(t.scales.clone());
                reference = Some(values);
            }
            ternary_bytes(t)
        }
        OpKind::Repack => {
            let source = read_ternary(op, input)?;
            let t = repack(op, &source)?;
            if measure {
                reference = Some(Cow::Owned(source.dequantize()));
                approx = Some(Approx::Values(Cow::Owned(t.dequantize())));
                scales = Some(t.scales.clone());
            }
            ternary_bytes(t)
        }
    };
    if bytes.len() as u64 != op.output_length {
        return Err(Error::ByteLength {
            layout: op.out_type.name(),
            expected: usize::try_from(op.output_length).unwrap_or(usize::MAX),
            actual: bytes.len(),
        });
    }
    Ok(Produced { bytes, reference, approx, scales, fit })
}

/// A ternary tensor's file bytes: bitnet-hf carries its F32 scale after the codes.
fn ternary_bytes(t: TernaryTensor) -> Vec<u8> {
    let mut bytes = t.bytes;
    if t.layout == TernaryLayout::BitnetHf {
        bytes.extend_from_slice(&t.scales[0].to_le_bytes());
    }
    bytes
}

/// Little-endian F32 bytes as `&[f32]`, when they are 4-byte aligned, a whole number of
/// values, and the target is little-endian.
fn f32_view(bytes: &[u8]) -> Option<&[f32]> {
    if cfg!(target_endian = "big") {
        return None;
    }
    // SAFETY: every bit pattern is a valid f32, and `align_to` only puts correctly
    // aligned, whole values in the middle part.
    let (head, values, tail) = unsafe { bytes.align_to::<f32>() };
    (head.is_empty() && tail.is_empty()).then_some(values)
}

/// F32, F16 or BF16 bytes to values (no finiteness check); F32 is borrowed in place
/// where [`f32_view`] allows.
fn decode_floats<'a>(dtype: DType, bytes: &'a [u8], backend: Backend) -> Result<Cow<'a, [f32]>> {
    let k = backend.kernels_or_scalar();
    Ok(match dtype {
        DType::F32 => match f32_view(bytes) {
            Some(values) => Cow::Borrowed(values),
            None => Cow::Owned(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()),
        },
        DType::F16 | DType::BF16 => {
            let bits: Vec<u16> = bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])).collect();
            let mut out = vec![0f32; bits.len()];
            if dtype == DType::F16 {
                (k.f16_to_f32)(&bits, &mut out);
            } else {
                (k.bf16_to_f32)(&bits, &mut out);
            }
            Cow::Owned(out)
        }
        other => return Err(Error::Unsupported(format!("{other} is not a float type"))),
    })
}

/// The values of F32, F16 or BF16 little-endian bytes (any values, NaN and infinities
/// included), decoded by the fastest kernels of this machine.
pub fn decode_float_bytes(dtype: DType, bytes: &[u8]) -> Result<Vec<f32>> {
    let size = match dtype {
        DType::F32 => 4,
        DType::F16 | DType::BF16 => 2,
        other => return Err(Error::Unsupported(format!("{other} is not a float type"))),
    };
    if !bytes.len().is_multiple_of(size) {
        return Err(Error::ByteLength {
            layout: dtype.name(),
            expected: bytes.len() / size * size,
            actual: bytes.len(),
        });
    }
    Ok(decode_floats(dtype, bytes, Backend::best())?.into_owned())
}

/// The op's input as f32 values, every one finite (borrowed where [`decode_floats`] can);
/// `first_index` offsets the index a non-finite value is reported at.
fn decode<'a>(op: &PlanOp, input: &'a [u8], first_index: usize) -> Result<Cow<'a, [f32]>> {
    let k = op.backend.kernels_or_scalar();
    let n = to_usize(op.element_count(), "element count")?;
    let values = match op.in_type {
        DType::F32 | DType::F16 | DType::BF16 => decode_floats(op.in_type, input, op.backend)?,
        DType::Q8_0 => {
            let expected = (n / QK8_0).saturating_mul(core::mem::size_of::<BlockQ8_0>());
            if n % QK8_0 != 0 || input.len() != expected {
                return Err(Error::ByteLength { layout: "q8_0", expected, actual: input.len() });
            }
            let mut out = vec![0f32; n];
            (k.dequantize_q8_0)(as_blocks::<BlockQ8_0>(input), &mut out);
            Cow::Owned(out)
        }
        DType::Tq1_0 | DType::Tq2_0 | DType::I2S | DType::BitnetHf => Cow::Owned(read_ternary(op, input)?.dequantize()),
        other => return Err(Error::Unsupported(format!("{other} values cannot be decoded"))),
    };
    if values.len() != n {
        return Err(Error::ShapeMismatch { what: "decoded values", expected: n, actual: values.len() });
    }
    if let Some(index) = (k.first_non_finite)(&values) {
        return Err(Error::NonFinite { what: "input", index: first_index + index, value: values[index] });
    }
    Ok(values)
}

/// A bitnet-hf scale tensor's one value, as a multiplier.
fn read_scale(op: &PlanOp, bytes: &[u8]) -> Result<f32> {
    let dtype = op.scale_dtype.unwrap_or(DType::F32);
    let values = decode_floats(dtype, bytes, op.backend)?;
    let &[s] = values.as_ref() else {
        return Err(Error::ShapeMismatch { what: "weight_scale", expected: 1, actual: values.len() });
    };
    let g = match op.scale_semantics {
        ScaleSemantics::Multiply => s,
        ScaleSemantics::Divide => 1.0 / s,
    };
    if !g.is_finite() {
        return Err(Error::NonFinite { what: "weight_scale (as a multiplier)", index: 0, value: g });
    }
    Ok(g)
}

/// An already-ternary input, checked (bad codes are errors).
fn read_ternary(op: &PlanOp, input: &[u8]) -> Result<TernaryTensor> {
    let (rows, cols) = rows_cols(op)?;
    match op.in_type {
        DType::Tq2_0 => {
            TernaryTensor::from_bytes(input.to_vec(), rows, cols, TernaryLayout::Tq2_0, Scope::Block(QK_K), None)
        }
        DType::Tq1_0 => {
            TernaryTensor::from_bytes(input.to_vec(), rows, cols, TernaryLayout::Tq1_0, Scope::Block(QK_K), None)
        }
        DType::I2S => TernaryTensor::from_bytes(input.to_vec(), rows, cols, TernaryLayout::I2S, Scope::Tensor, None),
        DType::BitnetHf => {
            let split = to_usize(op.inputs.first().map_or(0, |r| r.length), "bitnet-hf bytes")?;
            let (packed, scale) = input.split_at(split.min(input.len()));
            let g = read_scale(op, scale)?;
            TernaryTensor::from_bytes(packed.to_vec(), rows, cols, TernaryLayout::BitnetHf, Scope::Tensor, Some(&[g]))
        }
        other => Err(Error::Unsupported(format!("{other} is not a ternary type"))),
    }
}

/// The one scale of a tensor whose blocks hold their own: blocks whose codes are all
/// zero may hold any scale; the others must agree.
fn common_scale(source: &TernaryTensor, codes: &[i8], target: TernaryLayout) -> Result<f32> {
    let span = source.scope.span(source.rows, source.cols);
    let mut common: Option<(usize, f32)> = None;
    for (b, (block, &scale)) in codes.chunks(span).zip(&source.scales).enumerate() {
        if block.iter().all(|&q| q == 0) {
            continue;
        }
        match common {
            None => common = Some((b, scale)),
            Some((first, s)) if s.to_bits() != scale.to_bits() => {
                return Err(Error::Unsupported(format!(
                    "{} blocks {first} and {b} have different scales ({s} and {scale}); {target} stores one scale per tensor",
                    source.layout
                )))
            }
            Some(_) => {}
        }
    }
    Ok(common.map_or(source.scales.first().copied().unwrap_or(0.0), |(_, s)| s))
}

/// Re-packs ternary codes and scales into the op's layout.
fn repack(op: &PlanOp, source: &TernaryTensor) -> Result<TernaryTensor> {
    let layout = op.out_layout().ok_or_else(|| Error::Unsupported(format!("re-pack into {}", op.out_type)))?;
    let codes = source.codes();
    let (scope, scales) = match (layout, source.scope) {
        (TernaryLayout::Tq2_0 | TernaryLayout::Tq1_0, scope) => (scope, source.scales.clone()),
        (_, Scope::Tensor) => (Scope::Tensor, source.scales.clone()),
        (_, _) => (Scope::Tensor, vec![common_scale(source, &codes, layout)?]),
    };
    TernaryTensor::from_codes(&codes, source.rows, source.cols, layout, scope, &scales)
}

/// Values as the op's F16 or F32 bytes. F16 refuses values beyond its range, naming the
/// value's index plus `first_index`.
fn encode_float(op: &PlanOp, values: &[f32], first_index: usize) -> Result<Vec<u8>> {
    let k = op.backend.kernels_or_scalar();
    match op.out_type {
        DType::F32 => Ok(little_endian(values, f32::to_le_bytes)),
        DType::F16 => {
            // Finite values of magnitude >= 65520 round to infinity; the SIMD maximum
            // says whether there is one before a scan for its index.
            if (k.abs_max)(values) >= F16_OVERFLOW {
                let index = values.iter().position(|v| v.abs() >= F16_OVERFLOW).unwrap_or(0);
                return Err(Error::Unsupported(format!(
                    "value {} at index {} is beyond F16's range (+-65504); keep this tensor out of the conversion",
                    values[index],
                    first_index + index
                )));
            }
            let mut out = vec![0u8; values.len() * 2];
            // SAFETY: every bit pattern is a valid u16, and `align_to_mut` puts only
            // aligned, whole u16 in the middle part.
            match unsafe { out.align_to_mut::<u16>() } {
                // Little-endian targets (wasm32, x86_64) store the halves' bits as the
                // file's bytes: the kernel writes the output in place.
                ([], halves, []) if cfg!(target_endian = "little") => (k.f32_to_f16)(values, halves),
                _ => {
                    let mut halves = vec![0u16; values.len()];
                    (k.f32_to_f16)(values, &mut halves);
                    out = little_endian(&halves, u16::to_le_bytes);
                }
            }
            Ok(out)
        }
        other => Err(Error::Unsupported(format!("convert to {other}"))),
    }
}

/// The least f32 magnitude that rounds to an F16 infinity: 65504 + half an F16 step (16),
/// where the tie rounds to the even neighbour, 65536.
const F16_OVERFLOW: f32 = 65520.0;

/// The little-endian bytes of `values`.
fn little_endian<T: Copy, const N: usize>(values: &[T], bytes: fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = vec![0u8; values.len() * N];
    for (o, &v) in out.chunks_exact_mut(N).zip(values) {
        o.copy_from_slice(&bytes(v));
    }
    out
}

/// Where the error figures read the output's values from.
enum Approx<'a> {
    /// Values already at hand: an F32 output is its input; other layouts are decoded whole.
    Values(Cow<'a, [f32]>),
    /// The output bytes, decoded a chunk at a time, so that measuring a tensor never
    /// holds a second f32 copy of it.
    Output(OutputBlocks),
}

/// Output encodings that decode block by block.
#[derive(Clone, Copy)]
enum OutputBlocks {
    F16,
    Q8_0,
    Tq2_0,
    Tq1_0,
}

impl OutputBlocks {
    /// (values, bytes) of one block: chunks start and end on block boundaries.
    fn block(self) -> (usize, usize) {
        match self {
            Self::F16 => (1, 2),
            Self::Q8_0 => (QK8_0, size_of::<BlockQ8_0>()),
            Self::Tq2_0 => (QK_K, size_of::<BlockTq2_0>()),
            Self::Tq1_0 => (QK_K, size_of::<BlockTq1_0>()),
        }
    }

    /// Decodes `bytes`, whole blocks, into `out` (their exact value count).
    fn decode(self, k: &Kernels, bytes: &[u8], out: &mut [f32], f16_bits: &mut Vec<u16>) {
        match self {
            Self::F16 => {
                f16_bits.clear();
                f16_bits.extend(bytes.chunks_exact(2).map(|b| u16::from_le_bytes([b[0], b[1]])));
                (k.f16_to_f32)(f16_bits, out);
            }
            Self::Q8_0 => (k.dequantize_q8_0)(as_blocks(bytes), out),
            Self::Tq2_0 => (k.dequantize_tq2_0)(as_blocks(bytes), out),
            Self::Tq1_0 => (k.dequantize_tq1_0)(as_blocks(bytes), out),
        }
    }
}

/// Values per chunk when decoding the output for the error figures: a multiple of every
/// block length, and small enough to stay in cache between decoding and summing.
const MEASURE_CHUNK: usize = 1 << 14;

/// The figures of a [`TensorStats`], summed over one or more converted pieces of an op.
/// The error sums take the values [`MEASURE_CHUNK`] at a time and the scale figures are
/// summed in order, so pieces that are whole multiples of it give the same figures, to
/// the bit, as the whole tensor.
struct Figures {
    sums: ErrorSums,
    measured: bool,
    zeros: u64,
    values: u64,
    scale_min: f64,
    scale_max: f64,
    scale_sum: f64,
    scale_count: u64,
    probe: Option<Probe>,
}

/// Rows of a matrix whose outputs the probe compares: enough for a stable figure, few
/// enough that measuring a large matrix costs little more than its error sums.
const PROBE_ROWS: usize = 1024;

/// y = W x of the input and of the output, for the first [`PROBE_ROWS`] rows of a matrix
/// W, summed in f64 in value order.
struct Probe {
    x: Vec<f32>,
    y_reference: Vec<f64>,
    y_approx: Vec<f64>,
}

impl Probe {
    /// For a `[rows, cols]` op (more dimensions fold into rows); `None` for vectors.
    fn of(op: &PlanOp) -> Option<Probe> {
        if op.shape.len() < 2 {
            return None;
        }
        let cols = usize::try_from(*op.shape.last()?).ok().filter(|&c| c > 0)?;
        let rows = (usize::try_from(op.element_count()).ok()? / cols).min(PROBE_ROWS);
        Some(Probe { x: probe_vector(cols), y_reference: vec![0.0; rows], y_approx: vec![0.0; rows] })
    }

    /// Adds values `first..` (in row-major order) of the input and of the output, a row
    /// segment at a time (a segment's products summed in f64, then added to its row).
    fn add(&mut self, first: u64, reference: &[f32], approx: &[f32]) {
        let cols = self.x.len();
        let (mut row, mut col) = ((first / cols as u64) as usize, (first % cols as u64) as usize);
        let mut at = 0;
        while at < reference.len().min(approx.len()) && row < self.y_reference.len() {
            let take = (cols - col).min(reference.len() - at);
            let x = &self.x[col..col + take];
            let (mut y, mut ya) = (0f64, 0f64);
            for ((&r, &a), &xv) in reference[at..at + take].iter().zip(&approx[at..at + take]).zip(x) {
                y += f64::from(r) * f64::from(xv);
                ya += f64::from(a) * f64::from(xv);
            }
            self.y_reference[row] += y;
            self.y_approx[row] += ya;
            (row, col, at) = (row + 1, 0, at + take);
        }
    }

    fn snr_db(&self) -> f64 {
        let (mut signal, mut noise) = (0f64, 0f64);
        for (&r, &a) in self.y_reference.iter().zip(&self.y_approx) {
            signal += r * r;
            noise += (r - a) * (r - a);
        }
        if noise == 0.0 {
            f64::INFINITY
        } else {
            10.0 * (signal / noise).log10()
        }
    }
}

/// The probe x of [`TensorStats::output_snr_db`] for rows of `n` values: standard
/// Gaussian values from a fixed seed ([`gaussian_probe`]), the same every time.
pub fn probe_vector(n: usize) -> Vec<f32> {
    gaussian_probe(n)
}

impl Figures {
    fn new(op: &PlanOp) -> Result<Self> {
        Ok(Self {
            sums: ErrorSums::new(op.backend)?,
            measured: false,
            zeros: 0,
            values: 0,
            scale_min: f64::INFINITY,
            scale_max: f64::NEG_INFINITY,
            scale_sum: 0.0,
            scale_count: 0,
            probe: Probe::of(op),
        })
    }

    /// Adds what converting `op` (the whole op, or a piece of it) gave.
    fn add(&mut self, op: &PlanOp, produced: &Produced<'_>) -> Result<()> {
        if let (Some(reference), Some(approx)) = (produced.reference.as_deref(), produced.approx.as_ref()) {
            if !reference.is_empty() {
                self.zeros += self.add_errors(op, reference, approx, &produced.bytes)?;
                self.values += reference.len() as u64;
                self.measured = true;
            }
        }
        for &s in produced.scales.as_deref().unwrap_or_default() {
            let s = f64::from(s);
            self.scale_min = self.scale_min.min(s);
            self.scale_max = self.scale_max.max(s);
            self.scale_sum += s;
            self.scale_count += 1;
        }
        Ok(())
    }

    /// Adds the errors of the output against `reference`; returns the output's zeros.
    fn add_errors(&mut self, op: &PlanOp, reference: &[f32], approx: &Approx<'_>, output: &[u8]) -> Result<u64> {
        let mut zeros = 0;
        match approx {
            Approx::Values(values) => {
                if values.len() != reference.len() {
                    return Err(Error::ShapeMismatch {
                        what: "reconstructed",
                        expected: reference.len(),
                        actual: values.len(),
                    });
                }
                for (i, (r, a)) in reference.chunks(MEASURE_CHUNK).zip(values.chunks(MEASURE_CHUNK)).enumerate() {
                    self.sums.add(r, a)?;
                    zeros += a.iter().filter(|&&v| v == 0.0).count();
                    if let Some(p) = &mut self.probe {
                        p.add(self.values + (i * MEASURE_CHUNK) as u64, r, a);
                    }
                }
            }
            &Approx::Output(blocks) => {
                let k = op.backend.kernels_or_scalar();
                let (block_values, block_bytes) = blocks.block();
                if !reference.len().is_multiple_of(block_values)
                    || output.len() < reference.len() / block_values * block_bytes
                {
                    return Err(Error::ByteLength {
                        layout: op.out_type.name(),
                        expected: reference.len() / block_values * block_bytes,
                        actual: output.len(),
                    });
                }
                let mut chunk_out = vec![0f32; reference.len().min(MEASURE_CHUNK)];
                let mut f16_bits = Vec::new();
                for (i, chunk) in reference.chunks(MEASURE_CHUNK).enumerate() {
                    let first_block = i * MEASURE_CHUNK / block_values;
                    let bytes =
                        &output[first_block * block_bytes..(first_block + chunk.len() / block_values) * block_bytes];
                    let out = &mut chunk_out[..chunk.len()];
                    blocks.decode(k, bytes, out, &mut f16_bits);
                    self.sums.add(chunk, out)?;
                    zeros += out.iter().filter(|&&v| v == 0.0).count();
                    if let Some(p) = &mut self.probe {
                        p.add(self.values + (i * MEASURE_CHUNK) as u64, chunk, out);
                    }
                }
            }
        }
        Ok(zeros as u64)
    }

    fn finish(&self, op: &PlanOp) -> TensorStats {
        let errors = self.measured.then(|| self.sums.finish());
        let scales = (self.scale_count > 0).then_some(self);
        TensorStats {
            name: op.name.clone(),
            shape: op.shape.clone(),
            kind: op.kind.name(),
            in_type: op.in_type.name(),
            out_type: op.out_type.name(),
            bytes_in: op.input_length(),
            bytes_out: op.output_length,
            bits_per_weight: op.bits_per_weight(),
            scale_min: scales.map(|f| f.scale_min),
            scale_max: scales.map(|f| f.scale_max),
            scale_mean: scales.map(|f| f.scale_sum / f.scale_count as f64),
            mse: errors.map(|e| e.mse),
            rmse: errors.map(|e| e.rmse),
            max_abs_error: errors.map(|e| e.max_abs_error),
            snr_db: errors.map(|e| e.snr_db),
            cosine: errors.map(|e| e.cosine),
            zero_fraction: self.measured.then(|| self.zeros as f64 / self.values as f64),
            output_snr_db: self.probe.as_ref().filter(|_| self.measured).map(Probe::snr_db),
        }
    }
}

/// The smallest piece of an op that converts on its own: a value of an element-wise
/// conversion, a Q8_0 block, a row of a row- or block-scoped ternary op, a byte of a copy.
#[derive(Clone, Copy, Debug)]
struct Granule {
    values: u64,
    input_bytes: u64,
    output_bytes: u64,
}

/// Input bytes of `values` values of `dtype`, when they are whole blocks of it.
fn bytes_of_values(dtype: DType, values: u64) -> Option<u64> {
    let info = dtype.format()?.info();
    let block = u64::from(info.block_values);
    (info.tensor_tail_bytes == 0 && info.side_scale_bytes == 0 && values.is_multiple_of(block))
        .then(|| values / block * u64::from(info.block_bytes))
}

/// Converts one op a piece at a time, so that memory holds one piece rather than the
/// tensor: pieces go in in order, each as whole granules (see
/// [`chunk_bytes`](Self::chunk_bytes)); their outputs, written one after another from
/// the op's output offset, are the bytes [`convert_tensor`] gives for the whole, and
/// [`finish`](Self::finish) gives the same statistics.
///
/// Copies, element-wise float conversions, Q8_0 and ternary ops whose scales are per
/// row or per block convert in pieces; ops that need the whole tensor at once (one
/// scale per tensor, re-packing, reordered rows, a bitnet-hf scale input) do not
/// ([`supports`](Self::supports) says which).
pub struct ChunkedConversion {
    op: PlanOp,
    granule: Granule,
    figures: Option<Figures>,
    input_done: u64,
    values_done: u64,
    fit: Option<f64>,
}

impl ChunkedConversion {
    /// Whether `op` converts in pieces.
    pub fn supports(op: &PlanOp) -> bool {
        Self::granule_of(op).is_some()
    }

    fn granule_of(op: &PlanOp) -> Option<Granule> {
        if op.inputs.len() != 1 || op.row_order.is_some() {
            return None;
        }
        let cols = op.shape.last().copied().unwrap_or(1);
        let floats = |t: DType| matches!(t, DType::F32 | DType::F16 | DType::BF16);
        let values = match op.kind {
            OpKind::Copy => return Some(Granule { values: 0, input_bytes: 1, output_bytes: 1 }),
            OpKind::Convert if floats(op.in_type) && floats(op.out_type) => 1,
            OpKind::Q8_0 if cols.is_multiple_of(QK8_0 as u64) => QK8_0 as u64,
            OpKind::Quantize => match op.scope {
                Scope::Row => cols,
                Scope::Block(n) if n > 0 && cols.is_multiple_of(n as u64) => cols,
                _ => return None,
            },
            _ => return None,
        };
        let granule = Granule {
            values,
            input_bytes: bytes_of_values(op.in_type, values)?,
            output_bytes: bytes_of_values(op.out_type, values)?,
        };
        (granule.input_bytes > 0).then_some(granule)
    }

    /// Starts converting `op`; `measure` adds statistics at the end.
    pub fn new(op: &PlanOp, measure: bool) -> Result<Self> {
        let granule = Self::granule_of(op).ok_or_else(|| {
            Error::Unsupported(format!("{} op of tensor '{}' converts only whole", op.kind.name(), op.name))
        })?;
        let figures = if measure { Some(Figures::new(op)?) } else { None };
        Ok(Self { op: op.clone(), granule, figures, input_done: 0, values_done: 0, fit: None })
    }

    /// Input bytes of the largest piece of at most `max_bytes` (at least one granule).
    /// Pieces of this size keep the statistics equal to the whole tensor's to the bit;
    /// the last piece is what remains.
    pub fn chunk_bytes(&self, max_bytes: u64) -> u64 {
        let g = self.granule;
        let mut granules = (max_bytes / g.input_bytes).max(1);
        if g.values > 0 {
            // Whole multiples of MEASURE_CHUNK values, where that fits in max_bytes.
            let chunk = MEASURE_CHUNK as u64;
            let step = chunk / gcd(chunk, g.values);
            if granules >= step {
                granules -= granules % step;
            }
        }
        granules * g.input_bytes
    }

    /// Converts the next piece: whole granules, not beyond the op's input.
    pub fn convert(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        self.convert_piece(input).map_err(|e| e.in_tensor(&self.op.name))
    }

    fn convert_piece(&mut self, input: &[u8]) -> Result<Vec<u8>> {
        let g = self.granule;
        let length = input.len() as u64;
        let remaining = self.op.input_length() - self.input_done;
        if length == 0 || !length.is_multiple_of(g.input_bytes) || length > remaining {
            return Err(Error::Unsupported(format!(
                "a piece of {length} bytes: pieces are whole multiples of {} bytes, and {remaining} bytes remain",
                g.input_bytes
            )));
        }
        if self.op.kind == OpKind::Copy {
            self.input_done += length;
            return Ok(input.to_vec());
        }
        let granules = length / g.input_bytes;
        let values = granules * g.values;
        let mut piece = self.op.clone();
        piece.shape = match (self.op.kind, self.op.shape.len()) {
            (OpKind::Quantize, 2..) => vec![granules, g.values],
            _ => vec![values],
        };
        piece.inputs[0].length = length;
        piece.output_length = granules * g.output_bytes;
        let first_index = to_usize(self.values_done, "value index")?;
        let produced = produce(&piece, input, self.figures.is_some(), first_index)?;
        if let Some(figures) = &mut self.figures {
            figures.add(&piece, &produced)?;
        }
        if self.values_done == 0 {
            self.fit = produced.fit;
        }
        self.input_done += length;
        self.values_done += values;
        Ok(produced.bytes)
    }

    /// For a tensor ternarised from floats, [`ternary_fit_db`] of the first values of its
    /// first piece (the whole op's figure when that piece holds [`FIT_SAMPLE`] values).
    pub fn ternary_fit_db(&self) -> Option<f64> {
        self.fit
    }

    /// Ends the conversion once every input byte was given: the op's statistics when
    /// measuring (as [`convert_tensor`] gives them).
    pub fn finish(self) -> Result<Option<TensorStats>> {
        let expected = self.op.input_length();
        if self.input_done != expected {
            return Err(Error::ByteLength {
                layout: self.op.in_type.name(),
                expected: usize::try_from(expected).unwrap_or(usize::MAX),
                actual: usize::try_from(self.input_done).unwrap_or(usize::MAX),
            }
            .in_tensor(&self.op.name));
        }
        Ok(self.figures.map(|f| f.finish(&self.op)))
    }
}

fn gcd(mut a: u64, mut b: u64) -> u64 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}
