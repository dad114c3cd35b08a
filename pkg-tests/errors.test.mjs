// Every error path of the public API: a JS Error with a message that says what is
// wrong (never a wasm trap), and a module that keeps working afterwards.
import assert from 'node:assert/strict';
import { before, describe, test } from 'node:test';
import {
  errorStats,
  estimateModelSize,
  init,
  loadBuild,
  matVecF32,
  QuantizationEngine,
  quantizeBatch,
  quantizeInt8,
  quantizeTernary,
  ternaryMatVec,
} from 'ternary-quant';
import { assertBytesEqual, modelInt8Blocks, modelTernary, normal } from './helpers.mjs';

before(async () => {
  await init();
});

/** Asserts fn throws an Error (not a wasm RuntimeError) of `type` whose message matches every regex. */
function throwsClearly(fn, type, ...patterns) {
  let error;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  assert.ok(error !== undefined, 'expected an error, but the call returned');
  assert.ok(error instanceof Error, `expected an Error, got ${error}`);
  assert.ok(!(error instanceof WebAssembly.RuntimeError), `a wasm trap: ${error.message}`);
  if (type) assert.ok(error instanceof type, `expected ${type.name}, got ${error.constructor.name}: ${error.message}`);
  for (const p of patterns) assert.match(error.message, p);
  assert.ok(!error.message.includes('\n'), `one-line message: ${JSON.stringify(error.message)}`);
  return error;
}

const x512 = normal(512, 1);
const withValue = (data, index, value) => {
  const c = data.slice();
  c[index] = value;
  return c;
};

describe('shapes and lengths', () => {
  test('rows * cols must equal the data length', () => {
    throwsClearly(() => quantizeTernary(x512, 2, 255), RangeError, /512/, /2 \* 255 = 510/);
    throwsClearly(() => quantizeTernary(x512, 3, 256), RangeError, /512/, /768/);
    throwsClearly(() => quantizeInt8(x512, 1, 511), RangeError, /512/, /511/);
    throwsClearly(() => matVecF32(x512, 2, 200, x512.subarray(0, 200)), RangeError, /512/, /400/);
    throwsClearly(() => new QuantizationEngine().quantizeWeights(x512, 1, 256), RangeError, /512/);
    throwsClearly(() => new QuantizationEngine().quantizeActivations(x512, 4, 256), RangeError, /512/);
  });

  test('dimensions must be positive integers', () => {
    for (const bad of [0, -1, 1.5, NaN, Infinity, 2 ** 31, '2', null, undefined, 2n]) {
      throwsClearly(() => quantizeTernary(x512, bad, 256), RangeError, /rows/);
      throwsClearly(() => quantizeTernary(x512, 2, bad), RangeError, /cols/);
    }
    throwsClearly(() => quantizeTernary(new Float32Array(0), 1, 0), RangeError, /cols/);
  });

  test('vector lengths', () => {
    const t = quantizeTernary(x512, 2, 256);
    throwsClearly(() => ternaryMatVec(t, x512.subarray(0, 255)), Error, /x/, /256/, /255/);
    throwsClearly(() => ternaryMatVec(t, x512), Error, /256/, /512/);
    throwsClearly(() => matVecF32(x512, 2, 256, x512.subarray(0, 3)), Error, /x/, /256/, /3/);
    throwsClearly(() => errorStats(x512, x512.subarray(1)), Error, /512/, /511/);
    throwsClearly(() => errorStats(new Float32Array(0), new Float32Array(0)), Error, /empty/);
    t.free();
  });

  test('block layouts need rows that are a multiple of their block', () => {
    const x = normal(300, 2);
    throwsClearly(() => quantizeTernary(x, 3, 100, { layout: 'tq2_0' }), Error, /tq2_0/, /256/, /100/);
    throwsClearly(() => quantizeTernary(x, 3, 100, { layout: 'tq1_0' }), Error, /tq1_0/, /256/, /100/);
    throwsClearly(() => quantizeInt8(x, 3, 100, { layout: 'q8_0' }), Error, /32/, /100/);
    throwsClearly(() => quantizeInt8(x512, 1, 512, { layout: 'q8_k', scope: 'block', blockSize: 32 }), Error, /q8_k/, /256/);
    throwsClearly(() => quantizeInt8(x, 2, 150, { scope: 'block', blockSize: 32 }), Error, /32/, /150/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { layout: 'codes', scope: 'block', blockSize: 100 }), Error, /100/, /256/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { scope: 'block', blockSize: 128 }), Error, /256/, /128/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { layout: 'codes', scope: 'block', blockSize: 0 }), Error, /blockSize/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { layout: 'bitnet-hf', scope: 'row' }), Error, /bitnet-hf/, /tensor/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { layout: 'bitnet-hf', scope: 'block' }), Error, /bitnet-hf/);
  });
});

describe('non-finite values name their index', () => {
  for (const [label, v] of [
    ['NaN', NaN],
    ['+Infinity', Infinity],
    ['-Infinity', -Infinity],
  ]) {
    test(label, () => {
      const re = new RegExp(Number.isNaN(v) ? 'NaN' : 'inf', 'i');
      throwsClearly(() => quantizeTernary(withValue(x512, 7, v), 2, 256), Error, /index 7\b/, re);
      throwsClearly(() => quantizeTernary(withValue(x512, 511, v), 2, 256, { layout: 'codes' }), Error, /index 511\b/);
      throwsClearly(() => quantizeInt8(withValue(x512, 300, v), 2, 256), Error, /index 300\b/, re);
      throwsClearly(() => quantizeInt8(withValue(x512, 33, v), 2, 256, { layout: 'q8_0' }), Error, /index 33\b/);
      throwsClearly(() => errorStats(withValue(x512, 12, v), x512), Error, /index 12\b/, /original/);
      throwsClearly(() => errorStats(x512, withValue(x512, 13, v)), Error, /index 13\b/, /reconstructed/);
      const t = quantizeTernary(x512, 2, 256);
      throwsClearly(() => ternaryMatVec(t, withValue(x512.subarray(0, 256), 200, v)), Error, /index 200\b/, /x/);
      t.free();
      throwsClearly(() => matVecF32(withValue(x512, 400, v), 2, 256, x512.subarray(0, 256)), Error, /index 400\b/);
      throwsClearly(() => matVecF32(x512, 2, 256, withValue(x512.subarray(0, 256), 5, v)), Error, /index 5\b/);
      const e = new QuantizationEngine();
      throwsClearly(() => e.quantizeWeights(withValue(x512, 99, v), 2, 256), Error, /index 99\b/);
      throwsClearly(() => e.quantizeAndMeasure(withValue(x512, 98, v), 2, 256), Error, /index 98\b/);
      throwsClearly(() => e.quantizeActivations(withValue(x512, 97, v), 2, 256), Error, /index 97\b/);
      assert.deepEqual(e.cacheStats(), { entries: 0, hits: 0, misses: 0, bytes: 0 });
      e.free();
      throwsClearly(
        () => quantizeBatch({ ok: { data: x512, rows: 2, cols: 256 }, bad: { data: withValue(x512, 3, v), rows: 2, cols: 256 } }),
        Error,
        /'bad'/,
        /index 3\b/,
      );
    });
  }
});

describe('inputs of the wrong type', () => {
  const notF32 = [new Float64Array(512), Array.from(x512), new Int8Array(512), new Uint8Array(2048), x512.buffer, null, undefined, 'x'];
  test('data must be a Float32Array, and the message names what was given', () => {
    for (const bad of notF32) {
      throwsClearly(() => quantizeTernary(bad, 2, 256), TypeError, /Float32Array/);
      throwsClearly(() => quantizeInt8(bad, 2, 256), TypeError, /Float32Array/);
      throwsClearly(() => errorStats(bad, x512), TypeError, /original/, /Float32Array/);
      throwsClearly(() => errorStats(x512, bad), TypeError, /reconstructed/, /Float32Array/);
      throwsClearly(() => matVecF32(bad, 2, 256, x512.subarray(0, 256)), TypeError, /Float32Array/);
      throwsClearly(() => matVecF32(x512, 2, 256, bad), TypeError, /x/, /Float32Array/);
      throwsClearly(() => new QuantizationEngine().quantizeWeights(bad, 2, 256), TypeError, /Float32Array/);
      throwsClearly(() => quantizeBatch({ w: { data: bad, rows: 2, cols: 256 } }), TypeError, /'w'/, /Float32Array/);
    }
    throwsClearly(() => quantizeTernary(new Float64Array(512), 2, 256), TypeError, /Float64Array/);
    throwsClearly(() => quantizeTernary([1, 2], 1, 2), TypeError, /Array/);
  });

  test('ternaryMatVec needs a TernaryTensor and a Float32Array', () => {
    const t = quantizeTernary(x512, 2, 256);
    const i8 = quantizeInt8(x512, 2, 256);
    for (const bad of [{}, null, undefined, i8, x512, { rows: 2, cols: 256, bytes: t.bytes }]) {
      throwsClearly(() => ternaryMatVec(bad, x512.subarray(0, 256)), TypeError, /TernaryTensor/);
    }
    throwsClearly(() => ternaryMatVec(t, Array.from(x512.subarray(0, 256))), TypeError, /Float32Array/);
    t.free();
    i8.free();
  });

  test('batch and size inputs', () => {
    for (const bad of [null, undefined, 5, 'abc', [['w', { data: x512, rows: 2, cols: 256 }]]]) {
      throwsClearly(() => quantizeBatch(bad), TypeError, /Map or a plain object/);
    }
    throwsClearly(() => quantizeBatch({ w: 5 }), TypeError, /'w'/, /data, rows, cols/);
    throwsClearly(() => quantizeBatch({ w: { data: x512, rows: 2, cols: 255 } }), RangeError, /'w'/, /510/);
    throwsClearly(() => quantizeBatch({ w: { data: normal(256, 1), rows: 2, cols: 128 } }), Error, /'w'/, /256/, /128/);
    throwsClearly(() => estimateModelSize([[1, 2, 3]]), TypeError, /\[rows, cols\]/);
    throwsClearly(() => estimateModelSize([[0, 256]]), RangeError, /rows/);
    throwsClearly(() => estimateModelSize([[256, -1]]), RangeError, /cols/);
    throwsClearly(() => estimateModelSize('abc'), TypeError);
    throwsClearly(() => estimateModelSize([]), Error, /empty/);
  });
});

describe('options', () => {
  test('unknown option names are named', () => {
    throwsClearly(() => quantizeTernary(x512, 2, 256, { lyout: 'tq2_0' }), Error, /'lyout'/, /layout/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { block_size: 256 }), Error, /'block_size'/);
    throwsClearly(() => quantizeInt8(x512, 2, 256, { symetric: false }), Error, /'symetric'/);
    throwsClearly(() => quantizeInt8(x512, 2, 256, { rule: 'absmax' }), Error, /'rule'/);
    throwsClearly(() => new QuantizationEngine({ activation: {} }), Error, /'activation'/);
    throwsClearly(() => new QuantizationEngine({ activations: { clips: 1 } }), Error, /'clips'/);
    throwsClearly(() => quantizeBatch({}, { sope: 'row' }), Error, /'sope'/);
    throwsClearly(() => estimateModelSize([[4, 256]], { foo: 1 }), Error, /'foo'/);
    throwsClearly(() => init({ simdd: true }), TypeError, /'simdd'/);
  });

  test('unknown option values name the key and the value', () => {
    throwsClearly(() => quantizeTernary(x512, 2, 256, { layout: 'tq3_0' }), Error, /layout/, /'tq3_0'/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { layout: 'i3_s' }), Error, /layout/, /'i3_s'/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { rule: 'mean' }), Error, /rule/, /'mean'/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { scope: 'column' }), Error, /scope/, /'column'/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { preset: 'tiny' }), Error, /preset/, /'tiny'/);
    throwsClearly(() => quantizeInt8(x512, 2, 256, { layout: 'q4_0' }), Error, /layout/, /'q4_0'/);
    throwsClearly(() => quantizeInt8(x512, 2, 256, { scope: 'all' }), Error, /scope/, /'all'/);
    throwsClearly(() => new QuantizationEngine({ preset: 'nope' }), Error, /preset/, /'nope'/);
    throwsClearly(() => new QuantizationEngine({ activations: { layout: 'q2' } }), Error, /layout/, /'q2'/);
  });

  test('out-of-range numbers name the option and the value', () => {
    for (const clip of [0, -1, Infinity, NaN]) {
      throwsClearly(() => quantizeInt8(x512, 2, 256, { clip }), Error, /clip/, new RegExp(String(clip).slice(0, 3), 'i'));
    }
    for (const percentile of [0, -5, 100.5, 101]) {
      throwsClearly(() => quantizeInt8(x512, 2, 256, { percentile }), Error, /percentile/, new RegExp(String(percentile)));
    }
    throwsClearly(() => quantizeInt8(x512, 2, 256, { clip: 1, percentile: 99 }), Error, /clip or percentile/);
    for (const opts of [{ symmetric: false }, { clip: 1 }, { percentile: 99 }, { scope: 'row' }, { blockSize: 64 }]) {
      throwsClearly(() => quantizeInt8(x512, 2, 256, { layout: 'q8_0', ...opts }), Error, /q8_0/, /symmetric/);
      throwsClearly(() => quantizeInt8(x512, 2, 256, { layout: 'q8_k', ...opts }), Error, /q8_k/);
    }
  });

  test('options that are not objects', () => {
    for (const bad of ['tq2_0', 42, [], [1], () => 1, true]) {
      throwsClearly(() => quantizeTernary(x512, 2, 256, bad), Error, /options object/);
      throwsClearly(() => quantizeInt8(x512, 2, 256, bad), Error, /options object/);
      throwsClearly(() => new QuantizationEngine(bad), Error, /options object/);
      throwsClearly(() => new QuantizationEngine({ activations: bad }), Error, /options object/);
    }
    throwsClearly(() => init('fast'), TypeError, /object/);
  });

  // Type errors name the option whose value is wrong, with one "Error: " prefix at most.
  test('option values of the wrong type name the key', () => {
    const cases = [
      [() => quantizeTernary(x512, 2, 256, { layout: 5 }), /layout/],
      [() => quantizeTernary(x512, 2, 256, { layout: 'codes', scope: 'block', blockSize: 'x' }), /blockSize/],
      [() => quantizeTernary(x512, 2, 256, { layout: 'codes', scope: 'block', blockSize: 1.5 }), /blockSize/],
      [() => quantizeTernary(x512, 2, 256, { layout: 'codes', scope: 'block', blockSize: -4 }), /blockSize/],
      [() => quantizeInt8(x512, 2, 256, { symmetric: 'yes' }), /symmetric/],
      [() => quantizeInt8(x512, 2, 256, { clip: 'big' }), /clip/],
      [() => new QuantizationEngine({ rule: 3 }), /rule/],
    ];
    for (const [fn, key] of cases) {
      const e = throwsClearly(fn, Error, key);
      assert.doesNotMatch(e.message, /: Error: /, 'no nested "Error: " prefix');
    }
  });

  test('option values of the wrong type are rejected', () => {
    throwsClearly(() => quantizeTernary(x512, 2, 256, { layout: 5 }), Error, /5/, /string/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { layout: 'codes', scope: 'block', blockSize: 'x' }), Error, /"x"/);
    throwsClearly(() => quantizeInt8(x512, 2, 256, { symmetric: 'yes' }), Error, /"yes"/, /boolean/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { layout: 'codes', scope: 'block', blockSize: 2 ** 40 }), Error, /blockSize/, /1099511627776/, /4294967295/);
    throwsClearly(() => quantizeTernary(x512, 2, 256, { layout: 'codes', scope: 'block', blockSize: 2.5 }), Error, /blockSize/, /2\.5/);
  });

  test('init: a second build in one process is refused; unknown option', async () => {
    // Node has SIMD128, so the default build here is the SIMD one; one build per process.
    const { backend } = await init();
    throwsClearly(() => init({ simd: false }), Error, /already loaded/);
    assert.deepEqual(await init({ simd: true }), { backend, modelFiles: false });
    throwsClearly(() => init({ modelFiles: true }), Error, /already loaded/);
    throwsClearly(() => init({ wasm: 1, extra: 2 }), TypeError, /'extra'/);
  });
});

describe('freed handles', () => {
  test('TernaryTensor: every getter and method throws once freed', () => {
    const t = quantizeTernary(x512, 2, 256);
    t.free();
    for (const get of ['rows', 'cols', 'layout', 'scope', 'blockSize', 'bytes', 'scales', 'byteLength', 'bitsPerWeight']) {
      throwsClearly(() => t[get], Error, /TernaryTensor has been freed/);
    }
    throwsClearly(() => t.codes(), Error, /has been freed/);
    throwsClearly(() => t.dequantize(), Error, /has been freed/);
    throwsClearly(() => ternaryMatVec(t, x512.subarray(0, 256)), Error, /has been freed/);
    t.free(); // idempotent
  });

  test('Int8Tensor, engine and batch tensors', () => {
    const a = quantizeInt8(x512, 2, 256);
    a.free();
    for (const get of ['rows', 'values', 'scales', 'zeroPoints', 'bytes', 'byteLength', 'symmetric']) {
      throwsClearly(() => a[get], Error, /Int8Tensor has been freed/);
    }
    throwsClearly(() => a.dequantize(), Error, /has been freed/);
    const e = new QuantizationEngine();
    const w = e.quantizeWeights(x512, 2, 256);
    e.free();
    for (const call of [
      () => e.quantizeWeights(x512, 2, 256),
      () => e.quantizeActivations(x512, 2, 256),
      () => e.quantizeAndMeasure(x512, 2, 256),
      () => e.cacheStats(),
      () => e.clearCache(),
    ]) {
      throwsClearly(call, Error, /QuantizationEngine has been freed/);
    }
    // a tensor the engine returned outlives the engine
    assert.equal(w.bytes.length, 132);
    w.free();
    const { tensors } = quantizeBatch({ w: { data: x512, rows: 2, cols: 256 } });
    tensors.get('w').free();
    throwsClearly(() => tensors.get('w').bytes, Error, /has been freed/);
  });
});

describe('tensors of one build used with the other', () => {
  test('ternaryMatVec refuses a tensor of the other build with an Error', async () => {
    const simd = await loadBuild({ simd: true });
    const scalar = await loadBuild({ simd: false });
    const x = x512.subarray(0, 256);
    const ts = scalar.quantizeTernary(x512, 2, 256);
    const tv = simd.quantizeTernary(x512, 2, 256);
    throwsClearly(() => simd.ternaryMatVec(ts, x), Error);
    throwsClearly(() => scalar.ternaryMatVec(tv, x), Error);
    throwsClearly(() => ternaryMatVec(ts, x), Error); // the default build is the SIMD one
    // both builds still work with their own tensors
    assert.deepEqual(simd.ternaryMatVec(tv, x), scalar.ternaryMatVec(ts, x));
    ts.free();
    tv.free();
  });

  test('the message says the tensor belongs to another build', async () => {
    const scalar = await loadBuild({ simd: false });
    const ts = scalar.quantizeTernary(x512, 2, 256);
    try {
      throwsClearly(() => ternaryMatVec(ts, x512.subarray(0, 256)), Error, /build/);
    } finally {
      ts.free();
    }
  });
});

describe('the module keeps working after rejected calls', () => {
  test('1,000 rejected calls, then correct and deterministic results', async () => {
    const w = normal(4 * 512, 77, 0.1);
    const x = normal(512, 78);
    const good = () => {
      const t = quantizeTernary(w, 4, 512, { layout: 'tq2_0', rule: 'absmax', scope: 'block' });
      const c = quantizeTernary(w, 4, 512, { preset: 'compact' });
      const q = quantizeInt8(w, 4, 512, { layout: 'q8_0' });
      const out = { t: t.bytes, c: c.bytes, q: q.bytes, y: ternaryMatVec(t, x), f: matVecF32(w, 4, 512, x), s: errorStats(w, t.dequantize()) };
      t.free();
      c.free();
      q.free();
      return out;
    };
    const first = good();
    const scalar = await loadBuild({ simd: false });
    const foreign = scalar.quantizeTernary(w, 4, 512);
    const freed = quantizeTernary(w, 4, 512);
    freed.free();
    const engine = new QuantizationEngine();
    const bad = [
      () => quantizeTernary(w, 4, 511),
      () => quantizeTernary(withValue(w, 1000, NaN), 4, 512),
      () => quantizeTernary(w, 4, 512, { layout: 'nope' }),
      () => quantizeTernary(w, 4, 512, { blockSize: 'x', scope: 'block' }),
      () => quantizeTernary(w, 4, 512, { wat: 1 }),
      () => quantizeTernary(w, 8, 256, { scope: 'block', blockSize: 100 }),
      () => quantizeTernary(w, 16, 128),
      () => quantizeTernary(new Float64Array(2048), 4, 512),
      () => quantizeInt8(withValue(w, 5, Infinity), 4, 512, { layout: 'q8_0' }),
      () => quantizeInt8(w, 4, 512, { clip: -1 }),
      () => quantizeInt8(w, 4, 512, { layout: 'q8_0', symmetric: false }),
      () => errorStats(w, w.subarray(1)),
      () => ternaryMatVec(freed, x),
      () => ternaryMatVec(foreign, x),
      () => ternaryMatVec(foreign, x.subarray(1)),
      () => matVecF32(w, 4, 512, withValue(x, 2, NaN)),
      () => engine.quantizeWeights(withValue(w, 9, -Infinity), 4, 512),
      () => quantizeBatch({ a: { data: w, rows: 4, cols: 512 }, b: { data: withValue(w, 1, NaN), rows: 4, cols: 512 } }),
      () => estimateModelSize([[0, 1]]),
      () => new QuantizationEngine({ nope: 1 }),
    ];
    let rejected = 0;
    for (let i = 0; i < 1000; i++) {
      throwsClearly(bad[i % bad.length], undefined);
      rejected++;
    }
    assert.equal(rejected, 1000);
    foreign.free();
    const after = good();
    const again = good();
    for (const k of ['t', 'c', 'q']) {
      assertBytesEqual(after[k], first[k], `${k} after the rejections`);
      assertBytesEqual(again[k], first[k], `${k} again`);
    }
    assert.deepEqual(after.y, first.y);
    assert.deepEqual(after.f, first.f);
    assert.deepEqual(after.s, first.s);
    // and against the model
    assertBytesEqual(after.t, modelTernary(w, 4, 512, { layout: 'tq2_0', rule: 'absmax', scope: 'block' }).bytes, 'model');
    assertBytesEqual(after.q, modelInt8Blocks(w, 'q8_0').bytes, 'model q8_0');
    assert.deepEqual(engine.cacheStats(), { entries: 0, hits: 0, misses: 0, bytes: 0 });
    engine.free();
  });
});
