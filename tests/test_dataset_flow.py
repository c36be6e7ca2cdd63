"""A dataset folder through the nodes: Dataset Load -> Image Gate -> Gate Split / Bucket Resize -> Dataset Save.

Everything as ComfyUI runs it (the stand-in host), with real files: pages in order, per-file
decisions in the journal, what a stop or a dead server hands back, and the saved set file by file.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import torch
from comfy_standin import ExecutionBlocker, InterruptProcessingException
from dataset_files import jpeg, noise, png8, png16, webp
from PIL import Image

from gates.dataset.journal import JOURNAL_NAME, Journal
from gates.dataset.owner import owner_alive, process_owner
from gates.dataset.report import folder_report
from gates.dataset.roots import Roots


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Ten files: mixed sizes, RGBA, 16-bit, a rotated JPEG, WebP, a damaged one, captions with a
    BOM and CRLF, two uncaptioned."""
    root = tmp_path / "set"
    root.mkdir()
    png8(root / "img_01.png", noise(20, 30, 3, seed=1))
    (root / "img_01.txt").write_bytes("\ufeffa cat, sitting\r\nsecond line".encode())
    png8(root / "img_02.png", noise(24, 16, 4, seed=2))
    (root / "img_02.txt").write_text("rgba 🐈", encoding="utf-8")
    png16(root / "img_03.png", noise(18, 22, 3, seed=3, dtype=np.uint16))
    (root / "img_03.txt").write_text("sixteen bits", encoding="utf-8")
    jpeg(root / "img_04.jpg", noise(16, 28, 3, seed=4), orientation=6)
    (root / "img_04.txt").write_text("rotated", encoding="utf-8")
    (root / "img_05.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    webp(root / "img_06.webp", noise(12, 12, 3, seed=6))
    for i in range(7, 11):
        png8(root / f"img_{i:02d}.png", noise(10 + i, 14, 3, seed=i))
        if i != 9:
            (root / f"img_{i:02d}.txt").write_text(f"caption {i}", encoding="utf-8")
    return root


def load(pack, folder: Path, **kw):
    """Run Dataset Load: (ui, outputs)."""
    args = {"folder": str(folder), "show": "undecided", "page_size": 4} | kw
    out = pack.NODE_CLASS_MAPPINGS["DatasetGatesDatasetLoad"]().load(**args)
    return out["ui"]["dg_dataset"][0], out["result"]


def answer(standin, pack, routes, captions=None):
    """Answer the gate's pause with `routes` per image (None: Stop), and edited captions."""
    waiter = pack.gates.gate.waiter.WAITER

    def on_send(event, data):
        if event != "datasete_gate.pause":
            return
        node, token = data["node"], data["token"]
        if routes is None:
            act = lambda: waiter.stop(node, token)  # noqa: E731
        else:
            act = lambda: waiter.choose_each(node, token, routes, captions=captions)  # noqa: E731
        threading.Timer(0.01, act).start()

    standin.server.on_send = on_send


def gate(pack, image, mask, page, captions=None, labels="keep, fix, drop"):
    args = {"routes": 3, "unique_id": "7", "image": image, "mask": mask, "page": page, "labels": labels}
    if captions is not None:
        args["captions"] = captions
    return pack.NODE_CLASS_MAPPINGS["ImageGate"]().run(**args)


def test_pages_go_through_the_gate_and_each_decision_is_journaled(comfy, folder):
    standin, pack = comfy
    ui, (image, mask, page, captions, count) = load(pack, folder)
    assert [i.rel for i in page.items] == ["img_01.png", "img_02.png", "img_03.png", "img_04.jpg"]
    assert count == 4 and image.shape == (4, 28, 30, 3) and mask.shape == (4, 28, 30)
    assert captions[0] == "a cat, sitting\r\nsecond line"  # BOM dropped, CRLF kept
    assert ui["lines"][0] == "0 / 10 decided"
    answer(standin, pack, [1, 3, 1, 2], captions=["a cat", "rgba 🐈", "sixteen bits", "rotated"])
    out = gate(pack, image, mask, page)  # no captions wired: the page's show
    assert out[13] == ["a cat", "rgba 🐈", "sixteen bits", "rotated"]
    decided = Journal(folder).decisions()
    assert {p: (d.route, d.label) for p, d in decided.items()} == {
        "img_01.png": (0, "keep"),
        "img_02.png": (2, "drop"),
        "img_03.png": (0, "keep"),
        "img_04.jpg": (1, "fix"),
    }
    assert decided["img_01.png"].caption == "a cat" and decided["img_02.png"].caption is None  # edited only
    assert (decided["img_04.jpg"].width, decided["img_04.jpg"].height) == (16, 28)  # turned upright
    ui, (_, _, page, _, _) = load(pack, folder)
    # the damaged file is a row and the next file takes its place
    assert [i.rel for i in page.items] == ["img_06.webp", "img_07.png", "img_08.png", "img_09.png"]
    assert ui["errors"] == [{"file": "img_05.png", "error": page.failed[0].error}]
    assert "img_05.png" in ui["errors"][0]["file"] and page.failed[0].error
    assert ui["lines"][0] == "4 / 10 decided: 2 keep · 1 fix · 1 drop"


def test_a_stopped_page_hands_its_files_back_and_the_end_is_a_clean_stop(comfy, folder):
    standin, pack = comfy
    _, (image, mask, page, _, _) = load(pack, folder, page_size=10)
    answer(standin, pack, None)
    with pytest.raises(InterruptProcessingException):
        gate(pack, image, mask, page)
    assert Journal(folder).held_by_others("someone else") == frozenset()
    _, (image, mask, page, _, _) = load(pack, folder, page_size=10)
    assert len(page.items) == 9  # all but the damaged one, again
    answer(standin, pack, [1] * 9)
    gate(pack, image, mask, page)
    ui, result = load(pack, folder)
    assert all(isinstance(o, ExecutionBlocker) for o in result)
    assert ui["lines"] == ["9 / 10 decided: 9 keep", "no file is left undecided: nothing more to gate"]
    assert [row["file"] for row in ui["errors"]] == ["img_05.png"]


def test_another_live_servers_page_is_left_out_and_a_dead_ones_comes_back(comfy, folder):
    _, pack = comfy
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        other = process_owner().replace(f":{__import__('os').getpid()}:", f":{sleeper.pid}:")
        other = other.rsplit(":", 1)[0] + ":" + _start(sleeper.pid)
        assert owner_alive(other)
        Journal(folder).claim(["img_01.png", "img_02.png"], other)
        _, (_, _, page, _, _) = load(pack, folder, page_size=2)
        assert [i.rel for i in page.items] == ["img_03.png", "img_04.jpg"]
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not owner_alive(other)  # killed: its claims hold nothing
    _, (_, _, page, _, _) = load(pack, folder, page_size=2)
    assert [i.rel for i in page.items] == ["img_01.png", "img_02.png"]


def _start(pid: int) -> str:
    from gates.dataset.owner import _start_time

    return _start_time(pid)


def test_a_file_decided_elsewhere_meanwhile_is_not_decided_twice(comfy, folder):
    standin, pack = comfy
    _, (image, mask, page, _, _) = load(pack, folder, page_size=2)
    Journal(folder, alive=lambda _o: False).decide(
        [pack.gates.dataset.journal.Decision("img_02.png", 2, "drop")], "another server"
    )
    answer(standin, pack, [1, 1])
    with pytest.raises(ValueError, match=r"img_02.png: decided already.*queue again"):
        gate(pack, image, mask, page)  # nothing of the page goes on: its decisions were not all kept
    decided = Journal(folder).decisions()
    assert decided["img_02.png"].owner == "another server" and decided["img_02.png"].label == "drop"
    assert "img_01.png" not in decided and Journal(folder).held_by_others("x") == frozenset()
    _, (_, _, page, _, _) = load(pack, folder, page_size=2)
    assert [i.rel for i in page.items] == ["img_01.png", "img_03.png"]


def test_reviewing_decided_files_redoes_their_decisions(comfy, folder):
    standin, pack = comfy
    _, (image, mask, page, _, _) = load(pack, folder, page_size=2)
    answer(standin, pack, [2, 2])
    gate(pack, image, mask, page)
    _, (image, mask, page, _, _) = load(pack, folder, show="route", route=2, page_size=4)
    assert [i.rel for i in page.items] == ["img_01.png", "img_02.png"]
    answer(standin, pack, [1, 3])
    gate(pack, image, mask, page)
    assert [d.label for d in Journal(folder).decisions().values()] == ["keep", "drop"]
    _, (_, _, page, _, _) = load(pack, folder, show="all", page=1, page_size=4)
    assert [i.rel for i in page.items][:1] == ["img_06.webp"]  # page 1 of all: after the damaged img_05
    _, (_, _, page, _, _) = load(pack, folder, show="uncaptioned", page_size=4)
    assert [i.rel for i in page.items] == ["img_06.webp", "img_09.png"]


def test_save_writes_the_kept_files_exactly_and_the_fixed_ones_with_their_masks(comfy, folder, tmp_path):
    standin, pack = comfy
    _, (image, mask, page, _, _) = load(pack, folder)
    edited = ["a cat", "rgba 🐈", "sixteen bits", "turned"]
    answer(standin, pack, [1, 3, 1, 2], captions=edited)
    out = gate(pack, image, mask, page)
    save = pack.NODE_CLASS_MAPPINGS["DatasetGatesDatasetSave"]()
    keep, fix = tmp_path / "keep", tmp_path / "fix"
    with pytest.raises(ValueError, match="whole page's batch"):  # a route's output is cut already
        save.save(out[2], page, str(keep), decisions=out[11], route=1)
    ui = save.save(image, page, str(keep), decisions=out[11], route=1, metadata=True)["ui"]["dg_dataset"][0]
    assert "saved 2 images" in ui["lines"][0] and "2 as their original files" in ui["lines"][0]
    assert (keep / "img_01.png").read_bytes() == (folder / "img_01.png").read_bytes()
    assert (keep / "img_03.png").read_bytes() == (folder / "img_03.png").read_bytes()  # 16-bit, as it was
    assert (keep / "img_01.txt").read_text(encoding="utf-8") == "a cat"
    assert (keep / "img_03.txt").read_bytes() == b"sixteen bits"
    assert not (keep / "img_02.png").exists() and not (fix / "img_02.png").exists()  # dropped
    lines = [json.loads(line) for line in (keep / "metadata.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines == [{"file_name": "img_01.png", "text": "a cat"}, {"file_name": "img_03.png", "text": "sixteen bits"}]
    # the fix route: the gate's whole-batch mask, cut to the route and written as a masklabel
    split = pack.NODE_CLASS_MAPPINGS["DatasetGatesSplit"]()
    img, m, _, _, _, _, part = split.split(out[11], 2, image=image, mask=out[0], page=page)
    assert [i.rel for i in part.items] == ["img_04.jpg"] and part.items[0].caption == "turned"
    save.save(img, part, str(fix), mask=m, masks=True)
    assert (fix / "img_04.jpg").read_bytes() == (folder / "img_04.jpg").read_bytes()
    assert (fix / "img_04.txt").read_text(encoding="utf-8") == "turned"
    with Image.open(fix / "img_04-masklabel.png") as label:
        assert label.size == (16, 28)
    with pytest.raises(ValueError, match=r"exist.*show = route"):  # no overwrite: refused, and how to redo it
        save.save(image, page, str(keep), decisions=out[11], route=1)
    ui = save.save(image, page, str(tmp_path / "none"), decisions=out[11], route=4)["ui"]["dg_dataset"][0]
    assert ui["lines"] == ["no image went down route 4: nothing to save"]


def test_bucket_resize_keeps_the_page_and_save_encodes_the_resized_pixels(comfy, folder, tmp_path):
    _, pack = comfy
    _, (image, mask, page, _, _) = load(pack, folder, show="all", page_size=3)
    resize = pack.NODE_CLASS_MAPPINGS["DatasetGatesBucketResize"]()
    out = resize.resize(image, 256, 256, 64, 64, 512, False, "auto", mask=mask, page=page)
    image2, mask2, page2, labels = out["result"]
    assert labels.split("\n") == ["320x192", "192x320", "256x256"]  # 30x20, 16x24, 22x18 by aspect ratio
    assert [(i.width, i.height) for i in page2.items] == [(320, 192), (192, 320), (256, 256)]
    assert image2.shape == (3, 320, 320, 3) and mask2.shape == (3, 320, 320)
    assert out["ui"]["dg_dataset"][0]["buckets"] == [
        {"bucket": "192x320", "count": 1},
        {"bucket": "256x256", "count": 1},
        {"bucket": "320x192", "count": 1},
    ]
    done = pack.NODE_CLASS_MAPPINGS["DatasetGatesDatasetSave"]().save(image2, page2, str(tmp_path / "out"))
    assert "3 as PNG" in done["ui"]["dg_dataset"][0]["lines"][0]
    with Image.open(tmp_path / "out" / "img_02.png") as saved:
        assert saved.size == (192, 320)
        expected = torch.round(image2[1, :320, :192] * 255).to(torch.uint8)
        assert torch.equal(torch.from_numpy(np.asarray(saved.convert("RGB")).copy()), expected)


def test_a_folder_outside_the_allowed_roots_is_refused_by_both_nodes(comfy, folder, tmp_path, monkeypatch):
    _, pack = comfy
    monkeypatch.setenv("DATASET_GATES_ROOTS", str(tmp_path / "elsewhere"))
    with pytest.raises(ValueError, match="outside the folders this server may read"):
        load(pack, folder)
    monkeypatch.delenv("DATASET_GATES_ROOTS")
    _, (image, _, page, _, _) = load(pack, folder, page_size=1)
    monkeypatch.setenv("DATASET_GATES_ROOTS", str(folder))
    with pytest.raises(ValueError, match="outside the folders this server may save"):
        pack.NODE_CLASS_MAPPINGS["DatasetGatesDatasetSave"]().save(image, page, str(tmp_path / "out"))


def test_the_report_counts_progress_and_the_kept_sets_buckets(comfy, folder):
    standin, pack = comfy
    _, (image, mask, page, _, _) = load(pack, folder)
    answer(standin, pack, [1, 3, 1, 1])
    gate(pack, image, mask, page)
    report = folder_report(str(folder), Roots(None))
    assert report["progress"] == "4 / 10 decided: 3 keep · 1 drop"
    assert report["kept"] == 0 and sum(row["count"] for row in report["buckets"]) == 3
    assert (folder / JOURNAL_NAME).is_file()
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith("img_")) == [JOURNAL_NAME]


def test_a_page_whose_countdown_says_park_is_not_parked_and_stays_undecided(comfy, folder):
    _, pack = comfy
    _, (image, mask, page, _, _) = load(pack, folder, page_size=2)
    args = {"routes": 2, "unique_id": "7", "image": image, "mask": mask, "page": page, "timeout": 1}
    out = pack.NODE_CLASS_MAPPINGS["ImageGate"]().run(**args, on_timeout="park", prompt={"7": {}})
    assert all(isinstance(o, ExecutionBlocker) for o in out)
    assert pack.gates.comfy.adapter.store().ids() == []  # nothing parked
    assert Journal(folder).decisions() == {} and Journal(folder).held_by_others("x") == frozenset()
    out = pack.NODE_CLASS_MAPPINGS["ImageGate"]().run(**args, on_timeout="route 2")
    assert {d.label for d in Journal(folder).decisions().values()} == {"2"}  # a routed countdown decides


def test_an_uncaptioned_image_saves_without_a_caption_file_unless_one_is_typed(comfy, folder, tmp_path):
    standin, pack = comfy
    _, (image, mask, page, captions, _) = load(pack, folder, show="uncaptioned", page_size=4)
    assert [i.rel for i in page.items] == ["img_06.webp", "img_09.png"] and captions == ["", ""]
    answer(standin, pack, [1, 1], captions=["", "typed at the gate"])
    out = gate(pack, image, mask, page)
    pack.NODE_CLASS_MAPPINGS["DatasetGatesDatasetSave"]().save(image, page, str(tmp_path / "k"), decisions=out[11])
    assert not (tmp_path / "k" / "img_06.txt").exists()
    assert (tmp_path / "k" / "img_09.txt").read_text(encoding="utf-8") == "typed at the gate"
    # reviewing the route shows the caption typed at the gate, and keeps it when not edited again
    _, (image, mask, page, captions, _) = load(pack, folder, show="route", route=1, page_size=4)
    assert captions == ["", "typed at the gate"]
    answer(standin, pack, [3, 3])
    gate(pack, image, mask, page)
    assert Journal(folder).decisions()["img_09.png"].caption == "typed at the gate"


def test_two_dataset_loads_of_one_workflow_take_different_files(comfy, folder):
    _, pack = comfy
    node = pack.NODE_CLASS_MAPPINGS["DatasetGatesDatasetLoad"]()
    args = {"folder": str(folder), "show": "undecided", "page_size": 2}
    first = node.load(**args, unique_id="3")["result"][2]
    second = node.load(**args, unique_id="4")["result"][2]
    assert [i.rel for i in first.items] == ["img_01.png", "img_02.png"]
    assert [i.rel for i in second.items] == ["img_03.png", "img_04.jpg"]  # node 3's page stays held
    again = node.load(**args, unique_id="3")["result"][2]  # node 3's next run: its own page again
    assert [i.rel for i in again.items] == ["img_01.png", "img_02.png"]


def test_a_page_wired_to_another_batch_is_refused_and_handed_back(comfy, folder):
    _, pack = comfy
    _, (image, mask, page, _, _) = load(pack, folder, page_size=3)
    with pytest.raises(ValueError, match="the page holds 3 images but the batch 2"):
        gate(pack, image[:2], mask[:2], page)
    assert Journal(folder).held_by_others("another run") == frozenset()
