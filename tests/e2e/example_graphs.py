"""The example workflows of example_workflows/, declared as data and built in a real page.

Each example is a list of nodes (type, position, widget values) and links (by output and
input name). `BUILD` makes the graph with the frontend's own API (LiteGraph.createNode,
app.graph.add, node.connect) in a ComfyUI tab; test_docs_screenshots.py then saves
app.graph.serialize() as example_workflows/<name>.json with a screenshot beside it. No model
file is needed except by `curate_batch`, whose point is a sampler (its note names the
checkpoint, and the examples test only validates it).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from typing import Any

SD15 = "v1-5-pruned-emaonly-fp16.safetensors"
# Where ComfyUI's own default workflow says to get it; the frontend offers the download
SD15_MODEL = {
    "name": SD15,
    "directory": "checkpoints",
    "url": f"https://huggingface.co/Comfy-Org/stable-diffusion-v1-5-archive/resolve/main/{SD15}?download=true",
}
EXAMPLE_IMAGE = "example.png"  # ships in ComfyUI's input/ folder


@dataclass
class Node:
    key: str
    type: str
    pos: tuple[int, int]
    widgets: dict[str, Any] = field(default_factory=dict)
    size: tuple[int, int] | None = None
    title: str | None = None
    properties: dict[str, Any] = field(default_factory=dict)


@dataclass
class Example:
    name: str
    nodes: list[Node]
    links: list[tuple[str, str, str, str]]  # (from node, output name, to node, input name)
    needs_model: str | None = None  # a checkpoint it needs: then it is validated, not run

    def node(self, key: str) -> Node:
        return next(n for n in self.nodes if n.key == key)


def note(text: str, pos: tuple[int, int], size: tuple[int, int]) -> Node:
    return Node("note", "MarkdownNote", pos, {"text": text.strip()}, size=size, title="About this workflow")


CURATE = Example(
    "curate_batch",
    needs_model=SD15,
    nodes=[
        note(
            f"""
## Curate a batch: generate, keep / fix / drop, save

Generates 8 images; the **Image Gate** then pauses with them in the node, as a grid. Give each
image a route (select, then click a route or press its number; Enter sends; a route with nothing
selected sends the whole batch; Esc stops):

- **keep**: saved to `output/curated/`
- **fix**: published exactly (float32, bit for bit) to the bus slot `to_fix`; open it later with
  the *resume_from_slot* example
- **drop**: wired to nothing, so nothing runs for those images

Needs a Stable Diffusion 1.5 checkpoint in `models/checkpoints`: `{SD15}` (or pick yours in
Load Checkpoint).
""",
            (20, -300),
            (700, 250),
        ),
        Node("ckpt", "CheckpointLoaderSimple", (20, 0), {"ckpt_name": SD15}, properties={"models": [SD15_MODEL]}),
        Node("latent", "EmptyLatentImage", (20, 170), {"width": 512, "height": 512, "batch_size": 8}),
        Node(
            "pos",
            "CLIPTextEncode",
            (320, 0),
            {"text": "a lighthouse on a rocky coast at sunset, oil painting"},
            size=(400, 140),
        ),
        Node("neg", "CLIPTextEncode", (320, 190), {"text": "blurry, text, watermark"}, size=(400, 110)),
        Node("sampler", "KSampler", (20, 370), {"seed": 1, "control_after_generate": "randomize"}),
        Node("decode", "VAEDecode", (320, 370)),
        Node("gate", "ImageGate", (500, 370), {"routes": 3, "labels": "keep, fix, drop"}),
        Node("keep", "SaveImage", (860, 370), {"filename_prefix": "curated/keep"}, size=(300, 260)),
        Node("fix", "DatasetGatesBusSave", (860, 690), {"slot_id": "to_fix"}),
    ],
    links=[
        ("ckpt", "MODEL", "sampler", "model"),
        ("ckpt", "CLIP", "pos", "clip"),
        ("ckpt", "CLIP", "neg", "clip"),
        ("pos", "CONDITIONING", "sampler", "positive"),
        ("neg", "CONDITIONING", "sampler", "negative"),
        ("latent", "LATENT", "sampler", "latent_image"),
        ("sampler", "LATENT", "decode", "samples"),
        ("ckpt", "VAE", "decode", "vae"),
        ("decode", "IMAGE", "gate", "image"),
        ("gate", "route_1", "keep", "images"),
        ("gate", "route_2", "fix", "image"),
    ],
)

RESUME = Example(
    "resume_from_slot",
    nodes=[
        note(
            """
## Resume from a slot

The **Image Gate** has no image wired, so it reads the bus slot named in `get_id`, here
`to_fix` (what *curate_batch* sent down **fix**): image, mask and latent exactly as they were
published, in any later session. It pauses with them; **keep** saves them to
`output/curated/`, **drop** passes nothing on.

`to_fix@-1` is the version before (when the bus keeps history: `gates config --keep 3`). The
**get_id ▾** button lists the slots. A `get_id` naming no slot does nothing (the log says so).
""",
            (20, -300),
            (640, 270),
        ),
        Node("gate", "ImageGate", (20, 20), {"routes": 2, "labels": "keep, drop", "get_id": "to_fix"}),
        Node("keep", "SaveImage", (400, 20), {"filename_prefix": "curated/keep"}, size=(300, 300)),
    ],
    links=[("gate", "route_1", "keep", "images")],
)

CHECKPOINT = Example(
    "checkpoint_batch",
    nodes=[
        note(
            f"""
## Checkpoint a batch with Bus Save and Bus Load

**Bus Save** stores the batch in the slot `checkpoint` bit for bit (float32 stays float32) under
`input/gate_bus/`, where it survives restarts, and passes the image on. **Bus Load** reads the
slot back; in the same run it waits for the save by itself, no wire needed.

Once it has run, bypass the top row (select it, Ctrl+B) and queue again: Bus Load restarts
from the checkpoint without recomputing what came before. `{EXAMPLE_IMAGE}` ships with
ComfyUI; Repeat Image Batch stands for the expensive part.
""",
            (20, -300),
            (700, 270),
        ),
        Node("load", "LoadImage", (20, 20), {"image": EXAMPLE_IMAGE}, size=(300, 340)),
        Node("repeat", "RepeatImageBatch", (360, 20), {"amount": 4}),
        Node("save", "DatasetGatesBusSave", (680, 20), {"slot_id": "checkpoint"}),
        Node("busload", "DatasetGatesBusLoad", (20, 420), {"slot_id": "checkpoint"}),
        Node("invert", "ImageInvert", (360, 420)),
        Node("out", "SaveImage", (680, 420), {"filename_prefix": "checkpoint/inverted"}, size=(300, 300)),
    ],
    links=[
        ("load", "IMAGE", "repeat", "image"),
        ("repeat", "IMAGE", "save", "image"),
        ("busload", "image", "invert", "image"),
        ("invert", "IMAGE", "out", "images"),
    ],
)

OVERNIGHT = Example(
    "overnight_parking",
    nodes=[
        note(
            """
## Overnight: park what nobody answers

Queue as many runs as you like and leave. The **Image Gate** waits `timeout` seconds (600
here) for an answer; then, with `on_timeout` = **park**, it stores the batch and the run in a
bus slot (`send_id`, else one named `parked-…-<node id>`), passes nothing on, and the queue
moves on to the next run.

Later, **▶ Resume** on the parked slot in the Slots sidebar queues the run again: the gate
pauses at once, without recomputing what fed it. `on_timeout` can also **stop** the run or send every
image down a route.
""",
            (20, -300),
            (700, 270),
        ),
        Node("load", "LoadImage", (20, 20), {"image": EXAMPLE_IMAGE}, size=(300, 340)),
        Node("repeat", "RepeatImageBatch", (20, 420), {"amount": 4}),
        Node(
            "gate", "ImageGate", (360, 20), {"routes": 2, "labels": "keep, drop", "timeout": 600, "on_timeout": "park"}
        ),
        Node("keep", "SaveImage", (720, 20), {"filename_prefix": "overnight/keep"}, size=(300, 300)),
    ],
    links=[
        ("load", "IMAGE", "repeat", "image"),
        ("repeat", "IMAGE", "gate", "image"),
        ("gate", "route_1", "keep", "images"),
    ],
)

# Relative folders are resolved from the folder ComfyUI runs in (its working directory): the
# ComfyUI folder when it is started there with `python main.py`.
DATASET_FOLDER = "input/dataset"
DATASET_KEEP = "output/dataset_keep"
DATASET_FIX = "output/dataset_fix"


def dataset_graph(folder: str, keep: str, fix: str, page_size: int = 16, with_note: bool = True) -> Example:
    """Dataset Load -> Image Gate keep / fix / drop (captions and page wired) -> Gate Split per
    route -> Dataset Save: keep as it is, fix with the masks as they left the gate."""
    nodes = [
        Node(
            "load", "DatasetGatesDatasetLoad", (20, 20), {"folder": folder, "show": "undecided", "page_size": page_size}
        ),
        Node("gate", "ImageGate", (380, 20), {"routes": 3, "labels": "keep, fix, drop"}, size=(560, 620)),
        Node("split_keep", "DatasetGatesSplit", (980, 20), {"route": 1}),
        Node("save_keep", "DatasetGatesDatasetSave", (1280, 20), {"folder": keep}, size=(320, 260)),
        Node("split_fix", "DatasetGatesSplit", (980, 340), {"route": 2}),
        Node("save_fix", "DatasetGatesDatasetSave", (1280, 340), {"folder": fix, "masks": True}, size=(320, 260)),
    ]
    if with_note:
        nodes.insert(
            0,
            note(
                f"""
## Curate a dataset folder: keep / fix / drop, a page at a time

**Dataset Load** reads the next 16 images of `folder` that no gate has decided yet, each with
its caption (`<name>.txt` beside it) and its mask (an RGBA image's alpha). The **Image Gate**
pauses with them as a grid, each caption under its image: click a caption to edit it, select
images and press 1 (keep), 2 (fix) or 3 (drop), then Enter. Each file's decision goes into
`.dataset-gates-journal.jsonl` in the dataset folder, so queue again for the next page; after
a restart, a queue picks up where you left off.

- **keep**: saved to `{keep}` as they were (the original file when unchanged) with their captions
- **fix**: saved to `{fix}` with their masks (`<name>-masklabel.png`): paint a mask at the gate
  (Edit mask) before sending
- **drop**: wired to nothing

Make the folder first: put images (PNG, JPEG, WebP) and same-name `.txt` captions in
`ComfyUI/{folder}/`. A relative path is read from the folder ComfyUI runs in (the ComfyUI
folder when you start it with `python main.py`); type an absolute path if yours runs elsewhere.
No model is needed.
""",
                (20, -330),
                (920, 320),
            ),
        )
    return Example(
        "curate_dataset_folder",
        nodes=nodes,
        links=[
            ("load", "image", "gate", "image"),
            ("load", "mask", "gate", "mask"),
            ("load", "page", "gate", "page"),
            ("load", "captions", "gate", "captions"),
            ("gate", "decisions", "split_keep", "decisions"),
            ("load", "image", "split_keep", "image"),
            ("load", "page", "split_keep", "page"),
            ("split_keep", "image", "save_keep", "image"),
            ("split_keep", "page", "save_keep", "page"),
            ("gate", "decisions", "split_fix", "decisions"),
            ("load", "image", "split_fix", "image"),
            ("gate", "mask", "split_fix", "mask"),
            ("load", "page", "split_fix", "page"),
            ("split_fix", "image", "save_fix", "image"),
            ("split_fix", "mask", "save_fix", "mask"),
            ("split_fix", "page", "save_fix", "page"),
        ],
    )


CURATE_DATASET = dataset_graph(DATASET_FOLDER, DATASET_KEEP, DATASET_FIX)

EXAMPLES = {e.name: e for e in (CURATE, RESUME, CHECKPOINT, OVERNIGHT, CURATE_DATASET)}


def spec(example: Example) -> dict[str, Any]:
    """What BUILD takes: plain JSON."""
    return {
        "nodes": [
            {
                "key": n.key,
                "type": n.type,
                "pos": list(n.pos),
                "widgets": n.widgets,
                "size": list(n.size) if n.size else None,
                "title": n.title,
                "properties": n.properties,
            }
            for n in example.nodes
        ],
        "links": [list(link) for link in example.links],
    }


# Clears the graph, then adds the nodes and links of a spec; returns {key: node id}. A widget
# callback runs after its value is set, as a person's edit would (the gate's `routes` and
# `labels` shape its outputs that way).
BUILD = """
(spec) => {
  const LG = window.LiteGraph, app = window.app;
  app.graph.clear();
  const nodes = {};
  for (const n of spec.nodes) {
    const node = LG.createNode(n.type);
    if (!node) throw new Error(`no node type ${n.type}`);
    node.pos = n.pos;
    app.graph.add(node);
    for (const [name, value] of Object.entries(n.widgets)) {
      const widget = node.widgets?.find(w => w.name === name);
      if (!widget) throw new Error(`${n.type} has no widget ${name}`);
      widget.value = value;
      widget.callback?.(value);
    }
    if (n.title) node.title = n.title;
    Object.assign(node.properties, n.properties);
    if (n.size) node.setSize(n.size);
    nodes[n.key] = node;
  }
  for (const [from, output, to, input] of spec.links) {
    const src = nodes[from], dst = nodes[to];
    const o = src.findOutputSlot(output), i = dst.findInputSlot(input);
    if (o < 0 || i < 0) throw new Error(`no ${from}.${output} -> ${to}.${input}`);
    if (!src.connect(o, dst, i)) throw new Error(`could not link ${from}.${output} -> ${to}.${input}`);
  }
  app.graph.setDirtyCanvas(true, true);
  return Object.fromEntries(Object.entries(nodes).map(([k, n]) => [k, n.id]));
}
"""

# Zoom and pan so every node fits the rectangle [x, y, w, h] of the canvas element (CSS px).
FIT = """
([x, y, w, h, margin]) => {
  const app = window.app, ds = app.canvas.ds;
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (const n of app.graph.nodes) {
    const title = window.LiteGraph.NODE_TITLE_HEIGHT;
    x0 = Math.min(x0, n.pos[0]); y0 = Math.min(y0, n.pos[1] - title);
    x1 = Math.max(x1, n.pos[0] + n.size[0]); y1 = Math.max(y1, n.pos[1] + n.size[1]);
  }
  const scale = Math.min((w - 2 * margin) / (x1 - x0), (h - 2 * margin) / (y1 - y0), 1.2);
  ds.scale = scale;
  ds.offset = [(x + w / 2) / scale - (x0 + x1) / 2, (y + h / 2) / scale - (y0 + y1) / 2];
  app.graph.setDirtyCanvas(true, true);
  return scale;
}
"""


def put_example_image(comfy: Any) -> None:
    """ComfyUI's own input/example.png, which the examples load, in the e2e input folder (the
    README says it ships with ComfyUI: this fails when it does not)."""
    source = comfy.comfy_dir / "input" / EXAMPLE_IMAGE
    assert source.is_file(), f"ComfyUI no longer ships input/{EXAMPLE_IMAGE}: the examples need another image"
    shutil.copyfile(source, comfy.input_dir / EXAMPLE_IMAGE)
