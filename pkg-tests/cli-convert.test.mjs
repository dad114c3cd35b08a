// `ternary-quant convert` and `inspect`, run as the installed bin on generated models:
// outputs, reports, sharded inputs, threads, tensor selection, progress, and the
// failure paths (bad input, bad options, signals) that must never leave a partial file.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync, copyFileSync, renameSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { test } from 'node:test';
import { init, inspectModel, planConversion, quantizeTernary } from 'ternary-quant';
import { assertBytesEqual } from './helpers.mjs';
import {
  assertFailed,
  cli,
  cliOk,
  cliSpawn,
  exited,
  f32Of,
  inspectJson,
  makeModel,
  readAt,
  readSafetensors,
  sampleModel,
  tempDir,
  tensorBytesOf,
  waitForLine,
} from './fixtures/cli.mjs';
import { writeTensors } from './fixtures/make-model.mjs';

const SAMPLE_TENSORS = 21;
const FALLBACK = 'model.layers.1.mlp.down_proj.weight';
const TENSOR_FIELDS = [
  'name',
  'shape',
  'kind',
  'inType',
  'outType',
  'bytesIn',
  'bytesOut',
  'bitsPerWeight',
  'scaleMin',
  'scaleMax',
  'scaleMean',
  'mse',
  'rmse',
  'maxAbsError',
  'snrDb',
  'cosine',
  'zeroFraction',
  'ms',
  'fallbackReason',
];

function sha256(path) {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

function dtypes(path) {
  return Object.fromEntries(inspectJson(path).tensors.map((t) => [t.name, t.dtype]));
}

test('help: the top level lists convert and inspect; each command has --help', () => {
  const top = cliOk(['--help']);
  assert.match(top, /ternary-quant convert IN OUT/);
  assert.match(top, /ternary-quant inspect FILE/);
  const convert = cliOk(['convert', '--help']);
  for (const flag of ['--output', '--layout', '--rule', '--scope', '--block-size', '--include', '--exclude', '--report', '--threads', '--quiet']) {
    assert.ok(convert.includes(flag), `convert --help lacks ${flag}`);
  }
  assert.match(cliOk(['inspect', '--help']), /--json/);
  assert.match(cliOk(['inspect', '-h']), /Usage: ternary-quant inspect/);
});

test('convert the sample model to GGUF TQ2_0 with a report; inspect the output', (t) => {
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const inputHash = sha256(input);
  const out = join(dir, 'model-tq2_0.gguf');
  const reportPath = join(dir, 'report.json');
  const stdout = cliOk(['convert', input, out, '--report', reportPath]);
  assert.ok(existsSync(out) && !existsSync(`${out}.partial`));
  assert.equal(sha256(input), inputHash, 'the input changed');
  assert.deepEqual(readdirSync(dir).sort(), ['model-tq2_0.gguf', 'model.safetensors', 'report.json']);

  // The per-tensor table and the totals.
  const info = inspectJson(out);
  assert.equal(info.format, 'gguf');
  assert.equal(info.version, 3);
  assert.equal(info.tensors.length, SAMPLE_TENSORS);
  for (const tensor of info.tensors) assert.ok(stdout.includes(tensor.name), `the table lacks ${tensor.name}`);
  assert.match(stdout, /snr dB/);
  assert.match(stdout, /x smaller\) in [\d.]+ s, [\d.]+ MB\/s of input/);
  assert.match(stdout, new RegExp(`fallbacks:\\n  ${FALLBACK.replaceAll('.', '\\.')} -> Q8_0: .*384`));

  const types = dtypes(out);
  assert.equal(types['model.layers.0.self_attn.q_proj.weight'], 'TQ2_0');
  assert.equal(types['model.layers.0.mlp.down_proj.weight'], 'TQ2_0');
  assert.equal(types[FALLBACK], 'Q8_0');
  assert.equal(types['model.embed_tokens.weight'], 'F16');
  assert.equal(types['lm_head.weight'], 'F16');
  assert.equal(types['model.norm.weight'], 'F32');
  assert.equal(info.metadata['general.file_type'], 37);

  // The report: every field of every tensor, totals, fallbacks with reasons.
  const report = JSON.parse(readFileSync(reportPath, 'utf8'));
  assert.equal(report.tensors.length, SAMPLE_TENSORS);
  for (const row of report.tensors) {
    for (const field of TENSOR_FIELDS) assert.ok(field in row, `report tensor ${row.name} lacks ${field}`);
    assert.ok(row.ms >= 0);
    if (row.outType === 'TQ2_0') {
      for (const f of ['scaleMin', 'scaleMax', 'scaleMean', 'mse', 'rmse', 'maxAbsError', 'snrDb', 'cosine', 'zeroFraction']) {
        assert.equal(typeof row[f], 'number', `${row.name}.${f} = ${row[f]}`);
      }
      assert.equal(row.bitsPerWeight, 2.0625);
      assert.ok(row.cosine > 0.7 && row.cosine < 1, `${row.name} cosine ${row.cosine}`);
      assert.ok(row.zeroFraction > 0.1 && row.zeroFraction < 0.6);
      assert.equal(row.scaleMin, row.scaleMax, 'one scale per tensor');
    }
  }
  const byName = Object.fromEntries(report.tensors.map((r) => [r.name, r]));
  assert.equal(byName[FALLBACK].outType, 'Q8_0');
  assert.match(byName[FALLBACK].fallbackReason, /384/);
  assert.equal(byName['model.embed_tokens.weight'].kind, 'convert');
  assert.ok(byName['model.embed_tokens.weight'].snrDb > 60);
  assert.equal(byName['model.norm.weight'].kind, 'copy');
  assert.deepEqual(report.fallbacks, [{ name: FALLBACK, outType: 'Q8_0', reason: byName[FALLBACK].fallbackReason }]);
  const totals = report.totals;
  for (const f of ['tensors', 'ternary', 'fallbacks', 'bytesIn', 'bytesOut', 'tensorBytesIn', 'tensorBytesOut', 'compressionRatio', 'seconds', 'mbPerSecond']) {
    assert.equal(typeof totals[f], 'number', `totals.${f}`);
  }
  assert.equal(totals.tensors, SAMPLE_TENSORS);
  assert.equal(totals.ternary, 13);
  assert.equal(totals.fallbacks, 1);
  assert.equal(totals.bytesIn, statSync(input).size);
  assert.equal(totals.bytesOut, statSync(out).size);
  assert.equal(totals.compressionRatio, totals.bytesIn / totals.bytesOut);
  assert.ok(totals.seconds > 0 && totals.mbPerSecond > 0);
  assert.equal(report.output.format, 'gguf');
  assert.equal(report.output.layout, 'tq2_0');
  assert.deepEqual(report.options, { rule: 'absmean', scope: 'tensor', blockSize: null, include: [], exclude: [], imatrix: null, threads: 1 });
});

test('the GGUF bytes of each layout equal the package quantizers on the same values', async (t) => {
  await init({ modelFiles: true });
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const source = readSafetensors(input);
  for (const layout of ['tq2_0', 'tq1_0', 'i2_s']) {
    const out = join(dir, `model-${layout}.gguf`);
    cliOk(['convert', input, out, '--layout', layout, '--quiet']);
    const info = inspectJson(out);
    const q = info.tensors.find((x) => x.name === 'model.layers.0.self_attn.q_proj.weight');
    assert.equal(q.dtype, layout.toUpperCase());
    const src = source.tensors.get(q.name);
    const tensor = quantizeTernary(f32Of(src.bytes), 256, 256, { layout, rule: 'absmean', scope: 'tensor' });
    assertBytesEqual(readAt(out, q.offset, q.byteLength), tensor.bytes, `${layout} q_proj`);
    tensor.free();
    assert.equal(info.metadata['general.file_type'], { tq2_0: 37, tq1_0: 36, i2_s: 40 }[layout]);
  }
});

test('bitnet-hf safetensors output from the extension; --rule, --scope and --block-size apply', (t) => {
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const out = join(dir, 'model-bitnet.safetensors');
  cliOk(['convert', input, out, '--quiet']);
  const model = readSafetensors(out);
  assert.match(model.metadata.quantization_config, /"quant_method":"bitnet"/);
  const q = model.tensors.get('model.layers.0.self_attn.q_proj.weight');
  assert.equal(q.dtype, 'U8');
  assert.deepEqual(q.shape, [64, 256]);
  assert.deepEqual(model.tensors.get('model.layers.0.self_attn.q_proj.weight_scale').shape, [1]);
  assert.equal(model.tensors.get('model.embed_tokens.weight').dtype, 'F32');

  // Another rule changes the bytes.
  const twn = join(dir, 'twn.safetensors');
  cliOk(['convert', input, twn, '--rule', 'twn', '--quiet']);
  assert.notDeepEqual(readSafetensors(twn).tensors.get('model.layers.0.self_attn.q_proj.weight').bytes, q.bytes);
  const gguf = join(dir, 'absmax-block.gguf');
  cliOk(['convert', input, gguf, '--rule', 'absmax', '--scope', 'block', '--block-size', '256', '--quiet']);
  assert.equal(dtypes(gguf)['model.layers.0.self_attn.q_proj.weight'], 'TQ2_0');

  // A preset is its layout, rule and scope; an explicit option overrides it.
  const best = join(dir, 'best.gguf');
  cliOk(['convert', input, best, '--preset', 'best', '--quiet']);
  const optimal = join(dir, 'optimal-block.gguf');
  cliOk(['convert', input, optimal, '--rule', 'optimal', '--scope', 'block', '--quiet']);
  assert.ok(readFileSync(best).equals(readFileSync(optimal)), '--preset best is optimal per 256-block in TQ2_0');
  const compact = join(dir, 'compact.gguf');
  cliOk(['convert', input, compact, '--preset', 'compact', '--rule', 'optimal', '--quiet']);
  assert.equal(dtypes(compact)['model.layers.0.self_attn.q_proj.weight'], 'TQ1_0');
  assertFailed(cli(['convert', input, join(dir, 'x.gguf'), '--preset', 'fast']), /--preset must be one of .*best.*'fast'/);
});

test('inspect: text table and --json agree with inspectModel', async (t) => {
  await init({ modelFiles: true });
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const text = cliOk(['inspect', input]);
  assert.match(text, /safetensors, 7\.69 MB, 21 tensors/);
  assert.match(text, /model\.layers\.1\.mlp\.down_proj\.weight\s+F32\s+\[256, 384\]\s+393216\s+32\.0000/);
  assert.match(text, /total: 21 tensors, 1922304 values, 7689216 bytes \(7\.69 MB\), 32\.0000 bits\/weight/);
  const bytes = readFileSync(input);
  const expected = inspectModel(new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength), bytes.length);
  assert.deepEqual(inspectJson(input), JSON.parse(JSON.stringify(expected)));
  const out = join(dir, 'm.gguf');
  cliOk(['convert', input, out, '--quiet']);
  const gguf = cliOk(['inspect', out]);
  assert.match(gguf, /gguf v3/);
  assert.match(gguf, /general\.file_type = 37/);
  assert.match(gguf, /model\.layers\.0\.self_attn\.q_proj\.weight\s+TQ2_0\s+\[256, 256\]\s+16896\s+2\.0625/);
});

test('a sharded model (2 shards + index.json) converts to the same bytes as the single file', (t) => {
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const index = makeModel(['--shard', input, join(dir, 'shards'), '2']).trim();
  assert.equal(readdirSync(join(dir, 'shards')).filter((f) => f.endsWith('.safetensors')).length, 2);
  const listing = cliOk(['inspect', index]);
  assert.match(listing, /model-00001-of-00002\.safetensors/);
  assert.match(listing, /model-00002-of-00002\.safetensors/);
  assert.match(listing, /total: 21 tensors/);
  const json = inspectJson(index);
  assert.equal(json.format, 'safetensors-index');
  assert.equal(json.files.length, 2);
  for (const ext of ['gguf', 'safetensors']) {
    const single = join(dir, `single.${ext}`);
    const sharded = join(dir, `sharded.${ext}`);
    cliOk(['convert', input, single, '--quiet']);
    cliOk(['convert', index, sharded, '--quiet']);
    assert.equal(sha256(sharded), sha256(single), `${ext} output differs between sharded and single input`);
  }
  // An index that names a missing shard fails cleanly.
  renameSync(join(dir, 'shards', 'model-00002-of-00002.safetensors'), join(dir, 'shards', 'gone.safetensors'));
  const out = join(dir, 'broken.gguf');
  assertFailed(cli(['convert', index, out]), /model-00002-of-00002\.safetensors: no such file/, out);
});

test('--threads 2 writes the same bytes as --threads 1, chunked float conversions included', async (t) => {
  await init({ modelFiles: true });
  const dir = tempDir(t);
  const sample = sampleModel(join(dir, 'sample.safetensors'));
  // Embeddings of 6 MB: their F32 -> F16 conversion runs in chunks.
  const wide = join(dir, 'wide.safetensors');
  makeModel([wide, '--hidden', '256', '--inter', '512', '--layers', '2', '--vocab', '6000']);
  for (const input of [sample, wide]) {
    const outs = [];
    const reports = [];
    for (const threads of ['1', '2']) {
      const out = join(dir, `out-${threads}.gguf`);
      const report = join(dir, `report-${threads}.json`);
      // One run spells its options --flag value, the other --flag=value.
      const flags = threads === '1' ? ['--threads', threads, '--report', report] : [`--threads=${threads}`, `--report=${report}`];
      cliOk(['convert', input, out, ...flags, '--quiet']);
      outs.push(sha256(out));
      reports.push(JSON.parse(readFileSync(report, 'utf8')));
    }
    assert.equal(outs[1], outs[0], `${input}: --threads 2 differs from --threads 1`);
    const strip = (r) => r.tensors.map(({ ms, ...rest }) => rest);
    assert.deepEqual(strip(reports[1]), strip(reports[0]));
    assert.equal(reports[1].options.threads, 2);
  }

  // The chunked conversion equals one whole-tensor conversion by the package, and its
  // figures equal the whole tensor's.
  const out = join(dir, 'out-1.gguf');
  const bytes = readFileSync(wide);
  const u8 = new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const plan = planConversion([{ prefix: u8, fileSize: u8.length }], {});
  const report = JSON.parse(readFileSync(join(dir, 'report-1.json'), 'utf8'));
  for (const op of plan.ops().filter((o) => o.kind === 'convert')) {
    assert.ok(op.inputLength > 2 ** 21, `${op.name} is small enough not to be chunked`);
    const r = plan.convertTensor(op.index, u8.subarray(op.inputs[0].offset, op.inputs[0].offset + op.inputLength), true);
    assertBytesEqual(readAt(out, op.outputOffset, op.outputLength), r.bytes, op.name);
    const row = report.tensors.find((x) => x.name === op.name);
    for (const f of ['mse', 'rmse', 'maxAbsError', 'snrDb', 'cosine', 'zeroFraction']) {
      const a = row[f];
      const b = r.stats[f];
      assert.ok(Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(b)), `${op.name}.${f}: ${a} (chunks) vs ${b} (whole)`);
    }
  }
  plan.free();
});

test('--include / --exclude select tensors by JavaScript RegExp; --exclude wins', (t) => {
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const out = join(dir, 'sel.gguf');
  const reportPath = join(dir, 'sel.json');
  cliOk([
    'convert', input, out, '--include', 'embed_tokens', '--include', '^lm_head\\.', '--exclude', 'layers\\.0\\.self_attn\\.(q|k)_proj',
    '--exclude', '^lm_head', '--report', reportPath, '--quiet',
  ]);
  const types = dtypes(out);
  assert.equal(types['model.embed_tokens.weight'], 'TQ2_0', '--include ternarises the embedding');
  assert.equal(types['lm_head.weight'], 'F16', '--exclude wins over --include');
  assert.equal(types['model.layers.0.self_attn.q_proj.weight'], 'F16');
  assert.equal(types['model.layers.0.self_attn.k_proj.weight'], 'F16');
  assert.equal(types['model.layers.0.self_attn.v_proj.weight'], 'TQ2_0');
  assert.equal(types['model.layers.1.self_attn.q_proj.weight'], 'TQ2_0');
  const report = JSON.parse(readFileSync(reportPath, 'utf8'));
  assert.deepEqual(report.options.include, ['embed_tokens', '^lm_head\\.']);
  assert.deepEqual(report.options.exclude, ['layers\\.0\\.self_attn\\.(q|k)_proj', '^lm_head']);

  // A pattern that matches nothing is a warning, not an error.
  const r = cli(['convert', input, join(dir, 'w.gguf'), '--exclude', 'no_such_tensor']);
  assert.equal(r.status, 0, r.stderr);
  // (The sample's random weights also get the far-from-ternary line.)
  assert.match(r.stderr, /^ternary-quant: warning: --exclude 'no_such_tensor' matches no tensor\nternary-quant: warning: these weights are far from ternary [^\n]*\n$/);
});

test('progress: one plain line per tensor when not on a terminal; nothing with --quiet', (t) => {
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const r = cli(['convert', input, join(dir, 'a.gguf')]);
  assert.equal(r.status, 0, r.stderr);
  // The sample's random weights are far from ternary: one warning line says so.
  assert.match(r.stderr, /^ternary-quant: warning: these weights are far from ternary \(the median of \d+ ternarised tensors fits ternary values at \d+\.\d dB SNR; [^\n]*--preset best[^\n]*\n$/);
  const lines = r.stdout.split('\n').filter((l) => /^\[\s*\d+\/21\] /.test(l));
  assert.equal(lines.length, SAMPLE_TENSORS);
  assert.match(lines[0], /^\[ 1\/21\] model\.embed_tokens\.weight \[1000, 256\] F32 -> F16 {2}1\.02 MB -> 512 kB {2}[\d.]+ ms$/);
  assert.match(r.stdout, /error figures: .* --report FILE/);
  const quiet = cli(['convert', input, join(dir, 'b.gguf'), '--quiet']);
  assert.equal(quiet.status, 0, quiet.stderr);
  assert.equal(quiet.stdout, '');
  assert.equal(quiet.stderr, '');
});

test('far from ternary: the report carries the warning and every ternarised tensor\'s fit; ternary weights get none', (t) => {
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const report = join(dir, 'report.json');
  cliOk(['convert', input, join(dir, 'a.gguf'), '--quiet', '--report', report]);
  const r = JSON.parse(readFileSync(report, 'utf8'));
  assert.equal(r.warnings.length, 1);
  assert.match(r.warnings[0], /far from ternary/);
  const q = r.tensors.find((x) => x.name === 'model.layers.0.self_attn.q_proj.weight');
  assert.ok(q.ternaryFitDb > 2 && q.ternaryFitDb < 10, `q_proj fits ternary at ${q.ternaryFitDb} dB`);
  assert.equal(r.tensors.find((x) => x.name === 'model.embed_tokens.weight').ternaryFitDb, null, 'not ternarised');

  // A model whose weights are ternary already (the GGUF just written, re-packed) has
  // no float tensor to judge; one of codes times a scale as F32 fits at +inf.
  const ternary = join(dir, 'ternary.safetensors');
  const codes = Float32Array.from({ length: 256 * 256 }, (_, i) => ((i * 2654435761) >>> 30) % 3 - 1);
  writeTensors(ternary, [{ name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [256, 256], bytes: new Uint8Array(codes.buffer) }]);
  const clean = cli(['convert', ternary, join(dir, 't.gguf'), '--report', report]);
  assert.equal(clean.status, 0, clean.stderr);
  assert.equal(clean.stderr, '');
  assert.deepEqual(JSON.parse(readFileSync(report, 'utf8')).warnings, []);
});

test('failures: missing input, bad options, malformed files: one line, exit 1, nothing left', (t) => {
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const out = join(dir, 'out.gguf');
  const elsewhere = join(dir, 'out.bin');
  const deep = join(dir, 'no', 'such', 'dir', 'out.gguf');
  // [arguments, stderr pattern, output that must not exist]
  const cases = [
    [['convert', join(dir, 'missing.safetensors'), out], /missing\.safetensors: no such file/, out],
    [['convert', input, out, '--rule', 'mean'], /--rule must be one of absmean, absmax, median, twn, optimal, got 'mean'/, out],
    [['convert', input, out, '--scope', 'layer'], /--scope must be one of/, out],
    [['convert', input, out, '--threads', '0'], /--threads must be an integer in 1\.\.256/, out],
    [['convert', input, out, '--layout', 'bitnet-hf'], /--layout bitnet-hf cannot be written to gguf/, out],
    [['convert', input, out, '--layout', 'q4_0'], /--layout must be one of/, out],
    [['convert', input, out, '--output', 'bitnet-hf'], /--output bitnet-hf does not match/, out],
    [['convert', input, elsewhere], /cannot tell the output format/, elsewhere],
    [['convert', input, out, '--include', '('], /--include '\(' is not a valid regular expression/, out],
    [['convert', input, out, '--block-size', '64'], /--block-size applies to --scope block/, out],
    [['convert', input, out, '--fast'], /unknown option '--fast'/, out],
    [['convert', input, out, '--report'], /--report needs a value/, out],
    [['convert', input], /convert needs IN and OUT, got 1 path/, out],
    [['convert', input, input], /is an input file/, null],
    [['convert', input, deep], /no such directory/, deep],
    [['inspect'], /inspect needs one FILE/, null],
    [['inspect', join(dir, 'missing.gguf')], /missing\.gguf: no such file/, null],
  ];
  for (const [args, re, target] of cases) assertFailed(cli(args), re, target);
  assert.ok(existsSync(input));

  // Malformed inputs: a truncated header, tensors past the end of the file, not a model.
  const full = readFileSync(input);
  const bad = [
    ['truncated-header.safetensors', full.subarray(0, 100), /truncated-header\.safetensors: /],
    ['truncated-data.safetensors', full.subarray(0, full.length >> 1), /truncated-data\.safetensors: /],
    ['text.safetensors', Buffer.from('hello, world: not a model at all'), /text\.safetensors: /],
    ['empty.gguf', Buffer.alloc(0), /empty\.gguf: /],
    ['gguf-header.gguf', Buffer.from('GGUF\x03\x00\x00\x00\x09\x00', 'latin1'), /gguf-header\.gguf: /],
  ];
  for (const [name, bytes, re] of bad) {
    const path = join(dir, name);
    writeFileSync(path, bytes);
    assertFailed(cli(['convert', path, out]), re, out);
    assertFailed(cli(['inspect', path]), re);
    assert.deepEqual(readFileSync(path), Buffer.from(bytes), `${name} changed`);
  }
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('out')), []);
});

test('bad values fail with the tensor and the index, on one or two threads, chunked or not', (t) => {
  const dir = tempDir(t);
  const embed = new Float32Array(256 * 4096).fill(0.01); // 4 MiB: converted to F16 in chunks
  embed[700000] = 1e6;
  const up = new Float32Array(256 * 256).fill(0.01);
  up[12345] = NaN;
  const input = join(dir, 'bad.safetensors');
  writeTensors(input, [
    { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [4096, 256], bytes: new Uint8Array(embed.buffer) },
    { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [256, 256], bytes: new Uint8Array(up.buffer) },
  ]);
  const out = join(dir, 'bad.gguf');
  // F32 -> F16 in chunks: the index is the tensor's, not the chunk's.
  assertFailed(cli(['convert', input, out]), /^ternary-quant: tensor 'model\.embed_tokens\.weight': .*value 1000000 at index 700000 is beyond F16's range/, out);
  // Ternarised, the large value is fine; the NaN of the next tensor is not.
  assertFailed(cli(['convert', input, out, '--include', 'embed']), /^ternary-quant: tensor 'model\.layers\.0\.mlp\.up_proj\.weight': non-finite value NaN at index 12345/, out);
  // On two threads, whichever worker fails first stops the conversion.
  assertFailed(
    cli(['convert', input, out, '--threads', '2']),
    /^ternary-quant: tensor '(model\.embed_tokens\.weight': .*index 700000|model\.layers\.0\.mlp\.up_proj\.weight': non-finite value NaN at index 12345)/,
    out,
  );
  // A worker's failure, alone.
  writeTensors(input, [
    { name: 'model.norm.weight', dtype: 'F32', shape: [256], bytes: new Uint8Array(new Float32Array(256).fill(1).buffer) },
    { name: 'model.layers.0.mlp.up_proj.weight', dtype: 'F32', shape: [256, 256], bytes: new Uint8Array(up.buffer) },
  ]);
  assertFailed(cli(['convert', input, out, '--threads', '2']), /: non-finite value NaN at index 12345 of input$/, out);
});

/** A model big enough that a conversion is still running after its first tensor. */
function bigModel(dir) {
  const path = join(dir, 'big.safetensors');
  makeModel([path, '--hidden', '1024', '--inter', '2816', '--layers', '4', '--vocab', '4096', '--fill', 'uniform']);
  return path;
}

test('SIGINT or SIGTERM midway: exit non-zero with one line, no output and no partial file', async (t) => {
  const dir = tempDir(t);
  const input = bigModel(dir);
  for (const [signal, code, threads] of [
    ['SIGINT', 130, '1'],
    ['SIGTERM', 143, '1'],
    ['SIGINT', 130, '2'],
  ]) {
    const out = join(dir, `${signal}-${threads}.gguf`);
    const child = cliSpawn(['convert', input, out, '--threads', threads, '--report', join(dir, 'r.json')]);
    const done = exited(child);
    await waitForLine(child, /^\[\s*1\/39\] /m);
    assert.ok(existsSync(`${out}.partial`), 'the partial file exists while converting');
    child.kill(signal);
    const r = await done;
    assert.equal(r.code, code, `${signal}: exit ${r.code} (${r.signal}); stderr ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`^ternary-quant: interrupted by ${signal}; removed the partial output\\n$`));
    assert.ok(!existsSync(out), `${out} exists`);
    assert.ok(!existsSync(`${out}.partial`), `${out}.partial is left`);
    assert.ok(!existsSync(join(dir, 'r.json')), 'no report for an interrupted conversion');
  }
});

test('SIGKILL leaves at most OUT.partial, never OUT; the next run overwrites it cleanly', async (t) => {
  const dir = tempDir(t);
  const input = bigModel(dir);
  const out = join(dir, 'killed.gguf');
  const child = cliSpawn(['convert', input, out]);
  const done = exited(child);
  await waitForLine(child, /^\[\s*2\/39\] /m);
  child.kill('SIGKILL');
  const r = await done;
  assert.equal(r.signal, 'SIGKILL');
  assert.ok(!existsSync(out), 'a killed conversion left OUT');
  assert.ok(existsSync(`${out}.partial`), 'the partial file of a killed conversion is there to be overwritten');

  cliOk(['convert', input, out, '--quiet']);
  assert.ok(!existsSync(`${out}.partial`));
  const reference = join(dir, 'reference.gguf');
  cliOk(['convert', input, reference, '--quiet']);
  assert.equal(sha256(out), sha256(reference));
  // And a leftover partial file bigger than the output is truncated, not kept.
  copyFileSync(input, `${out}.partial`);
  cliOk(['convert', input, out, '--quiet']);
  assert.equal(sha256(out), sha256(reference));
  assert.deepEqual(tensorBytesOf(out).size, 39);
});

/** A legacy llama.cpp imatrix (.dat): entries of (name, calls, sums). */
function legacyImatrix(entries) {
  const parts = [Buffer.from(Int32Array.of(entries.length).buffer)];
  for (const [name, calls, sums] of entries) {
    const n = Buffer.from(name);
    parts.push(Buffer.from(Int32Array.of(n.length).buffer), n, Buffer.from(Int32Array.of(calls, sums.length).buffer));
    parts.push(Buffer.from(Float32Array.from(sums).buffer));
  }
  return Buffer.concat(parts);
}

test('--imatrix weighs the columns of the tensors it names; the report says which', (t) => {
  const dir = tempDir(t);
  const input = sampleModel(join(dir, 'model.safetensors'));
  const q = 'model.layers.0.self_attn.q_proj.weight';
  // Columns 0..127 matter 100 times more than the others.
  const imatrix = join(dir, 'imatrix.dat');
  writeFileSync(imatrix, legacyImatrix([[q, 10, Array.from({ length: 256 }, (_, i) => (i < 128 ? 1000 : 10))]]));
  const plain = join(dir, 'plain.gguf');
  const weighted = join(dir, 'weighted.gguf');
  const report = join(dir, 'report.json');
  cliOk(['convert', input, plain, '--preset', 'best', '--quiet']);
  cliOk(['convert', input, weighted, '--preset', 'best', '--imatrix', imatrix, '--quiet', '--report', report]);
  const r = JSON.parse(readFileSync(report, 'utf8'));
  assert.equal(r.options.imatrix, imatrix);
  assert.deepEqual(r.tensors.filter((x) => x.importance).map((x) => x.name), [q]);
  const [a, b] = [tensorBytesOf(plain), tensorBytesOf(weighted)];
  assert.ok(!a.get(q).equals(b.get(q)), 'the weighted tensor changes');
  assert.ok(a.get('model.layers.0.self_attn.k_proj.weight').equals(b.get('model.layers.0.self_attn.k_proj.weight')), 'the others do not');

  writeFileSync(imatrix, legacyImatrix([[q, 1, [1, 2, 3]]]));
  assertFailed(cli(['convert', input, join(dir, 'x.gguf'), '--imatrix', imatrix]), /importance matrix has 3 values for tensor 'model\.layers\.0\.self_attn\.q_proj\.weight', which has rows of 256/, join(dir, 'x.gguf'));
  writeFileSync(imatrix, 'not an imatrix');
  assertFailed(cli(['convert', input, join(dir, 'x.gguf'), '--imatrix', imatrix]), /malformed imatrix/, join(dir, 'x.gguf'));
  assertFailed(cli(['convert', input, join(dir, 'x.gguf'), '--imatrix', join(dir, 'none.dat')]), /none\.dat: no such file/, join(dir, 'x.gguf'));
});
