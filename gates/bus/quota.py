"""Meeting a bus's quota: the same rule on every backend, written against `BusAdmin`.

The oldest unpinned slots go first; damaged slots are never pruned (they may be
recoverable), nor is the slot just published.
"""

from __future__ import annotations

import logging

from .contract import BusAdmin
from .errors import SlotNotFound

log = logging.getLogger("dataset_gates")


def enforce_quota(bus: BusAdmin, quota: int | None, protect: str | None = None) -> list[str]:
    """Delete the oldest unpinned slots of `bus` until it uses at most `quota` bytes; returns
    their ids. `protect` (the slot just published) is never removed."""
    if quota is None:
        return []
    used = bus.usage()
    removed: list[str] = []
    for info in sorted(bus.list(), key=lambda s: s.created):
        if used <= quota:
            break
        if info.pinned or info.error or info.id == protect:
            continue
        try:
            freed = bus.delete(info.id)
        except SlotNotFound:  # another process removed it first: just measure again
            used = bus.usage()
            continue
        used -= freed
        removed.append(info.id)
        log.info("bus quota: removed slot %r (%d bytes)", info.id, freed)
    if used > quota:
        log.warning("%s uses %d bytes, over its quota of %d, with nothing left to prune", bus.name, used, quota)
    return removed
