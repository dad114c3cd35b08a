"""Pure-numpy port of the BitNet weight packing in Hugging Face transformers.

Reference: transformers/src/transformers/integrations/bitnet.py, functions
`pack_weights` and `unpack_weights` (torch). The logic, restated:

* pack_weights(q): q is ternary [out, ...] in {-1, 0, 1}. With R = ceil(out / 4),
  the result is uint8 [R, ...]. Codes c = q + 1 in {0, 1, 2}; for group i in 0..4,
  rows [i*R, min((i+1)*R, out)) of c are shifted left by 2*i and OR-ed into packed
  rows [0, end - start). The loop runs for min(4, out // R + 1) groups, so a group
  that would start past `out` is never touched. Packed bits of rows past `out` stay 0.
* unpack_weights(packed): the result has 4R rows; for i in 0..4, rows [i*R, (i+1)*R)
  are (packed & (3 << 2i)) >> 2i, then 1 is subtracted. Padding rows (past `out`)
  therefore read as -1, and readers slice the first `out` rows back.

Run this file directly to check the port against the worked example in the
docstring of transformers' `unpack_weights`.
"""

import numpy as np

VALUES_PER_ITEM = 4


def pack_weights(quantized: np.ndarray) -> np.ndarray:
    """Packs ternary codes [out, ...] (values in {-1, 0, 1}) into uint8 [ceil(out/4), ...]."""
    q = np.asarray(quantized)
    if q.ndim < 1 or q.shape[0] == 0:
        raise ValueError("need at least one row")
    if not np.isin(q, (-1, 0, 1)).all():
        raise ValueError("codes must be in {-1, 0, 1}")
    out = q.shape[0]
    row_dim = (out + VALUES_PER_ITEM - 1) // VALUES_PER_ITEM
    packed = np.zeros((row_dim, *q.shape[1:]), dtype=np.uint8)
    unpacked = (q.astype(np.int16) + 1).astype(np.uint8)
    groups = min(VALUES_PER_ITEM, out // row_dim + 1)
    for i in range(groups):
        start = i * row_dim
        end = min(start + row_dim, out)
        packed[: end - start] |= (unpacked[start:end] << np.uint8(2 * i)).astype(np.uint8)
    return packed


def unpack_weights(packed: np.ndarray) -> np.ndarray:
    """Unpacks uint8 [R, ...] into int8 codes [4R, ...]; slice the first `out` rows."""
    p = np.asarray(packed)
    if p.dtype != np.uint8:
        raise ValueError("packed weights must be uint8")
    rows = p.shape[0]
    unpacked = np.zeros((rows * VALUES_PER_ITEM, *p.shape[1:]), dtype=np.uint8)
    for i in range(VALUES_PER_ITEM):
        mask = np.uint8(3 << (2 * i))
        unpacked[i * rows : (i + 1) * rows] = (p & mask) >> np.uint8(2 * i)
    return unpacked.astype(np.int8) - np.int8(1)


def _self_check() -> None:
    # The worked example of transformers' `unpack_weights` docstring.
    packed = np.array([[0b10100001, 0b00011000], [0b10010000, 0b00001010]], dtype=np.uint8)
    expected = np.array(
        [[0, -1], [-1, 1], [-1, 1], [-1, 1], [1, 0], [0, -1], [1, -1], [1, -1]], dtype=np.int8
    )
    got = unpack_weights(packed)
    assert np.array_equal(got, expected), got
    # pack then unpack is the identity on the first `out` rows, for every residue of out % 4,
    # and the padding rows read back as -1 (zero bits).
    rng = np.random.default_rng(7)
    for out in range(1, 14):
        q = rng.integers(-1, 2, size=(out, 5)).astype(np.int8)
        p = pack_weights(q)
        assert p.shape == ((out + 3) // 4, 5)
        u = unpack_weights(p)
        assert np.array_equal(u[:out], q), out
        assert (u[out:] == -1).all(), out
    assert np.array_equal(pack_weights(unpack_weights(packed)), packed)


if __name__ == "__main__":
    _self_check()
    print("bitnet_hf port: self-check passed")
