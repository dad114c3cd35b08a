#!/usr/bin/env bash
# Builds the two wasm variants of the crate with wasm-pack (release, --target web):
#   target/wasm-simd    SIMD128 (the +simd128 flags of .cargo/config.toml)
#   target/wasm-scalar  no SIMD (RUSTFLAGS="" replaces those flags), for engines without it
# checks that only the SIMD one declares simd128, assembles the npm package in pkg/
# (scripts/assemble-pkg.sh), and prints the .wasm sizes.
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

SIMD_DIR="$ROOT/target/wasm-simd"
SCALAR_DIR="$ROOT/target/wasm-scalar"
NAME=ternary_quant

# --mode no-install: fail if the matching wasm-bindgen is missing, instead of letting
# wasm-pack quietly compile its own copy.
pack() {
    local out_dir=$1
    wasm-pack --quiet build "$ROOT" --target web --release --mode no-install \
        --out-dir "$out_dir" --out-name "$NAME"
}

log "wasm32 + simd128 -> target/wasm-simd"
pack "$SIMD_DIR"

log "wasm32 scalar -> target/wasm-scalar"
RUSTFLAGS="" CARGO_TARGET_DIR="$ROOT/target/nosimd" pack "$SCALAR_DIR"

simd_wasm="$SIMD_DIR/${NAME}_bg.wasm"
scalar_wasm="$SCALAR_DIR/${NAME}_bg.wasm"

simd_features="$(wasm_features "$simd_wasm")" || die "$simd_wasm has no target_features section"
scalar_features="$(wasm_features "$scalar_wasm")" || die "$scalar_wasm has no target_features section"
grep -q 'simd128' <<<"$simd_features" ||
    die "target/wasm-simd is built without simd128 (features: $(tr "\n" " " <<<"$simd_features")); is RUSTFLAGS overriding .cargo/config.toml?"
if grep -q 'simd128' <<<"$scalar_features"; then
    die "target/wasm-scalar declares simd128 (features: $(tr "\n" " " <<<"$scalar_features"))"
fi
log "target features ok: simd has simd128, scalar does not"

# The npm package: both variants optimised with npm's binaryen, the JS entry, types,
# CLI and package.json, in pkg/.
bash "$ROOT/scripts/assemble-pkg.sh" "$SIMD_DIR" "$SCALAR_DIR"

for wasm in "$simd_wasm" "$scalar_wasm"; do
    log "$(printf '%-44s %8d bytes' "${wasm#"$ROOT"/}" "$(file_size "$wasm")")"
done
