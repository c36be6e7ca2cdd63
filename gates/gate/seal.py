"""The seal on a parked run: Resume queues only what this ComfyUI (or one sharing its secret)
parked itself.

Anyone who can write files into the bus (another user, a sync tool, a slot folder copied from
a colleague) can write a slot whose meta says `parked: true` with a prompt of their choosing;
one click on Resume would queue every node of it. So parking seals what resume uses, the
prompt, the gate's node id and the slot id, with HMAC-SHA256 under a secret kept outside the
bus (the host hands it in: `Hooks.park_secret`; ComfyUI's comes from `gates.comfy.park_secret`),
and resume checks the seal before it queues anything. The batch itself is not sealed: the
resumed gate shows it to a person before anything flows on.

The seal names its key by an id derived from the secret (which reveals nothing of it), so a
refusal can tell "parked by another ComfyUI" from "changed since it was parked".
Pure: no ComfyUI, no disk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SEAL = "seal"  # the parked meta's field
ALGORITHM = "HMAC-SHA256"
VERSION = 1

# Why a seal is refused: the "reason" of the refusal, for pages and scripts.
UNSIGNED, FOREIGN, ALTERED, NO_SECRET = "unsigned", "foreign", "altered", "no_secret"


class ParkRefused(PermissionError):
    """A parked run Resume must not queue; `reason` is UNSIGNED, FOREIGN, ALTERED or NO_SECRET."""

    def __init__(self, message: str, reason: str):
        super().__init__(message)
        self.reason = reason


def _canonical(slot_id: str, node: Any, prompt: Any) -> bytes:
    """One byte string for what resume uses: sorted keys, no spaces, ASCII, so the same
    prompt read back from the slot's JSON header gives the same bytes."""
    return json.dumps(
        {"v": VERSION, "slot": slot_id, "node": node, "prompt": prompt},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    ).encode("ascii")


def key_id(secret: bytes) -> str:
    """A short name for a secret, derived one way from it: equal ids, (almost surely) equal keys."""
    return hmac.new(secret, b"dataset-gates park key id", hashlib.sha256).hexdigest()[:16]


def _mac(secret: bytes, slot_id: str, node: Any, prompt: Any) -> str:
    return hmac.new(secret, _canonical(slot_id, node, prompt), hashlib.sha256).hexdigest()


def seal(secret: bytes, slot_id: str, node: str, prompt: dict[str, Any]) -> dict[str, str]:
    """The seal to store beside a parked prompt in slot `slot_id`, its gate `node`."""
    return {"alg": ALGORITHM, "key": key_id(secret), "mac": _mac(secret, slot_id, node, prompt)}


def check_seal(meta: dict[str, Any], slot_id: str, secret: bytes | None) -> None:
    """Refuse (ParkRefused) a parked meta whose prompt, node or slot id this secret did not seal.

    `secret` None: this host has none it can use, so no parked run can be trusted.
    """
    what = f"slot {slot_id!r} holds a parked run"
    if secret is None:
        raise ParkRefused(
            f"{what}, but this ComfyUI has no usable park secret (its log says why), so it resumes "
            f"nothing: load the batch with get_id={slot_id} instead",
            NO_SECRET,
        )
    given = meta.get(SEAL)
    if not isinstance(given, dict) or not isinstance(given.get("mac"), str):
        raise ParkRefused(
            f"{what} that this ComfyUI did not park (it has no seal), so Resume could run nodes "
            f"someone else chose: refused. Load the batch with get_id={slot_id} if you trust it",
            UNSIGNED,
        )
    if given.get("alg") != ALGORITHM or given.get("key") != key_id(secret):
        raise ParkRefused(
            f"{what} sealed by another ComfyUI (another park secret): refused. Share that "
            f"secret (DATASET_GATES_PARK_SECRET) to resume its runs here, or load the batch "
            f"with get_id={slot_id}",
            FOREIGN,
        )
    try:
        expected = _mac(secret, slot_id, meta.get("node"), meta.get("prompt"))
    except (TypeError, ValueError, RecursionError):  # nothing parking could have sealed
        expected = ""
    if not hmac.compare_digest(given["mac"].encode("ascii", "replace"), expected.encode("ascii")):
        raise ParkRefused(
            f"{what} whose prompt, gate or slot id changed since it was parked (a renamed "
            f"parked slot resumes only under its old id): refused",
            ALTERED,
        )
