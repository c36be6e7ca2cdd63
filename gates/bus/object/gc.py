"""`gates gc` on an object bus: what crashed writers and races leave behind, collected.

A writer killed between writing its version objects and swapping the manifest leaves
objects that no manifest names: nobody lists or reads them, but they take room. One killed
between the swap and the index update leaves a stale listing row. This finds both: every
version object no manifest names and older than `grace` seconds (younger ones may belong
to a publish still in flight) is deleted; every row that is missing or older than its
manifest is rewritten; empty manifests (deleted slots) older than `grace` and their
tombstone rows are dropped.

It reads every manifest, so it costs one request per slot: an administrator's command, not
something a publish does.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ..errors import SlotCorrupt
from ..ids import is_slot_name
from . import manifest as mf
from .index import Row
from .store import ObjectBus, manifest_key

DEFAULT_GRACE = 3600.0  # an hour: far longer than any publish takes


@dataclass
class GcReport:
    """What a collection found (and, unless a dry run, removed or repaired)."""

    objects_removed: int = 0
    bytes_freed: int = 0
    rows_repaired: int = 0
    slots_forgotten: int = 0  # empty manifests of deleted slots
    damaged: int = 0  # manifests that could not be read: left alone


def _age(meta: dict[str, Any], now: float) -> float:
    when = meta.get("last_modified")
    return now - when.timestamp() if isinstance(when, datetime) else 0.0


def collect_garbage(bus: ObjectBus, grace: float = DEFAULT_GRACE, dry_run: bool = False) -> GcReport:
    """Collect what `bus` no longer names (see the module's docstring)."""
    report = GcReport()
    now = time.time()
    doing = f"collect garbage in {bus.name}"
    slots = {
        m["path"][len("slots/") : -len(".json")]: m
        for m in bus.client.listing("slots/", doing)
        if m["path"].endswith(".json") and is_slot_name(m["path"][len("slots/") : -len(".json")])
    }
    with ThreadPoolExecutor(max_workers=16) as pool:
        manifests = dict(zip(slots, pool.map(lambda s: _read(bus, s), slots)))
    named: set[str] = set()
    for m in manifests.values():
        if m is None:
            report.damaged += 1
        else:
            named.update(v.name for v in m.versions)
    # every manifest was read before the versions are listed: an object written after our
    # read and named since is younger than `grace`, so it is never taken for a stray
    strays = []
    for meta in bus.client.listing("versions/", doing):
        stem = meta["path"][len("versions/") :].rsplit(".", 1)[0]
        if stem not in named and _age(meta, now) > grace:
            strays.append(meta["path"])
            report.bytes_freed += int(meta.get("size") or 0)
    report.objects_removed = len(strays)
    forget = [s for s, m in manifests.items() if m is not None and not m.versions and _age(slots[s], now) > grace]
    report.slots_forgotten = len(forget)
    rows, _ = bus.index.read()
    repair = {
        s: m
        for s, m in manifests.items()
        if m is not None and m.versions and (s not in rows or rows[s].seq < m.seq or rows[s].info is None)
    }
    gone = {s for s, r in rows.items() if s not in manifests or s in forget}
    report.rows_repaired = len(repair) + len(gone)
    if dry_run:
        return report
    for at in range(0, len(strays), 1000):
        bus.client.delete(strays[at : at + 1000], doing)
    bus.client.delete([manifest_key(s) for s in forget], doing)
    fresh = {s: Row(m.seq, m.used, bus._info_or_damaged(s)) for s, m in repair.items()}

    def change(current: dict[str, Row]) -> bool:
        for s, row in fresh.items():
            if s not in current or current[s].seq <= row.seq:
                current[s] = row
        for s in gone:
            if s in current and (current[s].info is None or s not in manifests):
                del current[s]
        return bool(fresh or gone)

    bus.index.update(change, doing)
    return report


def _read(bus: ObjectBus, slot_id: str) -> mf.Manifest | None:
    try:
        return bus._manifest(slot_id)[0]
    except SlotCorrupt:
        return None
