//! The BitLinear forward pass, y = W x, on ternary weights and int8 activations.
//!
//! For TQ2_0 weights, x is quantized to Q8_K (one scale per 256 values) and
//! `y[r] = sum over blocks b of (d_w[b] * d_x[b]) * isum_b`. For the other layouts, x
//! is quantized per token (one symmetric scale `d_x`) and
//! `y[r] = d_x * sum over the row's scopes s of scale_s * isum_s`. Every integer sum is exact, and the f32 sums run in
//! block order on every backend.

use crate::error::{Error, Result};
use crate::kernels::Backend;
use crate::layout::blocks::{as_blocks, BlockQ8K, BlockTq2_0, QK_K};
use crate::layout::TernaryLayout;
use crate::scheme::ternary::TernaryTensor;
use crate::scheme::{check_finite, check_input, check_shape};

/// y = W x for ternary W.
pub fn ternary_mat_vec(w: &TernaryTensor, x: &[f32], backend: Backend) -> Result<Vec<f32>> {
    let k = backend.kernels().ok_or_else(|| Error::Unsupported(format!("backend {backend} on this machine")))?;
    check_input(k, x, 1, w.cols, "x")?;
    let mut y = vec![0f32; w.rows];
    if w.layout == TernaryLayout::Tq2_0 {
        let mut xq = vec![BlockQ8K::default(); w.cols / QK_K];
        (k.quantize_q8_k)(x, &mut xq);
        (k.gemv_tq2_0_q8_k)(as_blocks::<BlockTq2_0>(&w.bytes), &xq, &mut y);
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
