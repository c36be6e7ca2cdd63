"""Parking: a gate whose countdown runs out stores its batch and the prompt, and ends the run.

`on_timeout` says what a gate does when nobody answered in time: "park", "stop", or "route K"
(every image to K). Parking publishes the batch to the gate's `send_id`, or to a slot named
`parked_slot_id(prompt_id, node)`, with the API prompt and the gate's node id in the meta
(`parked: true`) and the seal that lets Resume trust them (see `seal`), so the queue moves on.
`gates.comfy.resume` later turns that slot back into a prompt whose gate loads the slot instead
of recomputing its input: the pause comes at once.
Pure: no ComfyUI, no disk.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from typing import Any

from ..bus.ids import validate_id
from .seal import SEAL, seal
from .waiter import Decision, check_routes

PARK = "park"
STOP = "stop"
ON_TIMEOUT = (PARK, STOP, *tuple(f"route {k}" for k in range(1, 11)))
PARKED_PREFIX = "parked"


ANSWER_INPUT = "answer"  # the gate's hidden input that carries a decision made before the run
MAX_ANSWER_BYTES = 64 * 1024


class NotParked(LookupError):
    """The slot exists but holds no parked run to resume."""


def answer_text(routes: list[int], fingerprint: str | None = None) -> str:
    """What Resume puts in the gate's hidden `answer` input for a batch decided in the slot
    browser: {"routes": [...], "fingerprint": ...}, one 1-based route per batch image, and the
    fingerprint of the slot version they were decided on (`answer_fingerprint`)."""
    return json.dumps({"routes": routes, "fingerprint": fingerprint})


def answer_fingerprint(text: str) -> str | None:
    """The slot fingerprint an answer was decided on (None when it names none): a gate whose
    slot no longer has it must not send the routes on to a batch nobody saw."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    found = data.get("fingerprint") if isinstance(data, dict) else None
    return found if isinstance(found, str) else None


def given_answer(text: str, batch: int, routes: int) -> Decision:
    """The Decision an `answer` input carries, checked against the batch and the gate's routes
    (ValueError naming what is wrong): a resumed run must not send an image down a route the
    gate does not have, whoever wrote the answer."""
    if not isinstance(text, str) or len(text) > MAX_ANSWER_BYTES:
        raise ValueError("answer: not a decision")
    try:
        data = json.loads(text)
    except ValueError:
        raise ValueError("answer: not a decision (JSON expected)") from None
    if not isinstance(data, dict):
        raise ValueError("answer: not a decision (an object with routes expected)")
    return Decision(check_routes(data.get("routes"), batch, routes), {})


def timeout_action(on_timeout: Any, routes: int) -> tuple[str, int | None]:
    """("park", None), ("stop", None) or ("route", k) for an on_timeout value; ValueError if
    it is none of those, or names a route the gate does not have."""
    if on_timeout in (PARK, STOP):
        return on_timeout, None
    m = re.fullmatch(r"route ([1-9][0-9]?)", on_timeout) if isinstance(on_timeout, str) else None
    if m is None or on_timeout not in ON_TIMEOUT:
        raise ValueError(f"on_timeout must be one of {', '.join(ON_TIMEOUT)}; got {on_timeout!r}")
    k = int(m[1])
    if k > routes:
        raise ValueError(f"on_timeout is {on_timeout!r} but the gate has only {routes} route(s)")
    return "route", k


def parked_slot_id(prompt_id: str | None, node: str) -> str:
    """`parked-<first 8 characters of the prompt id>-<node>`, a valid slot id: a subgraph path
    like 12:5 becomes 12-5."""
    run = re.sub(r"[^A-Za-z0-9]", "", prompt_id or "")[:8] or "run"
    where = re.sub(r"[^A-Za-z0-9_-]", "-", node).strip("-") or "gate"
    return validate_id(f"{PARKED_PREFIX}-{run}-{where}"[:64].rstrip("-."))


def _without_cache_keys(prompt: dict[str, Any] | None) -> dict[str, Any] | None:
    """The prompt without ComfyUI's per-node `is_changed` cache keys: they hold NaN for a gate
    (which is not JSON) and mean nothing to a later run, which computes its own."""
    if not isinstance(prompt, dict):
        return prompt
    return {
        node_id: ({k: v for k, v in node.items() if k != "is_changed"} if isinstance(node, dict) else node)
        for node_id, node in prompt.items()
    }


def parked_meta(
    prompt: dict[str, Any] | None,
    node: str,
    prompt_id: str | None,
    source: str,
    slot_id: str,
    secret: bytes | None,
) -> dict[str, Any]:
    """What a parked slot records beside the batch: enough to queue the run again, sealed with
    `secret` for slot `slot_id` (no secret, or no prompt: no seal, and Resume refuses it)."""
    kept = _without_cache_keys(prompt)
    meta = {"parked": True, "prompt": kept, "node": node, "prompt_id": prompt_id, "source": source}
    if secret is not None and kept is not None:
        meta[SEAL] = seal(secret, slot_id, node, kept)
    return meta


def node_summary(prompt: dict[str, Any]) -> list[dict[str, Any]]:
    """What a prompt runs, for a person to read before Resume: each node class with its count,
    the most frequent first."""
    counts = Counter(
        str(node.get("class_type")) if isinstance(node, dict) else "(not a node)" for node in prompt.values()
    )
    return [{"class_type": name, "count": n} for name, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
