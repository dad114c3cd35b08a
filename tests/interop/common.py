"""Shared helpers of the interop checks: failing loudly, and reading source tensors.

Source tensors are read without the code under test: GGUF through gguf-py's
GGUFReader and `gguf.quants.dequantize`, safetensors through the few lines of
`read_safetensors_raw` below (numpy has no bfloat16, so the safetensors numpy API
cannot load BF16 tensors).
"""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import numpy as np

NAME = Path(sys.argv[0]).stem


def fail(message: str) -> None:
    print(f"{NAME}: FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition: bool, message: str) -> None:
    if not condition:
        fail(message)


def read_safetensors_raw(path: Path) -> dict[str, tuple[str, list[int], bytes]]:
    """name -> (dtype, shape, bytes), straight from the file."""
    data = path.read_bytes()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    return {
        name: (t["dtype"], t["shape"], data[base + t["data_offsets"][0] : base + t["data_offsets"][1]])
        for name, t in header.items()
    }


def to_f32(dtype: str, raw: bytes) -> np.ndarray:
    """Flat float32 values of an F32, F16 or BF16 tensor."""
    if dtype == "F32":
        return np.frombuffer(raw, dtype="<f4").copy()
    if dtype == "F16":
        return np.frombuffer(raw, dtype="<f2").astype(np.float32)
    if dtype == "BF16":
        return (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view(np.float32)
    fail(f"not a float dtype: {dtype}")
    raise AssertionError


def source_tensor(base: Path, source: dict) -> tuple[np.ndarray | None, bytes]:
    """(flat float32 values, or None for a non-float tensor; raw bytes) of tensor
    source['name'] in source['file']."""
    path = base / source["file"]
    name = source["name"]
    if path.suffix == ".gguf":
        import gguf

        reader = gguf.GGUFReader(path)
        tensor = next((t for t in reader.tensors if t.name == name), None)
        check(tensor is not None, f"{path.name} has no tensor {name}")
        values = gguf.quants.dequantize(tensor.data, tensor.tensor_type)
        return np.asarray(values, dtype=np.float32).ravel(), tensor.data.tobytes()
    tensors = read_safetensors_raw(path)
    check(name in tensors, f"{path.name} has no tensor {name}")
    dtype, _, raw = tensors[name]
    return (to_f32(dtype, raw) if dtype in ("F32", "F16", "BF16") else None), raw
