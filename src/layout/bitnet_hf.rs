//! The transformers BitNet packing (`autobitlinear`/`offline`).
//!
//! A weight `[out, in]` becomes U8 `[R, in]` with R = ceil(out / 4): row `i*R + r`
//! lands in packed row r at bits 2i..2i+1, as codes c = q + 1. Rows past `out` (when
//! `out % 4 != 0`) are zero bits, exactly as transformers' `pack_weights` leaves them;
//! `unpack_weights` reads those as -1, so readers slice back to `out` rows.

use crate::kernels::{CodeRule, Kernels};

/// Packed row count for `rows` weight rows.
pub fn packed_rows(rows: usize) -> usize {
    rows.div_ceil(4)
}

/// Quantizes and packs a row-major `[rows, cols]` tensor with one code rule.
pub fn pack(k: &Kernels, data: &[f32], rows: usize, cols: usize, rule: CodeRule, out: &mut [u8]) {
    let packed = packed_rows(rows);
    for (r, out_row) in out.chunks_exact_mut(cols).enumerate().take(packed) {
        let mut sources: [&[f32]; 4] = [&[]; 4];
        let mut count = 0;
        for i in 0..4 {
            let row = i * packed + r;
            if row < rows {
                sources[count] = &data[row * cols..(row + 1) * cols];
                count += 1;
            }
        }
        (k.pack_bitnet_hf_row)(&sources[..count], rule, out_row);
    }
}

/// Codes q of the first `rows` unpacked rows. Returns the first invalid stored code (bits
/// 11) as (value index, 3) if any.
pub fn unpack(bytes: &[u8], rows: usize, cols: usize, out: &mut [i8]) -> Option<(usize, i32)> {
    let packed = packed_rows(rows);
    let mut bad = None;
    for (r, packed_row) in bytes.chunks_exact(cols).enumerate().take(packed) {
        for i in 0..4 {
            let row = i * packed + r;
            if row >= rows {
                break;
            }
            for (k, &b) in packed_row.iter().enumerate() {
                let c = (b >> (2 * i)) & 3;
                let index = row * cols + k;
                if c == 3 && !matches!(bad, Some((first, _)) if first < index) {
                    bad = Some((index, 3));
                }
                out[index] = c as i8 - 1;
            }
        }
    }
    bad
}
