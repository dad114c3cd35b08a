// Shared helpers of the package tests: seeded data, byte comparison, and a plain-JS
// model of the quantizers (DESIGN sections 3 and 4) to check the package against.
import assert from 'node:assert/strict';
import { dirname } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

// ---------------------------------------------------------------- data

/** mulberry32: a small seeded PRNG returning floats in [0, 1). */
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** n standard-normal f32 values times `scale`. */
export function normal(n, seed, scale = 1) {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = 1 - r();
    const v = r();
    out[i] = Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v) * scale;
  }
  return out;
}

/**
 * Exact ties of round(w * (1/scale)) for every rule:
 * - kind 'mean': every aligned pair holds one |0.5| and one |1.5| (random signs), so an
 *   even-sized scope has mean |w| = median |w| = 1 and the +-0.5 values are ties of
 *   absmean and median; TWN's threshold 0.7 falls between the two magnitudes;
 * - kind 'max': values in {0, +-1, +-2, +-0.5, +-1.5} with a +-2 in every 32, so every
 *   absmax scope of >= 32 values has d = 2 and the +-1 values are ties.
 */
export function tieData(n, seed, kind = 'mean') {
  const r = rng(seed);
  const out = new Float32Array(n);
  if (kind === 'mean') {
    for (let i = 0; i < n; i += 2) {
      const small = r() < 0.5;
      out[i] = (small ? 0.5 : 1.5) * (r() < 0.5 ? -1 : 1);
      if (i + 1 < n) out[i + 1] = (small ? 1.5 : 0.5) * (r() < 0.5 ? -1 : 1);
    }
  } else {
    const pool = [0, 1, -1, 1, -1, 0.5, -0.5, 1.5, -1.5];
    for (let i = 0; i < n; i++) out[i] = i % 32 === 7 ? (r() < 0.5 ? 2 : -2) : pool[Math.floor(r() * pool.length)];
  }
  return out;
}

/**
 * Int8 ties: (k + 0.5) for random k in -127..126, with one +-127 in every 32 values, so
 * every symmetric scope of >= 32 values has d = 1 and every value is a tie.
 */
export function int8TieData(n, seed) {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    out[i] = i % 32 === 5 ? (r() < 0.5 ? 127 : -127) : Math.floor(r() * 254) - 127 + 0.5;
  }
  return out;
}

/** Decodes base64 little-endian f32 values. */
export function f32FromBase64(s) {
  const b = Buffer.from(s, 'base64');
  return new Float32Array(b.buffer.slice(b.byteOffset, b.byteOffset + b.length));
}

/** Asserts two byte arrays are equal, naming the first differing index. */
export function assertBytesEqual(actual, expected, what = 'bytes') {
  const a = actual instanceof Uint8Array ? actual : new Uint8Array(actual.buffer, actual.byteOffset, actual.byteLength);
  const e = expected instanceof Uint8Array ? expected : new Uint8Array(expected.buffer, expected.byteOffset, expected.byteLength);
  assert.equal(a.length, e.length, `${what}: length ${a.length} != expected ${e.length}`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== e[i]) assert.fail(`${what}: first difference at byte ${i}: ${a[i]} != expected ${e[i]}`);
  }
}

/** Asserts typed arrays are equal value by value (Object.is, so -0 !== 0 and NaN === NaN). */
export function assertArrayEqual(actual, expected, what = 'array') {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != expected ${expected.length}`);
  for (let i = 0; i < actual.length; i++) {
    if (!Object.is(actual[i], expected[i]) && !(actual[i] === 0 && expected[i] === 0)) {
      assert.fail(`${what}: first difference at index ${i}: ${actual[i]} != expected ${expected[i]}`);
    }
  }
}

// ---------------------------------------------------------------- the installed package

/** Directory of the installed ternary-quant package. */
export function packageDir() {
  return dirname(fileURLToPath(import.meta.resolve('ternary-quant')));
}

/** Bytes of the linear memory of one build ('simd' or 'scalar'), through the public API. */
export async function wasmMemoryBytes(variant) {
  const { loadBuild } = await import('ternary-quant');
  return (await loadBuild({ simd: variant === 'simd' })).memoryBytes();
}

// ---------------------------------------------------------------- f16

/** Round half to even of a non-negative float whose fraction is exact. */
function rne(v) {
  const f = Math.floor(v);
  const d = v - f;
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}

/** IEEE half bits of an f32 value, round to nearest even. */
export function f16Bits(x) {
  x = Math.fround(x);
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a < 2 ** -14) return sign | rne(a / 2 ** -24); // subnormal (1024 is the smallest normal)
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  let m = rne(a / 2 ** (e - 10));
  if (m === 2048) {
    m = 1024;
    e++;
  }
  if (e + 15 >= 31) return sign | 0x7c00;
  return sign | ((e + 15) << 10) | (m - 1024);
}

/** The f32 value of IEEE half bits. */
export function f16Value(h) {
  const sign = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1024 + m) * 2 ** (e - 25);
}

// ---------------------------------------------------------------- the quantizer model

const LANES = 16;
const MIN_SCALE = Math.fround(1e-5);

function foldLanes(lanes) {
  for (let step = LANES / 2; step > 0; step >>= 1) for (let i = 0; i < step; i++) lanes[i] += lanes[i + step];
  return lanes[0];
}

/** sum |x| in f64 with element i in lane i % 16, lanes folded pairwise (the spec's order). */
export function absSum(x) {
  const lanes = new Float64Array(LANES);
  for (let i = 0; i < x.length; i++) lanes[i % LANES] += Math.abs(x[i]);
  return foldLanes(lanes);
}

export function absMax(x) {
  let m = 0;
  for (let i = 0; i < x.length; i++) m = Math.max(m, Math.abs(x[i]));
  return m;
}

/** Round half away from zero. */
export function roundAway(v) {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

/** { scale, code(v) } of one scope under a rule. */
export function scopeScale(x, rule) {
  const fr = Math.fround;
  const scaled = (scale, inv) => ({ scale, code: (v) => { const s = fr(v * inv); return (s >= 0.5) - (s <= -0.5); } });
  const zero = scaled(0, 0);
  switch (rule) {
    case 'absmean': {
      const sum = absSum(x);
      if (sum === 0) return zero;
      const g = Math.max(fr(sum / x.length), MIN_SCALE);
      return scaled(g, fr(1 / g));
    }
    case 'absmax': {
      const d = absMax(x);
      return scaled(d, d === 0 ? 0 : fr(1 / d));
    }
    case 'median': {
      if (absMax(x) === 0) return zero;
      const a = Float64Array.from(x, Math.abs).sort();
      const mid = a.length >> 1;
      const med = a.length % 2 ? a[mid] : fr((a[mid - 1] + a[mid]) / 2);
      const g = Math.max(med, MIN_SCALE);
      return scaled(g, fr(1 / g));
    }
    case 'twn': {
      const sum = absSum(x);
      if (sum === 0) return zero;
      const t = fr(0.7 * (sum / x.length));
      const lanes = new Float64Array(LANES);
      let count = 0;
      for (let i = 0; i < x.length; i++) {
        const a = Math.abs(x[i]);
        if (a > t) {
          lanes[i % LANES] += a;
          count++;
        }
      }
      const scale = count === 0 ? 0 : fr(foldLanes(lanes) / count);
      return { scale, code: (v) => (v > t) - (v < -t) };
    }
    case 'optimal': {
      // The values with |x| >= a (a at the end of a run of equal values) maximising
      // S^2 / K, S their exact sum rounded once to f64 (a BigInt of 2^-149 units), K
      // their count; the first strictly best in decreasing order of a wins.
      const a = Float32Array.from(x, Math.abs).sort().reverse();
      const bits = new Uint32Array(a.buffer);
      let [exact, bestScore, bestK, bestSum] = [0n, 0, 0, 0];
      for (let i = 0; i < a.length; i++) {
        const e = bits[i] >>> 23;
        const significand = (bits[i] & 0x7fffff) | (e ? 0x800000 : 0);
        exact += BigInt(significand) << BigInt(Math.max(e, 1) - 1);
        if (i + 1 < a.length && a[i + 1] === a[i]) continue;
        const sum = Number(exact) * 2 ** -149;
        const score = (sum * sum) / (i + 1);
        if (score > bestScore) [bestScore, bestK, bestSum] = [score, i + 1, sum];
      }
      if (bestK === 0) return zero;
      const least = a[bestK - 1];
      return { scale: fr(bestSum / bestK), code: (v) => (Math.abs(v) >= least) * Math.sign(v) };
    }
    default:
      throw new Error(`model: unknown rule ${rule}`);
  }
}

function span(scope, rows, cols, blockSize) {
  return scope === 'tensor' ? rows * cols : scope === 'row' ? cols : blockSize;
}

/**
 * The model of quantizeTernary: { bytes, scales, codes } for a valid combination.
 */
export function modelTernary(data, rows, cols, { layout, rule, scope, blockSize = 256 }) {
  const n = rows * cols;
  const sp = span(scope, rows, cols, blockSize);
  const codes = new Int8Array(n);
  const rawScales = [];
  for (let s = 0; s < n; s += sp) {
    const x = data.subarray(s, s + sp);
    const sc = scopeScale(x, rule);
    rawScales.push(sc.scale);
    for (let i = 0; i < x.length; i++) codes[s + i] = sc.code(x[i]);
  }
  const tq = layout === 'tq2_0' || layout === 'tq1_0';
  const scales = Float32Array.from(rawScales, (v) => (tq ? f16Value(f16Bits(v)) : v));
  let bytes;
  const c = (i) => codes[i] + 1;
  if (layout === 'tq2_0') {
    bytes = new Uint8Array((n / 256) * 66);
    for (let b = 0; b < n / 256; b++) {
      const o = b * 66;
      for (let h = 0; h < 2; h++) {
        for (let m = 0; m < 32; m++) {
          let byte = 0;
          for (let l = 0; l < 4; l++) byte |= c(b * 256 + h * 128 + l * 32 + m) << (2 * l);
          bytes[o + h * 32 + m] = byte;
        }
      }
      const d = f16Bits(rawScales[Math.floor((b * 256) / sp)]);
      bytes[o + 64] = d & 0xff;
      bytes[o + 65] = d >> 8;
    }
  } else if (layout === 'tq1_0') {
    bytes = new Uint8Array((n / 256) * 54);
    const pow3 = [81, 27, 9, 3, 1];
    const enc = (v) => Math.floor((v * 256 + 242) / 243);
    for (let b = 0; b < n / 256; b++) {
      const o = b * 54;
      const base = b * 256;
      for (let m = 0; m < 32; m++) {
        let v = 0;
        for (let k = 0; k < 5; k++) v += c(base + k * 32 + m) * pow3[k];
        bytes[o + m] = enc(v);
      }
      for (let m = 0; m < 16; m++) {
        let v = 0;
        for (let k = 0; k < 5; k++) v += c(base + 160 + k * 16 + m) * pow3[k];
        bytes[o + 32 + m] = enc(v);
      }
      for (let m = 0; m < 4; m++) {
        let v = 0;
        for (let k = 0; k < 4; k++) v += c(base + 240 + k * 4 + m) * pow3[k];
        bytes[o + 48 + m] = enc(v);
      }
      const d = f16Bits(rawScales[Math.floor(base / sp)]);
      bytes[o + 52] = d & 0xff;
      bytes[o + 53] = d >> 8;
    }
  } else if (layout === 'bitnet-hf') {
    const packed = Math.ceil(rows / 4);
    bytes = new Uint8Array(packed * cols);
    for (let r = 0; r < packed; r++) {
      for (let i = 0; i < 4; i++) {
        const row = i * packed + r;
        if (row >= rows) continue;
        for (let k = 0; k < cols; k++) bytes[r * cols + k] |= c(row * cols + k) << (2 * i);
      }
    }
  } else if (layout === 'i2_s') {
    // bitnet.cpp x86: value b*128 + g*32 + p -> byte b*32 + p, bits 6 - 2g; then the f32
    // scale in a 32-byte tail.
    bytes = new Uint8Array(n / 4 + 32);
    for (let i = 0; i < n; i++) {
      const b = Math.floor(i / 128);
      const j = i % 128;
      bytes[b * 32 + (j % 32)] |= c(i) << (6 - 2 * Math.floor(j / 32));
    }
    new DataView(bytes.buffer).setFloat32(n / 4, scales[0], true);
  } else if (layout === 'codes') {
    bytes = new Uint8Array(codes.buffer.slice(0));
  } else {
    throw new Error(`model: unknown layout ${layout}`);
  }
  const dequantized = new Float32Array(n);
  for (let i = 0; i < n; i++) dequantized[i] = codes[i] * scales[Math.floor(i / sp)];
  const byteLength = bytes.length + (tq || layout === 'i2_s' ? 0 : 4 * scales.length);
  return { bytes, scales, codes, dequantized, byteLength };
}

/** The model of quantizeInt8 for the plain layout. */
export function modelInt8Plain(data, rows, cols, { scope = 'row', blockSize = 32, symmetric = true, clip, percentile } = {}) {
  const fr = Math.fround;
  const n = rows * cols;
  const sp = span(scope, rows, cols, blockSize);
  const values = new Int8Array(n);
  const scales = [];
  const zeroPoints = [];
  for (let s = 0; s < n; s += sp) {
    const x = data.subarray(s, s + sp);
    let c = Infinity;
    if (clip !== undefined) c = fr(clip);
    else if (percentile !== undefined) {
      const a = Float64Array.from(x, Math.abs).sort();
      const rank = Math.ceil((fr(percentile) / 100) * a.length);
      c = a[Math.min(Math.max(rank, 1), a.length) - 1];
    }
    if (symmetric) {
      const d = fr(Math.min(absMax(x), c) / 127);
      const id = d === 0 ? 0 : fr(1 / d);
      for (let i = 0; i < x.length; i++) {
        const v = fr(Math.min(Math.max(x[i], -c), c) * id);
        values[s + i] = roundAway(Math.min(Math.max(v, -127), 127));
      }
      scales.push(d);
      zeroPoints.push(0);
    } else {
      let lo = Infinity;
      let hi = -Infinity;
      for (let i = 0; i < x.length; i++) {
        lo = Math.min(lo, x[i]);
        hi = Math.max(hi, x[i]);
      }
      lo = Math.max(Math.min(lo, 0), -c);
      hi = Math.min(Math.max(hi, 0), c);
      const scale = fr((hi - lo) / 255); // the range in f64: hi - lo can pass f32::MAX
      if (scale === 0) {
        scales.push(0);
        zeroPoints.push(0);
        continue;
      }
      const zp = Math.min(Math.max(roundAway(fr(-lo / scale)) - 128, -128), 127);
      for (let i = 0; i < x.length; i++) {
        const v = Math.min(Math.max(fr(Math.min(Math.max(x[i], lo), hi) / scale), -512), 512);
        values[s + i] = Math.min(Math.max(roundAway(v) + zp, -128), 127);
      }
      scales.push(scale);
      zeroPoints.push(zp);
    }
  }
  const scalesF = Float32Array.from(scales);
  const dequantized = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const k = Math.floor(i / sp);
    dequantized[i] = (values[i] - zeroPoints[k]) * scalesF[k];
  }
  const byteLength = n + 4 * scales.length + (symmetric ? 0 : zeroPoints.length);
  return { values, scales: scalesF, zeroPoints: Int32Array.from(zeroPoints), bytes: new Uint8Array(values.buffer), dequantized, byteLength };
}

/** The model of Q8_0 (blocks of 32: f16 d, 32 x i8) and Q8_K (f32 d, 256 x i8, 16 x i16 sums). */
export function modelInt8Blocks(data, layout) {
  const fr = Math.fround;
  const qk = layout === 'q8_0' ? 32 : 256;
  const size = layout === 'q8_0' ? 34 : 292;
  const nb = data.length / qk;
  const bytes = new Uint8Array(nb * size);
  const view = new DataView(bytes.buffer);
  const values = new Int8Array(data.length);
  const scales = new Float32Array(nb);
  for (let b = 0; b < nb; b++) {
    const x = data.subarray(b * qk, (b + 1) * qk);
    const d = fr(absMax(x) / 127);
    const id = d === 0 ? 0 : fr(1 / d);
    for (let i = 0; i < qk; i++) values[b * qk + i] = roundAway(Math.min(Math.max(fr(x[i] * id), -127), 127));
    const o = b * size;
    if (layout === 'q8_0') {
      view.setUint16(o, f16Bits(d), true);
      for (let i = 0; i < 32; i++) view.setInt8(o + 2 + i, values[b * qk + i]);
      scales[b] = f16Value(f16Bits(d));
    } else {
      view.setFloat32(o, d, true);
      for (let i = 0; i < 256; i++) view.setInt8(o + 4 + i, values[b * qk + i]);
      for (let j = 0; j < 16; j++) {
        let s = 0;
        for (let i = 0; i < 16; i++) s += values[b * qk + j * 16 + i];
        view.setInt16(o + 260 + 2 * j, s, true);
      }
      scales[b] = d;
    }
  }
  return { bytes, values, scales };
}

/** Plain-JS f64 y = W x (the exact value the f32 GEMVs approximate). */
export function matVecF64(w, rows, cols, x) {
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let acc = 0;
    for (let k = 0; k < cols; k++) acc += w[r * cols + k] * x[k];
    y[r] = acc;
  }
  return y;
}
