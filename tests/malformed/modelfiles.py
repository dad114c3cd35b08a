"""Small model files written byte by byte (Python stdlib only).

Used by generate.py (the malformed-file corpus) and by fuzz/make_seeds.py (valid seed
files for the fuzz targets). Everything is deterministic: no clock, no unseeded random.
"""

import json
import random
import struct

# GGUF metadata value types.
U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_FIXED = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<B",
          U64: "<Q", I64: "<q", F64: "<d"}

# ggml tensor types.
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16, GGML_TQ1_0, GGML_TQ2_0, GGML_I2_S = 0, 1, 8, 30, 34, 35, 36


def f32_bytes(values):
    return struct.pack("<%df" % len(values), *values)


def f16_bytes(values):
    return struct.pack("<%de" % len(values), *values)


def bf16_bytes(values):
    """bf16 by round-to-nearest-even of the f32 bits (NaN kept a NaN)."""
    out = bytearray()
    for v in values:
        bits = struct.unpack("<I", struct.pack("<f", v))[0]
        if v != v:
            top = (bits >> 16) | 0x40
        else:
            top = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
        out += struct.pack("<H", top & 0xFFFF)
    return bytes(out)


def values(n, seed, scale=0.05):
    rng = random.Random(seed)
    return [round(rng.gauss(0.0, scale), 6) for _ in range(n)]


def tq2_0_bytes(n_blocks, seed, d=0.03125):
    """Valid TQ2_0 blocks: 64 bytes of 2-bit codes in {0, 1, 2}, then an f16 scale."""
    rng = random.Random(seed)
    out = bytearray()
    for _ in range(n_blocks):
        for _ in range(64):
            b = 0
            for k in range(4):
                b |= rng.randrange(3) << (2 * k)
            out.append(b)
        out += struct.pack("<e", d)
    return bytes(out)


def tq1_0_bytes(n_blocks, seed, d=0.03125):
    """TQ1_0 blocks: 48 + 4 bytes of base-3 digits (every byte decodes), then an f16 scale."""
    rng = random.Random(seed)
    out = bytearray()
    for _ in range(n_blocks):
        out += bytes(rng.randrange(243) for _ in range(52))
        out += struct.pack("<e", d)
    return bytes(out)


def q8_0_bytes(n_blocks, seed, d=0.01):
    rng = random.Random(seed)
    out = bytearray()
    for _ in range(n_blocks):
        out += struct.pack("<e", d)
        out += bytes(rng.randrange(256) for _ in range(32))
    return bytes(out)


def ternary_code_bytes(n, seed):
    """n bytes of four 2-bit codes in {0, 1, 2} (bitnet-hf and I2_S code bytes)."""
    rng = random.Random(seed)
    out = bytearray()
    for _ in range(n):
        b = 0
        for k in range(4):
            b |= rng.randrange(3) << (2 * k)
        out.append(b)
    return bytes(out)


def i2_s_bytes(n_values, seed, scale=0.5):
    return ternary_code_bytes(n_values // 4, seed) + struct.pack("<f", scale) + bytes(28)


# ---------------------------------------------------------------- safetensors

def safetensors_header_json(tensors, metadata=None):
    """The JSON text; tensors are (name, dtype, shape, [begin, end]) in file order."""
    parts = []
    if metadata is not None:
        parts.append('"__metadata__":' + json.dumps(metadata, separators=(",", ":")))
    for name, dtype, shape, (begin, end) in tensors:
        parts.append(json.dumps(name) + ":" + json.dumps(
            {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}, separators=(",", ":")))
    return "{" + ",".join(parts) + "}"


def safetensors_raw(header, data=b"", length=None, pad=True):
    """A safetensors file from header bytes (str or bytes): u64 length, header, data."""
    if isinstance(header, str):
        header = header.encode("utf-8")
    if pad:
        header += b" " * (-len(header) % 8)
    n = len(header) if length is None else length
    return struct.pack("<Q", n) + header + data


def safetensors(tensors, metadata=None):
    """tensors: (name, dtype, shape, bytes), stored contiguously in the order given."""
    entries, data, at = [], b"", 0
    for name, dtype, shape, raw in tensors:
        entries.append((name, dtype, shape, [at, at + len(raw)]))
        data += raw
        at += len(raw)
    return safetensors_raw(safetensors_header_json(entries, metadata), data)


# ---------------------------------------------------------------- GGUF

def gguf_string(s):
    if isinstance(s, str):
        s = s.encode("utf-8")
    return struct.pack("<Q", len(s)) + s


def gguf_value(vtype, value):
    if vtype == STRING:
        return gguf_string(value)
    if vtype == ARRAY:
        elem_type, items = value
        out = struct.pack("<IQ", elem_type, len(items))
        return out + b"".join(gguf_value(elem_type, v) for v in items)
    return struct.pack(_FIXED[vtype], value)


def gguf_kv(key, vtype, value):
    return gguf_string(key) + struct.pack("<I", vtype) + gguf_value(vtype, value)


def gguf_tensor_info(name, ne, ggml_type, offset):
    return (gguf_string(name) + struct.pack("<I", len(ne)) + b"".join(struct.pack("<Q", d) for d in ne)
            + struct.pack("<IQ", ggml_type, offset))


def align(n, a):
    return (n + a - 1) // a * a


class Gguf:
    """A GGUF file and where its sections start (for cutting it inside each one)."""

    def __init__(self, kvs, tensors, alignment=32, version=3, pad_last=True):
        self.alignment = alignment
        head = b"GGUF" + struct.pack("<IQQ", version, len(tensors), len(kvs))
        self.kv_start = len(head)
        kv_bytes = b"".join(gguf_kv(k, t, v) for k, t, v in kvs)
        self.info_start = self.kv_start + len(kv_bytes)
        infos, data, at = b"", b"", 0
        self.offsets = []
        for name, ne, ggml_type, raw in tensors:
            infos += gguf_tensor_info(name, ne, ggml_type, at)
            self.offsets.append(at)
            data += raw
            at += len(raw)
            if pad_last or len(self.offsets) < len(tensors):
                pad = align(at, alignment) - at
                data += bytes(pad)
                at += pad
        self.header_end = self.info_start + len(infos)
        self.data_start = align(self.header_end, alignment)
        self.bytes = head + kv_bytes + infos + bytes(self.data_start - self.header_end) + data


def gguf(kvs, tensors, alignment=32, version=3):
    return Gguf(kvs, tensors, alignment, version).bytes
