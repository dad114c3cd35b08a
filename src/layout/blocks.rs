//! `#[repr(C)]` block types of the ggml layouts, each byte-compatible with ggml's.
//!
//! The weight-side blocks hold their f16 scale as two little-endian bytes, so the
//! block has alignment 1 and any `&[u8]` of the right length is a valid `&[Block]`
//! (JavaScript hands over unaligned byte buffers).

use half::f16;

/// Values per super-block of the K-quant family (TQ1_0, TQ2_0, Q8_K).
pub const QK_K: usize = 256;
/// Values per Q8_0 block.
pub const QK8_0: usize = 32;

/// TQ2_0 (ggml type 35): 2 bits per value, codes c = q + 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockTq2_0 {
    pub qs: [u8; QK_K / 4],
    pub d: [u8; 2],
}

/// TQ1_0 (ggml type 34): five base-3 digits per byte, plus four per byte in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockTq1_0 {
    pub qs: [u8; (QK_K - 4 * QK_K / 64) / 5],
    pub qh: [u8; QK_K / 64],
    pub d: [u8; 2],
}

/// Q8_0 (ggml type 8): f16 scale then 32 signed bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockQ8_0 {
    pub d: [u8; 2],
    pub qs: [i8; QK8_0],
}

/// Q8_K (ggml type 15): the activation side of the TQ dot product. `bsums[j]` is the
/// sum of `qs[16j..16j+16]`, which lets the dot product use unsigned codes c = q + 1.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8K {
    pub d: f32,
    pub qs: [i8; QK_K],
    pub bsums: [i16; QK_K / 16],
}

/// Sixteen rows' TQ2_0 blocks of one block column, interleaved for a GEMV by table
/// lookup: `qs[j][r]` is byte j of row r's block and `d[r]` that block's scale as f32.
/// A byte keeps its four 2-bit codes where TQ2_0 has them, so its low nibble holds the
/// codes of values m and m + 32 of its half (j = 32 * half + m) as c0 + 4 * c1, and its
/// high nibble those of values m + 64 and m + 96: a nibble indexes a 16-entry table of a
/// pair of activations. Made by `gemv::interleave_tq2_0` alone, which leaves out code 3,
/// so a nibble's two codes stand for q in {-1, 0, 1}.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockTq2_0x16 {
    pub(crate) qs: [[u8; 16]; QK_K / 4],
    pub(crate) d: [f32; 16],
}

const _: () = assert!(core::mem::size_of::<BlockTq2_0x16>() == 16 * 64 + 4 * 16);

const _: () = assert!(core::mem::size_of::<BlockTq2_0>() == 66);
const _: () = assert!(core::mem::align_of::<BlockTq2_0>() == 1);
const _: () = assert!(core::mem::size_of::<BlockTq1_0>() == 54);
const _: () = assert!(core::mem::align_of::<BlockTq1_0>() == 1);
const _: () = assert!(core::mem::size_of::<BlockQ8_0>() == 34);
const _: () = assert!(core::mem::align_of::<BlockQ8_0>() == 1);
const _: () = assert!(core::mem::size_of::<BlockQ8K>() == 292);

impl Default for BlockQ8K {
    fn default() -> Self {
        Self { d: 0.0, qs: [0; QK_K], bsums: [0; QK_K / 16] }
    }
}

impl BlockQ8K {
    /// The ggml byte image: `d` (f32 LE), `qs`, `bsums` (i16 LE).
    pub fn write_bytes(&self, out: &mut [u8]) {
        out[..4].copy_from_slice(&self.d.to_le_bytes());
        for (o, &q) in out[4..4 + QK_K].iter_mut().zip(&self.qs) {
            *o = q as u8;
        }
        for (o, s) in out[4 + QK_K..292].chunks_exact_mut(2).zip(&self.bsums) {
            o.copy_from_slice(&s.to_le_bytes());
        }
    }

    /// Reads the ggml byte image written by [`BlockQ8K::write_bytes`].
    pub fn read_bytes(bytes: &[u8]) -> Self {
        let mut block = Self { d: f32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]), ..Self::default() };
        for (q, &b) in block.qs.iter_mut().zip(&bytes[4..4 + QK_K]) {
            *q = b as i8;
        }
        for (s, b) in block.bsums.iter_mut().zip(bytes[4 + QK_K..292].chunks_exact(2)) {
            *s = i16::from_le_bytes([b[0], b[1]]);
        }
        block
    }
}

/// Marker for block types whose every bit pattern is valid and whose alignment is 1.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain only `u8`/`i8` arrays, and have alignment 1.
pub unsafe trait ByteBlock: Copy {}
// SAFETY: each is repr(C), made of u8/i8 arrays only; the const asserts above pin align 1.
unsafe impl ByteBlock for BlockTq2_0 {}
// SAFETY: as above.
unsafe impl ByteBlock for BlockTq1_0 {}
// SAFETY: as above.
unsafe impl ByteBlock for BlockQ8_0 {}

/// Views bytes as blocks. `bytes.len()` must be a multiple of the block size.
pub fn as_blocks<B: ByteBlock>(bytes: &[u8]) -> &[B] {
    let size = core::mem::size_of::<B>();
    assert!(bytes.len().is_multiple_of(size), "byte length not a multiple of the block size");
    // SAFETY: B has alignment 1, every bit pattern is valid (ByteBlock), and the length
    // is an exact multiple of size_of::<B>(), so the view covers exactly `bytes`.
    unsafe { core::slice::from_raw_parts(bytes.as_ptr().cast::<B>(), bytes.len() / size) }
}

/// Mutable form of [`as_blocks`].
pub fn as_blocks_mut<B: ByteBlock>(bytes: &mut [u8]) -> &mut [B] {
    let size = core::mem::size_of::<B>();
    assert!(bytes.len().is_multiple_of(size), "byte length not a multiple of the block size");
    // SAFETY: as in `as_blocks`; the exclusive borrow of `bytes` is carried over.
    unsafe { core::slice::from_raw_parts_mut(bytes.as_mut_ptr().cast::<B>(), bytes.len() / size) }
}

/// f32 -> f16 bits, round to nearest even (as numpy's astype(float16) and ggml).
#[inline]
pub fn f16_bits(x: f32) -> [u8; 2] {
    f16::from_f32(x).to_bits().to_le_bytes()
}

/// f16 bits -> f32 (exact).
#[inline]
pub fn f16_value(bits: [u8; 2]) -> f32 {
    f16::from_bits(u16::from_le_bytes(bits)).to_f32()
}
