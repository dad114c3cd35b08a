// The `ternary-quant` command, run with npx from the project that installed the tarball.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { packageDir } from './helpers.mjs';

function npx(...args) {
  const r = spawnSync('npx', ['--no', '--', 'ternary-quant', ...args], {
    encoding: 'utf8',
    timeout: 120_000,
    env: { ...process.env, NO_COLOR: '1' },
  });
  if (r.error) throw r.error;
  return r;
}

test('--help prints usage and exits 0', () => {
  for (const args of [['--help'], ['-h'], []]) {
    const r = npx(...args);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /Usage:/);
    assert.match(r.stdout, /ternary-quant bench/);
    assert.equal(r.stderr, '');
  }
});

test('--version prints the package version', () => {
  const { version } = JSON.parse(readFileSync(join(packageDir(), 'package.json'), 'utf8'));
  const r = npx('--version');
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), version);
});

test('bench --help', () => {
  const r = npx('bench', '--help');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /--rows/);
  assert.match(r.stdout, /--cols/);
  assert.match(r.stdout, /--json/);
});

test('bench --rows 64 --cols 512 --json prints parseable results for both builds', () => {
  const r = npx('bench', '--rows', '64', '--cols', '512', '--json');
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout);
  assert.equal(out.rows, 64);
  assert.equal(out.cols, 512);
  assert.deepEqual(out.results.map((x) => x.build), ['simd128', 'scalar']);
  for (const res of out.results) {
    assert.ok(['simd128', 'scalar'].includes(res.backend));
    for (const k of ['quantizeGValuesPerS', 'ternaryGemvGValuesPerS', 'f32GemvGValuesPerS', 'ternaryOverF32']) {
      assert.ok(Number.isFinite(res[k]) && res[k] > 0, `${res.build} ${k} = ${res[k]}`);
    }
  }
  assert.equal(out.results[1].backend, 'scalar');
});

test('every command takes --flag=value as --flag value', () => {
  const spaced = npx('bench', '--rows', '8', '--cols', '256', '--json');
  const joined = npx('bench', '--rows=8', '--cols=256', '--json');
  for (const r of [spaced, joined]) assert.equal(r.status, 0, r.stderr);
  for (const r of [spaced, joined]) {
    const out = JSON.parse(r.stdout);
    assert.deepEqual([out.rows, out.cols], [8, 256]);
  }
});

test('bench without --json prints a table', () => {
  const r = npx('bench', '--rows', '16', '--cols', '256');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /16 x 256/);
  assert.match(r.stdout, /^simd128 /m);
  assert.match(r.stdout, /^scalar /m);
});

test('an unknown command or bad argument exits non-zero with a one-line reason', () => {
  for (const [args, re] of [
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['bench', '--rows'], /--rows needs a value/],
    [['bench', '--rows', '0'], /--rows must be an integer in 1\.\./],
    [['bench', '--rows=x'], /--rows must be an integer in 1\.\..*got 'x'/],
    [['bench', '--json=yes'], /--json takes no value/],
    [['bench', 'extra'], /bench takes no paths/],
    [['bench', '--cols', '100'], /multiple of 256/],
    [['bench', '--fast'], /unknown option '--fast'/],
    [['inspect', '--fast=1', 'x'], /unknown option '--fast'/],
  ]) {
    const r = npx(...args);
    assert.notEqual(r.status, 0, `${args.join(' ')} exited 0`);
    const lines = r.stderr.trimEnd().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: stderr has ${lines.length} lines: ${r.stderr}`);
    assert.match(lines[0], /^ternary-quant: /);
    assert.match(lines[0], re);
    assert.equal(r.stdout, '');
  }
});
