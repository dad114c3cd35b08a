#!/usr/bin/env python3
"""Writes the oracle vectors that tests/oracle.rs checks the crate against.

    python tests/oracle/gen_vectors.py OUT_DIR

The references:
* TQ2_0, TQ1_0 and Q8_0: gguf-py (PyPI `gguf`), `gguf.quants.quantize` and
  `gguf.quants.dequantize`, which are byte-exact with ggml's reference quantizers;
* bitnet-hf: the numpy port of transformers' `pack_weights`/`unpack_weights` in
  bitnet_hf.py next to this file.

Everything is deterministic: every case draws from its own fixed seed.

Output (all binary files are raw little-endian, row-major):
* `manifest.txt`, one record per line, `#` starts a comment:
    quant  NAME ROWS COLS FMT[,FMT...]
    bitnet NAME OUT IN SCALE_BITS     (SCALE_BITS: the f32 scale g as 8 hex digits)
* for `quant` records: NAME.in.f32 (the input), and for each FMT:
  NAME.FMT.bin (gguf-py's bytes) and NAME.FMT.deq.f32 (gguf-py's dequantized values);
* for `bitnet` records: NAME.codes.i8 (codes [OUT, IN]), NAME.packed.u8 (pack_weights,
  [ceil(OUT/4), IN]) and NAME.unpacked.i8 (unpack_weights(packed)[:OUT]).

A case lists only the formats whose reference is defined on it: gguf-py computes
`round(x * (1/d))` and casts to int8, which is undefined once 1/d overflows (a Q8_0
block whose max |x| is below ~3.7e-37, a TQ block whose max |x| is below ~2.9e-39).
The generator checks that condition for every case and format it writes, and fails
rather than write a vector whose reference is undefined.
"""

from __future__ import annotations

import os
import sys
import warnings
from importlib import metadata

import numpy as np
from gguf import GGMLQuantizationType
from gguf.quants import dequantize, quantize

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bitnet_hf  # noqa: E402  (the numpy port next to this file)

F32 = np.float32
QK_K = 256
QK8_0 = 32
TQ = ("TQ2_0", "TQ1_0")
ALL = ("TQ2_0", "TQ1_0", "Q8_0")
Q8 = ("Q8_0",)
QTYPE = {
    "TQ2_0": GGMLQuantizationType.TQ2_0,
    "TQ1_0": GGMLQuantizationType.TQ1_0,
    "Q8_0": GGMLQuantizationType.Q8_0,
}
BLOCK = {"TQ2_0": QK_K, "TQ1_0": QK_K, "Q8_0": QK8_0}
# Smallest positive normal f32 (values below it are denormals).
F32_TINY = np.finfo(np.float32).tiny


def rng_for(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def f32(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float32)


def nextafter(x, toward) -> np.float32:
    return np.nextafter(F32(x), F32(toward), dtype=np.float32)


# ---------------------------------------------------------------------------------------
# What gguf-py computes before its int8 cast, to know where the reference is defined and
# to count the ties that a case really contains.


def scaled_products(x: np.ndarray, fmt: str) -> np.ndarray:
    """x * id per value, in f32, exactly as gguf-py's quantize_blocks computes it."""
    blocks = f32(x).reshape(-1, BLOCK[fmt])
    d = np.abs(blocks).max(axis=-1, keepdims=True)
    if fmt == "Q8_0":
        d = d / F32(127)
    with np.errstate(divide="ignore", over="ignore"):
        inv = np.where(d == 0, F32(0), F32(1) / d).astype(np.float32)
    with np.errstate(invalid="ignore", over="ignore"):
        return (blocks * inv).astype(np.float32)


def reference_defined(x: np.ndarray, fmt: str) -> bool:
    return bool(np.isfinite(scaled_products(x, fmt)).all())


def count_ties(x: np.ndarray, fmt: str) -> int:
    """Values whose scaled product is exactly k + 0.5 (where round-half rules differ)."""
    s = np.abs(scaled_products(x, fmt)).astype(np.float64)
    return int(np.count_nonzero(s - np.floor(s) == 0.5))


# ---------------------------------------------------------------------------------------
# Data makers. Each returns an f32 array of shape (rows, cols).


def normal(seed, rows, cols, sigma=1.0):
    return f32(rng_for(seed).normal(0.0, sigma, size=(rows, cols)))


def uniform(seed, rows, cols, lo=-1.0, hi=1.0):
    return f32(rng_for(seed).uniform(lo, hi, size=(rows, cols)))


def student_t(seed, rows, cols, df):
    return f32(rng_for(seed).standard_t(df, size=(rows, cols)))


def cauchy(seed, rows, cols):
    return f32(rng_for(seed).standard_cauchy(size=(rows, cols)))


def ternary(seed, rows, cols, g, p_zero=1 / 3, per_block=None):
    """g * q with q in {-1, 0, 1}; with per_block, every block of that size has its own g."""
    rng = rng_for(seed)
    q = rng.choice(np.array([-1, 0, 1], dtype=np.float32), size=(rows, cols), p=[(1 - p_zero) / 2, p_zero, (1 - p_zero) / 2])
    if per_block is None:
        return f32(q * F32(g))
    gs = f32(np.exp(rng.uniform(np.log(1e-4), np.log(1e4), size=(rows * cols // per_block, 1))))
    return f32((q.reshape(-1, per_block) * gs).reshape(rows, cols))


def tq_ties(seed, rows, cols, power_of_two):
    """Blocks of 256 holding x = +-0.5 * amax (exact ties when 0.5*amax*(1/amax) == 0.5 in
    f32, always so for a power-of-two amax), their f32 neighbours, and filler."""
    rng = rng_for(seed)
    x = np.empty((rows * cols // QK_K, QK_K), dtype=np.float32)
    for b in range(x.shape[0]):
        if power_of_two:
            amax = F32(2.0 ** int(rng.integers(-20, 21)))
        else:
            amax = F32(rng.uniform(0.1, 100.0))
        half = F32(amax * F32(0.5))
        sign = rng.choice(np.array([-1, 1], dtype=np.float32), size=QK_K)
        kind = rng.integers(0, 5, size=QK_K)
        vals = np.where(kind == 0, half, F32(0))
        vals = np.where(kind == 1, nextafter(half, 0), vals)
        vals = np.where(kind == 2, nextafter(half, np.inf), vals)
        vals = np.where(kind >= 3, f32(rng.uniform(0, amax, size=QK_K)), vals)
        vals = f32(vals * sign)
        vals[int(rng.integers(0, QK_K))] = amax * F32(rng.choice([-1, 1]))
        x[b] = vals
    return x.reshape(rows, cols)


def q8_tie_value(k: int, d: np.float32, inv: np.float32, amax: np.float32):
    """An f32 x with |x| <= amax and x * inv == k + 0.5 exactly in f32, or None."""
    target = F32(k + 0.5)
    x0 = F32(np.float64(k + 0.5) * np.float64(d))
    cand = x0
    for _ in range(4):
        cand = nextafter(cand, 0)
    for _ in range(9):
        if cand <= amax and F32(cand * inv) == target:
            return cand
        cand = nextafter(cand, np.inf)
    return None


def q8_ties(seed, rows, cols):
    """Blocks of 32 built from x = (k + 0.5) * d, each checked to give a product of exactly
    k + 0.5 with gguf-py's id = 1/d (d = amax/127), and their f32 neighbours."""
    rng = rng_for(seed)
    x = np.empty((rows * cols // QK8_0, QK8_0), dtype=np.float32)
    for b in range(x.shape[0]):
        amax = F32(np.exp(rng.uniform(np.log(1e-3), np.log(1e3))))
        d = F32(amax / F32(127))
        inv = F32(F32(1) / d)
        vals = np.zeros(QK8_0, dtype=np.float32)
        for i in range(QK8_0):
            v = None
            for _ in range(20):
                v = q8_tie_value(int(rng.integers(0, 127)), d, inv, amax)
                if v is not None:
                    break
            if v is None:
                v = F32(rng.uniform(0, amax))
            r = rng.integers(0, 6)
            if r == 0:
                v = nextafter(v, 0)
            elif r == 1:
                v = nextafter(v, np.inf)
            vals[i] = v * F32(rng.choice([-1, 1]))
        vals[int(rng.integers(0, QK8_0))] = amax * F32(rng.choice([-1, 1]))
        x[b] = vals
    return x.reshape(rows, cols)


def with_denormals(seed, rows, cols, fraction=0.25):
    """Normal values with a fraction of them replaced by denormals of both signs."""
    rng = rng_for(seed)
    x = f32(rng.normal(0, 1, size=(rows, cols)))
    mask = rng.random(size=(rows, cols)) < fraction
    den = f32(rng.uniform(1e-45, float(F32_TINY), size=(rows, cols))) * f32(rng.choice([-1, 1], size=(rows, cols)))
    return np.where(mask, den, x).astype(np.float32)


def only_denormals(seed, rows, cols, block):
    """Blocks made only of denormals, each block's max |x| in [3e-39, 1.17e-38), so that the
    TQ reference's 1/amax does not overflow; smaller denormals (down to 1e-45) fill in."""
    rng = rng_for(seed)
    x = f32(rng.uniform(1e-45, float(F32_TINY), size=(rows * cols // block, block)))
    x *= f32(rng.choice([-1, 1], size=x.shape))
    for b in range(x.shape[0]):
        x[b, int(rng.integers(0, block))] = F32(rng.uniform(3e-39, float(F32_TINY))) * F32(rng.choice([-1, 1]))
    x = x.reshape(rows, cols)
    assert (np.abs(x) < F32_TINY).all()
    return x


def huge(seed, rows, cols, magnitude=1e30):
    """Normal blocks where some values are +-magnitude: the f16 scale overflows to inf."""
    rng = rng_for(seed)
    x = f32(rng.normal(0, 1, size=(rows, cols)))
    flat = x.reshape(-1)
    idx = rng.choice(flat.size, size=max(1, flat.size // 40), replace=False)
    flat[idx] = F32(magnitude) * f32(rng.choice([-1, 1], size=idx.size))
    return x


def sparse_blocks(seed, rows, cols, block):
    """A mix of all-zero blocks (with signed zeros), single-nonzero blocks and normal blocks."""
    rng = rng_for(seed)
    x = np.zeros((rows * cols // block, block), dtype=np.float32)
    for b in range(x.shape[0]):
        kind = b % 4
        if kind == 0:  # all zero, some of them -0.0
            x[b] = np.where(rng.random(block) < 0.5, F32(-0.0), F32(0.0))
        elif kind == 1:  # a single nonzero value at a varying position
            x[b, int(rng.integers(0, block))] = F32(rng.normal(0, 3))
        elif kind == 2:  # a single nonzero at the first or last position, tiny or large
            pos = 0 if rng.random() < 0.5 else block - 1
            x[b, pos] = F32(rng.choice([1e-20, -3.5, 7e4, -1e-3]))
        else:
            x[b] = f32(rng.normal(0, 1, size=block))
    return x.reshape(rows, cols)


def single_nonzero(seed, rows, cols, block):
    """Every block holds exactly one nonzero value (its scaled product is exactly 1)."""
    rng = rng_for(seed)
    x = np.zeros((rows * cols // block, block), dtype=np.float32)
    for b in range(x.shape[0]):
        x[b, int(rng.integers(0, block))] = F32(np.exp(rng.uniform(-30, 30))) * F32(rng.choice([-1, 1]))
    return x.reshape(rows, cols)


def constant_blocks(seed, rows, cols, block):
    """Blocks of one repeated value, or of +-c only."""
    rng = rng_for(seed)
    x = np.empty((rows * cols // block, block), dtype=np.float32)
    for b in range(x.shape[0]):
        c = F32(rng.uniform(0.01, 10))
        x[b] = c if b % 2 == 0 else c * f32(rng.choice([-1, 1], size=block))
    return x.reshape(rows, cols)


def amax_blocks(amaxes, seed, block, fill=0.3):
    """One block per entry of `amaxes`: that value (signed) as the block's max |x| and
    random values below it. For scales at f16 boundaries."""
    rng = rng_for(seed)
    x = np.empty((len(amaxes), block), dtype=np.float32)
    for b, a in enumerate(amaxes):
        a = F32(a)
        x[b] = f32(rng.uniform(-1, 1, size=block)) * a * F32(fill)
        top, half = rng.choice(block, size=2, replace=False)
        x[b, top] = a * F32(rng.choice([-1, 1]))
        x[b, half] = F32(0.5) * a
    return x.reshape(1, -1)


def q8_amax_for_d(target_d) -> np.float32:
    """An amax with f32(amax / 127) == target_d (for Q8_0 scales at f16 boundaries)."""
    t = F32(target_d)
    a = F32(np.float64(t) * 127)
    for _ in range(4):
        a = nextafter(a, 0)
    for _ in range(9):
        if F32(a / F32(127)) == t:
            return a
        a = nextafter(a, np.inf)
    raise AssertionError(f"no amax gives d = {target_d}")


# f16 boundaries: the largest finite half, the midpoint to infinity (which rounds to inf),
# the smallest normal and subnormal halves, the midpoint below the smallest subnormal
# (2^-25, which rounds to 0 by ties-to-even), halfway points between adjacent halves
# (ties-to-even both ways) and values that round to zero.
F16_SCALES = [
    65504.0,
    float(nextafter(65520.0, 0)),
    65520.0,
    2.0**-14,
    2.0**-24,
    2.0**-25,
    float(nextafter(2.0**-25, np.inf)),
    1.0 + 2.0**-11,
    1.0 + 3 * 2.0**-11,
    float(nextafter(1.0 + 2.0**-11, np.inf)),
    1e-9,
    3.0e-8,
    12345.678,
    0.1,
]


# ---------------------------------------------------------------------------------------


def quant_cases():
    """(name, x, formats, min_ties) for every gguf-py case; min_ties maps a format to the
    least number of exact ties (scaled products of exactly k + 0.5) the case must hold."""
    cases = []

    def add(name, x, formats=ALL, min_ties=None):
        cases.append((name, f32(x), tuple(formats), min_ties or {}))

    # Several block counts (of 256: 1, 2, 3, 7, 64), several shapes.
    add("normal_1x256", normal(1, 1, 256))
    add("normal_2x256", normal(2, 2, 256))
    add("normal_1x768", normal(3, 1, 768))
    add("normal_7x256", normal(4, 7, 256))
    add("normal_8x2048", normal(5, 8, 2048))
    add("normal_small_3x512", normal(6, 3, 512, sigma=1e-3))
    add("normal_large_2x256", normal(7, 2, 256, sigma=1e3))
    add("uniform_1x512", uniform(8, 1, 512))
    add("uniform_positive_3x256", uniform(9, 3, 256, 0.0, 5.0))
    add("uniform_negative_1x1792", uniform(10, 1, 1792, -5.0, 0.0))
    add("uniform_64x256", uniform(11, 64, 256))
    add("student_t2_7x256", student_t(12, 7, 256, 2.0))
    add("student_t3_1x512", student_t(13, 1, 512, 3.0))
    add("cauchy_3x256", cauchy(14, 3, 256))
    add("cauchy_64x256", cauchy(15, 64, 256))
    add("ternary_g1_2x256", ternary(16, 2, 256, 1.0))
    add("ternary_g0.37_3x256", ternary(17, 3, 256, 0.37))
    add("ternary_dense_1x256", ternary(18, 1, 256, 2.5, p_zero=0.0))
    add("ternary_sparse_7x256", ternary(19, 7, 256, 0.01, p_zero=0.9))
    add("ternary_per_block_g_64x256", ternary(20, 64, 256, 1.0, per_block=QK_K))
    add("ternary_per_q8_block_g_4x256", ternary(21, 4, 256, 1.0, per_block=QK8_0))
    add("tq_ties_pow2_3x256", tq_ties(22, 3, 256, True), TQ, min_ties={"TQ2_0": 100, "TQ1_0": 100})
    add("tq_ties_random_amax_7x256", tq_ties(23, 7, 256, False), TQ, min_ties={"TQ2_0": 50, "TQ1_0": 50})
    add("tq_ties_64x256", tq_ties(24, 64, 256, True), ALL, min_ties={"TQ2_0": 1000, "TQ1_0": 1000})
    add("q8_ties_1x256", q8_ties(25, 1, 256), ALL, min_ties={"Q8_0": 100})
    add("q8_ties_7x256", q8_ties(26, 7, 256), ALL, min_ties={"Q8_0": 500})
    add("q8_ties_2x2048", q8_ties(27, 2, 2048), ALL, min_ties={"Q8_0": 1000})
    add("denormals_mixed_3x256", with_denormals(28, 3, 256))
    add("denormals_mixed_64x256", with_denormals(29, 64, 256, fraction=0.05))
    add("denormals_only_tq_2x256", only_denormals(30, 2, 256, QK_K), TQ)
    add("denormals_only_tq_7x256", only_denormals(31, 7, 256, QK_K), TQ)
    add("huge_1e30_2x256", huge(32, 2, 256))
    add("huge_1e30_7x256", huge(33, 7, 256))
    add("huge_3e38_3x256", huge(34, 3, 256, magnitude=3.0e38))
    add("f32_max_1x256", huge(35, 1, 256, magnitude=float(np.finfo(np.float32).max)))
    add("tiny_normal_1e-37_2x256", normal(36, 2, 256, sigma=1e-37), TQ)
    add("tiny_normal_1e-35_2x256", normal(37, 2, 256, sigma=1e-35))
    add("zeros_1x256", np.zeros((1, 256), np.float32))
    add("negative_zeros_2x256", np.full((2, 256), -0.0, np.float32))
    add("sparse_blocks_tq_8x256", sparse_blocks(38, 8, 256, QK_K))
    add("sparse_blocks_q8_2x512", sparse_blocks(39, 2, 512, QK8_0))
    add("single_nonzero_tq_7x256", single_nonzero(40, 7, 256, QK_K))
    add("single_nonzero_q8_1x512", single_nonzero(41, 1, 512, QK8_0))
    add("constant_tq_3x256", constant_blocks(42, 3, 256, QK_K))
    add("constant_q8_1x256", constant_blocks(43, 1, 256, QK8_0))
    add("f16_scale_edges_tq_1x3584", amax_blocks(F16_SCALES, 44, QK_K), TQ)
    add("f16_scale_edges_q8_7x64", amax_blocks([q8_amax_for_d(s) for s in F16_SCALES], 45, QK8_0).reshape(7, 64), Q8)
    add("f16_scale_edges_q8_5x768", amax_blocks([q8_amax_for_d(s) for s in F16_SCALES] * 8 + [1.0] * 8, 46, QK8_0).reshape(5, 768), Q8)
    # Q8_0 only: rows that are a multiple of 32 but not of 256 (1, 2, 3, 7, 64 blocks).
    add("q8_normal_1x32", normal(47, 1, 32), Q8)
    add("q8_normal_2x32", normal(48, 2, 32), Q8)
    add("q8_normal_1x96", normal(49, 1, 96), Q8)
    add("q8_student_t_7x32", student_t(50, 7, 32, 2.0), Q8)
    add("q8_uniform_8x160", uniform(51, 8, 160), Q8)
    add("q8_ties_3x96", q8_ties(52, 3, 96), Q8, min_ties={"Q8_0": 30})
    add("q8_denormals_mixed_1x224", with_denormals(53, 1, 224), Q8)
    add("q8_huge_2x64", huge(54, 2, 64), Q8)
    return cases


def bitnet_cases():
    """(name, codes [out, in], g) for the bitnet-hf packing; out % 4 takes every residue."""
    shapes = [(5, 7), (6, 3), (8, 16), (13, 256), (1, 1), (2, 5), (3, 9), (4, 1), (7, 33), (9, 64), (64, 40)]
    cases = []
    for i, (out, inp) in enumerate(shapes):
        rng = rng_for(100 + i)
        codes = rng.integers(-1, 2, size=(out, inp)).astype(np.int8)
        g = F32(np.exp(rng.uniform(-5, 5)))
        cases.append((f"bitnet_{out}x{inp}", codes, g))
    cases.append(("bitnet_all_minus_one_5x4", np.full((5, 4), -1, np.int8), F32(0.5)))
    cases.append(("bitnet_all_plus_one_6x4", np.full((6, 4), 1, np.int8), F32(2.0)))
    cases.append(("bitnet_all_zero_3x4", np.zeros((3, 4), np.int8), F32(1.0)))
    return cases


def write(path: str, arr: np.ndarray, dtype: str) -> None:
    np.ascontiguousarray(arr).astype(dtype, copy=False).tofile(path)


def main(argv) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    out_dir = argv[1]
    os.makedirs(out_dir, exist_ok=True)
    bitnet_hf._self_check()
    # gguf-py warns on the f16 overflow (to inf) and on inf * 0 in dequantize; both are
    # expected in the huge cases, whose bytes and values are recorded as they are.
    warnings.simplefilter("ignore", RuntimeWarning)

    lines = [
        "# ternary-quant oracle vectors, format 1",
        f"# gguf {metadata.version('gguf')}, numpy {np.__version__}",
        "# quant  NAME ROWS COLS FMT[,FMT...]",
        "# bitnet NAME OUT IN SCALE_BITS",
    ]
    counts = {fmt: 0 for fmt in ALL}
    names = set()
    for name, x, formats, min_ties in quant_cases():
        assert name not in names, name
        names.add(name)
        rows, cols = x.shape
        assert x.dtype == np.float32 and np.isfinite(x).all(), name
        ties = {}
        for fmt in formats:
            assert cols % BLOCK[fmt] == 0, (name, fmt)
            if not reference_defined(x, fmt):
                raise AssertionError(f"{name}: the {fmt} reference is undefined (1/d overflows)")
            ties[fmt] = count_ties(x, fmt)
        for fmt, least in min_ties.items():
            if ties[fmt] < least:
                raise AssertionError(f"{name}: only {ties[fmt]} exact {fmt} ties, expected at least {least}")
        write(os.path.join(out_dir, f"{name}.in.f32"), x, "<f4")
        for fmt in formats:
            q = quantize(x, QTYPE[fmt])
            assert q.dtype == np.uint8 and q.shape == (rows, cols // BLOCK[fmt] * {"TQ2_0": 66, "TQ1_0": 54, "Q8_0": 34}[fmt])
            deq = dequantize(q, QTYPE[fmt])
            assert deq.dtype == np.float32 and deq.shape == (rows, cols)
            write(os.path.join(out_dir, f"{name}.{fmt}.bin"), q, "u1")
            write(os.path.join(out_dir, f"{name}.{fmt}.deq.f32"), deq, "<f4")
            counts[fmt] += 1
        lines.append(f"quant {name} {rows} {cols} {','.join(formats)}")
        tie_text = " ".join(f"{fmt}={n}" for fmt, n in ties.items() if n)
        print(f"{name:30s} {rows:3d}x{cols:<5d} {','.join(formats):17s} {'ties ' + tie_text if tie_text else ''}")

    n_bitnet = 0
    for name, codes, g in bitnet_cases():
        assert name not in names, name
        names.add(name)
        out, inp = codes.shape
        packed = bitnet_hf.pack_weights(codes)
        unpacked = bitnet_hf.unpack_weights(packed)
        assert packed.shape == ((out + 3) // 4, inp)
        assert np.array_equal(unpacked[:out], codes), name
        write(os.path.join(out_dir, f"{name}.codes.i8"), codes, "i1")
        write(os.path.join(out_dir, f"{name}.packed.u8"), packed, "u1")
        write(os.path.join(out_dir, f"{name}.unpacked.i8"), unpacked[:out], "i1")
        lines.append(f"bitnet {name} {out} {inp} {int(np.array(g, np.float32).view(np.uint32)):08x}")
        n_bitnet += 1

    with open(os.path.join(out_dir, "manifest.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    summary = ", ".join(f"{fmt}: {n}" for fmt, n in counts.items())
    print(f"wrote {len(names) - n_bitnet} quant cases ({summary}) and {n_bitnet} bitnet-hf cases to {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
