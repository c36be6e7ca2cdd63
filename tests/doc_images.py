"""Every picture the docs and the template browser show, with its size: recorded here, once.

tests/e2e/test_docs_screenshots.py writes them from a real ComfyUI page (headless Chromium) at
exactly these sizes; tests/test_doc_images.py checks that the committed files are these, that
the README shows each README picture, and that every example workflow has its thumbnail.
"""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IMAGES_DIR = REPO / "docs" / "images"
EXAMPLES_DIR = REPO / "example_workflows"  # ComfyUI lists a pack's folder of this name as templates

MAX_BYTES = 200_000  # a committed PNG stays under this
MAX_THUMB_BYTES = 80_000  # a template thumbnail (JPG) stays under this

# README pictures: docs/images/<name> -> (width, height) in pixels
README_IMAGES = {
    "gate_paused.png": (960, 880),  # the paused gate, its labelled route buttons (top of README)
    "gate_grid.png": (400, 1000),  # a batch at a pause: the grid, a route per image
    "slot_browser.png": (600, 560),  # the Slots sidebar: the slot browser inside ComfyUI
    "dataset_page.png": (580, 552),  # a dataset page at the gate: the grid, a caption under each image
}

# Pictures other docs show that no script makes; only checked to exist and be PNGs
HAND_MADE = {"after_socket.png"}

# The example workflows: example_workflows/<name>.json with <name>.jpg beside it
EXAMPLES = ("curate_batch", "resume_from_slot", "checkpoint_batch", "overnight_parking", "curate_dataset_folder")
THUMB_SIZE = (400, 400)  # the template browser shows square thumbnails
