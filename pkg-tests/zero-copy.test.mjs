// F32Buffer: inputs written straight into wasm memory. Every function that takes an f32
// input gives the same result from a buffer as from a Float32Array; the buffer path does
// not copy its input; stale views, foreign and freed buffers are clear errors.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import {
  errorStats,
  F32Buffer,
  init,
  loadBuild,
  matVecF32,
  memoryBytes,
  QuantizationEngine,
  quantizeInt8,
  quantizeTernary,
  simdSupported,
  ternaryMatVec,
} from 'ternary-quant';
import { assertArrayEqual, assertBytesEqual, normal } from './helpers.mjs';

before(async () => {
  await init();
});

/** A buffer holding `values`, filled through its view. */
function bufferOf(values) {
  const buffer = new F32Buffer(values.length);
  buffer.view().set(values);
  return buffer;
}

describe('F32Buffer as an input', () => {
  // The first test of the file, in a fresh instance: the memory holds no free space of
  // the input's size, so a copy of the input would have to grow it.
  test('quantizing from a buffer does not copy the input into wasm memory', () => {
    const rows = 2048;
    const cols = 4096; // 32 MiB of f32
    const buffer = new F32Buffer(rows * cols);
    const view = buffer.view();
    for (let i = 0; i < view.length; i += 4096) view.set(normal(4096, i, 0.02), i);
    const before = memoryBytes();
    const t = quantizeTernary(buffer, rows, cols, { layout: 'tq2_0', rule: 'absmax', scope: 'block' });
    const grown = memoryBytes() - before;
    // The tensor itself is 2.1 MiB (66 bytes per 256 values); a copy would add 32 MiB.
    assert.ok(grown < 8 * 2 ** 20, `memory grew by ${grown} bytes for a ${rows * cols * 4}-byte input`);
    // The same bytes as from the Float32Array (which is copied in, and grows memory).
    const copy = buffer.view().slice();
    const u = quantizeTernary(copy, rows, cols, { layout: 'tq2_0', rule: 'absmax', scope: 'block' });
    assert.ok(memoryBytes() - before >= rows * cols * 4, 'the Float32Array input was copied in');
    assertBytesEqual(t.bytes, u.bytes, 'buffer vs Float32Array');
    for (const x of [t, u, buffer]) x.free();
  });

  test('every f32 input takes a buffer and gives what the Float32Array gives', () => {
    const rows = 5;
    const cols = 512;
    const w = normal(rows * cols, 3, 0.05);
    const x = normal(cols, 4);
    const wb = bufferOf(w);
    const xb = bufferOf(x);
    for (const options of [{ preset: 'bitnet' }, { layout: 'tq1_0', rule: 'optimal', scope: 'block' }, { layout: 'codes', scope: 'row' }]) {
      const a = quantizeTernary(wb, rows, cols, options);
      const b = quantizeTernary(w, rows, cols, options);
      assertBytesEqual(a.bytes, b.bytes, JSON.stringify(options));
      assertArrayEqual(ternaryMatVec(a, xb), ternaryMatVec(b, x), `GEMV ${JSON.stringify(options)}`);
      a.free();
      b.free();
    }
    for (const options of [{ layout: 'plain' }, { layout: 'q8_0' }, { layout: 'q8_k' }]) {
      const a = quantizeInt8(wb, rows, cols, options);
      const b = quantizeInt8(w, rows, cols, options);
      assertBytesEqual(a.bytes, b.bytes, JSON.stringify(options));
      a.free();
      b.free();
    }
    assertArrayEqual(matVecF32(wb, rows, cols, xb), matVecF32(w, rows, cols, x), 'matVecF32');
    assertArrayEqual(matVecF32(wb, rows, cols, x), matVecF32(w, rows, cols, xb), 'matVecF32, mixed inputs');
    const reconstructed = w.map((v) => Math.fround(v * 0.9));
    assert.deepEqual(errorStats(wb, bufferOf(reconstructed)), errorStats(w, reconstructed));

    const engine = new QuantizationEngine({ preset: 'best' });
    const fromBuffer = engine.quantizeAndMeasure(wb, rows, cols);
    assert.deepEqual(engine.cacheStats().misses, 1);
    const fromArray = engine.quantizeWeights(w, rows, cols);
    assert.equal(engine.cacheStats().hits, 1, 'the same content hits the cache whatever holds it');
    assertBytesEqual(fromBuffer.tensor.bytes, fromArray.bytes, 'engine');
    assertBytesEqual(engine.quantizeActivations(wb, rows, cols).bytes, engine.quantizeActivations(w, rows, cols).bytes, 'activations');
    engine.free();
    wb.free();
    xb.free();
  });
});

describe('F32Buffer misuse', () => {
  test('a view detached by a memory growth is refused, and a new view is accepted', () => {
    const w = normal(4 * 256, 9, 0.1);
    const buffer = new F32Buffer(w.length);
    const view = buffer.view();
    view.set(w);
    // A growth between taking the view and the call: writes through `view` would now be lost.
    const big = new F32Buffer(Math.max(memoryBytes(), 2 ** 24) / 4);
    assert.equal(view.length, 0, 'the growth detached the view');
    assert.throws(() => quantizeTernary(buffer, 4, 256), /memory grew after this F32Buffer's view\(\) was taken/);
    // The values written before the growth are still there, under a new view.
    assertArrayEqual(buffer.view(), w, 'values kept');
    const t = quantizeTernary(buffer, 4, 256);
    const u = quantizeTernary(w, 4, 256);
    assertBytesEqual(t.bytes, u.bytes, 'after a new view');
    // set() does not hold a view: no growth can make it stale.
    buffer.set(w);
    for (const x of [t, u, big]) x.free();
    buffer.free();
  });

  test('wrong arguments are typed errors', () => {
    for (const bad of [-1, 1.5, NaN, '4', 2 ** 31]) assert.throws(() => new F32Buffer(bad), RangeError, String(bad));
    assert.throws(() => new F32Buffer(2 ** 30), /wasm memory/, '4 GiB cannot fit');
    const buffer = new F32Buffer(8);
    assert.throws(() => buffer.set(new Float32Array(9)), RangeError);
    assert.throws(() => buffer.set(new Float32Array(4), 5), RangeError);
    assert.throws(() => buffer.set([1, 2]), TypeError);
    buffer.set(Float32Array.of(1, 2), 6);
    assert.deepEqual([...buffer.view()], [0, 0, 0, 0, 0, 0, 1, 2]);
    assert.throws(() => quantizeTernary(buffer, 3, 3), /data has 8 values but rows \* cols = 3 \* 3 = 9/);
    assert.throws(() => quantizeTernary(new Uint8Array(8), 2, 4), /must be a Float32Array or an F32Buffer/);
    buffer.free();
    buffer.free();
    assert.throws(() => buffer.view(), /has been freed/);
    assert.throws(() => quantizeTernary(buffer, 2, 4), /has been freed/);
  });

  test("a buffer from another build's memory is refused", { skip: !simdSupported() && 'needs both builds' }, async () => {
    const scalar = await loadBuild({ simd: false });
    const foreign = new scalar.F32Buffer(256);
    foreign.set(normal(256, 1));
    assert.throws(() => quantizeTernary(foreign, 1, 256), /belongs to another build/);
    const own = scalar.quantizeTernary(foreign, 1, 256);
    assertBytesEqual(own.bytes, scalar.quantizeTernary(foreign.view().slice(), 1, 256).bytes, 'own build');
    for (const x of [own, foreign]) x.free();
  });
});
