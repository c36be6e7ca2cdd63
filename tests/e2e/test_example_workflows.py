"""The example workflows, as a ComfyUI user meets them: listed by /api/workflow_templates,
opened from the template browser in a real page, queued with the Run command, answered.

Each queue must pass ComfyUI's validation; every pause is answered so the queue ends. The
one example that needs a checkpoint (curate_batch) is loaded and validated, not run: the
only error ComfyUI may report for it is the missing checkpoint.
"""

from __future__ import annotations

import json
import os
import time

import pytest
import torch
from dataset_files import curation_folder
from doc_images import EXAMPLES, EXAMPLES_DIR
from example_graphs import DATASET_FIX, DATASET_FOLDER, DATASET_KEEP, SD15, put_example_image
from example_graphs import EXAMPLES as GRAPHS
from test_ui_e2e import DECIDED, Ui, chromium  # noqa: F401 (chromium: a fixture, used by name)

from gates.bus.local.store import SlotStore
from gates.gate.parking import parked_slot_id

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (os.environ.get("COMFYUI_DIR") and os.environ.get("COMFYUI_PYTHON")),
        reason="UI e2e: set COMFYUI_DIR and COMFYUI_PYTHON to run against a real ComfyUI",
    ),
]


@pytest.fixture
def ui(comfy, chromium, request):
    comfy.post("/settings", json={"Comfy.TutorialCompleted": True}).raise_for_status()
    put_example_image(comfy)
    page = Ui(comfy, chromium, request.node.name)
    yield page
    page.close()


def open_template(ui: Ui, name: str) -> dict:
    """Open `name` from the template browser (Templates > Extensions > the pack > its card), as a
    person would; returns the loaded graph's nodes by type."""
    page = ui.page
    page.evaluate("() => app.extensionManager.command.execute('Comfy.BrowseTemplates')")
    page.locator(".p-dialog").get_by_text(ui.comfy.pack_names[0], exact=True).click()
    card = page.locator(f"[data-testid='template-workflow-{name}']")
    card.wait_for(timeout=30000)
    card.locator("img").first.wait_for(timeout=15000)
    page.wait_for_function(
        "el => [...el.querySelectorAll('img')].some(i => i.complete && i.naturalWidth > 0)",
        arg=card.element_handle(),
        timeout=15000,
    )
    ui.shot(f"template_card_{name}")
    card.click()
    page.wait_for_function("n => app.extensionManager.workflow.activeWorkflow?.filename === n", arg=name, timeout=30000)
    page.wait_for_timeout(500)
    alerts = page.locator(".p-toast-message").all_inner_texts()
    assert not any("Invalid workflow" in text for text in alerts), alerts  # the frontend's schema check
    return page.evaluate("() => Object.fromEntries(app.graph.nodes.map(n => [n.type, n.id]))")


def queue(ui: Ui) -> str:
    """Run the workflow from the page; returns the prompt id of a prompt ComfyUI accepted."""
    with ui.page.expect_response(lambda r: r.url.endswith("/api/prompt") and r.request.method == "POST") as sent:
        ui.queue()
    reply = sent.value
    assert reply.status == 200, f"ComfyUI refused the workflow: {reply.text()}"
    body = reply.json()
    assert not body.get("node_errors"), body["node_errors"]
    return body["prompt_id"]


def answer(ui: Ui, route: int) -> dict:
    """Wait for the pause, pan the grown gate into view at 100 % (as a person would), and
    click a route."""
    pause = ui.wait_paused()
    ui.page.evaluate("""() => { const gate = app.graph.findNodesByType('ImageGate')[0];
        app.canvas.ds.scale = 1; app.canvas.ds.offset = [400 - gate.pos[0], 80 - gate.pos[1]];
        app.graph.setDirtyCanvas(true, true); }""")
    ui.page.wait_for_timeout(300)
    ui.page.click(f".dg-route[data-route='{route}']")
    ui.page.wait_for_selector(DECIDED)
    return pause


def test_every_example_is_listed_and_served_as_a_template(comfy) -> None:
    pack = comfy.pack_names[0]  # the pack's folder name in custom_nodes
    listed = comfy.get("/api/workflow_templates").json()
    assert sorted(listed.get(pack, [])) == sorted(EXAMPLES)
    for name in EXAMPLES:
        served = comfy.get(f"/api/workflow_templates/{pack}/{name}.json")
        assert served.status_code == 200
        assert served.json() == json.loads((EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))
        thumb = comfy.get(f"/api/workflow_templates/{pack}/{name}.jpg")
        assert thumb.status_code == 200 and thumb.content[:3] == b"\xff\xd8\xff"


def test_examples_use_only_core_nodes_and_this_packs(comfy) -> None:
    info = comfy.get("/object_info").json()
    ours = {
        "ImageGate",
        "DatasetGatesBusSave",
        "DatasetGatesBusLoad",
        "DatasetGatesSplit",
        "DatasetGatesDatasetLoad",
        "DatasetGatesDatasetSave",
    }
    for name in EXAMPLES:
        workflow = json.loads((EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))
        for node in workflow["nodes"]:
            kind = node["type"]
            assert (
                kind in ours
                or kind == "MarkdownNote"
                or info[kind]["python_module"] == "nodes"
                or info[kind]["python_module"].startswith("comfy_extras.")
            ), (name, kind)


def test_curate_batch_is_valid_but_for_its_checkpoint(ui) -> None:
    """The sampler example: everything validates except the checkpoint the note names."""
    nodes = open_template(ui, "curate_batch")
    page = ui.page
    dialog = page.locator(".p-dialog:has-text('" + SD15 + "')")
    if dialog.count():  # the frontend's missing-models dialog, with the download link
        ui.shot("missing_model")
        page.keyboard.press("Escape")
    prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    reply = ui.comfy.post("/prompt", json={"prompt": prompt})
    errors = reply.json().get("node_errors", {})
    assert set(errors) == {str(nodes["CheckpointLoaderSimple"])}, errors
    assert [e["extra_info"]["input_name"] for e in errors[str(nodes["CheckpointLoaderSimple"])]["errors"]] == [
        "ckpt_name"
    ]
    gate = prompt[str(nodes["ImageGate"])]["inputs"]
    assert gate["labels"] == "keep, fix, drop" and gate["routes"] == 3
    assert prompt[str(nodes["DatasetGatesBusSave"])]["inputs"]["slot_id"] == "to_fix"
    assert GRAPHS["curate_batch"].needs_model == SD15


def test_resume_from_slot_pauses_on_the_slot_and_keep_saves(ui) -> None:
    SlotStore(ui.comfy.bus_dir).publish("to_fix", torch.rand(2, 64, 48, 3))
    nodes = open_template(ui, "resume_from_slot")
    before = len(ui.outputs("curated/keep"))  # other tests of this session save there too
    prompt_id = queue(ui)
    pause = answer(ui, 1)
    assert pause["prompt_id"] == prompt_id and pause["source"] == "slot:to_fix" and pause["batch"] == 2
    assert pause["labels"] == ["keep", "drop"]
    entry = ui.comfy.wait_history(prompt_id)
    assert entry["status"]["status_str"] == "success"
    assert len(ui.outputs("curated/keep")) == before + 2
    assert str(nodes["SaveImage"]) in entry["outputs"]


def test_checkpoint_batch_saves_loads_and_restarts_from_the_checkpoint(ui) -> None:
    nodes = open_template(ui, "checkpoint_batch")
    prompt_id = queue(ui)
    assert ui.comfy.wait_history(prompt_id)["status"]["status_str"] == "success"
    store = SlotStore(ui.comfy.bus_dir)
    first = store.info("checkpoint")
    assert first.batch == 4 and first.image_dtype == "float32"
    assert len(ui.outputs("checkpoint/inverted")) == 4
    # The note's promise: bypass the top row and Bus Load restarts from the slot.
    ui.page.evaluate(
        "ids => ids.forEach(id => { app.graph.getNodeById(id).mode = 4; })",
        [nodes["LoadImage"], nodes["RepeatImageBatch"], nodes["DatasetGatesBusSave"]],
    )
    ui.page.evaluate(
        "ids => { const n = app.graph.getNodeById(ids); n.widgets[0].value = 'checkpoint/again'; }", nodes["SaveImage"]
    )
    prompt_id = queue(ui)
    entry = ui.comfy.wait_history(prompt_id)
    assert entry["status"]["status_str"] == "success"
    assert len(ui.outputs("checkpoint/again")) == 4
    assert store.info("checkpoint").created == first.created  # read, not written again


def test_overnight_parking_waits_parks_and_resumes(ui) -> None:
    nodes = open_template(ui, "overnight_parking")
    prompt_id = queue(ui)
    pause = answer(ui, 1)  # someone is there: answered before the countdown ends
    assert pause["prompt_id"] == prompt_id and pause["timeout"] == 600 and pause["on_timeout"] == "park"
    assert pause["deadline"] is not None
    assert ui.comfy.wait_history(prompt_id)["status"]["status_str"] == "success"
    assert len(ui.outputs("overnight/keep")) == 4

    # Nobody there: a short timeout parks the batch and the run, and the queue moves on.
    ui.page.evaluate(
        "id => { const w = app.graph.getNodeById(id).widgets.find(w => w.name === 'timeout'); w.value = 2; }",
        nodes["ImageGate"],
    )
    prompt_id = queue(ui)
    entry = ui.comfy.wait_history(prompt_id, timeout=60)
    assert entry["status"]["status_str"] == "success"
    slot = parked_slot_id(prompt_id, str(nodes["ImageGate"]))
    parked = SlotStore(ui.comfy.bus_dir).info(slot)
    assert parked.meta["parked"] is True and parked.batch == 4
    assert len(ui.outputs("overnight/keep")) == 4
    # Resumed later: the gate pauses at once with the parked batch.
    reply = ui.comfy.post(f"/api/datasete_gate/resume/{slot}", json={"client_id": ui.client_id()})
    assert reply.status_code == 200, reply.text
    resumed = answer(ui, 1)
    assert resumed["prompt_id"] == reply.json()["prompt_id"] and resumed["source"] == f"slot:{slot}"
    deadline = time.monotonic() + 30
    while len(ui.outputs("overnight/keep")) < 8:
        assert time.monotonic() < deadline, "the resumed run saved nothing"
        time.sleep(0.2)


def test_curate_dataset_folder_pages_a_folder_and_saves_keep_and_fix(ui) -> None:
    """The folder the note says to make, under ComfyUI's input folder; the e2e server does not
    run in its ComfyUI folder, so the three paths are typed as absolute paths, as the note says
    to when ComfyUI runs elsewhere."""
    comfy = ui.comfy
    dataset = comfy.input_dir / "dataset"
    captions = curation_folder(dataset, count=6)
    names = sorted(captions)
    nodes = open_template(ui, "curate_dataset_folder")
    keep, fix = comfy.output_dir / "dataset_keep", comfy.output_dir / "dataset_fix"
    typed = ui.page.evaluate(
        """([paths]) => {
            const set = (node, name, value) => { const w = node.widgets.find(w => w.name === name);
                const was = w.value; w.value = value; return was; };
            const [load] = app.graph.findNodesByType('DatasetGatesDatasetLoad');
            const saves = app.graph.findNodesByType('DatasetGatesDatasetSave')
                .sort((a, b) => a.pos[1] - b.pos[1]);
            return [set(load, 'folder', paths[0]), set(saves[0], 'folder', paths[1]), set(saves[1], 'folder', paths[2])];
        }""",
        [[str(dataset), str(keep), str(fix)]],
    )
    assert typed == [DATASET_FOLDER, DATASET_KEEP, DATASET_FIX]
    prompt_id = queue(ui)
    pause = ui.wait_paused()
    assert pause["prompt_id"] == prompt_id and pause["batch"] == len(names) == 5
    assert pause["labels"] == ["keep", "fix", "drop"] and pause["captions"] == [captions[n] or "" for n in names]
    page = ui.page
    page.click(".dg-cell[data-index='1'] .dg-cell-img")
    page.keyboard.press("2")
    page.click(".dg-cell[data-index='3'] .dg-cell-img")
    page.keyboard.press("3")
    page.keyboard.press("Enter")
    page.wait_for_selector(DECIDED)
    entry = ui.comfy.wait_history(prompt_id)
    assert entry["status"]["status_str"] == "success"
    assert str(nodes["DatasetGatesDatasetLoad"]) in entry["outputs"]
    kept = [names[i] for i in (0, 2, 4)]
    assert sorted(p.name for p in keep.iterdir()) == sorted([*kept, *(n.rsplit(".", 1)[0] + ".txt" for n in kept)])
    stem = names[1].rsplit(".", 1)[0]
    assert sorted(p.name for p in fix.iterdir()) == sorted([names[1], f"{stem}.txt", f"{stem}-masklabel.png"])
    assert all((keep / n).read_bytes() == (dataset / n).read_bytes() for n in kept)
