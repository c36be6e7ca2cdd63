"""A slot's manifest: the small JSON object that says which immutable version objects the slot
holds, newest first, and whether it is pinned.

A manifest is only ever replaced by a conditional write (If-Match on the ETag it was read
with; If-None-Match: * for a slot's first), so two writers that read the same manifest cannot
both replace it: the loser reads again and retries on top of the winner, and both versions
land in history. A version object is written whole before any manifest names it, so a reader
never finds a manifest pointing at a missing or half-written version, except one pruned
since it read the manifest, which it then reads again (see `store`).

A deleted slot keeps its manifest with no versions, so its `seq` never goes back: the
listing index orders the rows of a slot by it. `gates gc` removes such empty manifests.

Manifests come from the store, so they are parsed as untrusted: a size cap, a version name
that can only name an object under `versions/`, numbers in range. Anything else is damage.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field, replace

from .. import json_limits
from ..errors import SlotCorrupt

FORMAT = "dataset-gates.manifest"
MAX_MANIFEST_BYTES = 256 << 10  # 100 versions of ~150 bytes; a bigger one is damage
NAME_RE = re.compile(r"\d{20}-[0-9a-f]{16}")  # time_ns and 64 random bits: unique, sorts by time
MAX_BYTES = 1 << 48


@dataclass(frozen=True)
class Version:
    """One kept version: its object's name (under `versions/`), sizes and creation time."""

    name: str
    bytes: int
    thumb: int | None  # the thumbnail's size; None when the version has none
    created: float

    @property
    def used(self) -> int:
        return self.bytes + (self.thumb or 0)


@dataclass(frozen=True)
class Manifest:
    seq: int = 0  # bumped by every change; never goes back, not even through a delete
    pinned: bool = False
    versions: tuple[Version, ...] = field(default_factory=tuple)

    @property
    def used(self) -> int:
        return sum(v.used for v in self.versions)

    def published(self, version: Version, keep: int) -> tuple[Manifest, list[Version]]:
        """This manifest with `version` as the newest, and the versions beyond `keep` dropped."""
        kept = (version, *self.versions)
        return replace(self, seq=self.seq + 1, versions=kept[:keep]), list(kept[keep:])

    def emptied(self) -> Manifest:
        """What a delete leaves: no versions, no pin, the next seq."""
        return Manifest(seq=self.seq + 1)


def to_json(m: Manifest) -> bytes:
    return json.dumps(
        {
            "format": FORMAT,
            "seq": m.seq,
            "pinned": m.pinned,
            "versions": [
                {"name": v.name, "bytes": v.bytes, "thumb": v.thumb, "created": v.created} for v in m.versions
            ],
        },
        separators=(",", ":"),
    ).encode()


def _count(raw: object, what: str) -> int:
    if type(raw) is not int or not 0 <= raw < MAX_BYTES:
        raise SlotCorrupt(f"the manifest's {what} is not a size")
    return raw


def from_json(data: bytes) -> Manifest:
    """The manifest in `data`; SlotCorrupt for anything else."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise SlotCorrupt("the manifest is too large")
    try:
        raw = json_limits.loads(data.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise SlotCorrupt("the manifest is not JSON") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT or not isinstance(raw.get("versions"), list):
        raise SlotCorrupt("the manifest is not a Dataset Gates manifest")
    seq, pinned = raw.get("seq"), raw.get("pinned", False)
    if type(seq) is not int or not 0 <= seq < MAX_BYTES or not isinstance(pinned, bool):
        raise SlotCorrupt("the manifest's seq or pin is unreadable")
    versions = []
    for item in raw["versions"][:200]:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or not NAME_RE.fullmatch(item["name"]):
            raise SlotCorrupt("the manifest names a version that is not one of ours")
        thumb = item.get("thumb")
        created = item.get("created")
        if not isinstance(created, (int, float)) or isinstance(created, bool) or not 0 <= created < 1e11:
            raise SlotCorrupt("the manifest's creation time is unreadable")
        versions.append(
            Version(
                item["name"],
                _count(item.get("bytes"), "version size"),
                None if thumb is None else _count(thumb, "thumbnail size"),
                float(created),
            )
        )
    return Manifest(seq, pinned, tuple(versions))
