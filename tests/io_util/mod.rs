//! Helpers shared by the model-file tests: in-memory files and a plan runner that does
//! what the JavaScript side does.
#![allow(dead_code)]

use half::{bf16, f16};
use ternary_quant::io::gguf::{write_gguf, GgufTensorOut};
use ternary_quant::io::safetensors::write_header;
use ternary_quant::io::{convert_tensor, read_model, ConversionPlan, GgufValue, ModelHeader};

pub mod xorshift;

/// Deterministic values with a rough bell shape, some exact zeros and a few large ones.
pub fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut next = xorshift::uniform(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    (0..n)
        .map(|i| {
            let v = (next() + next() + next() - 1.5) * 0.08;
            if i % 97 == 0 {
                0.0
            } else if i % 251 == 0 {
                v * 10.0
            } else {
                v
            }
        })
        .collect()
}

/// Asserts that `result` is a malformed-`format` error whose reason mentions `needle`.
pub fn expect_malformed<T: std::fmt::Debug>(result: ternary_quant::Result<T>, format: &str, needle: &str) {
    match result {
        Err(ternary_quant::Error::Malformed { format: f, reason }) if f == format => {
            assert!(reason.contains(needle), "reason {reason:?} should mention {needle:?}")
        }
        other => panic!("expected a malformed-{format} error mentioning {needle:?}, got {other:?}"),
    }
}

/// Asserts that every proper prefix of `bytes`, read by `read(prefix, its length)`, is
/// a malformed file.
pub fn every_prefix_is_malformed<T: std::fmt::Debug>(
    bytes: &[u8],
    read: impl Fn(&[u8], u64) -> ternary_quant::Result<T>,
) {
    for cut in 0..bytes.len() {
        let r = read(&bytes[..cut], cut as u64);
        assert!(matches!(r, Err(ternary_quant::Error::Malformed { .. })), "cut {cut}: {r:?}");
    }
}

/// Sets each of the first `len` bytes of `bytes` in turn to each of `values(byte)` and
/// checks that `read` never panics and fails only with a typed (malformed) error.
pub fn mutations_read_or_are_malformed<T, V: IntoIterator<Item = u8>>(
    bytes: &[u8],
    len: usize,
    values: impl Fn(u8) -> V,
    read: impl Fn(&[u8]) -> ternary_quant::Result<T>,
) {
    for at in 0..len {
        for v in values(bytes[at]) {
            let mut m = bytes.to_vec();
            m[at] = v;
            // Any result but a panic; errors must be typed.
            match read(&m) {
                Ok(_) | Err(ternary_quant::Error::Malformed { .. }) => {}
                Err(e) => panic!("byte {at} = {v}: untyped error {e:?}"),
            }
        }
    }
}

pub fn f32_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| v.to_le_bytes()).collect()
}

pub fn f16_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| f16::from_f32(*v).to_bits().to_le_bytes()).collect()
}

pub fn bf16_bytes(x: &[f32]) -> Vec<u8> {
    x.iter().flat_map(|v| bf16::from_f32(*v).to_bits().to_le_bytes()).collect()
}

pub fn f16_values(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(2).map(|c| f16::from_bits(u16::from_le_bytes([c[0], c[1]])).to_f32()).collect()
}

pub fn f32_values(b: &[u8]) -> Vec<f32> {
    b.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

/// One tensor of a file to build: name, dtype name, row-major shape, bytes.
pub struct T {
    pub name: String,
    pub dtype: &'static str,
    pub shape: Vec<u64>,
    pub bytes: Vec<u8>,
}

pub fn t(name: &str, dtype: &'static str, shape: &[u64], bytes: Vec<u8>) -> T {
    T { name: name.into(), dtype, shape: shape.to_vec(), bytes }
}

/// An F32 tensor of `values(product(shape), seed)`.
pub fn f32_tensor(name: &str, shape: &[u64], seed: u64) -> T {
    let n = shape.iter().product::<u64>() as usize;
    t(name, "F32", shape, f32_bytes(&values(n, seed)))
}

/// A safetensors file, tensors contiguous in the order given.
pub fn safetensors_file(metadata: Option<&[(String, String)]>, tensors: &[T]) -> Vec<u8> {
    let mut at = 0u64;
    let entries: Vec<(&str, &str, &[u64], [u64; 2])> = tensors
        .iter()
        .map(|t| {
            let range = [at, at + t.bytes.len() as u64];
            at = range[1];
            (t.name.as_str(), t.dtype, t.shape.as_slice(), range)
        })
        .collect();
    let mut out = write_header(metadata, &entries);
    for t in tensors {
        out.extend_from_slice(&t.bytes);
    }
    out
}

/// A GGUF file: tensors are (name, ne, ggml type, bytes).
pub fn gguf_file(metadata: &[(String, GgufValue)], tensors: &[(&str, Vec<u64>, u32, Vec<u8>)], align: u32) -> Vec<u8> {
    let outs: Vec<GgufTensorOut> = tensors
        .iter()
        .map(|(name, ne, ty, bytes)| GgufTensorOut {
            name: name.to_string(),
            ne: ne.clone(),
            ggml_type: *ty,
            byte_len: bytes.len() as u64,
        })
        .collect();
    let layout = write_gguf(metadata, &outs, align).unwrap();
    let mut out = layout.header.clone();
    out.resize(layout.total as usize, 0);
    for ((_, _, _, bytes), offset) in tensors.iter().zip(&layout.offsets) {
        out[*offset as usize..*offset as usize + bytes.len()].copy_from_slice(bytes);
    }
    out
}

pub fn header(bytes: &[u8]) -> ModelHeader {
    read_model(bytes, bytes.len() as u64).unwrap()
}

/// Runs a plan as the JavaScript side does: the header, then each op's output at its
/// offset (copies copied, the rest converted) in a zero-filled file of the planned size.
/// Checks that ops are in order and do not overlap.
pub fn run(plan: &ConversionPlan, inputs: &[&[u8]]) -> ternary_quant::Result<Vec<u8>> {
    let mut out = vec![0u8; plan.output_size as usize];
    out[..plan.header.len()].copy_from_slice(&plan.header);
    let mut last_end = plan.header.len() as u64;
    for op in &plan.ops {
        assert!(op.output_offset >= last_end, "op {} starts before the previous op ends", op.name);
        last_end = op.output_offset + op.output_length;
        let mut input = Vec::new();
        for r in &op.inputs {
            input.extend_from_slice(&inputs[r.file][r.offset as usize..(r.offset + r.length) as usize]);
        }
        let bytes = if op.copies_bytes() { input } else { convert_tensor(op, &input, false)?.bytes };
        assert_eq!(bytes.len() as u64, op.output_length, "op {}", op.name);
        let at = op.output_offset as usize;
        out[at..at + bytes.len()].copy_from_slice(&bytes);
    }
    assert!(last_end <= plan.output_size);
    Ok(out)
}
