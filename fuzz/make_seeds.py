#!/usr/bin/env python3
"""Writes the fuzz targets' seed inputs into fuzz/seeds/<target>/ (Python 3 stdlib only).

Seeds are small valid safetensors and GGUF files (every dtype and ggml type the crate
converts, every GGUF metadata type, nested arrays, both versions, other alignments),
plus the malformed-file corpus, each wrapped in the target's control bytes:
- safetensors_header, gguf_reader: 2 bytes (file size and first prefix, see
  fuzz/src/lib.rs `FuzzFile`), then the file;
- plan_convert: 4 option bytes (see `plan_options`), then the file; or, with the first
  option byte >= 0x80, a u32 LE split point and two files.
quantize_api takes structured input and starts from an empty corpus.
"""

import hashlib
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "malformed"))
from modelfiles import (  # noqa: E402
    ARRAY, BOOL, F32, F64, GGML_BF16, GGML_F16, GGML_F32, GGML_I2_S, GGML_Q8_0, GGML_TQ1_0, GGML_TQ2_0, I8, I16,
    I32, I64, STRING, U8, U16, U32, U64, Gguf, bf16_bytes, f16_bytes, f32_bytes, i2_s_bytes, q8_0_bytes,
    safetensors, ternary_code_bytes, tq1_0_bytes, tq2_0_bytes, values,
)


def st_files():
    yield safetensors([
        ("model.embed_tokens.weight", "F16", [4, 32], f16_bytes(values(128, 1))),
        ("model.layers.0.mlp.up_proj.weight", "F32", [2, 256], f32_bytes(values(512, 2))),
        ("model.layers.0.self_attn.o_proj.weight", "BF16", [3, 256], bf16_bytes(values(768, 3))),
        ("model.layers.0.post_attention_layernorm.weight", "F32", [32], f32_bytes([1.0] * 32)),
        ("lm_head.weight", "F16", [4, 32], f16_bytes(values(128, 4))),
    ], {"format": "pt"})
    yield safetensors([
        ("model.layers.0.mlp.down_proj.weight", "U8", [1, 256], ternary_code_bytes(256, 5)),
        ("model.layers.0.mlp.down_proj.weight_scale", "F32", [1], f32_bytes([0.25])),
        ("model.layers.0.mlp.gate_proj.weight", "U8", [2, 128], ternary_code_bytes(256, 6)),
        ("model.layers.0.mlp.gate_proj.weight_scale", "BF16", [], bf16_bytes([2.0])),
    ], {"format": "pt", "quantization_config": '{"linear_class":"bitlinear"}'})
    # Every dtype, 0-d and empty shapes, a 3-D tensor, rows of 384 and 3200/32.
    yield safetensors([
        ("a", "F64", [2], bytes(16)), ("b", "I8", [3], bytes(3)), ("c", "I16", [1], bytes(2)),
        ("d", "I32", [1], bytes(4)), ("e", "I64", [1], bytes(8)), ("f", "U16", [1], bytes(2)),
        ("g", "U32", [], bytes(4)), ("h", "U64", [0], b""), ("i", "BOOL", [2], b"\x00\x01"),
        ("j", "F8_E4M3", [1], b"\x01"), ("k", "F8_E5M2", [1], b"\x01"),
        ("l.weight", "F32", [2, 2, 32], f32_bytes(values(128, 7))),
        ("m.weight", "F16", [1, 384], f16_bytes(values(384, 8))),
        ("n.weight", "F32", [1, 100], f32_bytes(values(100, 9))),
        ("o.weight", "F32", [0, 256], b""),
    ])
    yield safetensors([("x.weight", "F32", [1, 256], f32_bytes(values(256, 10)))])


def gguf_files():
    every_type = [
        ("general.architecture", STRING, "llama"), ("general.alignment", U32, 64),
        ("a.u8", U8, 1), ("a.i8", I8, -1), ("a.u16", U16, 2), ("a.i16", I16, -2), ("a.u32", U32, 3),
        ("a.i32", I32, -3), ("a.f32", F32, 0.5), ("a.bool", BOOL, 1), ("a.u64", U64, 4), ("a.i64", I64, -4),
        ("a.f64", F64, 0.25), ("a.strings", ARRAY, (STRING, ["x", "yz", ""])),
        ("a.numbers", ARRAY, (I32, [1, -2, 3])), ("a.nested", ARRAY, (ARRAY, [(U8, [1, 2]), (BOOL, [0])])),
        ("a.empty", ARRAY, (F64, [])),
    ]
    yield Gguf(every_type, [
        ("token_embd.weight", [32, 4], GGML_F16, f16_bytes(values(128, 11))),
        ("blk.0.attn_q.weight", [256, 2], GGML_F32, f32_bytes(values(512, 12))),
        ("blk.0.attn_k.weight", [256, 2], GGML_BF16, bf16_bytes(values(512, 13))),
        ("blk.0.attn_norm.weight", [32], GGML_F32, f32_bytes([1.0] * 32)),
        ("output.weight", [32, 4], GGML_Q8_0, q8_0_bytes(4, 14)),
    ], alignment=64).bytes
    yield Gguf([("general.file_type", U32, 37)], [
        ("blk.0.ffn_up.weight", [256, 2], GGML_TQ2_0, tq2_0_bytes(2, 15)),
        ("blk.0.ffn_down.weight", [256, 2], GGML_TQ1_0, tq1_0_bytes(2, 16)),
        ("blk.0.ffn_gate.weight", [128, 2], GGML_I2_S, i2_s_bytes(256, 17)),
        ("blk.0.attn_v.weight", [64, 2], GGML_Q8_0, q8_0_bytes(4, 18)),
    ]).bytes
    yield Gguf([], [("w", [256, 1], GGML_F32, f32_bytes(values(256, 19)))], version=2).bytes
    yield Gguf([], [("scalar", [], GGML_F32, f32_bytes([1.0])), ("v", [3, 1, 1, 1], GGML_F16, bytes(6))]).bytes


def malformed(suffix):
    d = os.path.join(HERE, "..", "tests", "malformed", "files")
    for name in sorted(os.listdir(d)):
        if name.endswith(suffix):
            with open(os.path.join(d, name), "rb") as f:
                yield f.read()


def write(target, inputs):
    out = os.path.join(HERE, "seeds", target)
    os.makedirs(out, exist_ok=True)
    for name in os.listdir(out):
        os.remove(os.path.join(out, name))
    for data in inputs:
        with open(os.path.join(out, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
    print(f"{target}: {len(os.listdir(out))} seeds")


def reader_seeds(valid, bad):
    for f in valid:
        for ctl in [(0, 255), (0, 0), (0, 9), (200, 255), (230, 128), (255, 255)]:
            yield bytes(ctl) + f
    for f in bad:
        yield bytes((0, 255)) + f


def plan_seeds(files):
    options = [(0, 0, 0, 0), (2, 5, 0x80, 0), (3, 0, 1, 0x01), (4, 0, 0x82, 0), (4, 16, 0, 0x10),
               (1, 17, 0x83, 0x03), (0, 23, 0x80, 0), (5, 2, 0x81, 0x22)]
    for i, f in enumerate(files):
        for o in options[i % 2::2] if len(f) > 2048 else options:
            yield bytes(o) + f


def folder_seeds():
    """The model folders of tests/malformed/folders, as the model_folder target reads them."""
    root = os.path.join(HERE, "..", "tests", "malformed", "folders")
    for name in sorted(os.listdir(root)):
        d = os.path.join(root, name)

        def part(file):
            p = os.path.join(d, file)
            data = open(p, "rb").read() if os.path.exists(p) else b""
            return struct.pack("<H", len(data)) + data

        weights = os.path.join(d, "model.safetensors")
        yield b"".join(part(f) for f in ("config.json", "tokenizer.json", "tokenizer.model", "tokenizer_config.json")) + (
            open(weights, "rb").read() if os.path.exists(weights) else b"")


def main():
    st, gg = list(st_files()), list(gguf_files())
    write("safetensors_header", reader_seeds(st, malformed(".safetensors")))
    write("gguf_reader", reader_seeds(gg, malformed(".gguf")))
    shards = [bytes((0x84, 0, 0x80, 0)) + struct.pack("<I", len(st[0])) + st[0] + st[1],
              bytes((0x80, 0, 0, 0)) + struct.pack("<I", len(st[3])) + st[3] + st[2]]
    write("plan_convert", list(plan_seeds(st + gg)) + shards)
    write("model_folder", folder_seeds())


if __name__ == "__main__":
    main()
