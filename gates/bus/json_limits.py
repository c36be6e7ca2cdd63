"""JSON from outside, within bounds: slot headers and meta, the storage policy, request bodies.

Python's json recurses once per nesting level, so 40 KB of `[` raises RecursionError from
deep inside the parser, past every handler that expects ValueError. Text is therefore scanned
for its nesting depth first (brackets outside strings, in C-speed passes) and refused as
ValueError when it is nested deeper than MAX_DEPTH; our own JSON needs at most a handful of
levels. A number too large for a float (`1e999`) and the non-JSON NaN and Infinity read back
as null, so everything parsed here can be written out again as strict JSON (`dumps`).
"""

from __future__ import annotations

import gc
import itertools
import json
import math
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

MAX_DEPTH = 64
# A string, or an unterminated one up to the end of the text (the parser stops there anyway).
# Each quote that starts a string is scanned once: linear on any input, however many quotes.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*(?:"|\\?\Z)', re.DOTALL)
_NOT_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))  # deleted by bytes.translate
_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # +1 and, as a signed byte, -1


def depth(text: str) -> int:
    """How deep the arrays and objects of JSON `text` nest (0 for a scalar), counting the
    brackets outside strings; what a parser would recurse into before it could fail.

    Every pass runs in C (a regex, a translate, an accumulate), without numpy: a saved
    listing of 10,000 rows has 140,000 brackets, and importing numpy would cost a `gates ls`
    more than the whole scan."""
    outside = _STRING.sub("", text).encode("utf-8", "surrogatepass")
    steps = memoryview(outside.translate(_STEP, _NOT_BRACKET)).cast("b")
    return max(0, max(itertools.accumulate(steps), default=0))


def _finite(text: str) -> float | None:
    value = float(text)
    return value if math.isfinite(value) else None


def loads(data: bytes | bytearray | memoryview | str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON `data` (text, or bytes in any encoding json itself accepts); ValueError when
    it is not JSON or nests deeper than `max_depth`, TypeError when it is neither text nor
    bytes. Numbers that are not finite read as None."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        data = raw.decode(json.detect_encoding(raw), "surrogatepass")  # as json.loads decodes
    elif not isinstance(data, str):  # bytes(10**12) would allocate a terabyte
        raise TypeError(f"JSON must be text, not {type(data).__name__}")
    if depth(data) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")
    return json.loads(data, parse_float=_finite, parse_constant=lambda _: None)


def plain(value: Any, what: str, max_depth: int = MAX_DEPTH) -> Any:
    """`value` ready for `dumps`: tuples as lists, numbers that are not finite as None.
    ValueError naming `what` when it nests deeper than `max_depth` (a cycle nests forever)."""

    def walk(v: Any, level: int) -> Any:
        if isinstance(v, (dict, list, tuple)) and level >= max_depth:
            raise ValueError(f"{what} is nested deeper than {max_depth} levels")
        if isinstance(v, dict):
            return {k: walk(item, level + 1) for k, item in v.items()}
        if isinstance(v, (list, tuple)):
            return [walk(item, level + 1) for item in v]
        if isinstance(v, float) and not math.isfinite(v):
            return None
        return v

    return walk(value, 0)


def dumps(value: Any, **kwargs: Any) -> str:
    """Strict JSON (no NaN or Infinity, which JSON.parse refuses): what every response and
    the command line's --json print."""
    return json.dumps(value, allow_nan=False, **kwargs)


_paused = 0  # how many `gc_paused` blocks are running, in every thread
_paused_lock = threading.Lock()
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Run the block with Python's cyclic garbage collector off (and back on after, unless it
    was off before the first of overlapping blocks).

    Parsing a big document (10,000 listing rows) allocates hundreds of thousands of lists,
    dicts and objects, and every 700 of them start a collection that walks the young
    objects; the older generations' passes walk the whole heap, which in ComfyUI holds
    millions of objects. Measured: 2/3 of a 10,000-row index's parse in a process with torch
    loaded. Such a parse makes no reference cycles, so nothing waits on the collector; the
    pause is process-wide (every thread) and lasts the parse, tens of milliseconds.
    """
    global _paused, _was_enabled
    with _paused_lock:
        if _paused == 0:
            _was_enabled = gc.isenabled()
            gc.disable()
        _paused += 1
    try:
        yield
    finally:
        with _paused_lock:
            _paused -= 1
            if _paused == 0 and _was_enabled:
                gc.enable()
