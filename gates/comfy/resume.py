"""Resuming a parked run: its stored API prompt, queued again with its gate fed by the slot.

The routes are handed `resume_prompt` by the adapter (they know no ComfyUI prompt format),
bound to this ComfyUI's park secret: a prompt it did not seal is never queued (gate.seal).
"""

from __future__ import annotations

import copy
from typing import Any

from ..gate.parking import ANSWER_INPUT, NotParked, answer_text
from ..gate.seal import check_seal
from .ordering import GATE

# What a resumed gate takes from its slot instead of its links: re-linked, they would recompute.
SLOT_FED_INPUTS = ("image", "mask", "latent", "captions", "page", ANSWER_INPUT)


def resume_prompt(
    meta: dict[str, Any], slot_id: str, secret: bytes | None, answer: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The parked prompt again, with its gate resuming from `slot_id`: image, mask, latent,
    captions and page unlinked (the slot holds the batch), get_id and send_id set to the slot
    (answering it replaces the parked slot with the decision), and no countdown (timeout 0), so
    it cannot park again. With `answer` ({routes, fingerprint}: decided in the slot browser,
    one route per image, on the slot version of that fingerprint) the gate's hidden `answer`
    input carries it and the run goes on without pausing.

    NotParked when the slot holds no parked run, or its prompt has no such gate; ParkRefused
    when `secret` did not seal its prompt, gate and slot id (or is None: none to check with).
    """
    if meta.get("parked") is not True:
        raise NotParked(f"slot {slot_id!r} is not a parked run")
    prompt, node = meta.get("prompt"), meta.get("node")
    if prompt is None:
        raise NotParked(
            f"slot {slot_id!r} is parked without its prompt (too large to keep): "
            f"load it with get_id={slot_id} in the workflow instead"
        )
    check_seal(meta, slot_id, secret)  # before anything of the prompt is trusted
    gate = prompt.get(node) if isinstance(prompt, dict) and isinstance(node, str) else None
    if not isinstance(gate, dict) or gate.get("class_type") != GATE or not isinstance(gate.get("inputs"), dict):
        raise NotParked(f"slot {slot_id!r} is parked but its stored prompt has no Image Gate {node!r} to resume")
    prompt = copy.deepcopy(prompt)
    inputs = prompt[node]["inputs"]
    for name in SLOT_FED_INPUTS:
        inputs.pop(name, None)
    inputs.update(get_id=slot_id, send_id=slot_id, timeout=0)
    if answer is not None:
        inputs[ANSWER_INPUT] = answer_text(answer["routes"], answer.get("fingerprint"))
    return prompt
