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


def checked(info: SlotInfo) -> SlotInfo:
    """`info` when its fields have the types a listing relies on; TypeError otherwise."""
    if (
        type(info.created) not in (int, float)
        or type(info.bytes) is not int
        or type(info.image_shape) is not list
        or type(info.image_dtype) is not str
        or type(info.meta) is not dict
        or not (info.error is None or type(info.error) is str)
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
