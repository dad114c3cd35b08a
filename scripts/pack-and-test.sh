#!/usr/bin/env bash
# Tests the npm package as users get it: packs pkg/ (built by scripts/build.sh) with
# `npm pack`, installs the tarball into a fresh temp project, generates gguf-py oracle
# vectors there, copies pkg-tests/ in and runs it with node:test, so that every
# `import 'ternary-quant'` resolves to the installed tarball.
#
# Usage: scripts/pack-and-test.sh [TEST_FILE ...]   (default: every pkg-tests/*.test.mjs)
# Environment:
#   ORACLE_PYTHON  python with gguf and numpy (default .venv-oracle/bin/python)
#   KEEP_TMP=1     keep the temp project and print its path
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

if [ ! -f pkg/package.json ]; then
  echo "pack-and-test: pkg/ is not built; run scripts/build.sh first" >&2
  exit 1
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/ternary-quant-pkgtest.XXXXXX")
cleanup() {
  if [ "${KEEP_TMP:-0}" = 1 ]; then echo "pack-and-test: kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

# 1. The tarball, exactly as `npm publish` would make it.
tarball=$(npm pack "$root/pkg" --pack-destination "$tmp" --silent | tail -n 1)
tarball="$tmp/$tarball"
echo "pack-and-test: packed $(basename "$tarball") ($(stat -c %s "$tarball") bytes)"

# 2. A fresh ESM project that installs it, plus the tools the tests drive (the same
#    versions the repository pins as dev dependencies), and @huggingface/gguf, a second
#    GGUF reader for the model-file tests.
project="$tmp/project"
mkdir -p "$project"
HF_GGUF_VERSION=0.4.6
devdep() { node -e 'const p = require(process.argv[1]); process.stdout.write(p.devDependencies[process.argv[2]])' "$root/package.json" "$1"; }
(
  cd "$project"
  npm init -y >/dev/null
  npm pkg set type=module
  npm install --no-audit --no-fund --prefer-offline --loglevel=error \
    "$tarball" "esbuild@$(devdep esbuild)" "playwright-core@$(devdep playwright-core)" "typescript@$(devdep typescript)" \
    "@huggingface/gguf@$HF_GGUF_VERSION"
)

# 3. Oracle vectors from gguf-py. The model-file tests run the same python on their
#    fixtures (pkg-tests/fixtures/modelfiles.py) and generate models with the repository's
#    scripts/sample-model.mjs.
# llama.cpp, through node-llama-cpp's prebuilt CPU binary, in a folder of its own: its
# optional GPU builds are left out (--omit=optional), which in the test project would
# also drop esbuild's platform binary.
# Its exact versions are pkg-tests/llama/package.json's dev dependencies.
llama_dir="$tmp/llama"
mkdir -p "$llama_dir"
cp "$root/pkg-tests/llama/package.json" "$llama_dir/"
(
  cd "$llama_dir"
  npm install --no-audit --no-fund --prefer-offline --loglevel=error --omit=optional
)
export TQ_LLAMA_DIR=$llama_dir

py=${ORACLE_PYTHON:-$root/.venv-oracle/bin/python}
case $py in */*) py=$(cd "$(dirname "$py")" && pwd)/$(basename "$py") ;; esac
export TQ_ORACLE_PYTHON=$py
export TQ_REPO_ROOT=$root
oracle_dir="$tmp/oracle"
if "$py" "$root/pkg-tests/fixtures/gen_oracle.py" "$oracle_dir"; then
  export TQ_ORACLE_DIR=$oracle_dir
else
  # The oracle tests then fail and say why; the rest still runs.
  echo "pack-and-test: could not make oracle vectors with '$py' (scripts/setup.sh makes .venv-oracle; or set ORACLE_PYTHON)" >&2
  export TQ_ORACLE_ERROR="gen_oracle.py failed with '$py'"
fi

# 4. The tests, run from inside the project.
cp -r "$root/pkg-tests" "$project/pkg-tests"
mkdir -p "$root/test-output"
export TQ_TARBALL=$tarball
export TQ_TEST_OUTPUT=$root/test-output
tests=()
if [ $# -gt 0 ]; then
  for t in "$@"; do tests+=("pkg-tests/$(basename "$t")"); done
else
  for t in "$project"/pkg-tests/*.test.mjs; do tests+=("pkg-tests/$(basename "$t")"); done
fi
cd "$project"
status=0
node --test --test-reporter=spec --test-timeout=180000 "${tests[@]}" || status=$?
exit $status
