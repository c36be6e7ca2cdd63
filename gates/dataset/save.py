"""Writing curated images into a folder as a trainer reads it.

For each item, named after its source (`sub/cat_001` writes `sub/cat_001.*`):
- the image: the original file's bytes when its pixels are unchanged (the tensor gives back
  exactly the levels the file decoded to, and the file still holds the bytes that were
  decoded), so a JPEG stays that JPEG; else a PNG, 8-bit when 8 bits hold the tensor exactly,
  16-bit when it holds more;
- its caption as `<name>.txt`, UTF-8 without BOM, exactly the text given (none when None);
- with `masks`, its mask as OneTrainer's `<name>-masklabel.png`: masklabel = 1 - mask (see
  `decode`: white is what the trainer learns);
- with `metadata`, a `metadata.jsonl` beside them, one {"file_name", "text"} line per image:
  the Hugging Face imagefolder layout that diffusers' training scripts read. (sd-scripts
  itself reads the `.txt` beside each image; its own fine-tuning metadata is one JSON object
  its scripts build from those `.txt` files.)

Everything is planned and checked before the first byte is written, and a refusal lists all
its reasons: a name that leaves the folder or that Windows cannot store, two items with one
name (case-insensitively: the trainer may run on Windows or macOS), a file already there
without `overwrite`, another image of the same name beside the new one (the trainer would read
both), or the output folder being the dataset folder the items were read from. Then each file
is written to a temp file, fsync'd, and all are swapped into place (`atomic_write`), under a
lock on the output folder.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import xxhash

from .. import images
from ..bus.local.atomic import atomic_write, fsync_dir
from ..bus.local.safe_files import UnsafeFile, ensure_real_dir
from .captions import MAX_CAPTION_BYTES
from .decode import MAX_FILE_BYTES, coverage_to_mask, levels_to_float, pixel_digest
from .errors import DatasetError, FileError, SaveRefused
from .files import read_file
from .locks import held
from .names import check_portable, split_rel
from .page import Page, PageItem, crop_back
from .scan import IMAGE_EXTENSIONS, MASK_SUFFIX

METADATA_NAME = "metadata.jsonl"
MAX_METADATA_BYTES = 64 << 20


@dataclass(frozen=True)
class Source:
    """The dataset file an image was loaded from, as a page recorded it.

    Attributes:
        root: the dataset folder.
        rel: the file's path inside it.
        pixel_digest, file_digest, bits: the page item's (see `PageItem`).
    """

    root: str
    rel: str
    pixel_digest: str
    file_digest: str
    bits: int

    @classmethod
    def of(cls, page: Page, item: PageItem) -> Source:
        """The source of one of `page`'s items."""
        return cls(page.root, item.rel, item.pixel_digest, item.file_digest, item.bits)


@dataclass(frozen=True, eq=False)
class SaveItem:
    """One image to save.

    Attributes:
        name: its path in the output folder without the extension ("sub/cat_001"); a page
            item's `name`.
        image: [H,W,3] or [1,H,W,3], float in 0..1 (a page item's pixels: `crop_back`).
        caption: the caption to write beside it, or None for no caption file.
        mask: [H,W] or [1,H,W] in 0..1, 1 = masked, or None.
        source: where it was loaded from, so unchanged pixels are saved as the original file.
    """

    name: str
    image: torch.Tensor
    caption: str | None = None
    mask: torch.Tensor | None = None
    source: Source | None = None


@dataclass(frozen=True)
class Saved:
    """What a save wrote, paths relative to the output folder.

    Attributes:
        files: every file written (metadata.jsonl included).
        copied: the images written as their original file's bytes.
        encoded: the images encoded as PNG from their pixels.
        notes: what the person saving should know (a source file changed since it was loaded).
    """

    files: tuple[str, ...]
    copied: tuple[str, ...]
    encoded: tuple[str, ...]
    notes: tuple[str, ...]


@dataclass(frozen=True)
class _File:
    rel: str
    write: Callable[[str], object]  # writes the file's content to the temp path it is given


def save(
    folder: str | os.PathLike[str],
    items: Sequence[SaveItem],
    *,
    overwrite: bool = False,
    masks: bool = False,
    metadata: bool = False,
) -> Saved:
    """Write `items` into `folder` (created if missing) as a trainer reads it.

    Args:
        folder: the output folder (check it with `roots.Roots.check(folder, "write")` first
            where paths are limited).
        items: the images to write.
        overwrite: replace files already there instead of refusing.
        masks: write each item's mask as `<name>-masklabel.png` (an item without one gets none).
        metadata: add each image to `metadata.jsonl` ({"file_name", "text"}), replacing any
            earlier line for the same file.

    Returns:
        Saved: the files written.

    Raises:
        SaveRefused: before anything is written, with every reason found.
        DatasetError: writing failed (a full disk); every file is written to a temp file before
            any is swapped into place, so such a failure mostly leaves the folder as it was.
    """
    out = Path(os.path.realpath(folder))
    plan = _Plan(out)
    for item in items:
        plan.add(item, masks)
    if metadata and not plan.problems:
        plan.add_metadata(items)
    problems = plan.problems + _conflicts(out, plan.files, overwrite)
    if problems:
        raise SaveRefused(problems)
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out, os.O_RDONLY) if os.name != "nt" else -1
    try:
        with held(str(out), fd):
            problems = _conflicts(out, plan.files, overwrite)  # another save may have come first
            if problems:
                raise SaveRefused(problems)
            try:
                _write(out, plan.files)
            except (OSError, UnsafeFile) as exc:  # a full disk, a folder swapped for a link meanwhile
                raise DatasetError(f"saving failed: {getattr(exc, 'strerror', None) or exc}") from None
    finally:
        if fd >= 0:
            os.close(fd)
    return Saved(tuple(f.rel for f in plan.files), tuple(plan.copied), tuple(plan.encoded), tuple(plan.notes))


def page_items(
    page: Page, image: torch.Tensor, mask: torch.Tensor | None = None, captions: Sequence[str] | None = None
) -> list[SaveItem]:
    """The SaveItems of a page's batch: each item's own pixels (and mask) cut out of the padding,
    named and captioned after its source.

    Args:
        page: the page of `image` (its items in batch order).
        image: IMAGE [B,H,W,C], B the page's items.
        mask: MASK [B,H,W], or [1,H,W] shared by all; None for no masks.
        captions: one caption per item to write instead of the page's, or None.

    Raises:
        DatasetError: the batch, mask or captions do not match the page, or an image is smaller
            than its item (it was resized after the page loaded: resize with Bucket Resize, which
            keeps the page).
    """
    b = len(page.items)
    if int(image.shape[0]) != b:
        raise DatasetError(f"the page holds {b} images but the batch {int(image.shape[0])}")
    if mask is not None and (mask.dim() != 3 or int(mask.shape[0]) not in (1, b)):
        raise DatasetError(f"the mask must be [B,H,W] with B {b} or 1")
    if captions is not None and len(captions) not in (1, b):
        raise DatasetError(f"{len(captions)} captions for {b} images")
    items = []
    for i, item in enumerate(page.items):
        pixels = crop_back(image[i : i + 1], item)
        m = None if mask is None else crop_back(mask[min(i, int(mask.shape[0]) - 1)][None], item)
        caption = item.caption if captions is None else captions[min(i, len(captions) - 1)]
        items.append(SaveItem(item.name, pixels, caption, m, Source.of(page, item)))
    return items


class _Plan:
    """The files a save will write, decided and checked item by item, nothing written yet."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files: list[_File] = []
        self.copied: list[str] = []
        self.encoded: list[str] = []
        self.notes: list[str] = []
        self.problems: list[str] = []
        self._names: dict[str, str] = {}
        self._rels: dict[str, str] = {}
        self._images: dict[str, str] = {}  # name -> the image file's path

    def add(self, item: SaveItem, masks: bool) -> None:
        try:
            image, mask, caption = _checked(item, self.out)
        except DatasetError as exc:
            self.problems.append(str(exc))
            return
        other = self._names.get(item.name.casefold())
        if other is not None:
            same = (
                f"two items are named {item.name}"
                if other == item.name
                else f"{other} and {item.name} differ in case only"
            )
            self.problems.append(f"{same}: they would be saved as the same files")
            return
        self._names[item.name.casefold()] = item.name
        original = self._original(item, image)
        if original is not None and item.source is not None:
            rel = item.name + Path(item.source.rel).suffix
            self._file(rel, _bytes_writer(original))
            self.copied.append(rel)
        else:
            rel = item.name + ".png"
            levels = _levels(image.numpy(), lambda bits: images.to_uint(image, bits), levels_to_float)
            self._file(rel, _png_writer(levels))
            self.encoded.append(rel)
        self._images[item.name] = rel
        if caption is not None:
            self._file(item.name + ".txt", _bytes_writer(caption))
        if masks and mask is not None:
            self._file(item.name + MASK_SUFFIX, _png_writer(_masklabel_levels(mask)))

    def _file(self, rel: str, write: Callable[[str], object]) -> None:
        """Plan one file, refusing a second one of the same path (case-insensitively)."""
        other = self._rels.get(rel.casefold())
        if other is not None:
            self.problems.append(f"{other} and {rel} would be the same file")
        self._rels[rel.casefold()] = rel
        self.files.append(_File(rel, write))

    def _original(self, item: SaveItem, image: torch.Tensor) -> bytes | None:
        """The source file's bytes when `image` is exactly the pixels it decoded to and the file
        still holds the bytes decoded then; else None (then the image is encoded)."""
        src = item.source
        if src is None:
            return None
        levels = images.to_uint(image, src.bits)
        back = np.empty(levels.shape, np.float32)
        levels_to_float(levels, back)
        if not np.array_equal(back, image.numpy()) or pixel_digest(levels) != src.pixel_digest:
            return None  # edited: its pixels are saved
        try:
            data = read_file(Path(src.root), src.rel, MAX_FILE_BYTES)
        except FileError as exc:
            self.notes.append(f"{exc}: {item.name} was saved as PNG")
            return None
        if xxhash.xxh3_128_hexdigest(data) != src.file_digest:
            self.notes.append(f"{src.rel} changed on disk since it was loaded: {item.name} was saved as PNG")
            return None
        return data

    def add_metadata(self, items: Sequence[SaveItem]) -> None:
        """metadata.jsonl: the earlier lines for other files, then one line per image saved now."""
        try:
            kept = _metadata_lines(self.out, set(self._images.values()))
        except DatasetError as exc:
            self.problems.append(str(exc))
            return
        for item in items:
            line = {"file_name": self._images[item.name], "text": item.caption or ""}
            kept.append(json.dumps(line, ensure_ascii=False).encode("utf-8") + b"\n")
        self._file(METADATA_NAME, _bytes_writer(b"".join(kept)))


def _checked(item: SaveItem, out: Path) -> tuple[torch.Tensor, torch.Tensor | None, bytes | None]:
    """The item's image [H,W,3] and mask [H,W] as float32 on the CPU, and its caption's bytes;
    DatasetError for anything that cannot be saved as asked."""
    parts = split_rel(item.name)
    for part in parts:
        check_portable(part)
        if part.startswith("."):
            raise DatasetError(f"{item.name} is a hidden name")
    image = _tensor(item.image, 3, item.name)
    if image.shape[2] != 3:
        raise DatasetError(f"{item.name}: an image is RGB, [H,W,3]")
    mask = None if item.mask is None else _tensor(item.mask, 2, item.name)
    if mask is not None and mask.shape != image.shape[:2]:
        raise DatasetError(f"{item.name}: its mask is not the size of its image")
    caption = None
    if item.caption is not None:
        try:
            caption = item.caption.encode("utf-8")
        except (UnicodeEncodeError, AttributeError):
            raise DatasetError(f"{item.name}: its caption is not text that UTF-8 can hold") from None
        if len(caption) > MAX_CAPTION_BYTES:
            raise DatasetError(f"{item.name}: its caption is over {MAX_CAPTION_BYTES:,} bytes")
    if item.source is not None and Path(os.path.realpath(item.source.root)) == out:
        raise DatasetError("the output folder is the dataset folder the images were read from: choose another")
    return image, mask, caption


def _tensor(t: torch.Tensor, dims: int, name: str) -> torch.Tensor:
    """`t` as float32 on the CPU with `dims` dimensions (a leading batch of one dropped)."""
    if not isinstance(t, torch.Tensor) or not t.is_floating_point():
        raise DatasetError(f"{name}: an image or mask is a float tensor")
    if t.dim() == dims + 1 and t.shape[0] == 1:
        t = t[0]
    if t.dim() != dims or min(t.shape[:2]) < 1:
        raise DatasetError(f"{name}: expected {'[H,W,3]' if dims == 3 else '[H,W]'}, got {list(t.shape)}")
    return t.detach().to("cpu", torch.float32).contiguous()


def _levels(
    target: np.ndarray,
    quantize: Callable[[int], np.ndarray],
    back: Callable[[np.ndarray, np.ndarray], None],
) -> np.ndarray:
    """8-bit levels when they give `target` back exactly through `back`, else 16-bit levels."""
    eight = quantize(8)
    again = np.empty(target.shape, np.float32)
    back(eight, again)
    return eight if np.array_equal(again, target) else quantize(16)


def _masklabel_levels(mask: torch.Tensor) -> np.ndarray:
    """A masklabel's levels [H,W,1] for `mask` [H,W]: 1 - mask, 8-bit when that is exact."""
    kept = (1.0 - mask)[:, :, None]
    return _levels(mask.numpy()[:, :, None], lambda bits: images.to_uint(kept, bits), coverage_to_mask)


def _bytes_writer(data: bytes) -> Callable[[str], object]:
    return lambda tmp: Path(tmp).write_bytes(data)


def _png_writer(levels: np.ndarray) -> Callable[[str], object]:
    """Writes `levels` [H,W,C]: 8-bit with the fast encoder, 16-bit with pypng."""
    if levels.dtype == np.uint8:
        return _bytes_writer(images.encode_png(levels))
    return lambda tmp: images.write_levels(Path(tmp), levels)


def _metadata_lines(out: Path, replaced: set[str]) -> list[bytes]:
    """The lines of an existing metadata.jsonl, less those for `replaced` files."""
    try:
        data = read_file(out, METADATA_NAME, MAX_METADATA_BYTES)
    except FileError:
        if not os.path.lexists(out / METADATA_NAME):
            return []
        raise
    kept = []
    for number, line in enumerate(data.splitlines(keepends=True), 1):
        try:
            row = json.loads(line)
            name = row["file_name"]
        except (ValueError, TypeError, KeyError):
            raise DatasetError(f"{METADATA_NAME} line {number} is not a metadata row: fix or remove it") from None
        if name not in replaced:
            kept.append(line if line.endswith(b"\n") else line + b"\n")
    return kept


def _conflicts(out: Path, files: Sequence[_File], overwrite: bool) -> list[str]:
    """Why writing `files` into `out` would clobber or confuse what is there; [] when it would not."""
    problems = []
    if os.path.lexists(out) and not stat.S_ISDIR(os.stat(out).st_mode):
        return ["the output folder is a file"]
    listed: dict[Path, set[str]] = {}
    for f in files:
        target = out / f.rel
        for parent in reversed(target.relative_to(out).parents[:-1]):
            if os.path.lexists(out / parent) and not stat.S_ISDIR(os.lstat(out / parent).st_mode):
                problems.append(f"{parent.as_posix()} is a link or a file where a folder belongs")
        try:
            st = os.lstat(target)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            problems.append(f"{f.rel} cannot be checked ({exc.strerror})")
            continue
        if st is not None and stat.S_ISDIR(st.st_mode):
            problems.append(f"{f.rel} is a folder")
        elif st is not None and not overwrite and f.rel != METADATA_NAME:
            problems.append(f"{f.rel} exists (overwrite is off)")
        stem, ext = os.path.splitext(target.name)
        if ext.lower() in IMAGE_EXTENSIONS and not stem.lower().endswith(MASK_SUFFIX[:-4]):
            if target.parent not in listed:
                listed[target.parent] = set(os.listdir(target.parent)) if target.parent.is_dir() else set()
            for name in sorted(listed[target.parent]):
                other_stem, other_ext = os.path.splitext(name)
                if other_stem == stem and other_ext.lower() in IMAGE_EXTENSIONS and name != target.name:
                    problems.append(f"{name} is there already: a trainer would read it beside the new {target.name}")
    return list(dict.fromkeys(problems))


def _write(out: Path, files: Sequence[_File]) -> None:
    """Every file to a fsync'd temp file first, then all swapped into place, then the folders synced."""
    folders = sorted({(out / f.rel).parent for f in files})
    for folder in folders:
        for depth in range(len(folder.relative_to(out).parts)):
            ensure_real_dir(out.joinpath(*folder.relative_to(out).parts[: depth + 1]))
    with ExitStack() as stack:
        swaps = [stack.enter_context(atomic_write(out / f.rel, f.write)) for f in files]
        for swap in swaps:
            swap()
    for folder in folders:
        fsync_dir(folder)
