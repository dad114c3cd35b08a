#!/usr/bin/env node
// The scale rules side by side, for the README's rule tables:
// 1. SNR of TQ2_0 on 2^20 values (1024 x 1024) of Gaussian, Laplace and Student-t(3)
//    weights drawn from a fixed seed, per rule and scope, with the time each
//    quantization takes in the npm package's SIMD128 build;
// 2. the median tensor SNR of the project's sample model (scripts/sample-model.mjs)
//    converted by the CLI with --report, per rule.
// Usage: node scripts/rules.mjs   (after scripts/build.sh)
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { init, quantizeTernary, errorStats } = await import(join(root, 'pkg', 'index.js'));
const info = await init();

// xorshift32, as scripts/sample-model.mjs.
let s = 0x9e3779b9 >>> 0;
const u = () => {
  s ^= s << 13;
  s >>>= 0;
  s ^= s >>> 17;
  s ^= s << 5;
  s >>>= 0;
  return (s + 0.5) / 2 ** 32;
};
const gaussian = () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u());
const draws = {
  Gaussian: gaussian,
  Laplace: () => {
    const v = u() - 0.5;
    return -Math.sign(v) * Math.log(1 - 2 * Math.abs(v));
  },
  'Student-t (3)': () => {
    const z = gaussian();
    let c = 0;
    for (let i = 0; i < 3; i++) c += gaussian() ** 2;
    return z / Math.sqrt(c / 3);
  },
};
const runs = [
  ['absmean', 'tensor'],
  ['absmax', 'block'],
  ['optimal', 'tensor'],
  ['optimal', 'block'],
];
console.log(`SNR of TQ2_0 on 1024 x 1024 values, ${info.backend} build (ms per quantization in brackets)`);
for (const [name, draw] of Object.entries(draws)) {
  const w = Float32Array.from({ length: 1 << 20 }, draw);
  const cells = runs.map(([rule, scope]) => {
    quantizeTernary(w, 1024, 1024, { layout: 'tq2_0', rule, scope }).free(); // warm-up
    const t0 = performance.now();
    const t = quantizeTernary(w, 1024, 1024, { layout: 'tq2_0', rule, scope });
    const ms = performance.now() - t0;
    const snr = errorStats(w, t.dequantize()).snrDb;
    t.free();
    return `${rule}/${scope} ${snr.toFixed(2)} dB (${ms.toFixed(0)} ms)`;
  });
  console.log(`  ${name}: ${cells.join(', ')}`);
}

const dir = mkdtempSync(join(tmpdir(), 'tq-rules-'));
try {
  const model = join(dir, 'sample.safetensors');
  execFileSync(process.execPath, [join(root, 'scripts', 'sample-model.mjs'), model], { stdio: 'ignore' });
  console.log('Sample model (scripts/sample-model.mjs), TQ2_0 tensors: median / min / max tensor SNR');
  for (const args of [['--rule', 'absmean'], ['--rule', 'optimal'], ['--preset', 'best'], ['--rule', 'absmax', '--scope', 'block']]) {
    const report = join(dir, 'report.json');
    execFileSync(process.execPath, [join(root, 'pkg', 'cli.js'), 'convert', model, join(dir, 'out.gguf'), ...args, '--quiet', '--report', report]);
    const snr = JSON.parse(readFileSync(report, 'utf8')).tensors.filter((t) => t.outType === 'TQ2_0').map((t) => t.snrDb).sort((a, b) => a - b);
    console.log(`  ${args.join(' ')}: ${snr[snr.length >> 1].toFixed(2)} / ${snr[0].toFixed(2)} / ${snr.at(-1).toFixed(2)} dB over ${snr.length} tensors`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
