// index.d.ts checked with the TypeScript compiler: types/api.ts uses the whole API as
// the README shows it and must compile under --strict; types/wrong.ts holds calls the
// types must refuse, so that the check is known to fail when the types are wrong.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';

const ROOT = process.cwd(); // the test project, with the tarball and typescript installed
const TSC = join(ROOT, 'node_modules', '.bin', 'tsc');
const CONFIG = join(ROOT, 'pkg-tests', 'types', 'tsconfig.json');

function tsc(...args) {
  const r = spawnSync(TSC, args, { encoding: 'utf8', timeout: 120_000 });
  if (r.error) throw r.error;
  return r;
}

test('tsc --strict accepts the whole API as the README uses it', () => {
  const r = tsc('-p', CONFIG);
  assert.equal(r.status, 0, `tsc failed:\n${r.stdout}${r.stderr}`);
});

test('tsc refuses a wrong call (the check bites)', () => {
  const wrong = join(ROOT, 'pkg-tests', 'types', 'wrong.ts');
  const bad = tsc('--noEmit', '--strict', '--target', 'es2022', '--module', 'nodenext', '--moduleResolution', 'nodenext', wrong);
  assert.notEqual(bad.status, 0, 'tsc accepted types/wrong.ts');
  const errors = bad.stdout.split('\n').filter((line) => line.includes('error TS'));
  assert.equal(errors.length, 2, bad.stdout);
  assert.match(errors[0], /wrong\.ts\(5,17\).*TS2345/, bad.stdout);
  assert.match(errors[1], /wrong\.ts\(6,.*tq3_0/, bad.stdout);
});
