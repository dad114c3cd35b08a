#!/usr/bin/env python3
"""Writes the malformed-file corpus and its manifest (Python 3 stdlib only).

    python3 tests/malformed/generate.py          # rewrite files/ and manifest.json
    python3 tests/malformed/generate.py --check  # fail if they differ from what is committed

Every case is a small file built from a valid one with one thing broken, and the error
it must give. See README.md for the manifest's format.
"""

import json
import math
import os
import shutil
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from modelfiles import (  # noqa: E402
    ARRAY, BOOL, F32, GGML_F16, GGML_F32, GGML_I2_S, GGML_TQ2_0, STRING, U32, U8, Gguf, bf16_bytes, f16_bytes,
    f32_bytes, gguf_kv, gguf_string, gguf_tensor_info, i2_s_bytes, safetensors, safetensors_header_json,
    safetensors_raw, ternary_code_bytes, tq2_0_bytes, values,
)

HERE = os.path.dirname(os.path.abspath(__file__))
FILES = os.path.join(HERE, "files")

NAN, INF = math.nan, math.inf
Q_PROJ = "model.layers.0.self_attn.q_proj.weight"
EMBED = "model.embed_tokens.weight"
NORM = "model.layers.0.input_layernorm.weight"
ATTN_Q = "blk.0.attn_q.weight"

cases = []


def case(file, data, what, category, kind, contains, stage="read", tensor=None, output=None, layout=None):
    """Adds one corpus file. `stage` is where the error occurs: read, plan or convert."""
    entry = {"file": file, "what": what, "category": category, "stage": stage, "kind": kind,
             "contains": contains if isinstance(contains, list) else [contains]}
    if tensor is not None:
        entry["tensor"] = tensor
    if output is not None:
        entry["output"] = output
    if layout is not None:
        entry["layout"] = layout
    assert not any(c["file"] == file for c, _ in cases), file
    cases.append((entry, bytes(data)))


def with_value(vals, index, value):
    vals = list(vals)
    vals[index] = value
    return vals


# ------------------------------------------------------------------ safetensors

def st_model(q_proj=None, q_dtype="F32", embed=None, norm=None, embed_dtype="F16"):
    q_vals = values(4 * 256, 1) if q_proj is None else q_proj
    q_raw = {"F32": f32_bytes, "F16": f16_bytes, "BF16": bf16_bytes}[q_dtype](q_vals)
    return safetensors([
        (EMBED, embed_dtype, [8, 64], f16_bytes(values(8 * 64, 2)) if embed is None else embed),
        (Q_PROJ, q_dtype, [4, 256], q_raw),
        (NORM, "F32", [256], f32_bytes([1.0] * 256) if norm is None else norm),
    ], {"format": "pt"})


VALID_ST = st_model()
ST_HEADER_LEN = struct.unpack("<Q", VALID_ST[:8])[0]


def st_header(entries, metadata=None, data=b""):
    return safetensors_raw(safetensors_header_json(entries, metadata), data)


case("st_empty.safetensors", b"", "an empty file", "truncation", "Malformed", "a file of 0 bytes")
case("st_trunc_length_prefix.safetensors", VALID_ST[:5], "cut inside the 8-byte header length",
     "truncation", "Malformed", "a file of 5 bytes cannot hold the 8-byte header length")
case("st_trunc_header_json.safetensors", VALID_ST[:8 + ST_HEADER_LEN // 2], "cut inside the header JSON",
     "truncation", "Malformed", f"header length {ST_HEADER_LEN} runs past the end of the file")
case("st_trunc_data.safetensors", VALID_ST[:-100], "cut inside the data section (the last tensor's bytes)",
     "truncation", "Malformed", [f'tensor "{NORM}"', "run past the data section"])
case("st_header_length_beyond_file.safetensors",
     struct.pack("<Q", ST_HEADER_LEN + 100000) + VALID_ST[8:],
     "a header length 100000 bytes past the end of the file", "header length", "Malformed",
     f"header length {ST_HEADER_LEN + 100000} runs past the end of the file")
case("st_header_length_huge.safetensors", struct.pack("<Q", 1 << 62) + VALID_ST[8:],
     "a header length of 2^62", "header length", "Malformed", "over the 100000000-byte limit")
case("st_header_not_object.safetensors", safetensors_raw("[1, 2, 3]"),
     "a header that is a JSON array, not an object", "syntax", "Malformed", "does not start with '{'")
case("st_header_bad_json.safetensors", safetensors_raw('{"w": {"dtype": "F32", "shape": [1], '),
     "a header whose JSON stops half-way", "syntax", "Malformed", "header JSON")
case("st_header_missing_field.safetensors",
     safetensors_raw('{"w":{"shape":[1],"data_offsets":[0,4]}}', bytes(4)),
     "a tensor without a dtype", "syntax", "Malformed", ["header JSON", "missing field `dtype`"])
case("st_metadata_not_string.safetensors",
     safetensors_raw('{"__metadata__":{"format":1},"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', bytes(4)),
     "a __metadata__ value that is a number", "syntax", "Malformed", "header JSON")
case("st_negative_shape.safetensors",
     safetensors_raw('{"w":{"dtype":"F32","shape":[-1,4],"data_offsets":[0,16]}}', bytes(16)),
     "a negative dimension", "shape", "Malformed", ["header JSON", 'tensor "w"'])
case("st_non_utf8_name.safetensors",
     safetensors_raw(b'{"w\xff\xfe":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}', bytes(4)),
     "a tensor name that is not UTF-8", "names", "Malformed", "header is not UTF-8 (byte 3 of the JSON)")
case("st_duplicate_name.safetensors",
     st_header([("w", "F32", [1], [0, 4]), ("w", "F32", [1], [4, 8])], data=bytes(8)),
     "two tensors of one name", "names", "Malformed", 'duplicate key "w"')
case("st_unknown_dtype.safetensors", st_header([("w", "F33", [2], [0, 8])], data=bytes(8)),
     "an unknown dtype", "types", "Malformed", 'tensor "w": unknown dtype "F33"')
case("st_shape_bytes_mismatch.safetensors", st_header([("w", "F32", [4, 256], [0, 4000])], data=bytes(4000)),
     "data_offsets that hold fewer bytes than the shape needs", "byte count", "Malformed",
     "hold 4000 bytes, but shape [4, 256] of F32 needs 4096")
case("st_dtype_mismatch.safetensors", st_header([("w", "F16", [4, 256], [0, 4096])], data=bytes(4096)),
     "F32 bytes labelled F16 (twice the bytes the dtype needs)", "dtype", "Malformed",
     "hold 4096 bytes, but shape [4, 256] of F16 needs 2048")
case("st_offsets_out_of_range.safetensors",
     st_header([("w", "U8", [1 << 40], [0, 1 << 40])], data=bytes(64)),
     "data_offsets far past the end of the file", "offsets", "Malformed",
     f"data_offsets [0, {1 << 40}] run past the data section (64 bytes)")
case("st_offsets_reversed.safetensors", st_header([("w", "U8", [0], [100, 50])], data=bytes(128)),
     "data_offsets whose begin is after their end", "offsets", "Malformed", "begin after they end")
case("st_overlap.safetensors",
     st_header([("a", "F32", [8], [0, 32]), ("b", "F32", [8], [16, 48])], data=bytes(48)),
     "two tensors whose bytes overlap", "offsets", "Malformed", 'tensors "a" and "b" overlap')
case("st_shape_overflow.safetensors", st_header([("w", "F32", [1 << 40, 1 << 40], [0, 16])], data=bytes(16)),
     "a shape whose byte count overflows 64 bits", "shape", "Malformed", "overflows 64 bits")
case("st_u16_to_gguf.safetensors", st_header([("ids", "U16", [8], [0, 16])], data=bytes(16)),
     "a U16 tensor, which GGUF has no type for (reading succeeds; planning a GGUF output fails)",
     "types", "Unsupported", ["tensor 'ids'", "dtype U16 has no GGUF type"], stage="plan", tensor="ids")
case("st_nan_f32_weight.safetensors", st_model(q_proj=with_value(values(1024, 1), 300, NAN)),
     "a NaN in an F32 weight (reading succeeds; quantizing fails)", "non-finite", "NonFinite",
     [f"tensor '{Q_PROJ}'", "non-finite value NaN at index 300"], stage="convert", tensor=Q_PROJ)
case("st_inf_f16_weight.safetensors", st_model(q_proj=with_value(values(1024, 1), 1000, INF), q_dtype="F16"),
     "+Inf in an F16 weight (reading succeeds; quantizing fails)", "non-finite", "NonFinite",
     [f"tensor '{Q_PROJ}'", "non-finite value inf at index 1000"], stage="convert", tensor=Q_PROJ)
case("st_neg_inf_bf16_weight.safetensors", st_model(q_proj=with_value(values(1024, 1), 5, -INF), q_dtype="BF16"),
     "-Inf in a BF16 weight (reading succeeds; quantizing fails)", "non-finite", "NonFinite",
     [f"tensor '{Q_PROJ}'", "non-finite value -inf at index 5"], stage="convert", tensor=Q_PROJ)
case("st_nan_f32_embedding.safetensors",
     st_model(embed=f32_bytes(with_value(values(512, 2), 77, NAN)), embed_dtype="F32"),
     "a NaN in a kept F32 embedding (reading succeeds; converting it to F16 fails)", "non-finite",
     "NonFinite", [f"tensor '{EMBED}'", "non-finite value NaN at index 77"], stage="convert", tensor=EMBED)

BITNET_W = "model.layers.0.mlp.down_proj.weight"


def bitnet_hf(codes, scale, scale_dtype="F32"):
    return safetensors([(BITNET_W, "U8", [1, 256], codes),
                        (BITNET_W + "_scale", scale_dtype, [1], f32_bytes([scale]))],
                       {"format": "pt"})


case("st_bitnet_hf_bad_code.safetensors", bitnet_hf(b"\x03" + ternary_code_bytes(255, 3), 0.5),
     "a bitnet-hf weight with a stored code 3 (bits 11)", "codes", "InvalidCode",
     [f"tensor '{BITNET_W}'", "bitnet-hf: invalid code 3 at value index 0"], stage="convert", tensor=BITNET_W)
case("st_bitnet_hf_nan_scale.safetensors", bitnet_hf(ternary_code_bytes(256, 3), NAN),
     "a bitnet-hf weight whose weight_scale is NaN", "non-finite", "NonFinite",
     [f"tensor '{BITNET_W}'", "non-finite value NaN at index 0 of weight_scale"], stage="convert", tensor=BITNET_W)


# ------------------------------------------------------------------ GGUF

def gguf_model(q_vals=None, norm=None, extra_kvs=(), alignment_kv=True):
    kvs = [("general.architecture", STRING, "llama"),
           ("general.name", STRING, "tiny corpus model"),
           ("tokenizer.ggml.tokens", ARRAY, (STRING, ["<s>", "</s>", "hello", "world"]))]
    if alignment_kv:
        kvs.append(("general.alignment", U32, 32))
    kvs += list(extra_kvs)
    q = values(1024, 1) if q_vals is None else q_vals
    return Gguf(kvs, [
        ("token_embd.weight", [64, 8], GGML_F16, f16_bytes(values(512, 2))),
        (ATTN_Q, [256, 4], GGML_F32, f32_bytes(q)),
        ("blk.0.attn_norm.weight", [256], GGML_F16, f16_bytes([1.0] * 256) if norm is None else norm),
    ])


G = gguf_model()
VALID_GGUF = G.bytes


def gguf_bytes(version=3, tensor_count=None, kv_count=None, kvs=b"", infos=b"", n_tensors=0, n_kvs=0,
               data=b"", alignment=32):
    head = b"GGUF" + struct.pack("<I", version)
    head += struct.pack("<QQ", n_tensors if tensor_count is None else tensor_count,
                        n_kvs if kv_count is None else kv_count)
    body = head + kvs + infos
    return body + bytes(-len(body) % alignment) + data


def one_tensor(name=b"w", ne=(256,), ggml_type=GGML_F32, offset=0, data=None, kvs=b"", n_kvs=0):
    info = gguf_string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
    info += struct.pack("<IQ", ggml_type, offset)
    n = 1
    for d in ne:
        n *= d
    if data is None:
        data = bytes(min(n, 1 << 16) * 4)
    return gguf_bytes(kvs=kvs, infos=info, n_tensors=1, n_kvs=n_kvs, data=data)


# Truncation inside every section.
case("gguf_trunc_magic.gguf", VALID_GGUF[:3], "cut inside the magic (3 bytes)", "truncation", "Malformed",
     "a file of 3 bytes")
case("gguf_trunc_version.gguf", VALID_GGUF[:6], "cut inside the version", "truncation", "Malformed",
     "version at offset 4 needs 4 bytes, past the end of the file (6 bytes)")
case("gguf_trunc_tensor_count.gguf", VALID_GGUF[:12], "cut inside the tensor count", "truncation", "Malformed",
     "tensor count at offset 8 needs 8 bytes, past the end of the file (12 bytes)")
case("gguf_trunc_kv_count.gguf", VALID_GGUF[:20], "cut inside the metadata count", "truncation", "Malformed",
     "metadata count at offset 16 needs 8 bytes, past the end of the file (20 bytes)")
# One key-value pair and one tensor, so that the counts fit and the cut is found where it is.
SMALL_KV = gguf_kv("general.architecture", STRING, "llama")
SMALL = one_tensor(kvs=SMALL_KV, n_kvs=1)
case("gguf_trunc_metadata_key.gguf", SMALL[:24 + 8 + 10], "cut inside a metadata key", "truncation",
     "Malformed", "metadata key at offset 24 claims 20 bytes, more than the 10 left in the file")
case("gguf_trunc_metadata_key_length.gguf", SMALL[:24 + 5], "cut inside the first metadata key's length",
     "truncation", "Malformed", "1 metadata entries at offset 24 need at least 13 bytes each, more than the 5 left")
VALUE_AT = 24 + 8 + 20 + 4
case("gguf_trunc_metadata_value.gguf", SMALL[:VALUE_AT + 8 + 2], "cut inside a string value",
     "truncation", "Malformed", f"string value at offset {VALUE_AT} claims 5 bytes, more than the 2 left in the file")
U32_KV = gguf_kv("general.alignment", U32, 32)
U32_FILE = one_tensor(kvs=U32_KV, n_kvs=1)
case("gguf_trunc_metadata_u32.gguf", U32_FILE[:24 + 8 + 17 + 4 + 2], "cut inside a UINT32 value",
     "truncation", "Malformed", f"value at offset {24 + 8 + 17 + 4} needs 4 bytes")
ARR_KV = gguf_kv("tokenizer.ggml.tokens", ARRAY, (STRING, ["a" * 16, "b" * 16, "c" * 16]))
ARR_FILE = one_tensor(kvs=ARR_KV, n_kvs=1)
ARR_ITEMS = 24 + 8 + 21 + 4 + 12
case("gguf_trunc_array.gguf", ARR_FILE[:ARR_ITEMS + 24 + 10], "cut inside the second string of an array",
     "truncation", "Malformed", f"string value at offset {ARR_ITEMS + 24} claims 16 bytes")
NUM_KV = gguf_kv("tokenizer.ggml.token_type", ARRAY, (U32, list(range(16))))
NUM_FILE = one_tensor(kvs=NUM_KV, n_kvs=1)
case("gguf_trunc_array_numbers.gguf", NUM_FILE[:24 + 8 + 26 + 4 + 12 + 30], "cut inside an array of UINT32",
     "truncation", "Malformed", "16 array elements at offset")
INFO_AT = 24
NO_KV = one_tensor(name=b"blk.0.attn_q.weight", ne=(256, 4), data=bytes(4096))
case("gguf_trunc_tensor_info.gguf", NO_KV[:INFO_AT + 8 + 19 + 4 + 12], "cut inside a tensor info's dimensions",
     "truncation", "Malformed", f"ne at offset {INFO_AT + 8 + 19 + 4 + 8} needs 8 bytes")
case("gguf_trunc_tensor_info_offset.gguf", NO_KV[:INFO_AT + 8 + 19 + 4 + 16 + 4 + 3],
     "cut inside a tensor info's offset", "truncation", "Malformed",
     f"tensor offset at offset {INFO_AT + 8 + 19 + 4 + 16 + 4} needs 8 bytes")
case("gguf_trunc_alignment_padding.gguf", VALID_GGUF[:G.header_end + (G.data_start - G.header_end) // 2],
     "cut inside the alignment padding before the data section", "truncation", "Malformed",
     ['tensor "token_embd.weight"', "run past the end of the file"])
case("gguf_trunc_data.gguf", VALID_GGUF[:G.data_start + G.offsets[1] + 1000], "cut inside the data section",
     "truncation", "Malformed", [f'tensor "{ATTN_Q}"', "4096 bytes at data offset", "run past the end of the file"])

# Header fields.
case("gguf_version_1.gguf", gguf_bytes(version=1), "GGUF version 1", "version", "Malformed",
     "GGUF v1 (32-bit counts) is not supported")
case("gguf_version_big_endian.gguf", b"GGUF" + struct.pack(">I", 3) + VALID_GGUF[8:],
     "a big-endian version field", "version", "Malformed", "looks big-endian")
case("gguf_version_99.gguf", gguf_bytes(version=99), "GGUF version 99", "version", "Malformed",
     "unsupported version 99 (expected 2 or 3)")
case("gguf_tensor_count_2_63.gguf", gguf_bytes(tensor_count=1 << 63), "a tensor count of 2^63", "counts",
     "Malformed", "9223372036854775808 tensor infos at offset 24 need at least 24 bytes each")
case("gguf_kv_count_2_63.gguf", gguf_bytes(kv_count=1 << 63), "a metadata count of 2^63", "counts",
     "Malformed", "9223372036854775808 metadata entries at offset 24 need at least 13 bytes each")
case("gguf_tensor_count_2_64_minus_1.gguf", gguf_bytes(tensor_count=(1 << 64) - 1), "a tensor count of 2^64 - 1",
     "counts", "Malformed", "18446744073709551615 tensor infos")
case("gguf_array_len_2_63.gguf",
     gguf_bytes(kvs=gguf_string("a") + struct.pack("<IIQ", ARRAY, U8, 1 << 63) + bytes(64), n_kvs=1),
     "an array whose length is 2^63", "counts", "Malformed", "9223372036854775808 array elements")
case("gguf_key_length_beyond_file.gguf",
     gguf_bytes(kvs=struct.pack("<Q", 1 << 40) + b"general.name" + bytes(32), n_kvs=1),
     "a metadata key whose length is 2^40", "string length", "Malformed",
     f"metadata key at offset 24 claims {1 << 40} bytes, more than the")
case("gguf_string_length_beyond_file.gguf",
     gguf_bytes(kvs=gguf_string("general.name") + struct.pack("<IQ", STRING, (1 << 63) + 5) + b"tiny" * 8, n_kvs=1),
     "a string value whose length is 2^63 + 5", "string length", "Malformed",
     f"string value at offset {24 + 8 + 12 + 4} claims {(1 << 63) + 5} bytes")
case("gguf_tensor_name_length_beyond_file.gguf",
     gguf_bytes(infos=struct.pack("<Q", 1 << 33) + b"w" + bytes(40), n_tensors=1),
     "a tensor name whose length is 2^33", "string length", "Malformed",
     f"tensor name at offset 24 claims {1 << 33} bytes")
case("gguf_non_utf8_tensor_name.gguf", one_tensor(name=b"blk.\xff\xfe.weight"), "a tensor name that is not UTF-8",
     "names", "Malformed", "tensor name at offset 24 is not UTF-8")
case("gguf_non_utf8_key.gguf", one_tensor(kvs=gguf_string(b"general.\xc3") + struct.pack("<IB", U8, 1), n_kvs=1),
     "a metadata key that is not UTF-8", "names", "Malformed", "metadata key at offset 24 is not UTF-8")
DUP = Gguf([], [("w", [256], GGML_F32, f32_bytes(values(256, 5))), ("w", [256], GGML_F32, f32_bytes(values(256, 6)))])
case("gguf_duplicate_tensor_name.gguf", DUP.bytes, "two tensors of one name", "names", "Malformed",
     'duplicate tensor name "w" at offset')
case("gguf_duplicate_key.gguf",
     Gguf([("general.name", STRING, "a"), ("general.name", STRING, "b")], [("w", [32], GGML_F32, bytes(128))]).bytes,
     "two metadata entries of one key", "names", "Malformed", 'duplicate metadata key "general.name"')
case("gguf_unknown_value_type.gguf", gguf_bytes(kvs=gguf_string("x") + struct.pack("<II", 13, 0) + bytes(16), n_kvs=1),
     "a metadata value of unknown type 13", "types", "Malformed", 'key "x" has unknown value type 13')
case("gguf_unknown_array_type.gguf",
     gguf_bytes(kvs=gguf_string("x") + struct.pack("<IIQ", ARRAY, 99, 1) + bytes(16), n_kvs=1),
     "an array of unknown element type 99", "types", "Malformed", "has unknown element type 99")
case("gguf_unknown_ggml_type.gguf", one_tensor(ggml_type=99), "a tensor of unknown ggml type 99", "types",
     "Malformed", 'tensor "w": unknown ggml type 99')
case("gguf_bool_2.gguf", one_tensor(kvs=gguf_string("x") + struct.pack("<IB", BOOL, 2), n_kvs=1),
     "a BOOL value of 2", "types", "Malformed", "is 2, not 0 or 1")
NESTED = struct.pack("<I", U8) + struct.pack("<Q", 0)
for _ in range(17):
    NESTED = struct.pack("<IQ", ARRAY, 1) + NESTED
case("gguf_arrays_nested_deep.gguf",
     gguf_bytes(kvs=gguf_string("x") + struct.pack("<I", ARRAY) + NESTED + bytes(32), n_kvs=1),
     "arrays nested 18 deep", "counts", "Malformed", "arrays nested deeper than 16")
case("gguf_alignment_not_power_of_two.gguf",
     one_tensor(kvs=gguf_kv("general.alignment", U32, 48), n_kvs=1),
     "general.alignment 48", "alignment", "Malformed", "general.alignment must be a UINT32 power of two, got 48")
case("gguf_alignment_string.gguf",
     one_tensor(kvs=gguf_kv("general.alignment", STRING, "32"), n_kvs=1),
     "general.alignment given as a string", "alignment", "Malformed", "got a STRING")
case("gguf_alignment_2_31.gguf",
     gguf_bytes(kvs=gguf_kv("general.alignment", U32, 1 << 31), n_kvs=1, alignment=1),
     "general.alignment 2^31 in a file of 57 bytes (reading succeeds: a file may end before the padding "
     "of an empty data section; planning refuses to write 2 GiB of padding)", "alignment", "Unsupported",
     "an alignment of 2147483648 bytes (general.alignment) is over the 16777216 this converter writes",
     stage="plan")

# Tensor infos: dimensions, types, offsets.
case("gguf_too_many_dims.gguf", one_tensor(ne=(2, 2, 2, 2, 2)), "a tensor of 5 dimensions", "shape", "Malformed",
     'tensor "w" has 5 dimensions (at most 4)')
case("gguf_dim_2_63.gguf", one_tensor(ne=(1 << 63, 1), data=bytes(64)), "a dimension of 2^63", "shape",
     "Malformed", "has dimension 9223372036854775808, over 2^63 - 1")
case("gguf_shape_overflow.gguf", one_tensor(ne=(1 << 62, 1 << 62), data=bytes(64)),
     "dimensions whose product overflows 64 bits", "shape", "Malformed", "overflow")
case("gguf_shape_type_mismatch.gguf", one_tensor(ne=(100, 4), ggml_type=GGML_TQ2_0, data=bytes(64)),
     "a TQ2_0 tensor whose rows are 100 values (not whole blocks of 256)", "dtype", "Malformed",
     "TQ2_0 stores rows in blocks of 256 values; a row of 100 values is not a multiple")
case("gguf_byte_count_beyond_file.gguf", one_tensor(ne=(256, 4), data=bytes(2048)),
     "a shape that needs 4096 bytes where the file holds 2048", "byte count", "Malformed",
     "4096 bytes at data offset 0 run past the end of the file")
case("gguf_offset_out_of_range.gguf", one_tensor(offset=1 << 40), "a tensor offset of 2^40", "offsets",
     "Malformed", f"1024 bytes at data offset {1 << 40} run past the end of the file")
case("gguf_offset_overflow.gguf", one_tensor(offset=(1 << 64) - 32), "a tensor offset of 2^64 - 32", "offsets",
     "Malformed", "run past the end of the file")
case("gguf_offset_unaligned.gguf", one_tensor(offset=16, data=bytes(2048)), "a tensor offset of 16 (alignment 32)",
     "offsets", "Malformed", "offset 16 is not a multiple of the alignment 32")
OVERLAP_INFOS = gguf_tensor_info("a", [256], GGML_F32, 0) + gguf_tensor_info("b", [256], GGML_F32, 512)
case("gguf_overlap.gguf", gguf_bytes(infos=OVERLAP_INFOS, n_tensors=2, data=bytes(2048)),
     "two tensors whose bytes overlap", "offsets", "Malformed", 'tensors "a" and "b" overlap')

# Data that reads but does not convert.
case("gguf_nan_f32_weight.gguf", gguf_model(q_vals=with_value(values(1024, 1), 513, NAN)).bytes,
     "a NaN in an F32 weight (reading succeeds; quantizing fails)", "non-finite", "NonFinite",
     [f"tensor '{ATTN_Q}'", "non-finite value NaN at index 513"], stage="convert", tensor=ATTN_Q)
case("gguf_inf_f16_norm.gguf", gguf_model(norm=f16_bytes(with_value([1.0] * 256, 255, -INF))).bytes,
     "-Inf in a 1-D F16 norm (reading succeeds; converting it to F32 fails)", "non-finite", "NonFinite",
     ["tensor 'blk.0.attn_norm.weight'", "non-finite value -inf at index 255"], stage="convert",
     tensor="blk.0.attn_norm.weight")
BAD_TQ2 = bytearray(tq2_0_bytes(4, 7))
BAD_TQ2[66 + 5] |= 0x30  # block 1, byte 5, bits 4-5: code 3
case("gguf_tq2_0_bad_code.gguf", Gguf([], [("w", [256, 4], GGML_TQ2_0, bytes(BAD_TQ2))]).bytes,
     "a TQ2_0 tensor with a stored code 3, re-packed to TQ1_0", "codes", "InvalidCode",
     ["tensor 'w'", "tq2_0: invalid code 3 at value index"], stage="convert", tensor="w", layout="tq1_0")
case("gguf_tq2_0_scales_differ.gguf",
     Gguf([], [("w", [256, 2], GGML_TQ2_0, tq2_0_bytes(1, 8, 0.5) + tq2_0_bytes(1, 9, 0.25))]).bytes,
     "TQ2_0 blocks with different scales, re-packed to I2_S (one scale per tensor)", "scales", "Unsupported",
     ["tensor 'w'", "blocks 0 and 1 have different scales"], stage="convert", tensor="w", layout="i2_s")
BAD_I2S = bytearray(i2_s_bytes(256 * 4, 10))
BAD_I2S[256:260] = struct.pack("<f", INF)
case("gguf_i2_s_inf_scale.gguf", Gguf([], [("w", [256, 4], GGML_I2_S, bytes(BAD_I2S))]).bytes,
     "an I2_S tensor whose scale is +Inf, re-packed to TQ2_0", "non-finite", "NonFinite",
     ["tensor 'w'", "non-finite value inf at index 0 of I2_S scale"], stage="convert", tensor="w")


# ------------------------------------------------------------------ model folders

FOLDERS = os.path.join(HERE, "folders")
folders = []

FOLDER_CONFIG = {
    "architectures": ["LlamaForCausalLM"], "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
    "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 64, "rms_norm_eps": 1e-5,
    "vocab_size": 8, "tie_word_embeddings": False,
}
FOLDER_TOKENIZER = {
    "added_tokens": [{"id": 0, "content": "<s>", "special": True}],
    "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
    "model": {"type": "BPE", "vocab": {"<s>": 0, "a": 1, "b": 2, "ab": 3, "c": 4, "d": 5, "cd": 6, "e": 7},
              "merges": ["a b", "c d"]},
}


def folder_weights(kv_rows=4, extra=()):
    """A 1-layer LLaMA of hidden size 8 (2 heads of 4, 1 KV head) in F32."""
    shapes = [
        ("model.embed_tokens.weight", [8, 8]),
        ("model.layers.0.input_layernorm.weight", [8]),
        ("model.layers.0.self_attn.q_proj.weight", [8, 8]),
        ("model.layers.0.self_attn.k_proj.weight", [kv_rows, 8]),
        ("model.layers.0.self_attn.v_proj.weight", [kv_rows, 8]),
        ("model.layers.0.self_attn.o_proj.weight", [8, 8]),
        ("model.layers.0.post_attention_layernorm.weight", [8]),
        ("model.layers.0.mlp.gate_proj.weight", [16, 8]),
        ("model.layers.0.mlp.up_proj.weight", [16, 8]),
        ("model.layers.0.mlp.down_proj.weight", [8, 16]),
        ("model.norm.weight", [8]),
        ("lm_head.weight", [8, 8]),
    ] + list(extra)
    tensors = []
    for i, (name, shape) in enumerate(shapes):
        n = math.prod(shape)
        tensors.append((name, "F32", shape, f32_bytes(values(n, 100 + i))))
    return safetensors(tensors, {"format": "pt"})


def json_bytes(value):
    return (json.dumps(value, indent=1) + "\n").encode()


def folder(name, what, category, stage, contains, files=None, drop=(), config=None, tokenizer=None):
    """Adds one model folder: the valid one with `files` replaced or added and `drop`
    left out. `stage` is where the error occurs: open (finding the folder's files),
    folder (reading config.json and the tokenizer) or plan (against the tensors)."""
    content = {
        "config.json": json_bytes(FOLDER_CONFIG if config is None else config),
        "tokenizer.json": json_bytes(FOLDER_TOKENIZER if tokenizer is None else tokenizer),
        "model.safetensors": folder_weights(),
    }
    content.update(files or {})
    for file in drop:
        del content[file]
    entry = {"dir": name, "what": what, "category": category, "stage": stage,
             "contains": contains if isinstance(contains, list) else [contains]}
    assert not any(e["dir"] == name for e, _ in folders), name
    folders.append((entry, content))


def without(d, key):
    return {k: v for k, v in d.items() if k != key}


folder("no_config", "no config.json", "missing file", "open", ["config.json: no such file"], drop=["config.json"])
folder("no_weights", "no model.safetensors nor an index", "missing file", "open",
       ["no model.safetensors or model.safetensors.index.json"], drop=["model.safetensors"])
folder("missing_shard", "an index naming a shard that is not there", "missing file", "open",
       ["model-00002-of-00002.safetensors: no such file"], drop=["model.safetensors"], files={
           "model.safetensors.index.json": json_bytes({"metadata": {}, "weight_map": {
               "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
               "lm_head.weight": "model-00002-of-00002.safetensors"}}),
           "model-00001-of-00002.safetensors": folder_weights(),
       })
folder("config_syntax", "config.json cut in the middle", "syntax", "folder", ["config.json: (file): "],
       files={"config.json": json_bytes(FOLDER_CONFIG)[:40]})
folder("config_not_object", "config.json is a JSON array", "syntax", "folder",
       ["config.json: (file): is not a JSON object"], files={"config.json": b"[1, 2, 3]\n"})
folder("config_missing_field", "config.json without hidden_size", "fields", "folder",
       ["config.json: hidden_size: "], config=without(FOLDER_CONFIG, "hidden_size"))
folder("config_bad_value", "num_attention_heads is a string", "fields", "folder",
       ["config.json: num_attention_heads: "], config={**FOLDER_CONFIG, "num_attention_heads": "two"})
folder("config_unknown_architecture", "an architecture the converter does not know", "architecture", "folder",
       ["config.json: architectures: GPTNeoXForCausalLM is not supported (supported: LlamaForCausalLM"],
       config={**FOLDER_CONFIG, "architectures": ["GPTNeoXForCausalLM"]})
folder("config_contradicts_shapes", "two KV heads in config.json, one in the tensors", "shape", "plan",
       ["config.json: num_key_value_heads: ", "model.layers.0.self_attn.k_proj.weight"],
       config={**FOLDER_CONFIG, "num_key_value_heads": 2})
folder("config_too_few_layers", "config.json says one layer, the tensors have a second", "shape", "plan",
       ["config.json: num_hidden_layers: 1 contradicts tensor model.layers.1.input_layernorm.weight"],
       files={"model.safetensors": folder_weights(extra=[("model.layers.1.input_layernorm.weight", [8])])})
folder("unknown_tensor", "a tensor the architecture does not have", "names", "plan",
       ["model.safetensors: model.vision_tower.proj.weight: not a tensor of llama"],
       files={"model.safetensors": folder_weights(extra=[("model.vision_tower.proj.weight", [8, 8])])})
folder("tokenizer_syntax", "tokenizer.json is not JSON", "syntax", "folder", ["tokenizer.json: (file): "],
       files={"tokenizer.json": b"{ model: BPE }\n"})
folder("tokenizer_unsupported_model", "a WordPiece tokenizer, which llama.cpp's llama does not run", "tokenizer",
       "folder", ["tokenizer.json: model.type: "],
       tokenizer={**FOLDER_TOKENIZER, "model": {"type": "WordPiece", "vocab": {"a": 0}}})
folder("no_tokenizer", "neither tokenizer.json nor tokenizer.model", "missing file", "folder",
       ["tokenizer.json: (file): missing: the folder needs tokenizer.json or tokenizer.model"],
       drop=["tokenizer.json"])
folder("tokenizer_model_garbage", "a tokenizer.model that is not a SentencePiece model", "syntax", "folder",
       ["tokenizer.model: "], files={"tokenizer.model": b"\x0a\xff\xff\xff\xff\x0f garbage"})


def main():
    check = "--check" in sys.argv[1:]
    manifest = {"about": "Malformed model files and the error each must give; see README.md.",
                "cases": [entry for entry, _ in cases],
                "folders": [entry for entry, _ in folders]}
    text = json.dumps(manifest, indent=1, ensure_ascii=True) + "\n"
    wanted = {entry["file"]: data for entry, data in cases}
    if check:
        bad = [f for f, d in wanted.items()
               if not os.path.exists(os.path.join(FILES, f)) or open(os.path.join(FILES, f), "rb").read() != d]
        extra = sorted(set(os.listdir(FILES)) - set(wanted)) if os.path.isdir(FILES) else []
        with open(os.path.join(HERE, "manifest.json")) as f:
            if f.read() != text:
                bad.append("manifest.json")
        for entry, content in folders:
            d = os.path.join(FOLDERS, entry["dir"])
            present = sorted(os.listdir(d)) if os.path.isdir(d) else []
            if present != sorted(content) or any(open(os.path.join(d, f), "rb").read() != b for f, b in content.items()):
                bad.append(f"folders/{entry['dir']}")
        if os.path.isdir(FOLDERS):
            extra += sorted(set(os.listdir(FOLDERS)) - {e["dir"] for e, _ in folders})
        if bad or extra:
            sys.exit(f"out of date: {bad}; not in the manifest: {extra} (run tests/malformed/generate.py)")
        print(f"{len(cases)} files and {len(folders)} folders up to date")
        return
    os.makedirs(FILES, exist_ok=True)
    for name in os.listdir(FILES):
        if name not in wanted:
            os.remove(os.path.join(FILES, name))
    for name, data in wanted.items():
        with open(os.path.join(FILES, name), "wb") as f:
            f.write(data)
    shutil.rmtree(FOLDERS, ignore_errors=True)
    for entry, content in folders:
        d = os.path.join(FOLDERS, entry["dir"])
        os.makedirs(d)
        for name, data in content.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
    with open(os.path.join(HERE, "manifest.json"), "w") as f:
        f.write(text)
    print(f"wrote {len(cases)} files and {len(folders)} folders")


if __name__ == "__main__":
    main()
