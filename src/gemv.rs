//! The BitLinear forward pass, y = W x, on ternary weights and int8 activations.
//!
//! For TQ2_0 weights, x is quantized to Q8_K (one scale per 256 values) and
//! `y[r] = sum over blocks b of (d_w[b] * d_x[b]) * isum_b`. For the other layouts, x
//! is quantized per token (one symmetric scale `d_x`) and
//! `y[r] = d_x * sum over the row's scopes s of scale_s * isum_s`. Every integer sum is exact, and the f32 sums run in
//! block order on every backend.

use crate::error::{Error, Result};
use crate::kernels::Backend;
use crate::layout::blocks::{as_blocks, f16_value, BlockQ8K, BlockTq2_0, BlockTq2_0x16, QK_K};
use crate::layout::TernaryLayout;
use crate::scheme::ternary::TernaryTensor;
use crate::scheme::{check_finite, check_input, check_shape};

/// y = W x for ternary W.
pub fn ternary_mat_vec(w: &TernaryTensor, x: &[f32], backend: Backend) -> Result<Vec<f32>> {
    mat_vec_with(w, &[], x, backend)
}

/// Ternary weights together with the form of them that a backend's GEMV reads fastest,
/// made once for the many products of inference (as ggml repacks weights when it loads
/// them). With the SIMD128 backend and TQ2_0 weights, that is the rows interleaved by
/// 16 ([`BlockTq2_0x16`]: a copy 1.03 times the tensor's bytes, held beside the tensor),
/// which a GEMV by table lookup reads; every other backend and layout reads the tensor itself. The results are
/// those of [`ternary_mat_vec`], bit for bit.
#[derive(Clone, Debug)]
pub struct PreparedWeights {
    tensor: TernaryTensor,
    backend: Backend,
    interleaved: Vec<BlockTq2_0x16>,
}

impl PreparedWeights {
    /// Prepares `tensor` for GEMVs on `backend`.
    pub fn new(tensor: TernaryTensor, backend: Backend) -> Result<Self> {
        backend.kernels().ok_or_else(|| Error::Unsupported(format!("backend {backend} on this machine")))?;
        let interleaved = interleaved_for(&tensor, backend);
        Ok(Self { tensor, backend, interleaved })
    }

    /// y = W x, as [`ternary_mat_vec`] on the backend the weights were prepared for.
    pub fn mat_vec(&self, x: &[f32]) -> Result<Vec<f32>> {
        mat_vec_with(&self.tensor, &self.interleaved, x, self.backend)
    }

    /// The tensor.
    pub fn tensor(&self) -> &TernaryTensor {
        &self.tensor
    }

    /// The tensor, with the prepared form dropped.
    pub fn into_tensor(self) -> TernaryTensor {
        self.tensor
    }

    /// Bytes held beside the tensor's own.
    pub fn extra_bytes(&self) -> usize {
        core::mem::size_of_val(self.interleaved.as_slice())
    }
}

/// The interleaved rows that `backend`'s GEMV reads instead of `w`'s TQ2_0 rows, or
/// nothing where it reads those rows (other backends and layouts, fewer than 16 rows, a
/// code 3, no memory to spare).
pub(crate) fn interleaved_for(w: &TernaryTensor, backend: Backend) -> Vec<BlockTq2_0x16> {
    // Natively the row kernels are faster than lookups (VNNI, or AVX2's multiply-adds on
    // 32 bytes), and relaxed SIMD's row kernel is as fast as them.
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if backend == Backend::Simd128 && w.layout == TernaryLayout::Tq2_0 && w.rows >= 16 {
        let blocks = as_blocks::<BlockTq2_0>(&w.bytes);
        return interleave_tq2_0(blocks, w.cols / QK_K).unwrap_or_default();
    }
    let _ = (w, backend);
    Vec::new()
}

/// The rows of `blocks` (`per_row` blocks each) in groups of 16 as [`BlockTq2_0x16`],
/// group after group, each group's block columns in order; rows past the last whole group
/// are left out. `None` when a block holds the code 3 (no quantizer writes it; TQ2_0
/// reads it as q = 2, which the lookup tables leave out) or when the memory cannot be had.
/// A one-off preparation, written for size (it goes into every SIMD128 .wasm): squares of
/// four rows by four bytes transposed in 32-bit words, in a loop that LLVM is kept from
/// unrolling (unrolled, it is a kilobyte of lane stores).
#[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(dead_code))]
pub(crate) fn interleave_tq2_0(blocks: &[BlockTq2_0], per_row: usize) -> Option<Vec<BlockTq2_0x16>> {
    if per_row == 0 {
        return Some(Vec::new());
    }
    let groups = blocks.len() / per_row / 16;
    let mut out = Vec::new();
    out.try_reserve_exact(groups * per_row).ok()?;
    // A 2-bit field is 3 where both of its bits are set: `both` gathers the bits.
    let mut both = 0u32;
    for group in blocks[..16 * groups * per_row].chunks_exact(16 * per_row) {
        for b in 0..per_row {
            let row = |r: usize| &group[r * per_row + b];
            let mut block = BlockTq2_0x16 { qs: [[0; 16]; QK_K / 4], d: [0.0; 16] };
            for (r, d) in block.d.iter_mut().enumerate() {
                *d = f16_value(row(r).d);
            }
            let mut square = core::hint::black_box(0);
            while square < 64 {
                let (r0, j0) = (square / 16 * 4, square % 16 * 4);
                let [w0, w1, w2, w3] = [0, 1, 2, 3].map(|k| {
                    let q = &row(r0 + k).qs;
                    u32::from_le_bytes([q[j0], q[j0 + 1], q[j0 + 2], q[j0 + 3]])
                });
                both |= (w0 & (w0 >> 1)) | (w1 & (w1 >> 1)) | (w2 & (w2 >> 1)) | (w3 & (w3 >> 1));
                // Bytes 0 and 2 of rows r0, r0 + 1 side by side, then bytes 1 and 3; likewise
                // rows r0 + 2, r0 + 3; then the halves put together.
                const EVEN: u32 = 0x00ff_00ff;
                let (a, c) = ((w0 & EVEN) | ((w1 & EVEN) << 8), (w2 & EVEN) | ((w3 & EVEN) << 8));
                let (e, f) = (((w0 >> 8) & EVEN) | (w1 & !EVEN), ((w2 >> 8) & EVEN) | (w3 & !EVEN));
                let columns = [
                    (a & 0xffff) | (c << 16),
                    (e & 0xffff) | (f << 16),
                    (a >> 16) | (c & 0xffff_0000),
                    (e >> 16) | (f & 0xffff_0000),
                ];
                for (jj, word) in columns.into_iter().enumerate() {
                    block.qs[j0 + jj][r0..r0 + 4].copy_from_slice(&word.to_le_bytes());
                }
                square += 1;
            }
            out.push(block);
        }
    }
    (both & 0x5555_5555 == 0).then_some(out)
}

/// y = W x, with the rows that `interleaved` holds (the first 16 * groups) read from it.
pub(crate) fn mat_vec_with(
    w: &TernaryTensor,
    interleaved: &[BlockTq2_0x16],
    x: &[f32],
    backend: Backend,
) -> Result<Vec<f32>> {
    let k = backend.kernels().ok_or_else(|| Error::Unsupported(format!("backend {backend} on this machine")))?;
    check_input(k, x, 1, w.cols, "x")?;
    let mut y = vec![0f32; w.rows];
    if w.layout == TernaryLayout::Tq2_0 {
        let per_row = w.cols / QK_K;
        let mut xq = vec![BlockQ8K::default(); per_row];
        (k.quantize_q8_k)(x, &mut xq);
        let blocks = as_blocks::<BlockTq2_0>(&w.bytes);
        #[cfg_attr(not(all(target_arch = "wasm32", target_feature = "simd128")), allow(unused_mut))]
        let mut done = 0;
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        if per_row > 0 && !interleaved.is_empty() {
            done = 16 * (interleaved.len() / per_row);
            (k.gemv_tq2_0x16_q8_k)(interleaved, &xq, &mut y[..done]);
        }
        #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
        debug_assert!(interleaved.is_empty());
        if done < w.rows {
            (k.gemv_tq2_0_q8_k)(&blocks[done * per_row..], &xq, &mut y[done..]);
        }
        return Ok(y);
    }
    let d_x = (k.abs_max)(x) / 127.0;
    let id = if d_x == 0.0 { 0.0 } else { 1.0 / d_x };
    let mut xq = vec![0i8; w.cols];
    (k.quantize_i8_symmetric)(x, id, f32::INFINITY, &mut xq);
    let unpacked;
    let codes: &[i8] = if w.layout == TernaryLayout::Codes {
        // SAFETY: i8 and u8 share size, alignment and validity; the view borrows w.bytes.
        unsafe { core::slice::from_raw_parts(w.bytes.as_ptr().cast::<i8>(), w.bytes.len()) }
    } else {
        unpacked = w.codes();
        &unpacked
    };
    let span = w.scope.span(w.rows, w.cols);
    let segment = span.min(w.cols);
    for (r, (yr, row)) in y.iter_mut().zip(codes.chunks_exact(w.cols)).enumerate() {
        let mut acc = 0f32;
        for (s, (wc, xc)) in row.chunks(segment).zip(xq.chunks(segment)).enumerate() {
            let scale = w.scales[(r * w.cols + s * segment) / span];
            acc += scale * (k.dot_codes_i8)(wc, xc) as f32;
        }
        *yr = acc * d_x;
    }
    Ok(y)
}

/// y = W x in f32, the reference that ternary GEMV is compared with.
pub fn mat_vec_f32(w: &[f32], rows: usize, cols: usize, x: &[f32], backend: Backend) -> Result<Vec<f32>> {
    let k = backend.kernels().ok_or_else(|| Error::Unsupported(format!("backend {backend} on this machine")))?;
    check_shape(w, rows, cols, "weights")?;
    check_input(k, x, 1, cols, "x")?;
    // Each row is checked right before its dot product, while it is in cache: one pass
    // over the weights, as the ternary GEMV makes.
    let mut y = Vec::with_capacity(rows);
    for (r, row) in w.chunks_exact(cols).enumerate() {
        check_finite(k, row, r * cols, "weights")?;
        y.push((k.dot_f32)(row, x));
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheme::ternary::{quantize_ternary, ScaleRule, TernaryOptions};
    use crate::scheme::Scope;

    fn tq2_0_tensor(rows: usize, cols: usize, backend: Backend) -> TernaryTensor {
        let w: Vec<f32> = (0..rows * cols).map(|i| ((i * 7919 % 1013) as f32 - 506.0) * 0.01).collect();
        let opts = TernaryOptions {
            layout: TernaryLayout::Tq2_0,
            rule: ScaleRule::AbsMean,
            scope: Scope::Block(256),
            backend,
        };
        quantize_ternary(&w, rows, cols, &opts).expect("valid weights")
    }

    /// Prepared weights multiply as the tensor does, bit for bit, on every backend: the
    /// interleaved groups where the backend has them, the rows past the last group, a
    /// tensor with a code 3 (left unprepared), and a tensor of fewer than 16 rows.
    #[test]
    fn prepared_weights_multiply_as_the_tensor() {
        for backend in Backend::supported() {
            let x: Vec<f32> = (0..512).map(|i| ((i * 31 % 97) as f32 - 48.0) * 0.1).collect();
            let mut with_3 = tq2_0_tensor(16, 512, backend);
            with_3.bytes[5] |= 3 << 4;
            for w in [tq2_0_tensor(37, 512, backend), tq2_0_tensor(15, 512, backend), with_3] {
                let (rows, code_3) = (w.rows, w.bytes[5] & 0x30 == 0x30);
                let want = ternary_mat_vec(&w, &x, backend).unwrap();
                let prepared = PreparedWeights::new(w, backend).unwrap();
                let interleaved = cfg!(target_arch = "wasm32") && backend == Backend::Simd128 && rows >= 16 && !code_3;
                assert_eq!(prepared.extra_bytes() > 0, interleaved, "{backend}, {rows} rows");
                let got = prepared.mat_vec(&x).unwrap();
                let bits = |y: &[f32]| y.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&got), bits(&want), "{backend}, {rows} rows");
                assert!(prepared.mat_vec(&x[1..]).is_err(), "a short x is an error");
            }
        }
    }
}
