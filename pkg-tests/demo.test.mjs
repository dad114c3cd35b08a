// The in-browser demo (www/, assembled in target/www by scripts/build-www.sh), served by
// python's http.server on 127.0.0.1 and driven in Debian's Chromium by playwright-core:
// 1. synthetic runs give the numbers of the Node API for the same seed and options (the
//    weights are drawn again here with the PRNG that www/synth.js documents);
// 2. a generated .safetensors file is uploaded, listed and converted tensor by tensor;
// 3. the downloaded GGUF parses, and equals a conversion done here in Node byte for byte;
//    a Hugging Face model folder, chosen as a folder, downloads as the GGUF the CLI writes;
// 4. a conversion on 2 workers gives the bytes, statistics and warning of one on 1 worker,
//    Stop halts it and leaves the page usable, and an error in a conversion worker
//    reaches the page as the same message as on 1 worker;
// 5. a bad file and an unsupported dtype get clear messages;
// 6. screenshots (1280x800 and a 400 px wide window) go to test-output/.
// Any console error or warning, page error, failed request, HTTP error or request to
// another origin fails the test.
//
// The repository root comes from TQ_REPO_ROOT (else the parent of this file's folder);
// the package is imported from its pkg/index.js. TQ_UPDATE_SCREENSHOT=1 also copies the
// 1280x800 screenshot to docs/demo.png.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CHROMIUM, launchChromium, startServer } from './fixtures/browser.mjs';
import { cliOk, FIXTURES, python } from './fixtures/cli.mjs';
import { writeModel } from './fixtures/make-model.mjs';

const REPO = resolve(process.env.TQ_REPO_ROOT ?? join(dirname(fileURLToPath(import.meta.url)), '..'));
const SITE = join(REPO, 'target', 'www');
const OUTPUT = process.env.TQ_TEST_OUTPUT ?? join(REPO, 'test-output');
const TMP = mkdtempSync(join(tmpdir(), 'ternary-quant-demo-'));

let tq; // the package, from the repository's pkg/
let io; // its model-file build
let server;
let origin;
let browser;
let context;
let page;
const problems = [];

// ------------------------------------------------------------------ the documented PRNG

// mulberry32 and the four distributions, as www/synth.js documents them (written again
// here so that the documentation is what gets checked).
function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

function synthetic({ distribution, rows, cols, seed, dof }) {
  const u = mulberry32(seed);
  const gaussian = () => {
    const u1 = u();
    const u2 = u();
    return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
  };
  const draw = {
    gaussian,
    laplace: () => {
      const p = u() + 2 ** -33;
      return p < 0.5 ? Math.log(2 * p) / Math.sqrt(2) : -Math.log(2 - 2 * p) / Math.sqrt(2);
    },
    'student-t': () => {
      const z = gaussian();
      let v = 0;
      for (let k = 0; k < dof; k++) v += gaussian() ** 2;
      return z / Math.sqrt(v / dof);
    },
    ternary: () => Math.floor(3 * u()) - 1,
  }[distribution];
  const scale = distribution === 'ternary' ? 1 / 64 : 0.02;
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = draw() * scale;
  return out;
}

function fnv1a(view) {
  const b = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) h = Math.imul(h ^ b[i], 0x01000193);
  return (h >>> 0).toString(16).padStart(8, '0');
}

// ------------------------------------------------------------------ server and browser

async function watchedPage(viewport) {
  const ctx = await browser.newContext({ viewport, acceptDownloads: true });
  const p = await ctx.newPage();
  p.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') problems.push(`console ${m.type()}: ${m.text()}`);
  });
  p.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  p.on('requestfailed', (r) => problems.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  p.on('response', (r) => {
    if (r.status() >= 400) problems.push(`HTTP ${r.status()}: ${r.url()}`);
  });
  const sameOrigin = (url) => url.startsWith(`${origin}/`) || url.startsWith('blob:') || url.startsWith('data:');
  ctx.on('request', (r) => {
    if (!sameOrigin(r.url())) problems.push(`request to another origin: ${r.url()}`);
  });
  p.on('request', (r) => {
    if (!sameOrigin(r.url())) problems.push(`request to another origin: ${r.url()}`);
  });
  await p.goto(`${origin}/`);
  await p.waitForFunction(() => window.demo?.analyses >= 1 || window.demo?.errors.length > 0, null, { timeout: 30_000 });
  assert.deepEqual(await p.evaluate(() => window.demo.errors), [], 'the first run shows no error');
  return { ctx, page: p };
}

function noProblems() {
  assert.deepEqual(problems, [], 'console errors, page errors or bad requests');
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `${CHROMIUM} is missing (apt-get install chromium; scripts/setup.sh does it)`);
  assert.ok(existsSync(join(SITE, 'index.html')), `${SITE} is not built; run: bash scripts/build.sh && bash scripts/build-www.sh`);
  tq = await import(pathToFileURL(join(REPO, 'pkg', 'index.js')).href);
  await tq.init();
  io = await tq.loadBuild({ simd: true, modelFiles: true });
  server = await startServer(SITE);
  origin = `http://127.0.0.1:${server.port}`;
  // Every host but the test server fails to resolve, so that a stray request fails loudly.
  browser = await launchChromium(['--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1']);

  mkdirSync(OUTPUT, { recursive: true });
  ({ ctx: context, page } = await watchedPage({ width: 1280, height: 800 }));
});

after(async () => {
  await browser?.close();
  server?.child.kill();
  rmSync(TMP, { recursive: true, force: true });
});

// ------------------------------------------------------------------ 1. synthetic runs

/** Sets the page's controls, runs a synthetic quantization and returns its result. */
async function runSynthetic(spec, opts) {
  await page.selectOption('#distribution', spec.distribution);
  for (const key of ['rows', 'cols', 'seed']) await page.fill(`#${key}`, String(spec[key]));
  if (spec.distribution === 'student-t') await page.fill('#dof', String(spec.dof));
  if (opts.preset) {
    await page.selectOption('#preset', opts.preset);
  } else {
    await page.selectOption('#layout', opts.layout);
    await page.selectOption('#rule', opts.rule);
    await page.selectOption('#scope', opts.scope);
    if (opts.scope === 'block') await page.fill('#blockSize', String(opts.blockSize));
  }
  const before = await page.evaluate(() => window.demo.analyses);
  await page.click('#run');
  await page.waitForFunction((n) => window.demo.analyses > n || window.demo.errors.length > 0, before, { timeout: 30_000 });
  assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
  return page.evaluate(() => {
    const r = window.demo.last;
    return {
      label: r.label,
      options: r.options,
      layout: r.layout,
      inputHash: r.inputHash,
      bytesHash: r.bytesHash,
      byteLength: r.byteLength,
      bitsPerWeight: r.bitsPerWeight,
      stats: r.stats,
      zeroFraction: r.zeroFraction,
      q8: r.q8,
      byLayout: r.sizes.byLayout,
      byRule: r.byRule.map(({ rule, snrDb }) => ({ rule, snrDb })),
      scales: { count: r.scales.count, min: r.scales.min, max: r.scales.max },
      histogramTotal: r.histogram.original.reduce((a, b) => a + b, 0),
      timings: r.timings,
      figures: ['fig-bpw', 'fig-snr', 'fig-cos', 'fig-zeros'].map((id) => document.getElementById(id).textContent),
      cosineCell: document.querySelector('#error-table tr[data-metric="cosine"] td:nth-child(2)').textContent,
    };
  });
}

/** What the Node API says for the same weights and options. */
function nodeResult(spec, options) {
  const data = synthetic(spec);
  const t = tq.quantizeTernary(data, spec.rows, spec.cols, options);
  try {
    const codes = t.codes();
    const scales = t.scales;
    const q = tq.quantizeInt8(data, spec.rows, spec.cols, { layout: 'q8_0' });
    const q8 = { byteLength: q.byteLength, stats: tq.errorStats(data, q.dequantize()) };
    q.free();
    return {
      inputHash: fnv1a(data),
      bytesHash: fnv1a(t.bytes),
      byteLength: t.byteLength,
      bitsPerWeight: t.bitsPerWeight,
      stats: tq.errorStats(data, t.dequantize()),
      zeroFraction: codes.filter((c) => c === 0).length / codes.length,
      q8,
      byLayout: tq.estimateModelSize([[spec.rows, spec.cols]], options).byLayout,
      byRule: tq.rules.map((rule) => {
        const other = tq.quantizeTernary(data, spec.rows, spec.cols, { ...options, rule });
        try {
          return { rule, snrDb: tq.errorStats(data, other.dequantize()).snrDb };
        } finally {
          other.free();
        }
      }),
      scales: { count: scales.length, min: Math.min(...scales), max: Math.max(...scales) },
    };
  } finally {
    t.free();
  }
}

const CASES = [
  {
    spec: { distribution: 'laplace', rows: 512, cols: 1024, seed: 2024 },
    ui: { preset: 'accurate' },
    options: { layout: 'tq2_0', rule: 'absmean', scope: 'row' },
  },
  {
    spec: { distribution: 'student-t', rows: 96, cols: 768, seed: 31337, dof: 4 },
    ui: { layout: 'tq1_0', rule: 'twn', scope: 'block', blockSize: 256 },
    options: { layout: 'tq1_0', rule: 'twn', scope: 'block', blockSize: 256 },
  },
  {
    spec: { distribution: 'ternary', rows: 64, cols: 512, seed: 7 },
    ui: { preset: 'lossless' },
    options: { layout: 'tq2_0', rule: 'absmax', scope: 'block', blockSize: 256 },
  },
];

test('synthetic runs in the page equal the Node API for the same seed and options', async () => {
  for (const [i, c] of CASES.entries()) {
    const page_ = await runSynthetic(c.spec, c.ui);
    const node = nodeResult(c.spec, c.options);
    const what = `${c.spec.distribution} ${JSON.stringify(c.options)}`;
    assert.deepEqual(page_.options, c.options, `${what}: the options the page used`);
    assert.equal(page_.inputHash, node.inputHash, `${what}: the page drew other weights than the documented PRNG`);
    for (const key of ['bytesHash', 'byteLength', 'bitsPerWeight', 'stats', 'zeroFraction', 'q8', 'byLayout', 'byRule', 'scales']) {
      assert.deepEqual(page_[key], node[key], `${what}: ${key}`);
    }
    assert.equal(page_.histogramTotal, c.spec.rows * c.spec.cols);
    const t = page_.timings;
    assert.deepEqual(t.builds, ['simd128', 'scalar'], 'Chromium has SIMD128: both builds are timed');
    assert.equal(t.sameBytes, true, 'the SIMD128 and scalar builds give the same bytes');
    for (const m of ['quantize', 'ternaryGemv', 'f32Gemv']) {
      for (const b of t.builds) assert.ok(t[m][b] > 0 && Number.isFinite(t[m][b]), `${what}: ${m} ${b}: ${JSON.stringify(t)}`);
    }
    // What the page shows is those numbers.
    assert.equal(page_.figures[0], String(Number(node.bitsPerWeight.toFixed(4))));
    assert.equal(page_.figures[1], node.stats.snrDb === Infinity ? '∞' : `${node.stats.snrDb.toFixed(2)} dB`);
    assert.equal(page_.figures[2], node.stats.cosine.toFixed(4));
    assert.equal(page_.cosineCell, node.stats.cosine.toFixed(5));
    if (c.spec.distribution === 'ternary') assert.equal(node.stats.snrDb, Infinity, 'lossless on ternary weights');
    // The per-rule chart: every rule, and the optimal one at least as good as any.
    const snr = Object.fromEntries(page_.byRule.map((x) => [x.rule, x.snrDb]));
    assert.deepEqual(Object.keys(snr), [...tq.rules]);
    for (const rule of tq.rules) assert.ok(snr.optimal >= snr[rule] - 1e-9, `${what}: optimal ${snr.optimal} dB, ${rule} ${snr[rule]} dB`);
    if (i === 0) {
      const shot = join(OUTPUT, 'demo-1280x800.png');
      await page.screenshot({ path: shot });
      if (process.env.TQ_UPDATE_SCREENSHOT === '1') copyFileSync(shot, join(REPO, 'docs', 'demo.png'));
    }
  }
  noProblems();
});

test('a wrong size gets a message, and nothing runs', async () => {
  await page.selectOption('#preset', 'bitnet');
  await page.fill('#rows', '8');
  await page.fill('#cols', '300');
  const before = await page.evaluate(() => window.demo.errors.length);
  await page.click('#run');
  await page.waitForFunction((n) => window.demo.errors.length > n, before);
  const message = await page.textContent('#message');
  assert.match(message, /multiple of 256/, message);
  assert.equal(await page.isVisible('#message'), true);
  await page.evaluate(() => (window.demo.errors.length = 0));
  noProblems();
});

// ------------------------------------------------------------------ 2, 3. model files

const SAMPLE = join(TMP, 'sample.safetensors');
let sampleNames;

test('an uploaded .safetensors is listed tensor by tensor and converted', async () => {
  const r = spawnSync(process.execPath, [join(REPO, 'scripts', 'sample-model.mjs'), SAMPLE], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const bytes = new Uint8Array(readFileSync(SAMPLE));
  const header = io.inspectModel(bytes, bytes.length);
  sampleNames = header.tensors.map((t) => t.name);

  await page.selectOption('#preset', 'bitnet');
  await page.setInputFiles('#file', SAMPLE);
  await page.waitForFunction(() => window.demo.model || window.demo.errors.length > 0);
  assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
  const listed = await page.$$eval('#tensor-table tbody tr', (rows) => rows.map((r) => r.dataset.name));
  assert.deepEqual([...listed].sort(), [...sampleNames].sort(), 'every tensor is listed');
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  assert.equal(await page.inputValue('#workers'), String(Math.min(cores, 4)), 'workers by default: min(cores, 4)');

  await page.click('#convert');
  await page.waitForFunction(() => window.demo.conversions >= 1 || window.demo.errors.length > 0, null, { timeout: 30_000 });
  assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
  const table = await page.$$eval('#tensor-table tbody tr', (rows) =>
    rows.map((r) => ({ name: r.dataset.name, cells: [...r.cells].map((c) => c.textContent) })),
  );
  const q = table.find((row) => row.name === 'model.layers.0.self_attn.q_proj.weight');
  assert.equal(q.cells[2], 'F32 → TQ2_0');
  assert.match(q.cells[6], /^\d+\.\d\d$/, `SNR of ${q.name}: ${q.cells[6]}`);
  const down1 = table.find((row) => row.name === 'model.layers.1.mlp.down_proj.weight');
  assert.equal(down1.cells[2], 'F32 → Q8_0', 'rows of 384 fall back to Q8_0');
  const total = await page.textContent('#tensor-table tfoot tr td');
  assert.equal(total, `Total (${sampleNames.length} tensors)`);
  assert.match(await page.textContent('#model-notes'), /384/, 'the fallback is explained');
  await page.screenshot({ path: join(OUTPUT, 'demo-file-1280x800.png'), fullPage: true });

  // "view" quantizes one tensor of the file in the analysis views.
  const name = 'model.layers.0.mlp.gate_proj.weight';
  const before = await page.evaluate(() => window.demo.analyses);
  await page.click(`#tensor-table tr[data-name="${name}"] button`);
  await page.waitForFunction((n) => window.demo.analyses > n || window.demo.errors.length > 0, before);
  assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
  const viewed = await page.evaluate(() => ({ label: window.demo.last.label, bytesHash: window.demo.last.bytesHash, stats: window.demo.last.stats }));
  const t = header.tensors.find((x) => x.name === name);
  const data = new Float32Array(bytes.slice(t.offset, t.offset + t.byteLength).buffer);
  const nodeTensor = tq.quantizeTernary(data, t.shape[0], t.shape[1], { layout: 'tq2_0', rule: 'absmean', scope: 'tensor' });
  assert.equal(viewed.label.name, name);
  assert.equal(viewed.bytesHash, fnv1a(nodeTensor.bytes), `${name} quantized in the page`);
  assert.deepEqual(viewed.stats, tq.errorStats(data, nodeTensor.dequantize()));
  nodeTensor.free();
  noProblems();
});

/** The sample converted here in Node with the same plan: header, then every op at its offset. */
function convertInNode(input, options) {
  const plan = io.planConversion([{ prefix: input, fileSize: input.length }], options);
  try {
    const out = new Uint8Array(plan.outputSize);
    out.set(plan.header, 0);
    for (const op of plan.ops()) {
      const parts = op.inputs.map((r) => input.subarray(r.offset, r.offset + r.length));
      const joined = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      parts.reduce((at, p) => (joined.set(p, at), at + p.length), 0);
      out.set(op.kind === 'copy' ? joined : plan.convertTensor(op.index, joined).bytes, op.outputOffset);
    }
    return out;
  } finally {
    plan.free();
  }
}

test('the downloaded GGUF parses and equals the Node conversion byte for byte', async () => {
  assert.ok(sampleNames, 'needs the upload test');
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  assert.equal(download.suggestedFilename(), 'sample.tq2_0.gguf');
  const saved = join(TMP, 'downloaded.gguf');
  await download.saveAs(saved);
  const got = new Uint8Array(readFileSync(saved));

  const info = io.inspectModel(got, got.length);
  assert.equal(info.needBytes, undefined, 'the whole file holds its header');
  assert.equal(info.format, 'gguf');
  assert.equal(info.fileSize, got.length);
  assert.deepEqual(info.tensors.map((t) => t.name).sort(), [...sampleNames].sort());
  const dtype = Object.fromEntries(info.tensors.map((t) => [t.name, t.dtype]));
  assert.equal(dtype['model.layers.0.self_attn.q_proj.weight'], 'TQ2_0');
  assert.equal(dtype['model.layers.1.mlp.down_proj.weight'], 'Q8_0');
  assert.equal(dtype['model.embed_tokens.weight'], 'F16');
  assert.equal(dtype['model.norm.weight'], 'F32');

  const expected = convertInNode(new Uint8Array(readFileSync(SAMPLE)), { output: 'gguf', layout: 'tq2_0', rule: 'absmean', scope: 'tensor' });
  assert.equal(got.length, expected.length, 'size of the download');
  assert.ok(Buffer.from(got).equals(Buffer.from(expected)), 'the download equals the Node conversion');
  noProblems();
});

test('the converted GGUF, uploaded again, is re-packed to TQ1_0 and to bitnet-hf as the layout changes', async () => {
  const gguf = join(TMP, 'downloaded.gguf');
  assert.ok(existsSync(gguf), 'needs the download test');
  await page.setInputFiles('#file', gguf);
  await page.waitForFunction(() => window.demo.model?.summary.name === 'downloaded.gguf' || window.demo.errors.length > 0);
  assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
  assert.match(await page.textContent('#model-summary'), /^downloaded\.gguf: gguf v3, 21 tensors/);
  const input = new Uint8Array(readFileSync(gguf));
  for (const [layout, outType, fileName, output] of [
    ['tq1_0', 'TQ1_0', 'downloaded.tq1_0.gguf', 'gguf'],
    ['bitnet-hf', 'bitnet-hf', 'downloaded.bitnet-hf.safetensors', 'bitnet-hf'],
  ]) {
    // A new layout plans the conversion again.
    await page.selectOption('#layout', layout);
    await page.waitForFunction((t) => window.demo.model.plan.ops?.some((o) => o.outType === t), outType);
    const conversions = await page.evaluate(() => window.demo.conversions);
    await page.click('#convert');
    await page.waitForFunction((n) => window.demo.conversions > n || window.demo.errors.length > 0, conversions, { timeout: 30_000 });
    assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
    const type = await page.textContent('#tensor-table tr[data-name="model.layers.0.self_attn.q_proj.weight"] td:nth-child(3)');
    assert.equal(type, `TQ2_0 → ${outType}`);
    const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
    assert.equal(download.suggestedFilename(), fileName);
    const saved = join(TMP, fileName);
    await download.saveAs(saved);
    const got = new Uint8Array(readFileSync(saved));
    const options = { output, rule: 'absmean', scope: 'tensor', ...(output === 'gguf' ? { layout } : {}) };
    assert.ok(Buffer.from(got).equals(Buffer.from(convertInNode(input, options))), `${fileName} equals the Node conversion`);
    const info = io.inspectModel(got, got.length);
    assert.equal(info.format, output === 'gguf' ? 'gguf' : 'safetensors');
  }
  await page.selectOption('#preset', 'bitnet');
  noProblems();
});

test('a Hugging Face model folder, chosen as a folder, downloads as the runnable GGUF the CLI writes', async () => {
  const dir = join(TMP, 'hf');
  const r = spawnSync(python(), [join(FIXTURES, 'hf_folder.py'), dir, 'LlamaForCausalLM'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const folder = join(dir, 'model');
  await page.selectOption('#preset', 'bitnet');
  await page.setInputFiles('#folder', folder);
  await page.waitForFunction(() => window.demo.model?.summary.name === 'model' || window.demo.errors.length > 0);
  assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
  assert.match(await page.textContent('#model-summary'), /^model: model folder, 21 tensors/);
  // On 2 workers: the warning and the CLI's bytes come out of the worker pool.
  await page.fill('#workers', '2');
  const conversions = await page.evaluate(() => window.demo.conversions);
  await page.click('#convert');
  await page.waitForFunction((n) => window.demo.conversions > n || window.demo.errors.length > 0, conversions, { timeout: 30_000 });
  assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
  assert.equal(await page.evaluate(() => window.demo.converted.workers), 2);
  // Its random weights were never trained ternary: the page says so.
  assert.match(await page.textContent('#model-notes'), /Warning: these weights are far from ternary/);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  assert.equal(download.suggestedFilename(), 'model.tq2_0.gguf');
  const saved = join(TMP, 'model.tq2_0.gguf');
  await download.saveAs(saved);
  const got = new Uint8Array(readFileSync(saved));
  const byCli = join(TMP, 'model-cli.gguf');
  cliOk(['convert', folder, byCli, '--quiet']);
  assert.ok(Buffer.from(got).equals(readFileSync(byCli)), 'the download equals the CLI conversion of the folder');
  const info = io.inspectModel(got, got.length);
  assert.equal(info.metadata['general.architecture'], 'llama');
  assert.equal(info.tensors.find((t) => t.name === 'blk.0.attn_q.weight').dtype, 'TQ2_0');
  noProblems();
});

// ------------------------------------------------------------------ 4. conversion workers

// Its two F32 embeddings of 16.8 MB are over the 16 MiB that the page converts a piece at
// a time (PIECE_BYTES in www/worker.js), so a worker posts them back in several pieces.
const WORKERS_MODEL = join(TMP, 'workers.safetensors');
const WORKERS_OPTIONS = { output: 'gguf', layout: 'tq2_0', rule: 'absmean', scope: 'tensor' };
let workersBytes; // the model converted on 1 worker

/** The page's dedicated workers (its own worker and any conversion workers), once their count settles at `n`. */
async function waitForWorkers(n) {
  const until = Date.now() + 10_000;
  while (page.workers().length !== n && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  assert.equal(page.workers().length, n, 'dedicated workers of the page');
}

/** Converts the open model on `workers` workers; the download's bytes and what the page shows. */
async function convertOn(workers) {
  await page.fill('#workers', String(workers));
  let started = 0;
  const count = () => started++;
  page.on('worker', count);
  const conversions = await page.evaluate(() => window.demo.conversions);
  await page.click('#convert');
  await page.waitForFunction((n) => window.demo.conversions > n || window.demo.errors.length > 0, conversions, { timeout: 60_000 });
  page.off('worker', count);
  assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
  const [download] = await Promise.all([page.waitForEvent('download'), page.click('#download')]);
  const saved = join(TMP, `workers-${workers}.gguf`);
  await download.saveAs(saved);
  const converted = await page.evaluate(() => {
    const c = window.demo.converted;
    return { workers: c.workers, warning: c.warning, rows: c.rows.map(({ ms, ...row }) => row) };
  });
  return {
    bytes: readFileSync(saved),
    started,
    converted,
    label: await page.textContent('#progress-label'),
    summary: await page.textContent('#model-summary'),
  };
}

test('a model converted on 2 workers equals the same model converted on 1: bytes, statistics, warning', async () => {
  writeModel(WORKERS_MODEL, { hidden: 256, inter: 384, layers: 2, vocab: 16400 });
  const input = new Uint8Array(readFileSync(WORKERS_MODEL));
  const plan = io.planConversion([{ prefix: input, fileSize: input.length }], WORKERS_OPTIONS);
  const pieced = plan.ops().filter((o) => o.chunkable && o.inputLength > 16 * 2 ** 20).map((o) => o.name);
  plan.free();
  assert.deepEqual(pieced, ['model.embed_tokens.weight', 'lm_head.weight'], 'ops converted a piece at a time');

  await page.selectOption('#preset', 'bitnet');
  await page.setInputFiles('#file', WORKERS_MODEL);
  await page.waitForFunction(() => window.demo.model?.summary.name === 'workers.safetensors' || window.demo.errors.length > 0);
  assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
  const one = await convertOn(1);
  const two = await convertOn(2);
  assert.equal(one.started, 0, '1 worker: no conversion worker is started');
  assert.equal(two.started, 2, '2 workers: two conversion workers are started');
  await waitForWorkers(1);
  assert.equal(one.converted.workers, 1);
  assert.equal(two.converted.workers, 2);
  assert.match(one.label, /^Converted 21 tensors in [\d.]+ ms on 1 worker\.$/, one.label);
  assert.match(two.label, /^Converted 21 tensors in [\d.]+ ms on 2 workers\.$/, two.label);
  assert.match(two.summary, /Converted in [\d.]+ ms on 2 workers\./, two.summary);
  assert.ok(one.bytes.equals(two.bytes), 'the same bytes on 1 and on 2 workers');
  assert.ok(one.bytes.equals(Buffer.from(convertInNode(input, WORKERS_OPTIONS))), 'and the Node conversion');
  assert.deepEqual(two.converted.rows, one.converted.rows, 'per-tensor statistics and fallbacks');
  assert.ok(two.converted.rows.some((r) => r.fallbackReason && r.stats), 'a fallback with its statistics is among them');
  assert.match(two.converted.warning ?? '', /far from ternary/, 'the far-from-ternary warning');
  assert.equal(two.converted.warning, one.converted.warning);
  workersBytes = one.bytes;
  noProblems();
});

test('Stop during a conversion on 2 workers stops it, ends the workers, and the page converts again', async () => {
  assert.ok(workersBytes, 'needs the 1-and-2-workers test');
  await page.fill('#workers', '2');
  const conversions = await page.evaluate(() => window.demo.conversions);
  // Stop as soon as the first output bytes come back from a conversion worker, while
  // the other ops are still to do.
  await page.evaluate(() => {
    const label = document.getElementById('progress-label');
    const observer = new MutationObserver(() => {
      if (/, 2 workers\)$/.test(label.textContent)) {
        observer.disconnect();
        document.getElementById('stop').click();
      }
    });
    observer.observe(label, { childList: true, characterData: true, subtree: true });
  });
  await page.click('#convert');
  await page.waitForFunction(() => document.body.dataset.state === 'ready' && !document.getElementById('message').hidden, null, { timeout: 60_000 });
  assert.equal(await page.textContent('#message'), 'Conversion stopped.');
  assert.equal(await page.textContent('#progress-label'), 'Stopped.');
  assert.equal(await page.evaluate(() => window.demo.conversions), conversions, 'the conversion did not finish');
  assert.deepEqual(await page.evaluate(() => window.demo.errors), [], 'stopping is not an error');
  assert.equal(await page.isHidden('#stop'), true);
  assert.equal(await page.isEnabled('#convert'), true);
  await waitForWorkers(1);

  const again = await convertOn(2);
  assert.equal(again.converted.workers, 2);
  assert.ok(again.bytes.equals(workersBytes), 'the next conversion gives the same bytes');
  await waitForWorkers(1);
  noProblems();
});

test('an error in a conversion worker reaches the page as the same message as on 1 worker', async () => {
  // Two 256 x 256 F32 tensors, the second with a NaN: the plan holds, its conversion fails.
  const n = 256 * 256;
  const file = safetensors(
    {
      'a.weight': { dtype: 'F32', shape: [256, 256], data_offsets: [0, 4 * n] },
      'b.weight': { dtype: 'F32', shape: [256, 256], data_offsets: [4 * n, 8 * n] },
    },
    8 * n,
  );
  const data = file.length - 8 * n;
  for (let i = 0; i < 2 * n; i++) file.writeFloatLE(0.01 * ((i % 7) - 3), data + 4 * i);
  file.writeFloatLE(NaN, data + 4 * (n + 7));
  const path = join(TMP, 'nan.safetensors');
  writeFileSync(path, file);
  await page.setInputFiles('#file', path);
  await page.waitForFunction(() => window.demo.model?.summary.name === 'nan.safetensors' || window.demo.errors.length > 0);
  assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
  const messages = [];
  for (const workers of [1, 2]) {
    await page.fill('#workers', String(workers));
    const before = await page.evaluate(() => window.demo.errors.length);
    await page.click('#convert');
    await page.waitForFunction((k) => window.demo.errors.length > k, before, { timeout: 30_000 });
    messages.push(await page.textContent('#message'));
    assert.equal(await page.evaluate(() => window.demo.converted), null, 'nothing was converted');
    assert.equal(await page.isHidden('#download'), true, 'no download');
    await waitForWorkers(1);
  }
  assert.equal(messages[0], "tensor 'b.weight': non-finite value NaN at index 7 of input");
  assert.equal(messages[1], messages[0], 'the same message on 2 workers');
  const before = await page.evaluate(() => window.demo.errors.length);
  await page.fill('#workers', '0');
  await page.click('#convert');
  await page.waitForFunction((k) => window.demo.errors.length > k, before);
  assert.equal(await page.textContent('#message'), 'The number of workers must be a whole number from 1 to 16; got 0.');
  await page.fill('#workers', '2');
  await page.evaluate(() => (window.demo.errors.length = 0));
  noProblems();
});

// ------------------------------------------------------------------ 5. bad input

/** A safetensors file from a header object and a data length (zeros). */
function safetensors(header, dataLength) {
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const h = Buffer.from(json);
  const b = Buffer.alloc(8 + h.length + dataLength);
  b.writeBigUInt64LE(BigInt(h.length), 0);
  h.copy(b, 8);
  return b;
}

test('a bad file and an unsupported dtype get clear messages', async () => {
  const bad = join(TMP, 'notes.txt');
  writeFileSync(bad, 'these are notes, not a model file at all\n');
  const before = await page.evaluate(() => window.demo.errors.length);
  await page.setInputFiles('#file', bad);
  await page.waitForFunction((n) => window.demo.errors.length > n, before);
  const message = await page.textContent('#message');
  assert.match(message, /^Could not read "notes\.txt": it is not a \.safetensors or \.gguf file/, message);

  const odd = join(TMP, 'odd.safetensors');
  writeFileSync(
    odd,
    safetensors(
      {
        'ids.weight': { dtype: 'I64', shape: [4, 4], data_offsets: [0, 128] },
        'proj.weight': { dtype: 'F32', shape: [256, 256], data_offsets: [128, 128 + 262144] },
      },
      128 + 262144,
    ),
  );
  await page.setInputFiles('#file', odd);
  await page.waitForFunction(() => window.demo.model?.summary.name === 'odd.safetensors');
  assert.equal(await page.isVisible('#message'), false, 'an openable file clears the message');
  const notes = await page.textContent('#model-notes');
  assert.match(notes, /ids\.weight: I64 values cannot be decoded.*\(copied unchanged\)/, notes);
  await page.evaluate(() => (window.demo.errors.length = 0));
  noProblems();
});

test('a model larger than memory (a sparse 32 GiB file) is listed and planned from its header', async () => {
  const big = join(TMP, 'huge.safetensors');
  const shape = [131072, 65536]; // two F16 tensors of 16 GiB each
  const bytes = 2 * shape[0] * shape[1];
  const head = safetensors(
    {
      'layers.0.up.weight': { dtype: 'F16', shape, data_offsets: [0, bytes] },
      'layers.0.down.weight': { dtype: 'F16', shape: [...shape].reverse(), data_offsets: [bytes, 2 * bytes] },
    },
    0,
  );
  writeFileSync(big, head);
  truncateSync(big, head.length + 2 * bytes); // sparse: no disk, no memory
  const started = Date.now();
  await page.setInputFiles('#file', big);
  await page.waitForFunction(() => window.demo.model?.summary.name === 'huge.safetensors' || window.demo.errors.length > 0);
  assert.deepEqual(await page.evaluate(() => window.demo.errors), []);
  const model = await page.evaluate(() => window.demo.model);
  assert.equal(model.summary.size, head.length + 2 * bytes);
  assert.deepEqual(model.plan.ops.map((o) => [o.name, o.kind, o.outType]).sort(), [
    ['layers.0.down.weight', 'quantize', 'TQ2_0'],
    ['layers.0.up.weight', 'quantize', 'TQ2_0'],
  ]);
  assert.ok(model.plan.outputSize > 2 ** 32, `a TQ2_0 output over 4 GiB: ${model.plan.outputSize}`);
  assert.ok(Date.now() - started < 10_000, 'only the header was read');
  // Converting it would need a 16 GiB tensor in wasm memory: a clear refusal, up front.
  const errors = await page.evaluate(() => window.demo.errors.length);
  await page.click('#convert');
  await page.waitForFunction((k) => window.demo.errors.length > k, errors);
  assert.match(await page.textContent('#message'), /layers\.0\.(up|down)\.weight has 16\.0 GiB; the page converts one whole tensor at a time/);
  await page.evaluate(() => (window.demo.errors.length = 0));
  rmSync(big);
  noProblems();
});

// ------------------------------------------------------------------ 6. a narrow window

test('a 400 px wide window: one column, no sideways scrolling', async () => {
  const narrow = await watchedPage({ width: 400, height: 800 });
  try {
    const overflow = await narrow.page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow} px wider than the window`);
    await narrow.page.screenshot({ path: join(OUTPUT, 'demo-narrow.png'), fullPage: true });
  } finally {
    await narrow.ctx.close();
  }
  await context.close();
  noProblems();
});
