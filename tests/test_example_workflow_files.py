"""The example workflows say what the README's table says they do (the e2e tests load and run
them in a real ComfyUI; these read the committed JSON)."""

from __future__ import annotations

import json
import re
from typing import Any

from doc_images import EXAMPLES, EXAMPLES_DIR, REPO

from gates.comfy.nodes import NODE_CLASS_MAPPINGS

README = (REPO / "README.md").read_text(encoding="utf-8")
SD15 = "v1-5-pruned-emaonly-fp16.safetensors"
CORE = {
    "CheckpointLoaderSimple",
    "CLIPTextEncode",
    "EmptyLatentImage",
    "KSampler",
    "VAEDecode",
    "SaveImage",
    "LoadImage",
    "RepeatImageBatch",
    "ImageInvert",
    "MarkdownNote",
}


def workflow(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES_DIR / f"{name}.json").read_text(encoding="utf-8"))


def nodes(name: str, kind: str) -> list[dict[str, Any]]:
    return [n for n in workflow(name)["nodes"] if n["type"] == kind]


def widgets(name: str, kind: str) -> list[Any]:
    (node,) = nodes(name, kind)
    return node["widgets_values"]


def gate(name: str) -> dict[str, Any]:
    """The gate's widgets by name (the order ComfyUI gives them: its INPUT_TYPES order)."""
    types = NODE_CLASS_MAPPINGS["ImageGate"].INPUT_TYPES()
    names = [
        k
        for k, v in {**types["required"], **types["optional"]}.items()
        if v[0] in ("INT", "STRING") or isinstance(v[0], list)
    ]
    return dict(zip(names, widgets(name, "ImageGate")))


def test_the_readme_table_names_every_example() -> None:
    table = README[README.index("## Example workflows") : README.index("## Nodes")]
    assert re.findall(r"^\| `([a-z_]+)` \|", table, re.M) == list(EXAMPLES)


def test_each_example_is_a_ui_workflow_of_core_nodes_and_this_packs_with_a_note() -> None:
    for name in EXAMPLES:
        data = workflow(name)
        assert {"nodes", "links", "version", "extra"} <= set(data), name
        kinds = {n["type"] for n in data["nodes"]}
        assert kinds <= CORE | set(NODE_CLASS_MAPPINGS), (name, kinds)
        assert "MarkdownNote" in kinds and kinds & set(NODE_CLASS_MAPPINGS), name


def test_curate_batch_generates_eight_with_sd15_and_routes_keep_fix_drop() -> None:
    assert widgets("curate_batch", "CheckpointLoaderSimple") == [SD15]
    (loader,) = nodes("curate_batch", "CheckpointLoaderSimple")
    assert loader["properties"]["models"][0]["name"] == SD15  # the frontend offers the download
    assert widgets("curate_batch", "EmptyLatentImage")[2] == 8
    assert gate("curate_batch")["labels"] == "keep, fix, drop" and gate("curate_batch")["routes"] == 3
    assert widgets("curate_batch", "DatasetGatesBusSave")[0] == "to_fix"
    assert f"`{SD15}` in `models/checkpoints`" in README


def test_resume_from_slot_reads_to_fix_with_no_image_wired() -> None:
    (node,) = nodes("resume_from_slot", "ImageGate")
    assert gate("resume_from_slot")["get_id"] == "to_fix"
    assert next(i for i in node["inputs"] if i["name"] == "image")["link"] is None


def test_checkpoint_batch_saves_and_loads_the_same_slot_from_example_png() -> None:
    assert widgets("checkpoint_batch", "DatasetGatesBusSave")[0] == "checkpoint"
    assert widgets("checkpoint_batch", "DatasetGatesBusLoad")[0] == "checkpoint"
    assert widgets("checkpoint_batch", "LoadImage")[0] == "example.png"


def test_overnight_parking_waits_600_seconds_then_parks() -> None:
    values = gate("overnight_parking")
    assert values["timeout"] == 600 and values["on_timeout"] == "park"
    assert widgets("overnight_parking", "LoadImage")[0] == "example.png"


def test_curate_dataset_folder_pages_input_dataset_into_keep_and_fix_with_masks() -> None:
    data = workflow("curate_dataset_folder")
    assert widgets("curate_dataset_folder", "DatasetGatesDatasetLoad")[:3] == ["input/dataset", "undecided", 16]
    assert gate("curate_dataset_folder")["labels"] == "keep, fix, drop" and gate("curate_dataset_folder")["routes"] == 3
    by_id = {n["id"]: n for n in data["nodes"]}
    links = {(by_id[link[1]]["type"], link[5]) for link in data["links"] if by_id[link[3]]["type"] == "ImageGate"}
    assert links == {("DatasetGatesDatasetLoad", kind) for kind in ("IMAGE", "MASK", "DG_PAGE", "DG_CAPTIONS")}
    saves = sorted(nodes("curate_dataset_folder", "DatasetGatesDatasetSave"), key=lambda n: n["pos"][1])
    folders = [(n["widgets_values"][0], n["widgets_values"][2]) for n in saves]  # folder, masks
    assert folders == [("output/dataset_keep", False), ("output/dataset_fix", True)]
    splits = sorted(nodes("curate_dataset_folder", "DatasetGatesSplit"), key=lambda n: n["pos"][1])
    assert [n["widgets_values"][0] for n in splits] == [1, 2]
    (note,) = nodes("curate_dataset_folder", "MarkdownNote")
    assert "`ComfyUI/input/dataset/`" in note["widgets_values"][0] and "absolute path" in note["widgets_values"][0]
    assert "| `curate_dataset_folder` |" in README
