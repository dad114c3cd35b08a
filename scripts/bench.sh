#!/usr/bin/env bash
# Every benchmark, one after the other, for the README's tables:
#   1. native kernels per backend (criterion: quantize, pack, Q8_0, dot, GEMV, scans);
#   2. the wasm kernels under Node's WASI, built with SIMD128 and without;
#   3. the npm package in Node: wasm SIMD128 against wasm scalar against plain JS, and
#      ternary GEMV against f32 GEMV (scripts/bench-node.mjs);
#   4. the CLI converting a ~90 MB F32 model (scripts/bench-convert.sh).
# Benchmarks are single-threaded; run them on an otherwise idle machine.
set -euo pipefail
LOG_NAME=bench
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log "native kernels (cargo bench --bench kernels)"
cargo bench --bench kernels

runner="node --no-warnings scripts/wasi-run.mjs"
log "wasm kernels, SIMD128 build"
CARGO_TARGET_DIR=target/bench-wasi-simd CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128" \
    cargo build --quiet --release --target wasm32-wasip1 --example wasm_kernel_bench
$runner target/bench-wasi-simd/wasm32-wasip1/release/examples/wasm_kernel_bench.wasm quantize dot gemv
log "wasm kernels, scalar build"
RUSTFLAGS="" CARGO_TARGET_DIR=target/bench-wasi-scalar \
    cargo build --quiet --release --target wasm32-wasip1 --example wasm_kernel_bench
$runner target/bench-wasi-scalar/wasm32-wasip1/release/examples/wasm_kernel_bench.wasm quantize dot gemv

[ -f pkg/package.json ] || bash scripts/build.sh
log "the npm package in Node (scripts/bench-node.mjs)"
node --no-liftoff scripts/bench-node.mjs
log "model conversion (scripts/bench-convert.sh)"
bash scripts/bench-convert.sh
