//! The quantize API with arbitrary options, shapes and data: `quantize_ternary`,
//! `quantize_int8`, `error_stats`, `ternary_mat_vec`, `TernaryTensor::from_bytes` and
//! `Int8Tensor::from_bytes`. Any `Result` is fine; a panic is a bug. Where a call
//! succeeds, the scalar backend must give the same bits as the one chosen, and
//! quantized bytes must read back through `from_bytes`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ternary_quant::layout::TernaryLayout;
use ternary_quant::{
    error_stats, quantize_int8, quantize_ternary, ternary_mat_vec, Backend, Int8Layout, Int8Options, Int8Tensor,
    ScaleRule, Scope, TernaryOptions, TernaryTensor,
};

/// Values generated at most, so that one run stays fast.
const MAX_VALUES: usize = 1 << 13;

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Dim {
    Small(u8),
    Medium(u16),
    /// A multiple of 256 (1 to 8 blocks).
    Blocks(u8),
    Any(usize),
}

impl Dim {
    fn get(self) -> usize {
        match self {
            Dim::Small(n) => n as usize,
            Dim::Medium(n) => n as usize,
            Dim::Blocks(k) => (k as usize % 8 + 1) * 256,
            Dim::Any(n) => n,
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Kind {
    Bell,
    /// Multiples of scale/2: ties everywhere.
    Halves,
    Zero,
    Constant,
    Huge,
    Tiny,
}

#[derive(Arbitrary, Debug)]
enum Data {
    /// Exactly the shape's values (when there are at most `MAX_VALUES`), generated.
    Exact { kind: Kind, seed: u64, scale: u32, specials: Vec<(u16, u32)> },
    /// The shape's length plus a small delta.
    Off { delta: i8, seed: u64 },
    /// Any bits (NaN, infinities, subnormals, signed zeros).
    Bits(Vec<u32>),
    /// Small multiples of 1/4.
    Quarters(Vec<i8>),
}

fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    }
}

fn generate(kind: Kind, seed: u64, scale: f32, n: usize) -> Vec<f32> {
    let mut next = rng(seed);
    let scale = if scale.is_finite() && scale != 0.0 { scale.abs() } else { 1.0 };
    (0..n)
        .map(|_| {
            let r = next();
            let u = (r >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
            match kind {
                Kind::Bell => (u + ((next() >> 40) as f32 / (1u64 << 24) as f32 - 0.5)) * scale,
                Kind::Halves => ((r % 9) as f32 - 4.0) * 0.5 * scale,
                Kind::Zero => {
                    if r & 1 == 0 {
                        0.0
                    } else {
                        -0.0
                    }
                }
                Kind::Constant => scale,
                Kind::Huge => u * f32::MAX,
                Kind::Tiny => u * f32::MIN_POSITIVE * 2.0,
            }
        })
        .collect()
}

impl Data {
    fn values(&self, shape_len: Option<usize>) -> Vec<f32> {
        match self {
            Data::Exact { kind, seed, scale, specials } => {
                let n = shape_len.filter(|&n| n <= MAX_VALUES).unwrap_or(0);
                let mut v = generate(*kind, *seed, f32::from_bits(*scale), n);
                for &(i, bits) in specials.iter().take(4) {
                    if let Some(x) = v.get_mut(i as usize) {
                        *x = f32::from_bits(bits);
                    }
                }
                v
            }
            Data::Off { delta, seed } => {
                let n = shape_len.unwrap_or(0).saturating_add_signed(*delta as isize).min(MAX_VALUES);
                generate(Kind::Bell, *seed, 1.0, n)
            }
            Data::Bits(b) => b.iter().map(|&x| f32::from_bits(x)).collect(),
            Data::Quarters(q) => q.iter().map(|&x| x as f32 * 0.25).collect(),
        }
    }
}

#[derive(Arbitrary, Debug)]
enum Bytes {
    /// Random bytes of exactly the expected length (when it is at most 64 KiB).
    Exact {
        seed: u64,
        delta: i8,
    },
    Raw(Vec<u8>),
}

impl Bytes {
    fn get(&self, expected: Option<usize>) -> Vec<u8> {
        match self {
            Bytes::Exact { seed, delta } => {
                let n = expected.filter(|&n| n <= 1 << 16).unwrap_or(0).saturating_add_signed(*delta as isize % 2);
                let mut next = rng(*seed);
                (0..n).map(|_| (next() >> 32) as u8).collect()
            }
            Bytes::Raw(b) => b.clone(),
        }
    }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum ScopeSel {
    Tensor,
    Row,
    Block(u16),
    BlockAny(usize),
}

impl ScopeSel {
    fn get(self) -> Scope {
        match self {
            ScopeSel::Tensor => Scope::Tensor,
            ScopeSel::Row => Scope::Row,
            ScopeSel::Block(n) => Scope::Block(n as usize),
            ScopeSel::BlockAny(n) => Scope::Block(n),
        }
    }
}

/// Mostly a backend this machine runs; sometimes any (which must be refused cleanly).
fn backend(b: u8) -> Backend {
    let supported = Backend::supported();
    if b < 200 {
        supported[b as usize % supported.len()]
    } else {
        Backend::ALL[b as usize % Backend::ALL.len()]
    }
}

#[derive(Arbitrary, Debug)]
enum Call {
    Ternary {
        rows: Dim,
        cols: Dim,
        data: Data,
        layout: u8,
        rule: u8,
        scope: ScopeSel,
        backend: u8,
        x: Data,
    },
    Int8 {
        rows: Dim,
        cols: Dim,
        data: Data,
        layout: u8,
        scope: ScopeSel,
        symmetric: bool,
        clip: Option<u32>,
        percentile: Option<u32>,
        backend: u8,
    },
    Stats {
        reference: Data,
        approx: Data,
        same_len: bool,
        backend: u8,
    },
    TernaryFromBytes {
        bytes: Bytes,
        rows: Dim,
        cols: Dim,
        layout: u8,
        scope: ScopeSel,
        side: Option<Data>,
        x: Data,
        backend: u8,
    },
    Int8FromBytes {
        bytes: Bytes,
        rows: Dim,
        cols: Dim,
        layout: u8,
    },
}

fn same_f32s(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// y = W x on two backends: the same outcome, the same bits.
fn check_gemv(w: &TernaryTensor, x: &[f32], b: Backend) {
    let y = ternary_mat_vec(w, x, b);
    let reference = ternary_mat_vec(w, x, Backend::Scalar);
    match (&y, &reference) {
        (Ok(y), Ok(r)) => {
            assert_eq!(y.len(), w.rows);
            assert!(same_f32s(y, r), "ternary_mat_vec: {b} and scalar differ");
        }
        (Err(_), Err(_)) => {}
        _ if !b.is_supported() => {}
        _ => panic!("ternary_mat_vec: {b} gives {y:?}, scalar {reference:?}"),
    }
}

fn shape_len(rows: usize, cols: usize) -> Option<usize> {
    rows.checked_mul(cols)
}

fn side_scales(t: &TernaryTensor) -> Option<&[f32]> {
    matches!(t.layout, TernaryLayout::BitnetHf | TernaryLayout::Codes).then_some(t.scales.as_slice())
}

fuzz_target!(|call: Call| {
    match call {
        Call::Ternary { rows, cols, data, layout, rule, scope, backend: b, x } => {
            let (rows, cols) = (rows.get(), cols.get());
            let data = data.values(shape_len(rows, cols));
            let layout = TernaryLayout::ALL[layout as usize % TernaryLayout::ALL.len()];
            let rule = ScaleRule::ALL[rule as usize % ScaleRule::ALL.len()];
            let b = backend(b);
            let opts = TernaryOptions { layout, rule, scope: scope.get(), backend: b };
            let _ = opts.validate();
            let Ok(t) = quantize_ternary(&data, rows, cols, &opts) else { return };
            assert_eq!(Ok(t.bytes.len()), layout.data_bytes(rows, cols));
            assert_eq!(t.scales.len(), opts.scope.count(rows, cols));
            let scalar = quantize_ternary(&data, rows, cols, &TernaryOptions { backend: Backend::Scalar, ..opts })
                .expect("scalar refuses what another backend quantized");
            assert_eq!(t.bytes, scalar.bytes, "quantize_ternary: {b} and scalar bytes differ");
            assert!(same_f32s(&t.scales, &scalar.scales), "quantize_ternary: {b} and scalar scales differ");
            assert_eq!(t.dequantize().len(), rows * cols);
            let back = TernaryTensor::from_bytes(t.bytes.clone(), rows, cols, layout, t.scope, side_scales(&t))
                .unwrap_or_else(|e| panic!("quantized bytes do not read back: {e}"));
            assert_eq!(back.codes(), t.codes());
            assert!(same_f32s(&back.scales, &t.scales));
            check_gemv(&t, &x.values(Some(cols)), b);
        }
        Call::Int8 { rows, cols, data, layout, scope, symmetric, clip, percentile, backend: b } => {
            let (rows, cols) = (rows.get(), cols.get());
            let data = data.values(shape_len(rows, cols));
            let b = backend(b);
            let opts = Int8Options {
                layout: Int8Layout::ALL[layout as usize % Int8Layout::ALL.len()],
                scope: scope.get(),
                symmetric,
                clip: clip.map(f32::from_bits),
                percentile: percentile.map(|p| if p < 1000 { p as f32 / 10.0 } else { f32::from_bits(p) }),
                backend: b,
            };
            let _ = opts.validate();
            let Ok(q) = quantize_int8(&data, rows, cols, &opts) else { return };
            let scalar = quantize_int8(&data, rows, cols, &Int8Options { backend: Backend::Scalar, ..opts })
                .expect("scalar refuses what another backend quantized");
            assert_eq!(q.values, scalar.values, "quantize_int8: {b} and scalar values differ");
            assert_eq!(q.bytes, scalar.bytes, "quantize_int8: {b} and scalar bytes differ");
            assert!(same_f32s(&q.scales, &scalar.scales));
            assert_eq!(q.zero_points, scalar.zero_points);
            assert_eq!(q.values.len(), rows * cols);
            assert_eq!(q.dequantize().len(), rows * cols);
            let _ = q.stored_bytes();
            if opts.layout != Int8Layout::Plain {
                let back = Int8Tensor::from_bytes(q.bytes.clone(), rows, cols, opts.layout)
                    .unwrap_or_else(|e| panic!("int8 bytes do not read back: {e}"));
                assert_eq!(back.values, q.values);
                assert!(same_f32s(&back.scales, &q.scales));
            }
        }
        Call::Stats { reference, approx, same_len, backend: b } => {
            let r = reference.values(None);
            let a = approx.values(same_len.then_some(r.len()));
            let b = backend(b);
            let got = error_stats(&r, &a, b);
            let scalar = error_stats(&r, &a, Backend::Scalar);
            match (&got, &scalar) {
                (Ok(g), Ok(s)) => {
                    let bits = |e: &ternary_quant::ErrorStats| [e.mse, e.rmse, e.max_abs_error, e.snr_db, e.cosine];
                    let same = bits(g)
                        .iter()
                        .zip(bits(s))
                        .all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()));
                    assert!(same, "error_stats: {b} {g:?} and scalar {s:?} differ");
                }
                (Err(_), Err(_)) => {}
                _ if !b.is_supported() => {}
                _ => panic!("error_stats: {b} gives {got:?}, scalar {scalar:?}"),
            }
        }
        Call::TernaryFromBytes { bytes, rows, cols, layout, scope, side, x, backend: b } => {
            let (rows, cols) = (rows.get(), cols.get());
            let layout = TernaryLayout::ALL[layout as usize % TernaryLayout::ALL.len()];
            let scope = scope.get();
            let bytes = bytes.get(layout.data_bytes(rows, cols).ok());
            let side = side.map(|s| s.values(Some(scope.count(rows.min(1 << 16), cols.min(1 << 16)))));
            let Ok(t) = TernaryTensor::from_bytes(bytes, rows, cols, layout, scope, side.as_deref()) else { return };
            assert_eq!(t.codes().len(), rows * cols);
            assert_eq!(t.dequantize().len(), rows * cols);
            let _ = (t.bits_per_weight(), t.compression_vs_f32());
            check_gemv(&t, &x.values(Some(cols)), backend(b));
        }
        Call::Int8FromBytes { bytes, rows, cols, layout } => {
            let (rows, cols) = (rows.get(), cols.get());
            let layout = Int8Layout::ALL[layout as usize % Int8Layout::ALL.len()];
            let size = shape_len(rows, cols).and_then(|n| match layout {
                Int8Layout::Q8_0 => (n / 32).checked_mul(34),
                _ => (n / 256).checked_mul(292),
            });
            let Ok(q) = Int8Tensor::from_bytes(bytes.get(size), rows, cols, layout) else { return };
            assert_eq!(q.values.len(), rows * cols);
            assert_eq!(q.dequantize().len(), rows * cols);
        }
    }
});
