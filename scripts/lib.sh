# Shared helpers for the scripts in this directory. Source it; do not run it.
#
# After sourcing: the working directory is the repository root ($ROOT), the cargo
# bin directory is on PATH, and RUSTFLAGS / CARGO_ENCODED_RUSTFLAGS are unset, because
# either one would replace the +simd128 flags of .cargo/config.toml and silently build
# the SIMD variants without SIMD.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

CARGO_BIN="${CARGO_HOME:-$HOME/.cargo}/bin"
case ":$PATH:" in
*":$CARGO_BIN:"*) ;;
*) export PATH="$CARGO_BIN:$PATH" ;;
esac

unset RUSTFLAGS CARGO_ENCODED_RUSTFLAGS

# Oracle venv (gguf-py, numpy, safetensors).
VENV="$ROOT/.venv-oracle"

# Progress line: "name: message".
log() {
    printf '%s: %s\n' "${LOG_NAME:-$(basename "$0")}" "$*"
}

die() {
    log "error: $*" >&2
    exit 1
}

have() {
    command -v "$1" >/dev/null 2>&1
}

# The exact version that Cargo.toml pins the wasm-bindgen crate to ("=X.Y.Z"); the CLI
# must match it, or wasm-pack either fails (--mode no-install) or builds its own copy.
wasm_bindgen_pin() {
    local v
    v="$(sed -n -E 's/^[[:space:]]*wasm-bindgen[[:space:]]*=[[:space:]]*(\{[^}]*version[[:space:]]*=[[:space:]]*)?"=([0-9]+\.[0-9]+\.[0-9]+)".*/\2/p' "$ROOT/Cargo.toml" | head -n 1)"
    [ -n "$v" ] || die "Cargo.toml must pin wasm-bindgen exactly (wasm-bindgen = \"=X.Y.Z\")"
    printf '%s\n' "$v"
}

# Bytes of a file.
file_size() {
    stat -c %s "$1"
}

# The features that a wasm module's target_features section declares, one "+name" per
# line. Fails when the module has no such section (or an empty one), so that "no
# simd128" is never concluded from a missing section.
wasm_features() {
    local out features
    out="$(wasm-objdump -x -j target_features "$1" 2>&1)" || return 1
    features="$(sed -n -E 's/^[[:space:]]*- \[([+-])\][[:space:]]*/\1/p' <<<"$out")"
    [ -n "$features" ] || return 1
    printf '%s\n' "$features"
}
