"""Slot files as a foreign writer or an attacker leaves them: crafted headers of every shape,
nested JSON, and our own files with a header changed. Shared by the contract suite, the
routes, the command line and the fuzzer."""

from __future__ import annotations

import json
import struct
from collections.abc import Callable


def with_header(data: bytes, edit: Callable[[dict], object]) -> bytes:
    """The slot file `data` with its JSON header changed by `edit` (in place), the tensor bytes
    kept: how a foreign writer or a crafted file differs from ours."""
    (length,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + length])
    edit(header)
    text = json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data[8 + length :]


def crafted(header: object, tail: bytes = b"\0" * 12) -> bytes:
    """A slot file with `header` (JSON text, or a value to encode) and `tail` as its data."""
    text = (header if isinstance(header, str) else json.dumps(header)).encode()
    return struct.pack("<Q", len(text)) + text + tail


def ours(**fields: object) -> dict:
    """A header in our format for a 1x1x1x3 float32 image, with `fields` in __metadata__."""
    meta = {"format": "dataset-gates.slot", "created": "1700000000", "checksum": "xxh3:0", **fields}
    return {"__metadata__": meta, "image": {"dtype": "F32", "shape": [1, 1, 1, 3], "data_offsets": [0, 12]}}


def nested(levels: int) -> object:
    """A list nested `levels` deep, built without recursion."""
    value: object = 0
    for _ in range(levels):
        value = [value]
    return value


CRAFTED = {
    "empty": b"",
    "short": b"\x00" * 7,
    "huge length": struct.pack("<Q", 1 << 40) + b"{}",
    "no header": struct.pack("<Q", 2) + b"{}",
    "not json": struct.pack("<Q", 9) + b"not json!",
    "a list": crafted("[]"),
    "a string": crafted('"image"'),
    "metadata a list": crafted({**ours(), "__metadata__": []}),
    "image a list": crafted({**ours(), "image": ["F32"]}),
    "dtype a list": crafted(ours() | {"image": {"dtype": ["F32"], "shape": [1, 1, 1, 3], "data_offsets": [0, 12]}}),
    "dtype an object": crafted(
        ours() | {"image": {"dtype": {"F32": 1}, "shape": [1, 1, 1, 3], "data_offsets": [0, 12]}}
    ),
    "shape an object": crafted(ours() | {"image": {"dtype": "F32", "shape": {"a": 1}, "data_offsets": [0, 12]}}),
    "meta a number": crafted(ours(meta=10**12)),
    "meta an object": crafted(ours(meta={"a": 1})),
    "created a list": crafted(ours(created=[1])),
    "seq not a number": crafted(ours(seq="../1")),
    "header nested 100000 deep": crafted("[" * 100_000 + "]" * 100_000),
    "meta nested 100000 deep": crafted(ours(meta="[" * 100_000 + "]" * 100_000)),
    "meta nested 65 deep": crafted(ours(meta=json.dumps({"a": nested(64)}))),
}
