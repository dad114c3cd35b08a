// Byte equality with gguf-py's reference quantizers (TQ2_0, TQ1_0, Q8_0), on both wasm
// builds. The vectors come from fixtures/gen_oracle.py, which scripts/pack-and-test.sh
// runs into $TQ_ORACLE_DIR before the tests.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { init, loadBuild, quantizeInt8, quantizeTernary, simdSupported } from 'ternary-quant';
import { assertBytesEqual, f32FromBase64 } from './helpers.mjs';

function loadOracle() {
  const dir = process.env.TQ_ORACLE_DIR;
  if (!dir) {
    assert.fail(
      `no gguf-py oracle vectors: ${process.env.TQ_ORACLE_ERROR ?? 'TQ_ORACLE_DIR is not set'} ` +
        '(run the tests through scripts/pack-and-test.sh with ORACLE_PYTHON pointing at a python with gguf and numpy)',
    );
  }
  return JSON.parse(readFileSync(join(dir, 'oracle.json'), 'utf8'));
}

function quantize(api, c, x) {
  const t =
    c.type === 'Q8_0'
      ? api.quantizeInt8(x, c.rows, c.cols, { layout: 'q8_0' })
      : api.quantizeTernary(x, c.rows, c.cols, { layout: c.type.toLowerCase(), rule: 'absmax', scope: 'block', blockSize: 256 });
  const bytes = t.bytes;
  t.free();
  return bytes;
}

test('gguf-py oracle: TQ2_0, TQ1_0 and Q8_0 bytes on every build', async (t) => {
  const doc = loadOracle();
  await init();
  const builds = [['default', { quantizeInt8, quantizeTernary }]];
  if (simdSupported()) builds.push(['simd', await loadBuild({ simd: true })]);
  builds.push(['scalar', await loadBuild({ simd: false })]);
  const types = new Set(doc.cases.map((c) => c.type));
  assert.deepEqual([...types].sort(), ['Q8_0', 'TQ1_0', 'TQ2_0']);
  assert.ok(doc.cases.length >= 30, `only ${doc.cases.length} oracle cases`);
  for (const c of doc.cases) {
    await t.test(c.name, () => {
      const x = f32FromBase64(c.input);
      assert.equal(x.length, c.rows * c.cols);
      const expected = Buffer.from(c.expected, 'base64');
      for (const [name, api] of builds) {
        assertBytesEqual(quantize(api, c, x), expected, `${c.name} (${name} build, gguf ${doc.gguf})`);
      }
    });
  }
});
