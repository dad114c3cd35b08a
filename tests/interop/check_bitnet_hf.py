#!/usr/bin/env python3
"""Checks a bitnet-hf safetensors file the converter wrote.

    python tests/interop/check_bitnet_hf.py OUT.safetensors EXPECT.json

The file is opened with the `safetensors` package (numpy API), which checks the header
(padding, contiguous offsets); packed weights are unpacked with the numpy port of
transformers' `unpack_weights` in tests/oracle/bitnet_hf.py.

EXPECT.json (paths relative to its directory):
{
  "metadata": {"format": "pt", "quantization_config": "...", ...},   # exactly
  "tensors": [{"name": ..., "dtype": "U8", "shape": [3, 256]}, ...],  # all, in file order
  "ternary": [{
      "name": "x.weight", "out": 10,       # rows of the unpacked weight
      "values": [...],                     # codes * scale, row-major [out, in]
      "source": {"file": "in.safetensors", "name": "x.weight"}   # optional: the floats
  }, ...],                                 # it came from, quantized here with absmean
  "copies": [{"name": ..., "source": {...}}]   # bytes equal to the source tensor's
}
The absmean check recomputes g = mean|w| (float64 sum, float32 result), the codes
clamp(round_half_away(w * (1/g)), -1, 1) and the scale g; a code may differ only where
|w * (1/g)| is within 1e-5 of 0.5, since the order of the sum can move g by an ulp.
Exits non-zero with a one-line reason on the first difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "oracle"))
from bitnet_hf import unpack_weights  # noqa: E402
from common import check, read_safetensors_raw, source_tensor  # noqa: E402
from safetensors import safe_open  # noqa: E402

QUANTIZATION_CONFIG = {"quant_method": "bitnet", "linear_class": "autobitlinear", "quantization_mode": "offline"}


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, expect_path = Path(sys.argv[1]), Path(sys.argv[2])
    base = expect_path.parent
    expect = json.loads(expect_path.read_text())

    with safe_open(str(path), framework="np") as f:
        metadata = f.metadata()
        check(metadata == expect["metadata"], f"metadata {metadata}, expected {expect['metadata']}")
        check(metadata.get("format") == "pt", "no \"format\": \"pt\" in the metadata")
        check(json.loads(metadata["quantization_config"]) == QUANTIZATION_CONFIG, "quantization_config differs")
        raw = read_safetensors_raw(path)
        order = list(raw)
        expected_order = [t["name"] for t in expect["tensors"]]
        check(order == expected_order, f"tensors {order}, expected {expected_order}")
        check(sorted(f.keys()) == sorted(order), "the safetensors package sees other tensors")
        for want in expect["tensors"]:
            dtype, shape, _ = raw[want["name"]]
            check([dtype, shape] == [want["dtype"], want["shape"]], f"{want['name']}: {dtype} {shape}, expected {want}")

        for want in expect["ternary"]:
            name, out = want["name"], want["out"]
            packed = f.get_tensor(name)
            scale = f.get_tensor(name + "_scale")
            check(packed.dtype == np.uint8 and packed.shape[0] == (out + 3) // 4, f"{name}: packed {packed.dtype} {packed.shape}")
            check(scale.dtype == np.float32 and scale.shape == (1,), f"{name}_scale: {scale.dtype} {scale.shape}")
            codes = unpack_weights(packed)[:out]
            check(np.isin(codes, (-1, 0, 1)).all(), f"{name}: codes outside -1..1")
            values = codes.astype(np.float32) * scale[0]
            expected = np.asarray(want["values"], dtype=np.float32).reshape(values.shape)
            check(np.array_equal(values, expected), f"{name}: unpacked values differ from the expected ones")
            if "source" in want:
                w, _ = source_tensor(base, want["source"])
                w = w.reshape(codes.shape)
                g = np.float32(np.abs(w.astype(np.float64)).mean())
                g = max(g, np.float32(1e-5))
                check(abs(float(scale[0]) - float(g)) <= 1e-6 * float(g), f"{name}: scale {scale[0]}, absmean {g}")
                x = (w * (np.float32(1) / g)).astype(np.float32)
                q = np.clip(np.sign(x) * np.floor(np.abs(x).astype(np.float64) + 0.5), -1, 1).astype(np.int8)
                differ = q != codes
                near_tie = np.abs(np.abs(x) - 0.5) < 1e-5
                check(not (differ & ~near_tie).any(), f"{name}: {int(differ.sum())} codes differ from absmean")

        for want in expect.get("copies", []):
            _, source_raw = source_tensor(base, want["source"])
            check(raw[want["name"]][2] == source_raw, f"{want['name']}: bytes differ from the source")
    print(f"check_bitnet_hf: ok: {len(order)} tensors, {len(expect['ternary'])} ternary weights")


if __name__ == "__main__":
    main()
