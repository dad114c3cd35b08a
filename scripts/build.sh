#!/usr/bin/env bash
# Builds the four wasm variants of the crate with wasm-pack (release, --target web):
#   target/wasm-simd        quantization API, SIMD128 (the +simd128 flags of .cargo/config.toml)
#   target/wasm-scalar      quantization API, no SIMD (RUSTFLAGS="" replaces those flags)
#   target/wasm-io-simd     the same plus model files (feature model-files), SIMD128
#   target/wasm-io-scalar   the same plus model files, no SIMD
# checks that exactly the SIMD ones declare simd128, and assembles the npm package in
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

# The lean builds (quantization API) and the model-file builds (plus inspect/plan/convert),
# each with SIMD128 and without. Separate target dirs keep each one incremental.
log "wasm32 + simd128 -> target/wasm-simd"
CARGO_TARGET_DIR="$ROOT/target/wasm-lean" pack "$ROOT/target/wasm-simd" "${LEAN_FEATURES[@]}"
log "wasm32 scalar -> target/wasm-scalar"
RUSTFLAGS="" CARGO_TARGET_DIR="$ROOT/target/nosimd-lean" pack "$ROOT/target/wasm-scalar" "${LEAN_FEATURES[@]}"
log "wasm32 + simd128, model files -> target/wasm-io-simd"
pack "$ROOT/target/wasm-io-simd" "${IO_FEATURES[@]}"
log "wasm32 scalar, model files -> target/wasm-io-scalar"
RUSTFLAGS="" CARGO_TARGET_DIR="$ROOT/target/nosimd" pack "$ROOT/target/wasm-io-scalar" "${IO_FEATURES[@]}"

check_features "$ROOT/target/wasm-simd" yes
check_features "$ROOT/target/wasm-io-simd" yes
check_features "$ROOT/target/wasm-scalar" no
check_features "$ROOT/target/wasm-io-scalar" no
log "target features ok: the simd builds have simd128, the scalar ones do not"

# The npm package: both variants optimised with npm's binaryen, the JS entry, types,
# CLI and package.json, in pkg/.
bash "$ROOT/scripts/assemble-pkg.sh" "$ROOT/target"


