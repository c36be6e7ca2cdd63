"""A dataset folder curated page by page in a real ComfyUI, through a kill -9 and a restart.

Dataset Load (undecided, pages of 16) -> Image Gate keep / fix / drop (image, mask, captions and
page wired) -> Gate Split route 1 -> Dataset Save (keep) and Gate Split route 2 -> Dataset Save
(fix, masks on), as tests/e2e/example_graphs.py's `dataset_graph` builds it in the page. Page 1
is answered in headless Chromium with clicks and keys, one caption typed under its image; page
2 pauses, and ComfyUI is killed with SIGKILL; a new ComfyUI on the same folders gives page 2
again (nothing was lost, nothing decided), and the rest is answered over HTTP. Then every file
is checked: the saved bytes, the captions, the journal (one decision per file), and the damaged
file reported by Dataset Load's `dg_dataset` message and never saved. Screenshots of the paused
page go to $E2E_SHOTS.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from dataset_files import BOM, CRLF, DAMAGED, curation_folder
from example_graphs import BUILD, dataset_graph, spec
from PIL import Image, ImageOps
from test_ui_e2e import DECIDED, PAUSED, Ui, cell, chromium  # noqa: F401 (chromium: a fixture, used by name)

from gates.dataset.journal import JOURNAL_NAME

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (os.environ.get("COMFYUI_DIR") and os.environ.get("COMFYUI_PYTHON")),
        reason="UI e2e: set COMFYUI_DIR and COMFYUI_PYTHON to run against a real ComfyUI",
    ),
]

PAGE = 16
LABELS = {1: "keep", 2: "fix", 3: "drop"}
EDITED = 3  # page 1's image whose caption is typed at the pause
TYPED = ", at dusk — ✓"
# Page 1's routes by batch index, as the clicks and keys below give them (route 1 by key for
# 1-3, by default for the rest); the later pages' routes, sent over HTTP.
PAGE1 = {0: 2, 6: 2, 4: 3, 9: 3, 13: 3}
PAGE2 = [1, 2, 3, 1] * 4
PAGE3 = [3, 1, 2, 1, 1, 1, 2, 3]


def journal(folder: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (folder / JOURNAL_NAME).read_text(encoding="utf-8").splitlines()]


def claimed(folder: Path, pid: int) -> list[str]:
    """The readable paths the ComfyUI of process `pid` claimed, in order, not decided since (a
    page claims the damaged file it tried too; it stays undecided)."""
    records = journal(folder)
    decided = {r["path"] for r in records if r["kind"] == "decide"}
    paths = [
        p
        for r in records
        if r["kind"] == "claim" and f":{pid}:" in r["owner"]
        for p in r["paths"]
        if p not in decided and p != DAMAGED
    ]
    return list(dict.fromkeys(paths))


def loader_message(ws, prompt_id: str, node: str) -> dict[str, Any]:
    """Dataset Load's `dg_dataset` message, from the websocket's "executed" event."""
    event = ws.wait_for("executed", lambda d: d.get("prompt_id") == prompt_id and d.get("node") == node, timeout=60)
    return event["data"]["output"]["dg_dataset"][0]


def answer(server, pause: dict[str, Any], routes: list[int]) -> None:
    r = server.post("/datasete_gate/choice", json={"node": pause["node"], "token": pause["token"], "routes": routes})
    assert r.status_code == 200, r.text


def upright_size(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return ImageOps.exif_transpose(img).size


def test_a_folder_is_curated_page_by_page_through_a_kill_and_a_restart(
    comfy_factory, chromium, e2e_nodes_mode, tmp_path
) -> None:
    dataset, keep, fix = tmp_path / "dataset", tmp_path / "keep", tmp_path / "fix"
    captions = curation_folder(dataset)
    sources = {p.name: p.read_bytes() for p in dataset.iterdir()}
    names = sorted(captions)
    assert len(names) == 40 and len(list(dataset.iterdir())) == 41 + 36  # images and their captions
    pages = [names[:PAGE], names[PAGE : 2 * PAGE], names[2 * PAGE :]]
    routes: dict[str, int] = {}  # what was answered, file by file

    # -- page 1, in the page: clicks, keys and a typed caption ---------------------------------
    first = comfy_factory("dataset_a")
    first.post(
        "/settings", json={"Comfy.TutorialCompleted": True, "Comfy.VueNodes.Enabled": e2e_nodes_mode == "vue"}
    ).raise_for_status()
    ui = Ui(first, chromium, "dataset_page", e2e_nodes_mode)
    page = ui.page
    ids = page.evaluate(BUILD, spec(dataset_graph(str(dataset), str(keep), str(fix), page_size=PAGE, with_note=False)))
    page.evaluate(
        "() => { app.canvas.ds.scale = 1; app.canvas.ds.offset = [0, 40]; app.graph.setDirtyCanvas(true, true); }"
    )
    prompt = page.evaluate("async () => (await app.graphToPrompt()).output")
    load_node = str(ids["load"])
    ui.queue()
    pause = ui.wait_paused()
    assert pause["batch"] == PAGE and pause["labels"] == ["keep", "fix", "drop"]
    assert pause["captions"] == [captions[n] or "" for n in pages[0]]
    shown = page.eval_on_selector_all(f"{PAUSED} .dg-cell-caption", "els => els.map(e => e.textContent)")
    assert shown == [captions[n] or "no caption" for n in pages[0]]
    ui.shot("paused_with_captions")

    page.click(f"{cell(EDITED)} .dg-cell-caption")
    page.wait_for_selector(f"{cell(EDITED)} .dg-cell-editor:focus")
    page.keyboard.type(TYPED)
    page.keyboard.press("Enter")  # on to the next image's caption ...
    page.wait_for_selector(f"{cell(EDITED + 1)} .dg-cell-editor:focus")
    page.keyboard.press("Escape")  # ... left as it was, back to the panel
    for route in (2, 3):
        picked = [i for i, r in PAGE1.items() if r == route]
        page.click(f"{cell(picked[0])} .dg-cell-img")
        for i in picked[1:]:
            page.click(f"{cell(i)} .dg-cell-img", modifiers=["Control"])
        page.keyboard.press(str(route))
    page.click(f"{cell(1)} .dg-cell-img")
    page.click(f"{cell(3)} .dg-cell-img", modifiers=["Shift"])
    page.keyboard.press("1")
    shot = ui.shot("page_1_answered")
    page.locator(".dg-gate").first.screenshot(path=str(shot.with_name(shot.stem + "_node.png")))
    page.keyboard.press("Enter")
    page.wait_for_selector(DECIDED)
    entry = first.wait_history(pause["prompt_id"], timeout=60)
    assert entry["status"]["status_str"] == "success", entry["status"]
    loaded = entry["outputs"][load_node]["dg_dataset"][0]
    assert loaded["errors"] and [row["file"] for row in loaded["errors"]] == [DAMAGED]
    for i, name in enumerate(pages[0]):
        routes[name] = PAGE1.get(i, 1)
    edited = pages[0][EDITED]
    ui.close()

    decided = {r["path"]: r for r in journal(dataset) if r["kind"] == "decide"}
    assert {p: r["label"] for p, r in decided.items()} == {n: LABELS[routes[n]] for n in pages[0]}
    assert decided[edited]["caption"] == captions[edited] + TYPED and decided[edited]["edited"] is True
    assert [p for p, r in decided.items() if r["edited"]] == [edited]

    # -- page 2 pauses; ComfyUI is killed there --------------------------------------------------
    ws = first.ws()
    prompt_id = first.queue(prompt, ws.client_id)
    pause = ws.wait_pause(prompt_id, timeout=60)
    message = loader_message(ws, prompt_id, load_node)
    assert [row["file"] for row in message["errors"]] == [DAMAGED]
    assert message["lines"][0] == "16 / 41 decided: 11 keep · 2 fix · 3 drop"  # as the README shows it
    assert pause["captions"] == [captions[n] or "" for n in pages[1]]
    assert claimed(dataset, first.proc.pid) == pages[1]
    first.proc.kill()  # SIGKILL: no release, no decision
    first.proc.wait(timeout=30)
    ws.close()
    assert {r["path"] for r in journal(dataset) if r["kind"] == "decide"} == set(pages[0])

    # -- a new ComfyUI on the same folders: page 2 again, then the rest over HTTP ---------------
    second = comfy_factory("dataset_b")
    with second.ws() as ws:
        for page_names, answers in ((pages[1], PAGE2), (pages[2], PAGE3)):
            since = ws.mark()
            prompt_id = second.queue(prompt, ws.client_id)
            pause = ws.wait_pause(prompt_id, timeout=60, since=since)
            assert pause["captions"] == [captions[n] or "" for n in page_names]
            assert claimed(dataset, second.proc.pid) == page_names  # the paused page, whole
            message = loader_message(ws, prompt_id, load_node)
            assert [row["file"] for row in message["errors"]] == [DAMAGED] and message["errors"][0]["error"]
            answer(second, pause, answers)
            end = ws.wait_prompt_end(prompt_id, timeout=60, since=since)
            assert end["type"] == "execution_success", end
            routes.update(zip(page_names, answers))
        since = ws.mark()
        prompt_id = second.queue(prompt, ws.client_id)  # nothing left: no pause, every output blocked
        end = ws.wait_prompt_end(prompt_id, timeout=60, since=since)
        assert end["type"] == "execution_success", end
        message = loader_message(ws, prompt_id, load_node)
        counts = [sum(r == k for r in routes.values()) for k in LABELS]
        assert message["lines"][0] == "40 / 41 decided: {} keep · {} fix · {} drop".format(*counts)
        assert "no file is left undecided" in message["lines"][1]
        assert [row["file"] for row in message["errors"]] == [DAMAGED]
        assert not ws.find("datasete_gate.pause", lambda d: d.get("prompt_id") == prompt_id, since=since)

    # -- file by file -------------------------------------------------------------------------------
    records = [r for r in journal(dataset) if r["kind"] == "decide"]
    assert sorted(r["path"] for r in records) == names  # each file decided once, the damaged one never
    assert {r["path"]: r["route"] + 1 for r in records} == routes
    assert not any(r["redo"] for r in records)
    for name in names:
        stem = Path(name).stem
        route = routes[name]
        caption = captions[name] + TYPED if name == edited else captions[name]
        out = {1: keep, 2: fix}.get(route)
        for other in {keep, fix} - {out}:
            assert not list(other.glob(f"{stem}.*")) and not list(other.glob(f"{stem}-*")), (name, other)
        if out is None:
            continue
        assert (out / name).read_bytes() == (dataset / name).read_bytes(), f"{name} is not its source's bytes"
        if caption is None:
            assert not (out / f"{stem}.txt").exists(), name  # shown empty at the gate, left without one
        else:
            assert (out / f"{stem}.txt").read_bytes() == caption.encode("utf-8"), name
        if out == fix:
            with Image.open(fix / f"{stem}-masklabel.png") as label:
                assert label.size == upright_size(dataset / name), name
    assert (keep / f"{BOM}.txt").read_bytes()[:3] != b"\xef\xbb\xbf"
    crlf = next(n for n in names if n.startswith(CRLF))
    assert b"\r\n" in ((keep if routes[crlf] == 1 else fix) / f"{CRLF}.txt").read_bytes()
    assert not list(keep.glob("pic_05*")) and not list(fix.glob("pic_05*"))
    assert sorted(p.name for p in dataset.iterdir() if not p.name.startswith("pic_")) == [JOURNAL_NAME]
    assert {p.name: p.read_bytes() for p in dataset.iterdir() if p.name != JOURNAL_NAME} == sources  # untouched
