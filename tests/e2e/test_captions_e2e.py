"""Captions at the Image Gate's pause, and the Text Gate, in a real ComfyUI page.

Driven in headless Chromium like test_ui_e2e.py (its `Ui` tab, console checks and
screenshots, in $E2E_SHOTS). What leaves the gates is read downstream, from ComfyUI's own
"Preview as Text" node (PreviewAny) in /history: the gate's captions output, a Gate Split
route's captions, and a Text Gate's text and signal.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from test_ui_e2e import (  # noqa: F401 (chromium, ui: fixtures, used by name)
    DECIDED,
    INPUT_IMAGE,
    PAUSED,
    Ui,
    cell,
    chromium,
    colour_of,
    corner_colours,
    publish_batch,
    ui,
)

from gates.bus.local.store import SlotStore

TEXT_PAUSED = ".dg-text-gate[data-mode='paused']"
TEXT_DECIDED = ".dg-text-gate[data-mode='decided']"
CAPTIONS = ["a red barn", "a dog on a beach", "", "two lines:\nsecond line", "ein Bär im Schnee", "a boat"]

# An Image Gate with 2 routes, each to a SaveImage, reading slot `slot` (or LoadImage's picture,
# with captions from a Captions from Text node); its captions output and route 2's captions
# (Gate Split) each to a Preview as Text. Returns the node ids.
BUILD = """
({ slot, image, captionsText, sendId, prefixes }) => {
  const LG = window.LiteGraph, app = window.app;
  app.graph.clear();
  const add = (type, x, y) => { const n = LG.createNode(type); n.pos = [x, y]; app.graph.add(n); return n; };
  const set = (node, name, value) => { const w = node.widgets.find(w => w.name === name); w.value = value; w.callback?.(value); };
  const gate = add("ImageGate", 100, 60);
  set(gate, "routes", 2);
  if (sendId) set(gate, "send_id", sendId);
  if (slot) {
    set(gate, "get_id", slot);
  } else {
    const load = add("LoadImage", -260, 60);
    set(load, "image", image);
    load.connect(0, gate, gate.findInputSlot("image"));
  }
  if (captionsText !== null) {
    const captions = add("DatasetGatesCaptions", -260, 420);
    set(captions, "text", captionsText);
    set(captions, "split", "one for all");
    captions.connect(0, gate, gate.findInputSlot("captions"));
  }
  const saves = prefixes.map((prefix, i) => {
    const save = add("SaveImage", 900, 20 + i * 300);
    save.widgets[0].value = prefix;
    gate.connect(i + 1, save, 0);
    return save.id;
  });
  const shown = add("PreviewAny", 900, 640);
  gate.connect(gate.findOutputSlot("captions"), shown, 0);
  const split = add("DatasetGatesSplit", 700, 900);
  gate.connect(gate.findOutputSlot("decisions"), split, split.findInputSlot("decisions"));
  set(split, "route", 2);
  const route2 = add("PreviewAny", 1000, 900);
  split.connect(split.findOutputSlot("captions"), route2, 0);
  gate.setSize([560, gate.size[1]]);
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  app.graph.setDirtyCanvas(true, true);
  return { gate: gate.id, saves, shown: shown.id, route2: route2.id };
}
"""

# A String (Multiline) -> Text Gate -> Preview as Text for its text; a String into its signal,
# and its signal out to another Preview as Text.
BUILD_TEXT = """
({ text, signal }) => {
  const LG = window.LiteGraph, app = window.app;
  app.graph.clear();
  const add = (type, x, y) => { const n = LG.createNode(type); n.pos = [x, y]; app.graph.add(n); return n; };
  const source = add("PrimitiveStringMultiline", 20, 80);
  source.widgets[0].value = text;
  const sig = add("PrimitiveString", 20, 360);
  sig.widgets[0].value = signal;
  const gate = add("DatasetGatesTextGate", 420, 80);
  source.connect(0, gate, gate.findInputSlot("text"));
  sig.connect(0, gate, gate.findInputSlot("signal"));
  const shown = add("PreviewAny", 900, 80);
  gate.connect(0, shown, 0);
  const passed = add("PreviewAny", 900, 360);
  gate.connect(1, passed, 0);
  gate.setSize([420, Math.max(gate.size[1], 260)]);
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  app.graph.setDirtyCanvas(true, true);
  return { gate: gate.id, shown: shown.id, passed: passed.id };
}
"""


def preview_text(entry: dict[str, Any], node: int) -> str:
    """What a Preview as Text node showed in the run (its `ui.text`)."""
    return entry["outputs"][str(node)]["text"][0]


def node_shot(ui: Ui, what: str, selector: str = ".dg-gate") -> None:
    """The gate node's panel on its own, beside the full-page shots."""
    path = ui.shot(what)
    ui.page.locator(selector).first.screenshot(path=str(path.with_name(path.stem + "_node.png")))


def test_a_batch_shows_its_captions_under_the_images_and_a_typed_edit_leaves_the_gate(ui) -> None:
    publish_batch(ui.comfy, "dg_cap_grid", len(CAPTIONS), meta={"captions": CAPTIONS})
    ids = ui.page.evaluate(
        BUILD,
        {
            "slot": "dg_cap_grid",
            "image": None,
            "captionsText": None,
            "sendId": "",
            "prefixes": ["dg_cap_a", "dg_cap_b"],
        },
    )
    ui.queue()
    pause = ui.wait_paused()
    page = ui.page
    assert pause["captions"] == CAPTIONS
    lines = page.eval_on_selector_all(f"{PAUSED} .dg-cell-caption", "els => els.map(e => [e.textContent, e.hidden])")
    assert lines == [[c or "no caption", False] for c in CAPTIONS]
    node_shot(ui, "grid_captions")

    page.click(f"{cell(1)} .dg-cell-caption")
    editor = f"{cell(1)} .dg-cell-editor"
    page.wait_for_selector(f"{editor}:focus")
    page.keyboard.type(", running")
    page.keyboard.press("Tab")  # on to image 3's caption
    page.wait_for_selector(f"{cell(2)} .dg-cell-editor:focus")
    page.keyboard.type("typed, then undone")
    node_shot(ui, "grid_caption_editing")
    page.keyboard.press("Escape")  # image 3's caption as it was, and back to the panel
    assert page.evaluate("() => document.activeElement.classList.contains('dg-gate')")
    assert page.inner_text(f"{cell(2)} .dg-cell-caption") == "no caption"
    assert "✎" not in page.inner_text(f"{cell(1)} .dg-cell-caption")  # the pen is drawn, not text
    assert page.evaluate(
        f"() => document.querySelector(\"{cell(1)} .dg-cell-caption\").classList.contains('dg-edited')"
    )
    page.click(f"{cell(1)} .dg-cell-img")  # select image 2 ...
    page.keyboard.press("2")  # ... route 2 ...
    page.keyboard.press("Enter")  # ... and send the batch with its captions
    page.wait_for_selector(DECIDED)
    entry = ui.comfy.wait_history(pause["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    expected = [*CAPTIONS]
    expected[1] = "a dog on a beach, running"
    assert json.loads(preview_text(entry, ids["shown"])) == expected  # the gate's captions output
    assert json.loads(preview_text(entry, ids["route2"])) == ["a dog on a beach, running"]  # route 2's, by Gate Split
    assert corner_colours(ui.outputs("dg_cap_b")) == [colour_of(1)]
    assert corner_colours(ui.outputs("dg_cap_a")) == [colour_of(i) for i in range(6) if i != 1]
    node_shot(ui, "grid_captions_sent")


def test_one_image_shows_its_whole_caption_and_the_edit_is_published_with_it(ui) -> None:
    ids = ui.page.evaluate(
        BUILD,
        {
            "slot": None,
            "image": INPUT_IMAGE,
            "captionsText": "a yellow disc,\non blue",
            "sendId": "dg_cap_single",
            "prefixes": ["dg_cap_one_a", "dg_cap_one_b"],
        },
    )
    ui.queue()
    pause = ui.wait_paused()
    page = ui.page
    box = f"{PAUSED} .dg-caption"
    assert pause["captions"] == ["a yellow disc,\non blue"]
    assert page.input_value(box) == "a yellow disc,\non blue"
    node_shot(ui, "single_caption")
    page.click(".dg-gate-status")
    page.keyboard.press("Tab")  # from the panel: edit the caption
    page.wait_for_selector(f"{box}:focus")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("by the pack's e2e test")
    node_shot(ui, "single_caption_editing")
    page.keyboard.press("Enter")  # the last caption: back to the panel, the text kept
    page.keyboard.press("2")  # one image: route 2 sends at once, with the caption
    page.wait_for_selector(DECIDED)
    entry = ui.comfy.wait_history(pause["prompt_id"])
    typed = "a yellow disc,\non blue\nby the pack's e2e test"
    assert json.loads(preview_text(entry, ids["shown"])) == [typed]
    assert json.loads(preview_text(entry, ids["route2"])) == [typed]
    meta = SlotStore(ui.comfy.bus_dir).info("dg_cap_single").meta
    assert meta["captions"] == [typed] and meta["captions_edited"] == [True]
    assert len(ui.outputs("dg_cap_one_b")) == 1 and not ui.outputs("dg_cap_one_a")


@pytest.mark.parametrize("answer", ["send", "stop"])
def test_the_text_gate_pauses_and_passes_the_edited_text_on(ui, answer: str) -> None:
    ids = ui.page.evaluate(BUILD_TEXT, {"text": "a photo of a cat,\nsitting", "signal": "go"})
    ui.queue()
    page = ui.page
    page.wait_for_selector(f"{TEXT_PAUSED} .dg-text-box", timeout=60000)
    (pending,) = ui.comfy.pending_gates(ui.client_id())
    assert pending["kind"] == "text" and pending["node"] == str(ids["gate"])
    box = f"{TEXT_PAUSED} .dg-text-box"
    assert page.input_value(box) == "a photo of a cat,\nsitting"
    page.click(box)
    page.keyboard.press("Control+End")
    page.keyboard.type(" on a mat, für dich")
    node_shot(ui, f"text_gate_{answer}", ".dg-text-gate")
    if answer == "send":
        page.keyboard.press("Enter")
    else:
        page.keyboard.press("Escape")  # the text as it came, out of the box ...
        assert page.input_value(box) == "a photo of a cat,\nsitting"
        page.keyboard.press("Escape")  # ... and on the panel: Stop
    page.wait_for_selector(TEXT_DECIDED)
    entry = ui.comfy.wait_history(pending["prompt_id"])
    if answer == "stop":
        assert "Stopped" in page.inner_text(".dg-text-gate .dg-gate-status")
        assert str(ids["shown"]) not in entry.get("outputs", {})
        return
    assert entry["status"]["status_str"] == "success"
    assert preview_text(entry, ids["shown"]) == "a photo of a cat,\nsitting on a mat, für dich"
    assert preview_text(entry, ids["passed"]) == "go"  # the signal, passed on with the text
    assert "Passed on, edited" in page.inner_text(".dg-text-gate .dg-gate-status")
    node_shot(ui, "text_gate_passed", ".dg-text-gate")
