#!/usr/bin/env node
// The ternary-quant command line.
import { init, loadBuild, simdSupported } from './index.js';

const HELP = `ternary-quant: ternary (BitNet b1.58) quantization in WebAssembly

Usage:
  ternary-quant bench [--rows N] [--cols N] [--json]   time the SIMD128 and scalar builds
  ternary-quant --help | --version

Commands:
  bench   Quantizes a synthetic rows x cols f32 matrix (default 1024 x 4096) to TQ2_0
          with the bitnet preset, and times ternary GEMV against f32 GEMV, on every
          build this engine runs.`;

const BENCH_HELP = `Usage: ternary-quant bench [--rows N] [--cols N] [--json]

  --rows N   matrix rows (default 1024)
  --cols N   matrix columns, a multiple of 256 (default 4096)
  --json     print the results as JSON`;

function fail(message) {
  process.stderr.write(`ternary-quant: ${message}\n`);
  process.exit(1);
}

function parseFlags(args, known) {
  const flags = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--help' || a === '-h') flags.help = true;
    else if (a === '--json') flags.json = true;
    else if (known.includes(a)) {
      const v = args[++i];
      if (v === undefined) fail(`${a} needs a value`);
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1) fail(`${a} must be a positive integer, got '${v}'`);
      flags[a.slice(2)] = n;
    } else fail(`unknown argument '${a}' (see --help)`);
  }
  return flags;
}

function timeIt(fn, minMs = 300) {
  fn();
  let reps = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMs) {
    fn();
    reps++;
    elapsed = performance.now() - start;
  }
  return elapsed / reps;
}

async function bench(args) {
  const flags = parseFlags(args, ['--rows', '--cols']);
  if (flags.help) return console.log(BENCH_HELP);
  const rows = flags.rows ?? 1024;
  const cols = flags.cols ?? 4096;
  if (cols % 256 !== 0) fail(`--cols must be a multiple of 256, got ${cols}`);
  await init();
  const variants = simdSupported() ? [true, false] : [false];
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const w = Float32Array.from({ length: rows * cols }, rand);
  const x = Float32Array.from({ length: cols }, rand);
  const results = [];
  for (const simd of variants) {
    const api = await loadBuild({ simd });
    const quantMs = timeIt(() => api.quantizeTernary(w, rows, cols).free());
    const t = api.quantizeTernary(w, rows, cols);
    const ternaryMs = timeIt(() => api.ternaryMatVec(t, x));
    const f32Ms = timeIt(() => api.matVecF32(w, rows, cols, x));
    t.free();
    const n = rows * cols;
    results.push({
      build: simd ? 'simd128' : 'scalar',
      backend: api.backend(),
      quantizeGValuesPerS: n / quantMs / 1e6,
      ternaryGemvGValuesPerS: n / ternaryMs / 1e6,
      f32GemvGValuesPerS: n / f32Ms / 1e6,
      ternaryOverF32: f32Ms / ternaryMs,
    });
  }
  if (flags.json) return console.log(JSON.stringify({ rows, cols, results }, null, 2));
  console.log(`${rows} x ${cols} f32, bitnet preset (TQ2_0, absmean per tensor); G values/s`);
  console.log('build     quantize  ternary GEMV  f32 GEMV  ternary/f32');
  for (const r of results) {
    console.log(
      `${r.build.padEnd(8)} ${r.quantizeGValuesPerS.toFixed(3).padStart(9)} ${r.ternaryGemvGValuesPerS
        .toFixed(3)
        .padStart(13)} ${r.f32GemvGValuesPerS.toFixed(3).padStart(9)} ${r.ternaryOverF32.toFixed(2).padStart(12)}x`,
    );
  }
}

async function main(argv) {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP);
    return;
  }
  if (command === '--version') {
    const { readFile } = await import('node:fs/promises');
    const pkg = JSON.parse(await readFile(new URL('./package.json', import.meta.url), 'utf8'));
    console.log(pkg.version);
    return;
  }
  if (command === 'bench') return bench(rest);
  fail(`unknown command '${command}' (see --help)`);
}

main(process.argv.slice(2)).catch((e) => fail(e?.message ?? String(e)));
