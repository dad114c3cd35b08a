// ConversionPlan.inputBuffer / convertBuffered: the input read straight into wasm memory
// converts to exactly what convertTensor gives for the same bytes, for F32, F16 and BF16
// models and every output layout; and misuse is an error, not a wrong conversion.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { init, planConversion } from 'ternary-quant';
import { makeModel, tempDir } from './fixtures/cli.mjs';

await init({ modelFiles: true });

function planOf(file, options) {
  const prefix = new Uint8Array(file.buffer, file.byteOffset, Math.min(file.length, 2 ** 20));
  const plan = planConversion([{ prefix, fileSize: file.length }], options);
  assert.equal(plan.needBytes, undefined);
  return plan;
}

function inputOf(file, op) {
  return Buffer.concat(op.inputs.map((r) => file.subarray(r.offset, r.offset + r.length)));
}

test('convertBuffered equals convertTensor for every op, input type and layout', (t) => {
  const dir = tempDir(t, 'tq-buffered-');
  const kinds = new Set();
  for (const dtype of ['F32', 'F16', 'BF16']) {
    const path = join(dir, `${dtype}.safetensors`);
    makeModel([path, '--hidden', '256', '--inter', '384', '--layers', '1', '--vocab', '96', '--dtype', dtype]);
    const file = readFileSync(path);
    for (const options of [
      { output: 'gguf', layout: 'tq2_0' },
      { output: 'gguf', layout: 'tq1_0', scope: 'row', rule: 'twn' },
      { output: 'gguf', layout: 'i2_s', rule: 'median' },
      { output: 'bitnet-hf' },
    ]) {
      const plan = planOf(file, options);
      for (const op of plan.ops()) {
        kinds.add(op.kind);
        const input = inputOf(file, op);
        for (const measure of [false, true]) {
          const want = plan.convertTensor(op.index, input, measure);
          const view = plan.inputBuffer(op.index);
          assert.equal(view.byteLength, op.inputLength);
          view.set(input);
          const got = plan.convertBuffered(op.index, measure);
          assert.deepEqual(got, want, `${dtype} ${JSON.stringify(options)} ${op.name} measure ${measure}`);
        }
      }
      plan.free();
    }
  }
  for (const kind of ['quantize', 'q8_0', 'convert']) assert.ok(kinds.has(kind), `${kind}: ${[...kinds]}`);
});

test('convertBuffered needs inputBuffer for the same op first', (t) => {
  const dir = tempDir(t, 'tq-buffered-');
  const path = join(dir, 'm.safetensors');
  makeModel([path, '--hidden', '64', '--inter', '256', '--layers', '1', '--vocab', '64']);
  const plan = planOf(readFileSync(path), { output: 'gguf' });
  assert.throws(() => plan.convertBuffered(1), /inputBuffer\(1\)/);
  plan.inputBuffer(0);
  assert.throws(() => plan.convertBuffered(1), /inputBuffer\(1\)/);
  assert.throws(() => plan.inputBuffer(plan.opCount), /no op/);
  plan.free();
});

test('ChunkedOp.inputBuffer / convertBuffered: each piece as convert() gives it, with the same statistics', (t) => {
  const dir = tempDir(t, 'tq-buffered-');
  const path = join(dir, 'm.safetensors');
  makeModel([path, '--hidden', '256', '--inter', '512', '--layers', '1', '--vocab', '160', '--dtype', 'F32']);
  const file = readFileSync(path);
  const plan = planOf(file, { output: 'gguf', layout: 'tq2_0', scope: 'block', rule: 'absmax' });
  const chunkable = plan.ops().filter((op) => op.chunkable && !op.copiesBytes);
  assert.ok(chunkable.some((op) => op.kind === 'convert') && chunkable.some((op) => op.kind === 'quantize'), 'both kinds');
  for (const op of chunkable) {
    const input = inputOf(file, op);
    const copied = plan.chunkedOp(op.index, true);
    const buffered = plan.chunkedOp(op.index, true);
    // Small pieces, so that every op takes several.
    const piece = copied.chunkBytes(Math.max(op.inputLength / 4, 1));
    assert.ok(piece < op.inputLength, `${op.name}: several pieces`);
    for (let done = 0; done < op.inputLength; done += piece) {
      const bytes = input.subarray(done, Math.min(done + piece, op.inputLength));
      const want = copied.convert(bytes);
      const view = buffered.inputBuffer(bytes.length);
      assert.equal(view.byteLength, bytes.length);
      view.set(bytes);
      assert.deepEqual(buffered.convertBuffered(), want, `${op.name} at ${done}`);
    }
    assert.deepEqual(buffered.finish(), copied.finish(), `${op.name} statistics`);
  }
  // A piece that is not whole granules is refused, as by convert().
  const op = chunkable[0];
  const chunked = plan.chunkedOp(op.index);
  chunked.inputBuffer(3);
  assert.throws(() => chunked.convertBuffered(), /pieces are whole multiples/);
  chunked.free();
  plan.free();
});
