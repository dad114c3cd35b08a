#!/usr/bin/env bash
# Assembles the npm package in pkg/ from the five wasm-pack builds and js/.
# Usage: scripts/assemble-pkg.sh TARGET_DIR
# (TARGET_DIR/wasm-{simd,relaxed,scalar,io-simd,io-scalar} hold wasm-pack's --target web output
# with out-name ternary_quant; scripts/build.sh makes them).
set -euo pipefail
cd "$(dirname "$0")/.."
target_dir=$1
variants=(simd relaxed scalar io-simd io-scalar)
wasm_opt=node_modules/.bin/wasm-opt
[ -x "$wasm_opt" ] || { echo "assemble-pkg: $wasm_opt missing; run scripts/setup.sh" >&2; exit 1; }

rm -rf pkg.tmp
for variant in "${variants[@]}"; do
  src_dir=$target_dir/wasm-$variant
  mkdir -p "pkg.tmp/$variant"
  cp "$src_dir/ternary_quant.js" "pkg.tmp/$variant/"
  # npm's binaryen, never Debian's: an old wasm-opt emits modules that fail to load.
  # -Os for the SIMD builds (relaxed is one): 1.6 KB smaller than -O2 and no slower
  # (bench-node.mjs, one machine: F32Buffer quantization 2.07 vs 1.86 G values/s bitnet,
  # 2.50 vs 2.43 absmax/block; ternaryMatVec 30.1 vs 29.3); -O3 inlines the SIMD kernels'
  # callers into a module about 9 KB larger than -O2 (over the 150 KB bar) and no faster.
  # -O3 for the scalar builds: there it costs under 200 bytes, and -O2 left
  # absmax-per-block quantization 1.7x slower.
  case $variant in
    *simd | relaxed) level=-Os ;;
    *) level=-O3 ;;
  esac
  # --low-memory-unused: rustc links the stack first, from address 1 MiB down, so an
  # address below 1024 is reached only by a pointer that wrapped around (a stack
  # overflow). Binaryen may then fold constant offsets into loads and stores, which
  # makes such an access trap instead; the SIMD build is 1.4 KB smaller for it.
  "$wasm_opt" "$level" --low-memory-unused "$src_dir/ternary_quant_bg.wasm" -o "pkg.tmp/$variant/ternary_quant_bg.wasm"
done
cp js/index.js js/index.d.ts js/cli.js js/convert.js js/worker.js js/package.json pkg.tmp/
cp js/README.md pkg.tmp/README.md
cp LICENSE pkg.tmp/
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
node -e '
  const fs = require("fs");
  const p = JSON.parse(fs.readFileSync("pkg.tmp/package.json", "utf8"));
  p.version = process.argv[1];
  fs.writeFileSync("pkg.tmp/package.json", JSON.stringify(p, null, 2) + "\n");
' "$version"
rm -rf pkg
mv pkg.tmp pkg
for variant in "${variants[@]}"; do
  printf 'pkg/%s/ternary_quant_bg.wasm: %d bytes\n' "$variant" "$(stat -c %s "pkg/$variant/ternary_quant_bg.wasm")"
done
