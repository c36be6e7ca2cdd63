"""The listing index: one object with every slot's listing row, so a listing of 10,000 slots
is one GET, and one round trip (a 304) when nothing changed.

Manifests are the truth; the index is derived from them, and written the same way: read,
change the rows, write back with If-Match (If-None-Match for the first), again on a lost
race. Each row carries the seq of the manifest it was made from, and a row is only ever
replaced by one of a higher seq, so writers that update it out of order still leave the
newest row. A deleted slot leaves a tombstone row (its seq, no info) for the same reason;
`gates gc` drops old tombstones and repairs rows a writer killed mid-publish never wrote.

The ETag of the index is the listing token: it changes whenever the listing does.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .. import json_limits
from ..contract import SlotInfo
from ..errors import SlotCorrupt, SlotWriteError
from ..ids import is_slot_name
from ..rows import FIELDS, Columns, checked, to_list
from .client import Client, Conflict

KEY = "index.json"
FORMAT = "dataset-gates.index"
MAX_INDEX_BYTES = 512 << 20  # 10,000 slots take ~1.5 MB; a parked run's prompt adds its size
MAX_TRIES = 200
_FIRST_FORMAT_KEYS = {"id", *FIELDS}


@dataclass(frozen=True)
class Row:
    """A slot's listing row: from manifest `seq`; `info` None for a deleted slot."""

    seq: int
    used: int
    info: SlotInfo | None


def _unreadable(slot_id: str) -> Row:
    return Row(0, 0, SlotInfo.damaged(slot_id, f"slot {slot_id!r}: its listing row is unreadable; run `gates gc`"))


def _row_from(slot_id: str, raw: Any) -> Row:
    """A row as the first index format stored it (an object per row); an unreadable one
    becomes a damaged row, never a failed listing."""
    try:
        seq, used, info = raw["seq"], raw["used"], raw["info"]
        if type(seq) is not int or type(used) is not int:
            raise TypeError
        if info is None:
            return Row(seq, used, None)
        row = SlotInfo(**{k: v for k, v in info.items() if k in _FIRST_FORMAT_KEYS})
        if row.id != slot_id:
            raise TypeError
        return Row(seq, used, checked(row))
    except (TypeError, KeyError, AttributeError):
        return _unreadable(slot_id)


def _rows(stored: dict[str, Any], names: Any) -> dict[str, Row]:
    """The rows of the compact format: `[seq, used, info]`, info a list of the fields in
    `names` (see `rows.Columns`) or null for a deleted slot."""
    try:
        columns = Columns(names)
    except TypeError:
        raise SlotCorrupt("the bus's listing index is not ours; run `gates gc` to rebuild it") from None
    out = {}
    for slot_id, raw in stored.items():
        if not is_slot_name(slot_id):  # JSON object keys are always strings
            continue
        try:
            seq, used, info = raw  # a list of three, or ValueError / TypeError
            if type(seq) is not int or type(used) is not int:
                raise TypeError
            out[slot_id] = Row(seq, used, None if info is None else columns.info(slot_id, info))
        except (TypeError, ValueError):
            out[slot_id] = _unreadable(slot_id)
    return out


def parse(data: bytes) -> dict[str, Row]:
    """Rows by slot id; SlotCorrupt when the object is not an index at all.

    With the garbage collector paused (`json_limits.gc_paused`): otherwise it walks the heap
    again and again while the rows are made: most of the time a parse took."""
    with json_limits.gc_paused():
        return _parse(data)


def _parse(data: bytes) -> dict[str, Row]:
    try:
        raw = json_limits.loads(data, max_depth=json_limits.MAX_DEPTH + 8)
    except ValueError:
        raise SlotCorrupt("the bus's listing index is not JSON; run `gates gc` to rebuild it") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("rows"), dict):
        raise SlotCorrupt("the bus's listing index is not ours; run `gates gc` to rebuild it")
    if "fields" in raw:
        return _rows(raw["rows"], raw["fields"])
    return {k: _row_from(k, v) for k, v in raw["rows"].items() if isinstance(k, str) and is_slot_name(k)}


def dump(rows: dict[str, Row], note: str = "") -> bytes:
    """The index object's bytes; `note` (a change the rows do not show, e.g. a new policy) makes
    them, and so the ETag that is the listing token, differ from the last ones.

    Each row is a list, `[seq, used, info]`, and info a list of its FIELDS, named once in
    `fields` (see `rows`)."""
    out = {k: [r.seq, r.used, None if r.info is None else to_list(r.info)] for k, r in sorted(rows.items())}
    doc: dict[str, Any] = {"format": FORMAT, "fields": FIELDS, "rows": out}
    if note:
        doc["note"] = note
    return json_limits.dumps(doc, separators=(",", ":")).encode()


@dataclass
class _Cached:
    etag: str
    rows: dict[str, Row]


_cache: dict[str, _Cached] = {}  # by bus location: the last index read, for a 304
_cache_lock = threading.Lock()


class Index:
    """The index of one bus."""

    def __init__(self, client: Client):
        self.client = client
        self.location = client.settings.location + "|" + (client.settings.endpoint or "")

    def read(self) -> tuple[dict[str, Row], str]:
        """The rows and the index's ETag ("" when there is none yet): one request, a 304 when
        the copy this process read last is still current."""
        with _cache_lock:
            cached = _cache.get(self.location)
        got = self.client.get(
            KEY, MAX_INDEX_BYTES, "read the listing index", if_none_match=cached.etag if cached else None
        )
        if got is None:
            return {}, ""
        if got.unchanged and cached is not None:
            return cached.rows, cached.etag
        rows = parse(got.data)
        with _cache_lock:
            _cache[self.location] = _Cached(got.etag, rows)
        return rows, got.etag

    def token(self) -> str:
        """The listing token: the index's ETag, one HEAD."""
        meta = self.client.head(KEY, "read the listing index")
        return str(meta.get("e_tag") or meta.get("last_modified")) if meta else "empty"

    def update(self, change: Callable[[dict[str, Row]], bool], doing: str, note: str = "") -> None:
        """Apply `change` to the rows (it returns False when there is nothing to write) and
        write them back conditionally, reading again after a lost race; `note` as for `dump`.

        The read is conditional on the copy this process read or wrote last: a worker that
        publishes again and again, alone on its bus, gets a 304 instead of the whole index to
        download and parse (1.4 MB and ~70 ms of CPU at 10,000 slots) before each write."""
        for attempt in range(MAX_TRIES):
            with _cache_lock:
                cached = _cache.get(self.location)
            got = self.client.get(
                KEY, MAX_INDEX_BYTES, "read the listing index", if_none_match=cached.etag if cached else None
            )
            if got is not None and got.unchanged and cached is not None:
                rows = dict(cached.rows)  # a copy to change: readers share the cached one
            else:
                try:
                    rows = parse(got.data) if got else {}
                except SlotCorrupt:
                    rows = {}  # damaged: rebuilt from the rows writers add, and by `gates gc`
            if not change(rows):
                return
            try:
                etag = self.client.put(KEY, dump(rows, note), doing, mode={"e_tag": got.etag} if got else "create")
            except Conflict:
                time.sleep(random.uniform(0, min(0.2, 0.005 * 2 ** min(attempt, 6))))
                continue
            with _cache_lock:
                _cache[self.location] = _Cached(etag, rows)
            return
        raise SlotWriteError(f"could not {doing}: the listing index kept changing; run `gates gc` to repair it")

    def touch(self, note: str, doing: str) -> None:
        """Rewrite the rows as they are with `note`, so the listing token moves (a policy change
        changes what a listing reports, not its rows)."""
        self.update(lambda rows: True, doing, note)

    def set_rows(self, new: dict[str, Row], doing: str) -> None:
        """Put each of `new` in place of its slot's row, unless the row there is newer."""

        def change(rows: dict[str, Row]) -> bool:
            changed = False
            for slot_id, row in new.items():
                old = rows.get(slot_id)
                if old is None or old.seq < row.seq or (old.seq == row.seq and old != row):
                    rows[slot_id] = row
                    changed = True
            return changed

        self.update(change, doing)
