#!/usr/bin/env bash
# Assembles the in-browser demo as a static site, by default in target/www/:
#   index.html, style.css, app.js, worker.js, synth.js, favicon.svg   from www/
#   pkg/                           the npm package, copied from pkg/ (scripts/build.sh)
#   vendor/chart.umd.min.js(.map)  Chart.js, installed from npm by `npm ci --prefix www`
#                                  (www/package.json + www/package-lock.json)
# Serve the folder with any static server, for example:
#   python3 -m http.server 8000 --bind 127.0.0.1 --directory target/www
# and open http://127.0.0.1:8000/. The page requests nothing outside that origin.
#
# Usage: scripts/build-www.sh [OUT_DIR]
set -euo pipefail
LOG_NAME=build-www
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

out="${1:-$ROOT/target/www}"
[ -f "$ROOT/pkg/index.js" ] || die "pkg/ is not built; run: bash scripts/build.sh"
have npm || die "npm not found"

log "npm ci --prefix www (Chart.js, pinned by www/package-lock.json)"
npm ci --prefix "$ROOT/www" --no-audit --no-fund --loglevel=error
chart_dist="$ROOT/www/node_modules/chart.js/dist"
[ -f "$chart_dist/chart.umd.min.js" ] || die "$chart_dist/chart.umd.min.js is missing after npm ci"

rm -rf "$out"
mkdir -p "$out/pkg" "$out/vendor"
cp "$ROOT"/www/{index.html,style.css,app.js,worker.js,synth.js,favicon.svg} "$out/"
cp -r "$ROOT/pkg/." "$out/pkg/"
cp "$chart_dist/chart.umd.min.js" "$chart_dist/chart.umd.min.js.map" "$out/vendor/"
cp "$ROOT/www/node_modules/chart.js/LICENSE.md" "$out/vendor/chart.js-LICENSE.md"

log "site in $out ($(du -sk "$out" | cut -f1) KiB, $(find "$out" -type f | wc -l) files)"
