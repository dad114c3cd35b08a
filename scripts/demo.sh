#!/usr/bin/env bash
# The main job, end to end: converts the sample model (a small deterministic F32
# safetensors transformer) to GGUF TQ2_0 with the package's CLI, prints the per-tensor
# report, and inspects the result.
#
#   bash scripts/setup.sh && bash scripts/demo.sh
#
# Builds pkg/ first (scripts/build.sh) when it is missing or older than its sources.
# Writes target/sample/{model.safetensors, model-tq2_0.gguf, report.json}.
set -euo pipefail
LOG_NAME=demo
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# pkg/package.json is written last by scripts/assemble-pkg.sh: any source newer than it
# means pkg/ is stale.
stamp=pkg/package.json
if [ ! -f "$stamp" ] || [ -n "$(find src js Cargo.toml Cargo.lock .cargo scripts/build.sh scripts/assemble-pkg.sh \
    -newer "$stamp" -type f -print -quit 2>/dev/null)" ]; then
    log "pkg/ is missing or older than its sources: building it (scripts/build.sh)"
    bash scripts/build.sh
fi

dir=target/sample
mkdir -p "$dir"
node scripts/sample-model.mjs "$dir/model.safetensors"

log "node pkg/cli.js convert $dir/model.safetensors $dir/model-tq2_0.gguf --report $dir/report.json"
node pkg/cli.js convert "$dir/model.safetensors" "$dir/model-tq2_0.gguf" --report "$dir/report.json"

echo
log "node pkg/cli.js inspect $dir/model-tq2_0.gguf"
node pkg/cli.js inspect "$dir/model-tq2_0.gguf"

echo
log "the full report (per tensor: scales, mse, snrDb, cosine, zeros, ms; totals) is in $dir/report.json"
