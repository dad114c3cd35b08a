// Hugging Face model folders converted by the CLI and run by llama.cpp itself
// (node-llama-cpp, its prebuilt CPU binary, never built). For each architecture (Llama
// also with Llama 3.1's RoPE scaling, and with SentencePiece tokenizer.model files
// trained by the `sentencepiece` package, BPE with Llama 2's settings and Unigram;
// BitNet twice: ternary weights stored as floats, and
// packed as microsoft/bitnet-b1.58-2B-4T ships them) a seeded folder with a real byte-level BPE tokenizer (the `tokenizers`
// package) is converted to F16, TQ2_0 and TQ1_0, and llama.cpp must:
// - tokenize a fixed set of strings to exactly the ids `tokenizers` gives;
// - for F16, give last-position log-probabilities within 0.02 of a numpy forward pass
//   written from the transformers model definitions (fixtures/hf_folder.py);
// - for TQ2_0/TQ1_0, give log-probabilities within its int8 activation noise of the same
//   numpy forward on the file's weights as gguf-py dequantizes them;
// and a TQ2_0 file with one tensor's codes corrupted must fail that check. BitNet's
// ternary weights must keep their codes exactly (and, packed, their scales).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, openSync, readFileSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, test } from 'node:test';
import { cliOk, FIXTURES, inspectJson, python, tempDir } from './fixtures/cli.mjs';

const ARCHITECTURES = [
  'LlamaForCausalLM',
  'LlamaForCausalLM-llama3',
  'LlamaForCausalLM-spm',
  'LlamaForCausalLM-unigram',
  'MistralForCausalLM',
  'Qwen2ForCausalLM',
  'BitNetForCausalLM',
  'BitNetForCausalLM-packed',
];
/** F16 against the numpy model: only float rounding differs. */
const F16_MAX_LOGP_DIFF = 0.02;
const F16_MAX_KL = 1e-5;
/** Ternary against the numpy model of the same file: llama.cpp rounds activations to int8 (Q8_K). */
const TERNARY_MAX_KL = 3e-3;

let llama;

before(async () => {
  const dir = process.env.TQ_LLAMA_DIR;
  assert.ok(dir, 'TQ_LLAMA_DIR is not set (scripts/pack-and-test.sh installs node-llama-cpp there)');
  const { getLlama } = await import(pathToFileURL(join(dir, 'node_modules', 'node-llama-cpp', 'dist', 'index.js')).href);
  llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error', progressLogs: false });
});

after(async () => {
  await llama?.dispose();
});

function py(args) {
  const r = spawnSync(python(), [join(FIXTURES, 'hf_folder.py'), ...args], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  if (r.error) throw r.error;
  assert.equal(r.status, 0, `hf_folder.py ${args.join(' ')}: ${r.stderr.trim()}`);
  return r.stdout;
}

/** Tokenization mismatches, and the log-probabilities of the prompt's next token. */
async function runModel(path, expected) {
  const model = await llama.loadModel({ modelPath: path });
  try {
    const mismatches = expected.strings
      .map((s) => ({ text: s.text, want: s.ids, got: Array.from(model.tokenize(s.text, true)) }))
      .filter((m) => JSON.stringify(m.got) !== JSON.stringify(m.want));
    const context = await model.createContext({ contextSize: 256, batchSize: 64, threads: 1 });
    try {
      const ids = expected.promptIds;
      const last = [ids.at(-1), { generateNext: { probabilities: true, options: { temperature: 1, topK: 0, topP: 1, minP: 0 } } }];
      const out = await context.getSequence().controlledEvaluate([...ids.slice(0, -1), last]);
      const probs = out[ids.length - 1].next.probabilities;
      const logProbs = Array.from({ length: expected.vocab }, (_, i) => Math.log(Math.max(probs.get(i) ?? 0, 1e-30)));
      return { mismatches, logProbs };
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

/** max |log p - ref| over tokens llama.cpp gives p > 1e-6, and KL(ref || llama.cpp). */
function compare(logProbs, reference) {
  let maxDiff = 0;
  let kl = 0;
  reference.forEach((ref, i) => {
    if (logProbs[i] > Math.log(1e-6)) maxDiff = Math.max(maxDiff, Math.abs(logProbs[i] - ref));
    kl += Math.exp(ref) * (ref - logProbs[i]);
  });
  return { maxDiff, kl };
}

for (const arch of ARCHITECTURES) {
  test(`${arch}: a model folder runs in llama.cpp as F16, TQ2_0 and TQ1_0`, async (t) => {
    const dir = tempDir(t, 'tq-llama-');
    py([dir, arch]);
    const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
    const folder = join(dir, 'model');
    const files = {
      f16: join(dir, 'f16.gguf'),
      tq2_0: join(dir, 'tq2_0.gguf'),
      tq1_0: join(dir, 'tq1_0.gguf'),
    };
    cliOk(['convert', folder, files.f16, '--exclude', '.*', '--quiet']);
    cliOk(['convert', folder, files.tq2_0, '--quiet']);
    cliOk(['convert', folder, files.tq1_0, '--layout', 'tq1_0', '--quiet']);
    if (arch === ARCHITECTURES[0]) {
      // Two threads, with a report, write the same file.
      const threaded = join(dir, 'threads.gguf');
      cliOk(['convert', folder, threaded, '--threads', '2', '--report', join(dir, 'report.json'), '--quiet']);
      assert.ok(readFileSync(threaded).equals(readFileSync(files.tq2_0)), '--threads 2 writes the same bytes');
      const report = JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8'));
      assert.ok(report.tensors.some((t) => t.name === 'blk.0.attn_q.weight' && Number.isFinite(t.snrDb)), 'the report names GGUF tensors');
    }

    const f16 = await runModel(files.f16, expected);
    assert.deepEqual(f16.mismatches, [], 'llama.cpp tokenizes as tokenizers does');
    const f16Fit = compare(f16.logProbs, expected.logProbs);
    assert.ok(f16Fit.maxDiff < F16_MAX_LOGP_DIFF && f16Fit.kl < F16_MAX_KL, `F16 against the numpy model: ${JSON.stringify(f16Fit)}`);

    for (const layout of ['tq2_0', 'tq1_0']) {
      const info = inspectJson(files[layout]);
      assert.equal(info.tensors.find((x) => x.name === 'blk.0.attn_q.weight').dtype, layout.toUpperCase());
      if (arch.startsWith('BitNet')) {
        // 2 layers x 7 projections, each with the folder's codes; packed ones keep their scale too.
        const kept = JSON.parse(py(['--codes', files[layout], dir]));
        const scales = arch.endsWith('-packed') ? 14 : 0;
        assert.deepEqual(kept, { tensors: 14, sameCodes: 14, sameScales: scales }, `${layout}: ternary codes kept`);
      }
      const run = await runModel(files[layout], expected);
      assert.deepEqual(run.mismatches, []);
      const reference = JSON.parse(py(['--reference', files[layout], dir, arch]));
      const fit = compare(run.logProbs, reference);
      assert.ok(fit.kl < TERNARY_MAX_KL, `${layout} against the numpy model of its weights: ${JSON.stringify(fit)}`);
      t.diagnostic(`${arch} ${layout}: KL ${fit.kl.toExponential(2)}, max |dlogp| ${fit.maxDiff.toFixed(3)}; F16: KL ${f16Fit.kl.toExponential(2)}`);
    }

    // One tensor's codes corrupted after the reference was taken: the check must fail.
    const reference = JSON.parse(py(['--reference', files.tq2_0, dir, arch]));
    const corrupt = join(dir, 'corrupt.gguf');
    copyFileSync(files.tq2_0, corrupt);
    const target = inspectJson(corrupt).tensors.find((x) => x.name === 'blk.1.ffn_down.weight');
    const fd = openSync(corrupt, 'r+');
    try {
      // Code bytes of every block (the f16 scale, the last 2 bytes of each 66, is kept).
      for (let block = 0; block < target.byteLength / 66; block++) {
        writeSync(fd, Buffer.alloc(64, block & 1 ? 0xaa : 0x00), 0, 64, target.offset + block * 66);
      }
    } finally {
      closeSync(fd);
    }
    const broken = compare((await runModel(corrupt, expected)).logProbs, reference);
    assert.ok(broken.kl > 10 * TERNARY_MAX_KL, `a corrupted file passed the check: ${JSON.stringify(broken)}`);
  });
}

/** Log-probabilities of the next token at every position of `ids` (llama.cpp, one pass). */
async function allPositions(path, ids, vocab) {
  const model = await llama.loadModel({ modelPath: path });
  try {
    const context = await model.createContext({ contextSize: 256, batchSize: 64, threads: 1 });
    try {
      const options = { temperature: 1, topK: 0, topP: 1, minP: 0 };
      const out = await context.getSequence().controlledEvaluate(ids.map((id) => [id, { generateNext: { probabilities: true, options } }]));
      return out.map((o) => Array.from({ length: vocab }, (_, i) => Math.log(Math.max(o.next.probabilities.get(i) ?? 0, 1e-30))));
    } finally {
      await context.dispose();
    }
  } finally {
    await model.dispose();
  }
}

// The same Llama folder (weights not trained ternary) in TQ2_0 by three rules, run by
// llama.cpp against its F16 conversion: mean KL(F16 || rule) over every position of a
// prompt, and how often the most likely next token agrees with F16's.
test('llama.cpp: the optimal rule is closer to the F16 model than absmean', async (t) => {
  const dir = tempDir(t, 'tq-rules-');
  py([dir, 'LlamaForCausalLM']);
  const expected = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
  const folder = join(dir, 'model');
  const ids = [...expected.promptIds, ...expected.strings.flatMap((s) => s.ids)].slice(0, 48);
  const f16 = join(dir, 'f16.gguf');
  cliOk(['convert', folder, f16, '--exclude', '.*', '--quiet']);
  const reference = await allPositions(f16, ids, expected.vocab);
  const argmax = (row) => row.reduce((best, v, i) => (v > row[best] ? i : best), 0);
  const fit = {};
  for (const [label, args] of [
    ['absmean per tensor (bitnet)', ['--preset', 'bitnet']],
    ['optimal per tensor', ['--rule', 'optimal']],
    ['optimal per block (best)', ['--preset', 'best']],
  ]) {
    const path = join(dir, `${label.split(' ')[0]}-${args.at(-1)}.gguf`);
    cliOk(['convert', folder, path, ...args, '--quiet']);
    const rows = await allPositions(path, ids, expected.vocab);
    let kl = 0;
    let agree = 0;
    rows.forEach((row, p) => {
      kl += reference[p].reduce((sum, ref, i) => sum + Math.exp(ref) * (ref - row[i]), 0);
      agree += argmax(row) === argmax(reference[p]);
    });
    fit[label] = { kl: kl / rows.length, top1: agree / rows.length };
    t.diagnostic(`${label}: mean KL ${fit[label].kl.toFixed(4)}, top-1 agreement ${(100 * fit[label].top1).toFixed(1)}% over ${rows.length} positions`);
  }
  const absmean = fit['absmean per tensor (bitnet)'];
  for (const label of ['optimal per tensor', 'optimal per block (best)']) {
    assert.ok(fit[label].kl < absmean.kl, `${label}: KL ${fit[label].kl} against absmean's ${absmean.kl}`);
  }
});
