// Types of the ternary-quant package entry.

export type TernaryLayoutName = 'tq2_0' | 'tq1_0' | 'bitnet-hf' | 'i2_s' | 'codes';
export type ScaleRuleName = 'absmean' | 'absmax' | 'median' | 'twn' | 'optimal';
export type ScopeName = 'tensor' | 'row' | 'block';
export type Int8LayoutName = 'plain' | 'q8_0' | 'q8_k';
export type PresetName = 'bitnet' | 'compact' | 'lossless' | 'accurate' | 'best';

export interface InitOptions {
  /** false forces the scalar build; true requires SIMD128. Default: feature-detected. */
  simd?: boolean;
  /**
   * false keeps the SIMD128 build where the relaxed-SIMD one would be chosen; true
   * requires it. Default: used where the engine validates relaxed SIMD and computes its
   * dot product exactly (the lean SIMD build only; model-file builds have no relaxed twin),
   * and not with `wasm` (bytes or a module are taken for the build `simd` names).
   */
  relaxed?: boolean;
  /** Load the build that also reads and converts model files (about twice the size). */
  modelFiles?: boolean;
  /** The .wasm bytes, its URL, or a compiled module, for setups that move the files. */
  wasm?: BufferSource | URL | string | WebAssembly.Module;
}

export interface TernaryOptions {
  /** Start from a preset (default 'bitnet'); the other keys override it. */
  preset?: PresetName;
  layout?: TernaryLayoutName;
  rule?: ScaleRuleName;
  scope?: ScopeName;
  /** Values per scale with scope 'block' (default 256; TQ layouts need 256). */
  blockSize?: number;
}

export interface Int8Options {
  /** Default 'plain'. 'q8_0' and 'q8_k' are symmetric absmax per block of 32 / 256. */
  layout?: Int8LayoutName;
  /** Default 'row' (per token) for 'plain', 'block' for the block layouts. */
  scope?: ScopeName;
  /** Default 32 for 'plain' and 'q8_0', 256 for 'q8_k'. */
  blockSize?: number;
  /** Default true. Asymmetric uses [min(x,0), max(x,0)] / 255 and a zero point. */
  symmetric?: boolean;
  /** Clamp |x| to this bound before scaling. */
  clip?: number;
  /** Clip at this percentile (0 < p <= 100) of |x| within each scope. */
  percentile?: number;
}

export interface ErrorStats {
  mse: number;
  rmse: number;
  maxAbsError: number;
  /** 10 log10(sum x^2 / sum err^2); Infinity when the error is zero. */
  snrDb: number;
  cosine: number;
}

export interface Preset {
  name: PresetName;
  description: string;
  layout: TernaryLayoutName;
  rule: ScaleRuleName;
  scope: ScopeName;
  blockSize?: number;
}

/**
 * f32 values in wasm memory: an input that reaches the kernels without a copy. Fill
 * `view()` (or `set()`) and pass the buffer wherever an f32 input (`F32Input`) goes.
 * A view is valid until the wasm memory grows, which any call into the module may do
 * (growing detaches the view, and writes through a detached view are dropped): take it
 * right before filling, and pass the buffer before any other call. Passing a buffer
 * whose latest view was detached since it was taken throws.
 */
export class F32Buffer {
  /** `length` zeros in the default build's memory (a RangeError when they cannot fit). */
  constructor(length: number);
  /** A buffer holding a copy of `values` (one copy, straight into wasm memory). */
  static from(values: Float32Array): F32Buffer;
  readonly length: number;
  /** A Float32Array over the buffer itself (no copy); see the class. */
  view(): Float32Array;
  /** Copies `values` into the buffer from index `offset` (default 0). */
  set(values: Float32Array, offset?: number): void;
  /** Releases the wasm memory; any later use throws. Idempotent. */
  free(): void;
}

/**
 * An f32 input: a Float32Array (copied into wasm memory for the call) or an F32Buffer.
 * The inputs that are quantized (and the W of matVecF32) are read from the buffer in
 * place; the others (GEMV x, activations, errorStats' arrays) are copied either way.
 */
export type F32Input = Float32Array | F32Buffer;

/** A ternary tensor in wasm memory. Getters and methods return fresh copies. */
export class TernaryTensor {
  private constructor();
  readonly rows: number;
  readonly cols: number;
  readonly layout: TernaryLayoutName;
  readonly scope: ScopeName;
  readonly blockSize: number | undefined;
  /** Exactly the layout's bytes (a copy). */
  readonly bytes: Uint8Array;
  /** One scale per scope, as stored (f16-rounded for TQ layouts; a copy). */
  readonly scales: Float32Array;
  /** Every stored byte, scales included. */
  readonly byteLength: number;
  /** 8 * byteLength / (rows * cols). */
  readonly bitsPerWeight: number;
  /** Codes in {-1, 0, 1}, row-major (a copy). */
  codes(): Int8Array;
  /** q * scale, row-major (a copy). */
  dequantize(): Float32Array;
  /** Releases the wasm memory; any later use throws. Idempotent. */
  free(): void;
}

/** An int8 tensor in wasm memory. Getters and methods return fresh copies. */
export class Int8Tensor {
  private constructor();
  readonly rows: number;
  readonly cols: number;
  readonly layout: Int8LayoutName;
  readonly scope: ScopeName;
  readonly symmetric: boolean;
  readonly values: Int8Array;
  readonly scales: Float32Array;
  readonly zeroPoints: Int32Array;
  /** 'plain': the values; 'q8_0'/'q8_k': the ggml blocks. */
  readonly bytes: Uint8Array;
  readonly byteLength: number;
  dequantize(): Float32Array;
  free(): void;
}

export interface CacheStats {
  entries: number;
  hits: number;
  misses: number;
  bytes: number;
}

export interface EngineConfig extends TernaryOptions {
  activations?: Int8Options;
}

export class QuantizationEngine {
  constructor(config?: EngineConfig);
  /** Cached by a 128-bit hash of the bytes, the shape and the options. */
  quantizeWeights(data: F32Input, rows: number, cols: number): TernaryTensor;
  quantizeActivations(data: F32Input, rows: number, cols: number): Int8Tensor;
  quantizeAndMeasure(data: F32Input, rows: number, cols: number): { tensor: TernaryTensor; stats: ErrorStats };
  cacheStats(): CacheStats;
  clearCache(): void;
  free(): void;
}

export interface TensorReport {
  name: string;
  rows: number;
  cols: number;
  layout: TernaryLayoutName;
  bytesIn: number;
  bytesOut: number;
  bitsPerWeight: number;
  compression: number;
  zeroFraction: number;
  scaleMin: number;
  scaleMax: number;
  stats: ErrorStats;
}

export interface BatchReport {
  tensors: TensorReport[];
  bytesIn: number;
  bytesOut: number;
  compression: number;
  bitsPerWeight: number;
}

export interface NamedInput {
  data: Float32Array;
  rows: number;
  cols: number;
}

export interface SizeEstimate {
  layout: TernaryLayoutName;
  bytes: number;
  f32Bytes: number;
  f16Bytes: number;
  compressionVsF32: number;
  bitsPerWeight: number;
  /** Per tensor: 'ternary', or the fallback for rows the layout cannot store. */
  storedAs: Array<'ternary' | 'q8_0' | 'f16'>;
  /** The same model in each ternary layout (one scale per tensor), Q8_0, F16 and F32, with the fallbacks above. */
  byLayout: { 'tq2_0': number; 'tq1_0': number; 'bitnet-hf': number; 'i2_s': number; q8_0: number; f16: number; f32: number };
}

export type BackendName = 'relaxed-simd' | 'simd128' | 'scalar';
export function init(options?: InitOptions): Promise<{ backend: BackendName; modelFiles: boolean }>;
export function simdSupported(): boolean;
/** Whether the relaxed-SIMD build would load and compute exactly here (probed once). */
export function relaxedSupported(): boolean;
export function backend(): BackendName;
/** Current size of the wasm linear memory in bytes (it grows, never shrinks). */
export function memoryBytes(): number;
export const presets: Readonly<Record<PresetName, Preset>>;
/** The scale rules' names, in the engine's order (empty until init). */
export const rules: ReadonlyArray<ScaleRuleName>;
export function quantizeTernary(data: F32Input, rows: number, cols: number, options?: TernaryOptions): TernaryTensor;
export function quantizeInt8(data: F32Input, rows: number, cols: number, options?: Int8Options): Int8Tensor;
export function errorStats(original: F32Input, reconstructed: F32Input): ErrorStats;
/**
 * y = W x with x quantized to int8 inside (Q8_K for TQ2_0). In the SIMD128 build, the first call on a TQ2_0
 * tensor of 16 rows or more keeps a copy of its rows interleaved by 16 beside it (1.03 times the tensor's
 * bytes, freed with the tensor), which later calls read with a table-lookup kernel; the results are the
 * same, bit for bit, as without it. Where that memory cannot be had, the row kernel is used instead.
 */
export function ternaryMatVec(tensor: TernaryTensor, x: F32Input): Float32Array;
export function matVecF32(w: F32Input, rows: number, cols: number, x: F32Input): Float32Array;
export function quantizeBatch(
  tensors: Map<string, NamedInput> | Record<string, NamedInput>,
  config?: TernaryOptions,
): { tensors: Map<string, TernaryTensor>; report: BatchReport };
export function estimateModelSize(
  shapes: Array<[number, number]> | Record<string, [number, number]> | Map<string, [number, number]>,
  config?: TernaryOptions,
): SizeEstimate;

/** The API bound to one build, loaded beside the default one (for comparisons). */
export interface BuildApi {
  backend(): BackendName;
  memoryBytes(): number;
  quantizeTernary: typeof quantizeTernary;
  quantizeInt8: typeof quantizeInt8;
  errorStats: typeof errorStats;
  ternaryMatVec: typeof ternaryMatVec;
  matVecF32: typeof matVecF32;
  quantizeBatch: typeof quantizeBatch;
  estimateModelSize: typeof estimateModelSize;
  inspectModel: typeof inspectModel;
  parseSafetensorsIndex: typeof parseSafetensorsIndex;
  formats: typeof formats;
  planConversion: typeof planConversion;
  decodeFloats: typeof decodeFloats;
  folderFiles: typeof folderFiles;
  folderWeights: typeof folderWeights;
  ternaryFitWarning: typeof ternaryFitWarning;
  QuantizationEngine: typeof QuantizationEngine;
  /** F32Buffer in this build's memory: pass it only to this build's functions. */
  F32Buffer: typeof F32Buffer;
}
export function loadBuild(options: { simd: boolean; modelFiles?: boolean; relaxed?: boolean }): Promise<BuildApi>;

// ------------------------------------------------------------------ model files
// These need `await init({ modelFiles: true })` (or loadBuild({ simd, modelFiles: true })).

export interface ModelTensorInfo {
  name: string;
  /** 'F32' | 'F16' | 'BF16' | 'U8' | 'Q8_0' | 'TQ1_0' | 'TQ2_0' | ... */
  dtype: string;
  /** Row-major, outermost first (a GGUF `ne` reversed). */
  shape: number[];
  /** Absolute offset in the file. */
  offset: number;
  byteLength: number;
  bitsPerWeight: number;
}

export interface ModelInfo {
  format: 'safetensors' | 'gguf';
  version: number | null;
  fileSize: number;
  headerLength: number;
  dataOffset: number;
  alignment: number | null;
  /** GGUF metadata (arrays of more than 256 values summarised as { type, length }), or
   *  safetensors' `__metadata__`. 64-bit integers beyond 2^53 are decimal strings. */
  metadata: Record<string, unknown>;
  tensors: ModelTensorInfo[];
  totalBytes: number;
}

/** Returned instead of a result when the prefix is too short: read that many bytes. */
export interface NeedBytes {
  needBytes: number;
  input?: number;
}

export interface ConversionOptions {
  output?: 'gguf' | 'bitnet-hf';
  layout?: 'tq2_0' | 'tq1_0' | 'i2_s' | 'bitnet-hf';
  rule?: ScaleRuleName;
  scope?: ScopeName;
  blockSize?: number;
  /** Names to ternarise whatever the default says; forceKeep wins over it. */
  forceTernary?: string[];
  forceKeep?: string[];
  /** How a bitnet-hf input's weight_scale applies. */
  bitnetScale?: 'multiply' | 'divide';
  /** The sharded model's index json, to check each tensor is in its named shard. */
  index?: Uint8Array;
  /**
   * A llama.cpp importance matrix file (GGUF or legacy .dat): tensors it names (GGUF
   * names) weigh each column's error by it under the optimal and absmean rules.
   */
  imatrix?: Uint8Array;
  /**
   * A Hugging Face model folder's files (their bytes): the GGUF then gets llama.cpp's
   * tensor names, model keys and tokenizer, so that llama.cpp runs it.
   */
  model?: ModelFolderFiles;
}

export interface ModelFolderFiles {
  /** general.name (default: none). */
  name?: string;
  /** config.json. */
  config: Uint8Array;
  /** tokenizer.json (BPE). */
  tokenizerJson?: Uint8Array;
  /** tokenizer.model (SentencePiece). */
  tokenizerModel?: Uint8Array;
  tokenizerConfig?: Uint8Array;
  generationConfig?: Uint8Array;
  addedTokens?: Uint8Array;
}

export interface ConversionInput {
  prefix: Uint8Array;
  fileSize: number;
  /** The shard's file name (needed with `index`). */
  name?: string;
}

export interface ConversionOp {
  index: number;
  name: string;
  kind: 'quantize' | 'repack' | 'convert' | 'q8_0' | 'copy' | 'constant';
  inputs: Array<{ file: number; offset: number; length: number }>;
  inputLength: number;
  outputOffset: number;
  outputLength: number;
  inType: string;
  outType: string;
  shape: number[];
  bitsPerWeight: number;
  fallbackReason: string | null;
  scaleName: string | null;
  /** The output is the input's bytes: they may be copied in chunks. */
  copiesBytes: boolean;
  /** Heads of a Q or K projection whose rows are reordered for llama.cpp's RoPE (converted whole). */
  rowOrder: number | null;
  /** The op converts in pieces through ConversionPlan.chunkedOp. */
  chunkable: boolean;
  /** The importance matrix weighs this tensor's columns. */
  importance: boolean;
}

export interface TensorStats {
  name: string;
  shape: number[];
  kind: string;
  inType: string;
  outType: string;
  bytesIn: number;
  bytesOut: number;
  bitsPerWeight: number;
  scaleMin: number | null;
  scaleMax: number | null;
  scaleMean: number | null;
  mse: number | null;
  rmse: number | null;
  maxAbsError: number | null;
  snrDb: number | null;
  cosine: number | null;
  zeroFraction: number | null;
  /** SNR of y = W x against the input's (first 1,024 rows), for a fixed standard Gaussian probe x (matrices only). */
  outputSnrDb: number | null;
}

export interface ConvertedTensor {
  bytes: Uint8Array;
  stats: TensorStats | null;
  ternaryFitDb: number | null;
}

export class ConversionPlan {
  private constructor();
  readonly output: 'gguf' | 'bitnet-hf';
  /** The output's bytes from offset 0 to its data section (a copy). */
  readonly header: Uint8Array;
  /** Total output bytes; gaps between ops are zero bytes. */
  readonly outputSize: number;
  readonly opCount: number;
  op(i: number): ConversionOp;
  ops(): ConversionOp[];
  /** Converts op i from its input ranges, concatenated. `bytes` is exactly outputLength. */
  /**
   * `ternaryFitDb`: for a tensor ternarised from floats, the SNR of its values' best
   * ternary fit (first 4,096 values): +Infinity when they are ternary already, about
   * 4 to 8 dB when they were never trained ternary; null for other ops.
   */
  convertTensor(i: number, bytes: Uint8Array, measure?: boolean): ConvertedTensor;
  /**
   * A view of the plan's input buffer in wasm memory, exactly op i's input length. Fill
   * it at once, with no other call into the module until it is filled (memory growth
   * detaches it), then call convertBuffered(i). A new view per op.
   */
  inputBuffer(i: number): Uint8Array;
  /** Converts op i from the filled inputBuffer(i) view: the same result as convertTensor. */
  convertBuffered(i: number, measure?: boolean): ConvertedTensor;
  /** The model folder says its weights were trained ternary (BitNet): a low ternaryFitDb is expected there. */
  readonly trainedTernary: boolean;
  /** Op i converted a piece at a time; only for ops whose `chunkable` is true. */
  chunkedOp(i: number, measure?: boolean): ChunkedOp;
  free(): void;
}

/**
 * One op converted a piece at a time, so that memory holds a piece, not the tensor:
 * give it the op's input in order, in pieces of chunkBytes(max) bytes (the last one
 * what remains); write each output after the previous one from the op's outputOffset;
 * then finish() gives the statistics the whole op would (and frees the object).
 */
export class ChunkedOp {
  private constructor();
  /** Input bytes of a piece of at most maxBytes (at least the smallest piece). */
  chunkBytes(maxBytes: number): number;
  /** The output bytes of the next piece of input. */
  convert(bytes: Uint8Array): Uint8Array;
  /**
   * A view of the op's own input buffer in wasm memory (`length` bytes) to read the next
   * piece into; detached by any call that grows wasm memory, so fill it right away.
   */
  inputBuffer(length: number): Uint8Array;
  /** The output bytes of the piece that inputBuffer() returned, now filled. */
  convertBuffered(): Uint8Array;
  /** The op's ternaryFitDb (see ConversionPlan.convertTensor) once its first piece is converted, else null. */
  readonly ternaryFitDb: number | null;
  /** The op's statistics (null unless measuring), once all its input was given. */
  finish(): TensorStats | null;
  free(): void;
}

/** One storage format of the engine's format table. */
export interface FormatInfo {
  /** The name in options: 'tq2_0', 'q8_0', 'f16', ... */
  name: string;
  /** The name files and reports give the stored type: 'TQ2_0', 'F16', 'bitnet-hf', ... */
  typeName: string;
  kind: 'ternary' | 'int8' | 'float';
  /** Values per block along a row (rows must be a multiple of it). */
  blockValues: number;
  /** Bytes per block, in-block scales included. */
  blockBytes: number;
  /** Bytes stored once per tensor after the blocks (I2_S's scale tail). */
  tensorTailBytes: number;
  /** Bytes of f32 scale stored beside the data per scope. */
  sideScaleBytes: number;
  ggmlType: number | null;
  /** llama.cpp's general.file_type for a model mostly in this format. */
  fileType: number | null;
  /** The outputs the converter writes this format into. */
  outputs: ReadonlyArray<'gguf' | 'bitnet-hf'>;
}
/** The engine's format table (needs the model-file build). */
export function formats(): ReadonlyArray<FormatInfo>;
export function inspectModel(prefix: Uint8Array, fileSize: number): ModelInfo | NeedBytes;
export function parseSafetensorsIndex(json: Uint8Array): { files: string[]; weightMap: Record<string, string> };
export function planConversion(inputs: ConversionInput[], options?: ConversionOptions): ConversionPlan | NeedBytes;
/**
 * The files of a Hugging Face model folder that planConversion's `model` option takes,
 * by key (config.json, required, first); the weights are model.safetensors or the
 * shards of model.safetensors.index.json. Needs the model-file build.
 */
/**
 * The one-line warning for a conversion whose ternarised tensors fit ternary values
 * badly (their ternaryFitDb figures; the median under 20 dB), or undefined.
 */
export function ternaryFitWarning(fits: number[]): string | undefined;
export function folderFiles(): Array<{ key: keyof ModelFolderFiles; file: string; required: boolean }>;
/**
 * Which file of a model folder holds its weights, from the names of its files:
 * model.safetensors.index.json when there is one, else model.safetensors (needs the
 * model-file build; throws when neither is there).
 */
export function folderWeights(names: string[]): string;
/** The values of F32, F16 or BF16 little-endian bytes (needs the model-file build). */
export function decodeFloats(dtype: 'F32' | 'F16' | 'BF16', bytes: Uint8Array): Float32Array;
