"""Parking a run on timeout, and the prompt that resumes it."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
from api_prompts import gate, load_image, load_latent, save_image

from gates.bus.ids import validate_id
from gates.comfy.park_secret import park_secret
from gates.comfy.resume import resume_prompt
from gates.gate.parking import (
    ON_TIMEOUT,
    NotParked,
    answer_fingerprint,
    answer_text,
    given_answer,
    node_summary,
    parked_meta,
    parked_slot_id,
    timeout_action,
)
from gates.gate.seal import ALTERED, FOREIGN, NO_SECRET, UNSIGNED, ParkRefused

SECRET = b"this ComfyUI's park secret, 32+ bytes"


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


def parked(prompt=PROMPT, node="2", slot_id="parked-pid-2", secret=SECRET) -> dict:
    """A parked meta as the slot's header gives it back: through JSON."""
    return json.loads(json.dumps(parked_meta(prompt, node, "pid", "input", slot_id, secret)))


def test_resume_prompt_unlinks_the_gates_inputs_and_reads_the_parked_slot():
    meta = parked()
    out = resume_prompt(meta, "parked-pid-2", SECRET)
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
        resume_prompt(dict(meta, seal=parked(meta.get("prompt"), meta.get("node"), "s").get("seal")), "s", SECRET)


def test_a_run_parked_without_its_prompt_says_so():
    with pytest.raises(NotParked, match="without its prompt"):
        resume_prompt(parked_meta(None, "2", "pid", "input", "s", SECRET), "s", SECRET)


# -- the seal: Resume queues only what this ComfyUI parked ----------------------------------------


def test_a_parked_run_is_sealed_and_its_own_seal_resumes_it():
    meta = parked()
    assert set(meta["seal"]) == {"alg", "key", "mac"} and meta["seal"]["alg"] == "HMAC-SHA256"
    assert SECRET.decode() not in json.dumps(meta)  # the seal holds no secret
    assert resume_prompt(meta, "parked-pid-2", SECRET)["2"]["inputs"]["get_id"] == "parked-pid-2"
    assert "seal" not in parked_meta(PROMPT, "2", "pid", "input", "s", None)  # no secret: no seal


def _planted(meta: dict) -> dict:
    """A Save Image of someone else's choosing added to the prompt."""
    meta["prompt"]["99"] = save_image(["1", 0])
    return meta


def _widget(meta: dict) -> dict:
    meta["prompt"]["4"]["inputs"]["filename_prefix"] = "../../elsewhere"
    return meta


@pytest.mark.parametrize(
    "change, slot_id, secret, reason",
    [
        (_planted, "parked-pid-2", SECRET, ALTERED),  # a node added
        (_widget, "parked-pid-2", SECRET, ALTERED),  # a widget changed
        (lambda m: dict(m, node="4"), "parked-pid-2", SECRET, ALTERED),  # another gate node
        (lambda m: m, "another-slot", SECRET, ALTERED),  # the sealed meta copied to another slot
        (lambda m: {k: v for k, v in m.items() if k != "seal"}, "parked-pid-2", SECRET, UNSIGNED),
        (lambda m: dict(m, seal="yes"), "parked-pid-2", SECRET, UNSIGNED),
        (lambda m: dict(m, seal=dict(m["seal"], mac=None)), "parked-pid-2", SECRET, UNSIGNED),
        (lambda m: m, "parked-pid-2", b"another ComfyUI's secret, 32 bytes", FOREIGN),
        (lambda m: dict(m, seal=dict(m["seal"], alg="none")), "parked-pid-2", SECRET, FOREIGN),
        (lambda m: dict(m, seal=dict(m["seal"], mac="0" * 64)), "parked-pid-2", SECRET, ALTERED),
        (lambda m: m, "parked-pid-2", None, NO_SECRET),  # this host has no secret to check with
    ],
)
def test_resume_refuses_a_run_this_comfyui_did_not_seal(change, slot_id, secret, reason):
    meta = change(copy.deepcopy(parked()))
    with pytest.raises(ParkRefused) as refused:
        resume_prompt(meta, slot_id, secret)
    assert refused.value.reason == reason
    assert "get_id" in str(refused.value) or reason == ALTERED  # what to do instead


def test_a_planted_run_with_a_seal_of_its_own_making_is_refused():
    """Whoever writes the bus has no secret: a seal made with any other key is not ours."""
    planted = parked(secret=b"a guess at the secret, 32 bytes...")
    with pytest.raises(ParkRefused) as refused:
        resume_prompt(planted, "parked-pid-2", SECRET)
    assert refused.value.reason == FOREIGN


def test_node_summary_counts_classes_most_frequent_first():
    prompt = dict(PROMPT, **{"5": save_image(["2", 2]), "6": "junk"})
    assert node_summary(prompt) == [
        {"class_type": "SaveImage", "count": 2},
        {"class_type": "(not a node)", "count": 1},
        {"class_type": "ImageGate", "count": 1},
        {"class_type": "LoadImage", "count": 1},
        {"class_type": "LoadLatent", "count": 1},
    ]


# -- where the secret comes from ---------------------------------------------------------------


def test_the_park_secret_is_made_once_outside_the_bus(tmp_path: Path):
    folder = tmp_path / "user" / "__dataset_gates"
    first = park_secret(folder, {})
    assert len(first) >= 32 and park_secret(folder, {}) == first
    assert (folder / "park_secret").stat().st_mode & 0o077 == 0


def test_a_shared_park_secret_comes_from_the_environment_or_a_file(tmp_path: Path):
    assert (
        park_secret(tmp_path, {"DATASET_GATES_PARK_SECRET": " shared by the farm 0123 "}) == b"shared by the farm 0123"
    )
    with pytest.raises(ValueError, match="fewer than 16"):
        park_secret(tmp_path, {"DATASET_GATES_PARK_SECRET": "short"})
    secret_file = tmp_path / "farm_secret"
    secret_file.write_text("in a file, shared 0123456789\n")
    secret_file.chmod(0o600)
    assert (
        park_secret(tmp_path, {"DATASET_GATES_PARK_SECRET_FILE": str(secret_file)}) == b"in a file, shared 0123456789"
    )
    secret_file.chmod(0o644)
    with pytest.raises(ValueError, match="chmod 600"):
        park_secret(tmp_path, {"DATASET_GATES_PARK_SECRET_FILE": str(secret_file)})
    assert not (tmp_path / "park_secret").exists()  # a configured secret makes no file


def test_a_decided_answer_is_checked_against_the_batch_and_the_gates_routes():
    assert given_answer(answer_text([2, 1]), 2, 3).routes == [2, 1]
    for text, message in [
        ("not json", "JSON expected"),
        ("[1, 2]", "an object"),
        (answer_text([1]), "one per batch image"),
        (answer_text([1, 4]), "from 1 to 3"),
        (answer_text([1, True]), "from 1 to 3"),
        ("x" * 70_000, "not a decision"),
    ]:
        with pytest.raises(ValueError, match=message):
            given_answer(text, 2, 3)


def test_resume_with_routes_carries_them_in_the_hidden_answer_and_drops_a_stale_one():
    prompt = {"2": {"class_type": "ImageGate", "inputs": {"routes": 2, "answer": "{}", "page": ["1", 2]}}}
    meta = parked_meta(prompt, "2", "abc", "input", "s", b"a park secret of thirty-two bytes")
    plain = resume_prompt(meta, "s", b"a park secret of thirty-two bytes")
    assert "answer" not in plain["2"]["inputs"] and "page" not in plain["2"]["inputs"]
    decided = resume_prompt(meta, "s", b"a park secret of thirty-two bytes", {"routes": [2], "fingerprint": "f1"})
    assert json.loads(decided["2"]["inputs"]["answer"]) == {"routes": [2], "fingerprint": "f1"}
    assert answer_fingerprint(decided["2"]["inputs"]["answer"]) == "f1" and answer_fingerprint("{}") is None
