"""The Image Gate's page UI in a real ComfyUI, driven in headless Chromium.

Needs COMFYUI_DIR and COMFYUI_PYTHON (see README.md here), Debian's /usr/bin/chromium and the
Python `playwright` package; otherwise every test skips with the reason (or, for a missing
browser, fails where DATASET_GATES_REQUIRE_BROWSER is set, as in CI). Screenshots of each
step go to $E2E_SHOTS (default /tmp/e2e_shots), named ui_<test>_<step>.png. The frontend is the
one E2E_FRONTEND picks, in the nodes mode E2E_NODES picks (classic or vue); see README.md.

Every tab records console messages: one whose stack (or text) names /extensions/dataset_gates/
fails the test, with LiteGraph.alwaysRepeatWarnings on from the first script, so a deprecation
the frontend reported once before the pack's code ran is reported again for the pack.

Graphs are built through the page's own `app` / `LiteGraph` objects and queued with the
frontend's Comfy.QueuePrompt command, so the pause events go to this tab as they would for a
person.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from test_browser_page import CHROMIUM, CHROMIUM_ARGS, no_browser  # one browser set-up for every page test

from gates.bus.local.store import SlotStore

SHOTS = Path(os.environ.get("E2E_SHOTS", "/tmp/e2e_shots"))
INPUT_IMAGE = "dg_ui_input.png"
PAUSED = ".dg-gate[data-mode='paused']"
DECIDED = ".dg-gate[data-mode='decided']"
ELSEWHERE = ".dg-gate[data-mode='elsewhere']"
TAKE_OVER = f"{ELSEWHERE} .dg-take-over"
PACK_PATH = "/extensions/dataset_gates/"
# The slot browser's sidebar button, by its accessible name (the tab's tooltip): 1.35 marks it
# with a class, 1.58 with a data-testid, both with this aria-label.
SIDEBAR_BUTTON = "button[aria-label^='Dataset Gates: bus slots']"
# The MaskEditor, by the key the frontend's dialog store gives it (aria-labelledby in 1.35's
# PrimeVue dialog and in 1.58's Reka dialog alike).
EDITOR = "[role='dialog'][aria-labelledby='global-mask-editor']"
ALERT_SETTING = "DatasetGates.PauseAlert"

# Runs before any page script: wraps console.* to keep each message with the stack that logged
# it (LiteGraph reports deprecations through console.warn, captured when LiteGraph is built,
# so after this) and turns LiteGraph.alwaysRepeatWarnings on as soon as LiteGraph exists.
CONSOLE_PROBE = f"""
(() => {{
  const PACK = '{PACK_PATH}';
  const seen = window.__dgConsole = [];
  const text = (a) => {{ try {{ return a instanceof Error ? a.message + '\\n' + a.stack : String(a); }} catch {{ return '?'; }} }};
  for (const level of ['warn', 'error', 'log', 'info', 'debug', 'trace']) {{
    const original = console[level];
    console[level] = function (...args) {{
      const entry = {{ level, text: args.map(text).join(' '), stack: String(new Error().stack) }};
      if (seen.length < 2000) seen.push(entry);
      if ((entry.stack + entry.text).includes(PACK)) window.__dgPackConsole?.(entry);
      return original.apply(this, args);
    }};
  }}
  let litegraph;
  Object.defineProperty(window, 'LiteGraph', {{ configurable: true, enumerable: true, get: () => litegraph,
    set(value) {{ litegraph = value; try {{ value.alwaysRepeatWarnings = true; }} catch {{}} }} }});
}})();
"""

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (os.environ.get("COMFYUI_DIR") and os.environ.get("COMFYUI_PYTHON")),
        reason="UI e2e: set COMFYUI_DIR and COMFYUI_PYTHON to run against a real ComfyUI",
    ),
]

# Builds an Image Gate fed by LoadImage(`image`) or, with no image, reading slot `slot` (get_id),
# with one `sink` node per route (its first widget set to that route's prefix) and the mask through
# MaskToImage to a SaveImage when maskPrefix is given; other widget values by name. Returns the
# node ids and the widget names this ImageGate does not have.
BUILD_GATE = """
({ image, slot, prefixes, maskPrefix, widgets, sink }) => {
  const LG = window.LiteGraph, app = window.app;
  app.graph.clear();
  const add = (type, x, y) => { const n = LG.createNode(type); n.pos = [x, y]; app.graph.add(n); return n; };
  // A LoadImage column left of the gate; or a gate on its own, wide enough for a 4-column grid.
  const at = image
    ? { gate: [380, 80], sink: 800, step: 330, toImage: [420, 760], maskSave: 700 }
    : { gate: [100, 60], sink: 900, step: 300, toImage: [700, 640], maskSave: 640, width: 560 };
  let load = null;
  if (image) {
    load = add("LoadImage", 20, 120);
    load.widgets.find(w => w.name === "image").value = image;
  }
  const gate = add("ImageGate", ...at.gate);
  const set = (name, value) => {
    const w = gate.widgets.find(w => w.name === name);
    if (!w) return false;
    w.value = value; w.callback?.(value);
    return true;
  };
  set("routes", prefixes.length);
  if (load) load.connect(0, gate, gate.findInputSlot("image"));
  else set("get_id", slot);
  const missing = Object.entries(widgets).filter(([k, v]) => !set(k, v)).map(([k]) => k);
  const saves = prefixes.map((prefix, i) => {
    const save = add(sink, at.sink, 20 + i * at.step);
    save.widgets[0].value = prefix;  // SaveImage's filename_prefix, Bus Save's slot_id
    gate.connect(i + 1, save, 0);
    return save.id;
  });
  let maskSave = null;
  if (maskPrefix) {
    const toImage = add("MaskToImage", ...at.toImage);
    gate.connect(0, toImage, 0);
    const save = add("SaveImage", at.sink, at.maskSave);
    save.widgets[0].value = maskPrefix;
    toImage.connect(0, save, 0);
    maskSave = save.id;
  }
  if (at.width) gate.setSize([at.width, gate.size[1]]);
  app.canvas.ds.offset = [0, 0];
  app.canvas.ds.scale = 1;
  app.graph.setDirtyCanvas(true, true);
  return { gate: gate.id, saves, maskSave, missing };
}
"""


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def chromium():
    if not os.path.exists(CHROMIUM):
        no_browser(f"{CHROMIUM} not found; the UI e2e tests need Chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        no_browser("the `playwright` Python package is not installed; the UI e2e tests need it")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def ui(comfy, chromium, request, e2e_nodes_mode):
    """A fresh ComfyUI tab on the e2e server, with the input image in place."""
    comfy.post(
        "/settings",
        json={
            "Comfy.TutorialCompleted": True,
            "Comfy.VueNodes.Enabled": e2e_nodes_mode == "vue",
            "DatasetGates.MaskPainter": "Built-in brush",
            ALERT_SETTING: None,  # unset: the default
        },
    ).raise_for_status()
    picture = Image.new("RGB", (320, 240), (40, 90, 160))
    for x in range(100, 220):
        for y in range(60, 180):
            if (x - 160) ** 2 + (y - 120) ** 2 < 55**2:
                picture.putpixel((x, y), (240, 200, 40))
    picture.save(comfy.input_dir / INPUT_IMAGE)
    page = Ui(comfy, chromium, request.node.name, e2e_nodes_mode)
    yield page
    page.close()


class Ui:
    """One browser tab on ComfyUI plus the helpers these tests share."""

    def __init__(self, comfy, chromium, test_name: str, nodes_mode: str = "classic"):
        self.comfy = comfy
        self.vue = nodes_mode == "vue"
        self.context = chromium.new_context(viewport={"width": 1400, "height": 950})
        self.errors: list[str] = []
        self.pack_console: list[dict] = []  # console messages logged from the pack's files
        self.context.add_init_script(CONSOLE_PROBE)
        self.context.expose_function("__dgPackConsole", lambda entry: self.pack_console.append(entry))
        self.page = self.open_tab()
        self.name = test_name.removeprefix("test_")
        self.step = 0

    def open_tab(self):
        page = self.context.new_page()
        page.on("pageerror", lambda exc: self.errors.append(f"{exc}\n{exc.stack}"))
        page.on(
            "console",
            lambda msg: (
                PACK_PATH in (msg.location or {}).get("url", "")
                and self.pack_console.append({"level": msg.type, "text": msg.text, "stack": str(msg.location)})
            ),
        )
        page.goto(self.comfy.base_url + "/")
        # Ready once the fresh tab's default workflow is in (it would replace a graph built
        # before it) and the extension has added its sidebar button.
        page.wait_for_function(
            "() => window.app?.graph?.nodes?.length > 0 && window.LiteGraph"
            " && window.app.extensionManager?.workflow?.activeWorkflow"
            f' && document.querySelector("{SIDEBAR_BUTTON}")',
            timeout=60000,
        )
        page.wait_for_timeout(300)
        return page

    def close(self) -> None:
        self.context.close()
        assert not self.errors, "uncaught errors in the page:\n" + "\n".join(self.errors)
        assert not self.pack_console, "console messages from the pack's files:\n" + "\n".join(
            f"[{m['level']}] {m['text']}\n{m['stack']}" for m in self.pack_console
        )

    def shot(self, what: str, page=None) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        self.step += 1
        path = SHOTS / f"ui_{self.name}_{self.step:02d}_{what}.png"
        (page or self.page).screenshot(path=str(path))
        return path

    def build(
        self,
        prefixes: list[str],
        mask_prefix: str | None = None,
        slot: str | None = None,
        sink: str = "SaveImage",
        **widgets: Any,
    ) -> dict:
        """LoadImage, or with `slot` that slot (get_id), -> ImageGate -> a `sink` per route; see BUILD_GATE."""
        ids = self.page.evaluate(
            BUILD_GATE,
            {
                "image": None if slot else INPUT_IMAGE,
                "slot": slot,
                "prefixes": prefixes,
                "maskPrefix": mask_prefix,
                "widgets": widgets,
                "sink": sink,
            },
        )
        assert not ids["missing"], f"the ImageGate has no widget {ids['missing']}"
        return ids

    def queue(self) -> None:
        self.page.evaluate("() => window.app.extensionManager.command.execute('Comfy.QueuePrompt')")

    def client_id(self, page=None) -> str:
        return (page or self.page).evaluate("() => window.comfyAPI.api.api.clientId")

    def wait_paused(self, old_token: str | None = None, page=None) -> dict:
        """The pause shown in the node, once its preview has loaded; returns the server's data."""
        page = page or self.page
        try:
            page.wait_for_selector(f"{PAUSED} .dg-route", timeout=60000)
        except Exception:
            self.shot("no_pause", page=page)
            raise AssertionError(
                f"no pause shown; pending for this tab: {self.comfy.pending_gates(self.client_id(page))}, "
                f"all pending: {self.comfy.pending_gates()}, queue: {self.comfy.get('/queue').json()}"
            ) from None
        # A single image shows enlarged at once; a batch shows its grid of thumbnails.
        page.wait_for_function(
            "() => { const g = document.querySelector('.dg-gate[data-mode=\"paused\"]');"
            " if (g.dataset.view === 'grid') return g.dataset.thumbs === 'loaded';"
            " const i = g.querySelector('.dg-preview-img');"
            " return i && i.complete && i.naturalWidth > 0 }",
            timeout=30000,
        )
        self.fit_gate(page)
        deadline = time.monotonic() + 30
        while True:
            pending = self.comfy.pending_gates(self.client_id(page))
            if pending and pending[0]["token"] != old_token:
                return pending[0]
            assert time.monotonic() < deadline, f"no new pause for this tab: {pending}"
            time.sleep(0.1)

    def fit_gate(self, page=None) -> None:
        """Move the canvas up when the paused gate's panel reaches below the window (a tall
        node: a grid under all of the gate's outputs and widgets)."""
        page = page or self.page
        moved = page.evaluate("""() => {
            const root = document.querySelector('.dg-gate[data-mode="paused"]');
            const over = root.getBoundingClientRect().bottom - (window.innerHeight - 8);
            if (over <= 0) return false;
            const ds = app.canvas.ds;
            ds.offset = [ds.offset[0], ds.offset[1] - over / ds.scale];
            app.canvas.setDirty(true, true);
            return true;
        }""")
        if moved:
            page.wait_for_timeout(200)  # the DOM widgets follow the canvas on its next frame

    def outputs(self, prefix: str) -> list[Path]:
        return sorted(self.comfy.output_dir.glob(f"{prefix}_*.png"))

    def paint_with_brush(self) -> None:
        """Open the built-in brush, paint one horizontal stroke across the middle, save."""
        self.page.click(".dg-edit-mask")
        self.page.wait_for_selector(".dg-brush-canvas")
        box = self.page.locator(".dg-brush-canvas").bounding_box()
        y = box["y"] + box["height"] * 0.5
        self.page.mouse.move(box["x"] + box["width"] * 0.2, y)
        self.page.mouse.down()
        self.page.mouse.move(box["x"] + box["width"] * 0.8, y, steps=12)
        self.page.mouse.up()


def history_nodes(entry: dict) -> set[str]:
    return {node for node, out in entry.get("outputs", {}).items() if out.get("images")}


# -- tests -------------------------------------------------------------------------------------
def test_pause_in_node_click_and_keyboard_pick(ui) -> None:
    """Queue, see the preview and route buttons in the node, click route 2: only branch 2
    runs. Then "Run from here" pauses again and key 1 picks route 1."""
    ids = ui.build(["dg_ui_a", "dg_ui_b"])
    ui.shot("graph")
    ui.queue()
    pause = ui.wait_paused()
    assert pause["node"] == str(ids["gate"]) and pause["routes"] == 2
    page = ui.page
    assert page.locator(f"{PAUSED} .dg-route").count() == 2
    src = page.get_attribute(".dg-preview-img", "src")
    assert "/datasete_gate/preview?" in src and "data:" not in src  # a server thumbnail, not base64
    assert page.evaluate("() => document.querySelector('.dg-preview-img').naturalWidth") == 320
    ui.shot("paused")

    page.click(".dg-route[data-route='2']")
    page.wait_for_selector(DECIDED)
    entry = ui.comfy.wait_history(pause["prompt_id"])
    assert history_nodes(entry) == {str(ids["saves"][1])}
    assert len(ui.outputs("dg_ui_b")) == 1 and not ui.outputs("dg_ui_a")
    assert "route 2" in page.inner_text(".dg-gate-status")
    page.wait_for_selector(".dg-run:visible")
    ui.shot("decided_route2")

    page.click(".dg-run")  # "Run from here" queues the workflow again
    second = ui.wait_paused(old_token=pause["token"])
    page.wait_for_timeout(500)  # the queue call may resolve after the new pause: it must not speak then
    assert "Queued" not in page.inner_text(f"{PAUSED}")
    page.click(".dg-gate-status")  # the gate has focus ...
    page.keyboard.press("1")  # ... so key 1 picks route 1
    page.wait_for_selector(DECIDED)
    entry = ui.comfy.wait_history(second["prompt_id"])
    assert history_nodes(entry) == {str(ids["saves"][0])}
    assert len(ui.outputs("dg_ui_a")) == 1 and len(ui.outputs("dg_ui_b")) == 1
    ui.shot("decided_key1")


def test_escape_stops_the_run(ui) -> None:
    ui.build(["dg_ui_esc_a", "dg_ui_esc_b"])
    ui.queue()
    pause = ui.wait_paused()
    ui.page.click(".dg-gate-status")
    ui.page.keyboard.press("Escape")
    ui.page.wait_for_selector(DECIDED)
    entry = ui.comfy.wait_history(pause["prompt_id"])
    assert entry["status"]["status_str"] != "success" or not history_nodes(entry)
    assert not ui.outputs("dg_ui_esc_a") and not ui.outputs("dg_ui_esc_b")
    assert "Stopped" in ui.page.inner_text(".dg-gate-status")
    ui.shot("stopped")


def gate_outputs(*labels: str, routes: int | None = None) -> list[str]:
    """What the gate's outputs read: all 14, always (a prompt links them by index), the first
    `routes` labelled as given ("" = unnamed) and the rest shown as off."""
    routes = len(labels) if routes is None else routes
    named = [f"{label} ({i})" if label else f"route_{i}" for i, label in enumerate(labels, 1)]
    named += [f"route_{i}" for i in range(len(labels) + 1, routes + 1)]
    return ["mask", *named, *(f"off ({i})" for i in range(routes + 1, 11)), "decisions", "latent", "captions"]


def test_labels_show_on_buttons_and_outputs_and_survive_reload(ui) -> None:
    ui.build(["dg_ui_lab_a", "dg_ui_lab_b"])
    page = ui.page
    page.click(".dg-labels summary")
    page.fill(".dg-label-input[data-route='1']", "keep")
    page.press(".dg-label-input[data-route='1']", "Enter")
    page.fill(".dg-label-input[data-route='2']", "reject")
    page.press(".dg-label-input[data-route='2']", "Enter")
    state = page.evaluate("""() => { const g = app.graph.findNodesByType('ImageGate')[0];
        return { outs: g.outputs.map(o => o.label || o.name), widget: g.widgets.find(w => w.name === 'labels').value,
                 hidden: g.widgets.find(w => w.name === 'labels').hidden }; }""")
    assert state == {"outs": gate_outputs("keep", "reject"), "widget": "keep, reject", "hidden": True}
    ui.shot("labels")
    reloaded = page.evaluate("""async () => { await app.loadGraphData(app.graph.serialize());
        const g = app.graph.findNodesByType('ImageGate')[0];
        return { outs: g.outputs.map(o => o.label || o.name), props: g.properties.dg_labels.slice(0, 2) }; }""")
    assert reloaded == {"outs": gate_outputs("keep", "reject"), "props": ["keep", "reject"]}
    ui.queue()
    pause = ui.wait_paused()
    assert pause["labels"] == ["keep", "reject"]  # the hidden widget reached the server
    names = page.eval_on_selector_all(".dg-route .dg-route-name", "els => els.map(e => e.textContent)")
    assert names == ["keep", "reject"]
    ui.shot("labelled_buttons")
    page.click(".dg-route[data-route='1']")
    page.wait_for_selector(DECIDED)
    entry = ui.comfy.wait_history(pause["prompt_id"])
    assert len(history_nodes(entry)) == 1


def test_routes_mark_the_routes_beyond_them_off_and_keep_every_output_and_link(ui) -> None:
    """decisions and latent sit at 11 and 12 and a prompt links outputs by index, so changing
    `routes` never removes an output or a link: it only shows the routes beyond it as off."""
    ui.build(["dg_ui_r_a", "dg_ui_r_b"])
    result = ui.page.evaluate("""() => {
        const g = app.graph.findNodesByType('ImageGate')[0];
        const w = g.widgets.find(w => w.name === 'routes');
        const set = v => { w.value = v; w.callback(v);
            return g.outputs.map((o, i) => [o.label || o.name, g.isOutputConnected(i) ? 1 : 0]); };
        return { four: set(4), one: set(1) };
    }""")
    linked = {"route_1", "route_2", "off (2)"}
    assert result["four"] == [[name, int(name in linked)] for name in gate_outputs(routes=4)]
    assert result["one"] == [[name, int(name in linked)] for name in gate_outputs(routes=1)]


def test_vue_node_shows_route_outputs_and_labels(ui) -> None:
    """Vue nodes mode draws the outputs from the frontend's own node data: routes added or
    removed and labels edited after the node is on screen show there as on the canvas."""
    if not ui.vue:
        pytest.skip("Vue nodes mode only (E2E_NODES=vue): the canvas draws outputs from node.outputs")
    ids = ui.build(["dg_ui_vo_a", "dg_ui_vo_b"])
    page = ui.page
    node = f"[data-node-id='{ids['gate']}']"

    def shown() -> list[str]:
        return page.evaluate(
            """sel => {  // texts in the node outside the gate's own panel
            const texts = [...document.querySelectorAll(sel + ' *')]
                .filter(e => !e.closest('.dg-root') && !e.children.length).map(e => e.textContent.trim());
            return ['mask', 'route_1', 'route_2', 'route_3', 'off (4)', 'keep (1)', 'drop (3)', 'off (3)']
                .filter(name => texts.includes(name)); }""",
            node,
        )

    page.evaluate(
        """(gateId) => { const w = app.graph.getNodeById(gateId).widgets.find(w => w.name === 'routes');
        w.value = 3; w.callback(3); }""",
        ids["gate"],
    )
    page.click(".dg-labels summary")
    for route, label in ((1, "keep"), (3, "drop")):
        page.fill(f".dg-label-input[data-route='{route}']", label)
        page.press(f".dg-label-input[data-route='{route}']", "Enter")
    page.wait_for_timeout(300)
    assert shown() == ["mask", "route_2", "off (4)", "keep (1)", "drop (3)"]
    ui.shot("vue_outputs_labelled")
    page.evaluate(
        """(gateId) => { const w = app.graph.getNodeById(gateId).widgets.find(w => w.name === 'routes');
        w.value = 1; w.callback(1); }""",
        ids["gate"],
    )
    page.wait_for_timeout(300)
    assert shown() == ["mask", "off (4)", "keep (1)", "off (3)"]


def test_painted_mask_is_sent_and_kept_for_the_next_run(ui) -> None:
    """Built-in brush: the stroke shows as an overlay, reaches the mask output, and is sent
    again on the next pause before the user picks."""
    ids = ui.build(["dg_ui_m_a", "dg_ui_m_b"], mask_prefix="dg_ui_m_mask")
    ui.queue()
    pause = ui.wait_paused()
    ui.paint_with_brush()
    ui.shot("brush")
    ui.page.click(".dg-brush-save")
    ui.page.wait_for_selector(".dg-overlay:not([hidden])")
    ui.page.wait_for_function("() => !document.querySelector('.dg-route').disabled")
    assert ui.comfy.pending_gates(ui.client_id())[0]["painted"] == [-1]
    ui.shot("overlay")
    ui.page.click(".dg-route[data-route='1']")
    ui.page.wait_for_selector(DECIDED)
    entry = ui.comfy.wait_history(pause["prompt_id"])
    assert history_nodes(entry) == {str(ids["saves"][0]), str(ids["maskSave"])}
    mask = np.asarray(Image.open(ui.outputs("dg_ui_m_mask")[-1]).convert("L"))
    assert mask.shape == (240, 320)
    assert mask[120, 160] > 200 and mask[20, 20] < 30  # painted across the middle only

    ui.page.click(".dg-run")
    second = ui.wait_paused(old_token=pause["token"])
    deadline = time.monotonic() + 10
    while ui.comfy.pending_gates(ui.client_id())[0]["painted"] != [-1]:
        assert time.monotonic() < deadline, "the kept mask was not sent again"
        time.sleep(0.1)
    assert ui.page.is_visible(".dg-overlay")
    ui.shot("mask_kept_next_run")
    ui.page.click(".dg-clear-mask")
    ui.page.wait_for_selector(".dg-overlay", state="hidden")
    assert ui.comfy.pending_gates(ui.client_id())[0]["painted"] == []
    ui.page.click(".dg-route[data-route='2']")
    ui.comfy.wait_history(second["prompt_id"])
    mask = np.asarray(Image.open(ui.outputs("dg_ui_m_mask")[-1]).convert("L"))
    assert mask.max() == 0


def test_batch_paging(ui) -> None:
    """A batch shows as a grid; Space (or the button) enlarges one image, which pages with the
    arrows; back on the grid with nothing selected, a route sends the whole batch at once."""
    ids = ui.build(["dg_ui_p_a", "dg_ui_p_b"])
    ui.page.evaluate(
        """(gateId) => {
        const gate = app.graph.getNodeById(gateId);
        const load = app.graph.findNodesByType('LoadImage')[0];
        const rep = LiteGraph.createNode('RepeatImageBatch'); rep.pos = [20, 560]; app.graph.add(rep);
        rep.widgets.find(w => w.name === 'amount').value = 3;
        load.connect(0, rep, 0);
        rep.connect(0, gate, gate.findInputSlot('image'));
    }""",
        ids["gate"],
    )
    ui.queue()
    pause = ui.wait_paused()
    assert pause["batch"] == 3
    assert ui.page.locator(".dg-cell").count() == 3
    ui.page.click(".dg-view-toggle")
    assert ui.page.inner_text(".dg-page-label") == "1 / 3"
    ui.page.click(".dg-next")
    assert ui.page.inner_text(".dg-page-label") == "2 / 3"
    ui.page.wait_for_function(
        "() => { const i = document.querySelector('.dg-preview-img');"
        " return i.src.includes('index=1') && !i.src.includes('side=') && i.complete }"
    )
    ui.page.keyboard.press("ArrowRight")
    assert ui.page.inner_text(".dg-page-label") == "3 / 3"
    ui.shot("page3of3")
    ui.page.keyboard.press(" ")  # back to the grid, nothing selected
    ui.page.wait_for_selector(".dg-gate[data-view='grid'] .dg-thumbs:visible")
    assert ui.page.locator(".dg-cell.dg-selected").count() == 0
    ui.page.click(".dg-route[data-route='2']")
    ui.comfy.wait_history(pause["prompt_id"])
    assert len(ui.outputs("dg_ui_p_b")) == 3


def test_reload_shows_the_pause_again_only_in_the_queuing_tab(ui) -> None:
    ui.build(["dg_ui_rl_a", "dg_ui_rl_b"])
    ui.queue()
    pause = ui.wait_paused()
    other = ui.open_tab()  # a second tab: a different client id
    ui.page.reload()
    ui.page.wait_for_function("() => window.app?.graph && window.app.extensionManager")
    # A reloaded tab restores its workflow, asks GET /pending, and shows the pause again.
    again = ui.wait_paused()
    assert again["token"] == pause["token"]
    ui.shot("after_reload")
    other.wait_for_timeout(1500)
    assert other.locator(PAUSED).count() == 0
    ui.shot("other_tab", page=other)
    ui.page.click(".dg-route[data-route='2']")
    ui.comfy.wait_history(pause["prompt_id"])
    assert len(ui.outputs("dg_ui_rl_b")) == 1


POST_FROM_PAGE = """async ([path, body]) => {
    const r = await fetch('/api/datasete_gate' + path, { method: 'POST', headers: { 'Content-Type': 'application/json' },
                                                       body: JSON.stringify(body) });
    return { status: r.status, body: await r.json() };
}"""


def test_a_pause_belongs_to_the_tab_that_queued_it_and_can_be_taken_over(ui) -> None:
    """The owner tab pauses; a second tab with the same workflow shows a notice and no
    buttons, and cannot answer. Once the owner tab is closed a fresh tab offers "Take over",
    which moves the pause to it: its click completes the prompt, the old token is dead."""
    ids = ui.build(["dg_ui_own_a", "dg_ui_own_b"])
    owner = ui.page
    ui.queue()
    pause = ui.wait_paused()
    workflow = owner.evaluate("() => JSON.stringify(app.graph.serialize())")  # (JSON drops undefined)
    ui.shot("owner_paused")

    second = ui.open_tab()
    second.evaluate("w => app.loadGraphData(JSON.parse(w))", workflow)
    second.wait_for_selector(ELSEWHERE, timeout=15000)  # learnt by its GET /pending poll
    assert "waiting in another tab" in second.inner_text(".dg-gate-status")
    assert second.locator(".dg-route").count() == 0
    assert not second.is_visible(".dg-take-over")  # the owner tab is open
    assert second.locator(".dg-preview-img[src*='token']").count() == 0
    assert "token" not in json.dumps(ui.comfy.pending_gates(ui.client_id(second)))
    ui.shot("second_tab_notice", page=second)
    # A non-owner cannot answer (it has no token; a guess is refused) nor take over.
    refused = second.evaluate(POST_FROM_PAGE, ["/choice", {"node": pause["node"], "token": "guess", "route": 1}])
    assert refused["status"] == 409 and "belongs to another tab" in refused["body"]["error"]
    refused = second.evaluate(POST_FROM_PAGE, ["/takeover", {"node": pause["node"], "client_id": ui.client_id(second)}])
    assert refused["status"] == 409 and "still open" in refused["body"]["error"]
    second.close()

    owner.close()  # the owner's socket closes: the pause is orphaned
    fresh = ui.page = ui.open_tab()
    fresh.evaluate("w => app.loadGraphData(JSON.parse(w))", workflow)
    fresh.wait_for_selector(f"{TAKE_OVER}:visible", timeout=15000)
    assert "waiting in another tab" in fresh.inner_text(".dg-gate-status")
    assert fresh.locator(".dg-route").count() == 0
    ui.shot("fresh_tab_take_over")
    fresh.click(".dg-take-over")
    taken = ui.wait_paused(old_token=pause["token"])
    assert taken["node"] == pause["node"] and taken["prompt_id"] == pause["prompt_id"]
    ui.shot("taken_over")
    # The old owner's token is dead, and the answer says why.
    stale = ui.comfy.post("/datasete_gate/choice", json={"node": pause["node"], "token": pause["token"], "route": 1})
    assert stale.status_code == 409 and "taken over by another tab" in stale.json()["error"]
    fresh.click(".dg-route[data-route='2']")
    fresh.wait_for_selector(DECIDED)  # the done event reached the new owner
    entry = ui.comfy.wait_history(pause["prompt_id"])
    assert history_nodes(entry) == {str(ids["saves"][1])}
    assert len(ui.outputs("dg_ui_own_b")) == 1 and not ui.outputs("dg_ui_own_a")
    assert "route 2" in fresh.inner_text(".dg-gate-status")
    ui.shot("taken_over_decided")


def test_labels_from_an_api_workflow_show_everywhere_and_one_edit_keeps_the_rest(ui) -> None:
    prompt = {
        "1": {"class_type": "LoadImage", "inputs": {"image": INPUT_IMAGE}},
        "2": {"class_type": "ImageGate", "inputs": {"routes": 3, "labels": "keep,fix,drop", "image": ["1", 0]}},
        **{
            str(2 + r): {"class_type": "SaveImage", "inputs": {"images": ["2", r], "filename_prefix": f"dg_ui_api_{r}"}}
            for r in (1, 2, 3)
        },
    }
    page = ui.page
    page.evaluate("p => app.loadApiJson(p, 'dg_api_labels.json')", prompt)  # as when an API file is dropped

    def labels_state() -> dict:
        return page.evaluate("""() => { const g = app.graph.getNodeById(2);
            return { outs: g.outputs.map(o => o.label || o.name), widget: g.widgets.find(w => w.name === 'labels').value,
                     editor: [...document.querySelectorAll('.dg-label-input')].map(i => i.value) }; }""")

    page.click(".dg-labels summary")
    assert labels_state() == {
        "outs": gate_outputs("keep", "fix", "drop"),
        "widget": "keep, fix, drop",
        "editor": ["keep", "fix", "drop"],
    }
    prompt_id = ui.comfy.queue(prompt, ui.client_id())  # the API prompt, to this tab
    ui.wait_paused()
    names = page.eval_on_selector_all(".dg-route .dg-route-name", "els => els.map(e => e.textContent)")
    assert names == ["keep", "fix", "drop"]
    ui.shot("api_labels")

    page.fill(".dg-label-input[data-route='2']", "repair")
    page.press(".dg-label-input[data-route='2']", "Enter")
    assert labels_state() == {
        "outs": gate_outputs("keep", "repair", "drop"),
        "widget": "keep, repair, drop",
        "editor": ["keep", "repair", "drop"],
    }
    ui.shot("one_label_edited")
    page.click(".dg-route[data-route='3']")
    page.wait_for_selector(DECIDED)
    ui.comfy.wait_history(prompt_id)
    assert len(ui.outputs("dg_ui_api_3")) == 1

    ui.queue()  # from the page now: the edited labels reach the server
    pause = ui.wait_paused()
    assert pause["labels"] == ["keep", "repair", "drop"]
    names = page.eval_on_selector_all(".dg-route .dg-route-name", "els => els.map(e => e.textContent)")
    assert names == ["keep", "repair", "drop"]
    page.click(".dg-route[data-route='2']")
    ui.comfy.wait_history(pause["prompt_id"])
    assert len(ui.outputs("dg_ui_api_2")) == 1


def test_gate_inside_a_subgraph(ui) -> None:
    ui.build(["dg_ui_sg_a", "dg_ui_sg_b"])
    info = ui.page.evaluate("""async () => {
        const gate = app.graph.findNodesByType('ImageGate')[0];
        app.canvas.deselectAll(); app.canvas.select(gate);
        await app.extensionManager.command.execute('Comfy.Graph.ConvertToSubgraph');
        const holder = app.graph.nodes.find(n => n.subgraph);
        return { holder: holder.id, inner: holder.subgraph.nodes.find(n => n.type === 'ImageGate').id };
    }""")
    ui.queue()
    deadline = time.monotonic() + 60
    while not (pending := ui.comfy.pending_gates(ui.client_id())):
        assert time.monotonic() < deadline, "the gate inside the subgraph never paused"
        time.sleep(0.1)
    assert pending[0]["node"] == f"{info['holder']}:{info['inner']}"
    ui.shot("root_view_toast")
    ui.page.evaluate(
        "() => { const h = app.graph.nodes.find(n => n.subgraph); app.canvas.openSubgraph(h.subgraph, h); }"
    )
    ui.wait_paused()
    ui.shot("inside_subgraph")
    ui.page.click(".dg-route[data-route='2']")
    ui.page.wait_for_selector(DECIDED)
    ui.comfy.wait_history(pending[0]["prompt_id"])
    assert len(ui.outputs("dg_ui_sg_b")) == 1 and not ui.outputs("dg_ui_sg_a")


def test_get_id_picker_lists_published_slots(ui) -> None:
    store = SlotStore(ui.comfy.bus_dir)
    store.publish("dg_ui_picked", torch.rand(2, 24, 32, 3))
    ui.build(["dg_ui_pk_a", "dg_ui_pk_b"])
    ui.page.click(".dg-pick-get")
    row = ".dg-picker .dg-pick-row[data-slot-id='dg_ui_picked']"
    ui.page.wait_for_selector(row)
    ui.page.wait_for_function(
        "sel => { const i = document.querySelector(sel + ' img.dg-pick-thumb'); return i && i.complete && i.naturalWidth > 0 }",
        arg=row,
    )
    assert "batch 2" in ui.page.inner_text(row) and "32×24" in ui.page.inner_text(row)
    ui.shot("picker")
    ui.page.click(row)
    value = ui.page.evaluate(
        "() => app.graph.findNodesByType('ImageGate')[0].widgets.find(w => w.name === 'get_id').value"
    )
    assert value == "dg_ui_picked"
    # Free text still works, here for send_id.
    ui.page.click(".dg-pick-send")
    ui.page.fill(".dg-pick-input", "dg_ui_typed")
    ui.page.press(".dg-pick-input", "Enter")
    value = ui.page.evaluate(
        "() => app.graph.findNodesByType('ImageGate')[0].widgets.find(w => w.name === 'send_id').value"
    )
    assert value == "dg_ui_typed"


def test_sidebar_slot_browser(ui) -> None:
    SlotStore(ui.comfy.bus_dir).publish("dg_ui_sidebar", torch.rand(3, 16, 16, 3))
    ui.page.click(SIDEBAR_BUTTON)
    card = ".dg-browser .dg-card[data-slot-id='dg_ui_sidebar']"
    ui.page.wait_for_selector(card)
    ui.page.wait_for_function(
        "sel => { const i = document.querySelector(sel + ' img'); return i && i.complete && i.naturalWidth > 0 }",
        arg=card,
    )
    ui.page.click(card)
    ui.page.click(".dg-browser .dg-next")
    assert ui.page.inner_text(".dg-browser .dg-page-label") == "2 / 3"
    ui.shot("sidebar")


NODE_STATE = """(gateId) => {
    const g = app.graph.getNodeById(gateId);
    const key = String(app.extensionManager.workflow?.nodeToNodeLocatorId?.(g) ?? g.id);
    const el = document.querySelector(`[data-node-id="${g.id}"]`);  // Vue nodes mode only
    return { widgets: g.widgets.map(w => w.name), size: [...g.size], imgs: g.imgs?.length ?? null,
             images: g.images ?? null, stored: app.nodeOutputs?.[key] ?? null,
             foreignImages: el ? [...el.querySelectorAll('img')].map(i => i.getAttribute('src') ?? '')
                 .filter(src => src && !src.includes('/datasete_gate/preview') && !src.startsWith('data:')) : [] };
}"""


def test_mask_editor_round_trip(ui) -> None:
    """ComfyUI's MaskEditor opens on the gate's preview; Cancel leaves the node as it was;
    a painted and saved mask reaches the gate and the branch that uses it, and the editor's
    saved image does not stay on the node (no canvas preview widget, node-output entry or
    <img> of it)."""
    page = ui.page
    page.evaluate("() => app.extensionManager.setting.set('DatasetGates.MaskPainter', 'ComfyUI MaskEditor')")
    has_editor = page.evaluate(
        "() => app.extensionManager.command.commands.some(c => c.id === 'Comfy.MaskEditor.OpenMaskEditor')"
    )
    if not has_editor:
        pytest.skip("this frontend has no MaskEditor command")
    ids = ui.build(["dg_ui_me_a", "dg_ui_me_b"], mask_prefix="dg_ui_me_mask")
    ui.queue()
    pause = ui.wait_paused()
    before = page.evaluate(NODE_STATE, ids["gate"])
    assert before["imgs"] is None and before["stored"] is None and before["foreignImages"] == []

    def open_editor() -> dict:
        page.click(".dg-edit-mask")
        page.wait_for_selector(f"{EDITOR} canvas", timeout=15000)
        page.wait_for_function(  # the editor has loaded the gate's preview into its canvases
            "sel => [...document.querySelectorAll(sel + ' canvas')].some(c => c.width === 320 && c.height === 240)",
            arg=EDITOR,
            timeout=15000,
        )
        page.wait_for_timeout(500)
        assert page.locator(".dg-brush").count() == 0  # no built-in brush over the editor
        return page.evaluate(
            """sel => { const c = [...document.querySelectorAll(sel + ' canvas')]
            .map(c => c.getBoundingClientRect()).sort((a, b) => b.width * b.height - a.width * a.height)[0];
            return { x: c.x, y: c.y, width: c.width, height: c.height }; }""",
            EDITOR,
        )

    open_editor()
    ui.shot("mask_editor_opened")
    page.locator(EDITOR).get_by_role("button", name="Cancel").click()
    page.wait_for_selector(EDITOR, state="detached", timeout=15000)
    page.wait_for_timeout(500)  # a late preview would land by now
    assert page.evaluate(NODE_STATE, ids["gate"]) == before
    assert ui.comfy.pending_gates(ui.client_id())[0]["painted"] == []
    assert page.is_hidden(".dg-overlay")

    box = open_editor()
    for k in range(6):  # a band across the middle of the picture
        y = box["y"] + box["height"] * (0.4 + 0.03 * k)
        page.mouse.move(box["x"] + box["width"] * 0.25, y)
        page.mouse.down()
        page.mouse.move(box["x"] + box["width"] * 0.75, y, steps=10)
        page.mouse.up()
    ui.shot("mask_editor_painted")
    page.locator(EDITOR).get_by_role("button", name="Save").click()
    page.wait_for_selector(EDITOR, state="detached", timeout=20000)
    page.wait_for_selector(".dg-overlay:not([hidden])", timeout=20000)
    page.wait_for_function("() => !document.querySelector('.dg-route').disabled")
    assert ui.comfy.pending_gates(ui.client_id())[0]["painted"] == [-1]
    page.wait_for_timeout(500)
    after = page.evaluate(NODE_STATE, ids["gate"])
    # The panel grows for its mask note; everything else is as before the editor opened.
    assert {k: v for k, v in after.items() if k != "size"} == {k: v for k, v in before.items() if k != "size"}
    assert "$$canvas-image-preview" not in after["widgets"]
    ui.shot("mask_editor_saved")

    page.click(".dg-route[data-route='1']")
    page.wait_for_selector(DECIDED)
    entry = ui.comfy.wait_history(pause["prompt_id"])
    assert history_nodes(entry) == {str(ids["saves"][0]), str(ids["maskSave"])}
    mask = np.asarray(Image.open(ui.outputs("dg_ui_me_mask")[-1]).convert("L"))
    assert mask.shape == (240, 320)
    assert mask[120, 160] > 100 and mask[20, 20] < 30 and mask[120, 10] < 30  # the band only
    assert len(ui.outputs("dg_ui_me_a")) == 1 and not ui.outputs("dg_ui_me_b")
    ui.shot("mask_editor_decided")


def test_bus_load_slot_picker(ui) -> None:
    """The Bus Load "pick slot_id" button opens the picker next to itself: where the canvas
    was clicked (classic), or under the node's <button> (Vue nodes call it with no event)."""
    SlotStore(ui.comfy.bus_dir).publish("dg_ui_busload", torch.rand(1, 8, 8, 3))
    page = ui.page
    node_id = page.evaluate("""() => {
        app.graph.clear();
        const n = LiteGraph.createNode('DatasetGatesBusLoad'); n.pos = [200, 200]; app.graph.add(n);
        app.canvas.ds.offset = [0, 0]; app.canvas.ds.scale = 1; app.graph.setDirtyCanvas(true, true);
        return n.id;
    }""")
    page.wait_for_timeout(300)  # drawn once, so the button widget has its place
    widget = page.evaluate("""() => {
        const n = app.graph.findNodesByType('DatasetGatesBusLoad')[0];
        const button = n.widgets.find(w => w.type === 'button');
        const rect = app.canvas.canvas.getBoundingClientRect();
        return { name: button.name, x: rect.left + n.pos[0] + n.size[0] / 2, y: rect.top + n.pos[1] + button.y + 10,
                 serialize: button.serialize, values: n.serialize().widgets_values };
    }""")
    assert widget["serialize"] is False and widget["values"] == ["checkpoint"]
    if ui.vue:
        button = page.locator(f"[data-node-id='{node_id}']").get_by_role("button", name=widget["name"])
        box = button.bounding_box()
        button.click()
        near = (box["x"], box["y"] + box["height"])  # the picker hangs under the button
    else:
        page.mouse.click(widget["x"], widget["y"])
        near = (widget["x"], widget["y"])  # the picker opens where the canvas was clicked
    row = ".dg-picker .dg-pick-row[data-slot-id='dg_ui_busload']"
    page.wait_for_selector(row)
    picker = page.locator(".dg-picker").bounding_box()
    assert abs(picker["x"] - near[0]) < 40 and abs(picker["y"] - near[1]) < 40, (picker, near)
    ui.shot("bus_load_picker")
    page.click(row)
    value = page.evaluate(
        "() => app.graph.findNodesByType('DatasetGatesBusLoad')[0].widgets.find(w => w.name === 'slot_id').value"
    )
    assert value == "dg_ui_busload"


def test_web_modules_are_side_effect_free(ui) -> None:
    """ComfyUI imports every .js under web/; only image_gate.js may register anything."""
    names = ui.comfy.get("/extensions").json()
    ours = sorted(n for n in names if "/dataset_gates/" in n)
    assert any(n.endswith("/image_gate.js") for n in ours) and any(n.endswith("/slot_browser.js") for n in ours)
    extensions = ui.page.evaluate(
        "() => window.comfyAPI?.app?.app?.extensions?.map(e => e.name).filter(n => n.startsWith('DatasetGates'))"
        " ?? null"
    )
    if extensions is not None:
        assert extensions == ["DatasetGates.ImageGate"], json.dumps(extensions)


def test_no_console_messages_from_the_pack(ui) -> None:
    """With LiteGraph.alwaysRepeatWarnings on from the start, the pack's node code logs nothing:
    outputs following `routes` up and down, labels, a saved graph whose `routes` is below its
    linked outputs (those are kept), a pause answered by key, the pickers and the sidebar.
    LiteGraph reports deprecated use (e.g. output.links on 1.58) through console.warn."""
    page = ui.page
    assert page.evaluate("() => window.LiteGraph.alwaysRepeatWarnings") is True
    ids = ui.build(["dg_ui_con_a", "dg_ui_con_b", "dg_ui_con_c"])
    outputs = page.evaluate(
        """async (gateId) => {
        const gate = () => app.graph.getNodeById(gateId);
        const set = (v) => { const w = gate().widgets.find(w => w.name === 'routes'); w.value = v; w.callback(v); };
        set(5); set(3);
        gate().dgGate.setLabel(2, 'keep');
        const data = app.graph.serialize();
        data.nodes.find(n => n.type === 'ImageGate').widgets_values[0] = 1;
        await app.loadGraphData(data);
        const kept = gate().outputs.map(o => o.label || o.name);
        set(3);
        return kept;
    }""",
        ids["gate"],
    )
    assert outputs == gate_outputs(routes=1)  # route 2 keeps its label but is off
    # The probe sees LiteGraph's deprecation warnings, every time (where the getter warns).
    repeated = page.evaluate(
        """(gateId) => {
        const output = app.graph.getNodeById(gateId).outputs[1];
        if (!Object.getOwnPropertyDescriptor(Object.getPrototypeOf(output), 'links')?.get) return null;
        const start = window.__dgConsole.length;
        void output.links; void output.links;
        return window.__dgConsole.slice(start).filter(m => m.text.includes('output.links is deprecated')).length;
    }""",
        ids["gate"],
    )
    assert repeated in (None, 2)
    ui.queue()
    pause = ui.wait_paused()
    page.click(".dg-pick-get")
    page.wait_for_selector(".dg-picker")
    page.keyboard.press("Escape")
    page.click(SIDEBAR_BUTTON)
    page.wait_for_selector(".dg-browser")
    page.click(SIDEBAR_BUTTON)  # closed again: it would cover the gate
    page.wait_for_selector(".dg-browser", state="detached")
    page.click(".dg-gate-status")
    page.keyboard.press("2")
    page.wait_for_selector(DECIDED)
    ui.comfy.wait_history(pause["prompt_id"])
    assert len(ui.outputs("dg_ui_con_b")) == 1
    assert ui.pack_console == [], ui.pack_console


# -- the batch grid: a route per image, pre-selection, masks, sizes and timing -----------------
GRID_W, GRID_H = 320, 240


def colour_of(i: int) -> tuple[int, int, int]:
    """Batch image i's background colour (8-bit exact, distinct for i < 64)."""
    return ((i * 16 + 8) % 256, (250 - i * 3) % 256, (i * 37 + 20) % 256)


def publish_batch(comfy, slot_id: str, n: int, meta: dict | None = None) -> None:
    """A slot of n images, each its own colour with a light disc in the middle."""
    yy, xx = torch.meshgrid(torch.arange(GRID_H), torch.arange(GRID_W), indexing="ij")
    disc = ((xx - GRID_W / 2) ** 2 + (yy - GRID_H / 2) ** 2) < (GRID_H / 4) ** 2
    colours = torch.tensor([colour_of(i) for i in range(n)], dtype=torch.float32) / 255
    batch = colours[:, None, None, :].expand(n, GRID_H, GRID_W, 3).clone()
    batch[:, disc] = 0.92
    SlotStore(comfy.bus_dir).publish(slot_id, batch, meta=meta)


def corner_colours(paths: list[Path]) -> list[tuple[int, int, int]]:
    return [tuple(np.asarray(Image.open(p).convert("RGB"))[4, 4].tolist()) for p in paths]


def cell(index: int) -> str:
    return f".dg-cell[data-index='{index}']"


def test_grid_select_two_press_2_enter_routes_those_two(ui) -> None:
    """16 images as a 4×4 grid: click one, ctrl-click another, key 2, Enter. Route 2's
    SaveImage gets exactly those two (in batch order), route 1 the other 14."""
    publish_batch(ui.comfy, "dg_ui_grid16", 16)
    ui.build(["dg_ui_g16_a", "dg_ui_g16_b"], slot="dg_ui_grid16")
    page = ui.page
    ui.queue()
    pause = ui.wait_paused()
    assert pause["batch"] == 16
    assert page.locator(".dg-cell").count() == 16
    srcs = page.eval_on_selector_all(".dg-cell-img", "els => els.map(e => e.getAttribute('src'))")
    assert all("side=160" in s and f"index={i}" in s for i, s in enumerate(srcs))
    assert page.evaluate("() => document.querySelector('.dg-cell-img').naturalWidth") == 160
    columns = page.evaluate(
        "() => getComputedStyle(document.querySelector('.dg-thumbs')).gridTemplateColumns.split(' ').length"
    )
    assert columns == 4
    ui.shot("grid16")

    page.click(cell(2))
    page.click(cell(5), modifiers=["Control"])
    assert page.eval_on_selector_all(".dg-cell.dg-selected", "els => els.map(e => e.dataset.index)") == ["2", "5"]
    page.keyboard.press("2")
    badges = page.eval_on_selector_all(
        ".dg-cell .dg-cell-badge",
        "els => els.map(e => e.dataset.route + (e.classList.contains('dg-default') ? '?' : ''))",
    )
    assert badges == ["1?"] * 2 + ["2"] + ["1?"] * 2 + ["2"] + ["1?"] * 10
    assert page.get_attribute(".dg-gate", "data-mode") == "paused"  # routed, not sent yet
    ui.shot("grid16_two_on_route2")
    page.keyboard.press("Enter")
    page.wait_for_selector(DECIDED)
    entry = ui.comfy.wait_history(pause["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    route2, route1 = ui.outputs("dg_ui_g16_b"), ui.outputs("dg_ui_g16_a")
    assert corner_colours(route2) == [colour_of(2), colour_of(5)]
    assert corner_colours(route1) == [colour_of(i) for i in range(16) if i not in (2, 5)]
    status = page.inner_text(".dg-gate-status")
    assert "14 down route 1" in status and "2 down route 2" in status
    ui.shot("grid16_sent")


@pytest.mark.parametrize("batch", [1, 4, 64])
def test_grid_sizes_and_the_one_click_flow(ui, batch: int) -> None:
    """1, 4 and 64 images: the grid (or the single image) draws, and a route with nothing
    selected sends the whole batch at once, as before the grid."""
    slot = f"dg_ui_size{batch}"
    publish_batch(ui.comfy, slot, batch)
    ui.build([f"{slot}_a", f"{slot}_b"], slot=slot)
    ui.queue()
    pause = ui.wait_paused()
    page = ui.page
    if batch == 1:
        assert page.locator(".dg-cell").count() == 0 and page.is_visible(".dg-preview-img")
        assert not page.is_visible(".dg-send")
    else:
        assert page.locator(".dg-cell").count() == batch
        loaded = page.evaluate(
            "() => [...document.querySelectorAll('.dg-cell-img')].every(i => i.complete && i.naturalWidth > 0)"
        )
        assert loaded
        columns = page.evaluate(
            "() => getComputedStyle(document.querySelector('.dg-thumbs')).gridTemplateColumns.split(' ').length"
        )
        assert columns == {4: 2, 64: 8}[batch]
    ui.shot(f"size{batch}")
    page.click(".dg-gate-status")
    page.keyboard.press("2")
    page.wait_for_selector(DECIDED)
    ui.comfy.wait_history(pause["prompt_id"])
    assert len(ui.outputs(f"{slot}_b")) == batch and not ui.outputs(f"{slot}_a")


# Armed before queueing; the page keeps the promise, read once the grid is up.
GRID_TIMING = """
() => { window.dgTiming = new Promise((resolve) => {
  const api = window.comfyAPI.api.api;
  const t = {};
  const onMessage = (e) => {
    if (typeof e.data === 'string' && e.data.includes('"datasete_gate.pause"')) t.pause = e.timeStamp;
  };
  api.socket.addEventListener('message', onMessage);
  document.addEventListener('dg-grid-loaded', (e) => {
    api.socket.removeEventListener('message', onMessage);
    const thumbs = performance.getEntriesByType('resource').filter(r => r.name.includes('side=160')
                                                                  && r.startTime >= t.pause);
    performance.clearResourceTimings();
    resolve({ ms: e.timeStamp - t.pause, count: e.detail.count,
              node: app.graph.findNodesByType('ImageGate')[0].dgGate.gridMs,
              first: Math.min(...thumbs.map(r => r.startTime)) - t.pause,
              last: Math.max(...thumbs.map(r => r.responseEnd)) - t.pause,
              server: thumbs.reduce((a, r) => a + r.responseStart - r.requestStart, 0) / thumbs.length });
  }, { once: true });
}); }
"""


def test_64_thumbnails_all_load_and_their_time_is_reported(ui) -> None:
    """A 64-image pause shows all 64 thumbnails (side=160), six times over. The time from the
    pause event reaching the page to the last thumbnail loaded (target: median under 300 ms on
    the 2-core machine) is printed and written to grid64_timing.json in $E2E_SHOTS, not
    asserted: speed targets are measured, never timed tests (see benchmarks/README.md)."""
    publish_batch(ui.comfy, "dg_ui_time64", 64)
    # Bus Save, not SaveImage: the page would load the last run's 64 saved images from /view
    # while the next grid loads.
    ui.build(["dg_ui_t64_a", "dg_ui_t64_b"], slot="dg_ui_time64", sink="DatasetGatesBusSave")
    page = ui.page
    runs = []
    old = None
    for _ in range(6):
        page.evaluate(GRID_TIMING)
        ui.queue()
        pause = ui.wait_paused(old_token=old)
        result = page.evaluate("() => window.dgTiming")
        old = pause["token"]
        assert result["count"] == 64
        runs.append(result)
        page.click(".dg-gate-status")
        page.keyboard.press("1")
        page.wait_for_selector(DECIDED)
        ui.comfy.wait_history(pause["prompt_id"])
    warm_up, runs = runs[0], runs[1:]
    times = sorted(r["ms"] for r in runs)
    print(
        f"64 thumbnails, pause event to all loaded: {[round(t) for t in times]} ms "
        f"(warm-up {round(warm_up['ms'])} ms) "
        f"(node's own count: {[r['node'] for r in runs]} ms; first request after "
        f"{[round(r['first']) for r in runs]} ms, last response after "
        f"{[round(r['last']) for r in runs]} ms; mean wait for the server "
        f"{[round(r['server'], 1) for r in runs]} ms)"
    )
    SHOTS.mkdir(parents=True, exist_ok=True)
    (SHOTS / "grid64_timing.json").write_text(
        json.dumps({"warm_up": warm_up, "runs": runs, "median_ms": times[2], "target_ms": 300})
    )


def test_preselected_routes_from_the_slot_are_reviewed_changed_and_sent(ui) -> None:
    """A gate reading a slot that recorded routes shows them pre-selected; change one, Enter."""
    publish_batch(ui.comfy, "dg_ui_pre4", 4, meta={"routes": [2, 1, 2, 1]})
    ui.build(["dg_ui_pre_a", "dg_ui_pre_b"], slot="dg_ui_pre4")
    ui.queue()
    pause = ui.wait_paused()
    assert pause["preselect"] == [2, 1, 2, 1]
    page = ui.page
    own = page.eval_on_selector_all(
        ".dg-cell .dg-cell-badge", "els => els.map(e => [e.dataset.route, !e.classList.contains('dg-default')])"
    )
    assert own == [["2", True], ["1", True], ["2", True], ["1", True]]
    ui.shot("preselected")
    page.click(cell(1))
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_selector(DECIDED)
    ui.comfy.wait_history(pause["prompt_id"])
    assert corner_colours(ui.outputs("dg_ui_pre_b")) == [colour_of(0), colour_of(1), colour_of(2)]
    assert corner_colours(ui.outputs("dg_ui_pre_a")) == [colour_of(3)]


def test_a_mask_painted_on_a_selected_image_stays_on_that_image(ui) -> None:
    publish_batch(ui.comfy, "dg_ui_mask4", 4)
    ui.build(["dg_ui_gm_a", "dg_ui_gm_b"], slot="dg_ui_mask4", mask_prefix="dg_ui_gm_mask")
    ui.queue()
    pause = ui.wait_paused()
    page = ui.page
    page.click(cell(2))
    ui.shot("image3_selected")
    ui.paint_with_brush()
    assert "image 3/4" in page.inner_text(".dg-brush")
    page.click(".dg-brush-save")
    page.wait_for_selector(f"{cell(2)} .dg-cell-overlay:not([hidden])")
    page.wait_for_function("() => !document.querySelector('.dg-route').disabled")
    assert page.locator(".dg-cell-overlay:not([hidden])").count() == 1
    assert ui.comfy.pending_gates(ui.client_id())[0]["painted"] == [2]
    ui.shot("mask_on_image3")
    page.click(cell(2))  # nothing selected again: key 1 sends the whole batch
    page.keyboard.press("1")
    page.wait_for_selector(DECIDED)
    ui.comfy.wait_history(pause["prompt_id"])
    masks = [np.asarray(Image.open(p).convert("L")) for p in ui.outputs("dg_ui_gm_mask")]
    assert len(masks) == 4
    assert [m[120, 160] > 200 for m in masks] == [False, False, True, False]


# -- countdown, parking and resume -------------------------------------------------------------
def test_countdown_is_shown_and_a_click_stops_it(ui) -> None:
    publish_batch(ui.comfy, "dg_ui_cd4", 4)
    ui.build(["dg_ui_cd_a", "dg_ui_cd_b"], slot="dg_ui_cd4", timeout=120, on_timeout="stop")
    ui.queue()
    pause = ui.wait_paused()
    assert pause["timeout"] == 120 and pause["deadline"] and pause["on_timeout"] == "stop"
    page = ui.page
    page.wait_for_selector(".dg-countdown:visible")
    first = page.inner_text(".dg-countdown")
    assert "left, then the gate stops the run" in first and first.startswith(("2:0", "1:5"))
    page.wait_for_function("t => document.querySelector('.dg-countdown').textContent !== t", arg=first, timeout=5000)
    ui.shot("countdown")
    page.click(cell(1))  # any click: the countdown stops, POST /hold once
    page.wait_for_function("() => document.querySelector('.dg-countdown').textContent.startsWith('Countdown stopped')")
    deadline = time.monotonic() + 10
    while ui.comfy.pending_gates(ui.client_id())[0]["deadline"] is not None:
        assert time.monotonic() < deadline, "the server's deadline was not cleared"
        time.sleep(0.1)
    held = page.inner_text(".dg-countdown")
    page.wait_for_timeout(1200)
    assert page.inner_text(".dg-countdown") == held  # it no longer ticks
    ui.shot("countdown_stopped")
    page.keyboard.press("2")  # image 2 selected: it goes down route 2, the rest route 1
    page.keyboard.press("Enter")
    page.wait_for_selector(DECIDED)
    ui.comfy.wait_history(pause["prompt_id"])
    assert corner_colours(ui.outputs("dg_ui_cd_b")) == [colour_of(1)]
    assert len(ui.outputs("dg_ui_cd_a")) == 3


def test_a_parked_slot_shows_in_the_sidebar_and_resumes_in_this_tab(ui) -> None:
    """A 2 s countdown runs out and parks the batch; the sidebar marks the slot, and Resume
    queues its prompt from this tab: the gate pauses here again on the same batch."""
    publish_batch(ui.comfy, "dg_ui_park4", 4)
    ids = ui.build(["dg_ui_pk4_a", "dg_ui_pk4_b"], slot="dg_ui_park4", timeout=2, on_timeout="park")
    page = ui.page
    ui.queue()
    # On a slow machine the 2 s may run out before a look at the paused node (the countdown is
    # tested above): wait for the end, then read the pause from the node, which keeps it.
    page.wait_for_selector(DECIDED, timeout=60000)  # nobody clicked: it parked
    pause = page.evaluate("(id) => app.graph.getNodeById(id).dgGate.model.info", ids["gate"])
    assert pause["timeout"] == 2 and pause["deadline"] and pause["on_timeout"] == "park"
    parked = f"parked-{pause['prompt_id'][:8]}-{ids['gate']}"
    page.wait_for_function("id => document.querySelector('.dg-gate-note')?.textContent.includes(id)", arg=parked)
    ui.shot("parked_node")
    info = ui.comfy.get(f"/datasete_gate/bus/info/{parked}").json()
    assert info["meta"]["parked"] is True and info["meta"]["node"] == str(ids["gate"])

    page.click(SIDEBAR_BUTTON)
    card = f".dg-browser .dg-card[data-slot-id='{parked}']"
    try:
        page.wait_for_selector(f"{card} .dg-parked-badge")
    finally:
        ui.shot("sidebar_list")
    page.wait_for_function(
        "sel => { const i = document.querySelector(sel + ' img'); return i && i.complete && i.naturalWidth > 0 }",
        arg=card,
    )
    page.click(card)
    page.wait_for_selector(".dg-browser .dg-parked-box .dg-resume")
    assert page.locator(".dg-browser .dg-resume-note").count() == 0
    page.wait_for_function("() => document.querySelector('.dg-browser .dg-detail-img')?.complete")
    ui.shot("sidebar_parked_slot")
    # Resume first says what it will run (the seal checked), and asks.
    page.wait_for_selector(".dg-browser .dg-resume:not([disabled])")
    plan = page.inner_text(".dg-browser .dg-resume-plan")
    assert plan.startswith("Resume will run ") and "ImageGate ×1" in plan, plan
    asked: list[str] = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.click(".dg-browser .dg-resume")
    page.wait_for_function(
        "() => /Resumed as prompt \\S+: /.test(document.querySelector('.dg-resume-status')?.textContent)"
    )
    assert asked and asked[0].startswith(plan)
    status = page.inner_text(".dg-resume-status")
    resumed_id = status.split("Resumed as prompt ")[1].split(":")[0]
    assert resumed_id != pause["prompt_id"]
    again = ui.wait_paused(old_token=pause["token"])  # the same node, in this tab
    assert again["prompt_id"] == resumed_id and again["source"] == f"slot:{parked}" and again["deadline"] is None
    page.wait_for_function(
        "() => document.querySelector('.dg-resume-status').textContent.includes('paused at its gate')"
    )
    ui.shot("sidebar_resumed")
    # The sidebar stays open (it follows the prompt) and may cover the node: the keys select.
    page.evaluate("() => document.querySelector('.dg-gate').focus()")
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    assert page.eval_on_selector_all(".dg-cell.dg-selected", "els => els.map(e => e.dataset.index)") == ["3"]
    page.keyboard.press("2")
    page.keyboard.press("Enter")
    page.wait_for_selector(DECIDED)
    ui.comfy.wait_history(resumed_id)
    assert corner_colours(ui.outputs("dg_ui_pk4_b")) == [colour_of(3)]
    page.wait_for_function("() => document.querySelector('.dg-resume-status').textContent.endsWith(': done')")


def test_a_done_event_that_comes_after_a_poll_called_the_pause_over_still_decides(ui) -> None:
    """The server drops a pause from GET /pending before its done event goes out (a timed-out
    gate parks its batch in between), so the tab's poll can call the pause over first. Here the
    tab's websocket holds the done event back until the poll has done that: the node then shows
    the decision the late event brings, not "That pause is over"."""
    sockets: list = []
    held: list = []

    def route(ws) -> None:
        server = ws.connect_to_server()
        ws.on_message(server.send)
        server.on_message(
            lambda m: held.append(m) if isinstance(m, str) and '"datasete_gate.done"' in m else ws.send(m)
        )
        sockets.append(ws)

    ui.context.route_web_socket(re.compile(r"/ws(\?|$)"), route)
    ui.page.close()
    page = ui.page = ui.open_tab()  # a tab whose websocket goes through `route`
    assert len(sockets) == 1
    ui.build(["dg_ui_late_a", "dg_ui_late_b"])
    ui.queue()
    pause = ui.wait_paused()
    r = ui.comfy.post("/datasete_gate/choice", json={"node": pause["node"], "token": pause["token"], "route": 2})
    assert r.status_code == 200, r.text
    # The tab's next poll (every 3 s) finds no pause: the node calls it over.
    page.wait_for_selector(".dg-gate[data-mode='idle']", timeout=15000)
    page.wait_for_function("() => document.querySelector('.dg-gate').textContent.includes('That pause is over')")
    ui.shot("called_over")
    ui.comfy.wait_history(pause["prompt_id"])
    assert len(held) == 1 and json.loads(held[0])["data"]["token"] == pause["token"]
    sockets[0].send(held.pop())  # the done event, late
    page.wait_for_selector(DECIDED)
    assert "That pause is over" not in page.inner_text(".dg-gate")
    ui.shot("decided_late")
    assert len(ui.outputs("dg_ui_late_b")) == 1 and not ui.outputs("dg_ui_late_a")


# -- the pause alert: the tab's title flashes (or it beeps) while a gate waits ------------------
TITLE_WAITING = "⏸ Gate waiting · "
FLASHES = 2.5  # seconds: more than two flashes of the title (one a second)

# Records every document.title write and counts the oscillators started, each marked by whether
# the pack's files are on the stack: what ComfyUI itself sets and what the alert does.
ALERT_PROBE = f"""
() => {{
  const fromPack = () => String(new Error().stack).includes('{PACK_PATH}');
  const probe = window.__dgAlert = {{ before: document.title, titles: [], beeps: 0 }};
  const title = Object.getOwnPropertyDescriptor(Document.prototype, 'title');
  Object.defineProperty(Document.prototype, 'title', {{ configurable: true, enumerable: title.enumerable,
    get: title.get, set(value) {{
      title.set.call(this, value);  // the getter trims what the setter got: keep what it reads
      probe.titles.push({{ value: title.get.call(this), pack: fromPack() }});
    }} }});
  const start = OscillatorNode.prototype.start;
  OscillatorNode.prototype.start = function (...args) {{ if (fromPack()) probe.beeps++; return start.apply(this, args); }};
}}
"""


def alert_probe(page) -> dict:
    """What the probe saw, and ComfyUI's own title: its last write, else the title it had."""
    probe = page.evaluate("() => ({ ...window.__dgAlert, now: document.title })")
    own = [t["value"] for t in probe["titles"] if not t["pack"]]
    probe["own"] = own[-1] if own else probe["before"]
    probe["pack"] = [t["value"] for t in probe["titles"] if t["pack"]]
    return probe


def set_alert(page, value: str) -> None:
    page.evaluate("([id, value]) => app.extensionManager.setting.set(id, value)", [ALERT_SETTING, value])


def answer_route_1(ui, pause: dict) -> None:
    ui.page.click(".dg-route[data-route='1']")
    ui.page.wait_for_selector(DECIDED)
    ui.comfy.wait_history(pause["prompt_id"])


def test_a_pause_flashes_the_tab_title_until_it_is_answered(ui) -> None:
    """Settings > Dataset Gates > Image Gate: on pause is "title flash" unless set: the title
    alternates while the gate waits, and after the answer it is exactly ComfyUI's own title
    again, with no flash left running."""
    page = ui.page
    setting = page.evaluate(f"() => app.ui.settings.settingsLookup['{ALERT_SETTING}']")
    assert setting["category"][0] == "Dataset Gates" and setting["defaultValue"] == "title flash"
    assert setting["options"] == ["none", "sound", "title flash", "both"]
    assert page.evaluate(f"() => app.extensionManager.setting.get('{ALERT_SETTING}')") == "title flash"
    page.evaluate(ALERT_PROBE)
    ui.build(["dg_ui_alert_a", "dg_ui_alert_b"])
    ui.queue()
    pause = ui.wait_paused()
    page.wait_for_function(f"() => document.title.startsWith('{TITLE_WAITING}')")
    waiting = page.evaluate("() => document.title")
    page.wait_for_function("t => document.title !== t", arg=waiting)  # it flashes ...
    assert page.evaluate("() => document.title").startswith("⏸ ")  # ... and the sign stays
    shot = ui.shot("paused")
    shot.with_suffix(".title.txt").write_text(f"{waiting}\n", encoding="utf-8")
    print(f"document.title while paused ({shot.name}): {waiting!r}")
    assert waiting == TITLE_WAITING + alert_probe(page)["own"]

    answer_route_1(ui, pause)
    page.wait_for_function("() => !document.title.includes('⏸')")
    flashed = len(alert_probe(page)["pack"])
    page.wait_for_timeout(FLASHES * 1000)
    probe = alert_probe(page)
    assert len(probe["pack"]) == flashed, probe["pack"][flashed:]  # the flash stopped
    assert probe["now"] == probe["own"], probe
    assert probe["beeps"] == 0
    assert len(ui.outputs("dg_ui_alert_a")) == 1


def test_the_pause_alert_none_leaves_the_title_and_sound_beeps_once(ui) -> None:
    """With "none" a pause changes nothing; with "sound" it beeps once (Web Audio) and leaves
    the title alone. The setting applies to the next pause without a reload."""
    page = ui.page
    page.evaluate(ALERT_PROBE)
    set_alert(page, "none")
    ui.build(["dg_ui_alert_none_a", "dg_ui_alert_none_b"])
    ui.queue()
    pause = ui.wait_paused()
    page.wait_for_timeout(FLASHES * 1000)
    probe = alert_probe(page)
    assert probe["pack"] == [] and probe["beeps"] == 0 and probe["now"] == probe["own"]
    answer_route_1(ui, pause)

    set_alert(page, "sound")
    page.click(".dg-run")  # "Run from here": a click, as a person queues
    second = ui.wait_paused(old_token=pause["token"])
    page.wait_for_function("() => window.__dgAlert.beeps > 0")
    page.wait_for_timeout(FLASHES * 1000)
    probe = alert_probe(page)
    assert probe["beeps"] == 1 and probe["pack"] == [] and probe["now"] == probe["own"]
    ui.shot("paused_sound")
    answer_route_1(ui, second)
    assert alert_probe(page)["beeps"] == 1
