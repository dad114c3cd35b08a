// The package in a browser without a bundler: the installed package directory is served
// by python's http.server on 127.0.0.1, and Debian's Chromium (driven by playwright-core)
// opens a page that imports ./node_modules/ternary-quant/index.js as an ES module. The
// page's TQ2_0 bytes must equal Node's, on both builds; any console error or warning,
// page error, failed request or HTTP error fails the test. A screenshot is saved.
// Chromium has relaxed SIMD, so its default build is the relaxed one: the one relaxed
// instruction it uses is checked there on every input, in each of V8's two compilers.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { init, quantizeTernary } from 'ternary-quant';
import { normal, packageDir, tieData } from './helpers.mjs';
import { CHROMIUM, launchChromium, startServer } from './fixtures/browser.mjs';

const ROOT = process.cwd(); // the test project: node_modules/ternary-quant is the installed tarball
const OUTPUT = process.env.TQ_TEST_OUTPUT ?? join(ROOT, 'test-output');

let server;
let origin;
let browser;

const PAGE = `<!doctype html>
<html>
<head><meta charset="utf-8"><link rel="icon" href="data:,"><title>ternary-quant check</title>
<style>body { font: 15px system-ui, sans-serif; margin: 2em; } pre { background: #f4f4f4; padding: 1em; }</style></head>
<body>
<h1>ternary-quant in the browser (no bundler)</h1>
<pre id="out">running...</pre>
<script type="module">
import { init, backend, loadBuild, quantizeTernary, relaxedSupported, simdSupported } from './node_modules/ternary-quant/index.js';
const out = document.getElementById('out');
const f32 = async (name) => new Float32Array(await (await fetch(name)).arrayBuffer());
const bytesOf = (api, data, opts) => {
  const t = api.quantizeTernary(data, 8, 512, opts);
  const r = { bytes: Array.from(t.bytes), bitsPerWeight: t.bitsPerWeight };
  t.free();
  return r;
};
try {
  const [w, ties] = [await f32('./input.f32'), await f32('./ties.f32')];
  const info = await init();
  const scalar = await loadBuild({ simd: false });
  const def = { quantizeTernary };
  const r = {
    info, backend: backend(), simdSupported: simdSupported(), relaxedSupported: relaxedSupported(), scalarBackend: scalar.backend(),
    bitnet: bytesOf(def, w), ties: bytesOf(def, ties, { preset: 'lossless' }),
    scalarBitnet: bytesOf(scalar, w), scalarTies: bytesOf(scalar, ties, { preset: 'lossless' }),
  };
  const same = JSON.stringify(r.bitnet) === JSON.stringify(r.scalarBitnet) && JSON.stringify(r.ties) === JSON.stringify(r.scalarTies);
  const hex = r.bitnet.bytes.slice(0, 16).map((b) => b.toString(16).padStart(2, '0')).join(' ');
  out.textContent = 'backend: ' + r.backend + '\\nSIMD128 supported: ' + r.simdSupported + ', relaxed SIMD: ' + r.relaxedSupported +
    '\\nTQ2_0 (bitnet preset), 8 x 512: ' + r.bitnet.bytes.length + ' bytes, ' + r.bitnet.bitsPerWeight + ' bits/weight' +
    '\\nfirst bytes: ' + hex + '\\nscalar build gives the same bytes: ' + same;
  window.__result = r;
} catch (e) {
  out.textContent = 'error: ' + (e && e.stack || e);
  window.__result = { error: String(e && e.stack || e) };
}
</script>
</body>
</html>
`;

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium; scripts/setup.sh does it)`);
  await init();
  writeFileSync(join(ROOT, 'index.html'), PAGE);
  writeFileSync(join(ROOT, 'input.f32'), normal(8 * 512, 4242, 0.05));
  writeFileSync(join(ROOT, 'ties.f32'), tieData(8 * 512, 4343, 'max'));
  server = await startServer(ROOT);
  origin = `http://127.0.0.1:${server.port}`;
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  server?.child.kill();
});

/** Opens a page, collecting every console error/warning, page error and failed request. */
async function openPage(url) {
  const context = await browser.newContext({ viewport: { width: 900, height: 420 } });
  const page = await context.newPage();
  const problems = [];
  const requests = [];
  page.on('request', (r) => requests.push(new URL(r.url()).pathname));
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  await page.goto(url);
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 60_000 });
  const result = await page.evaluate(() => window.__result);
  return { context, page, problems, result, requests };
}

function nodeBytes(data, opts) {
  const t = quantizeTernary(data, 8, 512, opts);
  const b = Array.from(t.bytes);
  t.free();
  return b;
}

test('Chromium, no bundler: SIMD feature test, relaxed and scalar builds, bytes equal to Node', async () => {
  const { context, page, problems, result, requests } = await openPage(`${origin}/index.html`);
  mkdirSync(OUTPUT, { recursive: true });
  await page.screenshot({ path: join(OUTPUT, 'browser-no-bundler.png') });
  await context.close();
  assert.equal(result.error, undefined, result.error);
  assert.deepEqual(problems, []);
  assert.equal(result.backend, 'relaxed-simd', 'Chromium has relaxed SIMD and computes its dot product exactly');
  assert.equal(result.info.backend, result.backend);
  assert.equal(result.simdSupported, true, 'Chromium has SIMD128');
  assert.equal(result.relaxedSupported, true);
  assert.equal(result.scalarBackend, 'scalar');
  const w = normal(8 * 512, 4242, 0.05);
  const ties = tieData(8 * 512, 4343, 'max');
  assert.deepEqual(result.bitnet.bytes, nodeBytes(w));
  assert.equal(result.bitnet.bitsPerWeight, 2.0625);
  assert.deepEqual(result.ties.bytes, nodeBytes(ties, { preset: 'lossless' }));
  assert.deepEqual(result.scalarBitnet.bytes, result.bitnet.bytes);
  assert.deepEqual(result.scalarTies.bytes, result.ties.bytes);
  // The loader fetches the glue and .wasm of the builds it loads (relaxed by init, scalar
  // by loadBuild), and nothing of the SIMD128 or the model-file builds.
  const glue = requests.filter((p) => p.endsWith('/ternary_quant.js') || p.endsWith('_bg.wasm'));
  const pkg = '/node_modules/ternary-quant/';
  assert.deepEqual(
    [...new Set(glue)].sort(),
    [`${pkg}relaxed/ternary_quant.js`, `${pkg}relaxed/ternary_quant_bg.wasm`, `${pkg}scalar/ternary_quant.js`, `${pkg}scalar/ternary_quant_bg.wasm`],
  );
});

test('Chromium, esbuild bundle (platform browser) with relaxed/, simd/ and scalar/ next to it', async () => {
  const dir = join(ROOT, 'browser-bundle');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  writeFileSync(
    join(dir, 'entry.mjs'),
    `import { init, backend, quantizeTernary } from 'ternary-quant';
     const w = new Float32Array(await (await fetch('../input.f32')).arrayBuffer());
     try {
       const info = await init();
       const t = quantizeTernary(w, 8, 512);
       window.__result = { info, backend: backend(), bytes: Array.from(t.bytes) };
       document.body.textContent = 'bundled: ' + backend();
       t.free();
     } catch (e) { window.__result = { error: String(e && e.stack || e) }; }`,
  );
  writeFileSync(join(dir, 'index.html'), `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><script type="module" src="./app.js"></script>`);
  const r = spawnSync(
    join(ROOT, 'node_modules', '.bin', 'esbuild'),
    [join(dir, 'entry.mjs'), '--bundle', '--platform=browser', '--format=esm', `--outfile=${join(dir, 'app.js')}`, '--log-level=warning'],
    { encoding: 'utf8' },
  );
  assert.equal(r.status, 0, `esbuild failed: ${r.stderr}`);
  for (const v of ['relaxed', 'simd', 'scalar']) cpSync(join(packageDir(), v), join(dir, v), { recursive: true });
  const { context, problems, result } = await openPage(`${origin}/browser-bundle/index.html`);
  await context.close();
  assert.equal(result.error, undefined, result.error);
  assert.deepEqual(problems, []);
  assert.equal(result.backend, 'relaxed-simd');
  assert.deepEqual(result.bytes, nodeBytes(normal(8 * 512, 4242, 0.05)));
});

const RELAXED_PAGE = `<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>relaxed SIMD check</title>
<script type="module">
import { exhaustiveRelaxedDot } from './pkg-tests/fixtures/relaxed-dot.mjs';
import { loadBuild, relaxedSupported } from './node_modules/ternary-quant/index.js';
try {
  const dot = exhaustiveRelaxedDot();
  const probe = relaxedSupported();
  const problems = [];
  let gemvs = 0;
  if (probe) {
    const relaxed = await loadBuild({ simd: true, relaxed: true });
    const scalar = await loadBuild({ simd: false });
    const w = new Float32Array(await (await fetch('./relaxed-w.f32')).arrayBuffer());
    const x = new Float32Array(await (await fetch('./relaxed-x.f32')).arrayBuffer());
    for (const [rows, cols] of [[1, 256], [7, 1280], [33, 4096], [3, 256 * 33]]) {
      for (const preset of ['bitnet', 'lossless']) {
        const a = relaxed.quantizeTernary(w.subarray(0, rows * cols), rows, cols, { preset });
        const b = scalar.quantizeTernary(w.subarray(0, rows * cols), rows, cols, { preset });
        if (a.layout === 'tq2_0') gemvs++;
        // Many calls, so that the kernel runs optimized too where the engine tiers up.
        for (let rep = 0; rep < 20; rep++) {
          const ya = relaxed.ternaryMatVec(a, x.subarray(0, cols));
          const yb = scalar.ternaryMatVec(b, x.subarray(0, cols));
          if (ya.some((v, i) => !Object.is(v, yb[i]))) problems.push(rows + 'x' + cols + ' ' + preset + ' rep ' + rep);
        }
        a.free();
        b.free();
      }
    }
  }
  window.__result = { dot, probe, gemvs, problems };
} catch (e) {
  window.__result = { error: String(e && e.stack || e) };
}
</script>`;

// V8 runs new code in its baseline compiler (Liftoff) and hot code optimized (TurboFan);
// each gets the exhaustive check on its own, and the default tiering once more.
for (const [what, flags] of [
  ['default tiering', []],
  ['Liftoff only', ['--js-flags=--liftoff-only']],
  ['TurboFan only', ['--js-flags=--no-liftoff']],
]) {
  test(`Chromium (${what}): relaxed dot exact on every input; relaxed GEMV == scalar bit for bit`, async () => {
    writeFileSync(join(ROOT, 'relaxed.html'), RELAXED_PAGE);
    writeFileSync(join(ROOT, 'relaxed-w.f32'), normal(33 * 4096, 77, 0.05));
    writeFileSync(join(ROOT, 'relaxed-x.f32'), normal(256 * 33, 78, 1));
    const own = flags.length ? await launchChromium(flags) : browser;
    try {
      const context = await own.newContext();
      const page = await context.newPage();
      const problems = [];
      page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
      await page.goto(`${origin}/relaxed.html`);
      await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 120_000 });
      const result = await page.evaluate(() => window.__result);
      await context.close();
      assert.equal(result.error, undefined, result.error);
      assert.deepEqual(problems, []);
      assert.equal(result.dot.validates, true, 'Chromium has relaxed SIMD');
      assert.deepEqual(result.dot.mismatches, []);
      assert.equal(result.dot.checked, 256 * 256 * 2);
      assert.equal(result.probe, true);
      assert.equal(result.gemvs, 8);
      assert.deepEqual(result.problems, []);
    } finally {
      if (own !== browser) await own.close();
    }
  });
}
