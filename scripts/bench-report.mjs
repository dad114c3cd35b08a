#!/usr/bin/env node
// The side-by-side table of scripts/bench.sh: reads the `DATA` and `RESULT` lines that our
// benchmark (examples/wasm_kernel_bench.rs --side-by-side) and ggml's harness print in one
// run, and prints every case as G values/s and as ratios: ours/ggml, ours as a share of the
// machine's single-core read bandwidth (from DRAM, or from the cache where the data stays
// there between calls), and wasm/native. Then the bars of the speed
// goals, each as measured in this run.
//
// Usage: node scripts/bench-report.mjs LOG [--markdown]
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';

const [file, ...flags] = process.argv.slice(2);
if (!file) {
  console.error('usage: node scripts/bench-report.mjs LOG [--markdown]');
  process.exit(2);
}
const markdown = flags.includes('--markdown');

const results = new Map(); // "who build case" -> G values/s
const checksums = new Map(); // "who build" -> data checksum
for (const line of readFileSync(file, 'utf8').split('\n')) {
  const [tag, who, build, a, b] = line.trim().split(/\s+/);
  if (tag === 'RESULT') results.set(`${who} ${build} ${a}`, Number(b));
  if (tag === 'DATA') checksums.set(`${who} ${build}`, a);
}
const sums = new Set(checksums.values());
if (sums.size > 1) {
  console.error(`bench-report: the runs used different data: ${[...checksums].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  process.exit(1);
}

// Bytes each case reads per value, for its share of the read bandwidth: the f32 input of the
// conversions, the TQ2_0 weights (66 bytes per 256) or f32 weights of a GEMV; and the
// bandwidth that applies: DRAM's for 64 MB of input, a 4.3 MB buffer's for the TQ2_0
// weights, which stay in the cache from one GEMV to the next.
const cases = [
  ['quantize_tq2_0_absmax_block', 'f32 -> TQ2_0 (absmax/block)', 4, 'read_bandwidth'],
  ['quantize_q8_k', 'f32 -> Q8_K', 4, 'read_bandwidth'],
  ['quantize_q8_k_ref', 'f32 -> Q8_K, scalar reference', 4, 'read_bandwidth'],
  ['quantize_q8_0', 'f32 -> Q8_0', 4, 'read_bandwidth'],
  ['quantize_q8_0_ref', 'f32 -> Q8_0, scalar reference', 4, 'read_bandwidth'],
  ['f32_to_f16', 'f32 -> F16', 4, 'read_bandwidth'],
  ['gemv_tq2_0', 'GEMV TQ2_0 x Q8_K (weights in cache)', 66 / 256, 'read_bandwidth_tq2_0_weights'],
  // Ours only: the one-off product without prepared weights, and the preparation itself
  // from a copy of the tensor (SIMD128 interleaves the rows by 16; the others keep them).
  ['gemv_tq2_0_unprepared', 'GEMV TQ2_0, weights not prepared', 66 / 256, 'read_bandwidth_tq2_0_weights'],
  ['prepare_tq2_0', 'preparing TQ2_0 weights (from a copy)', 66 / 256, 'read_bandwidth_tq2_0_weights'],
  ['gemv_f32', 'GEMV f32', 4, 'read_bandwidth'],
];
const builds = ['native', 'wasm-relaxed', 'wasm-simd128', 'wasm-scalar'];
const get = (who, build, c) => results.get(`${who} ${build} ${c}`);
const bandwidth = get('machine', 'native', 'read_bandwidth'); // G f32 values/s
const fmt = (v, digits = 2) => (v === undefined || Number.isNaN(v) ? '-' : v.toFixed(digits));
const ratio = (a, b) => (a === undefined || b === undefined ? undefined : a / b);

const header = ['case, 4096 x 4096', 'build', 'ggml', 'ours', 'ours/ggml', 'ours/bandwidth', 'wasm/native'];
const rows = [];
for (const [c, name, bytes, level] of cases) {
  for (const build of builds) {
    const ours = get('ours', build, c);
    const ggml = get('ggml', build, c);
    if (ours === undefined && ggml === undefined) continue;
    // wasm's reach is the SIMD128 build's loop (the scalar build's own loop is slower).
    const limit = get('machine', build === 'native' ? 'native' : 'wasm-simd128', level);
    const share = limit ? ratio(ours * bytes, limit * 4) : undefined;
    const wasmNative = build === 'native' ? undefined : ratio(ours, get('ours', 'native', c));
    rows.push([name, build, fmt(ggml), fmt(ours), fmt(ratio(ours, ggml)), fmt(share), fmt(wasmNative)]);
  }
}

const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical CPUs`;
const print = (cells) =>
  console.log(markdown ? `| ${cells.join(' | ')} |` : cells.map((c, i) => (i < 2 ? c.padEnd(i ? 13 : 38) : c.padStart(15))).join(''));
console.log(`machine: ${machine}; G values/s, best of several runs; data checksum ${[...sums][0] ?? '-'}`);
for (const [level, what] of [
  ['read_bandwidth', 'from DRAM (256 MiB)'],
  ['read_bandwidth_tq2_0_weights', 'of a 4.3 MB buffer (the GEMV weights)'],
]) {
  const gbs = builds.map((b) => [b, get('machine', b, level)]).filter(([, v]) => v !== undefined);
  console.log(`single-core read bandwidth ${what}: ${gbs.map(([b, v]) => `${fmt(v * 4, 1)} GB/s ${b}`).join(', ') || '-'}`);
}
print(header);
if (markdown) print(header.map((_, i) => (i < 2 ? '---' : '---:')));
for (const r of rows) print(r);

// The speed goals, each measured in this run (absolute goals hold for this kind of machine only).
const bars = [
  ['native f32 -> TQ2_0 >= 0.75 of read bandwidth', ratio(get('ours', 'native', 'quantize_tq2_0_absmax_block'), bandwidth), 0.75],
  ['native TQ2_0 GEMV >= 2x ggml', ratio(get('ours', 'native', 'gemv_tq2_0'), get('ggml', 'native', 'gemv_tq2_0')), 2],
  ['wasm SIMD128 TQ2_0 GEMV >= 25 G values/s', get('ours', 'wasm-simd128', 'gemv_tq2_0'), 25],
  ['wasm relaxed-SIMD TQ2_0 GEMV >= 25 G values/s', get('ours', 'wasm-relaxed', 'gemv_tq2_0'), 25],
  ['wasm scalar f32 -> Q8_K >= ggml', ratio(get('ours', 'wasm-scalar', 'quantize_q8_k'), get('ggml', 'wasm-scalar', 'quantize_q8_k')), 1],
];
console.log('goals:');
for (const [name, value, goal] of bars) {
  const verdict = value === undefined ? 'not measured' : value >= goal ? 'met' : 'not met';
  console.log(`  ${name}: ${fmt(value)} (${verdict})`);
}
