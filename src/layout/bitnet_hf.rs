//! The transformers BitNet packing (`autobitlinear`/`offline`).
//!
//! A weight `[out, in]` becomes U8 `[R, in]` with R = ceil(out / 4): row `i*R + r`
//! lands in packed row r at bits 2i..2i+1, as codes c = q + 1. Rows past `out` (when
//! `out % 4 != 0`) are zero bits, exactly as transformers' `pack_weights` leaves them;
//! `unpack_weights` reads those as -1, so readers slice back to `out` rows.

/// The weight rows that share packed row `r`, in bit order (`i*R + r` at bits 2i..2i+1),
/// as row indices below `rows`.
pub fn rows_of_packed_row(rows: usize, r: usize) -> impl Iterator<Item = usize> {
    let packed = packed_rows(rows);
    (0..4).map(move |i| i * packed + r).take_while(move |&row| row < rows)
}

/// Packed row count for `rows` weight rows.
pub fn packed_rows(rows: usize) -> usize {
    rows.div_ceil(4)
}

/// Codes q of the first `rows` unpacked rows. Returns the first invalid stored code (bits
/// 11) as (value index, 3) if any.
pub fn unpack(bytes: &[u8], rows: usize, cols: usize, out: &mut [i8]) -> Option<(usize, i32)> {
    let packed = packed_rows(rows);
    let mut bad = None;
    for (r, packed_row) in bytes.chunks_exact(cols).enumerate().take(packed) {
        for (i, row) in rows_of_packed_row(rows, r).enumerate() {
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
