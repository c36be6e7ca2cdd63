"""The bus's storage policy: how many versions a slot keeps and how much room the bus may use.

It lives in the bus itself (a folder bus keeps it in `.policy.json`), not in ComfyUI's
settings, so ComfyUI, the command line and the slot browser all obey the same rules for the
same bus. This module holds the rules and their JSON form; each backend stores the bytes.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass

from . import json_limits

MAX_KEEP = 100
_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]?)i?b?\s*", re.IGNORECASE)
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


@dataclass
class Policy:
    keep: int = 1  # versions per slot; 1 = the latest write wins
    quota_bytes: int | None = None  # None = no limit

    def __post_init__(self) -> None:
        if isinstance(self.keep, bool) or not isinstance(self.keep, int) or not 1 <= self.keep <= MAX_KEEP:
            raise ValueError(f"keep must be an integer from 1 to {MAX_KEEP}, got {self.keep!r}")
        if self.quota_bytes is not None and (
            isinstance(self.quota_bytes, bool) or not isinstance(self.quota_bytes, int) or self.quota_bytes < 1
        ):
            raise ValueError(f"quota must be a positive number of bytes, got {self.quota_bytes!r}")


def parse_size(text: str) -> int | None:
    """'500M', '10G', '1.5GiB', '1048576' -> bytes; 'none' or '0' -> no quota."""
    if text.strip().lower() in ("none", "off", "0", ""):
        return None
    m = _SIZE_RE.fullmatch(text)
    if not m:
        raise ValueError(f"size must look like 500M, 10G or 1048576, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def policy_from_json(data: bytes, bus_name: str) -> Policy:
    """The policy a backend stored; a damaged one is an error naming the bus, never a reset."""
    where = f"storage policy of {bus_name}"
    try:
        raw = json_limits.loads(data.decode("utf-8"))
    except ValueError as exc:  # not JSON, or nested so deep that json would recurse out of stack
        raise ValueError(f"{where} is unreadable: {exc}") from None
    if not isinstance(raw, dict):
        raise ValueError(f"{where} must be a JSON object")
    return Policy(keep=raw.get("keep", 1), quota_bytes=raw.get("quota_bytes"))


def policy_to_json(policy: Policy) -> bytes:
    """What a backend stores for `policy`."""
    return json.dumps(asdict(policy), indent=2).encode("utf-8")
