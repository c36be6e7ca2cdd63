"""A listing row (SlotInfo) as compact JSON: a list of its fields, in an order named once.

Two listings keep rows between processes: the object bus's index (`object.index`) and the
folder bus's persisted listing (`local.listing`). An object per row would repeat every
field's name per slot, 10,000 times in a big bus: 2.4 times the bytes and about twice the
parse. Both files come from outside (a bucket, a shared folder), so a row is read as
untrusted: the fields a listing relies on are type-checked, and a bad row is TypeError for
the caller to turn into a damaged row or a re-read.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .contract import SlotInfo

FIELDS = tuple(f.name for f in fields(SlotInfo) if f.name != "id")
"""A row is a list of these, in this order; the id is the row's key."""
_KNOWN = set(FIELDS)


def to_list(info: SlotInfo) -> list[Any]:
    """`info`'s fields in FIELDS order (its meta shared, not copied: for JSON out)."""
    return [getattr(info, name) for name in FIELDS]


MAX_CREATED = 1e11  # seconds since the epoch: past the year 5000, and still an int in milliseconds
MAX_COUNT = 1 << 62


def _count(value: Any) -> bool:
    return type(value) is int and 0 <= value <= MAX_COUNT


def _shape(value: Any) -> bool:
    return type(value) is list and len(value) <= 8 and all(_count(n) for n in value)


def _text_or_none(value: Any) -> bool:
    return value is None or type(value) is str


def checked(info: SlotInfo) -> SlotInfo:
    """`info` when every field has the type and range a listing and its JSON rely on (a page
    shows `created` in milliseconds, `ref` negates `version`); TypeError otherwise."""
    if not (
        type(info.created) in (int, float)
        and 0 <= info.created <= MAX_CREATED  # NaN fails too
        and _count(info.bytes)
        and _shape(info.image_shape)
        and type(info.image_dtype) is str
        and (info.mask_shape is None or _shape(info.mask_shape))
        and _text_or_none(info.mask_dtype)
        and (info.latent_shape is None or _shape(info.latent_shape))
        and _text_or_none(info.latent_dtype)
        and type(info.has_thumb) is bool
        and _text_or_none(info.checksum)
        and type(info.meta) is dict
        and _text_or_none(info.error)
        and type(info.version) is int
        and -MAX_COUNT <= info.version <= MAX_COUNT
        and _count(info.versions)
        and type(info.pinned) is bool
    ):
        raise TypeError
    return info


class Columns:
    """How to read rows written with the field names `names` (a writer's FIELDS): by
    position when they are ours, else by name (a later version's extra fields ignored, a
    field it lacks at SlotInfo's default). TypeError when `names` is no list of names."""

    def __init__(self, names: Any):
        if type(names) is not list or not all(type(n) is str for n in names):
            raise TypeError
        self.same = tuple(names) == FIELDS
        self.keep = [(i, n) for i, n in enumerate(names) if n in _KNOWN]
        self.width = len(names)

    def info(self, slot_id: str, values: Any) -> SlotInfo:
        """The checked SlotInfo of slot `slot_id` from a stored row; TypeError when unreadable."""
        if type(values) is not list or len(values) != self.width:
            raise TypeError
        if self.same:
            return checked(SlotInfo(slot_id, *values))
        return checked(SlotInfo(id=slot_id, **{n: values[i] for i, n in self.keep}))
