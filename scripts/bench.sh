#!/usr/bin/env bash
# Every benchmark, one after the other, for the README's tables:
#   1. native kernels per backend (criterion: quantize, pack, Q8_0, dot, GEMV, scans);
#   2. the wasm kernels under Node's WASI, built with relaxed SIMD, with SIMD128 and
#      without;
#   3. the npm package in Node: wasm SIMD128 against wasm scalar against plain JS, and
#      ternary GEMV against f32 GEMV (scripts/bench-node.mjs);
#   4. the CLI converting a ~90 MB F32 model (scripts/bench-convert.sh), and the demo page
#      converting the same model in headless Chromium on 1 and on 2 workers
#      (scripts/bench-demo.mjs);
#   5. side by side with ggml in this same run (scripts/bench-report.mjs prints the table):
#      the machine's single-core read bandwidth, then the same cases on the same generated
#      4096 x 4096 data, ours and ggml's, natively and in wasm (relaxed SIMD, SIMD128
#      and scalar; ggml has no relaxed build).
# Benchmarks are single-threaded; run them on an otherwise idle machine. Absolute figures
# belong to the machine that ran them; the ratios are what carries across machines.
#
# Step 5 needs ggml's kernels, which this repository does not carry: GGML_HARNESS is a
# folder built by scripts/ggml-harness/build.sh from a checkout of ggml-org/ggml at the
# commit pinned there (d99724f2b141fed9e1a9f402213506c081433465):
#   bash scripts/ggml-harness/build.sh ../ggml ../ggml-harness
#   GGML_HARNESS=../ggml-harness bash scripts/bench.sh
# It holds ggml's own test-quantize-perf and our harness (scripts/ggml-harness/harness.c),
# natively and for wasm32-wasi with SIMD128 and without. The harness generates the data
# exactly as wasm_kernel_bench's `weights()` does, prints `DATA ggml <build> <checksum>`
# (the sum of the values' bits; the report refuses runs on different data), and one
# `RESULT ggml <build> <case> <G values/s>` line per case, the best of the runs:
#   quantize_tq2_0_absmax_block  quantize_row_tq2_0_ref, row by row
#   quantize_q8_k, quantize_q8_0 the CPU backend's from_float (its SIMD path)
#   ..._ref                      quantize_row_q8_K_ref / quantize_row_q8_0_ref
#   gemv_tq2_0                   the activations to Q8_K, then the TQ2_0 x Q8_K vec_dot per row
#   f32_to_f16, gemv_f32         ggml_cpu_fp32_to_fp16, the F32 vec_dot per row (native only)
# Without GGML_HARNESS, step 5 times our side alone.
set -euo pipefail
LOG_NAME=bench
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

log "native kernels (cargo bench --bench kernels)"
cargo bench --bench kernels

runner="node --no-warnings scripts/wasi-run.mjs"
# One initial memory of 1 GiB and no growth: Node 20's WASI keeps using a memory's old
# backing store after memory.grow moves it, which has crashed the process. Steps 2 and 5
# share these builds.
wasi_flags="-C link-arg=--initial-memory=1073741824"
# Node 20 has relaxed SIMD behind a flag.
relaxed_runner="node --no-warnings --experimental-wasm-relaxed-simd scripts/wasi-run.mjs"
log "wasm kernels, relaxed-SIMD build"
CARGO_TARGET_DIR=target/bench-wasi-relaxed CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128 $wasi_flags" \
    cargo build --quiet --release --target wasm32-wasip1 --example wasm_kernel_bench --features relaxed-simd
$relaxed_runner target/bench-wasi-relaxed/wasm32-wasip1/release/examples/wasm_kernel_bench.wasm quantize dot gemv
log "wasm kernels, SIMD128 build"
CARGO_TARGET_DIR=target/bench-wasi-simd CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128 $wasi_flags" \
    cargo build --quiet --release --target wasm32-wasip1 --example wasm_kernel_bench
$runner target/bench-wasi-simd/wasm32-wasip1/release/examples/wasm_kernel_bench.wasm quantize dot gemv
log "wasm kernels, scalar build"
CARGO_TARGET_DIR=target/bench-wasi-scalar CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="$wasi_flags" \
    cargo build --quiet --release --target wasm32-wasip1 --example wasm_kernel_bench
$runner target/bench-wasi-scalar/wasm32-wasip1/release/examples/wasm_kernel_bench.wasm quantize dot gemv

[ -f pkg/package.json ] || bash scripts/build.sh
log "the npm package in Node (scripts/bench-node.mjs)"
node --no-liftoff scripts/bench-node.mjs
log "model conversion (scripts/bench-convert.sh)"
bash scripts/bench-convert.sh
log "the demo page converting on 1 and 2 workers (scripts/bench-demo.mjs)"
bash scripts/build-www.sh
node scripts/bench-demo.mjs

log "side by side with ggml (GGML_HARNESS=${GGML_HARNESS:-unset})"
side_log="target/bench-side-by-side.log"
: >"$side_log"
cargo build --quiet --release --example wasm_kernel_bench
./target/release/examples/wasm_kernel_bench --side-by-side --bandwidth | tee -a "$side_log"
$runner target/bench-wasi-simd/wasm32-wasip1/release/examples/wasm_kernel_bench.wasm --side-by-side --bandwidth \
    | tee -a "$side_log"
$relaxed_runner target/bench-wasi-relaxed/wasm32-wasip1/release/examples/wasm_kernel_bench.wasm --side-by-side \
    | tee -a "$side_log"
$runner target/bench-wasi-scalar/wasm32-wasip1/release/examples/wasm_kernel_bench.wasm --side-by-side | tee -a "$side_log"
if [ -n "${GGML_HARNESS:-}" ]; then
    # ggml's own benchmark of the same kernels, on its own data, for reference.
    "$GGML_HARNESS/test-quantize-perf" --type tq2_0 --type q8_0 --size 16777216 -i 5
    "$GGML_HARNESS/harness-native" 7 | tee -a "$side_log"
    $runner "$GGML_HARNESS/harness-simd.wasm" 7 | tee -a "$side_log"
    $runner "$GGML_HARNESS/harness-scalar.wasm" 7 | tee -a "$side_log"
fi
node scripts/bench-report.mjs "$side_log"
