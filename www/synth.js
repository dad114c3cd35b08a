// Synthetic weights for the demo, reproducible anywhere from (distribution, rows, cols,
// seed, dof). The algorithm, exactly (every step is an IEEE double operation, so any
// JavaScript engine gives the same bits):
//
//   uniform:  mulberry32 seeded with seed >>> 0; each call
//               a = (a + 0x6d2b79f5) >>> 0; t = a;
//               t = imul(t ^ (t >>> 15), t | 1);
//               t ^= t + imul(t ^ (t >>> 7), t | 61);
//               return ((t ^ (t >>> 14)) >>> 0) / 2^32          (in [0, 1))
//   gaussian: u1 = uniform(), u2 = uniform(); sqrt(-2 ln(1 - u1)) * cos(2 pi u2)
//   laplace:  p = uniform() + 2^-33 (in (0, 1));
//             p < 0.5 ? ln(2p) / sqrt(2) : -ln(2 - 2p) / sqrt(2)    (unit variance)
//   student-t with dof degrees of freedom (an integer 1..30): z = gaussian(), then
//             v = sum of dof squared gaussians (drawn after z, in order);
//             z / sqrt(v / dof)
//   ternary:  floor(3 * uniform()) - 1, in {-1, 0, 1}
//
// Values are drawn row-major, one after the other from one generator. Each is multiplied
// by SCALE[distribution] (0.02, the usual spread of transformer weights; 1/64 for
// ternary, a power of two so that an f16 scale holds it exactly) and stored as f32.
// pkg-tests/demo.test.mjs re-implements this to check the page's numbers.

export const DISTRIBUTIONS = {
  gaussian: 'Gaussian',
  laplace: 'Laplace',
  'student-t': 'Student-t',
  ternary: 'Already ternary',
};

export const SCALE = { gaussian: 0.02, laplace: 0.02, 'student-t': 0.02, ternary: 1 / 64 };

/** Largest synthetic matrix: 2^24 values (64 MiB of f32). */
export const MAX_VALUES = 2 ** 24;

/** mulberry32: uniform floats in [0, 1). */
export function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Checks a spec and returns a message for the first problem, or null. */
export function checkSpec({ distribution, rows, cols, seed, dof }) {
  if (!(distribution in DISTRIBUTIONS)) return `unknown distribution '${distribution}'`;
  for (const [name, v] of [['rows', rows], ['columns', cols]]) {
    if (!Number.isInteger(v) || v < 1) return `${name} must be a whole number of at least 1`;
  }
  if (rows * cols > MAX_VALUES) return `rows x columns is ${rows * cols}; the demo draws at most ${MAX_VALUES} values`;
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) return 'the seed must be a whole number in 0..4294967295';
  if (distribution === 'student-t' && (!Number.isInteger(dof) || dof < 1 || dof > 30)) {
    return 'degrees of freedom must be a whole number in 1..30';
  }
  return null;
}

/** The rows x cols f32 matrix (row-major) of a spec; see the header for the algorithm. */
export function generate({ distribution, rows, cols, seed, dof = 3 }) {
  const problem = checkSpec({ distribution, rows, cols, seed, dof });
  if (problem) throw new RangeError(problem);
  const u = mulberry32(seed);
  const gaussian = () => {
    const u1 = u();
    const u2 = u();
    return Math.sqrt(-2 * Math.log(1 - u1)) * Math.cos(2 * Math.PI * u2);
  };
  const draw = {
    gaussian,
    laplace: () => {
      const p = u() + 2 ** -33;
      return p < 0.5 ? Math.log(2 * p) / Math.SQRT2 : -Math.log(2 - 2 * p) / Math.SQRT2;
    },
    'student-t': () => {
      const z = gaussian();
      let v = 0;
      for (let k = 0; k < dof; k++) {
        const g = gaussian();
        v += g * g;
      }
      return z / Math.sqrt(v / dof);
    },
    ternary: () => Math.floor(3 * u()) - 1,
  }[distribution];
  const scale = SCALE[distribution];
  const out = new Float32Array(rows * cols);
  for (let i = 0; i < out.length; i++) out[i] = draw() * scale;
  return out;
}

/** FNV-1a (32-bit) of the bytes under a typed array, as 8 hex digits. */
export function fnv1a(view) {
  const b = new Uint8Array(view.buffer, view.byteOffset, view.byteLength);
  let h = 0x811c9dc5;
  for (let i = 0; i < b.length; i++) {
    h ^= b[i];
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0).toString(16).padStart(8, '0');
}
