#!/usr/bin/env bash
# Builds the five wasm variants of the crate with wasm-pack (release, --target web):
#   target/wasm-simd        quantization API, SIMD128 (the +simd128 flags of .cargo/config.toml)
#   target/wasm-relaxed     the same plus relaxed SIMD in the TQ2_0 dot product (feature
#                           relaxed-simd); loads only where the engine has relaxed SIMD
#   target/wasm-scalar      quantization API, no SIMD (RUSTFLAGS="" replaces those flags)
#   target/wasm-io-simd     the same plus model files (feature model-files), SIMD128
#   target/wasm-io-scalar   the same plus model files, no SIMD
# checks that exactly the SIMD ones declare simd128 and that no build but the relaxed one
# has a relaxed instruction (and it only the deterministic dot product), and assembles the npm package in
# pkg/ (scripts/assemble-pkg.sh), which prints the optimised .wasm sizes.
# Needs the tools that scripts/setup.sh installs.
set -euo pipefail
LOG_NAME=build
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

for tool in cargo wasm-pack wasm-bindgen wasm-objdump; do
    have "$tool" || die "$tool not found; run: bash scripts/setup.sh"
done
wb_version="$(wasm_bindgen_pin)"
[ "$(wasm-bindgen --version)" = "wasm-bindgen $wb_version" ] ||
    die "wasm-bindgen on PATH is '$(wasm-bindgen --version)', Cargo.toml pins $wb_version; run: bash scripts/setup.sh"

NAME=ternary_quant
# Neither package build keeps the scalar kernel table next to the SIMD128 one (feature
# scalar-backend): the scalar build is the package's scalar path.
LEAN_FEATURES=(--no-default-features --features console_error_panic_hook)
IO_FEATURES=(--no-default-features --features console_error_panic_hook,model-files)

# pack OUT_DIR [CARGO_ARGS...]. --mode no-install: fail if the matching wasm-bindgen is
# missing, instead of letting wasm-pack quietly compile its own copy.
pack() {
    local out_dir=$1
    shift
    wasm-pack --quiet build "$ROOT" --target web --release --mode no-install \
        --out-dir "$out_dir" --out-name "$NAME" -- "$@"
}

# check_features DIR yes|no: the module declares simd128, or does not.
check_features() {
    local wasm="$1/${NAME}_bg.wasm" want=$2 features
    features="$(wasm_features "$wasm")" || die "$wasm has no target_features section"
    if [ "$want" = yes ]; then
        grep -q 'simd128' <<<"$features" ||
            die "$wasm is built without simd128 (features: $(tr "\n" " " <<<"$features")); is RUSTFLAGS overriding .cargo/config.toml?"
    elif grep -q 'simd128' <<<"$features"; then
        die "$wasm declares simd128 (features: $(tr "\n" " " <<<"$features"))"
    fi
}

# check_relaxed DIR yes|no: the only relaxed instruction in the module is the dot product
# whose results relaxed.rs proves engine-independent, or it has none. LLVM turns plain
# min/max patterns into relaxed_min/relaxed_max whenever the module has relaxed SIMD
# (src/kernels/wasm32/mod.rs), so this is checked on the output, not assumed.
check_relaxed() {
    local wasm="$1/${NAME}_bg.wasm" want=$2 ops
    ops="$(wasm-objdump -d "$wasm" | { grep -oE '[a-z0-9]+\.(relaxed_[a-z0-9_]+|dot_i8x16_i7x16[a-z_]*)' || true; } | sort -u | tr '\n' ' ')"
    if [ "$want" = yes ]; then
        [ "$ops" = "i16x8.dot_i8x16_i7x16_s " ] || die "$wasm: relaxed instructions '$ops', want only i16x8.dot_i8x16_i7x16_s"
    else
        [ -z "$ops" ] || die "$wasm has relaxed instructions: $ops"
    fi
}

# The lean builds (quantization API) and the model-file builds (plus inspect/plan/convert),
# each with SIMD128 and without; the lean one also with relaxed SIMD (the model-file
# builds convert and pack, which relaxed SIMD does not speed up). Separate target dirs
# keep each one incremental.
log "wasm32 + simd128 -> target/wasm-simd"
CARGO_TARGET_DIR="$ROOT/target/wasm-lean" pack "$ROOT/target/wasm-simd" "${LEAN_FEATURES[@]}"
log "wasm32 + simd128 + relaxed SIMD -> target/wasm-relaxed"
CARGO_TARGET_DIR="$ROOT/target/wasm-relaxed-lean" pack "$ROOT/target/wasm-relaxed" "${LEAN_FEATURES[@]}" --features relaxed-simd
log "wasm32 scalar -> target/wasm-scalar"
RUSTFLAGS="" CARGO_TARGET_DIR="$ROOT/target/nosimd-lean" pack "$ROOT/target/wasm-scalar" "${LEAN_FEATURES[@]}"
log "wasm32 + simd128, model files -> target/wasm-io-simd"
pack "$ROOT/target/wasm-io-simd" "${IO_FEATURES[@]}"
log "wasm32 scalar, model files -> target/wasm-io-scalar"
RUSTFLAGS="" CARGO_TARGET_DIR="$ROOT/target/nosimd" pack "$ROOT/target/wasm-io-scalar" "${IO_FEATURES[@]}"

check_features "$ROOT/target/wasm-simd" yes
check_features "$ROOT/target/wasm-relaxed" yes
check_features "$ROOT/target/wasm-io-simd" yes
check_features "$ROOT/target/wasm-scalar" no
check_features "$ROOT/target/wasm-io-scalar" no
log "target features ok: the simd builds have simd128, the scalar ones do not"
check_relaxed "$ROOT/target/wasm-relaxed" yes
for variant in simd scalar io-simd io-scalar; do
    check_relaxed "$ROOT/target/wasm-$variant" no
done
log "relaxed instructions ok: only the relaxed build has one, the deterministic dot product"

# The npm package: every variant optimised with npm's binaryen, the JS entry, types,
# CLI and package.json, in pkg/.
bash "$ROOT/scripts/assemble-pkg.sh" "$ROOT/target"


