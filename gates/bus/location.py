"""`open_bus(location)`: the one place a bus is made, from what a person or a setting names.

Every caller (the ComfyUI adapter, the command line, the script API, `gates serve`) passes
the location it was given here and keeps the bus it gets back; none of them builds a backend
or a path of its own. A location is a folder (a path, or `file://` + an absolute path) or
`memory://<name>`, or `s3://bucket/prefix` for an S3-compatible bucket (AWS S3, R2, MinIO:
the `object` backend, which needs the `s3` extra); a location with any other scheme is
refused, never taken for a folder named `gs:`.
"""

from __future__ import annotations

import os
import re
from urllib.parse import unquote, urlsplit

from .contract import BusAdmin

_SCHEME_RE = re.compile(r"([A-Za-z][A-Za-z0-9+.-]+)://")
Location = str | os.PathLike[str]


def scheme_of(location: Location) -> str | None:
    """'memory' for 'memory://x', None for a plain path (Windows drive letters included)."""
    m = _SCHEME_RE.match(os.fspath(location))
    return m[1].lower() if m else None


def open_bus(location: Location) -> BusAdmin:
    """The bus at `location`.

    Args:
        location: a folder (`ComfyUI/input/gate_bus`, `file:///srv/bus`), or `memory://<name>`
            for a bus held in this process, or `s3://bucket/prefix` for a bucket (credentials
            and endpoint from the standard AWS variables or files, never the location).

    Returns:
        A bus that keeps the whole contract (`SlotBus` and `BusAdmin`).

    Raises:
        ValueError: a location whose scheme no backend serves (the message lists those that
            are served), a malformed s3:// location, or one without obstore installed (the
            message names the fix: a clean error on the command line, not a traceback).
    """
    scheme = scheme_of(location)
    if scheme is None:
        from .local import SlotStore

        return SlotStore(location)
    text = os.fspath(location)
    if scheme == "file":
        from .local import SlotStore

        return SlotStore(unquote(urlsplit(text).path))
    if scheme == "memory":
        from .memory import MemoryBus

        return MemoryBus(text[len("memory://") :])
    if scheme == "s3":
        try:
            import obstore  # noqa: F401  (only to say what is missing before anything else)
        except ImportError:
            raise ValueError(f'an s3:// bus needs obstore: pip install "dataset-gates[s3]" (for {text})') from None
        from .object import ObjectBus

        return ObjectBus(text)
    raise ValueError(
        f"no bus backend serves {scheme}:// locations; use a folder path, file:///path, memory://name "
        "or s3://bucket/prefix"
    )
