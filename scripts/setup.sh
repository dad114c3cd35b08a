#!/usr/bin/env bash
# Installs everything the build and the tests need, each item only when it is missing.
# Safe to run again: with everything present it takes a few seconds and changes nothing.
#
# Expects Debian 12 with rustup (rustc/cargo), Node 20 + npm and Python 3.11, and
# network access to the Rust, crates.io, Debian, PyPI and npm registries only.
set -euo pipefail
LOG_NAME=setup
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
exec </dev/null

have cargo || die "cargo not found (looked on PATH and in $CARGO_BIN); install Rust with rustup first"
have rustup || die "rustup not found; the wasm targets are installed with rustup"

# --- Rust targets and components --------------------------------------------
installed_targets="$(rustup target list --installed)"
for target in wasm32-unknown-unknown wasm32-wasip1; do
    if grep -qx "$target" <<<"$installed_targets"; then
        log "rust target $target: present"
    else
        log "rust target $target: installing"
        rustup target add "$target"
    fi
done

installed_components="$(rustup component list --installed)"
for component in rustfmt clippy; do
    if grep -q "^$component" <<<"$installed_components"; then
        log "rust component $component: present"
    else
        log "rust component $component: installing"
        rustup component add "$component"
    fi
done

# --- wasm-bindgen-cli, exactly the version Cargo.toml pins -----------------------
wb_version="$(wasm_bindgen_pin)"
wb_current="$( (have wasm-bindgen && wasm-bindgen --version) 2>/dev/null || true)"
if [ "$wb_current" = "wasm-bindgen $wb_version" ]; then
    log "wasm-bindgen-cli $wb_version: present"
else
    log "wasm-bindgen-cli $wb_version: installing (found: ${wb_current:-none}; takes a few minutes)"
    # No --locked: one of the CLI's locked dependencies is no longer on crates.io.
    cargo install wasm-bindgen-cli --version "$wb_version" --force
fi

# --- wasm-pack -------------------------------------------------------------------
# From crates.io: the npm wasm-pack package downloads its binary from GitHub.
if have wasm-pack; then
    log "wasm-pack: present ($(wasm-pack --version))"
else
    log "wasm-pack: installing (takes a few minutes)"
    cargo install wasm-pack --locked
fi

# --- Debian packages: wabt (wasm-objdump), Chromium and its driver -------------
apt_packages=(wabt chromium chromium-driver time)
apt_missing=()
for pkg in "${apt_packages[@]}"; do
    if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
        :
    else
        apt_missing+=("$pkg")
    fi
done
if [ "${#apt_missing[@]}" -eq 0 ]; then
    log "debian packages ${apt_packages[*]}: present"
else
    log "debian packages ${apt_missing[*]}: installing"
    sudo=()
    if [ "$(id -u)" -ne 0 ]; then
        have sudo || die "need root (or sudo) to install ${apt_missing[*]}"
        sudo=(sudo -n)
    fi
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 update -q
    "${sudo[@]}" apt-get -o DPkg::Lock::Timeout=300 install -y -q --no-install-recommends "${apt_missing[@]}"
fi

# --- Python venv for the oracle (gguf-py is the byte-exact reference) ----------
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c 'import gguf, numpy, safetensors, sentencepiece, tokenizers' 2>/dev/null; then
    log "python venv .venv-oracle (gguf numpy safetensors sentencepiece tokenizers): present"
else
    log "python venv .venv-oracle: installing gguf numpy safetensors sentencepiece tokenizers"
    have python3 || die "python3 not found"
    # (Re)create the venv unless it has a working pip (a failed ensurepip leaves none).
    if ! "$VENV/bin/python" -m pip --version >/dev/null 2>&1; then
        python3 -m venv --clear "$VENV"
    fi
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-input gguf numpy safetensors sentencepiece tokenizers
    "$VENV/bin/python" -c 'import gguf, numpy, safetensors, sentencepiece, tokenizers'
fi

# --- npm dependencies at the repository root (once there is a package.json) ----
if [ -f package.json ]; then
    have npm || die "npm not found"
    # npm ls fails when a dependency is missing or does not satisfy package.json.
    if npm ls --depth=0 >/dev/null 2>&1; then
        log "npm dependencies: present"
    else
        log "npm dependencies: installing"
        if [ -f package-lock.json ]; then
            npm ci --no-audit --no-fund
        else
            npm install --no-audit --no-fund
        fi
    fi
fi

log "done"
