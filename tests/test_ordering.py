"""Slot-aware ordering (gates/ordering.py): the prompt rewrite that runs readers after writers."""

from __future__ import annotations

import copy
import logging
from typing import Any

import pytest
from api_prompts import bus_load, bus_save, gate, load_image, save_image
from hypothesis import given, settings
from hypothesis import strategies as st

from gates.comfy import ordering
from gates.comfy.ordering import is_link, order_slot_access

# -- checks on a rewritten prompt (the nodes come from api_prompts.py) ---------------------


def deps(prompt: dict[str, Any]) -> dict[str, set[str]]:
    return {n: {v[0] for v in node["inputs"].values() if is_link(v)} for n, node in prompt.items()}


def upstream(prompt: dict[str, Any], node: str) -> set[str]:
    """Every node `node` runs after: those its links reach, directly or through others. The
    tests' own walk, so a bug in the one under test cannot hide itself here."""
    graph = deps(prompt)
    found: set[str] = set()
    new = graph.get(node, set())
    while new:
        found |= new
        new = set().union(*(graph.get(n, set()) for n in new)) - found
    return found


def runs_after(prompt: dict[str, Any], node: str, other: str) -> bool:
    return other in upstream(prompt, node)


def acyclic(prompt: dict[str, Any]) -> bool:
    return not any(runs_after(prompt, n, n) for n in prompt)


def added(before: dict[str, Any], after: dict[str, Any]) -> dict[str, dict[str, list]]:
    """node -> {input: link} for every input the rewrite added."""
    out: dict[str, dict[str, list]] = {}
    for n, node in after.items():
        new = {k: v for k, v in node["inputs"].items() if k not in before[n]["inputs"]}
        if new:
            out[n] = new
    return out


def rewrite(prompt: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict[str, list]]]:
    original = copy.deepcopy(prompt)
    out = order_slot_access(prompt)
    assert prompt == original, "the input prompt was modified"
    assert acyclic(out)
    return out, added(prompt, out)


# -- the cases from the issue ------------------------------------------------------------------


def test_gate_b_reading_gate_a_s_slot_runs_after_it():
    prompt = {
        "1": load_image(),
        "2": gate(["1", 0], send="s"),
        "3": gate(get="s"),
        "4": save_image(["3", 1]),
        "5": save_image(["2", 1]),
    }
    out, new = rewrite(prompt)
    assert new == {"3": {"after": ["2", 0]}}
    assert runs_after(out, "3", "2")


def test_bus_load_runs_after_an_unconnected_bus_save_of_its_slot():
    prompt = {"1": load_image(), "5": bus_save(["1", 0], "s"), "6": bus_load("s"), "7": save_image(["6", 0])}
    _, new = rewrite(prompt)
    assert new == {"6": {"after": ["5", 0]}}


@pytest.mark.parametrize("ref", ["s@-1", "s@-2", " s@-3 "])
def test_version_refs_read_the_slot_too(ref):
    prompt = {"1": load_image(), "5": bus_save(["1", 0], "s"), "6": bus_load(ref), "7": gate(get=ref)}
    _, new = rewrite(prompt)
    assert new == {"6": {"after": ["5", 0]}, "7": {"after": ["5", 0]}}


def test_a_gate_with_an_image_wired_is_no_reader():
    prompt = {"1": load_image(), "2": gate(["1", 0], send="s"), "3": gate(["1", 0], get="s")}
    assert order_slot_access(prompt) is prompt


@pytest.mark.parametrize(
    "prompt",
    [
        {"1": load_image(), "2": gate(["1", 0], send="s"), "3": gate(get="t")},  # other slot
        {"1": load_image(), "2": gate(["1", 0], send="s")},  # no reader
        {"3": gate(get="s"), "6": bus_load("s")},  # no writer
        {
            "1": load_image(),
            "5": bus_save(["1", 0], "s"),
            "9": {"class_type": "Other", "inputs": {"slot_id": "s"}},
        },  # not one of the pack's nodes
        {
            "1": load_image(),
            "5": bus_save(["1", 0], "s"),
            "8": {"class_type": "X", "inputs": {"a": ["5", 0]}},
            "6": {**bus_load("s"), "inputs": {"slot_id": "s", "x": ["8", 0]}},
        },
    ],
)
def test_nothing_to_order_returns_the_same_prompt(prompt):
    """No slot both written and read, or the reader already downstream of the writer."""
    assert order_slot_access(prompt) is prompt


def test_slot_ids_are_matched_exactly_after_stripping():
    prompt = {"1": load_image(), "2": gate(["1", 0], send=" s "), "3": gate(get="S"), "4": gate(get="s")}
    _, new = rewrite(prompt)
    assert new == {"4": {"after": ["2", 0]}}  # ids are case-sensitive folder names


def test_feedback_loop_reader_stays_before_its_writer_and_no_cycle_is_made():
    """Bus Load of s feeds a gate that publishes s: the load must run first, so it reads the
    previous run's version; ordering it after the gate would be a cycle."""
    prompt = {"6": bus_load("s"), "2": gate(["6", 0], send="s"), "4": save_image(["2", 1])}
    assert order_slot_access(prompt) is prompt
    # The same loop, and one more reader that is not in it: that one follows the gate.
    prompt["3"] = gate(get="s")
    _, new = rewrite(prompt)
    assert new == {"3": {"after": ["2", 0]}}


def test_feedback_reader_follows_the_writers_it_does_not_feed():
    """Writers 5 then 7 (by id); the load feeds 7, so it follows 5 only."""
    prompt = {"1": load_image(), "5": bus_save(["1", 0], "s"), "6": bus_load("s"), "7": bus_save(["6", 0], "s")}
    out, new = rewrite(prompt)
    assert new == {"7": {"after": ["5", 0]}, "6": {"after": ["5", 0]}}
    assert runs_after(out, "7", "6")  # 7 stays the last writer


def test_a_gate_reading_and_writing_the_same_slot_goes_after_the_plain_writers():
    prompt = {"1": load_image(), "2": gate(get="s", send="s"), "3": gate(["1", 0], send="s")}
    _, new = rewrite(prompt)
    assert new == {"2": {"after": ["3", 0]}}


def test_subgraph_ids_are_ordered_like_any_other():
    """The frontend flattens subgraphs: inner nodes arrive as '12:5' (nested '12:34:5')."""
    prompt = {
        "1": load_image(),
        "12:5": gate(["1", 0], send="s"),
        "12:34:7": gate(get="s"),
        "3": bus_load("s"),
        "12:8": save_image(["12:34:7", 1]),
    }
    _, new = rewrite(prompt)
    assert new == {"12:34:7": {"after": ["12:5", 0]}, "3": {"after": ["12:5", 0]}}


def test_several_writers_are_chained_by_numeric_id_and_readers_follow_the_last():
    prompt = {
        "1": load_image(),
        "10": bus_save(["1", 0], "s"),
        "9": gate(["1", 0], send="s"),
        "12:5": bus_save(["1", 0], "s"),
        "11": bus_load("s"),
        "2": gate(get="s"),
    }
    out, new = rewrite(prompt)
    assert new == {
        "10": {"after": ["9", 0]},
        "12:5": {"after": ["10", 0]},
        "11": {"after": ["12:5", 0]},
        "2": {"after": ["12:5", 0]},
    }
    for reader in ("11", "2"):
        assert all(runs_after(out, reader, w) for w in ("9", "10", "12:5"))


def test_writers_already_ordered_by_links_keep_that_order():
    """Save 9 takes its image from save 10's pass-through, so 10 runs first whatever the ids."""
    prompt = {"1": load_image(), "10": bus_save(["1", 0], "s"), "9": bus_save(["10", 0], "s"), "11": bus_load("s")}
    _, new = rewrite(prompt)
    assert new == {"11": {"after": ["9", 0]}}


def test_slots_are_independent():
    prompt = {
        "1": load_image(),
        "2": bus_save(["1", 0], "a"),
        "3": bus_save(["1", 0], "b"),
        "4": bus_load("a"),
        "5": bus_load("b"),
    }
    _, new = rewrite(prompt)
    assert new == {"4": {"after": ["2", 0]}, "5": {"after": ["3", 0]}}


def test_a_node_that_reads_one_slot_and_writes_another_gets_two_links():
    """Gate 3 reads a (after save 2) and is the second writer of b (after gate 0)."""
    prompt = {
        "1": load_image(),
        "2": bus_save(["1", 0], "a"),
        "3": gate(get="a", send="b"),
        "0": gate(["1", 0], send="b"),
        "5": bus_load("b"),
    }
    _, new = rewrite(prompt)
    assert new == {"3": {"after": ["2", 0], "after_2": ["0", 0]}, "5": {"after": ["3", 0]}}


def test_a_user_linked_after_is_kept_and_the_link_goes_to_a_hidden_input():
    prompt = {"1": load_image(), "5": bus_save(["1", 0], "s"), "6": bus_load("s"), "8": load_image("b.png")}
    prompt["6"]["inputs"]["after"] = ["8", 0]
    _, new = rewrite(prompt)
    assert new == {"6": {"after_2": ["5", 0]}}


def test_a_node_with_every_ordering_input_taken_is_left_alone_with_a_warning(caplog):
    prompt = {"1": load_image(), "5": bus_save(["1", 0], "s"), "6": bus_load("s"), "8": load_image("b.png")}
    prompt["6"]["inputs"].update({k: ["8", 0] for k in ordering.AFTER_KEYS})
    with caplog.at_level(logging.WARNING, logger="dataset_gates"):
        out = order_slot_access(prompt)
    assert out["6"] == prompt["6"]
    assert "no free ordering input" in caplog.text


@pytest.mark.parametrize("linked", ["send", "get", "save", "load"])
def test_widget_values_fed_by_links_are_unknown_and_skipped(linked):
    primitive = {"class_type": "PrimitiveString", "inputs": {"value": "s"}}
    link = ["20", 0]
    prompt = {
        "1": load_image(),
        "20": primitive,
        "2": gate(["1", 0], send=link if linked == "send" else "s"),
        "3": gate(get=link if linked == "get" else "s"),
    }
    if linked in ("save", "load"):
        prompt = {
            "1": load_image(),
            "20": primitive,
            "5": bus_save(["1", 0], link if linked == "save" else "s"),
            "6": bus_load(link if linked == "load" else "s"),
        }
    assert order_slot_access(prompt) is prompt


@pytest.mark.parametrize("bad", ["../s", "nul", "", "   ", "s@-0"])
def test_invalid_ids_are_left_to_validation(bad):
    prompt = {
        "1": load_image(),
        "2": gate(["1", 0], send=bad),
        "3": gate(get=bad),
        "5": bus_save(["1", 0], bad),
        "6": bus_load(bad),
    }
    assert order_slot_access(prompt) is prompt


def test_a_wrapped_widget_value_is_read():
    prompt = {"1": load_image(), "5": bus_save(["1", 0], {"__value__": "s"}), "6": bus_load("s")}
    _, new = rewrite(prompt)
    assert new == {"6": {"after": ["5", 0]}}


def test_rewriting_twice_adds_nothing_more():
    prompt = {
        "1": load_image(),
        "10": bus_save(["1", 0], "s"),
        "9": gate(["1", 0], send="s"),
        "11": bus_load("s"),
        "2": gate(get="s"),
    }
    once = order_slot_access(prompt)
    assert order_slot_access(once) is once


def test_the_order_does_not_depend_on_the_prompt_s_key_order():
    items = [
        ("1", load_image()),
        ("10", bus_save(["1", 0], "s")),
        ("9", bus_save(["1", 0], "s")),
        ("11", bus_load("s")),
        ("2", gate(get="s")),
        ("3", gate(["1", 0], send="s")),
    ]
    results = {repr(sorted(order_slot_access(dict(p)).items())) for p in (items, items[::-1], items[2:] + items[:2])}
    assert len(results) == 1


# -- malformed prompts: untouched, never an exception -------------------------------------------


@pytest.mark.parametrize(
    "prompt",
    [
        None,
        [],
        "prompt",
        3,
        {1: gate(get="s")},
        {"1": None},
        {"1": []},
        {"1": {}},
        {"1": {"class_type": "ImageGate"}},
        {"1": {"class_type": "ImageGate", "inputs": None}},
        {"1": {"class_type": ["ImageGate"], "inputs": {"get_id": "s"}}},
        {"1": {"class_type": "DatasetGatesBusLoad", "inputs": {"slot_id": 3}}},
        {
            "1": {"class_type": "DatasetGatesBusSave", "inputs": {"image": ["1", 0], "slot_id": "s"}},
            "2": {"class_type": "DatasetGatesBusLoad", "inputs": ["slot_id", "s"]},
        },
    ],
)
def test_malformed_prompts_come_back_unchanged(prompt):
    original = copy.deepcopy(prompt)
    assert order_slot_access(prompt) is prompt
    assert prompt == original


def test_a_link_to_a_missing_node_does_not_stop_the_rest():
    prompt = {"1": load_image(), "5": bus_save(["1", 0], "s"), "6": bus_load("s"), "7": save_image(["nowhere", 0])}
    _, new = rewrite(prompt)
    assert new == {"6": {"after": ["5", 0]}}


def test_a_prompt_that_already_has_a_cycle_gets_no_new_one_and_no_error():
    prompt = {
        "5": bus_save(["6", 0], "s"),
        "6": bus_load("s"),
        "7": bus_save(["8", 0], "s"),
        "8": {"class_type": "X", "inputs": {"a": ["7", 0]}},
    }
    prompt["6"]["inputs"]["after"] = ["5", 0]  # 5 <-> 6 already a cycle
    out = order_slot_access(prompt)
    cyclic_before = {n for n in prompt if runs_after(prompt, n, n)}
    assert {n for n in out if runs_after(out, n, n)} == cyclic_before


def test_on_prompt_orders_json_data_and_keeps_the_rest():
    data = {
        "prompt": {"1": load_image(), "5": bus_save(["1", 0], "s"), "6": bus_load("s")},
        "client_id": "tab",
        "extra_data": {"x": 1},
    }
    out = ordering.on_prompt(data)
    assert out["client_id"] == "tab" and out["extra_data"] == {"x": 1}
    assert out["prompt"]["6"]["inputs"]["after"] == ["5", 0]
    for junk in (None, {}, {"prompt": None}, {"prompt": []}, "x"):
        assert ordering.on_prompt(junk) is junk


def test_on_prompt_logs_and_returns_the_prompt_unchanged_on_an_internal_error(monkeypatch, caplog):
    def boom(prompt):
        raise RuntimeError("bug")

    monkeypatch.setattr(ordering, "order_slot_access", boom)
    data = {"prompt": {"1": load_image(), "5": bus_save(["1", 0], "s"), "6": bus_load("s")}}
    original = copy.deepcopy(data)
    with caplog.at_level(logging.ERROR, logger="dataset_gates"):
        assert ordering.on_prompt(data) is data
    assert data == original and "runs unchanged" in caplog.text


# -- properties over random prompts ---------------------------------------------------------------


@st.composite
def prompts(draw) -> dict[str, Any]:
    """Random acyclic prompts of gates, saves, loads and plain nodes over three slots; links
    only point to nodes with a smaller index, so the input is acyclic."""
    ids = draw(
        st.lists(
            st.sampled_from(["1", "2", "3", "9", "10", "11", "12:5", "12:34:5", "4:1", "20", "21", "7"]),
            min_size=1,
            max_size=10,
            unique=True,
        )
    )
    slot = st.sampled_from(["a", "b", "c@-1", "a@-2"])
    prompt: dict[str, Any] = {}
    for i, node_id in enumerate(ids):
        earlier = ids[:i]
        link = st.sampled_from(earlier).map(lambda n: [n, 0]) if earlier else st.none()
        kind = draw(st.sampled_from(["gate", "save", "load", "other"]))
        if kind == "gate":
            node = gate(
                draw(st.one_of(st.none(), link)),
                send=draw(st.sampled_from(["", "a", "b"])),
                get=draw(st.one_of(st.just(""), slot)),
            )
        elif kind == "save":
            node = bus_save(draw(link) if earlier else "no link", draw(st.sampled_from(["a", "b"])))
        elif kind == "load":
            node = bus_load(draw(slot))
        else:
            node = {"class_type": "Other", "inputs": {"x": draw(st.one_of(st.none(), link))}}
        if earlier and draw(st.booleans()):
            node["inputs"]["after"] = draw(link)
        prompt[node_id] = node
    return prompt


@settings(max_examples=300, deadline=None)
@given(prompts())
def test_property_readers_follow_every_writer_they_do_not_feed(prompt):
    original = copy.deepcopy(prompt)
    out = order_slot_access(prompt)
    assert prompt == original
    assert acyclic(out)
    assert order_slot_access(out) is out  # stable
    for slot in "abc":
        writers = [n for n, node in out.items() if ordering.written_slot(node) == slot]
        readers = [n for n, node in out.items() if ordering.read_slot(node) == slot]
        if not readers:
            continue
        for i, w in enumerate(writers):  # writers are totally ordered: one last writer
            assert all(runs_after(out, w, v) or runs_after(out, v, w) for v in writers[i + 1 :])
        for r in readers:
            for w in writers:
                if w != r:
                    # after the writer, or upstream of it (feeds it): never undefined
                    assert runs_after(out, r, w) or runs_after(out, w, r), (r, w, out)
