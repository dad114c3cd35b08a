#!/usr/bin/env bash
# Builds ggml's side of the side-by-side benchmark (scripts/bench.sh, step 5) outside this
# repository: test-quantize-perf and harness-native from a native ggml build, and
# harness-simd.wasm / harness-scalar.wasm for wasm32-wasi from ggml's quantization sources.
#
# Usage: scripts/ggml-harness/build.sh GGML_SRC OUT_DIR
#   GGML_SRC  a checkout of https://github.com/ggml-org/ggml at the commit below
#   OUT_DIR   where the builds go (then: GGML_HARNESS=OUT_DIR bash scripts/bench.sh)
# Needs cmake, clang, lld and Debian's wasi-libc and libclang-rt-*-dev-wasm32:
#   apt-get install cmake clang lld wasi-libc libclang-rt-14-dev-wasm32
set -euo pipefail
GGML_COMMIT=d99724f2b141fed9e1a9f402213506c081433465

[ $# -eq 2 ] || { echo "usage: $0 GGML_SRC OUT_DIR" >&2; exit 2; }
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
src="$(cd "$1" && pwd)"
mkdir -p "$2"
out="$(cd "$2" && pwd)"
case "$out/" in
"$(cd "$here/../.." && pwd)"/*) echo "build.sh: OUT_DIR must be outside the repository" >&2; exit 2 ;;
esac
have="$(git -C "$src" rev-parse HEAD)"
if [ "$have" != "$GGML_COMMIT" ]; then
    echo "build.sh: $src is at $have; check out $GGML_COMMIT (the commit the tables were measured with)" >&2
    exit 1
fi

# Native: ggml's own CPU backend, tuned for this machine as llama.cpp builds it by default.
cmake -S "$src" -B "$out/ggml-native" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON -DGGML_OPENMP=OFF \
    -DBUILD_SHARED_LIBS=OFF -DGGML_BUILD_TESTS=ON -DGGML_BUILD_EXAMPLES=OFF >/dev/null
cmake --build "$out/ggml-native" --target ggml-base ggml-cpu test-quantize-perf -j "$(nproc)" >/dev/null
cp "$out/ggml-native/bin/test-quantize-perf" "$out/"
lib="$out/ggml-native/src"
clang -O3 -march=native -DNDEBUG -I"$src/include" -I"$src/src" "$here/harness.c" \
    "$lib/libggml-cpu.a" "$lib/libggml-base.a" -lstdc++ -lm -lpthread -o "$out/harness-native"

# wasm32-wasi: the reference quantizers and the CPU backend's wasm kernels (SIMD128 where
# built with it, ggml's generic C otherwise). One initial memory large enough for the data,
# so that it never grows (Node 20's WASI has crashed after a growth).
wasm_sources=("$here/harness.c" "$src/src/ggml-quants.c" "$src/src/ggml-cpu/quants.c" "$src/src/ggml-cpu/arch/wasm/quants.c")
wasm_flags=(--target=wasm32-wasi -O3 -DNDEBUG -Wl,--initial-memory=268435456 -I"$src/include" -I"$src/src" -I"$src/src/ggml-cpu")
clang "${wasm_flags[@]}" -msimd128 "${wasm_sources[@]}" -o "$out/harness-simd.wasm"
clang "${wasm_flags[@]}" "${wasm_sources[@]}" -o "$out/harness-scalar.wasm"
echo "built: $(cd "$out" && ls test-quantize-perf harness-native harness-*.wasm | tr '\n' ' ')"
