// Streaming model conversion for Node: reads model headers with growing prefixes, plans
// the conversion in wasm, then moves the bytes tensor by tensor (and pass-through
// tensors in chunks) with positional reads and writes, so that memory stays about one
// tensor and files of any size (offsets are exact up to 2^53) work.
//
// The output is written to OUT.partial, which is synced and renamed to OUT at the end;
// the caller removes OUT.partial on any failure (see removePartial).
import { open, readdir, readFile, rename, stat } from 'node:fs/promises';
import { unlinkSync } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

/** Header reads start with this many bytes and follow the reader's `needBytes`. */
export const FIRST_PREFIX = 2 ** 20;
/** Pass-through tensors are copied in chunks of this size. */
export const COPY_CHUNK = 16 * 2 ** 20;
/** At most this many output bytes wait to be written behind the conversion. */
const WRITE_BEHIND_BYTES = 8 * 2 ** 20;
/** The largest single read or write request (Node's limit is 2 GiB - 1). */
const IO_MAX = 2 ** 30;

/** The ternary layouts each output takes, default first, from the engine's format table. */
export function layoutsByOutput(formats) {
  const byOutput = {};
  for (const f of formats) {
    if (f.kind !== 'ternary') continue;
    for (const output of f.outputs) (byOutput[output] ??= []).push(f.name);
  }
  return byOutput;
}
export const SCOPES = ['tensor', 'row', 'block'];

/** An error whose message is the whole reason (no stack needed). */
export class UserError extends Error {}

function errnoMessage(e, path) {
  switch (e?.code) {
    case 'ENOENT':
      return `${path}: no such file`;
    case 'EACCES':
    case 'EPERM':
      return `${path}: permission denied`;
    case 'EISDIR':
      return `${path}: is a directory`;
    case 'ENOSPC':
      return `${path}: no space left on the device`;
    default:
      return `${path}: ${e?.message ?? e}`;
  }
}

/** Reads exactly `length` bytes at `position` into `buffer` at `offset`. */
export async function readFully(fh, buffer, offset, length, position, path = 'input') {
  let done = 0;
  while (done < length) {
    const want = Math.min(length - done, IO_MAX);
    const { bytesRead } = await fh.read(buffer, offset + done, want, position + done);
    if (bytesRead === 0) {
      throw new UserError(`${path}: unexpected end of file at byte ${position + done} (the file is shorter than its header says)`);
    }
    done += bytesRead;
  }
}

/** Writes all of `buffer[offset, offset + length)` at `position`. */
export async function writeFully(fh, buffer, offset, length, position) {
  let done = 0;
  while (done < length) {
    const want = Math.min(length - done, IO_MAX);
    const { bytesWritten } = await fh.write(buffer, offset + done, want, position + done);
    done += bytesWritten;
  }
}

/** Opens a model file read-only: { path, name, fh, size }. */
export async function openInput(path, name = basename(path)) {
  let fh;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    throw new UserError(errnoMessage(e, path));
  }
  const st = await fh.stat();
  if (!st.isFile()) {
    await fh.close();
    throw new UserError(`${path}: not a regular file`);
  }
  return { path, name, fh, size: st.size, dev: st.dev, ino: st.ino };
}

/**
 * Opens a model: a .safetensors or .gguf file, or a sharded `*.safetensors.index.json`
 * (every shard it names, in the index's order). Returns { inputs, index } where
 * `index` holds the index JSON bytes (or null).
 */
/** Reads a file of a model folder, or null when the folder has none. */
async function readOptional(dir, file) {
  try {
    const bytes = await readFile(resolve(dir, file));
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  } catch (e) {
    if (e?.code === 'ENOENT') return null;
    throw new UserError(errnoMessage(e, resolve(dir, file)));
  }
}

/**
 * Opens a Hugging Face model folder: its weights (model.safetensors, or the shards of
 * model.safetensors.index.json) and the bytes of config.json and the tokenizer files,
 * for planConversion's `model` option.
 */
async function openFolder(api, dir) {
  const model = { name: basename(resolve(dir)) };
  for (const { key, file, required } of api.folderFiles()) {
    const bytes = await readOptional(dir, file);
    if (bytes !== null) model[key] = bytes;
    else if (required) throw new UserError(`${resolve(dir, file)}: no such file; a model folder needs ${file}`);
  }
  let weights;
  try {
    weights = api.folderWeights(await readdir(dir));
  } catch (e) {
    throw new UserError(`${resolve(dir)}: ${e.message}`);
  }
  return { ...(await openModel(api, resolve(dir, weights))), folder: model };
}

export async function openModel(api, path) {
  if ((await stat(path).catch(() => null))?.isDirectory()) return openFolder(api, path);
  if (path.endsWith('.json')) {
    let json;
    try {
      json = await readFile(path);
    } catch (e) {
      throw new UserError(errnoMessage(e, path));
    }
    const bytes = new Uint8Array(json.buffer, json.byteOffset, json.byteLength);
    let index;
    try {
      index = api.parseSafetensorsIndex(bytes);
    } catch (e) {
      throw new UserError(`${path}: ${e.message}`);
    }
    const inputs = [];
    try {
      for (const file of index.files) inputs.push(await openInput(resolve(dirname(path), file), file));
    } catch (e) {
      await closeInputs(inputs);
      throw e;
    }
    return { inputs, index: bytes, indexInfo: index, folder: null };
  }
  return { inputs: [await openInput(path)], index: null, indexInfo: null, folder: null };
}

export async function closeInputs(inputs) {
  for (const input of inputs) await input.fh.close().catch(() => {});
}

/** Reads the first `length` bytes of an input (at most its size). */
async function readPrefix(input, length) {
  const n = Math.min(length, input.size);
  const buffer = new Uint8Array(n);
  await readFully(input.fh, buffer, 0, n, 0, input.path);
  return buffer;
}

/** A prefix of `needed` bytes, or an error when the file cannot hold that many. */
async function growPrefix(input, prefix, needed) {
  if (!(needed > prefix.length) || prefix.length >= input.size) {
    throw new UserError(`${input.path}: the header needs ${needed} bytes but the file has ${input.size}`);
  }
  return readPrefix(input, Math.max(needed, Math.min(prefix.length * 2, input.size)));
}

/**
 * Reads an input's header: { prefix, info } where `info` is inspectModel's description
 * and `prefix` holds the whole header.
 */
export async function readHeader(api, input) {
  let prefix = await readPrefix(input, FIRST_PREFIX);
  for (;;) {
    let info;
    try {
      info = api.inspectModel(prefix, input.size);
    } catch (e) {
      throw new UserError(`${input.path}: ${e.message}`);
    }
    // Keep only the header (the first read may hold up to a MiB of tensor data).
    if (info.needBytes === undefined) return { prefix: prefix.slice(0, Math.min(prefix.length, info.dataOffset)), info };
    prefix = await growPrefix(input, prefix, info.needBytes);
  }
}

/** Plans a conversion; follows `needBytes` (which readHeader normally makes unnecessary). */
export async function makePlan(api, inputs, prefixes, options) {
  for (;;) {
    const plan = api.planConversion(
      inputs.map((input, i) => ({ prefix: prefixes[i], fileSize: input.size, name: input.name })),
      options,
    );
    if (plan.needBytes === undefined) return plan;
    const i = plan.input;
    prefixes[i] = await growPrefix(inputs[i], prefixes[i], plan.needBytes);
  }
}

/**
 * The tensor names selected by `--include` / `--exclude` regexes (arrays of RegExp):
 * { forceTernary, forceKeep } name lists for planConversion.
 */
export function selectNames(names, include, exclude) {
  const forceTernary = include.length ? names.filter((n) => include.some((re) => re.test(n))) : [];
  const forceKeep = exclude.length ? names.filter((n) => exclude.some((re) => re.test(n))) : [];
  return { forceTernary, forceKeep };
}

// ------------------------------------------------------------------ running ops

const ZEROS = Buffer.alloc(COPY_CHUNK);

/**
 * Float conversions (F32/F16/BF16 -> F16/F32) larger than this run in chunks of it.
 * Small chunks keep memory low, and let the engine's optimizing compiler take over the
 * conversion loop after a few calls (a first long call runs on baseline code).
 */
export const CONVERT_CHUNK = 2 * 2 ** 20;
/** What a report row says of an op before any figure: the same in the CLI and here. */
export function opReportFields(op) {
  return {
    name: op.name,
    shape: op.shape,
    kind: op.kind,
    inType: op.inType,
    outType: op.outType,
    bytesIn: op.inputLength,
    bytesOut: op.outputLength,
    bitsPerWeight: op.bitsPerWeight,
  };
}

/**
 * Runs the ops of one plan: reads each op's input ranges, converts them in wasm, and
 * writes the bytes at the op's output offset. One buffer, sized for the largest input,
 * is reused for every tensor. Pass-through tensors are copied in chunks; all-zero
 * chunks are skipped, since the output file starts as zeros (holes stay holes). Other
 * large ops that the engine converts in pieces (float conversions, Q8_0, ternary ops
 * with row or block scales) run in chunks too, through the plan's chunkedOp.
 */
export class OpRunner {
  /**
   * `writeBehind`: outputs that are fresh copies are written while the next input is read
   * and converted (at most WRITE_BEHIND_BYTES pending); call flush() before syncing.
   */
  constructor(plan, ops, inputs, out, { measure = false, onBytes = () => {}, writeBehind = false } = {}) {
    this.plan = plan;
    this.ops = ops;
    this.inputs = inputs;
    this.out = out;
    this.measure = measure;
    this.onBytes = onBytes;
    this.output = plan.output;
    this.buffer = null;
    this.writeBehind = writeBehind;
    this.pendingWrites = new Set();
    this.pendingBytes = 0;
    this.writeError = null;
  }

  /**
   * Writes `bytes` (a buffer nothing else reuses) at `position`: now, or behind the next
   * reads and conversions. A failed write is thrown by a later write() or by flush().
   */
  async write(bytes, position) {
    if (!this.writeBehind) return writeFully(this.out, bytes, 0, bytes.length, position);
    while (this.pendingWrites.size > 0 && this.pendingBytes + bytes.length > WRITE_BEHIND_BYTES) {
      await Promise.race(this.pendingWrites);
    }
    if (this.writeError) throw this.writeError;
    // The entry never rejects (the error is kept), so no rejection goes unhandled.
    const entry = writeFully(this.out, bytes, 0, bytes.length, position)
      .catch((e) => {
        this.writeError ??= e;
      })
      .finally(() => {
        this.pendingWrites.delete(entry);
        this.pendingBytes -= bytes.length;
      });
    this.pendingWrites.add(entry);
    this.pendingBytes += bytes.length;
  }

  /** Waits for every pending write; throws the first that failed. */
  async flush() {
    while (this.pendingWrites.size > 0) await Promise.all(this.pendingWrites);
    if (this.writeError) throw this.writeError;
  }

  /** Whether op runs in chunks: one the engine converts in pieces, larger than CONVERT_CHUNK. */
  chunked(op) {
    return op.chunkable && !op.copiesBytes && op.inputLength > CONVERT_CHUNK;
  }

  /** Whether op reads its input straight into the plan's wasm input buffer. */
  buffered(op) {
    return !op.copiesBytes && !this.chunked(op) && typeof this.plan.inputBuffer === 'function';
  }

  bufferOf(length) {
    if (!this.buffer || this.buffer.length < length) {
      // The largest read into this buffer of any op this runner may see, so that it is
      // allocated once (buffered ops read into wasm memory instead).
      let max = length;
      for (const op of this.ops) {
        if (op.copiesBytes) max = Math.max(max, Math.min(op.inputLength, COPY_CHUNK));
        else if (!this.buffered(op)) max = Math.max(max, op.inputLength);
      }
      this.buffer = Buffer.allocUnsafeSlow(max);
    }
    return this.buffer;
  }

  async copy(op) {
    const input = this.inputs[op.inputs[0].file];
    const { offset, length } = op.inputs[0];
    const buffer = this.bufferOf(Math.min(length, COPY_CHUNK));
    for (let done = 0; done < length; ) {
      const n = Math.min(COPY_CHUNK, length - done);
      await readFully(input.fh, buffer, 0, n, offset + done, input.path);
      if (!buffer.subarray(0, n).equals(ZEROS.subarray(0, n))) {
        await writeFully(this.out, buffer, 0, n, op.outputOffset + done);
      }
      done += n;
      this.onBytes(n);
    }
  }

  /** Converts op i piece by piece (see chunked): { stats (or null), fit (ternaryFitDb or null) }. */
  async convertChunked(i, op) {
    const input = this.inputs[op.inputs[0].file];
    let chunked;
    try {
      chunked = this.plan.chunkedOp(i, this.measure);
    } catch (e) {
      throw new UserError(e.message);
    }
    try {
      const piece = chunked.chunkBytes(CONVERT_CHUNK);
      let written = 0;
      for (let done = 0; done < op.inputLength; ) {
        const n = Math.min(piece, op.inputLength - done);
        // Each piece is read straight into the op's input buffer in wasm memory; nothing
        // calls into the module between getting the view and converting.
        const view = chunked.inputBuffer(n);
        await readFully(input.fh, view, 0, n, op.inputs[0].offset + done, input.path);
        if (view.byteLength !== n) throw new Error('wasm memory changed while the input was read');
        let out;
        try {
          out = chunked.convertBuffered();
        } catch (e) {
          throw new UserError(e.message);
        }
        await this.write(out, op.outputOffset + written);
        written += out.length;
        done += n;
        this.onBytes(n);
      }
      const finishing = chunked;
      chunked = null;
      const fit = finishing.ternaryFitDb ?? null;
      return { stats: finishing.finish(), fit };
    } finally {
      chunked?.free();
    }
  }

  /**
   * Runs op `i`: { index, ms, stats, fit } (stats null unless measuring or not
   * applicable; fit the op's ternaryFitDb, null unless ternarised from floats).
   */
  async run(i) {
    const op = this.ops[i];
    const start = performance.now();
    let stats = null;
    let fit = null;
    if (op.copiesBytes && op.inputs.length === 1) {
      await this.copy(op);
    } else if (this.chunked(op)) {
      ({ stats, fit } = await this.convertChunked(i, op));
    } else {
      let result;
      try {
        result = this.buffered(op) ? await this.convertBuffered(i, op) : await this.convertCopied(i, op);
      } catch (e) {
        if (e instanceof UserError) throw e;
        throw new UserError(e.message.includes(op.name) ? e.message : `tensor '${op.name}': ${e.message}`);
      }
      await this.write(result.bytes, op.outputOffset);
      stats = result.stats;
      fit = result.ternaryFitDb ?? null;
      this.onBytes(op.inputLength);
    }
    return { index: i, ms: performance.now() - start, stats, fit };
  }

  /** Reads op i's input ranges into a JS buffer, and converts a copy of them in wasm. */
  async convertCopied(i, op) {
    const buffer = this.bufferOf(op.inputLength);
    let at = 0;
    for (const range of op.inputs) {
      const input = this.inputs[range.file];
      await readFully(input.fh, buffer, at, range.length, range.offset, input.path);
      at += range.length;
    }
    return this.plan.convertTensor(i, buffer.subarray(0, at), this.measure);
  }

  /**
   * Reads op i's input ranges straight into the plan's input buffer in wasm memory, and
   * converts them there. Nothing calls into this wasm instance between getting the view
   * and converting (a call could grow the memory, which detaches the view).
   */
  async convertBuffered(i, op) {
    const view = this.plan.inputBuffer(i);
    let at = 0;
    for (const range of op.inputs) {
      const input = this.inputs[range.file];
      await readFully(input.fh, view, at, range.length, range.offset, input.path);
      at += range.length;
    }
    if (view.byteLength !== at) throw new Error('wasm memory changed while the input was read');
    return this.plan.convertBuffered(i, this.measure);
  }
}

// ------------------------------------------------------------------ output file

/**
 * Creates OUT.partial (truncating a leftover one), sized to the plan's output (zeros),
 * with the header at offset 0. Returns the open FileHandle.
 */
export async function createPartial(partialPath, plan) {
  let fh;
  try {
    fh = await open(partialPath, 'w+');
  } catch (e) {
    if (e?.code === 'ENOENT') throw new UserError(`${dirname(resolve(partialPath))}: no such directory`);
    throw new UserError(errnoMessage(e, partialPath));
  }
  await fh.truncate(plan.outputSize);
  const header = plan.header;
  await writeFully(fh, header, 0, header.length, 0);
  return fh;
}

/** Syncs and closes OUT.partial, renames it to OUT, and syncs the directory. */
export async function finishPartial(fh, partialPath, outPath) {
  await fh.sync();
  await fh.close();
  await rename(partialPath, outPath);
  try {
    const dir = await open(dirname(resolve(outPath)), 'r');
    await dir.sync().catch(() => {});
    await dir.close();
  } catch {
    // Directory sync is best effort (not every file system allows it).
  }
}

/** Removes OUT.partial if it is there; synchronous, so that signal handlers can use it. */
export function removePartial(partialPath) {
  try {
    unlinkSync(partialPath);
  } catch {
    // Already gone, or never made.
  }
}

/** Whether `path` names the same file as one of `inputs`. */
export async function sameFileAsInput(path, inputs) {
  try {
    const st = await stat(path);
    return inputs.some((input) => input.dev === st.dev && input.ino === st.ino);
  } catch {
    return false;
  }
}
