// The lean wasm builds in the package: the SIMD128 and relaxed-SIMD ones have the
// simd128 target feature and the scalar one has not, and the SIMD128 and scalar builds
// give the same bytes for every layout, rule, scope and shape, ties included. (The
// relaxed build needs an engine flag in Node 20: relaxed.test.mjs compares it.)
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { before, describe, test } from 'node:test';
import { init, loadBuild } from 'ternary-quant';
import { assertArrayEqual, assertBytesEqual, int8TieData, normal, packageDir, rng, tieData } from './helpers.mjs';

let simd;
let scalar;
before(async () => {
  await init();
  simd = await loadBuild({ simd: true });
  scalar = await loadBuild({ simd: false });
});

function targetFeatures(file) {
  let out;
  try {
    out = execFileSync('wasm-objdump', ['-x', '-j', 'target_features', file], { encoding: 'utf8' });
  } catch (e) {
    assert.fail(`wasm-objdump failed (Debian package wabt, installed by scripts/setup.sh): ${e.message}`);
  }
  return [...out.matchAll(/\[\+\]\s+(\S+)/g)].map((m) => m[1]);
}

describe('the lean .wasm files', () => {
  test('simd/ and relaxed/ have the simd128 target feature, scalar/ has not; only relaxed/ has relaxed-simd', () => {
    const dir = packageDir();
    assert.ok(targetFeatures(join(dir, 'simd', 'ternary_quant_bg.wasm')).includes('simd128'));
    assert.ok(!targetFeatures(join(dir, 'simd', 'ternary_quant_bg.wasm')).includes('relaxed-simd'));
    assert.ok(targetFeatures(join(dir, 'relaxed', 'ternary_quant_bg.wasm')).includes('simd128'));
    assert.ok(targetFeatures(join(dir, 'relaxed', 'ternary_quant_bg.wasm')).includes('relaxed-simd'));
    assert.ok(!targetFeatures(join(dir, 'scalar', 'ternary_quant_bg.wasm')).includes('simd128'));
  });

  test('backend() names a real backend in each build', () => {
    assert.ok(['simd128', 'scalar'].includes(simd.backend()));
    assert.equal(scalar.backend(), 'scalar', 'the scalar build cannot run SIMD128 kernels');
  });

  // 150 KB read as 150,000 bytes, the stricter of the two readings.
  test('the relaxed-SIMD, SIMD128 and scalar .wasm files are at most 150 KB each', () => {
    for (const v of ['relaxed', 'simd', 'scalar']) {
      const size = statSync(join(packageDir(), v, 'ternary_quant_bg.wasm')).size;
      assert.ok(size <= 150_000, `${v}/ternary_quant_bg.wasm is ${size} bytes, over 150,000`);
    }
  });
});

/** Data of several kinds, each stressing something else. */
function dataKinds(n, seed) {
  const r = rng(seed);
  const zeros = new Float32Array(n);
  for (let i = 0; i < n; i += 3) zeros[i] = -0;
  const sparse = normal(n, seed + 1);
  for (let i = 0; i < n; i++) if (r() < 0.8) sparse[i] = 0;
  return {
    normal: normal(n, seed),
    tiesMean: tieData(n, seed + 2, 'mean'),
    tiesMax: tieData(n, seed + 3, 'max'),
    zeros,
    sparse,
    tiny: normal(n, seed + 4, 1e-6), // scales in the f16 subnormal range
    huge: normal(n, seed + 5, 3e4), // f16 scales that round to infinity
  };
}

function sameTernary(data, rows, cols, opts, what) {
  const a = simd.quantizeTernary(data, rows, cols, opts);
  const b = scalar.quantizeTernary(data, rows, cols, opts);
  assertBytesEqual(a.bytes, b.bytes, `${what} bytes`);
  assertArrayEqual(a.scales, b.scales, `${what} scales`);
  assertArrayEqual(a.codes(), b.codes(), `${what} codes`);
  assertArrayEqual(a.dequantize(), b.dequantize(), `${what} dequantize`);
  a.free();
  b.free();
}

describe('SIMD128 build == scalar build', () => {
  const rules = ['absmean', 'absmax', 'median', 'twn', 'optimal'];

  test('TQ2_0 and TQ1_0: every rule and scope', () => {
    for (const [rows, cols] of [
      [1, 256],
      [3, 512],
      [2, 1280],
      [5, 768],
    ]) {
      for (const [kind, data] of Object.entries(dataKinds(rows * cols, rows * 31 + cols))) {
        for (const layout of ['tq2_0', 'tq1_0']) {
          for (const rule of rules) {
            for (const scope of ['tensor', 'row', 'block']) {
              sameTernary(data, rows, cols, { layout, rule, scope }, `${kind} ${rows}x${cols} ${layout} ${rule} ${scope}`);
            }
          }
        }
      }
    }
  });

  test('bitnet-hf and codes: odd shapes and tails', () => {
    for (const [rows, cols] of [
      [1, 1],
      [1, 15],
      [3, 16],
      [5, 17],
      [2, 31],
      [7, 33],
      [4, 100],
      [9, 257],
      [1, 1100],
    ]) {
      for (const [kind, data] of Object.entries(dataKinds(rows * cols, rows * 7 + cols))) {
        for (const rule of rules) {
          const what = `${kind} ${rows}x${cols} ${rule}`;
          sameTernary(data, rows, cols, { layout: 'bitnet-hf', rule, scope: 'tensor' }, `${what} bitnet-hf`);
          sameTernary(data, rows, cols, { layout: 'codes', rule, scope: 'tensor' }, `${what} codes tensor`);
          sameTernary(data, rows, cols, { layout: 'codes', rule, scope: 'row' }, `${what} codes row`);
          sameTernary(data, rows, cols, { layout: 'codes', rule, scope: 'block', blockSize: 1 }, `${what} codes block 1`);
        }
      }
    }
  });

  test('int8: plain (sym/asym/clip/percentile, every scope), q8_0, q8_k', () => {
    const optsList = [
      {},
      { scope: 'tensor' },
      { scope: 'block' },
      { symmetric: false },
      { symmetric: false, scope: 'tensor' },
      { clip: 0.5 },
      { percentile: 99 },
      { percentile: 75, symmetric: false, scope: 'block' },
    ];
    for (const [rows, cols] of [
      [1, 32],
      [3, 256],
      [2, 1024],
    ]) {
      const kinds = { ...dataKinds(rows * cols, rows + cols), int8Ties: int8TieData(rows * cols, rows * cols) };
      for (const [kind, data] of Object.entries(kinds)) {
        for (const opts of optsList) {
          const a = simd.quantizeInt8(data, rows, cols, opts);
          const b = scalar.quantizeInt8(data, rows, cols, opts);
          const what = `${kind} ${rows}x${cols} ${JSON.stringify(opts)}`;
          assertBytesEqual(a.bytes, b.bytes, what);
          assertArrayEqual(a.scales, b.scales, `${what} scales`);
          assertArrayEqual(a.zeroPoints, b.zeroPoints, `${what} zero points`);
          assertArrayEqual(a.dequantize(), b.dequantize(), `${what} dequantize`);
          a.free();
          b.free();
        }
        for (const layout of ['q8_0', ...(cols % 256 === 0 ? ['q8_k'] : [])]) {
          const a = simd.quantizeInt8(data, rows, cols, { layout });
          const b = scalar.quantizeInt8(data, rows, cols, { layout });
          assertBytesEqual(a.bytes, b.bytes, `${kind} ${rows}x${cols} ${layout}`);
          assertArrayEqual(a.dequantize(), b.dequantize(), `${kind} ${rows}x${cols} ${layout} dequantize`);
          a.free();
          b.free();
        }
      }
    }
  });

  test('presets, engine and batch', () => {
    const w = normal(4 * 512, 99, 0.1);
    for (const preset of ['bitnet', 'compact', 'lossless', 'accurate', 'best']) sameTernary(w, 4, 512, { preset }, preset);
    const ea = new simd.QuantizationEngine({ preset: 'accurate' });
    const eb = new scalar.QuantizationEngine({ preset: 'accurate' });
    const ma = ea.quantizeAndMeasure(w, 4, 512);
    const mb = eb.quantizeAndMeasure(w, 4, 512);
    assertBytesEqual(ma.tensor.bytes, mb.tensor.bytes, 'engine');
    assert.deepEqual(ma.stats, mb.stats);
    const ba = simd.quantizeBatch({ w: { data: w, rows: 4, cols: 512 } });
    const bb = scalar.quantizeBatch({ w: { data: w, rows: 4, cols: 512 } });
    assertBytesEqual(ba.tensors.get('w').bytes, bb.tensors.get('w').bytes, 'batch');
    assert.deepEqual(ba.report, bb.report);
    assert.deepEqual(simd.estimateModelSize([[4096, 4096]]), scalar.estimateModelSize([[4096, 4096]]));
    for (const x of [ma.tensor, mb.tensor, ea, eb, ...ba.tensors.values(), ...bb.tensors.values()]) x.free();
  });

  test('errorStats, ternaryMatVec and matVecF32 agree', () => {
    for (const [rows, cols] of [
      [1, 256],
      [7, 512],
      [16, 1280],
    ]) {
      const w = normal(rows * cols, rows + cols, 0.05);
      const x = normal(cols, cols);
      for (const opts of [
        { preset: 'bitnet' },
        { preset: 'lossless' },
        { layout: 'tq1_0', scope: 'row' },
        { layout: 'codes', scope: 'block', blockSize: 32 },
        { layout: 'bitnet-hf', rule: 'twn' },
      ]) {
        const a = simd.quantizeTernary(w, rows, cols, opts);
        const b = scalar.quantizeTernary(w, rows, cols, opts);
        const ya = simd.ternaryMatVec(a, x);
        const yb = scalar.ternaryMatVec(b, x);
        const dq = a.dequantize();
        for (let r = 0; r < rows; r++) {
          let mag = 0;
          for (let k = 0; k < cols; k++) mag += Math.abs(dq[r * cols + k] * x[k]);
          // The integer sums are exact; only the f32 order across blocks may differ.
          assert.ok(Math.abs(ya[r] - yb[r]) <= 1e-6 * mag, `${JSON.stringify(opts)} row ${r}: ${ya[r]} vs ${yb[r]}`);
        }
        assert.deepEqual(simd.errorStats(w, dq), scalar.errorStats(w, b.dequantize()));
        a.free();
        b.free();
      }
      const fa = simd.matVecF32(w, rows, cols, x);
      const fb = scalar.matVecF32(w, rows, cols, x);
      for (let r = 0; r < rows; r++) {
        let mag = 0;
        for (let k = 0; k < cols; k++) mag += Math.abs(w[r * cols + k] * x[k]);
        assert.ok(Math.abs(fa[r] - fb[r]) <= 1e-6 * mag, `matVecF32 row ${r}: ${fa[r]} vs ${fb[r]}`);
      }
    }
  });
});
