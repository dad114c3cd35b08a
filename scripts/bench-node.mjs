#!/usr/bin/env node
// Benchmark of the built package (pkg/, from scripts/build.sh) in Node, side by side in
// one run: the wasm SIMD128 build, the wasm scalar build and plain JavaScript.
//   - quantize f32 -> TQ2_0 of 1024 x 4096 (bitnet = absmean/tensor, and absmax/block);
//     the plain-JS quantizers below are checked byte for byte against wasm first;
//   - GEMV 4096 x 4096: ternaryMatVec (TQ2_0) against matVecF32 and a plain-JS f32 GEMV;
//   - the sizes of both .wasm files.
// Not a test: it asserts only that the implementations agree. Times are medians.
//
// Usage: node --no-liftoff scripts/bench-node.mjs [--min-ms N] [--json]
// (--no-liftoff: Node 20 has been seen to segfault at exit with large wasm memories.)
import { readFileSync, statSync } from 'node:fs';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';

const pkgUrl = new URL('../pkg/index.js', import.meta.url);
let tq;
try {
  tq = await import(pkgUrl.href);
} catch (e) {
  console.error(`bench-node: cannot import ${fileURLToPath(pkgUrl)} (run scripts/build.sh first): ${e.message}`);
  process.exit(1);
}

const args = process.argv.slice(2);
const minMs = args.includes('--min-ms') ? Number(args[args.indexOf('--min-ms') + 1]) : 1000;
const asJson = args.includes('--json');

// ------------------------------------------------------------------ data and timing

function randomMatrix(n, seed, scale) {
  let a = seed >>> 0;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    const u = ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    out[i] = (u * 2 - 1) * scale; // uniform: every rule gives a mix of -1, 0, +1
  }
  return out;
}

/** Median milliseconds of fn over at least 5 runs and minMs of running, after a warm-up. */
function time(fn) {
  fn();
  const times = [];
  const start = performance.now();
  while (times.length < 5 || performance.now() - start < minMs) {
    const t0 = performance.now();
    fn();
    times.push(performance.now() - t0);
  }
  times.sort((x, y) => x - y);
  return times[times.length >> 1];
}

// ------------------------------------------------------------------ plain-JS quantizers

const f32buf = new Float32Array(1);

/** IEEE half bits of an f32, round to nearest even. */
function f16Bits(x) {
  f32buf[0] = x;
  const a = Math.abs(f32buf[0]);
  const sign = f32buf[0] < 0 || Object.is(f32buf[0], -0) ? 0x8000 : 0;
  const rne = (v) => {
    const f = Math.floor(v);
    const d = v - f;
    return d < 0.5 ? f : d > 0.5 ? f + 1 : f % 2 === 0 ? f : f + 1;
  };
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | rne(a / 2 ** -24);
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  let m = rne(a / 2 ** (e - 10));
  if (m === 2048) {
    m = 1024;
    e++;
  }
  return e + 15 >= 31 ? sign | 0x7c00 : sign | ((e + 15) << 10) | (m - 1024);
}

/** Packs n values (a multiple of 256) into TQ2_0 with one code rule per 256-block. */
function packTq2(x, out, blockInv, blockD) {
  const nb = x.length >> 8;
  for (let b = 0; b < nb; b++) {
    const inv = blockInv(b);
    const d = blockD(b);
    const base = b << 8;
    const o = b * 66;
    for (let h = 0; h < 2; h++) {
      for (let m = 0; m < 32; m++) {
        let byte = 0;
        for (let l = 0; l < 4; l++) {
          const s = Math.fround(x[base + h * 128 + l * 32 + m] * inv);
          byte |= ((s >= 0.5) - (s <= -0.5) + 1) << (2 * l);
        }
        out[o + h * 32 + m] = byte;
      }
    }
    out[o + 64] = d & 0xff;
    out[o + 65] = d >> 8;
  }
  return out;
}

/** absmean per tensor (the bitnet preset): g = max(mean|w|, 1e-5), q = round(w / g) clamped. */
function jsTq2AbsmeanTensor(x) {
  // Sum |x| in 16 f64 lanes (element i into lane i % 16), folded pairwise: the spec's order.
  let l0 = 0, l1 = 0, l2 = 0, l3 = 0, l4 = 0, l5 = 0, l6 = 0, l7 = 0;
  let l8 = 0, l9 = 0, l10 = 0, l11 = 0, l12 = 0, l13 = 0, l14 = 0, l15 = 0;
  const n = x.length; // a multiple of 256 here
  for (let i = 0; i < n; i += 16) {
    l0 += Math.abs(x[i]); l1 += Math.abs(x[i + 1]); l2 += Math.abs(x[i + 2]); l3 += Math.abs(x[i + 3]);
    l4 += Math.abs(x[i + 4]); l5 += Math.abs(x[i + 5]); l6 += Math.abs(x[i + 6]); l7 += Math.abs(x[i + 7]);
    l8 += Math.abs(x[i + 8]); l9 += Math.abs(x[i + 9]); l10 += Math.abs(x[i + 10]); l11 += Math.abs(x[i + 11]);
    l12 += Math.abs(x[i + 12]); l13 += Math.abs(x[i + 13]); l14 += Math.abs(x[i + 14]); l15 += Math.abs(x[i + 15]);
  }
  const s = (((l0 + l8) + (l4 + l12)) + ((l2 + l10) + (l6 + l14))) + (((l1 + l9) + (l5 + l13)) + ((l3 + l11) + (l7 + l15)));
  let g = 0;
  let inv = 0;
  if (s !== 0) {
    g = Math.max(Math.fround(s / n), Math.fround(1e-5));
    inv = Math.fround(1 / g);
  }
  const d = f16Bits(g);
  return packTq2(x, new Uint8Array((n >> 8) * 66), () => inv, () => d);
}

/** absmax per 256-block (ggml's reference TQ2_0 quantizer). */
function jsTq2AbsmaxBlock(x) {
  const nb = x.length >> 8;
  const inv = new Float64Array(nb);
  const d = new Uint16Array(nb);
  for (let b = 0; b < nb; b++) {
    let m = 0;
    for (let i = b << 8, end = i + 256; i < end; i++) {
      const a = Math.abs(x[i]);
      if (a > m) m = a;
    }
    inv[b] = m === 0 ? 0 : Math.fround(1 / m);
    d[b] = f16Bits(m);
  }
  return packTq2(x, new Uint8Array(nb * 66), (b) => inv[b], (b) => d[b]);
}

/** Plain-JS f32 GEMV (f64 accumulation, 4 partial sums). */
function jsGemv(w, rows, cols, x) {
  const y = new Float32Array(rows);
  for (let r = 0; r < rows; r++) {
    const o = r * cols;
    let a0 = 0, a1 = 0, a2 = 0, a3 = 0;
    for (let k = 0; k < cols; k += 4) {
      a0 += w[o + k] * x[k];
      a1 += w[o + k + 1] * x[k + 1];
      a2 += w[o + k + 2] * x[k + 2];
      a3 += w[o + k + 3] * x[k + 3];
    }
    y[r] = a0 + a1 + a2 + a3;
  }
  return y;
}

function sameBytes(a, b, what) {
  if (a.length !== b.length) throw new Error(`${what}: ${a.length} bytes vs ${b.length}`);
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) throw new Error(`${what}: bytes differ at ${i}`);
}

// ------------------------------------------------------------------ run

await tq.init();
const simd = await tq.loadBuild({ simd: true });
const scalar = await tq.loadBuild({ simd: false });
const builds = [
  ['wasm SIMD128 build', simd],
  ['wasm scalar build', scalar],
];

const QR = 1024;
const QC = 4096;
const qn = QR * QC;
const wq = randomMatrix(qn, 1, 0.05);
const rules = [
  ['bitnet (absmean/tensor)', { preset: 'bitnet' }, jsTq2AbsmeanTensor],
  ['absmax/block', { layout: 'tq2_0', rule: 'absmax', scope: 'block', blockSize: 256 }, jsTq2AbsmaxBlock],
];

const quantRows = [];
for (const [label, opts, js] of rules) {
  const ref = js(wq);
  for (const [name, api] of builds) {
    const t = api.quantizeTernary(wq, QR, QC, opts);
    sameBytes(t.bytes, ref, `${label}: plain JS vs ${name}`);
    t.free();
  }
  const rows = [];
  for (const [name, api] of builds) rows.push({ impl: name, ms: time(() => api.quantizeTernary(wq, QR, QC, opts).free()) });
  rows.push({ impl: 'plain JS', ms: time(() => js(wq)) });
  // The same input already in wasm memory (an F32Buffer): what the call costs without
  // its copy, against the kernel alone in the wasm kernel bench.
  for (const [name, api] of builds) {
    const input = api.F32Buffer.from(wq);
    sameBytes(api.quantizeTernary(input, QR, QC, opts).bytes, ref, `${label}: plain JS vs ${name} from an F32Buffer`);
    rows.push({ impl: `${name}, F32Buffer`, ms: time(() => api.quantizeTernary(input, QR, QC, opts).free()) });
    input.free();
  }
  const jsMs = rows[2].ms;
  for (const r of rows) quantRows.push({ rule: label, ...r, gvps: qn / r.ms / 1e6, vsJs: jsMs / r.ms });
}

const GR = 4096;
const GC = 4096;
const gn = GR * GC;
const wg = randomMatrix(gn, 2, 0.02);
const xg = randomMatrix(GC, 3, 1);
const gemvRows = [];
{
  const tensors = builds.map(([, api]) => api.quantizeTernary(wg, GR, GC, { preset: 'bitnet' }));
  // agreement before timing: ternary GEMV of both builds, f32 GEMV against plain JS
  const ys = builds.map(([, api], i) => api.ternaryMatVec(tensors[i], xg));
  const fy = simd.matVecF32(wg, GR, GC, xg);
  const jy = jsGemv(wg, GR, GC, xg);
  for (let r = 0; r < GR; r++) {
    if (Math.abs(ys[0][r] - ys[1][r]) > 1e-3 * (Math.abs(ys[1][r]) + 1)) throw new Error(`ternary GEMV builds differ at row ${r}`);
    if (Math.abs(fy[r] - jy[r]) > 1e-3 * (Math.abs(jy[r]) + 1)) throw new Error(`f32 GEMV differs from plain JS at row ${r}`);
  }
  const copy = new Float32Array(gn);
  const wgBuffer = simd.F32Buffer.from(wg);
  const entries = [
    ['ternaryMatVec, TQ2_0 bitnet', 'wasm SIMD128 build', () => simd.ternaryMatVec(tensors[0], xg)],
    ['ternaryMatVec, TQ2_0 bitnet', 'wasm scalar build', () => scalar.ternaryMatVec(tensors[1], xg)],
    ['matVecF32 (copies W into wasm)', 'wasm SIMD128 build', () => simd.matVecF32(wg, GR, GC, xg)],
    ['matVecF32 (copies W into wasm)', 'wasm scalar build', () => scalar.matVecF32(wg, GR, GC, xg)],
    ['f32 GEMV', 'plain JS', () => jsGemv(wg, GR, GC, xg)],
    ['copy of W alone (Float32Array.set)', 'plain JS', () => copy.set(wg)],
    ['matVecF32, W in an F32Buffer', 'wasm SIMD128 build', () => simd.matVecF32(wgBuffer, GR, GC, xg)],
  ];
  for (const [what, impl, fn] of entries) gemvRows.push({ what, impl, ms: time(fn) });
  for (const t of tensors) t.free();
  wgBuffer.free();
  const f32Simd = gemvRows[2].ms;
  const js = gemvRows[4].ms;
  for (const r of gemvRows) Object.assign(r, { gvps: gn / r.ms / 1e6, vsF32Simd: f32Simd / r.ms, vsJs: js / r.ms });
}

const pkgDir = fileURLToPath(new URL('../pkg/', import.meta.url));
const sizes = Object.fromEntries(['simd', 'scalar'].map((v) => [v, statSync(`${pkgDir}${v}/ternary_quant_bg.wasm`).size]));
const version = JSON.parse(readFileSync(`${pkgDir}package.json`, 'utf8')).version;
const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical cores (1 used)`;

if (asJson) {
  console.log(JSON.stringify({ version, node: process.version, machine, backends: { simd: simd.backend(), scalar: scalar.backend() }, quantize: quantRows, gemv: gemvRows, wasmBytes: sizes }, null, 2));
} else {
  const f = (v, d = 2) => v.toFixed(d);
  console.log(`ternary-quant ${version} in Node ${process.version}; ${machine}`);
  console.log(`kernel backend: SIMD128 build reports '${simd.backend()}', scalar build '${scalar.backend()}'; median of runs >= ${minMs} ms\n`);
  console.log(`Quantize f32 -> TQ2_0, ${QR} x ${QC} (${f(qn / 1e6)} M values); bytes checked equal across all three`);
  console.log(`${'rule'.padEnd(26)}${'implementation'.padEnd(32)}${'ms'.padStart(9)}${'G values/s'.padStart(12)}${'x plain JS'.padStart(12)}`);
  for (const r of quantRows) {
    console.log(`${r.rule.padEnd(26)}${r.impl.padEnd(32)}${f(r.ms).padStart(9)}${f(r.gvps, 3).padStart(12)}${f(r.vsJs).padStart(12)}`);
  }
  for (const [label] of rules) {
    const [a, b, , c] = quantRows.filter((r) => r.rule === label);
    console.log(`  ${label}: SIMD128 build / scalar build = ${f(b.ms / a.ms)}x; F32Buffer input / Float32Array input, SIMD128 = ${f(a.ms / c.ms)}x`);
  }
  console.log(`\nGEMV y = W x, ${GR} x ${GC} (${f(gn / 1e6)} M weights)`);
  console.log(`${'operation'.padEnd(36)}${'implementation'.padEnd(21)}${'ms'.padStart(9)}${'G values/s'.padStart(12)}${'x f32 SIMD'.padStart(12)}${'x plain JS'.padStart(12)}`);
  for (const r of gemvRows) {
    console.log(`${r.what.padEnd(36)}${r.impl.padEnd(21)}${f(r.ms).padStart(9)}${f(r.gvps, 3).padStart(12)}${f(r.vsF32Simd).padStart(12)}${f(r.vsJs).padStart(12)}`);
  }
  const copyMs = gemvRows[5].ms;
  console.log(`  ternary (SIMD128 build) vs f32 matVecF32 (SIMD128 build): ${f(gemvRows[2].ms / gemvRows[0].ms)}x; ` +
    `vs matVecF32 less the copy of W (${f(copyMs)} ms): ${f((gemvRows[2].ms - copyMs) / gemvRows[0].ms)}x; vs plain JS: ${f(gemvRows[4].ms / gemvRows[0].ms)}x`);
  console.log(`\n.wasm sizes: simd/ ${sizes.simd} bytes (${f(sizes.simd / 1024, 1)} KiB), scalar/ ${sizes.scalar} bytes (${f(sizes.scalar / 1024, 1)} KiB)`);
}
