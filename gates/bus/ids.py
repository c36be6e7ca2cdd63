"""Slot ids and refs: the names a person types, checked before they go near a filesystem.

An id is also a folder name, so the rule is the intersection of what Linux, macOS and Windows
accept; a ref adds `@-N` to name the version N publishes back.
"""

from __future__ import annotations

import re
from typing import Any

ID_RULE = "a slot id is 1-64 characters of letters, digits, '-', '_' and '.', not starting or ending with '.'"
RESERVED_RULE = (
    "names Windows reserves for devices (con, prn, aux, nul, com0-com9, "
    "lpt0-lpt9, with or without an extension) are not allowed"
)
ID_RE = re.compile(r"[A-Za-z0-9_-](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9_-])?")
# Names Windows cannot create, with or without an extension.
RESERVED_RE = re.compile(r"(con|prn|aux|nul|com[0-9]|lpt[0-9])(\..*)?", re.IGNORECASE)
_REF_RE = re.compile(r"(?P<id>[^@]*)@-(?P<back>[1-9][0-9]{0,2})")


def is_slot_name(name: str) -> bool:
    """Whether a folder name could be a slot (what listings accept without raising)."""
    return bool(ID_RE.fullmatch(name)) and not RESERVED_RE.fullmatch(name)


def validate_id(slot_id: Any) -> str:
    """Return `slot_id` if it is a safe folder name, else raise ValueError naming the rule broken."""
    if isinstance(slot_id, str) and ID_RE.fullmatch(slot_id) and RESERVED_RE.fullmatch(slot_id):
        raise ValueError(f"invalid slot id {slot_id!r}: {RESERVED_RULE}")
    if not isinstance(slot_id, str) or not is_slot_name(slot_id):
        raise ValueError(f"invalid slot id {slot_id!r}: {ID_RULE}")
    return slot_id


def parse_ref(ref: Any) -> tuple[str, int]:
    """'id' -> (id, 0), the latest version; 'id@-2' -> (id, 2), two publishes back."""
    m = _REF_RE.fullmatch(ref) if isinstance(ref, str) else None
    if m:
        return validate_id(m["id"]), int(m["back"])
    return validate_id(ref), 0


def format_ref(slot_id: str, back: int) -> str:
    """The inverse of parse_ref: (id, 0) -> 'id', (id, 2) -> 'id@-2'."""
    return f"{slot_id}@-{back}" if back else slot_id
