#!/usr/bin/env node
// The ternary-quant command line: convert and inspect model files, and time the builds.
import { Worker } from 'node:worker_threads';
import { readFile, writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import {
  backend,
  folderFiles,
  folderWeights,
  formats,
  init,
  inspectModel,
  loadBuild,
  parseSafetensorsIndex,
  planConversion,
  presets,
  quantizeTernary,
  rules,
  ternaryFitWarning,
  simdSupported,
} from './index.js';
import {
  layoutsByOutput,
  OpRunner,
  SCOPES,
  UserError,
  closeInputs,
  createPartial,
  finishPartial,
  makePlan,
  opReportFields,
  openModel,
  readHeader,
  removePartial,
  sameFileAsInput,
  selectNames,
} from './convert.js';

const HELP = `ternary-quant: ternary (BitNet b1.58) quantization in WebAssembly

Usage:
  ternary-quant convert IN OUT [options]   convert a model to ternary GGUF or bitnet-hf safetensors
  ternary-quant inspect FILE [--json]      list a model file's tensors, dtypes, shapes and sizes
  ternary-quant bench [--rows N] [--cols N] [--json]   time the SIMD128 and scalar builds
  ternary-quant <command> --help           help on one command
  ternary-quant --help | --version

Commands:
  convert  Streams a Hugging Face model folder, a .safetensors, sharded
           .safetensors.index.json or .gguf model into GGUF (TQ2_0, TQ1_0 or I2_S) or
           bitnet-hf safetensors, tensor by tensor. A model folder becomes a GGUF that
           llama.cpp runs (architecture, hyperparameters, tokenizer, GGUF names).
  inspect  Reads a model's header: tensors, dtypes, shapes, bytes, bits/weight.
  bench    Quantizes a synthetic rows x cols f32 matrix (default 1024 x 4096) to TQ2_0
           with the bitnet preset, and times ternary GEMV against f32 GEMV, on every
           build this engine runs.`;

const CONVERT_HELP = `Usage: ternary-quant convert IN OUT [options]

IN is a Hugging Face model folder (config.json, model.safetensors or its shards'
index, tokenizer.json and/or tokenizer.model, tokenizer_config.json; architectures
LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, BitNetForCausalLM), a
.safetensors file, a sharded model's *.safetensors.index.json (every shard it names is
read), or a .gguf file (F32/F16/BF16, or TQ1_0/TQ2_0/Q8_0 to re-pack). OUT is
written as OUT.partial and renamed when complete; on an error or Ctrl-C the partial
file is removed. The input is only read. Tensors are streamed one at a time: memory
is about three times the largest ternarised tensor (the read buffer, its copy in wasm
and its f32 values) plus the engine; pass-through tensors and float conversions go
in chunks, and files larger than 4 GiB work.

Options:
  --output gguf|bitnet-hf   output format (default: from OUT's extension, .gguf or
                            .safetensors)
  --layout L                ternary layout: tq2_0 (default), tq1_0 or i2_s for GGUF;
                            bitnet-hf for safetensors
  --preset P                bitnet (the default), compact, lossless, accurate or best
                            (optimal per block: for weights not trained ternary): a
                            layout, rule and scope; --layout, --rule and --scope override
  --rule R                  scale rule: absmean (default), absmax, median, twn, optimal
  --scope S                 one scale per: tensor (default), row, block
  --block-size N            values per scale with --scope block (default 256)
  --include RE              also ternarise tensors whose name matches the JavaScript
                            RegExp RE (repeatable)
  --exclude RE              keep tensors whose name matches RE as they are (repeatable;
                            wins over --include)
  --imatrix FILE            a llama.cpp importance matrix (llama-imatrix's GGUF or .dat):
                            the tensors it names weigh each column's error by it
                            (optimal and absmean rules); the report says which
  --report FILE             write the per-tensor report (JSON) to FILE
  --threads N               convert on N worker threads (default 1), each with its own
                            wasm instance and buffers; the output is the same for any N
  --quiet                   print nothing but errors
  -h, --help                this help

By default a tensor is ternarised when it is 2-D and its name matches none of
embed, lm_head, output.weight, norm, wte, wpe, token_embd. A ternary tensor whose rows
do not fit the layout's blocks (256 values; 128 for i2_s) falls back to Q8_0 (rows a
multiple of 32) or F16, and the report says why. Other tensors become F16 (F32 if 1-D)
in GGUF, and are kept as they are in safetensors.

The report has, per tensor: name, shape, kind, inType, outType, bytesIn, bytesOut,
bitsPerWeight, scaleMin/Max/Mean, mse, rmse, maxAbsError, snrDb ("Infinity" when
exact), cosine, zeroFraction, ms and fallbackReason; then totals (bytes in/out,
compression ratio, seconds, MB/s of input) and the fallbacks with their reasons.

Examples:
  ternary-quant convert model.safetensors model-tq2_0.gguf --report report.json
  ternary-quant convert model-f16.gguf model-tq1_0.gguf --layout tq1_0 --threads 2
  ternary-quant convert model.safetensors.index.json model-bitnet.safetensors`;

const INSPECT_HELP = `Usage: ternary-quant inspect FILE [--json]

Reads the header of a .safetensors, *.safetensors.index.json or .gguf file and lists
its metadata and tensors: name, dtype, shape, bytes and bits per weight (scales
included), with totals. Only the header is read.

  --json     print the description as JSON (for an index: one entry per shard)
  -h, --help this help`;

const BENCH_HELP = `Usage: ternary-quant bench [--rows N] [--cols N] [--json]

  --rows N   matrix rows (default 1024)
  --cols N   matrix columns, a multiple of 256 (default 4096)
  --json     print the results as JSON`;

// ------------------------------------------------------------------ failing

// What a failure or a signal must clean up: the partial output, and the progress line.
const state = { partial: null, done: false, progress: null };

function fail(message, code = 1) {
  state.progress?.clear();
  if (state.partial && !state.done) removePartial(state.partial);
  const line = String(message).replace(/\s*\n\s*/g, ' ').trim();
  process.stderr.write(`ternary-quant: ${line}\n`);
  process.exit(code);
}

function warn(message) {
  state.progress?.clear();
  process.stderr.write(`ternary-quant: warning: ${message}\n`);
}

for (const [signal, code] of [
  ['SIGINT', 130],
  ['SIGTERM', 143],
  ['SIGHUP', 129],
]) {
  process.on(signal, () => fail(`interrupted by ${signal}${state.partial && !state.done ? '; removed the partial output' : ''}`, code));
}

// ------------------------------------------------------------------ arguments

/**
 * Parses `args` with node:util's parseArgs against a spec { values: [...options taking a
 * value], repeat: [...those that may repeat], flags: [...options without a value] }, the
 * same way for every command: `--name value` and `--name=value` both work. Returns
 * { positional, opts } with option names in camelCase ('--block-size' -> blockSize).
 * parseArgs runs with strict off and hands back its tokens, so that each mistake gets
 * one message of ours naming the option.
 */
function parseCommandLine(args, spec, command) {
  const options = { help: { type: 'boolean', short: 'h' } };
  for (const name of spec.values) options[name.slice(2)] = { type: 'string', multiple: spec.repeat?.includes(name) ?? false };
  for (const name of spec.flags) options[name.slice(2)] = { type: 'boolean' };
  const { tokens } = parseArgs({ args, options, strict: false, allowPositionals: true, tokens: true });
  const positional = [];
  const opts = {};
  const camel = (name) => name.replace(/-([a-z])/g, (_, c) => c.toUpperCase());
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positional.push(token.value);
      continue;
    }
    if (token.kind !== 'option') continue;
    const flag = `--${token.name}`;
    const option = options[token.name];
    if (token.name === 'help') opts.help = true;
    else if (option === undefined) {
      fail(`unknown option '${token.rawName}' (see ternary-quant ${command} --help)`);
    } else if (option.type === 'boolean') {
      if (token.inlineValue) fail(`${flag} takes no value`);
      opts[camel(token.name)] = true;
    } else {
      if (token.value === undefined) fail(`${flag} needs a value`);
      const key = camel(token.name);
      if (option.multiple) (opts[key] ??= []).push(token.value);
      else if (opts[key] !== undefined) fail(`${flag} is given twice`);
      else opts[key] = token.value;
    }
  }
  return { positional, opts };
}

function positiveInteger(name, value, max = 2 ** 31 - 1) {
  if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > max) {
    fail(`${name} must be an integer in 1..${max}, got '${value}'`);
  }
  return Number(value);
}

function oneOf(name, value, allowed) {
  if (!allowed.includes(value)) fail(`${name} must be one of ${allowed.join(', ')}, got '${value}'`);
  return value;
}

function regexes(name, sources = []) {
  return sources.map((source) => {
    try {
      return new RegExp(source);
    } catch (e) {
      return fail(`${name} '${source}' is not a valid regular expression: ${e.message}`);
    }
  });
}

// ------------------------------------------------------------------ formatting

function fmtBytes(n) {
  if (n < 1e3) return `${n} B`;
  for (const [unit, size] of [
    ['GB', 1e9],
    ['MB', 1e6],
    ['kB', 1e3],
  ]) {
    if (n >= size) return `${(n / size).toFixed(n >= 100 * size ? 0 : n >= 10 * size ? 1 : 2)} ${unit}`;
  }
  return `${n} B`;
}

function fmtNum(v, digits) {
  if (v === null || v === undefined) return '-';
  if (v === Infinity) return 'inf';
  if (v === -Infinity) return '-inf';
  return v.toFixed(digits);
}

function fmtShape(shape) {
  return `[${shape.join(', ')}]`;
}

/** A text table: columns { title, right } and rows of strings. */
function table(columns, rows) {
  const widths = columns.map((c, i) => Math.max(c.title.length, ...rows.map((r) => r[i].length)));
  const line = (cells) =>
    cells
      .map((cell, i) => (columns[i].right ? cell.padStart(widths[i]) : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(columns.map((c) => c.title)), ...rows.map(line)].join('\n');
}

/** JSON where non-finite numbers become "Infinity" / "-Infinity" / "NaN" strings. */
function toJson(value) {
  return JSON.stringify(value, (_, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v), 2);
}

// ------------------------------------------------------------------ progress

/**
 * Progress of a conversion: a bar on stderr when it is a terminal, else one plain line
 * per tensor on stdout, or nothing.
 */
class Progress {
  constructor(mode, totalBytes, count) {
    this.mode = mode;
    this.totalBytes = totalBytes;
    this.count = count;
    this.doneBytes = 0;
    this.doneCount = 0;
    this.start = performance.now();
    this.lastDraw = 0;
    this.current = '';
    this.drawn = false;
  }

  bytes(n) {
    this.doneBytes += n;
    if (this.mode === 'bar') this.draw(false);
  }

  tensor(op, result) {
    this.doneCount++;
    if (this.mode === 'lines') {
      const width = String(this.count).length;
      process.stdout.write(
        `[${String(this.doneCount).padStart(width)}/${this.count}] ${op.name} ${fmtShape(op.shape)} ` +
          `${op.inType} -> ${op.outType}  ${fmtBytes(op.inputLength)} -> ${fmtBytes(op.outputLength)}  ` +
          `${result.ms.toFixed(1)} ms\n`,
      );
    } else if (this.mode === 'bar') {
      this.current = op.name;
      this.draw(this.doneCount === this.count);
    }
  }

  draw(force) {
    const now = performance.now();
    if (!force && now - this.lastDraw < 80) return;
    this.lastDraw = now;
    const fraction = this.totalBytes > 0 ? Math.min(1, this.doneBytes / this.totalBytes) : 1;
    const seconds = (now - this.start) / 1000;
    const rate = seconds > 0 ? this.doneBytes / seconds : 0;
    const eta = rate > 0 && fraction < 1 ? `ETA ${Math.ceil((this.totalBytes - this.doneBytes) / rate)} s` : '';
    const width = 24;
    const filled = Math.round(fraction * width);
    let text =
      `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ` +
      `${this.doneCount}/${this.count} tensors  ${fmtBytes(Math.round(rate))}/s  ${eta}  ${this.current}`;
    const columns = process.stderr.columns || 100;
    if (text.length > columns - 1) text = text.slice(0, columns - 1);
    process.stderr.write(`\r${text}\x1b[K`);
    this.drawn = true;
  }

  clear() {
    if (this.mode === 'bar' && this.drawn) {
      process.stderr.write('\r\x1b[K');
      this.drawn = false;
    }
  }
}

// ------------------------------------------------------------------ convert

const CONVERT_SPEC = {
  values: ['--output', '--preset', '--layout', '--rule', '--scope', '--block-size', '--include', '--exclude', '--report', '--threads', '--imatrix'],
  repeat: ['--include', '--exclude'],
  flags: ['--quiet'],
};

function outputFromName(path) {
  const lower = path.toLowerCase();
  if (lower.endsWith('.gguf')) return 'gguf';
  if (lower.endsWith('.safetensors')) return 'bitnet-hf';
  return null;
}

/** The checked options of `convert`. */
function convertOptions(args, layouts) {
  const { positional, opts } = parseCommandLine(args, CONVERT_SPEC, 'convert');
  if (opts.help) return { help: true };
  const outputs = Object.keys(layouts);
  if (positional.length !== 2) {
    fail(`convert needs IN and OUT, got ${positional.length} path${positional.length === 1 ? '' : 's'} (see ternary-quant convert --help)`);
  }
  const [input, outPath] = positional;
  const fromName = outputFromName(outPath);
  const output = opts.output === undefined ? fromName : oneOf('--output', opts.output, outputs);
  if (output === null) {
    fail(`cannot tell the output format from '${outPath}': name it .gguf or .safetensors, or pass --output gguf|bitnet-hf`);
  }
  if (fromName !== null && fromName !== output) {
    fail(`--output ${output} does not match the name '${outPath}' (a ${fromName === 'gguf' ? '.gguf' : '.safetensors'} file)`);
  }
  const preset = opts.preset === undefined ? null : presets[oneOf('--preset', opts.preset, Object.keys(presets))];
  const layout = opts.layout ?? preset?.layout ?? layouts[output][0];
  if (!layouts[output].includes(layout)) {
    const all = [...new Set(Object.values(layouts).flat())];
    if (!all.includes(layout)) oneOf('--layout', layout, all);
    fail(`--layout ${layout} cannot be written to ${output} (${output} takes ${layouts[output].join(', ')})`);
  }
  const rule = oneOf('--rule', opts.rule ?? preset?.rule ?? 'absmean', rules);
  const scope = oneOf('--scope', opts.scope ?? preset?.scope ?? 'tensor', SCOPES);
  let blockSize;
  if (opts.blockSize !== undefined) {
    if (scope !== 'block') fail('--block-size applies to --scope block');
    blockSize = positiveInteger('--block-size', opts.blockSize);
  } else if (scope === 'block' && preset?.scope === 'block') {
    blockSize = preset.blockSize;
  }
  const threads = opts.threads === undefined ? 1 : positiveInteger('--threads', opts.threads, 256);
  return {
    input,
    outPath,
    output,
    layout,
    rule,
    scope,
    blockSize,
    includeSources: opts.include ?? [],
    excludeSources: opts.exclude ?? [],
    include: regexes('--include', opts.include),
    exclude: regexes('--exclude', opts.exclude),
    reportPath: opts.report,
    imatrixPath: opts.imatrix,
    threads,
    quiet: opts.quiet === true,
  };
}

/** The bytes of an --imatrix file. */
async function readImatrix(path) {
  try {
    const bytes = await readFile(path);
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  } catch (e) {
    throw new UserError(e?.code === 'ENOENT' ? `${path}: no such file` : `${path}: ${e?.message ?? e}`);
  }
}

/** Runs every op on this thread, in output order. */
async function runInline(ctx) {
  const { plan, ops, inputs, out, measure, progress } = ctx;
  const runner = new OpRunner(plan, ops, inputs, out, { measure, onBytes: (n) => progress.bytes(n), writeBehind: true });
  const results = [];
  try {
    for (let i = 0; i < ops.length; i++) {
      const result = await runner.run(i);
      results.push(result);
      progress.tensor(ops[i], result);
    }
  } finally {
    // Even when an op failed: no write may still be running when OUT.partial is removed.
    await runner.flush().catch(() => {});
  }
  await runner.flush();
  return results;
}

/**
 * Runs the ops on `threads` worker threads, each with its own wasm instance and file
 * handles; the largest inputs go first. Results come back in op order.
 */
function runWorkers(ctx, threads) {
  const { ops, inputs, prefixes, planOptions, partial, measure, progress } = ctx;
  const queue = ops.map((_, i) => i).sort((a, b) => ops[b].inputLength - ops[a].inputLength || a - b);
  const results = new Array(ops.length);
  const workers = [];
  let remaining = ops.length;
  let running = threads;
  return new Promise((resolvePromise, reject) => {
    let failed = false;
    const stopAll = (error) => {
      if (failed) return;
      failed = true;
      for (const w of workers) w.terminate();
      reject(error);
    };
    const next = (worker) => {
      if (queue.length > 0) worker.postMessage({ type: 'op', index: queue.shift() });
      else worker.postMessage({ type: 'stop' });
    };
    for (let k = 0; k < threads; k++) {
      const worker = new Worker(new URL('./worker.js', import.meta.url), {
        workerData: {
          inputs: inputs.map(({ path, name }) => ({ path, name })),
          prefixes,
          planOptions,
          partialPath: partial,
          measure,
        },
      });
      workers.push(worker);
      worker.on('message', (m) => {
        if (failed) return;
        if (m.type === 'ready') {
          if (m.opCount !== ops.length || m.outputSize !== ctx.plan.outputSize) {
            stopAll(new Error('a worker planned a different conversion'));
          } else next(worker);
        } else if (m.type === 'bytes') {
          progress.bytes(m.bytes);
        } else if (m.type === 'done') {
          results[m.result.index] = m.result;
          remaining--;
          progress.tensor(ops[m.result.index], m.result);
          next(worker);
        } else if (m.type === 'stopped') {
          running--;
          worker.stopped = true;
          worker.terminate();
          if (running === 0) {
            if (remaining === 0) resolvePromise(results);
            else stopAll(new Error(`${remaining} tensors were not converted`));
          }
        } else if (m.type === 'error') {
          stopAll(new UserError(m.message));
        }
      });
      worker.on('error', (e) => stopAll(e));
      worker.on('exit', (code) => {
        if (!failed && !worker.stopped) stopAll(new Error(`a worker thread exited early (code ${code})`));
      });
    }
  });
}

function tensorReport(op, result) {
  const s = result.stats ?? {};
  const figure = (key) => (s[key] === undefined ? null : s[key]);
  return {
    ...opReportFields(op),
    scaleMin: figure('scaleMin'),
    scaleMax: figure('scaleMax'),
    scaleMean: figure('scaleMean'),
    mse: figure('mse'),
    rmse: figure('rmse'),
    maxAbsError: figure('maxAbsError'),
    snrDb: figure('snrDb'),
    cosine: figure('cosine'),
    zeroFraction: figure('zeroFraction'),
    outputSnrDb: figure('outputSnrDb'),
    ternaryFitDb: result.fit ?? null,
    importance: op.importance === true,
    ms: Math.round(result.ms * 1000) / 1000,
    fallbackReason: op.fallbackReason,
    ...(op.scaleName ? { scaleName: op.scaleName } : {}),
  };
}

function printReport(report, measured) {
  const rows = report.tensors.map((t) => [
    t.name,
    fmtShape(t.shape),
    `${t.inType} -> ${t.outType}`,
    fmtBytes(t.bytesIn),
    fmtBytes(t.bytesOut),
    fmtNum(t.bitsPerWeight, 2),
    fmtNum(t.snrDb, 1),
    fmtNum(t.outputSnrDb, 1),
    fmtNum(t.cosine, 4),
    t.zeroFraction === null ? '-' : `${(t.zeroFraction * 100).toFixed(1)}%`,
    t.ms.toFixed(1),
  ]);
  const columns = [
    { title: 'tensor' },
    { title: 'shape' },
    { title: 'type' },
    { title: 'bytes in', right: true },
    { title: 'bytes out', right: true },
    { title: 'bits/w', right: true },
    { title: 'snr dB', right: true },
    { title: 'y=Wx dB', right: true },
    { title: 'cosine', right: true },
    { title: 'zeros', right: true },
    { title: 'ms', right: true },
  ];
  if (!measured) {
    // Without --report there are no error figures: drop their columns.
    for (const r of rows) r.splice(6, 4);
    columns.splice(6, 4);
  }
  const t = report.totals;
  const lines = [
    table(columns, rows),
    '',
    `${report.output.path}: ${report.output.format}, ${t.tensors} tensors (${t.ternary} ternary, ${t.fallbacks} fallback, ` +
      `${t.tensors - t.ternary - t.fallbacks} kept)`,
    `${fmtBytes(t.bytesIn)} -> ${fmtBytes(t.bytesOut)} (${t.compressionRatio.toFixed(2)}x smaller) in ` +
      `${t.seconds.toFixed(2)} s, ${t.mbPerSecond.toFixed(1)} MB/s of input`,
  ];
  if (report.fallbacks.length > 0) {
    lines.push('fallbacks:');
    for (const f of report.fallbacks) lines.push(`  ${f.name} -> ${f.outType}: ${f.reason}`);
  }
  if (!measured) lines.push('(error figures: snr, cosine, zeros and more are measured with --report FILE)');
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function convert(args) {
  const started = performance.now();
  await init({ modelFiles: true });
  const o = convertOptions(args, layoutsByOutput(formats()));
  if (o.help) return console.log(CONVERT_HELP);
  const ternaryTypes = new Set(formats().filter((f) => f.kind === 'ternary').map((f) => f.typeName));
  const api = { inspectModel, parseSafetensorsIndex, planConversion, folderFiles, folderWeights };
  const model = await openModel(api, o.input);
  const { inputs } = model;
  const headers = [];
  for (const input of inputs) headers.push(await readHeader(api, input));
  const names = headers.flatMap((h) => h.info.tensors.map((t) => t.name));
  const { forceTernary, forceKeep } = selectNames(names, o.include, o.exclude);
  for (const [flag, sources, res] of [
    ['--include', o.includeSources, o.include],
    ['--exclude', o.excludeSources, o.exclude],
  ]) {
    res.forEach((re, k) => {
      if (!o.quiet && !names.some((n) => re.test(n))) warn(`${flag} '${sources[k]}' matches no tensor`);
    });
  }
  const planOptions = {
    output: o.output,
    layout: o.layout,
    rule: o.rule,
    scope: o.scope,
    ...(o.blockSize !== undefined ? { blockSize: o.blockSize } : {}),
    forceTernary,
    forceKeep,
    ...(model.index ? { index: model.index } : {}),
    ...(model.folder ? { model: model.folder } : {}),
    ...(o.imatrixPath !== undefined ? { imatrix: await readImatrix(o.imatrixPath) } : {}),
  };
  const prefixes = headers.map((h) => h.prefix);
  let plan;
  try {
    plan = await makePlan(api, inputs, prefixes, planOptions);
  } catch (e) {
    throw new UserError(e.message);
  }
  const partial = `${o.outPath}.partial`;
  if ((await sameFileAsInput(o.outPath, inputs)) || (await sameFileAsInput(partial, inputs))) {
    fail(`${o.outPath} is an input file; choose another output`);
  }
  // Error figures cost a dequantization pass per tensor (about as long as the
  // quantization itself), so they are measured when a report is asked for.
  const measure = o.reportPath !== undefined;
  state.partial = partial;
  const out = await createPartial(partial, plan);
  const ops = plan.ops();
  const totalBytes = ops.reduce((s, op) => s + op.inputLength, 0);
  const mode = o.quiet ? 'none' : process.stderr.isTTY ? 'bar' : 'lines';
  const progress = new Progress(mode, totalBytes, ops.length);
  state.progress = progress;
  const ctx = { plan, ops, inputs, out, prefixes, planOptions, partial, measure, progress };
  const threads = Math.min(o.threads, ops.length);
  const results = threads > 1 ? await runWorkers(ctx, threads) : await runInline(ctx);
  const outputSize = plan.outputSize;
  const outputFormat = plan.output;
  const trainedTernary = plan.trainedTernary;
  plan.free();
  await finishPartial(out, partial, o.outPath);
  state.done = true;
  await closeInputs(inputs);
  progress.clear();
  const seconds = (performance.now() - started) / 1000;

  const tensors = ops.map((op, i) => tensorReport(op, results[i]));
  const bytesIn = inputs.reduce((s, input) => s + input.size, 0);
  const fallbacks = ops
    .filter((op) => op.fallbackReason)
    .map((op) => ({ name: op.name, outType: op.outType, reason: op.fallbackReason }));
  const report = {
    version: await packageVersion(),
    input: { path: o.input, files: inputs.map((input) => ({ path: input.path, bytes: input.size })), bytes: bytesIn },
    output: { path: o.outPath, format: outputFormat, layout: o.layout, bytes: outputSize },
    options: {
      rule: o.rule,
      scope: o.scope,
      blockSize: o.blockSize ?? null,
      include: o.includeSources,
      exclude: o.excludeSources,
      imatrix: o.imatrixPath ?? null,
      threads,
    },
    backend: backend(),
    tensors,
    totals: {
      tensors: ops.length,
      ternary: ops.filter((op) => ternaryTypes.has(op.outType)).length,
      fallbacks: fallbacks.length,
      bytesIn,
      bytesOut: outputSize,
      tensorBytesIn: totalBytes,
      tensorBytesOut: ops.reduce((s, op) => s + op.outputLength, 0),
      compressionRatio: bytesIn / outputSize,
      seconds,
      mbPerSecond: bytesIn / 1e6 / seconds,
    },
    fallbacks,
    warnings: [],
  };
  // Weights that were not trained ternary lose most of what they compute: say so.
  const warning = trainedTernary ? undefined : ternaryFitWarning(results.map((r) => r.fit).filter((f) => f !== null));
  if (warning) {
    report.warnings.push(warning);
    if (!o.quiet) console.error(`ternary-quant: warning: ${warning}`);
  }
  if (o.reportPath !== undefined) {
    try {
      await writeFile(o.reportPath, `${toJson(report)}\n`);
    } catch (e) {
      throw new UserError(`cannot write the report ${o.reportPath}: ${e.message}`);
    }
  }
  if (!o.quiet) printReport(report, measure);
}

// ------------------------------------------------------------------ inspect

function fmtValue(v) {
  if (Array.isArray(v)) {
    const shown = v.slice(0, 8).map(fmtValue).join(', ');
    return `[${shown}${v.length > 8 ? `, ... (${v.length} items)` : ''}]`;
  }
  if (v && typeof v === 'object' && 'length' in v && 'type' in v) return `[${v.type} x ${v.length}]`;
  if (typeof v === 'string') {
    const s = JSON.stringify(v);
    return s.length > 80 ? `${s.slice(0, 77)}..."` : s;
  }
  return String(v);
}

function describeModel(path, info) {
  const lines = [];
  const head = [
    info.format === 'gguf' ? `gguf v${info.version}` : info.format,
    fmtBytes(info.fileSize),
    `${info.tensors.length} tensors`,
    `data at byte ${info.dataOffset}`,
  ];
  if (info.alignment) head.push(`alignment ${info.alignment}`);
  lines.push(`${path}: ${head.join(', ')}`);
  const keys = Object.keys(info.metadata ?? {});
  if (keys.length > 0) {
    lines.push(`metadata (${keys.length} keys):`);
    for (const k of keys) lines.push(`  ${k} = ${fmtValue(info.metadata[k])}`);
  }
  return lines;
}

async function inspect(args) {
  const { positional, opts } = parseCommandLine(args, { values: [], flags: ['--json'] }, 'inspect');
  if (opts.help) return console.log(INSPECT_HELP);
  if (positional.length !== 1) fail(`inspect needs one FILE, got ${positional.length} (see ternary-quant inspect --help)`);
  const [path] = positional;
  await init({ modelFiles: true });
  const api = { inspectModel, parseSafetensorsIndex, planConversion, folderFiles, folderWeights };
  const model = await openModel(api, path);
  const infos = [];
  try {
    for (const input of model.inputs) infos.push((await readHeader(api, input)).info);
  } finally {
    await closeInputs(model.inputs);
  }
  if (opts.json) {
    const value = model.index
      ? { format: 'safetensors-index', path, files: model.inputs.map((input, i) => ({ file: input.name, ...infos[i] })) }
      : infos[0];
    return console.log(toJson(value));
  }
  const lines = [];
  const rows = [];
  let values = 0;
  let bytes = 0;
  let count = 0;
  const sharded = model.index !== null;
  model.inputs.forEach((input, i) => {
    lines.push(...describeModel(sharded ? input.path : path, infos[i]));
    for (const t of infos[i].tensors) {
      const n = t.shape.reduce((a, b) => a * b, 1);
      values += n;
      bytes += t.byteLength;
      count++;
      rows.push([
        ...(sharded ? [input.name] : []),
        t.name,
        t.dtype,
        fmtShape(t.shape),
        String(t.byteLength),
        fmtNum(t.bitsPerWeight, 4),
      ]);
    }
  });
  const columns = [
    ...(sharded ? [{ title: 'file' }] : []),
    { title: 'tensor' },
    { title: 'dtype' },
    { title: 'shape' },
    { title: 'bytes', right: true },
    { title: 'bits/weight', right: true },
  ];
  lines.push('', table(columns, rows), '');
  lines.push(
    `total: ${count} tensors, ${values} values, ${bytes} bytes (${fmtBytes(bytes)}), ` +
      `${values > 0 ? ((bytes * 8) / values).toFixed(4) : '-'} bits/weight`,
  );
  process.stdout.write(`${lines.join('\n')}\n`);
}

// ------------------------------------------------------------------ bench

function timeIt(fn, minMs = 300) {
  fn();
  let reps = 0;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < minMs) {
    fn();
    reps++;
    elapsed = performance.now() - start;
  }
  return elapsed / reps;
}

async function bench(args) {
  const { positional, opts } = parseCommandLine(args, { values: ['--rows', '--cols'], flags: ['--json'] }, 'bench');
  if (opts.help) return console.log(BENCH_HELP);
  if (positional.length > 0) fail(`bench takes no paths, got '${positional[0]}' (see ternary-quant bench --help)`);
  const rows = opts.rows === undefined ? 1024 : positiveInteger('--rows', opts.rows);
  const cols = opts.cols === undefined ? 4096 : positiveInteger('--cols', opts.cols);
  await init();
  // The engine says which row lengths the benchmark's TQ2_0 takes.
  try {
    quantizeTernary(new Float32Array(cols), 1, cols).free();
  } catch (e) {
    fail(`--cols ${cols}: ${e.message}`);
  }
  const variants = simdSupported() ? [true, false] : [false];
  let seed = 1;
  const rand = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const w = Float32Array.from({ length: rows * cols }, rand);
  const x = Float32Array.from({ length: cols }, rand);
  const results = [];
  for (const simd of variants) {
    const api = await loadBuild({ simd });
    const quantMs = timeIt(() => api.quantizeTernary(w, rows, cols).free());
    const t = api.quantizeTernary(w, rows, cols);
    const ternaryMs = timeIt(() => api.ternaryMatVec(t, x));
    const f32Ms = timeIt(() => api.matVecF32(w, rows, cols, x));
    t.free();
    const n = rows * cols;
    results.push({
      build: simd ? 'simd128' : 'scalar',
      backend: api.backend(),
      quantizeGValuesPerS: n / quantMs / 1e6,
      ternaryGemvGValuesPerS: n / ternaryMs / 1e6,
      f32GemvGValuesPerS: n / f32Ms / 1e6,
      ternaryOverF32: f32Ms / ternaryMs,
    });
  }
  if (opts.json) return console.log(JSON.stringify({ rows, cols, results }, null, 2));
  console.log(`${rows} x ${cols} f32, bitnet preset (TQ2_0, absmean per tensor); G values/s`);
  console.log('build     quantize  ternary GEMV  f32 GEMV  ternary/f32');
  for (const r of results) {
    console.log(
      `${r.build.padEnd(8)} ${r.quantizeGValuesPerS.toFixed(3).padStart(9)} ${r.ternaryGemvGValuesPerS
        .toFixed(3)
        .padStart(13)} ${r.f32GemvGValuesPerS.toFixed(3).padStart(9)} ${r.ternaryOverF32.toFixed(2).padStart(12)}x`,
    );
  }
}

// ------------------------------------------------------------------ main

async function packageVersion() {
  return JSON.parse(await readFile(new URL('./package.json', import.meta.url), 'utf8')).version;
}

// A closed pipe (`ternary-quant inspect big.gguf | head`) ends the output, not the work.
process.stdout.on('error', () => {});

async function main(argv) {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    console.log(HELP);
    return;
  }
  if (command === '--version') {
    console.log(await packageVersion());
    return;
  }
  if (command === 'convert') return convert(rest);
  if (command === 'inspect') return inspect(rest);
  if (command === 'bench') return bench(rest);
  fail(`unknown command '${command}' (see --help)`);
}

main(process.argv.slice(2)).catch((e) => fail(e?.message ?? String(e)));
