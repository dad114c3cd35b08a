// The public API through `import 'ternary-quant'`, checked against the plain-JS model
// of the quantizers in helpers.mjs.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import {
  backend,
  errorStats,
  estimateModelSize,
  init,
  Int8Tensor,
  matVecF32,
  presets,
  QuantizationEngine,
  quantizeBatch,
  quantizeInt8,
  quantizeTernary,
  simdSupported,
  TernaryTensor,
  ternaryMatVec,
} from 'ternary-quant';
import {
  absMax,
  assertArrayEqual,
  assertBytesEqual,
  int8TieData,
  matVecF64,
  modelInt8Blocks,
  modelInt8Plain,
  modelTernary,
  normal,
  tieData,
} from './helpers.mjs';

before(async () => {
  await init();
});

const RULES = ['absmean', 'absmax', 'median', 'twn', 'optimal'];

/** Every valid layout x rule x scope, with a shape that layout can store. */
function validCombinations() {
  const out = [];
  for (const rule of RULES) {
    for (const layout of ['tq2_0', 'tq1_0']) {
      out.push({ layout, rule, scope: 'tensor' }, { layout, rule, scope: 'row' });
      out.push({ layout, rule, scope: 'block', blockSize: 256 });
    }
    out.push({ layout: 'bitnet-hf', rule, scope: 'tensor' });
    out.push({ layout: 'i2_s', rule, scope: 'tensor' });
    out.push({ layout: 'codes', rule, scope: 'tensor' }, { layout: 'codes', rule, scope: 'row' });
    out.push({ layout: 'codes', rule, scope: 'block', blockSize: 256 });
    out.push({ layout: 'codes', rule, scope: 'block', blockSize: 64 });
  }
  return out;
}

/** 3 x 512 with an all-zero middle row (an all-zero scope gives scale 0, codes 0). */
function weights(seed, rows = 3, cols = 512) {
  const w = normal(rows * cols, seed, 0.05);
  if (rows >= 3) w.fill(0, cols, 2 * cols);
  return w;
}

function checkTernary(t, data, rows, cols, opts) {
  const m = modelTernary(data, rows, cols, opts);
  const what = JSON.stringify(opts);
  assert.ok(t instanceof TernaryTensor);
  assert.equal(t.rows, rows);
  assert.equal(t.cols, cols);
  assert.equal(t.layout, opts.layout);
  assert.equal(t.scope, opts.scope);
  assert.equal(t.blockSize, opts.scope === 'block' ? opts.blockSize : undefined);
  const bytes = t.bytes;
  assert.ok(bytes instanceof Uint8Array, `${what}: bytes is a Uint8Array`);
  assertBytesEqual(bytes, m.bytes, `${what} bytes`);
  assert.ok(t.scales instanceof Float32Array);
  assertArrayEqual(t.scales, m.scales, `${what} scales`);
  const codes = t.codes();
  assert.ok(codes instanceof Int8Array);
  assertArrayEqual(codes, m.codes, `${what} codes`);
  const dq = t.dequantize();
  assert.ok(dq instanceof Float32Array);
  assertArrayEqual(dq, m.dequantized, `${what} dequantize`);
  assert.equal(t.byteLength, m.byteLength, `${what} byteLength`);
  assert.equal(t.bitsPerWeight, (8 * m.byteLength) / (rows * cols), `${what} bitsPerWeight`);
}

describe('init and backend', () => {
  test('init is idempotent and reports the backend', async () => {
    const a = await init();
    const b = await init();
    assert.deepEqual(a, b);
    assert.ok(['simd128', 'scalar'].includes(a.backend));
    assert.equal(backend(), a.backend);
    assert.equal(typeof simdSupported(), 'boolean');
    assert.equal(simdSupported(), true, 'Node 20 on x86_64 has SIMD128');
  });

  test('presets', () => {
    assert.deepEqual(Object.keys(presets).sort(), ['accurate', 'best', 'bitnet', 'compact', 'lossless']);
    assert.ok(Object.isFrozen(presets));
    const pick = (p) => ({ layout: p.layout, rule: p.rule, scope: p.scope, blockSize: p.blockSize });
    assert.deepEqual(pick(presets.bitnet), { layout: 'tq2_0', rule: 'absmean', scope: 'tensor', blockSize: undefined });
    assert.deepEqual(pick(presets.compact), { layout: 'tq1_0', rule: 'absmean', scope: 'tensor', blockSize: undefined });
    assert.deepEqual(pick(presets.lossless), { layout: 'tq2_0', rule: 'absmax', scope: 'block', blockSize: 256 });
    assert.deepEqual(pick(presets.accurate), { layout: 'tq2_0', rule: 'absmean', scope: 'row', blockSize: undefined });
    assert.deepEqual(pick(presets.best), { layout: 'tq2_0', rule: 'optimal', scope: 'block', blockSize: 256 });
    for (const [name, p] of Object.entries(presets)) {
      assert.equal(p.name, name);
      assert.equal(typeof p.description, 'string');
      assert.ok(p.description.length > 0);
    }
  });

  test('each preset quantizes as its options say; no options is bitnet', () => {
    const w = weights(11);
    for (const [name, p] of Object.entries(presets)) {
      const opts = { layout: p.layout, rule: p.rule, scope: p.scope, ...(p.blockSize ? { blockSize: p.blockSize } : {}) };
      const t = quantizeTernary(w, 3, 512, { preset: name });
      checkTernary(t, w, 3, 512, opts);
      t.free();
    }
    const d = quantizeTernary(w, 3, 512);
    const b = quantizeTernary(w, 3, 512, { preset: 'bitnet' });
    assertBytesEqual(d.bytes, b.bytes, 'default vs bitnet');
    // a preset with overrides
    const o = quantizeTernary(w, 3, 512, { preset: 'compact', scope: 'row' });
    checkTernary(o, w, 3, 512, { layout: 'tq1_0', rule: 'absmean', scope: 'row' });
    for (const t of [d, b, o]) t.free();
  });
});

describe('quantizeTernary', () => {
  for (const opts of validCombinations()) {
    test(`${opts.layout} ${opts.rule} ${opts.scope}${opts.blockSize ? ' ' + opts.blockSize : ''}`, () => {
      for (const [rows, cols, seed] of [
        [3, 512, 1],
        [1, 256, 2],
        [5, 1024, 3],
      ]) {
        const w = weights(seed, rows, cols);
        const t = quantizeTernary(w, rows, cols, opts);
        checkTernary(t, w, rows, cols, opts);
        t.free();
      }
      // exact ties of the rule's rounding
      const tie = tieData(4 * 512, 9, opts.rule === 'absmax' ? 'max' : 'mean');
      const t = quantizeTernary(tie, 4, 512, opts);
      checkTernary(t, tie, 4, 512, opts);
      t.free();
    });
  }

  test('bitnet-hf with rows not a multiple of 4 and any row length', () => {
    for (const [rows, cols] of [
      [1, 7],
      [5, 40],
      [6, 3],
      [9, 100],
    ]) {
      const w = normal(rows * cols, rows * 100 + cols);
      for (const rule of RULES) {
        const opts = { layout: 'bitnet-hf', rule, scope: 'tensor' };
        const t = quantizeTernary(w, rows, cols, opts);
        checkTernary(t, w, rows, cols, opts);
        assert.equal(t.bytes.length, Math.ceil(rows / 4) * cols);
        t.free();
      }
    }
  });

  test('codes with odd shapes', () => {
    const w = normal(7 * 3, 77);
    for (const scope of ['tensor', 'row']) {
      const t = quantizeTernary(w, 7, 3, { layout: 'codes', rule: 'absmean', scope });
      checkTernary(t, w, 7, 3, { layout: 'codes', rule: 'absmean', scope });
      t.free();
    }
    const t = quantizeTernary(w, 7, 3, { layout: 'codes', rule: 'twn', scope: 'block', blockSize: 3 });
    checkTernary(t, w, 7, 3, { layout: 'codes', rule: 'twn', scope: 'block', blockSize: 3 });
    t.free();
  });

  test('sizes: TQ2_0 66 bytes and TQ1_0 54 bytes per 256 values, exactly', () => {
    const w = normal(4 * 1024, 5);
    const a = quantizeTernary(w, 4, 1024, { layout: 'tq2_0' });
    assert.equal(a.bytes.length, 16 * 66);
    assert.equal(a.byteLength, 16 * 66);
    assert.equal(a.bitsPerWeight, 2.0625);
    const b = quantizeTernary(w, 4, 1024, { layout: 'tq1_0' });
    assert.equal(b.bytes.length, 16 * 54);
    assert.equal(b.bitsPerWeight, 1.6875);
    const c = quantizeTernary(w, 4, 1024, { layout: 'codes', scope: 'row' });
    assert.equal(c.byteLength, 4 * 1024 + 4 * 4);
    for (const t of [a, b, c]) t.free();
  });

  test('a subarray view with an offset quantizes as its copy; the input is not changed', () => {
    const big = normal(3 * 512 + 7, 8);
    const before = big.slice();
    const view = big.subarray(7);
    const a = quantizeTernary(view, 3, 512, { layout: 'tq2_0', rule: 'absmax', scope: 'block' });
    const b = quantizeTernary(view.slice(), 3, 512, { layout: 'tq2_0', rule: 'absmax', scope: 'block' });
    assertBytesEqual(a.bytes, b.bytes, 'view vs copy');
    assertArrayEqual(big, before, 'input unchanged');
    a.free();
    b.free();
  });

  test('getters return fresh copies', () => {
    const w = normal(512, 4);
    const t = quantizeTernary(w, 2, 256);
    const b1 = t.bytes;
    b1.fill(0);
    assert.notDeepEqual(t.bytes, b1);
    const s1 = t.scales;
    s1[0] = 123;
    assert.notEqual(t.scales[0], 123);
    const c1 = t.codes();
    c1.fill(9);
    assert.ok(t.codes().every((c) => c >= -1 && c <= 1));
    t.free();
  });

  test('free is idempotent', () => {
    const t = quantizeTernary(normal(256, 1), 1, 256);
    t.free();
    t.free();
    assert.throws(() => t.bytes, /has been freed/);
  });
});

describe('quantizeInt8', () => {
  const x = normal(4 * 256, 21, 3);

  const plainCases = [
    {},
    { scope: 'row' },
    { scope: 'tensor' },
    { scope: 'block' },
    { scope: 'block', blockSize: 64 },
    { symmetric: false },
    { symmetric: false, scope: 'tensor' },
    { symmetric: false, scope: 'block', blockSize: 128 },
    { clip: 1.5 },
    { clip: 0.75, symmetric: false },
    { clip: 2, scope: 'tensor' },
    { percentile: 99.9 },
    { percentile: 50, scope: 'block' },
    { percentile: 100 },
    { percentile: 90, symmetric: false },
  ];
  for (const opts of plainCases) {
    test(`plain ${JSON.stringify(opts)}`, () => {
      for (const data of [x, int8TieData(4 * 256, 3)]) {
        const t = quantizeInt8(data, 4, 256, opts);
        const m = modelInt8Plain(data, 4, 256, opts);
        assert.ok(t instanceof Int8Tensor);
        assert.equal(t.layout, 'plain');
        assert.equal(t.scope, opts.scope ?? 'row');
        assert.equal(t.symmetric, opts.symmetric ?? true);
        assert.equal(t.rows, 4);
        assert.equal(t.cols, 256);
        assert.ok(t.values instanceof Int8Array);
        assertArrayEqual(t.values, m.values, 'values');
        assertArrayEqual(t.scales, m.scales, 'scales');
        assert.ok(t.zeroPoints instanceof Int32Array);
        assertArrayEqual(t.zeroPoints, m.zeroPoints, 'zeroPoints');
        assertBytesEqual(t.bytes, m.bytes, 'bytes');
        assert.equal(t.byteLength, m.byteLength);
        assertArrayEqual(t.dequantize(), m.dequantized, 'dequantize');
        if (opts.symmetric !== false) assert.ok(t.values.every((v) => v >= -127 && v <= 127));
        t.free();
      }
    });
  }

  test('symmetric int8 ties round half away from zero', () => {
    const data = new Float32Array([127, 0.5, -0.5, 1.5, -1.5, 2.5, -2.5, 126.5]);
    const t = quantizeInt8(data, 1, 8, { scope: 'tensor' });
    assert.deepEqual(Array.from(t.values), [127, 1, -1, 2, -2, 3, -3, 127]);
    assert.deepEqual(Array.from(t.scales), [1]);
    t.free();
  });

  for (const layout of ['q8_0', 'q8_k']) {
    test(`${layout} blocks`, () => {
      for (const data of [x, int8TieData(4 * 256, 4)]) {
        const t = quantizeInt8(data, 4, 256, { layout });
        const m = modelInt8Blocks(data, layout);
        assert.equal(t.layout, layout);
        assert.equal(t.scope, 'block');
        assert.equal(t.symmetric, true);
        assertBytesEqual(t.bytes, m.bytes, `${layout} bytes`);
        assertArrayEqual(t.values, m.values, `${layout} values`);
        assertArrayEqual(t.scales, m.scales, `${layout} scales`);
        assert.equal(t.byteLength, layout === 'q8_0' ? 32 * 34 : 4 * 292);
        const dq = t.dequantize();
        for (let i = 0; i < dq.length; i++) {
          assert.equal(dq[i], Math.fround(m.values[i] * m.scales[Math.floor(i / (layout === 'q8_0' ? 32 : 256))]));
        }
        t.free();
      }
    });
  }

  test('all-zero input gives scale 0 and zeros', () => {
    const z = new Float32Array(64);
    for (const opts of [{}, { symmetric: false }, { layout: 'q8_0' }]) {
      const t = quantizeInt8(z, 2, 32, opts);
      assert.ok(t.values.every((v) => v === 0));
      assert.ok(t.scales.every((s) => s === 0));
      assert.ok(t.dequantize().every((v) => v === 0));
      t.free();
    }
  });
});

describe('errorStats', () => {
  test('matches a plain-JS f64 computation', () => {
    const a = normal(1000, 31);
    const b = a.map((v, i) => v + (i % 7) * 0.01 - 0.03);
    const s = errorStats(a, b);
    let ss = 0;
    let se = 0;
    let sd = 0;
    let sb = 0;
    let mx = 0;
    for (let i = 0; i < a.length; i++) {
      const e = a[i] - b[i];
      ss += a[i] * a[i];
      se += e * e;
      sd += a[i] * b[i];
      sb += b[i] * b[i];
      mx = Math.max(mx, Math.abs(e));
    }
    const close = (x, y, what) => assert.ok(Math.abs(x - y) <= 1e-12 * Math.max(1, Math.abs(y)), `${what}: ${x} vs ${y}`);
    assert.deepEqual(Object.keys(s).sort(), ['cosine', 'maxAbsError', 'mse', 'rmse', 'snrDb']);
    close(s.mse, se / a.length, 'mse');
    close(s.rmse, Math.sqrt(se / a.length), 'rmse');
    assert.equal(s.maxAbsError, mx);
    close(s.snrDb, 10 * Math.log10(ss / se), 'snrDb');
    close(s.cosine, sd / Math.sqrt(ss * sb), 'cosine');
  });

  test('identical inputs: zero error, infinite SNR, cosine 1; zero vectors', () => {
    const a = normal(100, 3);
    const s = errorStats(a, a.slice());
    assert.equal(s.mse, 0);
    assert.equal(s.maxAbsError, 0);
    assert.equal(s.snrDb, Infinity);
    assert.equal(s.cosine, 1);
    const z = new Float32Array(10);
    assert.equal(errorStats(z, z).cosine, 1);
    assert.equal(errorStats(z, new Float32Array(10).fill(1)).cosine, 0);
  });

  test('of a quantization: the dequantized tensor is close', () => {
    const w = normal(4096, 5);
    const t = quantizeTernary(w, 16, 256, { preset: 'accurate' });
    const s = errorStats(w, t.dequantize());
    assert.ok(s.cosine > 0.8 && s.cosine < 1, `cosine ${s.cosine}`);
    assert.ok(s.snrDb > 3, `snr ${s.snrDb}`);
    t.free();
  });
});

describe('ternaryMatVec and matVecF32', () => {
  // Tolerance: x is quantized to int8 with d_x = absmax/127 per 256-block (TQ2_0, as
  // Q8_K) or per token (other layouts), so each x value moves by at most d_x/2 and
  // |y_r - (W' x)_r| <= sum_k |W'_rk| * d_x(k)/2, where W' is the dequantized tensor;
  // f32 accumulation adds 1e-5 * sum_k |W'_rk x_k| on top.
  function checkGemv(t, x, what) {
    const { rows, cols, layout } = t;
    const wq = t.dequantize();
    const y = ternaryMatVec(t, x);
    assert.ok(y instanceof Float32Array);
    assert.equal(y.length, rows);
    const ref = matVecF32(wq, rows, cols, x);
    const exact = matVecF64(wq, rows, cols, x);
    const blockD = (k) => {
      const lo = layout === 'tq2_0' ? Math.floor(k / 256) * 256 : 0;
      const hi = layout === 'tq2_0' ? lo + 256 : cols;
      return absMax(x.subarray(lo, hi)) / 127;
    };
    const dk = Float64Array.from({ length: cols }, (_, k) => blockD(k));
    for (let r = 0; r < rows; r++) {
      let bound = 0;
      let mag = 0;
      for (let k = 0; k < cols; k++) {
        bound += (Math.abs(wq[r * cols + k]) * dk[k]) / 2;
        mag += Math.abs(wq[r * cols + k] * x[k]);
      }
      const tol = bound * (1 + 1e-6) + 1e-5 * mag + 1e-30;
      assert.ok(Math.abs(y[r] - ref[r]) <= tol, `${what} row ${r}: ternary ${y[r]} vs f32 ${ref[r]}, tolerance ${tol}`);
      assert.ok(Math.abs(ref[r] - exact[r]) <= 1e-5 * mag + 1e-30, `${what} row ${r}: matVecF32 ${ref[r]} vs f64 ${exact[r]}`);
    }
  }

  for (const opts of [
    { layout: 'tq2_0', rule: 'absmean', scope: 'tensor' },
    { layout: 'tq2_0', rule: 'absmax', scope: 'block' },
    { layout: 'tq2_0', rule: 'median', scope: 'row' },
    { layout: 'tq1_0', rule: 'absmean', scope: 'row' },
    { layout: 'tq1_0', rule: 'twn', scope: 'block' },
    { layout: 'bitnet-hf', rule: 'absmean', scope: 'tensor' },
    { layout: 'codes', rule: 'absmean', scope: 'block', blockSize: 64 },
    { layout: 'codes', rule: 'twn', scope: 'row' },
  ]) {
    test(`${opts.layout} ${opts.rule} ${opts.scope}`, () => {
      const rows = 33;
      const cols = 768;
      const w = normal(rows * cols, 41, 0.02);
      const x = normal(cols, 42);
      x[5] = 0;
      const t = quantizeTernary(w, rows, cols, opts);
      checkGemv(t, x, JSON.stringify(opts));
      // an all-zero x gives zeros
      assert.ok(ternaryMatVec(t, new Float32Array(cols)).every((v) => v === 0));
      t.free();
    });
  }

  test('matVecF32 against plain JS', () => {
    const w = normal(17 * 300, 1);
    const x = normal(300, 2);
    const y = matVecF32(w, 17, 300, x);
    const e = matVecF64(w, 17, 300, x);
    for (let r = 0; r < 17; r++) {
      let mag = 0;
      for (let k = 0; k < 300; k++) mag += Math.abs(w[r * 300 + k] * x[k]);
      assert.ok(Math.abs(y[r] - e[r]) <= 1e-5 * mag, `row ${r}`);
    }
  });

  test('ternary weights that are exactly ternary: GEMV equals the f32 GEMV up to x rounding', () => {
    // W in {-1, 0, 1} * 0.5, x already on the int8 grid of its block: exact.
    const rows = 8;
    const cols = 512;
    const w = Float32Array.from({ length: rows * cols }, (_, i) => (((i * 7) % 3) - 1) * 0.5);
    const x = Float32Array.from({ length: cols }, (_, k) => ((k * 13) % 255) - 127);
    const t = quantizeTernary(w, rows, cols, { preset: 'lossless' });
    assertArrayEqual(t.dequantize(), w, 'lossless dequantize');
    const y = ternaryMatVec(t, x);
    const e = matVecF64(w, rows, cols, x);
    for (let r = 0; r < rows; r++) assert.equal(y[r], e[r], `row ${r}`);
    t.free();
  });
});

describe('QuantizationEngine', () => {
  test('cache: by content, shape and options; hits, misses, bytes; clearCache', () => {
    const e = new QuantizationEngine({ preset: 'bitnet' });
    assert.deepEqual(e.cacheStats(), { entries: 0, hits: 0, misses: 0, bytes: 0 });
    const w = normal(2 * 512, 51);
    const a = e.quantizeWeights(w, 2, 512);
    assert.deepEqual(e.cacheStats(), { entries: 1, hits: 0, misses: 1, bytes: 2 * 2 * 66 });
    // same content in another array: a hit, the same bytes
    const b = e.quantizeWeights(w.slice(), 2, 512);
    assert.deepEqual(e.cacheStats(), { entries: 1, hits: 1, misses: 1, bytes: 264 });
    assertBytesEqual(b.bytes, a.bytes, 'cached bytes');
    // the same array with one value changed: a miss (the key is the content, not the array)
    w[100] += 1;
    const c = e.quantizeWeights(w, 2, 512);
    assert.deepEqual(e.cacheStats(), { entries: 2, hits: 1, misses: 2, bytes: 528 });
    const direct = quantizeTernary(w, 2, 512);
    assertBytesEqual(c.bytes, direct.bytes, 'changed content quantized afresh');
    // the same values with another shape: a miss
    e.quantizeWeights(w, 4, 256).free();
    assert.deepEqual(e.cacheStats(), { entries: 3, hits: 1, misses: 3, bytes: 792 });
    // signed zero is other content
    const z1 = new Float32Array(256);
    const z2 = new Float32Array(256);
    z2[3] = -0;
    e.quantizeWeights(z1, 1, 256).free();
    e.quantizeWeights(z2, 1, 256).free();
    assert.equal(e.cacheStats().misses, 5);
    // freeing a returned tensor does not spoil the cache
    a.free();
    w[100] -= 1;
    const d = e.quantizeWeights(w, 2, 512);
    assert.equal(e.cacheStats().hits, 2);
    assertBytesEqual(d.bytes, b.bytes, 'hit after the first handle was freed');
    e.clearCache();
    assert.deepEqual(e.cacheStats(), { entries: 0, hits: 2, misses: 5, bytes: 0 });
    e.quantizeWeights(w, 2, 512).free();
    assert.deepEqual(e.cacheStats(), { entries: 1, hits: 2, misses: 6, bytes: 264 });
    for (const t of [b, c, d, direct]) t.free();
    e.free();
    assert.throws(() => e.cacheStats(), /has been freed/);
  });

  test('two engines with different options do not share results', () => {
    const w = normal(512, 52);
    const e1 = new QuantizationEngine({ preset: 'bitnet' });
    const e2 = new QuantizationEngine({ layout: 'tq1_0' });
    const a = e1.quantizeWeights(w, 1, 512);
    const b = e2.quantizeWeights(w, 1, 512);
    assert.equal(a.layout, 'tq2_0');
    assert.equal(b.layout, 'tq1_0');
    assert.equal(e2.cacheStats().misses, 1);
    for (const x of [a, b, e1, e2]) x.free();
  });

  test('engine options: preset, overrides, activations', () => {
    const w = normal(2 * 512, 53);
    const e = new QuantizationEngine({ preset: 'lossless', activations: { layout: 'q8_0' } });
    const t = e.quantizeWeights(w, 2, 512);
    checkTernary(t, w, 2, 512, { layout: 'tq2_0', rule: 'absmax', scope: 'block', blockSize: 256 });
    const a = e.quantizeActivations(w, 2, 512);
    assert.ok(a instanceof Int8Tensor);
    assertBytesEqual(a.bytes, modelInt8Blocks(w, 'q8_0').bytes, 'engine activations');
    assert.equal(e.cacheStats().entries, 1, 'activations are not cached');
    const e2 = new QuantizationEngine({ rule: 'twn', scope: 'row', activations: { symmetric: false, scope: 'tensor' } });
    const t2 = e2.quantizeWeights(w, 2, 512);
    checkTernary(t2, w, 2, 512, { layout: 'tq2_0', rule: 'twn', scope: 'row' });
    const a2 = e2.quantizeActivations(w, 2, 512);
    assertArrayEqual(a2.values, modelInt8Plain(w, 2, 512, { symmetric: false, scope: 'tensor' }).values, 'asym act');
    const e3 = new QuantizationEngine();
    const t3 = e3.quantizeWeights(w, 2, 512);
    checkTernary(t3, w, 2, 512, { layout: 'tq2_0', rule: 'absmean', scope: 'tensor' });
    for (const x of [t, a, e, t2, a2, e2, t3, e3]) x.free();
  });

  test('quantizeAndMeasure returns the tensor and its error stats', () => {
    const w = normal(3 * 256, 54);
    const e = new QuantizationEngine({ preset: 'accurate' });
    const { tensor, stats } = e.quantizeAndMeasure(w, 3, 256);
    assert.ok(tensor instanceof TernaryTensor);
    assert.deepEqual(stats, errorStats(w, tensor.dequantize()));
    assert.equal(e.cacheStats().misses, 1);
    const again = e.quantizeAndMeasure(w, 3, 256);
    assert.equal(e.cacheStats().hits, 1);
    assert.deepEqual(again.stats, stats);
    for (const x of [tensor, again.tensor, e]) x.free();
  });
});

describe('quantizeBatch', () => {
  const inputs = () => ({
    'layers.0.attn.q_proj': { data: normal(4 * 256, 61, 0.02), rows: 4, cols: 256 },
    'layers.0.mlp.up_proj': { data: normal(2 * 512, 62, 0.03), rows: 2, cols: 512 },
  });

  function checkBatch(result, named, opts) {
    assert.ok(result.tensors instanceof Map);
    assert.deepEqual([...result.tensors.keys()], Object.keys(named));
    let bytesIn = 0;
    let bytesOut = 0;
    const { report } = result;
    assert.equal(report.tensors.length, Object.keys(named).length);
    for (const [i, [name, { data, rows, cols }]] of Object.entries(named).entries()) {
      const t = result.tensors.get(name);
      checkTernary(t, data, rows, cols, opts);
      const r = report.tensors[i];
      assert.equal(r.name, name);
      assert.equal(r.rows, rows);
      assert.equal(r.cols, cols);
      assert.equal(r.layout, opts.layout);
      assert.equal(r.bytesIn, data.length * 4);
      assert.equal(r.bytesOut, t.byteLength);
      assert.equal(r.bitsPerWeight, t.bitsPerWeight);
      assert.equal(r.compression, (data.length * 4) / t.byteLength);
      const codes = t.codes();
      assert.equal(r.zeroFraction, codes.filter((c) => c === 0).length / codes.length);
      assert.equal(r.scaleMin, Math.min(...t.scales));
      assert.equal(r.scaleMax, Math.max(...t.scales));
      assert.deepEqual(r.stats, errorStats(data, t.dequantize()));
      bytesIn += r.bytesIn;
      bytesOut += r.bytesOut;
    }
    assert.equal(report.bytesIn, bytesIn);
    assert.equal(report.bytesOut, bytesOut);
    assert.equal(report.compression, bytesIn / bytesOut);
    assert.equal(report.bitsPerWeight, (bytesOut * 8) / (bytesIn / 4));
    for (const t of result.tensors.values()) t.free();
  }

  test('plain object, default config (bitnet)', () => {
    const named = inputs();
    checkBatch(quantizeBatch(named), named, { layout: 'tq2_0', rule: 'absmean', scope: 'tensor' });
  });

  test('Map, with a config', () => {
    const named = inputs();
    const map = new Map(Object.entries(named));
    const opts = { layout: 'tq1_0', rule: 'median', scope: 'row' };
    checkBatch(quantizeBatch(map, opts), named, opts);
  });

  test('same names, other content: the results follow the content, never the name', () => {
    const first = quantizeBatch({ w: { data: normal(512, 63), rows: 2, cols: 256 } });
    const second = quantizeBatch({ w: { data: normal(512, 64), rows: 2, cols: 256 } });
    const a = first.tensors.get('w');
    const b = second.tensors.get('w');
    assertBytesEqual(b.bytes, modelTernary(normal(512, 64), 2, 256, { layout: 'tq2_0', rule: 'absmean', scope: 'tensor' }).bytes, 'second batch');
    assert.notDeepEqual(a.bytes, b.bytes);
    assert.notDeepEqual(first.report.tensors[0].stats, second.report.tensors[0].stats);
    a.free();
    b.free();
  });

  test('an empty batch', () => {
    const r = quantizeBatch({});
    assert.equal(r.tensors.size, 0);
    assert.equal(r.report.tensors.length, 0);
    assert.equal(r.report.bytesIn, 0);
  });
});

describe('estimateModelSize', () => {
  test('exact bytes per layout', () => {
    const n = 4096 * 4096;
    const tq2 = estimateModelSize([[4096, 4096]], { layout: 'tq2_0' });
    assert.equal(tq2.bytes, (n / 256) * 66);
    assert.equal(tq2.bytes, 4325376);
    assert.equal(tq2.layout, 'tq2_0');
    assert.equal(tq2.f32Bytes, n * 4);
    assert.equal(tq2.f16Bytes, n * 2);
    assert.equal(tq2.bitsPerWeight, 2.0625);
    assert.equal(tq2.compressionVsF32, (n * 4) / tq2.bytes);
    assert.deepEqual(tq2.storedAs, ['ternary']);
    assert.equal(estimateModelSize([[4096, 4096]], { layout: 'tq1_0' }).bytes, (n / 256) * 54);
    assert.equal(estimateModelSize([[4096, 4096]], { layout: 'bitnet-hf' }).bytes, 1024 * 4096 + 4);
    assert.equal(estimateModelSize([[4096, 4096]], { layout: 'codes', scope: 'row' }).bytes, n + 4 * 4096);
    assert.equal(estimateModelSize([[4096, 4096]], { layout: 'codes', scope: 'block', blockSize: 64 }).bytes, n + 4 * (n / 64));
    assert.deepEqual(tq2.byLayout, {
      tq2_0: (n / 256) * 66,
      tq1_0: (n / 256) * 54,
      'bitnet-hf': 1024 * 4096 + 4,
      i2_s: 4096 * 4096 / 4 + 32,
      q8_0: (n / 32) * 34,
      f16: n * 2,
      f32: n * 4,
    });
  });

  test('the default config is bitnet; fallbacks to Q8_0 and F16; object and Map inputs', () => {
    const shapes = { embed: [32000, 4096], odd32: [64, 96], odd: [100, 100], lm: [4096, 11008] };
    const e = estimateModelSize(shapes);
    assert.equal(e.layout, 'tq2_0');
    const expected = ((32000 * 4096) / 256) * 66 + ((64 * 96) / 32) * 34 + 100 * 100 * 2 + ((4096 * 11008) / 256) * 66;
    assert.equal(e.bytes, expected);
    assert.deepEqual(e.storedAs, ['ternary', 'q8_0', 'f16', 'ternary']);
    assert.deepEqual(estimateModelSize(new Map(Object.entries(shapes))), e);
    assert.deepEqual(estimateModelSize(Object.values(shapes)), e);
    // the estimate equals the bytes a real quantization stores
    const w = normal(3 * 768, 7);
    for (const opts of [{ preset: 'compact' }, { layout: 'codes', scope: 'row' }, { layout: 'bitnet-hf' }]) {
      const t = quantizeTernary(w, 3, 768, opts);
      assert.equal(estimateModelSize([[3, 768]], opts).bytes, t.byteLength, JSON.stringify(opts));
      t.free();
    }
  });
});
