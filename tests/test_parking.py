"""Parking a run on timeout, and the prompt that resumes it."""

from __future__ import annotations

import pytest
from api_prompts import gate, load_image, load_latent, save_image

from gates.bus.ids import validate_id
from gates.comfy.resume import resume_prompt
from gates.gate.parking import ON_TIMEOUT, NotParked, parked_meta, parked_slot_id, timeout_action


def test_the_timeout_actions():
    assert ("park", "stop", *tuple(f"route {k}" for k in range(1, 11))) == ON_TIMEOUT
    assert timeout_action("park", 2) == ("park", None)
    assert timeout_action("stop", 2) == ("stop", None)
    assert timeout_action("route 2", 2) == ("route", 2)
    assert timeout_action("route 10", 10) == ("route", 10)
    for bad in ("route 3", "route 0", "route 11", "route 01", "Park", "", None, 2):
        with pytest.raises(ValueError):
            timeout_action(bad, 2)


@pytest.mark.parametrize(
    "prompt_id, node, expected",
    [
        ("3f2a9c1e-77aa-4b1c-9d2e-000000000000", "12", "parked-3f2a9c1e-12"),
        ("3f2a9c1e-77aa", "12:5", "parked-3f2a9c1e-12-5"),
        ("ab-cd", "12:34:5", "parked-abcd-12-34-5"),
        (None, "7", "parked-run-7"),
    ],
)
def test_parked_slot_ids_are_valid_slot_ids(prompt_id, node, expected):
    assert parked_slot_id(prompt_id, node) == expected
    assert validate_id(expected) == expected


def test_a_long_node_path_still_makes_a_valid_slot_id():
    slot_id = parked_slot_id("p" * 36, ":".join(["123456789"] * 12))
    assert len(slot_id) <= 64 and validate_id(slot_id)


PROMPT = {
    "1": load_image("a.png"),
    "3": load_latent("a.latent"),
    "2": gate(
        ["1", 0],
        routes=3,
        mask=["1", 1],
        latent=["3", 0],
        captions=["5", 0],
        labels="a,b",
        timeout=2,
        on_timeout="park",
        after=["9", 0],
    ),
    "4": save_image(["2", 1]),
}


def test_resume_prompt_unlinks_the_gates_inputs_and_reads_the_parked_slot():
    meta = parked_meta(PROMPT, "2", "pid", "input")
    out = resume_prompt(meta, "parked-pid-2")
    gate = out["2"]["inputs"]
    assert "image" not in gate and "mask" not in gate and "latent" not in gate
    assert "captions" not in gate  # the slot holds them: the Dataset Load that gave them does not run again
    assert (gate["get_id"], gate["send_id"], gate["timeout"]) == ("parked-pid-2",) * 2 + (0,)
    assert gate["labels"] == "a,b" and gate["routes"] == 3 and gate["after"] == ["9", 0]
    assert out["4"] == PROMPT["4"] and out["1"] == PROMPT["1"]
    assert PROMPT["2"]["inputs"]["image"] == ["1", 0]  # the stored prompt is not changed


@pytest.mark.parametrize(
    "meta",
    [
        {},
        {"parked": False, "prompt": PROMPT, "node": "2"},
        {"parked": "yes", "prompt": PROMPT, "node": "2"},
        {"parked": True, "prompt": None, "node": "2"},
        {"parked": True, "prompt": PROMPT, "node": "1"},
        {"parked": True, "prompt": PROMPT, "node": "99"},
        {"parked": True, "prompt": PROMPT, "node": 2},
        {"parked": True, "prompt": {"2": {"class_type": "ImageGate", "inputs": None}}, "node": "2"},
    ],
)
def test_resume_prompt_refuses_what_is_not_a_parked_run(meta):
    with pytest.raises(NotParked):
        resume_prompt(meta, "s")


def test_a_run_parked_without_its_prompt_says_so():
    with pytest.raises(NotParked, match="without its prompt"):
        resume_prompt(parked_meta(None, "2", "pid", "input"), "s")
