// The malformed-file corpus (tests/malformed in the repository) through the installed
// package: every case gives a JS Error from the API at the stage the manifest names,
// with the manifest's words, and the CLI exits non-zero with one line and leaves no
// output. Then the same wasm instance survives 1,000 bad calls of each kind.
import assert from 'node:assert/strict';
import { closeSync, existsSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadBuild } from 'ternary-quant';
import { assertFailed, cli, repoRoot, tempDir } from './fixtures/cli.mjs';

const corpus = join(repoRoot(), 'tests', 'malformed');
const { cases, folders } = JSON.parse(readFileSync(join(corpus, 'manifest.json'), 'utf8'));

function planOptions(c) {
  const output = c.output ?? 'gguf';
  return { output, layout: c.layout ?? (output === 'gguf' ? 'tq2_0' : 'bitnet-hf') };
}

/** The bytes of an op's input ranges, concatenated. */
function opInput(bytes, op) {
  const out = new Uint8Array(op.inputLength);
  let at = 0;
  for (const r of op.inputs) {
    out.set(bytes.subarray(r.offset, r.offset + r.length), at);
    at += r.length;
  }
  return out;
}

/**
 * Runs a case as the README of the corpus says; returns { stage, error } of the first
 * error, or { stage: 'none' }. Any throw that is not an Error (a wasm trap is a
 * WebAssembly.RuntimeError, which is an Error too, so traps are told apart by name).
 */
function runCase(api, c) {
  const bytes = new Uint8Array(readFileSync(join(corpus, 'files', c.file)));
  const attempt = (stage, fn) => {
    try {
      return { value: fn() };
    } catch (error) {
      return { stage, error };
    }
  };
  const read = attempt('read', () => api.inspectModel(bytes, bytes.length));
  if (read.error) return read;
  assert.equal(read.value.needBytes, undefined, `${c.file}: the whole file was given`);
  const planned = attempt('plan', () => api.planConversion([{ prefix: bytes, fileSize: bytes.length }], planOptions(c)));
  if (planned.error) return planned;
  const plan = planned.value;
  try {
    for (const op of plan.ops()) {
      if (op.kind === 'copy') continue;
      const converted = attempt('convert', () => plan.convertTensor(op.index, opInput(bytes, op), false));
      if (converted.error) return converted;
    }
  } finally {
    plan.free();
  }
  return { stage: 'none' };
}

function checkError(c, result) {
  assert.equal(result.stage, c.stage, `${c.file}: expected an error at ${c.stage}, got ${result.stage}: ${result.error?.message}`);
  const e = result.error;
  assert.ok(e instanceof Error, `${c.file}: not an Error: ${e}`);
  assert.notEqual(e.name, 'RuntimeError', `${c.file}: a wasm trap: ${e.message}`);
  assert.ok(!e.message.includes('\n'), `${c.file}: a multi-line message: ${e.message}`);
  for (const words of c.contains) assert.ok(e.message.includes(words), `${c.file}: '${e.message}' lacks '${words}'`);
  if (c.tensor) assert.ok(e.message.includes(`tensor '${c.tensor}'`), `${c.file}: '${e.message}' does not name ${c.tensor}`);
}

describe('the malformed-file corpus', () => {
  test('the corpus has at least 30 cases, read, plan and convert stages among them', () => {
    assert.ok(cases.length >= 30, `${cases.length} cases`);
    for (const stage of ['read', 'plan', 'convert']) assert.ok(cases.some((c) => c.stage === stage), stage);
  });

  for (const simd of [true, false]) {
    test(`JS API (${simd ? 'SIMD128' : 'scalar'} build): every case is an Error at its stage`, async () => {
      const api = await loadBuild({ simd, modelFiles: true });
      for (const c of cases) checkError(c, runCase(api, c));
    });
  }

  test('CLI: every case exits non-zero with one line and leaves no output', (t) => {
    const dir = tempDir(t, 'tq-malformed-');
    for (const c of cases) {
      const { output, layout } = planOptions(c);
      const out = join(dir, output === 'gguf' ? 'out.gguf' : 'out.safetensors');
      const r = cli(['convert', join(corpus, 'files', c.file), out, '--output', output, '--layout', layout, '--quiet']);
      assertFailed(r, undefined, out);
      for (const words of c.contains) assert.ok(r.stderr.includes(words), `${c.file}: '${r.stderr.trim()}' lacks '${words}'`);
      if (c.stage === 'read') {
        const inspected = cli(['inspect', join(corpus, 'files', c.file)]);
        assertFailed(inspected);
      }
    }
  });
});

describe('the malformed model folders', () => {
  test('CLI: every folder exits non-zero with one line naming the file (and field), and leaves no output', (t) => {
    assert.ok(folders.length >= 12, `${folders.length} folders`);
    const dir = tempDir(t, 'tq-malformed-folder-');
    for (const f of folders) {
      const out = join(dir, `${f.dir}.gguf`);
      const r = cli(['convert', join(corpus, 'folders', f.dir), out, '--quiet']);
      assertFailed(r, undefined, out);
      for (const words of f.contains) assert.ok(r.stderr.includes(words), `${f.dir}: '${r.stderr.trim()}' lacks '${words}'`);
    }
  });

  test('JS API: folder and plan cases are one-line Errors from planConversion with the model option', async () => {
    const api = await loadBuild({ simd: true, modelFiles: true });
    const read = (d, file) => (existsSync(join(d, file)) ? new Uint8Array(readFileSync(join(d, file))) : undefined);
    for (const f of folders.filter((x) => x.stage !== 'open')) {
      const d = join(corpus, 'folders', f.dir);
      const weights = read(d, 'model.safetensors');
      const model = { config: read(d, 'config.json') };
      for (const [key, file] of [['tokenizerJson', 'tokenizer.json'], ['tokenizerModel', 'tokenizer.model']]) {
        if (read(d, file)) model[key] = read(d, file);
      }
      assert.throws(
        () => api.planConversion([{ prefix: weights, fileSize: weights.length }], { model }),
        (e) => {
          assert.ok(e instanceof Error && e.name !== 'RuntimeError' && !e.message.includes('\n'), `${f.dir}: ${e}`);
          for (const words of f.contains) assert.ok(e.message.includes(words), `${f.dir}: '${e.message}' lacks '${words}'`);
          return true;
        },
      );
    }
  });
});

describe('one instance survives 1,000 bad calls of each kind', () => {
  test('model-file errors, then correct results from the same instance', async () => {
    const api = await loadBuild({ simd: true, modelFiles: true });
    const byStage = (stage) => cases.find((c) => c.stage === stage);
    const readCase = byStage('read');
    const planCase = byStage('plan');
    const convertCase = byStage('convert');
    const sample = new Uint8Array(readFileSync(join(corpus, 'files', convertCase.file)));
    for (let i = 0; i < 1000; i++) {
      checkError(readCase, runCase(api, readCase));
      checkError(planCase, runCase(api, planCase));
      checkError(convertCase, runCase(api, convertCase));
    }
    // A good quantization on this instance equals one on a fresh build of the other
    // kind (scalar): same bytes after 3,000 errors.
    const w = Float32Array.from({ length: 4 * 512 }, (_, i) => Math.sin(i * 0.37));
    const good = api.quantizeTernary(w, 4, 512, { preset: 'accurate' });
    const other = (await loadBuild({ simd: false })).quantizeTernary(w, 4, 512, { preset: 'accurate' });
    assert.deepEqual(good.bytes, other.bytes);
    good.free();
    other.free();
    // And the convert case's file still reads as it did.
    assert.equal(api.inspectModel(sample, sample.length).format, convertCase.file.endsWith('.gguf') ? 'gguf' : 'safetensors');
  });

  test('a tensor too large for wasm memory is refused with a clear Error, and the instance goes on', async () => {
    const api = await loadBuild({ simd: true });
    // 1.5 GiB of f32 needs its copy plus the output inside wasm's 4 GiB: refused up
    // front, before any copy, naming the limit.
    const big = new Float32Array(2 ** 28 + 2 ** 27);
    for (let i = 0; i < 3; i++) {
      assert.throws(() => api.quantizeTernary(big, 2 ** 15 + 2 ** 14, 2 ** 13), (e) => {
        assert.ok(e instanceof RangeError, e.name);
        assert.match(e.message, /4 GiB/);
        return true;
      });
    }
    const w = Float32Array.from({ length: 256 }, (_, i) => i / 256 - 0.5);
    const t = api.quantizeTernary(w, 1, 256);
    assert.equal(t.bytes.length, 66);
    t.free();
  });
});

test('CLI: a tensor too large for wasm memory fails naming the tensor and the limit, leaving nothing', (t) => {
  // A sparse safetensors file whose one ternarised tensor is 2 GiB of F32 (zeros):
  // converting it needs more than wasm's 4 GiB, so it is refused before any read.
  const dir = tempDir(t, 'tq-toolarge-');
  const name = 'model.layers.0.mlp.up_proj.weight';
  const bytes = 2 ** 31;
  let json = JSON.stringify({ [name]: { dtype: 'F32', shape: [32768, 16384], data_offsets: [0, bytes] } });
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const header = Buffer.alloc(8 + json.length);
  header.writeBigUInt64LE(BigInt(json.length), 0);
  header.write(json, 8, 'utf8');
  const input = join(dir, 'big.safetensors');
  const fd = openSync(input, 'w');
  writeSync(fd, header, 0, header.length, 0);
  ftruncateSync(fd, header.length + bytes);
  closeSync(fd);
  const out = join(dir, 'big.gguf');
  const r = cli(['convert', input, out, '--quiet']);
  assertFailed(r, new RegExp(`tensor '${name.replaceAll('.', '\\.')}'.*4 GiB`), out);
});
