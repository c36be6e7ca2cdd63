"""The dataset nodes: Dataset Load, Bucket Resize and Dataset Save. Thin: the work is in gates.dataset.

Each shows what it did in the node (the `dg_dataset` UI message, drawn by web/dataset_node.js):
Dataset Load its progress line, the page's place in the folder and one row per file it could
not read; Bucket Resize the bucket counts of its batch; Dataset Save what it wrote.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch

from ..dataset.buckets import BucketCounts, BucketRules
from ..dataset.errors import DatasetError
from ..dataset.loader import MAX_PAGE, PageRequest, load_page
from ..dataset.owner import node_owner
from ..dataset.page import SHOWS, Page
from ..dataset.progress import format_progress
from ..dataset.report import RECENT, bucket_rows
from ..dataset.resize import METHODS, bucket_resize
from ..dataset.roots import Roots
from ..dataset.save import page_items, save
from ..dataset.scan import MAX_DEPTH
from ..gate.captions import CAPTIONS_TYPE
from ..gate.pages import PAGE_TYPE, page_captions, route_page
from ..gate.run import MAX_ROUTES
from ..gate.split import DECISIONS_TYPE, Decisions, split_mask, take
from . import adapter

CATEGORY = "Dataset Gates"
UI_KEY = "dg_dataset"
MAX_ROWS = 50  # error rows shown in a node; the rest are counted

log = logging.getLogger("dataset_gates")


def _ui(
    title: str,
    lines: list[str],
    errors: Sequence[tuple[str, str]] = (),
    buckets: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The node's `dg_dataset` message: a title, lines, error rows (file, why) and bucket counts."""
    rows = [{"file": f, "error": e} for f, e in list(errors)[:MAX_ROWS]]
    if len(errors) > MAX_ROWS:
        lines = [*lines, f"{len(errors) - MAX_ROWS:,} more files could not be read"]
    return {UI_KEY: [{"title": title, "lines": lines, "errors": rows, "buckets": list(buckets)}]}


class DatasetLoad:
    """A page of a dataset folder: up to N images with their masks and captions, as one batch.

    Caching: it always runs (IS_CHANGED is NaN): the journal and the folder change between queues.
    """

    CATEGORY = CATEGORY
    FUNCTION = "load"
    OUTPUT_NODE = True
    RETURN_TYPES = ("IMAGE", "MASK", PAGE_TYPE, CAPTIONS_TYPE, "INT")
    RETURN_NAMES = ("image", "mask", "page", "captions", "count")
    DESCRIPTION = (
        "Reads a page of up to page_size images from a dataset folder (PNG 8/16-bit, JPEG turned "
        "upright, WebP), natural order, with each image's caption (<name>.txt or .caption) and mask "
        "(its alpha, or <name>-masklabel.png). Images of different sizes share one batch padded "
        "top-left with zeros; the page output remembers each one's size, so Dataset Save writes "
        "back exactly the pixels that came in. With show = undecided every queue takes the next "
        "files no gate has decided yet (decisions are kept in the folder's "
        ".dataset-gates-journal.jsonl), so curating stops and resumes anywhere. Past the last "
        "page every output is blocked and the node says so. A file that cannot be read is a row "
        "in the node, and the next file takes its place."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "folder": (
                    "STRING",
                    {"default": "", "tooltip": "the dataset folder (links inside it are not followed)"},
                ),
                "show": (
                    list(SHOWS),
                    {
                        "default": "undecided",
                        "tooltip": "which files: all, not yet decided, decided as route, without a caption",
                    },
                ),
                "page_size": ("INT", {"default": 16, "min": 1, "max": MAX_PAGE}),
            },
            "optional": {
                "page": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": 1 << 20,
                        "tooltip": "which page of the files shown (0: the first); with undecided, 0 is always the next",
                    },
                ),
                "route": (
                    "INT",
                    {
                        "default": 1,
                        "min": 1,
                        "max": MAX_ROUTES,
                        "tooltip": "with show = route: the route the files were decided as",
                    },
                ),
                "depth": (
                    "INT",
                    {
                        "default": 0,
                        "min": 0,
                        "max": MAX_DEPTH,
                        "tooltip": "subfolder levels to read (0: the folder only)",
                    },
                ),
            },
            "hidden": {"unique_id": "UNIQUE_ID"},
        }

    @classmethod
    def IS_CHANGED(cls, **kwargs: Any) -> float:
        return float("nan")

    def load(
        self, folder: str, show: str, page_size: int, page: int = 0, route: int = 1, depth: int = 0, unique_id: str = ""
    ) -> dict:
        owner = node_owner(str(unique_id))  # this node's claims: its next run hands them back
        request = PageRequest(folder.strip(), depth, show, route - 1, page_size, page, owner)  # type: ignore[arg-type]
        loaded = load_page(request, Roots.from_env())
        RECENT.add(loaded.root, depth)
        errors = [(f.rel, f.error) for f in loaded.failed] + [(s.rel, s.reason) for s in loaded.skipped]
        lines = [format_progress(loaded.progress)]
        if loaded.page is None:
            what = "no file is left undecided" if show == "undecided" else f"no file of '{show}' from page {page}"
            lines.append(f"{what}: nothing more to gate")
            blocked = tuple(adapter.blocker() for _ in self.RETURN_TYPES)
            return {"ui": _ui(f"{loaded.root}", lines, errors), "result": blocked}
        n = len(loaded.page.items)
        lines.append(
            f"files {loaded.first + 1:,}–{loaded.first + n + len(loaded.failed):,} of {loaded.matching:,} {show}"
            f" · batch {loaded.page.width}x{loaded.page.height}"
        )
        result = (loaded.image, loaded.mask, loaded.page, page_captions(loaded.page), n)
        return {"ui": _ui(loaded.root, lines, errors), "result": result}


def _one_route(
    page: Page, decisions: Decisions | None, route: int, image: torch.Tensor, mask: torch.Tensor | None
) -> tuple[Page, torch.Tensor, torch.Tensor | None] | None:
    """The page, image and mask of one route: as wired without decisions; with them, the route's
    items of the page, image and mask, cut from the whole page's batch; None when no image went
    down the route.

    With decisions, the image must be the whole page's batch: a gate's route output is already
    cut, and taking it for another route's would save one file's pixels under another's name."""
    if decisions is None:
        return page, image, mask
    whole = len(page.items)
    if int(image.shape[0]) != whole:
        raise ValueError(
            f"with decisions wired, image must be the whole page's batch ({whole} images, e.g. the Dataset Load's"
            f" image), not {int(image.shape[0])}: or cut the route with Gate Split (page) and leave decisions unwired"
        )
    part = route_page(page, decisions, route)
    indices = decisions.indices(route)
    if not indices:
        return None
    return part, take(image, indices, whole), None if mask is None else split_mask(mask, indices, whole)


class BucketResize:
    """Images (and masks) scaled and centre-cropped into sd-scripts' aspect-ratio buckets."""

    CATEGORY = CATEGORY
    FUNCTION = "resize"
    RETURN_TYPES = ("IMAGE", "MASK", PAGE_TYPE, "STRING")
    RETURN_NAMES = ("image", "mask", "page", "buckets")
    DESCRIPTION = (
        "Puts each image in the bucket kohya's sd-scripts would: sizes of about width x height "
        "pixels, sides in steps of `step` between min_side and max_side; each image is scaled to "
        "cover its bucket and centre-cropped, its mask with it (no_upscale: only ever scaled "
        "down). With a dataset page wired, each image is resized from its own size and the page "
        "follows, so Dataset Save names and saves them. buckets lists each image's bucket, one "
        "per line; the node shows how many images went to each."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        side = {"min": 64, "max": 8192, "step": 64}
        return {
            "required": {
                "image": ("IMAGE",),
                "width": ("INT", {"default": 1024, **side}),
                "height": ("INT", {"default": 1024, **side}),
                "step": ("INT", {"default": 64, "min": 8, "max": 512, "step": 8}),
                "min_side": ("INT", {"default": 256, **side}),
                "max_side": ("INT", {"default": 1024, **side}),
                "no_upscale": ("BOOLEAN", {"default": False}),
                "method": (list(METHODS), {"default": METHODS[0], "tooltip": "auto: area to scale down, bicubic up"}),
            },
            "optional": {"mask": ("MASK",), "page": (PAGE_TYPE,)},
        }

    def resize(
        self,
        image: torch.Tensor,
        width: int,
        height: int,
        step: int,
        min_side: int,
        max_side: int,
        no_upscale: bool,
        method: str,
        mask: torch.Tensor | None = None,
        page: Page | None = None,
    ) -> dict:
        rules = BucketRules(width, height, step, min_side, max_side, no_upscale)
        done = bucket_resize(image, mask, page, rules, method)
        counts = BucketCounts(dict(sorted(Counter(done.buckets).items())), too_small=0)
        lines = [f"{len(done.buckets)} images in {len(counts.counts)} buckets"]
        ui = _ui("buckets", lines, [], bucket_rows(counts))
        page_out = done.page if done.page is not None else adapter.blocker()
        return {"ui": ui, "result": (done.image, done.mask, page_out, "\n".join(done.labels))}


class DatasetSave:
    """Writes a page's images, captions and masks into a folder as a trainer reads it."""

    CATEGORY = CATEGORY
    FUNCTION = "save"
    OUTPUT_NODE = True
    RETURN_TYPES = ()
    DESCRIPTION = (
        "Saves each image of the page into folder under its source name (sub/cat_001): the "
        "original file's bytes when its pixels are unchanged, else a PNG (16-bit when the image "
        "holds more than 8 bits); its caption as <name>.txt (as edited at the gate); with "
        "masks, its mask as <name>-masklabel.png (OneTrainer); with metadata, a metadata.jsonl "
        "(file_name, text). Wire a gate's decisions and a route to save that route's images of "
        "the page. A name collision, a name leaving the folder, or a file already there (without "
        "overwrite) is refused before anything is written; every file is written atomically."
    )

    @classmethod
    def INPUT_TYPES(cls) -> dict[str, Any]:
        return {
            "required": {
                "image": ("IMAGE",),
                "page": (PAGE_TYPE,),
                "folder": ("STRING", {"default": "", "tooltip": "the output folder (created if missing)"}),
            },
            "optional": {
                "decisions": (DECISIONS_TYPE, {"tooltip": "a gate's decisions: save the images of `route`"}),
                "route": ("INT", {"default": 1, "min": 1, "max": MAX_ROUTES}),
                "mask": ("MASK",),
                "captions": (CAPTIONS_TYPE, {"tooltip": "captions to write instead of the page's"}),
                "masks": ("BOOLEAN", {"default": False, "tooltip": "write each mask as <name>-masklabel.png"}),
                "metadata": ("BOOLEAN", {"default": False, "tooltip": "write metadata.jsonl (file_name, text)"}),
                "overwrite": ("BOOLEAN", {"default": False}),
            },
        }

    def save(
        self,
        image: torch.Tensor,
        page: Page,
        folder: str,
        decisions: Decisions | None = None,
        route: int = 1,
        mask: torch.Tensor | None = None,
        captions: list[str] | None = None,
        masks: bool = False,
        metadata: bool = False,
        overwrite: bool = False,
    ) -> dict:
        if not isinstance(page, Page):
            raise ValueError("page must come from a Dataset Load node")
        routed = _one_route(page, decisions, route, image, mask)
        out = Roots.from_env().check(folder.strip(), "write")
        if routed is None:
            return {"ui": _ui(str(out), [f"no image went down route {route}: nothing to save"])}
        part, image, mask = routed
        items = page_items(part, image, mask, captions)
        try:
            done = save(out, items, overwrite=overwrite, masks=masks, metadata=metadata)
        except DatasetError as exc:  # the gate has journaled these files: say how to save them again
            raise ValueError(
                f"{exc}. Nothing was saved; these files are decided in the dataset's journal, so a Dataset Load"
                " with show = route (their route) loads them again to save"
            ) from None
        lines = [
            f"saved {len(items)} images to {out}: {len(done.copied)} as their original files,"
            f" {len(done.encoded)} as PNG; {len(done.files)} files in all",
            *done.notes,
        ]
        return {"ui": _ui(str(out), lines)}


NODE_CLASS_MAPPINGS = {
    "DatasetGatesDatasetLoad": DatasetLoad,
    "DatasetGatesBucketResize": BucketResize,
    "DatasetGatesDatasetSave": DatasetSave,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "DatasetGatesDatasetLoad": "Dataset Load (Dataset Gates)",
    "DatasetGatesBucketResize": "Bucket Resize (Dataset Gates)",
    "DatasetGatesDatasetSave": "Dataset Save (Dataset Gates)",
}
