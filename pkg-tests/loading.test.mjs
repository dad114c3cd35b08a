// How the package loads: what the tarball holds, init() before and after, forcing the
// scalar build, init({ wasm }) with bytes, a URL or a compiled module, and a bundle made
// by esbuild with the wasm folders copied next to it (as the package README says).
// Each case that needs a fresh module state runs in its own node process.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { init, quantizeTernary } from 'ternary-quant';
import { normal, packageDir } from './helpers.mjs';

/** Runs an ES module source in a new node process from the test project; returns its JSON output. */
function runModule(source, { cwd = process.cwd(), file } = {}) {
  const path = file ?? join(cwd, `.tmp-${process.pid}-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(path, source);
  try {
    const r = spawnSync(process.execPath, [path], { cwd, encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, `child failed: ${r.stderr}`);
    return JSON.parse(r.stdout);
  } finally {
    if (!file) rmSync(path, { force: true });
  }
}

/** The reference result of the snippet below, computed here. */
async function reference() {
  await init();
  const w = normal(8 * 512, 2024, 0.05);
  const t = quantizeTernary(w, 8, 512);
  const bytes = Buffer.from(t.bytes).toString('base64');
  t.free();
  return bytes;
}

// What each child computes: the bitnet TQ2_0 bytes of the same seeded data.
const SNIPPET = `
function normal(n, seed, scale) {
  let a = seed >>> 0;
  const r = () => { a = (a + 0x6d2b79f5) >>> 0; let t = a; t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) { const u = 1 - r(); const v = r();
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v) * scale; }
  return out;
}
const w = normal(8 * 512, 2024, 0.05);
function tq2(api) { const t = api.quantizeTernary(w, 8, 512); const b = Buffer.from(t.bytes).toString('base64'); t.free(); return b; }
`;

test('the tarball holds exactly the package files', () => {
  const tarball = process.env.TQ_TARBALL;
  assert.ok(tarball, 'TQ_TARBALL is set by scripts/pack-and-test.sh');
  const files = execFileSync('tar', ['-tzf', tarball], { encoding: 'utf8' }).trim().split('\n').sort();
  assert.deepEqual(files, [
    'package/LICENSE',
    'package/README.md',
    'package/cli.js',
    'package/convert.js',
    'package/index.d.ts',
    'package/index.js',
    'package/io-scalar/ternary_quant.js',
    'package/io-scalar/ternary_quant_bg.wasm',
    'package/io-simd/ternary_quant.js',
    'package/io-simd/ternary_quant_bg.wasm',
    'package/package.json',
    'package/relaxed/ternary_quant.js',
    'package/relaxed/ternary_quant_bg.wasm',
    'package/scalar/ternary_quant.js',
    'package/scalar/ternary_quant_bg.wasm',
    'package/simd/ternary_quant.js',
    'package/simd/ternary_quant_bg.wasm',
    'package/worker.js',
  ]);
  const pkg = JSON.parse(readFileSync(join(packageDir(), 'package.json'), 'utf8'));
  assert.equal(pkg.name, 'ternary-quant');
  assert.equal(pkg.type, 'module');
  assert.equal(pkg.bin['ternary-quant'], './cli.js');
  assert.equal(pkg.types, './index.d.ts');
  assert.deepEqual(pkg.dependencies ?? {}, {}, 'the package has no dependencies');
  assert.match(readFileSync(join(packageDir(), 'cli.js'), 'utf8'), /^#!\/usr\/bin\/env node\n/);
});

test('the .d.ts declares every export of index.js', async () => {
  const mod = await import('ternary-quant');
  const dts = readFileSync(join(packageDir(), 'index.d.ts'), 'utf8');
  for (const name of Object.keys(mod)) {
    assert.match(dts, new RegExp(`export (declare )?(function|const|class|interface|type) ${name}\\b`), `${name} is not declared`);
  }
});

test('before init() every call throws a clear error; init() then works', () => {
  const out = runModule(`
    import * as tq from 'ternary-quant';
    ${SNIPPET}
    const errors = [];
    for (const f of [() => tq.backend(), () => tq.quantizeTernary(w, 8, 512), () => tq.estimateModelSize([[1, 256]]),
                     () => new tq.QuantizationEngine()]) {
      try { f(); errors.push(null); } catch (e) { errors.push(e.message); }
    }
    const presetsBefore = Object.keys(tq.presets).length;
    const info = await tq.init();
    console.log(JSON.stringify({ errors, presetsBefore, info, backend: tq.backend(), bytes: tq2(tq),
                                 presets: Object.keys(tq.presets).length }));
  `);
  for (const m of out.errors) assert.match(m ?? 'no error', /not initialised: await init\(\) first/);
  assert.equal(out.presetsBefore, 0);
  assert.equal(out.presets, 5);
  assert.ok(['simd128', 'scalar'].includes(out.info.backend));
  assert.equal(out.backend, out.info.backend);
});

test('init({ simd: false }) loads the scalar build, with the same bytes', async () => {
  const ref = await reference();
  const out = runModule(`
    import * as tq from 'ternary-quant';
    ${SNIPPET}
    const info = await tq.init({ simd: false });
    const again = await tq.init();
    let second = null;
    try { await tq.init({ simd: true }); } catch (e) { second = e.message; }
    console.log(JSON.stringify({ info, again, second, bytes: tq2(tq) }));
  `);
  assert.deepEqual(out.info, { backend: 'scalar', modelFiles: false });
  assert.deepEqual(out.again, { backend: 'scalar', modelFiles: false });
  assert.match(out.second, /already loaded/);
  assert.equal(out.bytes, ref);
});

test('init({ wasm }) with bytes and a compiled module', async () => {
  const ref = await reference();
  for (const [label, expr, simd] of [
    ['bytes', `readFileSync(join(dir, 'scalar', 'ternary_quant_bg.wasm'))`, false],
    ['compiled module', `new WebAssembly.Module(readFileSync(join(dir, 'simd', 'ternary_quant_bg.wasm')))`, true],
  ]) {
    const out = runModule(`
      import * as tq from 'ternary-quant';
      import { readFileSync } from 'node:fs';
      import { dirname, join } from 'node:path';
      import { fileURLToPath, pathToFileURL } from 'node:url';
      ${SNIPPET}
      const dir = dirname(fileURLToPath(import.meta.resolve('ternary-quant')));
      const info = await tq.init({ simd: ${simd}, wasm: ${expr} });
      console.log(JSON.stringify({ info, bytes: tq2(tq) }));
    `);
    assert.ok(['simd128', 'scalar'].includes(out.info.backend), label);
    if (!simd) assert.equal(out.info.backend, 'scalar', label);
    assert.equal(out.bytes, ref, label);
  }
});

// Node's fetch() cannot read file: URLs, so init({ wasm }) reads those (and paths) with fs.
test('init({ wasm }) with a file URL in Node', async () => {
  const out = runModule(`
    import * as tq from 'ternary-quant';
    import { dirname, join } from 'node:path';
    import { fileURLToPath, pathToFileURL } from 'node:url';
    ${SNIPPET}
    const dir = dirname(fileURLToPath(import.meta.resolve('ternary-quant')));
    const info = await tq.init({ simd: false, wasm: pathToFileURL(join(dir, 'scalar', 'ternary_quant_bg.wasm')) });
    console.log(JSON.stringify({ info, bytes: tq2(tq) }));
  `);
  assert.equal(out.info.backend, 'scalar');
  assert.equal(out.bytes, await reference());
});

test("init() in Node does not load Node's fetch implementation (about 12 MB and 70 ms of start-up)", async () => {
  const out = runModule(`
    import * as tq from 'ternary-quant';
    ${SNIPPET}
    const info = await tq.init({ modelFiles: true });
    const scalar = await tq.loadBuild({ simd: false });
    const loaded = () => process.moduleLoadList.filter((m) => m.includes('undici'));
    const before = loaded();
    typeof Response; // the check bites: touching the global loads it
    console.log(JSON.stringify({ info, bytes: tq2(scalar), before, after: loaded() }));
  `);
  assert.deepEqual(out.before, [], 'nothing of undici loaded by init or loadBuild');
  assert.ok(out.after.length > 0, 'moduleLoadList shows undici once the Response global is touched');
  assert.equal(out.info.modelFiles, true);
  assert.equal(out.bytes, await reference(), 'the builds loaded that way work');
});

test('init() with a bad wasm rejects, and a later init() can still succeed', async () => {
  const out = runModule(`
    import * as tq from 'ternary-quant';
    ${SNIPPET}
    let error = null;
    try { await tq.init({ wasm: new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 99]) }); } catch (e) { error = String(e.message); }
    const info = await tq.init();
    console.log(JSON.stringify({ error, info, bytes: tq2(tq) }));
  `);
  assert.ok(out.error, 'init with broken bytes rejected');
  assert.ok(['simd128', 'scalar'].includes(out.info.backend));
  assert.equal(out.bytes, await reference());
});

test('esbuild bundle (platform node, esm) with simd/ and scalar/ copied next to it', async () => {
  const ref = await reference();
  const project = process.cwd();
  const work = mkdtempSync(join(project, '.bundle-'));
  const outside = mkdtempSync(join(tmpdir(), 'ternary-quant-bundle-run-'));
  try {
    writeFileSync(
      join(work, 'entry.mjs'),
      `import * as tq from 'ternary-quant';
       ${SNIPPET}
       const info = await tq.init();
       const scalar = await tq.loadBuild({ simd: false });
       console.log(JSON.stringify({ info, bytes: tq2(tq), scalarBytes: tq2(scalar) }));`,
    );
    const esbuild = join(project, 'node_modules', '.bin', 'esbuild');
    const r = spawnSync(esbuild, [join(work, 'entry.mjs'), '--bundle', '--platform=node', '--format=esm', `--outfile=${join(work, 'dist', 'app.mjs')}`, '--log-level=warning'], {
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, `esbuild failed: ${r.stderr}`);
    assert.equal(r.stderr, '', 'esbuild warnings');
    // Run it where no node_modules can be found, with only the bundle and the two folders.
    cpSync(join(work, 'dist', 'app.mjs'), join(outside, 'app.mjs'));
    for (const v of ['simd', 'scalar']) cpSync(join(packageDir(), v), join(outside, v), { recursive: true });
    const run = spawnSync(process.execPath, [join(outside, 'app.mjs')], { cwd: outside, encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, `bundle failed: ${run.stderr}`);
    const out = JSON.parse(run.stdout);
    assert.ok(['simd128', 'scalar'].includes(out.info.backend));
    assert.equal(out.bytes, ref);
    assert.equal(out.scalarBytes, ref);
  } finally {
    rmSync(work, { recursive: true, force: true });
    rmSync(outside, { recursive: true, force: true });
  }
});

// Browser bundles must not trip over the Node-only fs import of the entry.
test('esbuild bundle for the browser platform builds without errors', () => {
  const project = process.cwd();
  const work = mkdtempSync(join(project, '.bundle-'));
  try {
    writeFileSync(join(work, 'entry.mjs'), `import { init, quantizeTernary } from 'ternary-quant'; await init(); console.log(quantizeTernary);`);
    const r = spawnSync(
      join(project, 'node_modules', '.bin', 'esbuild'),
      [join(work, 'entry.mjs'), '--bundle', '--platform=browser', '--format=esm', `--outfile=${join(work, 'app.js')}`, '--log-level=warning'],
      { encoding: 'utf8' },
    );
    assert.equal(r.status, 0, `esbuild failed: ${r.stderr}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
});
