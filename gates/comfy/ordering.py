"""Slot-aware execution order: in one prompt, whoever reads a slot runs after whoever writes it.

ComfyUI runs independent nodes in no defined order (output nodes sit in a set, so the order
can even change with the server's hash seed), and it knows nothing about slots: a gate with
`get_id=s` could run before the gate that publishes `s` in the same prompt, and read the last
run's image. `order_slot_access` rewrites the API-format prompt before ComfyUI validates it,
adding ordering links between the pack's own nodes. It is pure: no ComfyUI, no disk.

Who writes and who reads (widget values only; a widget fed by a link, e.g. a primitive node,
is unknown at queue time and is skipped):

- writers of `s`: an Image Gate with `send_id=s`, a Bus Save with `slot_id=s`;
- readers of `s`: an Image Gate with `get_id=s` (or `s@-N`) and no `image` linked, a Bus Load
  with `slot_id=s` (or `s@-N`).

The rules, applied only to slots that one prompt both writes and reads:

- Writers of a slot are put in one order: writers already ordered by links keep that order,
  the others go by node id (numeric, part by part: "9" < "10" < "12:5"), except that a writer
  that also reads the slot (a gate with get_id=s and send_id=s) goes after the plain writers.
  Each writer is linked after the one before it, so the last writer in that order is the
  last to publish: its version is what the slot holds after the run.
- Each reader runs after the last writer it can follow without making a cycle, hence after
  every writer before that one. A reader upstream of a writer (its output feeds that writer,
  e.g. a loop that feeds the last run's result back in) cannot follow it: it runs before it
  and reads the version from before that writer, usually the previous run's.
- A link is added only where the order is not already implied, and never where it would
  close a cycle.

The link goes into the node's `after` input (declared optional, type "*", rawLink: ComfyUI
orders on it but does not resolve it, so a writer that is blocked or publishes nothing does
not block the reader, which then reads the slot as it is). If the user has linked `after`
already, the next free hidden input (`after_2`, `after_3`) takes the link; a node needs at
most two ordering links (one as a reader, one as a writer), so three keys always suffice.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable
from typing import Any

from ..bus.ids import parse_ref, validate_id

GATE = "ImageGate"
BUS_SAVE = "DatasetGatesBusSave"
BUS_LOAD = "DatasetGatesBusLoad"
AFTER = "after"  # the visible, user-facing ordering socket
HIDDEN_AFTER = ("after_2", "after_3")  # for ordering links when `after` is taken
AFTER_KEYS = (AFTER, *HIDDEN_AFTER)

log = logging.getLogger("dataset_gates")

Prompt = dict[str, Any]


def after_input() -> tuple[str, dict[str, Any]]:
    """The declaration of every ordering input: any type, passed as the raw link."""
    return (
        "*",
        {
            "rawLink": True,
            "tooltip": "order only: this node runs after the node linked here, even when "
            "that node is blocked; nothing is passed",
        },
    )


def is_link(value: Any) -> bool:
    """ComfyUI's own test (comfy_execution.graph_utils.is_link)."""
    return (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], (int, float))
        and not isinstance(value[1], bool)
    )


def _widget(inputs: dict[str, Any], name: str) -> str | None:
    value = inputs.get(name)
    if isinstance(value, dict) and "__value__" in value:  # ComfyUI's wrapped widget value
        value = value["__value__"]
    return value.strip() if isinstance(value, str) and value.strip() else None


def _node(node: Any) -> tuple[str, dict[str, Any]] | None:
    """(class_type, inputs) of a well-formed API-format node, else None."""
    if isinstance(node, dict) and isinstance(node.get("class_type"), str) and isinstance(node.get("inputs"), dict):
        return node["class_type"], node["inputs"]
    return None


def written_slot(node: Any) -> str | None:
    """The slot this node publishes to, if it is a writer with a known, valid id."""
    kind, inputs = _node(node) or ("", {})
    key = {GATE: "send_id", BUS_SAVE: "slot_id"}.get(kind)
    value = _widget(inputs, key) if key else None
    try:
        return validate_id(value) if value else None
    except ValueError:
        return None  # ComfyUI's validation reports it


def read_slot(node: Any) -> str | None:
    """The slot this node loads, if it is a reader with a known, valid id or ref."""
    kind, inputs = _node(node) or ("", {})
    if kind == GATE and not is_link(inputs.get("image")):
        value = _widget(inputs, "get_id")
    elif kind == BUS_LOAD:
        value = _widget(inputs, "slot_id")
    else:
        return None
    try:
        return parse_ref(value)[0] if value else None
    except ValueError:
        return None


def id_key(node_id: str) -> tuple:
    """Node ids in numeric order, part by part: '9' < '10' < '10:2' < '12:5' < 'abc'."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in str(node_id).split(":"))


class _Graph:
    """The prompt's links (node -> the nodes it links to), plus the ones added here."""

    def __init__(self, prompt: Prompt):
        self.deps: dict[str, set[str]] = {}
        for node_id, node in prompt.items():
            inputs = node.get("inputs") if isinstance(node, dict) else None
            values = inputs.values() if isinstance(inputs, dict) else ()
            self.deps[node_id] = {v[0] for v in values if is_link(v) and v[0] in prompt}

    def depends_on(self, node: str, other: str) -> bool:
        """True if `node` already runs after `other` (a path of links from node to other)."""
        seen, stack = set(), [node]
        while stack:
            for dep in self.deps.get(stack.pop(), ()):
                if dep == other:
                    return True
                if dep not in seen:
                    seen.add(dep)
                    stack.append(dep)
        return False

    def ordered(self, nodes: Iterable[str], last: Iterable[str] = ()) -> list[str]:
        """`nodes` in link order; ties go by id, with the nodes in `last` after the others."""
        late = set(last)
        rest = sorted(set(nodes), key=lambda n: (n in late, id_key(n)))
        out: list[str] = []
        while rest:
            ready = next((n for n in rest if not any(self.depends_on(n, m) for m in rest if m != n)), rest[0])
            out.append(ready)
            rest.remove(ready)
        return out


def plan(prompt: Prompt) -> list[tuple[str, str]]:
    """The ordering links to add, as (node, runs_after) pairs, in a deterministic order."""
    writers: dict[str, list[str]] = {}
    readers: dict[str, list[str]] = {}
    for node_id, node in prompt.items():
        if (slot := written_slot(node)) is not None:
            writers.setdefault(slot, []).append(node_id)
        if (slot := read_slot(node)) is not None:
            readers.setdefault(slot, []).append(node_id)
    graph = _Graph(prompt)
    links: list[tuple[str, str]] = []

    def link(node: str, after: str) -> None:
        graph.deps[node].add(after)
        links.append((node, after))

    for slot in sorted(set(writers) & set(readers)):
        chain = graph.ordered(writers[slot], last=readers[slot])
        for before, writer in itertools.pairwise(chain):
            if not graph.depends_on(writer, before) and not graph.depends_on(before, writer):
                link(writer, before)
        for reader in sorted(readers[slot], key=id_key):
            # The last writer this reader can follow; a reader that feeds a writer must not.
            last = next((w for w in reversed(chain) if w != reader and not graph.depends_on(w, reader)), None)
            if last is not None and not graph.depends_on(reader, last):
                link(reader, last)
    return links


def order_slot_access(prompt: Prompt) -> Prompt:
    """The prompt with ordering links added; the same object when there is nothing to add.

    The input is never modified: nodes that get a link are shallow-copied. Anything that is
    not an API-format prompt comes back as it was.
    """
    if not isinstance(prompt, dict) or not all(isinstance(k, str) for k in prompt):
        return prompt
    links = plan(prompt)
    if not links:
        return prompt
    out = dict(prompt)
    for node_id, after in links:
        node = out[node_id]
        if node is prompt[node_id]:
            node = out[node_id] = {**node, "inputs": dict(node["inputs"])}
        inputs = node["inputs"]
        key = next((k for k in AFTER_KEYS if not is_link(inputs.get(k))), None)
        if key is None:  # only a hand-written prompt fills all three
            log.warning(
                "Dataset Gates: node %s has no free ordering input; it may not run after node %s", node_id, after
            )
            continue
        inputs[key] = [after, 0]
        log.debug("Dataset Gates: node %s runs after node %s (%s)", node_id, after, key)
    return out


def on_prompt(json_data: Any) -> Any:
    """PromptServer's on-prompt handler: never raises, and never loses the prompt."""
    try:
        if isinstance(json_data, dict) and isinstance(json_data.get("prompt"), dict):
            ordered = order_slot_access(json_data["prompt"])
            if ordered is not json_data["prompt"]:
                json_data = {**json_data, "prompt": ordered}
    except Exception:
        log.exception("Dataset Gates: could not order slot reads after writes; the prompt runs unchanged")
    return json_data
