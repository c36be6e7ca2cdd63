"""A page: the few images of a dataset one run works on, as one batch, and the way back out.

Mixed sizes are normal in a dataset, and ComfyUI's IMAGE is one tensor [B,H,W,C]. The two
ways to carry images of different sizes are ComfyUI's list semantics (OUTPUT_IS_LIST: every
node downstream runs once per image, and so would the gate, which means N pauses instead of
one page) and padding. A page pads: every image goes top-left into one batch the size of its
largest height and width, the rest zeros, its mask likewise, and the Page keeps each item's
own size, so `crop_back` returns exactly the pixels that came in. Nothing is ever resampled;
the gate shows one grid and waits once. Items that failed to load are not in the batch: they
are the page's `failed` rows, with their reason.

A Page is plain data (`to_json` / `from_json`), so it can travel between ComfyUI nodes as a
custom type and be written in a slot's meta.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from .captions import read_caption
from .decode import Decoded, coverage_to_mask, decode_files, levels_to_float, parallel
from .errors import DatasetError, FileError
from .journal import Decision
from .scan import Entry

Show = Literal["all", "undecided", "route", "uncaptioned"]
SHOWS: tuple[Show, ...] = ("all", "undecided", "route", "uncaptioned")
PAGE_FORMAT = 1
MAX_BATCH_BYTES = 4 << 30


def select(
    entries: Sequence[Entry],
    decisions: Mapping[str, Decision],
    show: Show = "all",
    *,
    route: int | None = None,
    held: Collection[str] = (),
) -> list[Entry]:
    """The entries a filter keeps, in listing order.

    Args:
        entries: a listing's entries (`Listing.entries`).
        decisions: the journal's decisions by path (`Journal.decisions()`).
        show: "all"; "undecided" (no decision yet); "route" (decided as `route`);
            "uncaptioned" (no caption file and no caption edited at a gate).
        route: the route for show="route".
        held: paths another run has claimed (`Journal.held_by_others(owner)`); left out
            unless show is "all", so two tabs never get the same undecided file.

    Returns:
        The kept entries.

    Raises:
        DatasetError: an unknown `show`, or show="route" without a route.
    """
    if show not in SHOWS:
        raise DatasetError(f"unknown filter {show}: use one of {', '.join(SHOWS)}")
    if show == "route" and (route is None or isinstance(route, bool) or not isinstance(route, int)):
        raise DatasetError("the route filter needs a route number")
    if show == "all":
        return list(entries)

    def keep(e: Entry) -> bool:
        if e.rel in held:
            return False
        decided = decisions.get(e.rel)
        if show == "undecided":
            return decided is None
        if show == "route":
            return decided is not None and decided.route == route
        return e.caption is None and (decided is None or decided.caption is None)

    return [e for e in entries if keep(e)]


@dataclass(frozen=True)
class Loaded:
    """One entry read for a page: its pixels or why they could not be read, and its caption.

    Attributes:
        entry: the listing's entry.
        decoded: the image, or None when it failed (then `error` says why).
        error: why the image is not on the page.
        caption: the caption text, None without a caption file (or when it failed).
        caption_error: why the caption file could not be read (the image still loads).
    """

    entry: Entry
    decoded: Decoded | None
    error: str | None = None
    caption: str | None = None
    caption_error: str | None = None


def load(root: Path, entries: Sequence[Entry], *, workers: int | None = None) -> list[Loaded]:
    """Read the images, masks and captions of `entries` in parallel (see `decode.decode_files`).

    Args:
        root: the listing's root.
        entries: the page's entries, e.g. `select(...)[start : start + size]`.
        workers: decoding threads; default one per CPU.

    Returns:
        One Loaded per entry, in order; failures are rows, never exceptions.
    """
    results = decode_files(root, [(e.rel, e.mask) for e in entries], workers=workers)
    loaded = []
    for entry, result in zip(entries, results):
        caption, caption_error = None, None
        if entry.caption is not None:
            try:
                caption = read_caption(root, entry.caption)
            except FileError as exc:
                caption_error = str(exc)
        if isinstance(result, FileError):
            loaded.append(Loaded(entry, None, str(result), caption, caption_error))
        else:
            loaded.append(Loaded(entry, result, None, caption, caption_error))
    return loaded


@dataclass(frozen=True)
class PageItem:
    """One image of a page, at its place in the batch.

    Attributes:
        rel: its path inside the dataset ("sub/cat_001.png").
        stem: its name without the extension.
        height, width: its own size; the batch may be bigger (padding).
        bits: 8 or 16, the file's bits per channel.
        caption: its caption text, or None.
        caption_file: its caption file's path inside the dataset, or None.
        caption_error: why its caption file could not be read, or None.
        mask_source: "alpha", "masklabel" or "none".
        pixel_digest: digest of its decoded pixels (`decode.pixel_digest`).
        file_digest: xxh3-128 of the file's bytes that were decoded.
        file_size: their length.
    """

    rel: str
    stem: str
    height: int
    width: int
    bits: int
    caption: str | None
    caption_file: str | None
    caption_error: str | None
    mask_source: str
    pixel_digest: str
    file_digest: str
    file_size: int

    @property
    def name(self) -> str:
        """Its path without the extension ("sub/cat_001"): what a save names its files after."""
        return self.rel[: len(self.rel) - len(Path(self.rel).suffix)]


@dataclass(frozen=True)
class Failed:
    """An entry of the page that is not in the batch, and why (one error row)."""

    rel: str
    error: str


@dataclass(frozen=True)
class Page:
    """What a page holds besides its tensors.

    Attributes:
        root: the dataset folder, resolved.
        items: the images in batch order: `items[i]` is batch index i.
        failed: the entries that could not be loaded.
        height, width: the batch's size (the largest item's height and width).
        show: the filter the page was chosen by; a gate redoes earlier decisions only on a
            page not chosen as "undecided" (one a person asked to review again).
        owner: the run that claimed its files (`owner.process_owner`), "" for none; a gate
            decides as this owner, so its claims count as its own.
    """

    root: str
    items: tuple[PageItem, ...]
    failed: tuple[Failed, ...] = ()
    height: int = 0
    width: int = 0
    show: str = "all"
    owner: str = ""

    def take(self, indices: Sequence[int]) -> Page:
        """The page of the batch images at `indices` (e.g. those a gate sent down one route),
        with the same batch size, as `image[indices]` keeps it; `failed` stays with the page
        that loaded them."""
        return replace(self, items=tuple(self.items[i] for i in indices), failed=())

    def with_captions(self, captions: Sequence[str | None]) -> Page:
        """The page with `captions[i]` as item i's caption (as a gate's answer left them)."""
        if len(captions) != len(self.items):
            raise DatasetError(f"{len(captions)} captions for a page of {len(self.items)} images")
        return replace(self, items=tuple(replace(item, caption=c) for item, c in zip(self.items, captions)))

    def to_json(self) -> dict[str, Any]:
        """The page as JSON-ready data."""
        return {"format": PAGE_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Page:
        """A page from `to_json`'s data; DatasetError when it is not one (wrong types, fields)."""
        try:
            if data.get("format") != PAGE_FORMAT:
                raise TypeError("format")
            items = tuple(PageItem(**_typed(PageItem, item)) for item in data["items"])
            failed = tuple(Failed(**_typed(Failed, row)) for row in data["failed"])
            root, height, width = data["root"], data["height"], data["width"]
            show, owner = data.get("show", "all"), data.get("owner", "")
            if not all(isinstance(t, str) for t in (root, show, owner)) or not all(_is_int(n) for n in (height, width)):
                raise TypeError("page")
        except (TypeError, KeyError, AttributeError):
            raise DatasetError("not a dataset page (written by another version, or damaged)") from None
        return cls(root, items, failed, height, width, show, owner)


# The JSON types of each field (the annotations are strings under `from __future__ import annotations`).
_JSON_TYPES: dict[str, tuple[type, ...]] = {"str": (str,), "int": (int,), "str | None": (str, type(None))}


def _typed(kind: type, data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` as keyword arguments of the dataclass `kind`: every field there, of its type, no other."""
    if not isinstance(data, Mapping) or set(data) != {f.name for f in fields(kind)}:
        raise TypeError(kind.__name__)
    for f in fields(kind):
        value = data[f.name]
        if not isinstance(value, _JSON_TYPES[str(f.type)]) or isinstance(value, bool):
            raise TypeError(f.name)
    return dict(data)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def assemble(
    loaded: Sequence[Loaded], root: str | Path, *, workers: int | None = None, max_bytes: int = MAX_BATCH_BYTES
) -> tuple[torch.Tensor, torch.Tensor, Page]:
    """Pad the loaded images into one batch, their masks into another, and describe them.

    Padding costs memory: one 4096x4096 image among fifteen small ones pads all sixteen to
    4096x4096 (1 GiB with the masks), so a batch over `max_bytes` is refused, not allocated.

    Args:
        loaded: `load`'s results; failed ones become the page's `failed` rows.
        root: the dataset folder (the listing's root).
        workers: converting threads; default one per CPU.
        max_bytes: the most the image and mask batches may take together.

    Returns:
        (image, mask, page): float32 [N,H,W,3] and [N,H,W] with H, W the largest height and
        width of the page, each item top-left and zeros around it (a mask is 0, "not masked",
        where its image has no alpha and no masklabel); the Page, `items[i]` for batch index i.

    Raises:
        DatasetError: no image of `loaded` could be read (a batch needs one), or the padded
            batch would take more than `max_bytes` (load fewer images, or images more alike, a page).
    """
    good = [item for item in loaded if item.decoded is not None]
    failed = tuple(Failed(item.entry.rel, item.error or "could not be read") for item in loaded if item.decoded is None)
    if not good:
        raise DatasetError("no image of this page could be read: " + "; ".join(f.error for f in failed))
    decoded = [item.decoded for item in good if item.decoded is not None]
    height, width = max(d.height for d in decoded), max(d.width for d in decoded)
    size = len(decoded) * height * width * 4 * 4  # float32 RGB and mask
    if size > max_bytes:
        raise DatasetError(
            f"this page pads {len(decoded)} images to {width}x{height}: {size / 2**30:.1f} GiB with the masks,"
            f" over the limit of {max_bytes / 2**30:.1f} GiB; load fewer images, or images more alike, a page"
        )
    # numpy's zeros: fresh pages the kernel zeroes as they are first touched, so the padding
    # costs nothing and no byte is written twice (torch.empty + writing the padding took
    # twice as long for 16 1024x1024 images on two cores: fresh memory is mostly page faults)
    image_np = np.zeros((len(decoded), height, width, 3), np.float32)
    mask_np = np.zeros((len(decoded), height, width), np.float32)

    def fill(i: int) -> None:
        d = decoded[i]
        levels_to_float(d.rgb, image_np[i, : d.height, : d.width])
        if d.coverage is not None:
            coverage_to_mask(d.coverage, mask_np[i, : d.height, : d.width])

    parallel(fill, range(len(decoded)), workers)
    items = tuple(_item(item) for item in good)
    return torch.from_numpy(image_np), torch.from_numpy(mask_np), Page(str(root), items, failed, height, width)


def _item(loaded: Loaded) -> PageItem:
    d = loaded.decoded
    assert d is not None
    e = loaded.entry
    return PageItem(
        e.rel,
        e.stem,
        d.height,
        d.width,
        d.bits,
        loaded.caption,
        e.caption,
        loaded.caption_error,
        d.mask_source,
        d.pixel_digest,
        d.file_digest,
        d.file_size,
    )


def crop_back(tensor: torch.Tensor, item: PageItem) -> torch.Tensor:
    """One item's own pixels out of the page's padded batch, exactly as they were loaded.

    Args:
        tensor: the item's slice of an IMAGE [1,H,W,C] (`image[i : i + 1]`) or of a MASK [1,H,W],
            or the whole batch to crop every image of it to this item's size.
        item: `page.items[i]`.

    Returns:
        [B,h,w,C] or [B,h,w] with h, w the item's size: a view, no copy.

    Raises:
        DatasetError: the tensor is smaller than the item (it was resized after loading).
    """
    if tensor.dim() not in (3, 4):
        raise DatasetError("crop_back takes an IMAGE [B,H,W,C] or a MASK [B,H,W]")
    h, w = int(tensor.shape[1]), int(tensor.shape[2])
    if h < item.height or w < item.width:
        raise DatasetError(
            f"{item.rel} is {item.width}x{item.height} but the batch is {w}x{h}: it was resized after the page loaded"
        )
    return tensor[:, : item.height, : item.width]
