// The demo's module worker: all quantization, file reading and conversion happens here,
// so that the page stays responsive. It answers one request at a time (the page waits
// for each answer) and posts { type: 'progress' } messages while it works.
//
// A conversion on several workers starts this same module again as nested workers
// (named CONVERTER_NAME; see serveConversions): the model, its plan and the output stay
// here, so the page exchanges no more messages than with one worker, and a conversion
// worker needs only the File objects, the header bytes and the options.
//
// Requests (from app.js), each with an id that the answers repeat:
//   { type: 'synthetic', id, spec, options }   draw weights (synth.js) and analyse them
//   { type: 'open', id, files, options }       read a model file's header (or the files of
//                                              a model folder), plan its conversion
//   { type: 'plan', id, options }              plan the open file again (options changed)
//   { type: 'tensor', id, index, options }     analyse one tensor of the open file
//   { type: 'convert', id, options, workers }  convert the open file, tensor by tensor, on
//                                              `workers` workers (1: here alone)
//   { type: 'cancel' }                          stop a running conversion
// Answers: 'ready', 'progress', 'analysis', 'model', 'plan', 'converted', 'error'.
import { init, loadBuild, presets, simdSupported } from './pkg/index.js';
import * as defaultApi from './pkg/index.js';
import { DISTRIBUTIONS, fnv1a, generate } from './synth.js';

const TILE = 64; // the heatmap tile is at most TILE x TILE values
const HIST_BINS = 81; // odd, so that 0 is the centre of a bin
const SCALE_BINS = 40;
const FIRST_READ = 1 << 20; // the first read of a model header
const MAX_TENSOR_BYTES = 2 ** 30; // the largest tensor convertTensor is given (it needs ~4x in wasm)

let info = null; // { backend }
let scalarApi = null;
let ioApi = null;
// The open model: its weight files with their headers (one, or a folder's shards), the
// tensors of all of them, and for a folder the files planConversion's `model` takes.
let model = null; // { name, inputs: [{ file, prefix }], tensors, folder, index }
let cancelled = false;
let queue = Promise.resolve();

const now = () => performance.now();
const post = (message, transfer = []) => self.postMessage(message, transfer);
const progress = (id, fraction, label) => post({ type: 'progress', id, fraction, label });
// Lets the 'cancel' message (and progress) through between synchronous steps.
const breathe = () => new Promise((resolve) => setTimeout(resolve, 0));

// ------------------------------------------------------------------ analysis

function median(values) {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Calls per batch so that one batch of fn takes at least 5 ms (the clock is coarse, 0.1 ms). */
function batchSize(fn) {
  let batch = 1;
  for (;;) {
    const t = now();
    for (let i = 0; i < batch; i++) fn();
    const elapsed = now() - t;
    if (elapsed >= 5 || batch >= 1 << 16) return batch;
    batch *= elapsed > 0.5 ? Math.min(16, Math.ceil(6 / elapsed)) : 16;
  }
}

/**
 * Milliseconds per call of each function. Each is called a few times first (the first
 * calls compile code and grow memory), then batches of the functions take turns (so that
 * a slow moment of the machine hits them all) for about budgetMs, and the median batch of
 * each gives its time per call. A batch too short for the clock is not counted, and the
 * next one is larger.
 */
function timePerCall(fns, budgetMs = 240) {
  for (const fn of fns) for (let i = 0; i < 3; i++) fn();
  const batches = fns.map(batchSize);
  const perCall = fns.map(() => []);
  const start = now();
  for (let round = 0; round < 400; round++) {
    const enough = perCall.every((v) => v.length >= 5);
    if (enough && (now() - start >= budgetMs || round >= 40)) break;
    fns.forEach((fn, k) => {
      const t = now();
      for (let i = 0; i < batches[k]; i++) fn();
      const elapsed = now() - t;
      if (elapsed < 2) batches[k] *= 4;
      else perCall[k].push(elapsed / batches[k]);
    });
  }
  return perCall.map((v) => (v.length ? median(v) : NaN));
}

/** |x| at quantile q of a strided sample of at most 65536 values. */
function absQuantile(data, q) {
  const step = Math.max(1, Math.floor(data.length / 65536));
  const sample = new Float32Array(Math.ceil(data.length / step));
  for (let i = 0, j = 0; i < data.length; i += step, j++) sample[j] = Math.abs(data[i]);
  sample.sort();
  return sample[Math.min(sample.length - 1, Math.floor(q * sample.length))];
}

function maxAbs(data) {
  let m = 0;
  for (let i = 0; i < data.length; i++) {
    const a = Math.abs(data[i]);
    if (a > m) m = a;
  }
  return m;
}

/** Counts of original and dequantized values in HIST_BINS bins over [-range, range]. */
function histograms(data, deq) {
  let range = Math.max(absQuantile(data, 0.999), maxAbs(deq)) * 1.05;
  if (!(range > 0)) range = 1;
  const width = (2 * range) / HIST_BINS;
  const count = (values) => {
    const c = new Array(HIST_BINS).fill(0);
    let clipped = 0;
    for (let i = 0; i < values.length; i++) {
      let b = Math.floor((values[i] + range) / width);
      if (b < 0 || b >= HIST_BINS) {
        clipped++;
        b = b < 0 ? 0 : HIST_BINS - 1;
      }
      c[b]++;
    }
    return { counts: c, clipped };
  };
  const original = count(data);
  const dequantized = count(deq);
  const centres = Array.from({ length: HIST_BINS }, (_, b) => -range + (b + 0.5) * width);
  return { range, width, centres, original: original.counts, dequantized: dequantized.counts, clipped: original.clipped };
}

function scaleSummary(scales) {
  let min = Infinity;
  let max = -Infinity;
  let sum = 0;
  for (const s of scales) {
    if (s < min) min = s;
    if (s > max) max = s;
    sum += s;
  }
  const distinct = new Set(scales.length <= 1 << 16 ? scales : scales.subarray(0, 1 << 16)).size;
  const counts = new Array(SCALE_BINS).fill(0);
  const width = max > min ? (max - min) / SCALE_BINS : 0;
  for (const s of scales) counts[width ? Math.min(SCALE_BINS - 1, Math.floor((s - min) / width)) : 0]++;
  const centres = Array.from({ length: SCALE_BINS }, (_, b) => min + (b + 0.5) * width);
  return { count: scales.length, min, max, mean: sum / scales.length, distinct, centres, counts: width ? counts : [scales.length], width };
}

function tile(data, deq, rows, cols) {
  const h = Math.min(TILE, rows);
  const w = Math.min(TILE, cols);
  const weights = new Float32Array(h * w);
  const error = new Float32Array(h * w);
  for (let r = 0; r < h; r++) {
    for (let c = 0; c < w; c++) {
      weights[r * w + c] = data[r * cols + c];
      error[r * w + c] = deq[r * cols + c] - data[r * cols + c];
    }
  }
  return { rows: h, cols: w, weights, error };
}

function quantize(api, data, rows, cols, options) {
  const t = api.quantizeTernary(data, rows, cols, options);
  try {
    return { bytes: t.bytes, byteLength: t.byteLength, bitsPerWeight: t.bitsPerWeight };
  } finally {
    t.free();
  }
}

/** Quantizes one matrix with the default build and measures everything the page shows. */
async function analyse(id, data, rows, cols, options, label) {
  const n = rows * cols;
  progress(id, 0.15, 'Quantizing');
  await breathe();
  const t0 = now();
  const t = defaultApi.quantizeTernary(data, rows, cols, options);
  const quantizeMs = now() - t0;
  let result;
  try {
    const bytes = t.bytes;
    const deq = t.dequantize();
    const codes = t.codes();
    const scales = t.scales;
    progress(id, 0.3, 'Measuring the error');
    await breathe();
    const stats = defaultApi.errorStats(data, deq);
    let zeros = 0;
    for (let i = 0; i < n; i++) if (codes[i] === 0) zeros++;
    const sizes = defaultApi.estimateModelSize([[rows, cols]], options);
    // The TQ layouts that hold rows of this length as they are (the others fall back to
    // Q8_0 or F16): the size bars show only those.
    const heldWhole = ['tq2_0', 'tq1_0'].filter((layout) => defaultApi.estimateModelSize([[rows, cols]], { layout }).storedAs[0] === 'ternary');
    // Q8_0 where the engine takes rows of this length (it refuses the others).
    let q8 = null;
    let a = null;
    try {
      a = defaultApi.quantizeInt8(data, rows, cols, { layout: 'q8_0' });
      q8 = { byteLength: a.byteLength, stats: defaultApi.errorStats(data, a.dequantize()) };
    } catch (e) {
      if (!/multiple of/.test(e.message)) throw e;
    } finally {
      a?.free();
    }
    // The same weights under every rule, in the same layout and scope: what each costs.
    progress(id, 0.35, 'Every rule');
    await breathe();
    const byRule = [];
    for (const rule of defaultApi.rules) {
      const r0 = now();
      const other = defaultApi.quantizeTernary(data, rows, cols, { ...options, rule });
      try {
        byRule.push({ rule, snrDb: defaultApi.errorStats(data, other.dequantize()).snrDb, ms: now() - r0 });
      } finally {
        other.free();
      }
    }
    progress(id, 0.4, 'Histograms');
    await breathe();
    result = {
      label,
      rows,
      cols,
      options,
      layout: t.layout,
      scope: t.scope,
      blockSize: t.blockSize ?? null,
      inputHash: fnv1a(data),
      bytesHash: fnv1a(bytes),
      byteLength: t.byteLength,
      bitsPerWeight: t.bitsPerWeight,
      stats,
      zeroFraction: zeros / n,
      q8,
      sizes: { byLayout: sizes.byLayout, heldWhole, storedAs: sizes.storedAs, bytes: sizes.bytes },
      byRule,
      quantizeMs,
      histogram: histograms(data, deq),
      scales: scaleSummary(scales),
      tile: tile(data, deq, rows, cols),
    };
    result.timings = await timings(id, data, rows, cols, options, t, bytes);
  } finally {
    t.free();
  }
  return result;
}

/** SIMD128 against scalar (quantize, both GEMVs), and ternary GEMV against f32 GEMV. */
async function timings(id, data, rows, cols, options, tensor, bytes) {
  // The default build is the SIMD128 one wherever SIMD128 is supported.
  scalarApi ??= await loadBuild({ simd: false });
  const builds = [['scalar', scalarApi]];
  if (info.build === 'simd128') builds.unshift(['simd128', defaultApi]);
  const x = generate({ distribution: 'gaussian', rows: 1, cols, seed: 7 });
  const out = { builds: builds.map(([name]) => name), kernels: {}, sameBytes: true };
  const tensors = [];
  try {
    for (const [name, api] of builds) {
      out.kernels[name] = api.backend();
      const q = quantize(api, data, rows, cols, options);
      if (fnv1a(q.bytes) !== fnv1a(bytes)) out.sameBytes = false;
      tensors.push(api === defaultApi ? tensor : api.quantizeTernary(data, rows, cols, options));
    }
    const cases = [
      ['quantize', 'quantization', (api) => () => api.quantizeTernary(data, rows, cols, options).free()],
      ['ternaryGemv', 'the ternary GEMV', (api, t) => () => api.ternaryMatVec(t, x)],
      ['f32Gemv', 'the f32 GEMV', (api) => () => api.matVecF32(data, rows, cols, x)],
    ];
    for (const [i, [key, what, make]] of cases.entries()) {
      progress(id, 0.5 + (0.5 * i) / cases.length, `Timing ${what}`);
      await breathe();
      const ms = timePerCall(builds.map(([, api], k) => make(api, tensors[k])));
      out[key] = Object.fromEntries(builds.map(([name], k) => [name, ms[k]]));
    }
  } finally {
    for (const t of tensors) if (t !== tensor) t.free();
  }
  return out;
}

// ------------------------------------------------------------------ model files

async function readBytes(file, ranges) {
  const parts = ranges.map((r) => file.slice(r.offset, r.offset + r.length));
  return new Uint8Array(await new Blob(parts).arrayBuffer());
}

/** The parts of `files` that an op's input ranges cover. */
function slices(files, ranges) {
  return ranges.map((r) => files[r.file].slice(r.offset, r.offset + r.length));
}

/** The bytes of an op's input ranges, concatenated. */
async function readRanges(files, ranges) {
  return new Uint8Array(await new Blob(slices(files, ranges)).arrayBuffer());
}

function describeReadError(file, e) {
  return `Could not read "${file.name}": it is not a .safetensors or .gguf file this demo can read (${e.message}).`;
}

/** Reads the header (only) of a model file, growing the prefix as inspectModel asks. */
async function readHeader(id, file) {
  let length = Math.min(file.size, FIRST_READ);
  let prefix = await readBytes(file, [{ offset: 0, length }]);
  for (;;) {
    let inspected;
    try {
      inspected = ioApi.inspectModel(prefix, file.size);
    } catch (e) {
      throw new Error(describeReadError(file, e));
    }
    if (inspected.needBytes === undefined) return { prefix, info: inspected };
    if (inspected.needBytes > file.size || inspected.needBytes <= length) {
      throw new Error(`Could not read "${file.name}": its header claims ${inspected.needBytes} bytes, but the file has ${file.size}.`);
    }
    length = inspected.needBytes;
    progress(id, 0.3, `Reading the header of ${file.name} (${length} bytes)`);
    prefix = await readBytes(file, [{ offset: 0, length }]);
  }
}

/**
 * The weights and other files of a Hugging Face model folder (its files, dropped or
 * chosen): config.json and the tokenizer files the engine asks for, and
 * model.safetensors or the shards model.safetensors.index.json names.
 */
async function folderOf(files) {
  const byName = new Map(files.map((f) => [f.name, f]));
  const name = (files[0].webkitRelativePath || '').split('/')[0] || 'model';
  const folder = { name };
  for (const { key, file, required } of ioApi.folderFiles()) {
    const f = byName.get(file);
    if (f) folder[key] = new Uint8Array(await f.arrayBuffer());
    else if (required) throw new Error(`A model folder needs ${file}; it is not among the ${files.length} files given.`);
  }
  const weightsFile = ioApi.folderWeights(files.map((f) => f.name));
  let index = null;
  let weights;
  if (weightsFile.endsWith('.json')) {
    index = new Uint8Array(await byName.get(weightsFile).arrayBuffer());
    let shards;
    try {
      shards = ioApi.parseSafetensorsIndex(index).files;
    } catch (e) {
      throw new Error(`model.safetensors.index.json: ${e.message}`);
    }
    weights = shards.map((shard) => {
      const f = byName.get(shard);
      if (!f) throw new Error(`model.safetensors.index.json names ${shard}, which is not among the files given.`);
      return f;
    });
  } else {
    weights = [byName.get(weightsFile)];
  }
  return { name, folder, index, weights };
}

/**
 * Opens a model: one .safetensors or .gguf file, or the files of a model folder. Only
 * headers are read.
 */
async function openModel(id, files, options) {
  ioApi ??= await loadBuild({ simd: simdSupported(), modelFiles: true });
  progress(id, 0.1, 'Reading the header');
  // One file is a model file; several are the files of a model folder.
  const single = files.length === 1;
  const { name, folder, index, weights } = single ? { name: files[0].name, folder: null, index: null, weights: files } : await folderOf(files);
  const inputs = [];
  const tensors = [];
  for (const [i, file] of weights.entries()) {
    const { prefix, info: header } = await readHeader(id, file);
    inputs.push({ file, prefix, info: header });
    tensors.push(...header.tensors.map((t) => ({ ...t, input: i })));
  }
  model = { name, inputs, tensors, folder, index };
  const first = inputs[0].info;
  const m = first.metadata ?? {};
  const summary = {
    name,
    size: weights.reduce((n, f) => n + f.size, 0),
    format: folder ? 'model folder' : first.format,
    version: first.version,
    architecture: typeof m['general.architecture'] === 'string' ? m['general.architecture'] : null,
    metadataKeys: Object.keys(m).length,
    tensors,
    totalBytes: inputs.reduce((n, input) => n + input.info.totalBytes, 0),
  };
  return { summary, plan: planSummary(options) };
}

/** The plan's options for the page's layout: the output that the engine's format table says takes it. */
function planOptions(options) {
  const format = ioApi.formats().find((f) => f.name === options.layout);
  if (format === undefined || format.outputs.length === 0) {
    const writable = ioApi.formats().filter((f) => f.kind === 'ternary' && f.outputs.length > 0);
    const choices = writable.map((f) => `${f.name} (${f.outputs[0] === 'gguf' ? 'GGUF' : 'safetensors'})`).join(', ');
    throw new Error(`The ${options.layout} layout is for looking at the codes only; to write a model file pick ${choices}.`);
  }
  const out = { output: format.outputs[0], layout: options.layout, rule: options.rule, scope: options.scope };
  if (options.scope === 'block') out.blockSize = options.blockSize;
  return out;
}

/**
 * What planConversion takes for the open model and these options. Conversion workers
 * plan from the same header bytes and options; the plan is deterministic, so they plan
 * the same conversion.
 */
function planRequest(options) {
  if (!model) throw new Error('No model file is open.');
  const inputs = model.inputs.map(({ file, prefix }) => ({ prefix, fileSize: file.size, name: file.name }));
  const extra = { ...(model.folder ? { model: model.folder } : {}), ...(model.index ? { index: model.index } : {}) };
  return { inputs, options: { ...planOptions(options), ...extra } };
}

function planFrom(api, request) {
  const p = api.planConversion(request.inputs, request.options);
  // The prefix holds the whole header (inspectModel asked for it), so this cannot happen.
  if (p.needBytes !== undefined) throw new Error(`The plan needs the first ${p.needBytes} bytes of the file, more than its header.`);
  return p;
}

function makePlan(options) {
  return planFrom(ioApi, planRequest(options));
}

function planSummary(options) {
  let plan;
  try {
    plan = makePlan(options);
  } catch (e) {
    return { error: e.message };
  }
  try {
    const ops = plan.ops().map((o) => ({
      index: o.index,
      name: o.name,
      kind: o.kind,
      inType: o.inType,
      outType: o.outType,
      shape: o.shape,
      inputLength: o.inputLength,
      outputLength: o.outputLength,
      bitsPerWeight: o.bitsPerWeight,
      fallbackReason: o.fallbackReason,
    }));
    return { output: plan.output, outputSize: plan.outputSize, headerLength: plan.header.byteLength, ops };
  } finally {
    plan.free();
  }
}

function outputName(inputName, options) {
  const base = inputName.replace(/\.(safetensors|gguf)$/i, '');
  return planOptions(options).output === 'bitnet-hf' ? `${base}.bitnet-hf.safetensors` : `${base}.${options.layout}.gguf`;
}

/** Ops the engine converts in pieces are read and converted this many bytes at a time. */
const PIECE_BYTES = 16 * 2 ** 20;
/** The most conversion workers a conversion starts, whatever is asked. */
const MAX_WORKERS = 16;
/** The worker name that makes this module a conversion worker (see the end of the file). */
const CONVERTER_NAME = 'tq-convert';
const STOPPED = 'Conversion stopped.';

/** `bytes` as a Uint8Array that owns its whole buffer, so that the buffer can be transferred. */
function ownBuffer(bytes) {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

/**
 * Converts one op that is not a copy: reads its input ranges from `files` and hands its
 * output bytes, in order, to emit(bytes, inputBytes): once, or once per piece for ops the
 * engine converts a piece at a time (plan.chunkedOp), so that memory holds one piece.
 * Returns the op's statistics and how ternary its values are (null when not measured).
 */
async function convertOp(plan, op, files, emit, stopped) {
  if (!(op.chunkable && op.inputLength > PIECE_BYTES)) {
    const input = await readRanges(files, op.inputs);
    if (stopped()) throw new Error(STOPPED);
    const r = plan.convertTensor(op.index, input, true);
    emit(r.bytes, op.inputLength);
    return { stats: r.stats, fit: r.ternaryFitDb };
  }
  let chunked = plan.chunkedOp(op.index, true);
  try {
    const piece = chunked.chunkBytes(PIECE_BYTES);
    const { file, offset } = op.inputs[0];
    for (let done = 0; done < op.inputLength; done += piece) {
      if (stopped()) throw new Error(STOPPED);
      const n = Math.min(piece, op.inputLength - done);
      const input = await readRanges(files, [{ file, offset: offset + done, length: n }]);
      emit(chunked.convert(input), n);
      await breathe();
    }
    const finishing = chunked;
    chunked = null;
    const fit = finishing.ternaryFitDb;
    return { stats: finishing.finish(), fit };
  } finally {
    chunked?.free();
  }
}

/**
 * Where each op's output goes, checked before anything is converted: the header, then
 * the ops in output order with zero bytes in the gaps the plan leaves. Returns the gap
 * before each op (by op index) and after the last one.
 */
function layoutOf(plan, ops) {
  const gapBefore = new Array(plan.opCount).fill(0);
  let at = plan.header.byteLength;
  for (const op of ops) {
    if (op.outputOffset < at) throw new Error(`op ${op.name} overlaps the previous one`);
    gapBefore[op.index] = op.outputOffset - at;
    at = op.outputOffset + op.outputLength;
  }
  if (plan.outputSize < at) throw new Error(`the ops end at byte ${at}, after the output's ${plan.outputSize} bytes`);
  return { gapBefore, gapAfter: plan.outputSize - at };
}

/** Converts `work` here, one op after the other in output order. */
async function convertHere(id, plan, work, files, outputs) {
  const totalIn = work.reduce((s, o) => s + o.inputLength, 0) || 1;
  let doneIn = 0;
  for (const [k, op] of work.entries()) {
    if (cancelled) throw new Error(STOPPED);
    progress(id, doneIn / totalIn, `${op.name} (${k + 1}/${work.length})`);
    const t0 = now();
    const pieces = [];
    const r = await convertOp(plan, op, files, (bytes) => pieces.push(new Blob([bytes])), () => cancelled);
    outputs[op.index] = { pieces, ...r, ms: now() - t0 };
    doneIn += op.inputLength;
    await breathe();
  }
}

// The model-file build compiled once for the page's conversion workers: a compiled
// WebAssembly.Module is shared with a worker, not copied, so a worker skips fetching and
// compiling it (on a busy 2-core machine that cut the time until 2 workers were ready
// from about 200 to about 120 ms).
let converterModule = null;

function converterWasm() {
  if (converterModule === null) {
    // The file that loadBuild({ modelFiles: true }) loads for this engine.
    const url = new URL(`./pkg/${simdSupported() ? 'io-simd' : 'io-scalar'}/ternary_quant_bg.wasm`, import.meta.url);
    converterModule = (async () => {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`${url.pathname}: HTTP ${response.status}`);
      // compileStreaming needs the server to say application/wasm; not every one does.
      if (response.headers.get('content-type')?.startsWith('application/wasm')) return WebAssembly.compileStreaming(response);
      return WebAssembly.compile(await response.arrayBuffer());
    })();
    converterModule.catch(() => (converterModule = null));
  }
  return converterModule;
}

// Stops the running multi-worker conversion (set while one runs).
let stopWorkers = null;

/**
 * Converts `work` on `count` conversion workers: each is this module started under
 * CONVERTER_NAME, with its own wasm instance, and plans the same conversion from the
 * same header bytes and options. The ops are handed out largest first, the next one to
 * whichever worker finishes first; each posts back its op's output bytes (transferred,
 * not copied), which are kept by op index so that the output is assembled in output
 * order whatever order the ops finish in. Resolves to the milliseconds until the last
 * worker was ready to convert (its start-up: loading the module and planning).
 */
function convertOnWorkers(id, request, plan, work, count, files, outputs) {
  const queue = [...work].sort((a, b) => b.inputLength - a.inputLength || a.index - b.index);
  const byIndex = new Map(work.map((op) => [op.index, op]));
  const pieces = new Map();
  const totalIn = work.reduce((s, o) => s + o.inputLength, 0) || 1;
  let doneIn = 0;
  let finished = 0;
  let ready = 0;
  let readyMs = null;
  const started = now();
  const workers = [];
  return new Promise((resolve, reject) => {
    let over = false;
    const end = (error) => {
      if (over) return;
      over = true;
      stopWorkers = null;
      for (const w of workers) w.terminate();
      if (error) reject(error);
      else resolve(readyMs);
    };
    stopWorkers = () => end(new Error(STOPPED));
    const handOut = (worker) => {
      const op = queue.shift();
      if (op === undefined) {
        // Nothing left for it: its wasm memory goes now rather than at the end.
        worker.terminate();
        return;
      }
      pieces.set(op.index, []);
      worker.postMessage({ type: 'op', index: op.index });
    };
    const onMessage = (worker, m) => {
      if (over) return;
      if (m.type === 'ready') {
        if (m.opCount !== plan.opCount || m.outputSize !== plan.outputSize) {
          end(new Error('A conversion worker planned a different conversion.'));
        } else {
          if (++ready === count) readyMs = now() - started;
          handOut(worker);
        }
      } else if (m.type === 'piece') {
        pieces.get(m.index).push(new Blob([m.bytes]));
        doneIn += m.inputBytes;
        progress(id, doneIn / totalIn, `${byIndex.get(m.index).name} (${finished + 1}/${work.length}, ${count} workers)`);
      } else if (m.type === 'done') {
        const op = byIndex.get(m.index);
        const got = pieces.get(m.index).reduce((n, p) => n + p.size, 0);
        if (got !== op.outputLength) {
          end(new Error(`A conversion worker gave ${got} bytes for ${op.name}; the plan says ${op.outputLength}.`));
          return;
        }
        outputs[m.index] = { pieces: pieces.get(m.index), stats: m.stats, fit: m.fit, ms: m.ms };
        pieces.delete(m.index);
        finished++;
        if (finished === work.length) end(null);
        else handOut(worker);
      } else if (m.type === 'error') {
        end(new Error(m.message));
      }
    };
    progress(id, 0, `Starting ${count} conversion workers`);
    for (let k = 0; k < count; k++) {
      const worker = new Worker(new URL(import.meta.url), { type: 'module', name: CONVERTER_NAME });
      workers.push(worker);
      worker.onmessage = ({ data }) => onMessage(worker, data);
      worker.onerror = (e) => {
        // Handled here: it must not reach the page as an uncaught error of this worker.
        e.preventDefault();
        end(new Error(`A conversion worker stopped: ${e.message || 'it could not be started'}.`));
      };
      worker.onmessageerror = () => end(new Error('A conversion worker sent a message that could not be read.'));
    }
    // The workers load their scripts while the module compiles (the first time).
    converterWasm().then(
      (module) => {
        for (const worker of workers) worker.postMessage({ type: 'plan', module, files, request });
      },
      (e) => end(new Error(`The WebAssembly module did not load for the conversion workers: ${e?.message ?? e}`)),
    );
    if (cancelled) end(new Error(STOPPED));
  });
}

/**
 * Converts the open file on `workersAsked` workers (this one alone when 1): the output
 * Blob is the plan's header, then each op's bytes at its planned offset (zeros in gaps).
 * Copied tensors are slices of the input file, so they are never read into memory.
 */
async function convertModel(id, options, workersAsked) {
  if (!Number.isInteger(workersAsked) || workersAsked < 1 || workersAsked > MAX_WORKERS) {
    throw new Error(`The number of workers must be a whole number from 1 to ${MAX_WORKERS}; got ${workersAsked}.`);
  }
  const request = planRequest(options);
  const plan = planFrom(ioApi, request);
  try {
    const ops = plan.ops().sort((a, b) => a.outputOffset - b.outputOffset);
    // convertTensor holds a whole tensor, its output and work space in 4 GiB of wasm
    // memory: refuse at the start rather than after converting half the file.
    const largest = ops.filter((o) => !o.copiesBytes && !o.chunkable).sort((a, b) => b.inputLength - a.inputLength)[0];
    if (largest && largest.inputLength > MAX_TENSOR_BYTES) {
      throw new Error(
        `${largest.name} has ${(largest.inputLength / 2 ** 30).toFixed(1)} GiB; the page converts one whole tensor at a time ` +
          `in wasm's 4 GiB of memory, so tensors of at most ${MAX_TENSOR_BYTES / 2 ** 30} GiB. The tensor list and plan above still hold.`,
      );
    }
    const { gapBefore, gapAfter } = layoutOf(plan, ops);
    const files = model.inputs.map((input) => input.file);
    const outputs = new Array(plan.opCount);
    const started = now();
    for (const op of ops.filter((o) => o.copiesBytes)) {
      outputs[op.index] = { pieces: [new Blob(slices(files, op.inputs))], stats: null, fit: null, ms: 0 };
    }
    const work = ops.filter((o) => !o.copiesBytes);
    const workers = Math.max(1, Math.min(workersAsked, work.length));
    let workersReadyMs = null;
    if (workers > 1) workersReadyMs = await convertOnWorkers(id, request, plan, work, workers, files, outputs);
    else await convertHere(id, plan, work, files, outputs);

    const parts = [plan.header];
    const rows = [];
    const fits = []; // how ternary each ternarised tensor is, for the far-from-ternary warning
    for (const op of ops) {
      const out = outputs[op.index];
      if (gapBefore[op.index] > 0) parts.push(new Uint8Array(gapBefore[op.index]));
      parts.push(...out.pieces);
      if (out.fit !== null) fits.push(out.fit);
      rows.push({
        index: op.index,
        name: op.name,
        kind: op.kind,
        shape: op.shape,
        inType: op.inType,
        outType: op.outType,
        bytesIn: op.inputLength,
        bytesOut: op.outputLength,
        bitsPerWeight: op.bitsPerWeight,
        fallbackReason: op.fallbackReason,
        stats: out.stats,
        ms: out.ms,
      });
    }
    if (gapAfter > 0) parts.push(new Uint8Array(gapAfter));
    const blob = new Blob(parts, { type: 'application/octet-stream' });
    if (blob.size !== plan.outputSize) throw new Error(`the output has ${blob.size} bytes, the plan says ${plan.outputSize}`);
    const ms = now() - started;
    progress(id, 1, 'Done');
    return {
      rows,
      output: plan.output,
      inputSize: model.inputs.reduce((n, input) => n + input.file.size, 0),
      outputSize: plan.outputSize,
      ms,
      workers,
      workersAsked,
      workersReadyMs,
      fileName: outputName(model.name, options),
      warning: plan.trainedTernary ? null : (ioApi.ternaryFitWarning(fits) ?? null),
      plan: planSummary(options),
      blob,
    };
  } finally {
    plan.free();
  }
}

/**
 * A conversion worker (this module started under CONVERTER_NAME by convertOnWorkers):
 * instantiates the model-file build it is sent, plans the conversion it is sent, then
 * converts each op it is handed and posts its output bytes back, transferred. It is
 * stopped by terminate().
 */
function serveConversions() {
  let plan = null;
  let files = null;
  // Messages are handled one at a time (an op arrives only after 'ready' anyway).
  let handled = Promise.resolve();
  const handle = async (m) => {
    try {
      if (m.type === 'plan') {
        try {
          await init({ modelFiles: true, simd: simdSupported(), wasm: m.module });
        } catch (e) {
          throw new Error(`The WebAssembly module did not load in a conversion worker: ${e?.message ?? e}`);
        }
        files = m.files;
        plan = planFrom(defaultApi, m.request);
        post({ type: 'ready', opCount: plan.opCount, outputSize: plan.outputSize });
      } else if (m.type === 'op') {
        const op = plan.op(m.index);
        const t0 = now();
        const emit = (bytes, inputBytes) => {
          const own = ownBuffer(bytes);
          post({ type: 'piece', index: op.index, bytes: own, inputBytes }, [own.buffer]);
        };
        const r = await convertOp(plan, op, files, emit, () => false);
        post({ type: 'done', index: op.index, stats: r.stats, fit: r.fit, ms: now() - t0 });
      }
    } catch (e) {
      post({ type: 'error', message: e?.message ?? String(e) });
    }
  };
  self.onmessage = ({ data }) => {
    handled = handled.then(() => handle(data));
  };
}

/** Decodes an F32, F16 or BF16 tensor of the open file to f32 for the analysis views. */
async function analyseTensor(id, index, options) {
  if (!model) throw new Error('No model file is open.');
  const t = model.tensors[index];
  if (!t) throw new Error(`No tensor ${index} in this file.`);
  if (!['F32', 'F16', 'BF16'].includes(t.dtype)) {
    throw new Error(`${t.name} is ${t.dtype}; the views decode F32, F16 and BF16 tensors only.`);
  }
  if (t.shape.length < 2) throw new Error(`${t.name} has shape [${t.shape}]; the views need a matrix.`);
  const rows = t.shape[0];
  const cols = t.shape.slice(1).reduce((a, b) => a * b, 1);
  if (rows * cols > 2 ** 26) throw new Error(`${t.name} has ${rows * cols} values; the views take at most ${2 ** 26}.`);
  progress(id, 0.05, `Reading ${t.name}`);
  const raw = await readBytes(model.inputs[t.input].file, [{ offset: t.offset, length: t.byteLength }]);
  const data = ioApi.decodeFloats(t.dtype, raw);
  return analyse(id, data, rows, cols, options, { kind: 'tensor', name: t.name, dtype: t.dtype, shape: t.shape });
}

// ------------------------------------------------------------------ messages

async function handle(msg) {
  const { id } = msg;
  try {
    if (msg.type === 'synthetic') {
      const { spec, options } = msg;
      progress(id, 0.02, `Drawing ${spec.rows * spec.cols} ${DISTRIBUTIONS[spec.distribution]} values`);
      await breathe();
      const data = generate(spec);
      const r = await analyse(id, data, spec.rows, spec.cols, options, { kind: 'synthetic', ...spec });
      post({ type: 'analysis', id, result: r });
    } else if (msg.type === 'open') {
      model = null;
      const r = await openModel(id, msg.files, msg.options);
      post({ type: 'model', id, ...r });
    } else if (msg.type === 'plan') {
      post({ type: 'plan', id, plan: planSummary(msg.options) });
    } else if (msg.type === 'tensor') {
      const r = await analyseTensor(id, msg.index, msg.options);
      post({ type: 'analysis', id, result: r });
    } else if (msg.type === 'convert') {
      cancelled = false;
      const r = await convertModel(id, msg.options, msg.workers);
      post({ type: 'converted', id, result: r });
    } else {
      throw new Error(`unknown request ${msg.type}`);
    }
  } catch (e) {
    post({ type: 'error', id, request: msg.type, message: e?.message ?? String(e) });
  }
}

if (self.name === CONVERTER_NAME) {
  serveConversions();
} else {
  self.onmessage = ({ data }) => {
    if (data.type === 'cancel') {
      cancelled = true;
      stopWorkers?.();
      return;
    }
    queue = queue.then(() => handle(data));
  };

  try {
    const r = await init();
    info = { build: simdSupported() ? 'simd128' : 'scalar', backend: r.backend };
    post({ type: 'ready', ...info, presets: Object.values(presets) });
  } catch (e) {
    post({ type: 'error', id: null, request: 'init', message: `The WebAssembly module did not load: ${e?.message ?? e}` });
  }
}
