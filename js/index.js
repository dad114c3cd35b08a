// ternary-quant: the package entry. It picks the relaxed-SIMD, SIMD128 or scalar wasm build,
// loads it in Node (bytes read from the package), in browsers (URL relative to this
// module) or through bundlers, and wraps the raw bindings in handles that fail
// clearly once freed.

// The lean builds hold the quantization API; the io- builds add the model-file API
// (inspectModel, planConversion), which makes them about twice the size. Only the glue
// of the build that is loaded is imported: the specifiers are literal, so that bundlers
// still find (and may split out) each one.
const GLUES = {
  simd: () => import('./simd/ternary_quant.js'),
  relaxed: () => import('./relaxed/ternary_quant.js'),
  scalar: () => import('./scalar/ternary_quant.js'),
  'io-simd': () => import('./io-simd/ternary_quant.js'),
  'io-scalar': () => import('./io-scalar/ternary_quant.js'),
};

// (module (func (result v128) i32.const 0 i8x16.splat)): valid only where SIMD128 is.
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00, 0x0a, 0x08, 0x01, 0x06, 0x00, 0x41, 0x00, 0xfd, 0x0f, 0x0b,
]);

// (module (func (export "f") (result i32) (i8x16.all_true (i16x8.eq
//   (i16x8.relaxed_dot_i8x16_i7x16_s A B) WANT)))), with A and B the int8 and code vectors
// below and WANT their exact pair sums: 1 where the engine validates relaxed SIMD and
// computes the one relaxed instruction the relaxed build uses exactly. Validation alone
// would not say the second: Node 20's --experimental-wasm-relaxed-simd computes the
// i32x4 form of this instruction wrongly in its baseline compiler.
const RELAXED_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7f, 0x03,
  0x02, 0x01, 0x00, 0x07, 0x05, 0x01, 0x01, 0x66, 0x00, 0x00, 0x0a, 0x41, 0x01, 0x3f, 0x00,
  // A: -128 5 | 0 0 | 3 -2 | 1 1 | 1 1 | -128 -128 | 127 -128 | -1 127
  0xfd, 0x0c, 0x80, 0x05, 0x00, 0x00, 0x03, 0xfe, 0x01, 0x01, 0x01, 0x01, 0x80, 0x80, 0x7f, 0x80, 0xff, 0x7f,
  // B: 1 0 | 0 0 | 1 1 | 2 2 | 3 0 | 3 3 | 3 2 | 0 3
  0xfd, 0x0c, 0x01, 0x00, 0x00, 0x00, 0x01, 0x01, 0x02, 0x02, 0x03, 0x00, 0x03, 0x03, 0x03, 0x02, 0x00, 0x03,
  0xfd, 0x92, 0x02,
  // WANT: -128 0 1 4 3 -768 125 381
  0xfd, 0x0c, 0x80, 0xff, 0x00, 0x00, 0x01, 0x00, 0x04, 0x00, 0x03, 0x00, 0x00, 0xfd, 0x7d, 0x00, 0x7d, 0x01,
  0xfd, 0x2d, 0xfd, 0x63, 0x0b,
]);

const WASM_PAGE = 65536;
const WASM_MAX_BYTES = 65536 * WASM_PAGE; // wasm32 linear memory: 4 GiB
const MAX_DIM = 2 ** 31 - 1;
const MAX_F32S = WASM_MAX_BYTES / 4;
// What a quantization may hold in wasm memory besides its input, per value: the output,
// and for some rules a sorted or selected copy of the magnitudes.
const WORK_BYTES_PER_VALUE = 8;

let defaultBuild = null;
let loading = null;
let loadedVariant = null;
const builds = new Map();

/** Presets by name, filled by `init()`. */
export const presets = {};
/** The scale rules' names, in the engine's order (filled by init). */
export const rules = [];

/** Whether this JavaScript engine validates SIMD128 wasm. */
export function simdSupported() {
  return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
}

let relaxedProbed = null;

/**
 * Whether this engine validates relaxed SIMD and computes the one relaxed instruction
 * the relaxed build uses exactly (checked once by running it).
 */
export function relaxedSupported() {
  if (relaxedProbed === null) {
    relaxedProbed = false;
    if (simdSupported() && WebAssembly.validate(RELAXED_PROBE)) {
      try {
        relaxedProbed = new WebAssembly.Instance(new WebAssembly.Module(RELAXED_PROBE)).exports.f() === 1;
      } catch {
        relaxedProbed = false;
      }
    }
  }
  return relaxedProbed;
}

function isNode() {
  return typeof process === 'object' && process !== null && typeof process.versions?.node === 'string';
}

// A computed specifier, so that bundlers for the browser leave Node's fs alone.
const NODE_FS = 'node:fs/promises';

async function readFileInNode(url) {
  const { readFile } = await import(/* webpackIgnore: true */ /* @vite-ignore */ NODE_FS);
  return readFile(url);
}

// Node's fetch() cannot read file: URLs, so the bytes are read from disk there.
async function wasmSource(variant, wasm) {
  if (wasm === undefined) wasm = new URL(`./${variant}/ternary_quant_bg.wasm`, import.meta.url);
  if (isNode()) {
    if (wasm instanceof URL && wasm.protocol === 'file:') return readFileInNode(wasm);
    if (typeof wasm === 'string' && !/^(https?|data|blob):/i.test(wasm)) {
      return readFileInNode(wasm.startsWith('file:') ? new URL(wasm) : wasm);
    }
  }
  return wasm;
}

// The model-file builds have no relaxed twin: conversion does not use the relaxed kernel.
function variantOf(simd, modelFiles, relaxed = false) {
  if (relaxed && simd && !modelFiles) return 'relaxed';
  return `${modelFiles ? 'io-' : ''}${simd ? 'simd' : 'scalar'}`;
}

// 'relaxed' is a SIMD128 build too.
const isSimdVariant = (variant) => !variant.endsWith('scalar');

/**
 * Loads the wasm build. Idempotent: later calls return the same promise.
 * `init({ simd: false })` forces the scalar build, `init({ relaxed: false })` the SIMD128
 * one where relaxed SIMD would be chosen; `init({ modelFiles: true })` loads the
 * build that also reads and converts model files; `init({ wasm })` takes the module
 * bytes, a URL or a compiled `WebAssembly.Module` (for bundlers that move the files).
 */
export function init(options = {}) {
  if (options === null || typeof options !== 'object') throw new TypeError('init: options must be an object');
  for (const key of Object.keys(options)) {
    if (!['simd', 'relaxed', 'wasm', 'modelFiles'].includes(key)) {
      throw new TypeError(`init: unknown option '${key}' (known: simd, relaxed, wasm, modelFiles)`);
    }
  }
  const wantSimd = options.simd ?? simdSupported();
  if (wantSimd && !simdSupported()) throw new Error('init: SIMD128 was requested but this engine does not support it');
  if (options.relaxed === true && (!wantSimd || options.modelFiles === true || !relaxedSupported())) {
    throw new Error('init: relaxed SIMD was requested but this engine does not support it (or simd: false / modelFiles: true was given)');
  }
  // Bytes or a module passed as `wasm` are for the build the simd option names: relaxed
  // only when asked for.
  const wantRelaxed = options.relaxed ?? (options.wasm === undefined && wantSimd && relaxedSupported());
  const variant = variantOf(wantSimd, options.modelFiles === true, wantRelaxed);
  if (loading) {
    const simdDiffers = options.simd !== undefined && isSimdVariant(variant) !== isSimdVariant(loadedVariant);
    const relaxedDiffers = options.relaxed !== undefined && (variant === 'relaxed') !== (loadedVariant === 'relaxed');
    const filesMissing = options.modelFiles === true && !loadedVariant.startsWith('io-');
    if (simdDiffers || relaxedDiffers || filesMissing) {
      throw new Error(`init: the ${loadedVariant} build is already loaded; a process holds one default build (use loadBuild for another)`);
    }
    return loading;
  }
  loadedVariant = variant;
  loading = (async () => {
    const build = await loadVariant(variant, options.wasm);
    defaultBuild = build;
    for (const p of build.glue.presetList()) presets[p.name] = Object.freeze(p);
    Object.freeze(presets);
    rules.push(...build.glue.ruleList());
    Object.freeze(rules);
    return { backend: build.glue.backend(), modelFiles: variant.startsWith('io-') };
  })();
  loading.catch(() => {
    loading = null;
    loadedVariant = null;
  });
  return loading;
}

// Each build's glue module keeps its own instance, so both can live in one process.
function loadVariant(variant, wasm) {
  if (!builds.has(variant)) {
    const pending = (async () => {
      const g = await GLUES[variant]();
      const source = await wasmSource(variant, wasm);
      // Bytes and compiled modules are instantiated here rather than by the glue's async
      // init, which tests `instanceof Response` and `Request`: in Node those globals
      // load the fetch implementation on first touch, about 12 MB and 70 ms of start-up.
      const exports =
        source instanceof WebAssembly.Module || ArrayBuffer.isView(source) || source instanceof ArrayBuffer
          ? g.initSync({ module: source instanceof WebAssembly.Module ? source : await WebAssembly.compile(source) })
          : await g.default({ module_or_path: source });
      return { glue: g, memory: exports.memory, variant };
    })();
    pending.catch(() => builds.delete(variant));
    builds.set(variant, pending);
  }
  return builds.get(variant);
}

function bindings() {
  if (!defaultBuild) throw new Error('ternary-quant is not initialised: await init() first');
  return defaultBuild;
}

/** 'relaxed-simd', 'simd128' or 'scalar'. */
export function backend() {
  return bindings().glue.backend();
}

/** Current size of the wasm linear memory in bytes (it grows, never shrinks). */
export function memoryBytes() {
  return bindings().memory.buffer.byteLength;
}

function describe(value) {
  if (typeof value === 'number') return String(value);
  if (typeof value === 'bigint') return `bigint ${value}n`;
  let text;
  try {
    text = JSON.stringify(value);
  } catch {
    text = undefined;
  }
  return `${typeof value} ${text ?? String(value)}`;
}

function checkDim(name, value) {
  if (!Number.isInteger(value) || value < 1 || value > MAX_DIM) {
    throw new RangeError(`${name} must be an integer in 1..${MAX_DIM}, got ${describe(value)}`);
  }
}

function checkF32(name, value) {
  if (!(value instanceof Float32Array)) {
    throw new TypeError(`${name} must be a Float32Array, got ${value?.constructor?.name ?? typeof value}`);
  }
}

// `checkData` says what the data may be: a Float32Array, or also an F32Buffer.
function checkShape(data, rows, cols, checkData = checkF32) {
  checkData('data', data);
  checkDim('rows', rows);
  checkDim('cols', cols);
  if (rows * cols !== data.length) {
    throw new RangeError(`data has ${data.length} values but rows * cols = ${rows} * ${cols} = ${rows * cols}`);
  }
}

// A call copies its inputs into wasm memory and builds outputs there; refuse calls that
// cannot fit rather than letting the allocator trap and break the instance.
function checkFits(build, bytesNeeded, what) {
  const current = build.memory.buffer.byteLength;
  if (bytesNeeded > WASM_MAX_BYTES - current) {
    const mib = (n) => `${Math.ceil(n / 2 ** 20)} MiB`;
    throw new RangeError(
      `${what} needs about ${mib(bytesNeeded)} of wasm memory, but only ${mib(WASM_MAX_BYTES - current)} ` +
        `of the 4 GiB wasm32 limit remain; split the tensor (the CLI streams tensor by tensor)`,
    );
  }
}

const RAW = Symbol('raw');
const BUILD = Symbol('build');

function live(handle, kind) {
  const raw = handle[RAW];
  if (!raw) throw new Error(`this ${kind} has been freed`);
  return raw;
}

/** A wasm object behind a JS handle, which frees it once and fails clearly afterwards. */
class Handle {
  /** Releases the wasm memory now; the handle throws afterwards. Idempotent. */
  free() {
    const raw = this[RAW];
    this[RAW] = null;
    raw?.free();
  }
}

const VIEWED = Symbol('viewed');

/**
 * f32 values in wasm memory, for large inputs without a copy: fill `view()` (or `set()`)
 * and pass the buffer wherever a Float32Array input goes. A view is valid until the
 * wasm memory grows, which any call into the module may do (growing detaches it): take
 * it right before filling, and pass the buffer before any other call. Passing a buffer
 * whose latest view was detached since it was taken throws, since writes through a
 * detached view are dropped without an error.
 */
export class F32Buffer extends Handle {
  constructor(length, build = bindings()) {
    if (!Number.isInteger(length) || length < 0 || length > MAX_F32S) {
      throw new RangeError(`F32Buffer: length must be an integer in 0..${MAX_F32S}, got ${describe(length)}`);
    }
    checkFits(build, length * 4, 'F32Buffer');
    super();
    this[BUILD] = build;
    this[RAW] = new build.glue.F32Buffer(length, undefined);
    this[VIEWED] = null;
  }
  /** A buffer holding a copy of `values` (one copy, straight into wasm memory). */
  static from(values, build = bindings()) {
    checkF32('values', values);
    checkFits(build, values.byteLength, 'F32Buffer.from');
    const buffer = Object.create(this.prototype);
    buffer[BUILD] = build;
    buffer[RAW] = new build.glue.F32Buffer(values.length, values);
    buffer[VIEWED] = null;
    return buffer;
  }
  get length() { return live(this, 'F32Buffer').length; }
  /** A Float32Array over the buffer in wasm memory (no copy); see the class. */
  view() {
    const view = live(this, 'F32Buffer').view();
    this[VIEWED] = view.buffer;
    return view;
  }
  /** Copies `values` into the buffer from index `offset`. */
  set(values, offset = 0) {
    const raw = live(this, 'F32Buffer');
    checkF32('values', values);
    if (!Number.isInteger(offset) || offset < 0 || offset + values.length > raw.length) {
      throw new RangeError(`F32Buffer.set: ${values.length} values from offset ${describe(offset)} do not fit in ${raw.length}`);
    }
    raw.view().set(values, offset);
  }
}

// The raw buffer of an F32Buffer passed as input `name` to a function of `build`.
function bufferInput(build, name, buffer) {
  const raw = live(buffer, 'F32Buffer');
  if (buffer[BUILD] !== build) {
    throw new TypeError(`${name}: this F32Buffer belongs to another build; make it with the same build's F32Buffer`);
  }
  if (buffer[VIEWED] !== null && buffer[VIEWED] !== build.memory.buffer) {
    buffer[VIEWED] = null;
    throw new Error(
      `${name}: the wasm memory grew after this F32Buffer's view() was taken, which detached that view, and ` +
        'values written through it since were dropped; take view() right before filling, and pass the buffer ' +
        'before any other call into the module (or fill it with set())',
    );
  }
  return raw;
}

// Runs `call` with the raw buffers of the large f32 inputs `[name, value]`: an
// F32Buffer of this build as it is, a Float32Array copied into a buffer that lives for
// the call.
function withInputs(build, inputs, call) {
  const raws = [];
  const temporaries = [];
  const buffers = [];
  try {
    for (const [name, value] of inputs) {
      if (value instanceof F32Buffer) {
        raws.push(bufferInput(build, name, value));
        buffers.push(value);
      } else {
        checkF32(name, value);
        const raw = new build.glue.F32Buffer(value.length, value);
        temporaries.push(raw);
        raws.push(raw);
      }
    }
    return call(...raws);
  } finally {
    for (const raw of temporaries) raw.free();
    for (const buffer of buffers) buffer[VIEWED] = null;
  }
}

// An input that the bindings take as a Float32Array (GEMV x, activations, errorStats):
// an F32Buffer's values are copied out first (its view would detach if passing it grew
// memory).
function vectorInput(build, name, value) {
  if (!(value instanceof F32Buffer)) return value;
  const copy = bufferInput(build, name, value).view().slice();
  value[VIEWED] = null;
  return copy;
}

// The wasm memory a call needs for its inputs: only Float32Arrays are copied in.
function inputBytes(...values) {
  return values.reduce((sum, v) => sum + (v instanceof Float32Array ? v.byteLength : 0), 0);
}

function checkInput(name, value) {
  if (!(value instanceof Float32Array) && !(value instanceof F32Buffer)) {
    throw new TypeError(`${name} must be a Float32Array or an F32Buffer, got ${value?.constructor?.name ?? typeof value}`);
  }
}

function checkInputShape(data, rows, cols) {
  checkShape(data, rows, cols, checkInput);
}

/** A ternary tensor in wasm memory. Every getter returns a fresh copy. */
export class TernaryTensor extends Handle {
  constructor(raw) {
    super();
    this[RAW] = raw;
  }
  get rows() { return live(this, 'TernaryTensor').rows; }
  get cols() { return live(this, 'TernaryTensor').cols; }
  get layout() { return live(this, 'TernaryTensor').layout; }
  get scope() { return live(this, 'TernaryTensor').scope; }
  get blockSize() { return live(this, 'TernaryTensor').blockSize; }
  /** Exactly the layout's bytes (a copy). */
  get bytes() { return live(this, 'TernaryTensor').bytes; }
  /** One scale per scope, as stored (a copy). */
  get scales() { return live(this, 'TernaryTensor').scales; }
  /** Every stored byte, scales included. */
  get byteLength() { return live(this, 'TernaryTensor').byteLength; }
  get bitsPerWeight() { return live(this, 'TernaryTensor').bitsPerWeight; }
  /** Codes in {-1, 0, 1} (a copy). */
  codes() { return live(this, 'TernaryTensor').codes(); }
  /** q * scale (a copy). */
  dequantize() { return live(this, 'TernaryTensor').dequantize(); }
}

/** An int8 tensor in wasm memory. Every getter returns a fresh copy. */
export class Int8Tensor extends Handle {
  constructor(raw) {
    super();
    this[RAW] = raw;
  }
  get rows() { return live(this, 'Int8Tensor').rows; }
  get cols() { return live(this, 'Int8Tensor').cols; }
  get layout() { return live(this, 'Int8Tensor').layout; }
  get scope() { return live(this, 'Int8Tensor').scope; }
  get symmetric() { return live(this, 'Int8Tensor').symmetric; }
  get values() { return live(this, 'Int8Tensor').values; }
  get scales() { return live(this, 'Int8Tensor').scales; }
  get zeroPoints() { return live(this, 'Int8Tensor').zeroPoints; }
  get bytes() { return live(this, 'Int8Tensor').bytes; }
  get byteLength() { return live(this, 'Int8Tensor').byteLength; }
  dequantize() { return live(this, 'Int8Tensor').dequantize(); }
}

/** Quantizes row-major f32 weights to ternary. */
function quantizeTernaryIn(build, data, rows, cols, options) {
  checkInputShape(data, rows, cols);
  checkFits(build, inputBytes(data) + rows * cols * WORK_BYTES_PER_VALUE, 'quantizeTernary');
  return new TernaryTensor(withInputs(build, [['data', data]], (d) => build.glue.quantizeTernary(d, rows, cols, options)));
}

/** Quantizes row-major f32 activations to int8. */
function quantizeInt8In(build, data, rows, cols, options) {
  checkInputShape(data, rows, cols);
  checkFits(build, inputBytes(data) + rows * cols * WORK_BYTES_PER_VALUE, 'quantizeInt8');
  return new Int8Tensor(withInputs(build, [['data', data]], (d) => build.glue.quantizeInt8(d, rows, cols, options)));
}

/** { mse, rmse, maxAbsError, snrDb, cosine } of `reconstructed` against `original`. */
function errorStatsIn(build, original, reconstructed) {
  checkInput('original', original);
  checkInput('reconstructed', reconstructed);
  checkFits(build, original.length * 8 + reconstructed.length * 8, 'errorStats');
  return build.glue.errorStats(vectorInput(build, 'original', original), vectorInput(build, 'reconstructed', reconstructed));
}

/** y = W x with ternary W (x is quantized to int8 per token inside). */
function ternaryMatVecIn(build, tensor, x) {
  const b = build.glue;
  if (!(tensor instanceof TernaryTensor)) throw new TypeError('ternaryMatVec: the first argument must be a TernaryTensor');
  const raw = live(tensor, 'TernaryTensor');
  if (!(raw instanceof b.TernaryTensor)) {
    throw new TypeError("ternaryMatVec: this TernaryTensor belongs to another build; use that build's ternaryMatVec");
  }
  checkInput('x', x);
  checkFits(build, x.length * 8 + raw.rows * 4, 'ternaryMatVec');
  return b.ternaryMatVec(raw, vectorInput(build, 'x', x));
}

/** y = W x in f32, the reference for comparisons. */
function matVecF32In(build, w, rows, cols, x) {
  checkInputShape(w, rows, cols);
  checkInput('x', x);
  checkFits(build, inputBytes(w) + x.length * 4 + rows * 4, 'matVecF32');
  return withInputs(build, [['w', w]], (ws) => build.glue.matVecF32(ws, rows, cols, vectorInput(build, 'x', x)));
}

/** Quantizes with one configuration and caches weights by content, shape and options. */
export class QuantizationEngine extends Handle {
  constructor(config, build = bindings()) {
    super();
    this[BUILD] = build;
    this[RAW] = new build.glue.QuantizationEngine(config);
  }
  quantizeWeights(data, rows, cols) {
    const raw = live(this, 'QuantizationEngine');
    checkInputShape(data, rows, cols);
    checkFits(this[BUILD], inputBytes(data) + rows * cols * WORK_BYTES_PER_VALUE, 'quantizeWeights');
    return new TernaryTensor(withInputs(this[BUILD], [['data', data]], (d) => raw.quantizeWeights(d, rows, cols)));
  }
  quantizeActivations(data, rows, cols) {
    const raw = live(this, 'QuantizationEngine');
    checkInputShape(data, rows, cols);
    checkFits(this[BUILD], data.length * (4 + WORK_BYTES_PER_VALUE), 'quantizeActivations');
    return new Int8Tensor(raw.quantizeActivations(vectorInput(this[BUILD], 'data', data), rows, cols));
  }
  /** Returns { tensor, stats }. */
  quantizeAndMeasure(data, rows, cols) {
    const raw = live(this, 'QuantizationEngine');
    checkInputShape(data, rows, cols);
    checkFits(this[BUILD], inputBytes(data) + rows * cols * (WORK_BYTES_PER_VALUE + 4), 'quantizeAndMeasure');
    const t = withInputs(this[BUILD], [['data', data]], (d) => raw.quantizeAndMeasure(d, rows, cols));
    const stats = t.stats;
    return { tensor: new TernaryTensor(t), stats };
  }
  /** { entries, hits, misses, bytes } */
  cacheStats() { return live(this, 'QuantizationEngine').cacheStats(); }
  clearCache() { live(this, 'QuantizationEngine').clearCache(); }
}

function entriesOf(mapOrObject, what) {
  if (mapOrObject instanceof Map) return [...mapOrObject.entries()];
  if (mapOrObject && typeof mapOrObject === 'object' && !Array.isArray(mapOrObject)) return Object.entries(mapOrObject);
  throw new TypeError(`${what} must be a Map or a plain object`);
}

/**
 * Quantizes named tensors `{ name: { data, rows, cols } }` (or a Map) with one config.
 * Returns { tensors: Map<name, TernaryTensor>, report }.
 */
function quantizeBatchIn(build, mapOrObject, config) {
  const b = build.glue;
  const entries = entriesOf(mapOrObject, 'quantizeBatch input');
  const names = [];
  const arrays = [];
  const shapes = [];
  let bytes = 0;
  for (const [name, t] of entries) {
    if (!t || typeof t !== 'object') throw new TypeError(`quantizeBatch: '${name}' must be { data, rows, cols }`);
    try {
      checkShape(t.data, t.rows, t.cols);
    } catch (e) {
      throw new e.constructor(`quantizeBatch: tensor '${name}': ${e.message}`);
    }
    names.push(String(name));
    arrays.push(t.data);
    shapes.push(t.rows, t.cols);
    bytes += t.data.byteLength;
  }
  checkFits(build, bytes * 4, 'quantizeBatch');
  const result = b.quantizeBatch(names, arrays, new Uint32Array(shapes), config);
  try {
    const tensors = new Map(names.map((name, i) => [name, new TernaryTensor(result.tensor(i))]));
    return { tensors, report: result.report };
  } finally {
    result.free();
  }
}

/**
 * Exact stored bytes of a model given its shapes ([[rows, cols], ...], or an object or
 * Map of name -> [rows, cols]). `byLayout` gives the same model in every ternary layout
 * with the tensor scope, and in q8_0/f16/f32.
 */
function estimateModelSizeIn(build, shapes, config) {
  const b = build.glue;
  const list = Array.isArray(shapes) ? shapes : entriesOf(shapes, 'shapes').map(([, s]) => s);
  const flat = [];
  for (const s of list) {
    if (!Array.isArray(s) || s.length !== 2) throw new TypeError('estimateModelSize: each shape must be [rows, cols]');
    ['rows', 'cols'].forEach((name, i) => {
      if (!Number.isSafeInteger(s[i]) || s[i] < 1) {
        throw new RangeError(`estimateModelSize: ${name} must be a positive integer, got ${describe(s[i])}`);
      }
    });
    flat.push(s[0], s[1]);
  }
  return b.estimateModelSize(new Float64Array(flat), config);
}

/** See the type declarations. */
export function quantizeTernary(data, rows, cols, options) {
  return quantizeTernaryIn(bindings(), data, rows, cols, options);
}

/** See the type declarations. */
export function quantizeInt8(data, rows, cols, options) {
  return quantizeInt8In(bindings(), data, rows, cols, options);
}

/** See the type declarations. */
export function errorStats(original, reconstructed) {
  return errorStatsIn(bindings(), original, reconstructed);
}

/** See the type declarations. */
export function ternaryMatVec(tensor, x) {
  return ternaryMatVecIn(bindings(), tensor, x);
}

/** See the type declarations. */
export function matVecF32(w, rows, cols, x) {
  return matVecF32In(bindings(), w, rows, cols, x);
}

/** See the type declarations. */
export function quantizeBatch(mapOrObject, config) {
  return quantizeBatchIn(bindings(), mapOrObject, config);
}

/** See the type declarations. */
export function estimateModelSize(shapes, config) {
  return estimateModelSizeIn(bindings(), shapes, config);
}

// ------------------------------------------------------------------ model files

function modelFileBindings(build, what) {
  if (typeof build.glue.inspectModel !== 'function') {
    throw new Error(`${what} needs the model-file build: await init({ modelFiles: true })`);
  }
  return build.glue;
}

function checkBytes(name, value) {
  if (!(value instanceof Uint8Array)) {
    throw new TypeError(`${name} must be a Uint8Array, got ${value?.constructor?.name ?? typeof value}`);
  }
}

function checkFileSize(value) {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`fileSize must be a non-negative integer, got ${describe(value)}`);
}

function inspectModelIn(build, prefix, fileSize) {
  const b = modelFileBindings(build, 'inspectModel');
  checkBytes('prefix', prefix);
  checkFileSize(fileSize);
  checkFits(build, prefix.byteLength * 3, 'inspectModel');
  return b.inspectModel(prefix, fileSize);
}

// The engine's format table, read once per build and frozen.
const formatTables = new WeakMap();

function formatsIn(build) {
  if (!formatTables.has(build)) {
    const list = modelFileBindings(build, 'formats').formatList().map((f) => Object.freeze({ ...f, outputs: Object.freeze(f.outputs) }));
    formatTables.set(build, Object.freeze(list));
  }
  return formatTables.get(build);
}

function ternaryFitWarningIn(build, fits) {
  const b = modelFileBindings(build, 'ternaryFitWarning');
  if (!Array.isArray(fits) || fits.some((f) => typeof f !== 'number')) throw new TypeError('ternaryFitWarning: fits must be an array of numbers');
  return b.ternaryFitWarning(Float64Array.from(fits));
}

function folderFilesIn(build) {
  return modelFileBindings(build, 'folderFiles').folderFiles();
}

function folderWeightsIn(build, names) {
  const b = modelFileBindings(build, 'folderWeights');
  if (!Array.isArray(names) || names.some((n) => typeof n !== 'string')) {
    throw new TypeError('folderWeights: names must be an array of file names');
  }
  return b.folderWeights(names);
}

function parseSafetensorsIndexIn(build, json) {
  const b = modelFileBindings(build, 'parseSafetensorsIndex');
  checkBytes('index', json);
  return b.parseSafetensorsIndex(json);
}

/** A conversion plan in wasm memory: the output header, the ops, and tensor conversion. */
export class ConversionPlan extends Handle {
  constructor(raw, build) {
    super();
    this[RAW] = raw;
    this[BUILD] = build;
  }
  /** 'gguf' or 'bitnet-hf'. */
  get output() { return live(this, 'ConversionPlan').output; }
  /** The output's bytes from offset 0 to its data section (a copy). */
  get header() { return live(this, 'ConversionPlan').header; }
  /** Total output bytes; gaps between ops are zero bytes. */
  get outputSize() { return live(this, 'ConversionPlan').outputSize; }
  get opCount() { return live(this, 'ConversionPlan').opCount; }
  op(i) { return live(this, 'ConversionPlan').op(i); }
  ops() { return live(this, 'ConversionPlan').ops(); }
  /** Converts op i from its input bytes (its input ranges, concatenated). */
  convertTensor(i, bytes, measure = false) {
    const raw = live(this, 'ConversionPlan');
    checkBytes('bytes', bytes);
    checkFits(this[BUILD], bytes.byteLength * 4 + 2 ** 20, `converting tensor '${raw.op(i).name}'`);
    return raw.convertTensor(i, bytes, measure);
  }
  /**
   * A Uint8Array view of this plan's own input buffer in wasm memory, exactly op i's
   * input length, for convertBuffered(i): read the input straight into it (no copy into
   * wasm; F32 input is converted in place). Any other call into this wasm instance may
   * grow its memory, which detaches the view (byteLength 0), and the next inputBuffer
   * call may move the buffer: fill the view right away, with no other call into the
   * module until it is filled, then call convertBuffered(i). Get a new view per op.
   */
  inputBuffer(i) {
    const raw = live(this, 'ConversionPlan');
    const op = raw.op(i);
    checkFits(this[BUILD], op.inputLength * 4 + 2 ** 20, `converting tensor '${op.name}'`);
    return raw.inputBuffer(i);
  }
  /** Converts op i from the view that inputBuffer(i) returned, now filled; as convertTensor. */
  convertBuffered(i, measure = false) {
    return live(this, 'ConversionPlan').convertBuffered(i, measure);
  }
  /** The model folder says its weights were trained ternary (BitNet). */
  get trainedTernary() { return live(this, 'ConversionPlan').trainedTernary; }
  /** Op i converted a piece at a time (ops whose `chunkable` is true); see ChunkedOp. */
  chunkedOp(i, measure = false) {
    return new ChunkedOp(live(this, 'ConversionPlan').chunkedOp(i, measure), this[BUILD]);
  }
}

/**
 * One op converted a piece at a time: pieces of chunkBytes(max) input bytes in order,
 * each output written after the previous one from the op's output offset, then
 * finish() for the statistics (it frees the object).
 */
export class ChunkedOp extends Handle {
  constructor(raw, build) {
    super();
    this[RAW] = raw;
    this[BUILD] = build;
  }
  /** Input bytes of a piece of at most maxBytes (at least the smallest piece). */
  chunkBytes(maxBytes) {
    return live(this, 'ChunkedOp').chunkBytes(maxBytes);
  }
  /** How ternary the op's values are (see convertTensor), once its first piece is converted. */
  get ternaryFitDb() {
    return live(this, 'ChunkedOp').ternaryFitDb ?? null;
  }
  /** The output bytes of the next piece of input. */
  convert(bytes) {
    const raw = live(this, 'ChunkedOp');
    checkBytes('bytes', bytes);
    checkFits(this[BUILD], bytes.byteLength * 4 + 2 ** 20, 'converting a piece');
    return raw.convert(bytes);
  }
  /**
   * A Uint8Array view of this op's own input buffer in wasm memory, `length` bytes, for
   * convertBuffered(): read the next piece straight into it. As ConversionPlan's
   * inputBuffer, the view is detached by any call that grows the memory: fill it right
   * away, with no other call into the module until convertBuffered().
   */
  inputBuffer(length) {
    const raw = live(this, 'ChunkedOp');
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`inputBuffer: length must be a non-negative integer, got ${describe(length)}`);
    checkFits(this[BUILD], length * 4 + 2 ** 20, 'converting a piece');
    return raw.inputBuffer(length);
  }
  /** The output bytes of the piece that inputBuffer() returned, now filled. */
  convertBuffered() {
    return live(this, 'ChunkedOp').convertBuffered();
  }
  /** The op's statistics (null unless measuring), once all its input was given. */
  finish() {
    const raw = live(this, 'ChunkedOp');
    this[RAW] = null;
    return raw.finish();
  }
}

function decodeFloatsIn(build, dtype, bytes) {
  const b = modelFileBindings(build, 'decodeFloats');
  checkBytes('bytes', bytes);
  checkFits(build, bytes.byteLength * 3, 'decodeFloats');
  return b.decodeFloats(dtype, bytes);
}

function planConversionIn(build, inputs, options) {
  const b = modelFileBindings(build, 'planConversion');
  if (!Array.isArray(inputs)) throw new TypeError('planConversion: inputs must be an array of { prefix, fileSize }');
  for (const [i, input] of inputs.entries()) {
    if (!input || typeof input !== 'object') throw new TypeError(`planConversion: input ${i} must be { prefix, fileSize }`);
    checkBytes(`input ${i} prefix`, input.prefix);
    checkFileSize(input.fileSize);
  }
  const result = b.planConversion(inputs, options);
  return result instanceof b.ConversionPlan ? new ConversionPlan(result, build) : result;
}

/**
 * Reads a model header (safetensors or GGUF) from the first bytes of the file. Returns
 * `{ needBytes }` when the prefix is too short: read that many bytes and call again.
 */
export function inspectModel(prefix, fileSize) {
  return inspectModelIn(bindings(), prefix, fileSize);
}

/**
 * The engine's storage formats (ternary layouts, Q8_0, Q8_K, F16, BF16, F32...): name,
 * block size, bytes per block, ggml type, llama.cpp file type and the outputs that take
 * each. Needs the model-file build.
 */
export function formats() {
  return formatsIn(bindings());
}

/** Parses a sharded safetensors `*.safetensors.index.json`. */
/**
 * Which file of a model folder holds its weights, from the names of the folder's files:
 * model.safetensors.index.json when there is one, else model.safetensors; an error when
 * neither is there.
 */
export function folderWeights(names) {
  return folderWeightsIn(bindings(), names);
}

export function parseSafetensorsIndex(json) {
  return parseSafetensorsIndexIn(bindings(), json);
}

/**
 * Plans a conversion from input headers; a ConversionPlan, or `{ needBytes, input }`
 * when an input's prefix is too short.
 */
export function planConversion(inputs, options) {
  return planConversionIn(bindings(), inputs, options);
}

/** See the type declarations. */
export function ternaryFitWarning(fits) {
  return ternaryFitWarningIn(bindings(), fits);
}

/** See the type declarations. */
export function folderFiles() {
  return folderFilesIn(bindings());
}

/** See the type declarations. */
export function decodeFloats(dtype, bytes) {
  return decodeFloatsIn(bindings(), dtype, bytes);
}

/**
 * Loads one build next to the default one and returns the API bound to it, so that a
 * single process can compare the SIMD128 and scalar builds (benchmarks, tests).
 */
export async function loadBuild({ simd, modelFiles = false, relaxed = false }) {
  if (simd && !simdSupported()) throw new Error('loadBuild: this engine does not support SIMD128');
  if (relaxed && !(simd && !modelFiles && relaxedSupported())) {
    throw new Error('loadBuild: relaxed SIMD needs simd: true, no model files and an engine that runs it');
  }
  const build = await loadVariant(variantOf(simd, modelFiles, relaxed));
  return Object.freeze({
    backend: () => build.glue.backend(),
    memoryBytes: () => build.memory.buffer.byteLength,
    quantizeTernary: (data, rows, cols, options) => quantizeTernaryIn(build, data, rows, cols, options),
    quantizeInt8: (data, rows, cols, options) => quantizeInt8In(build, data, rows, cols, options),
    errorStats: (original, reconstructed) => errorStatsIn(build, original, reconstructed),
    ternaryMatVec: (tensor, x) => ternaryMatVecIn(build, tensor, x),
    matVecF32: (w, rows, cols, x) => matVecF32In(build, w, rows, cols, x),
    quantizeBatch: (mapOrObject, config) => quantizeBatchIn(build, mapOrObject, config),
    estimateModelSize: (shapes, config) => estimateModelSizeIn(build, shapes, config),
    inspectModel: (prefix, fileSize) => inspectModelIn(build, prefix, fileSize),
    parseSafetensorsIndex: (json) => parseSafetensorsIndexIn(build, json),
    folderWeights: (names) => folderWeightsIn(build, names),
    formats: () => formatsIn(build),
    folderFiles: () => folderFilesIn(build),
    ternaryFitWarning: (fits) => ternaryFitWarningIn(build, fits),
    planConversion: (inputs, options) => planConversionIn(build, inputs, options),
    decodeFloats: (dtype, bytes) => decodeFloatsIn(build, dtype, bytes),
    QuantizationEngine: class extends QuantizationEngine {
      constructor(config) {
        super(config, build);
      }
    },
    F32Buffer: class extends F32Buffer {
      constructor(length) {
        super(length, build);
      }
      static from(values) {
        return super.from(values, build);
      }
    },
  });
}
