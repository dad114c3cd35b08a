// Wasm memory stays bounded: many quantize/free cycles (and rejected calls) do not grow
// the linear memory once the allocator has warmed up.
//
// The public API has no way to read the memory size; wasmMemoryBytes() in helpers.mjs
// works around that (see there) until the package exports something like memoryBytes().
import assert from 'node:assert/strict';
import { before, test } from 'node:test';
import {
  errorStats,
  init,
  loadBuild,
  matVecF32,
  QuantizationEngine,
  quantizeBatch,
  quantizeInt8,
  quantizeTernary,
  ternaryMatVec,
} from 'ternary-quant';
import { normal, wasmMemoryBytes } from './helpers.mjs';

const MiB = 2 ** 20;
let variant;

before(async () => {
  const { backend } = await init();
  variant = 'simd'; // Node has SIMD128, so init() loads the SIMD build
  assert.ok(['simd128', 'scalar'].includes(backend));
});

function cycle(api, w, x, nan) {
  const t = api.quantizeTernary(w, 4, 1024, { preset: 'accurate' });
  if (t.bytes.length !== 16 * 66) throw new Error('bad bytes');
  t.codes();
  const dq = t.dequantize();
  api.ternaryMatVec(t, x);
  t.free();
  const q = api.quantizeInt8(w, 4, 1024, { layout: 'q8_0' });
  q.values;
  q.free();
  api.errorStats(w, dq);
  api.matVecF32(w, 4, 1024, x);
  try {
    api.quantizeTernary(nan, 4, 1024);
  } catch {
    // rejected: the copied input must still be released
  }
  const batch = api.quantizeBatch({ a: { data: w, rows: 4, cols: 1024 }, b: { data: dq, rows: 4, cols: 1024 } });
  for (const t of batch.tensors.values()) t.free();
  try {
    api.quantizeBatch({ a: { data: w, rows: 4, cols: 1024 }, b: { data: nan, rows: 4, cols: 1024 } });
  } catch {
    // rejected after the first tensor was quantized
  }
}

test('10,000 quantize/free cycles: memory after 10,000 equals memory after 1,000', async () => {
  const w = normal(4 * 1024, 1);
  const x = normal(1024, 2);
  const nan = w.slice();
  nan[4000] = NaN;
  const api = { quantizeTernary, quantizeInt8, ternaryMatVec, errorStats, matVecF32, quantizeBatch };
  const start = await wasmMemoryBytes(variant);
  for (let i = 0; i < 1000; i++) cycle(api, w, x, nan);
  const after1k = await wasmMemoryBytes(variant);
  for (let i = 1000; i < 10000; i++) cycle(api, w, x, nan);
  const after10k = await wasmMemoryBytes(variant);
  const msg = `start ${start / MiB} MiB, after 1,000 ${after1k / MiB} MiB, after 10,000 ${after10k / MiB} MiB`;
  // Each cycle copies 16 KiB in and about 100 KiB out: a leak of any of it would add
  // hundreds of MiB over 9,000 cycles. Allow one MiB of allocator slack.
  assert.ok(after10k - after1k <= MiB, msg);
  assert.ok(after1k - start <= 4 * MiB, msg);
});

test('the scalar build (loadBuild) stays bounded too', async () => {
  const scalar = await loadBuild({ simd: false });
  const w = normal(4 * 1024, 3);
  const x = normal(1024, 4);
  const nan = w.slice();
  nan[0] = NaN;
  for (let i = 0; i < 500; i++) cycle(scalar, w, x, nan);
  const a = await wasmMemoryBytes('scalar');
  for (let i = 0; i < 3000; i++) cycle(scalar, w, x, nan);
  const b = await wasmMemoryBytes('scalar');
  assert.ok(b - a <= MiB, `scalar build: ${a / MiB} -> ${b / MiB} MiB`);
});

test('an engine cache filled and cleared again and again does not grow memory', async () => {
  const e = new QuantizationEngine({ preset: 'bitnet' });
  const inputs = Array.from({ length: 40 }, (_, i) => normal(8 * 1024, 100 + i));
  let afterFirst;
  for (let round = 0; round < 15; round++) {
    for (const w of inputs) e.quantizeWeights(w, 8, 1024).free();
    assert.equal(e.cacheStats().entries, 40);
    e.clearCache();
    if (round === 2) afterFirst = await wasmMemoryBytes(variant);
  }
  const end = await wasmMemoryBytes(variant);
  assert.ok(end - afterFirst <= MiB, `engine rounds: ${afterFirst / MiB} -> ${end / MiB} MiB`);
  assert.equal(e.cacheStats().hits, 0);
  assert.equal(e.cacheStats().misses, 600);
  e.free();
});

test('a large tensor, quantized and freed repeatedly, reuses its memory', async () => {
  const rows = 256;
  const cols = 4096;
  const w = normal(rows * cols, 9, 0.02); // 4 MiB of f32
  const t0 = quantizeTernary(w, rows, cols);
  t0.free();
  const a = await wasmMemoryBytes(variant);
  for (let i = 0; i < 30; i++) {
    const t = quantizeTernary(w, rows, cols, { preset: i % 2 ? 'bitnet' : 'compact' });
    t.dequantize();
    t.free();
  }
  const b = await wasmMemoryBytes(variant);
  assert.ok(b - a <= 8 * MiB, `large tensors: ${a / MiB} -> ${b / MiB} MiB`);
});
