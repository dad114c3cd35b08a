// The relaxed-SIMD build in Node: which engines the loader gives it to, the one relaxed
// instruction it uses checked on every input it can get, and its results equal to the
// scalar build's. Node 20 has relaxed SIMD only behind --experimental-wasm-relaxed-simd,
// so each case runs in a child process with its own flags. (Chromium: browser.test.mjs.)
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { packageDir } from './helpers.mjs';

const NODE_MAJOR = Number(process.versions.node.split('.')[0]);
const FLAG = '--experimental-wasm-relaxed-simd';

/** Runs an ES module source in a new node process with `flags`; returns its JSON output. */
function runModule(flags, source) {
  const path = join(process.cwd(), `.tmp-relaxed-${process.pid}-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(path, source);
  try {
    const r = spawnSync(process.execPath, [...flags, path], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(r.status, 0, `child (${flags.join(' ')}) failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  } finally {
    rmSync(path, { force: true });
  }
}

const CHOICE = `
import { init, relaxedSupported } from 'ternary-quant';
const probe = relaxedSupported();
const info = await init();
process.stdout.write(JSON.stringify({ probe, backend: info.backend }));
`;

test('relaxed/ has simd128 and relaxed-simd, and no relaxed instruction but the dot product', () => {
  const wasm = join(packageDir(), 'relaxed', 'ternary_quant_bg.wasm');
  const features = execFileSync('wasm-objdump', ['-x', '-j', 'target_features', wasm], { encoding: 'utf8' });
  assert.match(features, /\[\+\]\s+simd128/);
  assert.match(features, /\[\+\]\s+relaxed-simd/);
  const code = execFileSync('wasm-objdump', ['-d', wasm], { encoding: 'utf8', maxBuffer: 1 << 28 });
  const ops = new Set([...code.matchAll(/[a-z0-9]+\.(relaxed_[a-z0-9_]+|dot_i8x16_i7x16[a-z_]*)/g)].map((m) => m[0]));
  assert.deepEqual([...ops], ['i16x8.dot_i8x16_i7x16_s']);
});

test('Node without the flag never loads the relaxed build', () => {
  const r = runModule([], CHOICE);
  if (NODE_MAJOR === 20) {
    assert.deepEqual(r, { probe: false, backend: 'simd128' });
  } else {
    assert.equal(r.backend, r.probe ? 'relaxed-simd' : 'simd128');
  }
});

// Node 20 runs relaxed SIMD behind its flag; later versions have it by default.
const RELAXED_FLAGS = NODE_MAJOR === 20 ? [FLAG] : [];

test('the instruction is exact on every input the relaxed kernel gives it (Node)', () => {
  const r = runModule(RELAXED_FLAGS, `
    import { exhaustiveRelaxedDot } from './pkg-tests/fixtures/relaxed-dot.mjs';
    process.stdout.write(JSON.stringify(exhaustiveRelaxedDot()));
  `);
  assert.equal(r.validates, true, 'this Node has relaxed SIMD with these flags');
  assert.deepEqual(r.mismatches, []);
  assert.equal(r.checked, 256 * 256 * 2);
});

test('Node with relaxed SIMD (Node 20: with the flag) loads the relaxed build; relaxed: false keeps SIMD128', () => {
  assert.deepEqual(runModule(RELAXED_FLAGS, CHOICE), { probe: true, backend: 'relaxed-simd' });
  const forced = runModule(RELAXED_FLAGS, `
    import { init } from 'ternary-quant';
    const info = await init({ relaxed: false });
    let conflict = null;
    try { await init({ relaxed: true }); } catch (e) { conflict = e.message; }
    process.stdout.write(JSON.stringify({ backend: info.backend, conflict }));
  `);
  assert.equal(forced.backend, 'simd128');
  assert.match(forced.conflict, /already loaded/);
});

test('relaxed build == scalar build: TQ2_0 GEMV bit for bit, quantization bytes, error stats', () => {
  const r = runModule(RELAXED_FLAGS, `
    import { loadBuild } from 'ternary-quant';
    import { normal, tieData } from './pkg-tests/helpers.mjs';
    const relaxed = await loadBuild({ simd: true, relaxed: true });
    const scalar = await loadBuild({ simd: false });
    const problems = [];
    const bits = (f) => Buffer.from(f.buffer, f.byteOffset, f.byteLength).toString('hex');
    let gemvs = 0;
    for (const [rows, cols] of [[1, 256], [3, 512], [17, 1280], [33, 4096], [5, 256 * 33]]) {
      for (const [kind, w] of Object.entries({
        normal: normal(rows * cols, rows + cols, 0.05),
        ties: tieData(rows * cols, rows * cols, 'max'),
        huge: normal(rows * cols, 7 * cols, 3e4),
      })) {
        for (const xs of [1, 1e-3, 1e3]) {
          const x = normal(cols, cols + xs, xs);
          for (const preset of ['bitnet', 'lossless']) {
            const a = relaxed.quantizeTernary(w, rows, cols, { preset });
            const b = scalar.quantizeTernary(w, rows, cols, { preset });
            const what = rows + 'x' + cols + ' ' + kind + ' ' + preset + ' x*' + xs;
            if (bits(a.bytes) !== bits(b.bytes)) problems.push(what + ': bytes');
            if (a.layout === 'tq2_0') gemvs++;
            if (bits(relaxed.ternaryMatVec(a, x)) !== bits(scalar.ternaryMatVec(b, x))) problems.push(what + ': gemv');
            // Scales that overflow f16 dequantize to NaN, which errorStats refuses: the
            // same message from both builds.
            const stats = (api, t) => {
              try {
                return JSON.stringify(api.errorStats(w, t.dequantize()));
              } catch (e) {
                return 'error: ' + e.message;
              }
            };
            if (stats(relaxed, a) !== stats(scalar, b)) problems.push(what + ': errorStats');
            a.free();
            b.free();
          }
        }
      }
      const d = normal(rows * cols, rows * cols, 2);
      for (const layout of ['q8_0', 'q8_k']) {
        const a = relaxed.quantizeInt8(d, rows, cols, { layout });
        const b = scalar.quantizeInt8(d, rows, cols, { layout });
        if (bits(a.bytes) !== bits(b.bytes)) problems.push(rows + 'x' + cols + ' ' + layout);
        a.free();
        b.free();
      }
    }
    process.stdout.write(JSON.stringify({ backend: relaxed.backend(), gemvs, problems }));
  `);
  assert.equal(r.backend, 'relaxed-simd');
  assert.equal(r.gemvs, 90, "every case is a TQ2_0 GEMV");
  assert.deepEqual(r.problems, []);
});
