"""Writes the pictures of the docs and the example workflows from a real ComfyUI page.

Run with the other UI e2e tests (COMFYUI_DIR, COMFYUI_PYTHON, /usr/bin/chromium, playwright);
each run rewrites, in this checkout:

- docs/images/gate_paused.png: a paused Image Gate with labelled route buttons (README top);
- docs/images/slot_browser.png: the Slots sidebar (the slot browser inside ComfyUI);
- docs/images/dataset_page.png: a dataset folder's page paused at the gate, a caption under
  each image, one edited (README, "Curate a dataset folder");
- example_workflows/<name>.json: each example built with the frontend's own API
  (tests/e2e/example_graphs.py) and saved as app.graph.serialize() gives it;
- example_workflows/<name>.jpg: a screenshot of that workflow in the page, its template
  browser thumbnail.

Sizes come from tests/doc_images.py, which tests/test_doc_images.py checks the committed
files against. Commit what changed (`git status docs/images example_workflows`).

With E2E_DOCS_OUT set (CI sets it), the same files go under that folder instead
(E2E_DOCS_OUT/docs/images, E2E_DOCS_OUT/example_workflows) and the checkout is left as it is;
each example workflow's JSON is then compared with the committed one, when the frontend is the
bundled one (the committed examples are made with it): a difference means example_graphs.py
changed without the examples being made again.
"""

from __future__ import annotations

import io
import json
import math
import os
import uuid
from pathlib import Path

import pytest
import torch
from doc_images import EXAMPLES, EXAMPLES_DIR, IMAGES_DIR, MAX_BYTES, MAX_THUMB_BYTES, README_IMAGES, THUMB_SIZE
from example_graphs import BUILD, EXAMPLE_IMAGE, FIT, Example, Node, dataset_graph, put_example_image, spec
from example_graphs import EXAMPLES as GRAPHS
from PIL import Image, ImageDraw
from test_ui_e2e import SIDEBAR_BUTTON, Ui, chromium  # noqa: F401 (chromium: a fixture, used by name)

from gates.bus.local.store import SlotStore

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (os.environ.get("COMFYUI_DIR") and os.environ.get("COMFYUI_PYTHON")),
        reason="UI e2e: set COMFYUI_DIR and COMFYUI_PYTHON to run against a real ComfyUI",
    ),
]

# Where this run writes: the checkout, or E2E_DOCS_OUT (then nothing here changes).
DOCS_OUT = Path(os.environ["E2E_DOCS_OUT"]).expanduser().resolve() if os.environ.get("E2E_DOCS_OUT") else None
OUT_IMAGES = DOCS_OUT / "docs" / "images" if DOCS_OUT else IMAGES_DIR
OUT_EXAMPLES = DOCS_OUT / "example_workflows" if DOCS_OUT else EXAMPLES_DIR
BUNDLED_FRONTEND = os.environ.get("E2E_FRONTEND", "").strip() in ("", "bundled")  # as conftest.frontend_root

# Clean pictures: full-detail nodes at any zoom, no FPS corner, no minimap.
SETTINGS = {
    "Comfy.TutorialCompleted": True,
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,
    "Comfy.Graph.CanvasInfo": False,
    "Comfy.Minimap.Visible": False,
}
DEFAULTS = {
    "LiteGraph.Canvas.MinFontSizeForLOD": 8,
    "Comfy.Graph.CanvasInfo": True,
    "Comfy.Minimap.Visible": True,
}  # frontend 1.35's, for settings the user had not set


@pytest.fixture
def shots(comfy, chromium, request):
    """A tab for pictures; the settings it changes are put back for the tests after it."""
    before = comfy.get("/settings").json()
    comfy.post("/settings", json=SETTINGS).raise_for_status()
    put_example_image(comfy)
    page = Ui(comfy, chromium, request.node.name)
    yield page
    page.close()
    comfy.post("/settings", json={key: before.get(key, DEFAULTS[key]) for key in DEFAULTS}).raise_for_status()


def landscape(i: int, w: int = 512, h: int = 384) -> Image.Image:
    """A made-up candidate: sky, sun, two ridges and a lake, varied by i."""
    skies = [
        ((255, 170, 90), (70, 40, 120)),
        ((140, 200, 255), (30, 80, 170)),
        ((255, 120, 120), (60, 30, 90)),
        ((200, 235, 255), (90, 150, 210)),
    ]
    top, bottom = skies[i % len(skies)][1], skies[i % len(skies)][0]
    img = Image.new("RGB", (w, h))
    draw = ImageDraw.Draw(img)
    for y in range(h):
        t = y / (h - 1)
        draw.line([(0, y), (w, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom)))
    sun = (w * (0.25 + 0.17 * i), h * (0.3 + 0.05 * i))
    draw.ellipse([sun[0] - 34, sun[1] - 34, sun[0] + 34, sun[1] + 34], fill=(255, 236, 170))
    for layer, (shade, base) in enumerate((((70, 60, 110), 0.62), ((35, 40, 70), 0.72))):
        points = [(0, h)]
        for x in range(0, w + 16, 16):
            y = h * base - 40 * math.sin(x / (60 + 25 * layer) + i * 1.7 + layer) - 25 * math.sin(x / 23 + i)
            points.append((x, y))
        points.append((w, h))
        draw.polygon(points, fill=tuple(max(0, c - 10 * i) for c in shade))
    draw.rectangle([0, int(h * 0.82), w, h], fill=tuple(int(c * 0.6) for c in bottom))
    return img


def as_tensor(images: list[Image.Image]) -> torch.Tensor:
    import numpy as np

    return torch.from_numpy(np.stack([np.asarray(i, dtype=np.float32) / 255 for i in images]))


def write_png(shot: bytes, name: str) -> None:
    """A screenshot as the committed PNG: exactly its recorded size, optimised, under the cap."""
    img = Image.open(io.BytesIO(shot)).convert("RGB")
    assert img.size == README_IMAGES[name], (img.size, README_IMAGES[name])
    out = io.BytesIO()
    img.save(out, "PNG", optimize=True)
    if out.tell() >= MAX_BYTES:  # a photo-like preview: a 256-colour palette keeps it small
        out = io.BytesIO()
        img.quantize(256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE).save(out, "PNG", optimize=True)
    assert out.tell() < MAX_BYTES, f"{name} is {out.tell()} bytes"
    OUT_IMAGES.mkdir(parents=True, exist_ok=True)
    (OUT_IMAGES / name).write_bytes(out.getvalue())


def clip(x: float, y: float, size: tuple[int, int]) -> dict:
    return {"x": x, "y": y, "width": size[0], "height": size[1]}


# -- the example workflows ---------------------------------------------------------------------
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_workflow_is_built_in_the_page_and_saved(shots, name) -> None:
    example: Example = GRAPHS[name]
    page = shots.page
    page.set_viewport_size({"width": 1600, "height": 1600})
    page.evaluate(BUILD, spec(example))
    page.evaluate(FIT, [60, 60, 1340, 800, 30])  # how it opens on a 1400x900 screen
    # through JSON in the page: what the frontend saves has no `undefined` (Python would get None)
    workflow = json.loads(page.evaluate("() => JSON.stringify(app.graph.serialize())"))
    workflow["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"dataset-gates/example_workflows/{name}"))  # stable
    text = json.dumps(workflow, indent=2) + "\n"
    OUT_EXAMPLES.mkdir(parents=True, exist_ok=True)
    (OUT_EXAMPLES / f"{name}.json").write_text(text, encoding="utf-8")

    side = 1400  # clear of the zoom controls in the bottom right corner
    page.evaluate(FIT, [70, 100, side, side, 24])
    page.evaluate("() => app.canvas.deselectAll()")
    page.mouse.move(1, 1599)
    page.wait_for_timeout(800)  # DOM widgets and the LoadImage preview settle
    if any(n.type == "LoadImage" for n in example.nodes):
        page.wait_for_function(
            "() => app.graph.findNodesByType('LoadImage').every(n => n.imgs?.[0]?.complete)", timeout=15000
        )
        page.wait_for_timeout(300)
    shot = Image.open(io.BytesIO(page.screenshot(clip=clip(70, 100, (side, side))))).convert("RGB")
    thumb = shot.resize(THUMB_SIZE, Image.Resampling.LANCZOS)
    out = io.BytesIO()
    thumb.save(out, "JPEG", quality=82, optimize=True, progressive=True)
    assert out.tell() < MAX_THUMB_BYTES
    (OUT_EXAMPLES / f"{name}.jpg").write_bytes(out.getvalue())
    shots.shot(name)
    if DOCS_OUT is not None and BUNDLED_FRONTEND:
        committed = (EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8")
        assert text == committed, (
            f"example_workflows/{name}.json is not what tests/e2e/example_graphs.py builds now: run "
            f"tests/e2e/test_docs_screenshots.py without E2E_DOCS_OUT and commit it (and its .jpg)"
        )


# -- the README pictures -----------------------------------------------------------------------
def hero(slot: str) -> Example:
    """Bus Load of `slot` -> Image Gate keep / fix / drop -> SaveImage and Bus Save."""
    return Example(
        "hero",
        nodes=[
            Node("load", "DatasetGatesBusLoad", (50, 40), {"slot_id": slot}),
            Node("gate", "ImageGate", (360, 30), {"routes": 3, "labels": "keep, fix, drop"}, size=(360, 560)),
            Node("keep", "SaveImage", (750, 30), {"filename_prefix": "curated/keep"}, size=(240, 80)),
            Node("fix", "DatasetGatesBusSave", (750, 170), {"slot_id": "to_fix"}, size=(240, 142)),
        ],
        links=[
            ("load", "image", "gate", "image"),
            ("gate", "route_1", "keep", "images"),
            ("gate", "route_2", "fix", "image"),
        ],
    )


VIEW = "([x, y]) => { app.canvas.ds.scale = 1; app.canvas.ds.offset = [x, y]; app.graph.setDirtyCanvas(true, true); }"
# The screen rectangle of a node, its title included (the canvas fills the page at 100 %).
NODE_BOX = """(type) => { const n = app.graph.findNodesByType(type)[0], ds = app.canvas.ds;
    const t = window.LiteGraph.NODE_TITLE_HEIGHT;
    return { x: (n.pos[0] + ds.offset[0]) * ds.scale, y: (n.pos[1] - t + ds.offset[1]) * ds.scale,
             width: n.size[0] * ds.scale, height: (n.size[1] + t) * ds.scale }; }"""


def assert_inside(box: dict, x: float, y: float, size: tuple[int, int], what: str) -> None:
    assert (
        x <= box["x"]
        and y <= box["y"]
        and box["x"] + box["width"] <= x + size[0]
        and box["y"] + box["height"] <= y + size[1]
    ), f"{what} {box} does not fit the picture {x, y, size}"


def paused_on(shots, slot: str, viewport: dict, offset: tuple[int, int]) -> dict:
    page = shots.page
    page.set_viewport_size(viewport)
    page.evaluate(BUILD, spec(hero(slot)))
    page.evaluate(VIEW, list(offset))
    shots.queue()
    pause = shots.wait_paused()
    names = page.eval_on_selector_all(".dg-route .dg-route-name", "els => els.map(e => e.textContent)")
    assert pause["labels"] == ["keep", "fix", "drop"] and names == ["keep", "fix", "drop"]
    page.evaluate("() => app.canvas.deselectAll()")
    return pause


def test_readme_picture_of_the_paused_gate(shots) -> None:
    """One candidate, enlarged, with the route buttons keep, fix and drop: the README's top."""
    SlotStore(shots.comfy.bus_dir).publish("candidate", as_tensor([landscape(0)]))
    pause = paused_on(shots, "candidate", {"width": 1400, "height": 1000}, (40, 115))
    page = shots.page
    assert pause["batch"] == 1 and page.is_visible(".dg-preview-img")
    page.mouse.move(1300, 700)
    page.wait_for_timeout(500)
    size = README_IMAGES["gate_paused.png"]
    assert_inside(page.evaluate(NODE_BOX, "ImageGate"), 70, 90, size, "the gate")
    write_png(page.screenshot(clip=clip(70, 90, size)), "gate_paused.png")
    shots.shot("gate_paused")
    page.click(".dg-route[data-route='3']")  # drop: let the queue end
    shots.comfy.wait_history(pause["prompt_id"])


def test_readme_picture_of_the_grid(shots) -> None:
    """Nine candidates as a grid, each given its own route, then sent: five keep, two fix,
    two drop."""
    SlotStore(shots.comfy.bus_dir).publish("candidates", as_tensor([landscape(i) for i in range(9)]))
    kept = len(list(shots.comfy.output_dir.glob("curated/keep_*.png")))
    pause = paused_on(shots, "candidates", {"width": 1400, "height": 1200}, (40, 115))
    page = shots.page
    assert pause["batch"] == 9
    page.wait_for_selector(".dg-gate[data-thumbs='loaded']")
    cell = ".dg-cell[data-index='{}']".format
    for route, images in ((2, (2, 6)), (3, (4, 8))):
        page.click(cell(images[0]))
        page.click(cell(images[1]), modifiers=["Control"])
        page.keyboard.press(str(route))
    page.click(cell(0))
    for i in (1, 3):
        page.click(cell(i), modifiers=["Control"])
    page.keyboard.press("1")
    page.mouse.move(1300, 1100)
    page.wait_for_timeout(500)
    size = README_IMAGES["gate_grid.png"]
    box = page.evaluate(NODE_BOX, "ImageGate")
    x, y = box["x"] - 20, box["y"] - 20
    assert_inside(box, x, y, size, "the gate")
    write_png(page.screenshot(clip=clip(x, y, size)), "gate_grid.png")
    shots.shot("gate_grid")
    page.keyboard.press("Enter")
    entry = shots.comfy.wait_history(pause["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    assert SlotStore(shots.comfy.bus_dir).info("to_fix").batch == 2
    assert len(list(shots.comfy.output_dir.glob("curated/keep_*.png"))) == kept + 5


def test_readme_picture_of_the_slot_browser(shots) -> None:
    store = SlotStore(shots.comfy.bus_dir)
    for slot in store.list():
        store.delete(slot.id)
    store.publish("candidates", as_tensor([landscape(i) for i in range(4)]))
    store.publish("to_fix", as_tensor([landscape(2)]))
    example = Image.open(shots.comfy.input_dir / EXAMPLE_IMAGE).convert("RGB").resize((384, 384))
    store.publish("checkpoint", as_tensor([example] * 4))
    store.publish(
        "parked-3f2a91c0-2",
        as_tensor([landscape(1), landscape(3)]),
        meta={"parked": True, "node": "2", "prompt_id": "3f2a91c0"},
    )
    page = shots.page
    page.set_viewport_size({"width": 1400, "height": 1000})
    page.evaluate(BUILD, spec(hero("candidates")))
    page.click(SIDEBAR_BUTTON)
    page.wait_for_selector(".dg-browser .dg-card[data-slot-id='parked-3f2a91c0-2']")
    gutter = page.locator(".p-splitter-gutter").first.bounding_box()
    page.mouse.move(gutter["x"] + 2, gutter["y"] + 300)
    page.mouse.down()
    page.mouse.move(gutter["x"] + 232, gutter["y"] + 300, steps=8)  # wider: cards side by side
    page.mouse.up()
    page.wait_for_function(
        "() => [...document.querySelectorAll('.dg-browser .dg-card img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.mouse.move(1300, 900)
    page.wait_for_timeout(500)
    write_png(page.screenshot(clip=clip(0, 36, README_IMAGES["slot_browser.png"])), "slot_browser.png")
    shots.shot("slot_browser")


DATASET_CAPTIONS = [
    "a lake at dusk under a violet sky, two dark ridges",
    "blue morning sky over the hills, calm water",
    "red sunset, low sun behind the mountains",
    "pale sky, snow light, a still lake",
    "orange evening, the sun above a ridge",
    "",
]


def test_readme_picture_of_a_dataset_page(shots, tmp_path) -> None:
    """A dataset folder of six landscapes with captions (one without) at the gate: two sent
    to fix, one to drop, a caption being typed for the one without."""
    dataset = tmp_path / "dataset"
    dataset.mkdir()
    for i, caption in enumerate(DATASET_CAPTIONS):
        landscape(i, 320, 240).save(dataset / f"valley_{i + 1:02d}.png")
        if caption:
            (dataset / f"valley_{i + 1:02d}.txt").write_text(caption, encoding="utf-8")
    page = shots.page
    page.set_viewport_size({"width": 1400, "height": 1000})
    graph = dataset_graph(str(dataset), str(tmp_path / "keep"), str(tmp_path / "fix"), with_note=False)
    page.evaluate(BUILD, spec(graph))
    page.evaluate(VIEW, [-40, -210])  # the gate's panel clear of the sidebar and the menu
    shots.queue()
    pause = shots.wait_paused()
    assert pause["batch"] == 6 and pause["captions"] == DATASET_CAPTIONS
    cell = ".dg-cell[data-index='{}'] .dg-cell-img".format
    page.click(cell(1))
    page.click(cell(4), modifiers=["Control"])
    page.keyboard.press("2")
    page.click(cell(2))
    page.keyboard.press("3")
    page.click(".dg-cell[data-index='5'] .dg-cell-caption")
    page.wait_for_selector(".dg-cell[data-index='5'] .dg-cell-editor:focus")
    page.keyboard.type("a lake between two ridges, golden hour")
    page.mouse.move(1300, 950)
    page.wait_for_timeout(500)
    size = README_IMAGES["dataset_page.png"]
    box = page.locator(".dg-gate").first.bounding_box()
    x, y = box["x"] - 20, box["y"] - 20
    assert_inside(box, x, y, size, "the gate's panel")
    write_png(page.screenshot(clip=clip(x, y, size)), "dataset_page.png")
    shots.shot("dataset_page")
    page.keyboard.press("Control+Enter")  # send, the typed caption with it
    entry = shots.comfy.wait_history(pause["prompt_id"])
    assert entry["status"]["status_str"] == "success"
    assert (tmp_path / "keep" / "valley_06.txt").read_text(encoding="utf-8") == "a lake between two ridges, golden hour"
    assert sorted(p.name for p in (tmp_path / "fix").glob("*.png")) == [
        "valley_02-masklabel.png",
        "valley_02.png",
        "valley_05-masklabel.png",
        "valley_05.png",
    ]
