#!/usr/bin/env node
// Times the demo page (target/www, scripts/build-www.sh) converting a model file to GGUF
// TQ2_0 on 1 and on 2 conversion workers, in Debian's headless Chromium driven by
// playwright-core, as the demo's tests run it. The model is the ~90 MB F32 safetensors
// file of scripts/bench-convert.sh (target/bench/model.safetensors, made here when
// missing). Every run is the time the page shows: from planning to the output Blob,
// reading the file and starting the workers included. One conversion on each count
// first is not counted (it compiles code and grows wasm memory); then the counts take
// turns, RUNS times each, so that a slow moment of the machine hits both. The outputs of
// 1 and 2 workers must be the same bytes (SHA-256), or nothing is reported.
//
// Usage: node scripts/bench-demo.mjs [RUNS]    (default 7)
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { launchChromium, startServer } from '../pkg-tests/fixtures/browser.mjs';
import { writeModel } from '../pkg-tests/fixtures/make-model.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const SITE = join(ROOT, 'target', 'www');
const RUNS = Number(process.argv[2] ?? 7);
const COUNTS = [1, 2];
// The arguments scripts/bench-convert.sh gives make-model.mjs, and the file it writes.
const MODEL = join(ROOT, 'target', 'bench', 'model.safetensors');
const MODEL_CONFIG = { hidden: 768, inter: 2048, layers: 2, vocab: 5120 };
const MODEL_ARGS = Object.entries(MODEL_CONFIG).map(([k, v]) => `--${k} ${v}`).join(' ');

function fail(message) {
  process.stderr.write(`bench-demo: ${message}\n`);
  process.exit(1);
}

if (!Number.isInteger(RUNS) || RUNS < 1) fail(`RUNS must be a positive whole number, got ${process.argv[2]}`);
if (!existsSync(join(SITE, 'index.html'))) fail(`${SITE} is not built; run: bash scripts/build.sh && bash scripts/build-www.sh`);
if (!existsSync(MODEL) || (existsSync(`${MODEL}.args`) ? readFileSync(`${MODEL}.args`, 'utf8').trim() : '') !== MODEL_ARGS) {
  mkdirSync(dirname(MODEL), { recursive: true });
  writeModel(MODEL, MODEL_CONFIG);
  writeFileSync(`${MODEL}.args`, `${MODEL_ARGS}\n`);
}
const inputBytes = readFileSync(MODEL).length;

/**
 * CPU time (user + system, ms) of the Chromium that this script started and all its
 * descendants, from /proc: the browser process (it serves the file reads), the renderer
 * (the page and its workers) and the helpers. Where /proc is missing, null.
 */
function chromiumCpuMs() {
  if (!existsSync('/proc/self/stat')) return null;
  const children = new Map();
  const ticks = new Map();
  const roots = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // it exited meanwhile
    }
    // Fields after the parenthesised command name: state ppid ... utime (14) stime (15).
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const command = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const pid = Number(name);
    if (Number(f[1]) === process.pid && /chrom/i.test(command)) roots.push(pid);
    const ppid = Number(f[1]);
    ticks.set(pid, Number(f[11]) + Number(f[12]));
    if (!children.has(ppid)) children.set(ppid, []);
    children.get(ppid).push(pid);
  }
  let total = 0;
  const stack = [...roots];
  while (stack.length > 0) {
    const pid = stack.pop();
    total += ticks.get(pid) ?? 0;
    stack.push(...(children.get(pid) ?? []));
  }
  return (total * 1000) / 100; // USER_HZ is 100 on Linux
}

const median = (values) => {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};

const server = await startServer(SITE);
const browser = await launchChromium();
try {
  const page = await browser.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => {
    if (m.type() === 'error') problems.push(m.text());
  });
  await page.goto(`http://127.0.0.1:${server.port}/`);
  // The page analyses synthetic weights when it opens; a file is taken once that is done.
  await page.waitForFunction(() => window.demo?.analyses >= 1 || window.demo?.errors.length > 0, null, { timeout: 60_000 });
  const cores = await page.evaluate(() => navigator.hardwareConcurrency);
  await page.setInputFiles('#file', MODEL);
  await page.waitForFunction(() => window.demo.model || window.demo.errors.length > 0, null, { timeout: 60_000 });

  /** One conversion on `workers` workers: what the page reports, and the output's SHA-256 when asked. */
  async function convert(workers, hash = false) {
    await page.waitForFunction(() => document.body.dataset.state === 'ready');
    await page.fill('#workers', String(workers));
    const before = await page.evaluate(() => window.demo.conversions);
    const cpuBefore = chromiumCpuMs();
    await page.click('#convert');
    await page.waitForFunction((n) => window.demo.conversions > n || window.demo.errors.length > 0, before, { timeout: 600_000 });
    const cpuAfter = chromiumCpuMs();
    const errors = await page.evaluate(() => window.demo.errors);
    if (errors.length > 0 || problems.length > 0) fail(`the page failed: ${[...errors, ...problems].join('; ')}`);
    const c = await page.evaluate(() => {
      const { ms, workers, workersReadyMs, outputSize, rows } = window.demo.converted;
      return { ms, workers, workersReadyMs, outputSize, opMs: rows.reduce((s, r) => s + r.ms, 0) };
    });
    if (c.workers !== workers) fail(`asked for ${workers} workers, the page converted on ${c.workers}`);
    c.cpuMs = cpuBefore === null ? null : cpuAfter - cpuBefore;
    if (hash) {
      const bytes = await page.evaluate(async () => {
        const blob = await (await fetch(document.getElementById('download').href)).arrayBuffer();
        return Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', blob)));
      });
      c.sha256 = Buffer.from(bytes).toString('hex');
    }
    return c;
  }

  const warm = {};
  for (const workers of COUNTS) warm[workers] = await convert(workers, true);
  if (warm[1].sha256 !== warm[2].sha256) fail(`1 and 2 workers gave different outputs: ${warm[1].sha256} and ${warm[2].sha256}`);
  const runs = Object.fromEntries(COUNTS.map((w) => [w, []]));
  for (let i = 0; i < RUNS; i++) for (const workers of COUNTS) runs[workers].push(await convert(workers));

  const chromium = browser.version();
  const where = `${cpus().length} cores (navigator.hardwareConcurrency ${cores}), ${cpus()[0]?.model ?? 'unknown CPU'}`;
  console.log(`demo conversion: ${MODEL} (${(inputBytes / 1e6).toFixed(1)} MB, ${MODEL_ARGS}) to GGUF TQ2_0, Chromium ${chromium}`);
  console.log(`  ${where}; load average ${loadavg().map((x) => x.toFixed(2)).join(' ')} at the end`);
  console.log(`  output ${warm[1].outputSize} bytes, the same on 1 and 2 workers (SHA-256 ${warm[1].sha256.slice(0, 16)}...)`);
  for (const workers of COUNTS) {
    const r = runs[workers];
    const ms = r.map((x) => x.ms);
    const m = median(ms);
    const ready = r[0].workersReadyMs === null ? '' : `; workers ready after ${median(r.map((x) => x.workersReadyMs)).toFixed(0)} ms`;
    const cpu = r[0].cpuMs === null ? '' : `; Chromium's CPU time ${median(r.map((x) => x.cpuMs)).toFixed(0)} ms`;
    console.log(
      `  ${workers} worker${workers === 1 ? ': ' : 's:'} median ${m.toFixed(0)} ms (${(inputBytes / 1e3 / m).toFixed(0)} MB/s of input), ` +
        `best ${Math.min(...ms).toFixed(0)}, worst ${Math.max(...ms).toFixed(0)}; ops' own time summed ${median(r.map((x) => x.opMs)).toFixed(0)} ms${ready}${cpu}`,
    );
  }
  const speedup = median(runs[1].map((x) => x.ms)) / median(runs[2].map((x) => x.ms));
  console.log(`  speedup of 2 workers over 1 (ratio of medians, ${RUNS} runs each): ${speedup.toFixed(2)}x`);
} finally {
  await browser.close();
  server.child.kill();
}
