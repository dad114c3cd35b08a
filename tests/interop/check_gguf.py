#!/usr/bin/env python3
"""Checks a GGUF file the converter wrote, with gguf-py's reader (PyPI `gguf`).

    python tests/interop/check_gguf.py OUT.gguf EXPECT.json

EXPECT.json (paths relative to its directory):
{
  "metadata": [{"key": "general.file_type", "type": "UINT32", "value": 37}, ...],
      # every key, in order, with its value (scalars and flat arrays)
  or
  "metadata_from": "in.gguf",
      # the same keys in the same order with byte-identical values, except:
  "metadata_set": [{"key": ..., "type": ..., "value": ...}],
      # keys whose value is set (in place, or appended in this order)
  "alignment": 64,
  "tensors": [{
      "name": ..., "type": "TQ2_0", "ne": [256, 8],   # gguf-py's shape: ne[0] first
      "values": [...],            # optional: gguf.quants.dequantize must give these
      "source": {"file": "in.safetensors", "name": ...},   # optional, then one of:
      "relation": "quantize"      # bytes == gguf.quants.quantize(source, type)
                | "cast"          # bytes == source values cast to the type (F16/F32)
                | "copy"          # bytes == the source tensor's bytes
  }, ...]
}
Exits non-zero with a one-line reason on the first difference.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import check, fail, source_tensor  # noqa: E402

import gguf  # noqa: E402
from gguf import GGMLQuantizationType as Q, GGUFValueType as V  # noqa: E402


def keys(reader: gguf.GGUFReader) -> list[str]:
    return [k for k in reader.fields if not k.startswith("GGUF.")]


def field_bytes(field) -> bytes:
    return b"".join(np.asarray(p).tobytes() for p in field.parts)


def check_value(reader: gguf.GGUFReader, want: dict) -> None:
    key = want["key"]
    field = reader.fields.get(key)
    check(field is not None, f"no metadata key {key}")
    check(field.types[0].name == want["type"], f"{key}: type {field.types[0].name}, expected {want['type']}")
    got = field.contents()
    expected = want["value"]
    if field.types[0] in (V.FLOAT32,) or (field.types[0] == V.ARRAY and field.types[-1] == V.FLOAT32):
        got = np.float32(got).tolist() if not isinstance(got, list) else [float(np.float32(v)) for v in got]
        expected = np.float32(expected).tolist() if not isinstance(expected, list) else [float(np.float32(v)) for v in expected]
    check(got == expected, f"{key}: value {got!r}, expected {expected!r}")


def main() -> None:
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    path, expect_path = Path(sys.argv[1]), Path(sys.argv[2])
    base = expect_path.parent
    expect = json.loads(expect_path.read_text())
    reader = gguf.GGUFReader(path)

    check(int(reader.fields["GGUF.version"].contents()) == 3, "not GGUF v3")
    if "metadata_from" in expect:
        source = gguf.GGUFReader(base / expect["metadata_from"])
        set_keys = [m["key"] for m in expect["metadata_set"]]
        order = keys(source) + [k for k in set_keys if k not in source.fields]
        check(keys(reader) == order, f"keys {keys(reader)}, expected {order}")
        for key in keys(reader):
            if key in set_keys:
                continue
            check(field_bytes(reader.fields[key]) == field_bytes(source.fields[key]), f"{key}: bytes differ from the input")
        for want in expect["metadata_set"]:
            check_value(reader, want)
    else:
        order = [m["key"] for m in expect["metadata"]]
        check(keys(reader) == order, f"keys {keys(reader)}, expected {order}")
        for want in expect["metadata"]:
            check_value(reader, want)

    alignment = expect.get("alignment", 32)
    check(reader.alignment == alignment, f"alignment {reader.alignment}, expected {alignment}")
    names = [t.name for t in reader.tensors]
    expected_names = [t["name"] for t in expect["tensors"]]
    check(names == expected_names, f"tensors {names}, expected {expected_names}")
    checked = 0
    for tensor, want in zip(reader.tensors, expect["tensors"]):
        name = tensor.name
        check(tensor.tensor_type.name == want["type"], f"{name}: type {tensor.tensor_type.name}, expected {want['type']}")
        check([int(d) for d in tensor.shape] == want["ne"], f"{name}: shape {list(tensor.shape)}, expected {want['ne']}")
        check(tensor.data_offset % alignment == 0, f"{name}: data offset {tensor.data_offset} is not aligned")
        if "values" in want:
            got = np.asarray(gguf.quants.dequantize(tensor.data, tensor.tensor_type), dtype=np.float32).ravel()
            expected = np.asarray(want["values"], dtype=np.float32)
            check(got.shape == expected.shape, f"{name}: {got.size} values, expected {expected.size}")
            bad = np.flatnonzero(got != expected)
            check(bad.size == 0, f"{name}: value {bad[:1]} is {got[bad[:1]]}, expected {expected[bad[:1]]}")
            checked += 1
        if "source" in want:
            values, raw = source_tensor(base, want["source"])
            relation = want["relation"]
            if relation == "quantize":
                reference = gguf.quants.quantize(values.reshape(-1, int(tensor.shape[0])), tensor.tensor_type).tobytes()
            elif relation == "cast":
                dtype = {"F16": np.float16, "F32": np.float32}[want["type"]]
                reference = values.astype(dtype).tobytes()
            elif relation == "copy":
                reference = raw
            else:
                fail(f"{name}: unknown relation {relation}")
            got = tensor.data.tobytes()
            check(len(got) == len(reference), f"{name}: {len(got)} bytes, expected {len(reference)} ({relation})")
            if got != reference:
                first = next(i for i, (a, b) in enumerate(zip(got, reference)) if a != b)
                fail(f"{name}: byte {first} is {got[first]}, expected {reference[first]} ({relation} of the source)")
            checked += 1
    print(f"check_gguf: ok: {len(names)} tensors, {len(keys(reader))} keys, {checked} value/byte checks")


if __name__ == "__main__":
    main()
