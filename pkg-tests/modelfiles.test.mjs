// Converted model files read by other tools: gguf-py's GGUFReader (metadata kept,
// dequantized tensors equal to the package's), @huggingface/gguf (headers), a numpy
// port of transformers' unpack_weights (bitnet-hf codes), an exact HF-packed -> GGUF ->
// HF-packed round trip, and a sparse model larger than 4 GiB.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { gguf as hfGguf } from '@huggingface/gguf';
import { init, quantizeInt8, quantizeTernary } from 'ternary-quant';
import { assertArrayEqual, assertBytesEqual, f16Bits, f16Value } from './helpers.mjs';
import {
  cliOk,
  cliSpawn,
  exited,
  f16ToF32,
  f32Of,
  inspectJson,
  pyCheck,
  readAt,
  readSafetensors,
  sampleModel,
  tempDir,
  tensorBytesOf,
} from './fixtures/cli.mjs';
import { sparseModel, writeTensors } from './fixtures/make-model.mjs';

const GGML_TYPES = { F32: 0, F16: 1, Q8_0: 8, TQ1_0: 34, TQ2_0: 35, I2_S: 36 };

/** What the package gives for a tensor's values stored as `type` (the bitnet preset). */
function ours(type, values, shape) {
  const cols = shape[shape.length - 1];
  const rows = values.length / cols;
  if (type === 'F32') return values;
  if (type === 'F16') return Float32Array.from(values, (v) => f16Value(f16Bits(v)));
  const t =
    type === 'Q8_0'
      ? quantizeInt8(values, rows, cols, { layout: 'q8_0' })
      : quantizeTernary(values, rows, cols, { layout: type.toLowerCase(), rule: 'absmean', scope: 'tensor' });
  const out = t.dequantize();
  t.free();
  return out;
}

/** gguf-py's view of a GGUF file: { alignment, metadata, tensors } plus values by name. */
function readWithGgufPy(path, dir) {
  pyCheck(['read-gguf', path, dir]);
  const doc = JSON.parse(readFileSync(join(dir, 'gguf.json'), 'utf8'));
  for (const t of doc.tensors) t.values = f32Of(readFileSync(join(dir, t.file)));
  return doc;
}

test("gguf-py's GGUFReader reads our TQ2_0 and TQ1_0 GGUF; its dequantized tensors equal ours", async (t) => {
  await init({ modelFiles: true });
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const source = readSafetensors(input);
  for (const layout of ['tq2_0', 'tq1_0']) {
    const out = join(dir, `model-${layout}.gguf`);
    cliOk(['convert', input, out, '--layout', layout, '--quiet']);
    const info = inspectJson(out);
    const doc = readWithGgufPy(out, join(dir, `py-${layout}`));
    assert.equal(doc.alignment, 32);
    assert.deepEqual(
      doc.tensors.map((x) => x.name),
      info.tensors.map((x) => x.name),
    );
    const meta = Object.fromEntries(doc.metadata.map((m) => [m.key, m]));
    assert.equal(meta['general.file_type'].value, layout === 'tq2_0' ? 37 : 36);
    assert.equal(meta['general.quantization_version'].value, 2);
    const counts = {};
    for (const [k, py] of doc.tensors.entries()) {
      const mine = info.tensors[k];
      assert.equal(py.type, mine.dtype, py.name);
      assert.deepEqual(py.ne, [...mine.shape].reverse(), `${py.name}: ne`);
      assert.equal(py.offset, mine.offset, `${py.name}: data offset`);
      assert.equal(py.bytes, mine.byteLength, `${py.name}: bytes`);
      const src = source.tensors.get(py.name);
      const expected = ours(py.type, f32Of(src.bytes), src.shape);
      assertArrayEqual(py.values, expected, `${layout} ${py.name} (${py.type}) dequantized by gguf-py`);
      counts[py.type] = (counts[py.type] ?? 0) + 1;
    }
    assert.deepEqual(counts, { F16: 2, F32: 5, [layout.toUpperCase()]: 13, Q8_0: 1 });
  }
});

test('@huggingface/gguf parses the headers of our GGUF files (TQ2_0, TQ1_0, I2_S, and from a GGUF input)', async (t) => {
  await init({ modelFiles: true });
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const ggufIn = join(dir, 'f16.gguf');
  pyCheck(['make-gguf-f16', ggufIn]);
  const outputs = [];
  for (const layout of ['tq2_0', 'tq1_0', 'i2_s']) {
    const out = join(dir, `model-${layout}.gguf`);
    cliOk(['convert', input, out, '--layout', layout, '--quiet']);
    outputs.push(out);
  }
  const fromGguf = join(dir, 'f16-tq2_0.gguf');
  cliOk(['convert', ggufIn, fromGguf, '--quiet']);
  outputs.push(fromGguf);
  for (const out of outputs) {
    const info = inspectJson(out);
    const parsed = await hfGguf(out, { allowLocalFile: true });
    assert.equal(parsed.metadata.version, 3);
    assert.equal(parsed.metadata.tensor_count, BigInt(info.tensors.length));
    assert.equal(parsed.metadata['general.file_type'], info.metadata['general.file_type']);
    assert.equal(parsed.tensorInfos.length, info.tensors.length);
    for (const [k, ti] of parsed.tensorInfos.entries()) {
      const mine = info.tensors[k];
      assert.equal(ti.name, mine.name);
      assert.equal(ti.dtype, GGML_TYPES[mine.dtype], `${out}: ${ti.name} type`);
      assert.deepEqual(ti.shape.map(Number), [...mine.shape].reverse(), `${ti.name} shape`);
      assert.equal(Number(parsed.tensorDataOffset + ti.offset), mine.offset, `${ti.name} offset`);
    }
  }
  // I2_S (bitnet.cpp's type 36) is not in gguf-py's type list, so it is read here: the
  // bytes at the offsets @huggingface/gguf gives equal the package's I2_S quantizer.
  const i2s = outputs[2];
  const parsed = await hfGguf(i2s, { allowLocalFile: true });
  const source = readSafetensors(input);
  const ternary = parsed.tensorInfos.filter((ti) => ti.dtype === 36);
  assert.equal(ternary.length, 14, 'every ternarised tensor, the 384-wide one included (128-value blocks)');
  for (const ti of ternary) {
    const src = source.tensors.get(ti.name);
    const [rows, cols] = src.shape;
    const q = quantizeTernary(f32Of(src.bytes), rows, cols, { layout: 'i2_s', rule: 'absmean', scope: 'tensor' });
    const at = Number(parsed.tensorDataOffset + ti.offset);
    assertBytesEqual(readAt(i2s, at, q.bytes.length), q.bytes, `I2_S ${ti.name}`);
    q.free();
  }
});

test("the numpy port of transformers' unpack_weights recovers our bitnet-hf codes and scales", async (t) => {
  await init({ modelFiles: true });
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const out = join(dir, 'model-bitnet.safetensors');
  cliOk(['convert', input, out, '--quiet']);
  pyCheck(['unpack-hf', out, join(dir, 'hf')]);
  const doc = JSON.parse(readFileSync(join(dir, 'hf', 'hf.json'), 'utf8'));
  assert.match(doc.metadata.quantization_config, /"linear_class":"autobitlinear"/);
  assert.equal(doc.metadata.format, 'pt');
  const source = readSafetensors(input);
  const names = Object.keys(doc.tensors);
  assert.equal(names.length, 14);
  for (const name of names) {
    const entry = doc.tensors[name];
    const src = source.tensors.get(name);
    const [rows, cols] = src.shape;
    assert.equal(entry.rows, Math.ceil(rows / 4) * 4);
    assert.equal(entry.cols, cols);
    assert.deepEqual(entry.scaleShape, [1]);
    const q = quantizeTernary(f32Of(src.bytes), rows, cols, { layout: 'bitnet-hf', rule: 'absmean', scope: 'tensor' });
    const codes = new Int8Array(readFileSync(join(dir, 'hf', entry.file)).buffer.slice(0));
    assertArrayEqual(codes.subarray(0, rows * cols), q.codes(), `${name} codes`);
    assert.equal(entry.scale, q.scales[0], `${name} scale`);
    q.free();
  }
});

test('an already-ternary model converts HF-packed -> GGUF TQ2_0 -> HF-packed with identical bytes', (t) => {
  const dir = tempDir(t);
  const a = join(dir, 'a.safetensors');
  pyCheck(['make-hf-ternary', a]);
  const b = join(dir, 'b.gguf');
  const c = join(dir, 'c.safetensors');
  cliOk(['convert', a, b, '--quiet']);
  const info = inspectJson(b);
  const types = Object.fromEntries(info.tensors.map((x) => [x.name, x.dtype]));
  assert.equal(types['model.layers.0.mlp.up_proj.weight'], 'TQ2_0');
  assert.ok(!('model.layers.0.mlp.up_proj.weight_scale' in types), 'the scale is folded into the TQ2_0 blocks');
  assert.equal(types['model.embed_tokens.weight'], 'F16');
  cliOk(['convert', b, c, '--quiet']);

  // Every tensor of the original comes back with its dtype, shape and bytes.
  const original = readSafetensors(a);
  const back = readSafetensors(c);
  assert.deepEqual([...back.tensors.keys()].sort(), [...original.tensors.keys()].sort());
  for (const [name, x] of original.tensors) {
    const y = back.tensors.get(name);
    assert.equal(y.dtype, x.dtype, name);
    assert.deepEqual(y.shape, x.shape, name);
    assertBytesEqual(y.bytes, x.bytes, name);
  }
  assert.deepEqual(back.metadata, original.metadata);

  // And the round trip is a fixed point, file for file.
  const b2 = join(dir, 'b2.gguf');
  const c2 = join(dir, 'c2.safetensors');
  cliOk(['convert', c, b2, '--quiet']);
  cliOk(['convert', b2, c2, '--quiet']);
  assertBytesEqual(readFileSync(b2), readFileSync(b), 'GGUF of the round trip');
  assertBytesEqual(readFileSync(c2), readFileSync(c), 'safetensors of the round trip');
});

test('a GGUF F16 input (a 1.6 MB header: 20k tokens) converted to TQ2_0 keeps every metadata key and updates general.file_type', async (t) => {
  await init({ modelFiles: true });
  const dir = tempDir(t);
  const input = join(dir, 'f16.gguf');
  pyCheck(['make-gguf-f16', input]);
  const out = join(dir, 'tq2_0.gguf');
  const reportPath = join(dir, 'report.json');
  cliOk(['convert', input, out, '--report', reportPath, '--quiet']);
  const summary = JSON.parse(pyCheck(['compare-metadata', input, out, '37']));
  assert.equal(summary.keys, 18);
  const inInfo = inspectJson(input);
  const outInfo = inspectJson(out);
  assert.ok(inInfo.dataOffset > 2 ** 20, `a header of ${inInfo.dataOffset} bytes: longer than the first read (1 MiB)`);
  assert.ok(outInfo.dataOffset > 2 ** 20);
  assert.equal(inInfo.metadata['general.file_type'], 1);
  assert.equal(outInfo.metadata['general.file_type'], 37);
  assert.equal(outInfo.metadata['general.architecture'], 'llama');

  const doc = readWithGgufPy(out, join(dir, 'py'));
  const inBytes = tensorBytesOf(input);
  const outBytes = tensorBytesOf(out);
  const byName = Object.fromEntries(inInfo.tensors.map((x) => [x.name, x]));
  const types = {};
  for (const py of doc.tensors) {
    const src = byName[py.name];
    types[py.name] = py.type;
    const values = src.dtype === 'F16' ? f16ToF32(inBytes.get(py.name), f16Value) : f32Of(inBytes.get(py.name));
    assertArrayEqual(py.values, ours(py.type, values, src.shape), `${py.name} (${src.dtype} -> ${py.type})`);
    if (py.type === src.dtype) assertBytesEqual(outBytes.get(py.name), inBytes.get(py.name), `${py.name} copied`);
  }
  assert.equal(types['blk.0.attn_q.weight'], 'TQ2_0');
  assert.equal(types['token_embd.weight'], 'F16');
  assert.equal(types['output.weight'], 'F16');
  assert.equal(types['blk.0.ffn_down.weight'], 'Q8_0');
  assert.equal(types['blk.0.attn_norm.weight'], 'F32');
  const report = JSON.parse(readFileSync(reportPath, 'utf8'));
  assert.deepEqual(report.fallbacks.map((f) => f.name), ['blk.0.ffn_down.weight']);
});

/** Polls a process's peak resident memory (VmHWM, kB) until it exits. */
function peakRss(pid) {
  let peak = 0;
  const timer = setInterval(() => {
    try {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
      if (m) peak = Math.max(peak, Number(m[1]));
    } catch {
      // gone
    }
  }, 20);
  return () => {
    clearInterval(timer);
    return peak;
  };
}

test('a sparse model larger than 4 GiB converts without loading it: bytes past 4 GiB are exact', async (t) => {
  const dir = tempDir(t, 'tq-4g-');
  const big = join(dir, 'big.safetensors');
  const size = 2 ** 32 + 2 ** 26;
  const made = sparseModel(big, size);
  assert.ok(made.bytes > 2 ** 32);
  // The same tensors, without the 4 GiB of zeros in front of them.
  const small = join(dir, 'small.safetensors');
  writeTensors(
    small,
    made.tail.map((x) => ({ name: x.name, dtype: 'F32', shape: x.shape, bytes: new Uint8Array(x.values.buffer) })),
  );

  const info = inspectJson(big);
  assert.equal(info.fileSize, made.bytes);
  const tail = info.tensors.filter((x) => x.name !== 'model.filler.norm.weight');
  assert.ok(tail.every((x) => x.offset > 2 ** 32), 'the real tensors lie past 4 GiB');

  const out = join(dir, 'big.gguf');
  const child = cliSpawn(['convert', big, out, '--quiet']);
  const done = exited(child);
  const stop = peakRss(child.pid);
  const r = await done;
  const peakKb = stop();
  assert.equal(r.code, 0, r.stderr);
  assert.ok(peakKb > 0 && peakKb < 400 * 1024, `peak RSS ${peakKb} kB for a ${made.bytes}-byte model`);
  assert.ok(!existsSync(`${out}.partial`));

  const smallOut = join(dir, 'small.gguf');
  cliOk(['convert', small, smallOut, '--quiet']);
  const bigInfo = inspectJson(out);
  const smallInfo = inspectJson(smallOut);
  assert.equal(bigInfo.fileSize, statSync(out).size);
  const filler = bigInfo.tensors.find((x) => x.name === 'model.filler.norm.weight');
  assert.equal(filler.dtype, 'F32');
  assert.equal(filler.byteLength, Math.ceil(size / 4) * 4);
  for (const at of [filler.offset, filler.offset + 2 ** 31, filler.offset + filler.byteLength - 4096]) {
    assert.ok(readAt(out, at, 4096).every((b) => b === 0), `the filler reads as zeros at ${at}`);
  }
  for (const s of smallInfo.tensors) {
    const b = bigInfo.tensors.find((x) => x.name === s.name);
    assert.equal(b.dtype, s.dtype, s.name);
    assert.ok(b.offset > 2 ** 32, `${s.name} is written past 4 GiB`);
    assertBytesEqual(readAt(out, b.offset, b.byteLength), readAt(smallOut, s.offset, s.byteLength), `${s.name} at ${b.offset}`);
  }
  const types = Object.fromEntries(bigInfo.tensors.map((x) => [x.name, x.dtype]));
  assert.deepEqual(types, {
    'model.filler.norm.weight': 'F32',
    'model.layers.0.mlp.up_proj.weight': 'TQ2_0',
    'model.layers.0.mlp.down_proj.weight': 'Q8_0',
    'model.layers.0.self_attn.q_proj.weight': 'TQ2_0',
    'model.norm.weight': 'F32',
    'lm_head.weight': 'F16',
  });
  // The TQ2_0 tensor past 4 GiB also equals the package's quantizer.
  await init({ modelFiles: true });
  const q = made.tail.find((x) => x.name === 'model.layers.0.self_attn.q_proj.weight');
  const tq = quantizeTernary(q.values, 256, 256, { layout: 'tq2_0', rule: 'absmean', scope: 'tensor' });
  const at = bigInfo.tensors.find((x) => x.name === q.name);
  assertBytesEqual(readAt(out, at.offset, at.byteLength), tq.bytes, 'q_proj past 4 GiB');
  tq.free();
});

test('formats(): the engine format table, agreeing with what the package writes', async () => {
  await init({ modelFiles: true });
  const { formats } = await import('ternary-quant');
  const table = formats();
  assert.ok(Object.isFrozen(table) && Object.isFrozen(table[0]));
  const byName = Object.fromEntries(table.map((f) => [f.name, f]));
  assert.deepEqual(
    { ...byName.tq2_0, outputs: [...byName.tq2_0.outputs] },
    { name: 'tq2_0', typeName: 'TQ2_0', kind: 'ternary', blockValues: 256, blockBytes: 66, tensorTailBytes: 0, sideScaleBytes: 0, ggmlType: 35, fileType: 37, outputs: ['gguf'] },
  );
  assert.deepEqual([byName.q8_0.ggmlType, byName.q8_0.fileType, byName.f16.ggmlType], [8, 7, 1]);
  assert.deepEqual([...byName['bitnet-hf'].outputs], ['bitnet-hf']);
  // Each ternary layout stores exactly the bytes its row in the table says.
  for (const f of table.filter((f) => f.kind === 'ternary' && f.blockValues > 1)) {
    const t = quantizeTernary(new Float32Array(2 * 256).fill(0.5), 2, 256, { layout: f.name });
    assert.equal(t.bytes.length, (2 * 256 / f.blockValues) * f.blockBytes + f.tensorTailBytes, f.name);
    t.free();
  }
  for (const [type, id] of Object.entries(GGML_TYPES)) {
    assert.equal(table.find((f) => f.typeName === type)?.ggmlType, id, type);
  }
});

test('folderWeights(): the index where there is one, else model.safetensors, else a one-line error', async () => {
  await init({ modelFiles: true });
  const { folderWeights } = await import('ternary-quant');
  assert.equal(folderWeights(['config.json', 'model.safetensors', 'model.safetensors.index.json']), 'model.safetensors.index.json');
  assert.equal(folderWeights(['model.safetensors', 'config.json']), 'model.safetensors');
  assert.throws(() => folderWeights(['config.json', 'model-00001-of-00002.safetensors']), /^Error: no model\.safetensors or model\.safetensors\.index\.json in the model folder$/);
  assert.throws(() => folderWeights('model.safetensors'), TypeError);
});
