#!/usr/bin/env bash
# Runs every test of the project, stopping at the first failure:
#   setup, rustfmt, clippy (native, wasm32+simd128, wasm32 scalar), rustdoc, native tests,
#   doctests and a demo run, the core's tests as wasm32-wasip1 under Node's WASI
#   (relaxed SIMD, SIMD128 and scalar), the gguf-py oracle, and the wasm build plus the npm package
#   tests (the packed tarball installed into a temporary project).
# Installs what it needs first (scripts/setup.sh). Ends with "test.sh: N passed, 0 failed".
#
# Environment:
#   TQ_WASI_RUNNER  the WASI runner script (default: scripts/wasi-run.mjs)
#
# RUSTFLAGS is deliberately ignored (lib.sh unsets it): it would replace the +simd128
# flags of .cargo/config.toml. Warnings are denied through clippy's own -D warnings.
set -euo pipefail
LOG_NAME=test.sh
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

WASI_RUNNER="${TQ_WASI_RUNNER:-$ROOT/scripts/wasi-run.mjs}"
ORACLE_DIR=target/oracle-vectors

passed=0
current=""
started=$SECONDS

on_exit() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ -n "$current" ]; then
        printf '\ntest.sh: FAILED: %s (exit %d)\n' "$current" "$rc"
        printf 'test.sh: %d passed, 1 failed\n' "$passed"
    fi
}
trap on_exit EXIT

# step TITLE COMMAND [ARGS...]: runs one step in a subshell (so that its cd and exports
# stay there) under errexit; a failure ends the script.
step() {
    current=$1
    shift
    local t0=$SECONDS
    printf '\n==> [%d] %s\n' "$((passed + 1))" "$current"
    ("$@")
    passed=$((passed + 1))
    printf -- '--> ok: %s (%ds)\n' "$current" "$((SECONDS - t0))"
    current=""
}

# The path of the lib test binary that `cargo test ARGS --no-run` builds.
test_binary() {
    cargo test "$@" --no-run --message-format=json-render-diagnostics |
        node -e '
            let exe = "";
            for (const line of require("fs").readFileSync(0, "utf8").split("\n")) {
                if (!line.startsWith("{")) continue;
                const m = JSON.parse(line);
                if (m.reason === "compiler-artifact" && m.profile && m.profile.test && m.executable) exe = m.executable;
            }
            if (!exe) process.exit(1);
            console.log(exe);
        '
}

# wasip1_lib_tests relaxed|simd128|scalar: the core's #[test]s as wasm32-wasip1 under
# Node's WASI, after checking that the test binary does (or does not) declare simd128.
# The relaxed flavor (feature relaxed-simd) needs Node 20's flag, and is compiled without
# LLVM's auto-vectorizer: with relaxed SIMD in the module, LLVM would turn the scalar
# spec's vectorized min/max into relaxed_min/max (src/kernels/wasm32/mod.rs).
wasip1_lib_tests() {
    local flavor=$1 wasm features ops cargo_features=()
    [ -f "$WASI_RUNNER" ] || die "WASI runner not found: $WASI_RUNNER"
    export CARGO_TARGET_DIR="$ROOT/target/wasip1-$flavor"
    export CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $WASI_RUNNER"
    if [ "$flavor" = relaxed ]; then
        export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128 -C no-vectorize-loops -C no-vectorize-slp"
        export CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings --experimental-wasm-relaxed-simd $WASI_RUNNER"
        cargo_features=(--features relaxed-simd)
    elif [ "$flavor" = simd128 ]; then
        export CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS="-C target-feature=+simd128"
    else
        export RUSTFLAGS=""
    fi
    wasm="$(test_binary --release --target wasm32-wasip1 --lib "${cargo_features[@]}")" || die "could not build the wasm32-wasip1 test binary"
    features="$(wasm_features "$wasm")" || die "$wasm has no target_features section"
    if [ "$flavor" = relaxed ]; then
        grep -q relaxed-simd <<<"$features" || die "$wasm was built without relaxed-simd"
        ops="$(wasm-objdump -d "$wasm" | { grep -oE '[a-z0-9]+\.(relaxed_[a-z0-9_]+|dot_i8x16_i7x16[a-z_]*)' || true; } | sort -u | tr '\n' ' ')"
        [ "$ops" = "i16x8.dot_i8x16_i7x16_s " ] || die "$wasm: relaxed instructions '$ops', want only i16x8.dot_i8x16_i7x16_s"
        log "test binary declares relaxed-simd; its only relaxed instruction is the dot product"
    elif [ "$flavor" = simd128 ]; then
        grep -q simd128 <<<"$features" || die "$wasm was built without simd128"
        log "test binary declares simd128"
    elif grep -q simd128 <<<"$features"; then
        die "$wasm declares simd128 in the scalar run"
    else
        log "test binary does not declare simd128"
    fi
    cargo test --release --target wasm32-wasip1 --lib --tests "${cargo_features[@]}"
}

oracle_vectors() {
    rm -rf "$ORACLE_DIR"
    "$VENV/bin/python" tests/oracle/gen_vectors.py "$ORACLE_DIR"
}

# The README's main job; print only the end of its report.
main_job() {
    local out
    out="$(bash scripts/demo.sh)"
    tail -n 12 <<<"$out"
}

# The demo checks its own totals against estimate_model_size; print only its last lines.
demo_smoke() {
    local out
    out="$(cargo run --quiet --example demo)"
    tail -n 6 <<<"$out"
}


step "setup (scripts/setup.sh)" bash scripts/setup.sh
step "cargo fmt --check" cargo fmt --check
step "clippy, native" cargo clippy --all-targets -- -D warnings
step "clippy, wasm32 + simd128" cargo clippy --target wasm32-unknown-unknown --lib -- -D warnings
step "clippy, wasm32 scalar" env RUSTFLAGS="" CARGO_TARGET_DIR=target/nosimd cargo clippy --target wasm32-unknown-unknown --lib -- -D warnings
step "clippy, wasm32 + simd128 + relaxed SIMD" env CARGO_TARGET_DIR=target/wasm-relaxed-lint cargo clippy --target wasm32-unknown-unknown --lib --features relaxed-simd -- -D warnings
step "clippy, native without model files" cargo clippy --all-targets --no-default-features -- -D warnings
step "clippy, wasm32 + simd128 without model files" env CARGO_TARGET_DIR=target/wasm-lean cargo clippy --target wasm32-unknown-unknown --lib --no-default-features --features console_error_panic_hook -- -D warnings
step "clippy, wasm32 + relaxed SIMD without model files (the package build)" env CARGO_TARGET_DIR=target/wasm-relaxed-lean cargo clippy --target wasm32-unknown-unknown --lib --no-default-features --features console_error_panic_hook,relaxed-simd -- -D warnings
step "clippy, wasm32 scalar without model files" env RUSTFLAGS="" CARGO_TARGET_DIR=target/nosimd-lean cargo clippy --target wasm32-unknown-unknown --lib --no-default-features --features console_error_panic_hook -- -D warnings
step "clippy, wasm32 + simd128 as the model-file package build" env CARGO_TARGET_DIR=target/wasm-io-lint cargo clippy --target wasm32-unknown-unknown --lib --no-default-features --features console_error_panic_hook,model-files -- -D warnings
step "rustdoc, warnings denied" env RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet
step "native tests (lib, tests, examples)" cargo test --lib --tests --examples
step "native doctests" cargo test --doc
step "demo runs (cargo run --example demo)" demo_smoke
step "wasm32-wasip1 core tests (lib + integration), relaxed SIMD (Node WASI)" wasip1_lib_tests relaxed
step "wasm32-wasip1 core tests (lib + integration), simd128 (Node WASI)" wasip1_lib_tests simd128
step "wasm32-wasip1 core tests (lib + integration), scalar (Node WASI)" wasip1_lib_tests scalar
step "oracle vectors (gguf-py)" oracle_vectors
step "oracle tests" env TQ_ORACLE_DIR="$ORACLE_DIR" cargo test --test oracle -- --ignored
step "model-file interop (gguf-py reader, safetensors + unpack_weights)" env TQ_ORACLE_PYTHON="$VENV/bin/python" cargo test --test io_interop -- --ignored
step "wasm build and npm package (scripts/build.sh)" bash scripts/build.sh
step "demo site (scripts/build-www.sh)" bash scripts/build-www.sh
step "main job: the sample model through the CLI (scripts/demo.sh)" main_job
step "npm package tests: packed tarball installed and tested (pkg-tests)" bash scripts/pack-and-test.sh

printf '\ntest.sh: %d passed, 0 failed (%ds)\n' "$passed" "$((SECONDS - started))"
