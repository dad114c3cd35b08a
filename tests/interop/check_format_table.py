"""The crate's format table against gguf-py's constants.

Usage: check_format_table.py TABLE.json

TABLE.json holds {"formats": [...], "ggmlTypes": [[id, name, block values, block bytes], ...]}
as the crate writes them. Every ggml type the crate knows must have gguf-py's id, name
and GGML_QUANT_SIZES entry, and every format's llama.cpp file type must be gguf-py's
LlamaFileType of the same name. I2_S (type 36, file type 40) is bitnet.cpp's, which
gguf-py does not list; it is checked against bitnet.cpp's numbers instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType, LlamaFileType

from common import check, fail

BITNET_CPP = {"I2_S": {"ggml": 36, "file_type": 40, "block": (128, 32)}}


def main() -> None:
    if len(sys.argv) != 2:
        fail("usage: check_format_table.py TABLE.json")
    table = json.loads(Path(sys.argv[1]).read_text())
    seen = set()
    for type_id, name, block_values, block_bytes in table["ggmlTypes"]:
        check(type_id not in seen, f"ggml type {type_id} listed twice")
        seen.add(type_id)
        if name in BITNET_CPP:
            check(BITNET_CPP[name]["ggml"] == type_id, f"{name}: type {type_id}")
            check(BITNET_CPP[name]["block"] == (block_values, block_bytes), f"{name}: block")
            continue
        try:
            ref = GGMLQuantizationType[name]
        except KeyError:
            fail(f"gguf-py has no ggml type {name}")
        check(ref.value == type_id, f"{name}: ours {type_id}, gguf-py {ref.value}")
        check(GGML_QUANT_SIZES[ref] == (block_values, block_bytes),
              f"{name}: ours {(block_values, block_bytes)}, gguf-py {GGML_QUANT_SIZES[ref]}")
    missing = [t.name for t in GGMLQuantizationType if t.value not in seen]
    check(not missing, f"ggml types gguf-py lists and the crate does not: {missing}")

    file_types = 0
    for f in table["formats"]:
        if f["fileType"] is None:
            continue
        file_types += 1
        if f["typeName"] in BITNET_CPP:
            check(BITNET_CPP[f["typeName"]]["file_type"] == f["fileType"], f"{f['typeName']}: file type")
            continue
        want = "ALL_F32" if f["typeName"] == "F32" else f"MOSTLY_{f['typeName']}"
        check(LlamaFileType[want].value == f["fileType"],
              f"{f['typeName']}: file type ours {f['fileType']}, gguf-py {LlamaFileType[want].value}")
        if f["ggmlType"] is not None:
            ref = GGMLQuantizationType[f["typeName"]]
            check(ref.value == f["ggmlType"], f"{f['typeName']}: ggml type")
    check(file_types >= 6, f"only {file_types} formats carry a file type")
    print(f"format table: {len(seen)} ggml types and {file_types} file types agree with gguf-py")


if __name__ == "__main__":
    main()
