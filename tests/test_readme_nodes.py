"""The README's node list is a promise: the inputs and outputs it names are the nodes' own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gates.comfy.nodes import NODE_CLASS_MAPPINGS
from gates.gate.parking import ON_TIMEOUT, parked_slot_id

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def _bullet(name: str) -> str:
    start = README.index(f"- **{name}**")
    end = README.find("\n- **", start + 1)
    return README[start:end]


def _names(text: str) -> list[str]:
    return re.findall(r"`([a-z_0-9]+)`", text)


def test_the_gate_inputs_and_outputs_the_readme_names():
    bullet = _bullet("Image Gate (Manual Router)")
    optional = bullet[bullet.index("optional") : bullet.index("Outputs")]
    outputs = bullet[bullet.index("Outputs") : bullet.index("\n  -")]
    gate = NODE_CLASS_MAPPINGS["ImageGate"]
    assert set(_names(optional)) == set(gate.INPUT_TYPES()["optional"])
    named = _names(outputs)
    assert named[:2] == ["mask", "route_1"] and named[2] == "route_10"
    assert ["mask", *[f"route_{i}" for i in range(1, 11)], *named[3:]] == list(gate.RETURN_NAMES)


def test_the_timeout_actions_the_readme_names():
    bullet = _bullet("Image Gate (Manual Router)")
    assert "`route k`" in bullet and "`stop`" in bullet and "`park`" in bullet
    assert ("park", "stop", *tuple(f"route {k}" for k in range(1, 11))) == ON_TIMEOUT


def test_the_parked_slot_name_the_readme_gives():
    assert "`parked-<first 8 characters of the prompt id>-<node id>` (node `12:5` gives `12-5`)" in README
    assert parked_slot_id("0123456789abcdef", "12:5") == "parked-01234567-12-5"


def test_gate_split_and_bus_nodes_as_the_readme_names_them():
    split = _bullet("Gate Split")
    node = NODE_CLASS_MAPPINGS["DatasetGatesSplit"]
    types = node.INPUT_TYPES()
    head, outputs = split.split("->")
    assert "(`DatasetGatesSplit`)" in head
    assert _names(head) == [*types["required"], *types["optional"]]
    assert [n for n in _names(outputs) if n in node.RETURN_NAMES] == ["indices", "count", "captions", "page"]
    bus = _bullet("Bus Save")
    assert "optional mask and latent" in bus
    assert NODE_CLASS_MAPPINGS["DatasetGatesBusSave"].RETURN_NAMES == ("image", "latent")
    assert "image, mask,\n  batch size, latent" in bus
    assert NODE_CLASS_MAPPINGS["DatasetGatesBusLoad"].RETURN_NAMES == ("image", "mask", "batch_size", "latent")


def test_the_gate_description_covers_routing_split_timeouts_and_parking():
    text = NODE_CLASS_MAPPINGS["ImageGate"].DESCRIPTION
    for words in (
        "a route for each image",
        "a route with none is blocked",
        "Gate Split",
        "timeout",
        "on_timeout",
        "park",
        "resume",
    ):
        assert words in text, words


def test_the_captions_node_and_the_text_gate_as_the_readme_names_them():
    captions = _bullet("Captions from Text")
    node = NODE_CLASS_MAPPINGS["DatasetGatesCaptions"]
    head, outputs = captions.split("->")
    assert "(`DatasetGatesCaptions`)" in head and _names(head) == list(node.INPUT_TYPES()["required"])
    assert _names(outputs)[0] == "captions" == node.RETURN_NAMES[0]
    for split in node.INPUT_TYPES()["required"]["split"][0]:
        assert f"`{split}`" in captions
    text = _bullet("Text Gate (Manual Pass)")
    gate = NODE_CLASS_MAPPINGS["DatasetGatesTextGate"]
    types = gate.INPUT_TYPES()
    head, outputs = text.split("->", 1)
    assert "(`DatasetGatesTextGate`)" in head and _names(head) == [*types["required"], *types["optional"]]
    assert _names(outputs)[:2] == list(gate.RETURN_NAMES)
    for action in types["optional"]["on_timeout"][0]:
        assert f"`{action}`" in text


@pytest.mark.parametrize("name", ["Dataset Load", "Bucket Resize", "Dataset Save"])
def test_the_dataset_nodes_inputs_and_outputs_as_the_readme_names_them(name):
    bullet = _bullet(name)
    node_id = re.search(r"\(`(DatasetGates\w+)`\)", bullet).group(1)
    node = NODE_CLASS_MAPPINGS[node_id]
    types = node.INPUT_TYPES()
    head, _, outputs = bullet.partition("->")
    inputs = head if "Save" not in name else bullet
    assert _names(inputs)[: len(types["required"]) + len(types["optional"])] == [*types["required"], *types["optional"]]
    returns = getattr(node, "RETURN_NAMES", ())
    assert _names(outputs)[: len(returns)] == list(returns)
