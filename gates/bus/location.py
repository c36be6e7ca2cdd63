"""`open_bus(location)`: the one place a bus is made, from what a person or a setting names.

Every caller (the ComfyUI adapter, the command line, the script API, `gates serve`) passes
the location it was given here and keeps the bus it gets back; none of them builds a backend
or a path of its own. A location is a folder (a path, or `file://` + an absolute path) or
`memory://<name>`; a location with any other scheme is refused, never taken for a folder
named `s3:`.
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
            for a bus held in this process.

    Returns:
        A bus that keeps the whole contract (`SlotBus` and `BusAdmin`).

    Raises:
        ValueError: a location whose scheme no backend serves (the message lists those that
            are served).
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
    raise ValueError(f"no bus backend serves {scheme}:// locations; use a folder path, file:///path or memory://name")
