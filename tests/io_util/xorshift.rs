//! The uniform draws behind the generated test and benchmark data: xorshift64 from a
//! given state, each draw an f32 in [0, 1) from the top 24 bits. Used by the model-file
//! tests' `io_util`, and by `benches/kernels.rs` and `examples/wasm_kernel_bench.rs`
//! through `#[path]`.

/// Uniform f32 draws in [0, 1) from the xorshift64 `state` (non-zero).
pub fn uniform(mut state: u64) -> impl FnMut() -> f32 {
    move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 40) as f32 / (1u64 << 24) as f32
    }
}
