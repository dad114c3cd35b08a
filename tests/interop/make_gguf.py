#!/usr/bin/env python3
"""Writes a small GGUF model with gguf-py's own writer, for the converter to read.

    python tests/interop/make_gguf.py OUT.gguf

Metadata of every value type (arrays of strings, numbers and arrays of arrays
included), a 64-byte alignment, and tensors of the types the converter reads: F32, F16,
BF16, Q8_0 and TQ2_0 (the last two quantized by gguf-py). Deterministic.
"""

from __future__ import annotations

import sys

import numpy as np
import gguf
from gguf import GGMLQuantizationType as Q


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    rng = np.random.default_rng(1234)
    w = gguf.GGUFWriter(sys.argv[1], "llama")
    w.add_custom_alignment(64)
    w.add_file_type(gguf.LlamaFileType.ALL_F32)
    w.add_context_length(4096)
    w.add_uint8("test.u8", 200)
    w.add_int8("test.i8", -100)
    w.add_uint16("test.u16", 60000)
    w.add_int16("test.i16", -30000)
    w.add_uint32("test.u32", 4_000_000_000)
    w.add_int32("test.i32", -2_000_000_000)
    w.add_float32("test.f32", 0.1)
    w.add_bool("test.bool", True)
    w.add_string("test.string", "héllo, wörld")
    w.add_uint64("test.u64", 2**63 + 12345)
    w.add_int64("test.i64", -(2**62))
    w.add_float64("test.f64", -1e-300)
    w.add_array("test.strings", ["<s>", "</s>", "ünï", ""])
    w.add_array("test.ints", [1, -2, 3])
    w.add_array("test.floats", [0.5, -1.25])
    w.add_array("test.nested", [[1, 2], [3]])

    def normal(*shape: int) -> np.ndarray:
        return (rng.standard_normal(shape) * 0.05).astype(np.float32)

    w.add_tensor("token_embd.weight", normal(8, 256).astype(np.float16))
    w.add_tensor("blk.0.attn_q.weight", normal(4, 512))
    bf16 = normal(4, 256)
    w.add_tensor("blk.0.attn_output.weight", gguf.quants.quantize(bf16, Q.BF16), raw_dtype=Q.BF16)
    w.add_tensor("blk.0.ffn_down.weight", normal(2, 384))
    up = normal(4, 256)
    w.add_tensor("blk.0.ffn_up.weight", gguf.quants.quantize(up, Q.Q8_0), raw_dtype=Q.Q8_0)
    gate = normal(2, 512)
    w.add_tensor("blk.0.ffn_gate.weight", gguf.quants.quantize(gate, Q.TQ2_0), raw_dtype=Q.TQ2_0)
    w.add_tensor("blk.0.attn_k.weight", normal(2, 100))
    w.add_tensor("output_norm.weight", normal(256))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


if __name__ == "__main__":
    main()
