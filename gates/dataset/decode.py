"""Decoding one dataset image to exact pixels, and a page of them on a thread pool.

What a file becomes:
- The image: its stored levels (uint8, or uint16 for a 16-bit PNG) as RGB, grey repeated to
  three channels, with the EXIF orientation applied as Pillow's `ImageOps.exif_transpose`
  would (a phone's portrait JPEG comes out upright). As a tensor: float32 [1,H,W,3], v/255 or
  v/65535, bit for bit what ComfyUI's LoadImage computes for an 8-bit file; a 16-bit PNG keeps
  its 16 bits (LoadImage would cut them to 8).
- The mask, ComfyUI's convention everywhere: 1 = masked. From alpha, `mask = 1 - alpha`
  (LoadImage's formula), the image keeping only its RGB. From OneTrainer's
  `<stem>-masklabel.png`, where white means "train on this", `mask = 1 - masklabel`: the same
  meaning as alpha, where what is opaque is the subject kohya's `alpha_mask` trains on. So
  whatever its source, mask 0 is "train here" and mask 1 is "left out", a cut-out PNG and its
  masklabel give the same mask, and no mask at all (zeros) is an all-white masklabel, which
  trains on everything, as OneTrainer does without one. A masklabel, when there is one, wins
  over alpha. It must be the image's size: a mask is never resampled.

Every failure is a FileError naming the file: gone, a link, too big, more pixels than the
limit (refused from the header, before decoding: decompression bombs), not an image,
truncated (checked on the bytes, so a process where another node set Pillow's
LOAD_TRUNCATED_IMAGES still refuses a half file) or damaged.
"""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

import numpy as np
import torch
import xxhash
from PIL import Image

from .. import images
from .errors import FileError
from .files import read_file

MaskSource = Literal["alpha", "masklabel", "none"]
FORMATS = ("PNG", "JPEG", "WEBP")
MAX_FILE_BYTES = 256 << 20
MAX_PIXELS = images.MAX_DECODE_PIXELS
_ORIENTATION = 0x0112
_T = TypeVar("_T")
_R = TypeVar("_R")


@dataclass(frozen=True, eq=False)
class Decoded:
    """One image file, decoded.

    Attributes:
        rel: the image's path inside the dataset.
        rgb: its levels [H,W,3], uint8 or uint16, upright.
        coverage: the levels the mask comes from [H,W] (alpha, or the masklabel's grey, where
            the maximum means "keep, train on it"), or None when there is neither.
        mask_source: "alpha", "masklabel" or "none".
        pixel_digest: `pixel_digest(rgb)`: a save compares it to tell unchanged pixels.
        file_digest: xxh3-128 of the file's bytes as they were read and decoded.
        file_size: their length.
    """

    rel: str
    rgb: np.ndarray
    coverage: np.ndarray | None
    mask_source: MaskSource
    pixel_digest: str
    file_digest: str
    file_size: int

    @property
    def height(self) -> int:
        return int(self.rgb.shape[0])

    @property
    def width(self) -> int:
        return int(self.rgb.shape[1])

    @property
    def bits(self) -> int:
        """8 or 16: the image's bits per channel."""
        return 16 if self.rgb.dtype == np.uint16 else 8

    def image(self) -> torch.Tensor:
        """The image as ComfyUI's IMAGE: float32 [1,H,W,3] in 0..1."""
        out = np.empty((self.height, self.width, 3), np.float32)
        levels_to_float(self.rgb, out)
        return torch.from_numpy(out)[None]

    def mask(self) -> torch.Tensor | None:
        """The mask as ComfyUI's MASK: float32 [1,H,W], 1 = masked; None without alpha or masklabel."""
        if self.coverage is None:
            return None
        out = np.empty((self.height, self.width), np.float32)
        coverage_to_mask(self.coverage, out)
        return torch.from_numpy(out)[None]


def levels_to_float(levels: np.ndarray, out: np.ndarray) -> None:
    """Write `levels / max level` as float32 into `out` (a view of a batch is fine), in one pass.

    The same float32 division as LoadImage's `np.array(img).astype(np.float32) / 255.0`.
    """
    np.divide(levels, _top(levels), out=out, dtype=np.float32)


def coverage_to_mask(coverage: np.ndarray, out: np.ndarray) -> None:
    """Write `1 - coverage / max level` as float32 into `out`: LoadImage's `1. - alpha`."""
    np.divide(coverage, _top(coverage), out=out, dtype=np.float32)
    np.subtract(np.float32(1.0), out, out=out)


def _top(levels: np.ndarray) -> float:
    return 65535.0 if levels.dtype == np.uint16 else 255.0


def pixel_digest(rgb: np.ndarray) -> str:
    """xxh3-128 of RGB levels [H,W,3] with their shape and depth: equal digests, equal pixels."""
    arr = np.ascontiguousarray(rgb)
    head = f"{arr.dtype.str}:{arr.shape[0]}x{arr.shape[1]}x{arr.shape[2]}:".encode()
    h = xxhash.xxh3_128(head)
    h.update(arr.data.cast("B"))
    return h.hexdigest()


def decode_file(
    root: Path,
    rel: str,
    mask_rel: str | None = None,
    *,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_FILE_BYTES,
) -> Decoded:
    """Decode the image `rel` inside the dataset folder `root`, and its masklabel if given.

    Args:
        root: the dataset folder, resolved.
        rel: the image's path inside it (an `Entry.rel`).
        mask_rel: its OneTrainer masklabel (an `Entry.mask`), or None.
        max_pixels: an image (or mask) whose header claims more pixels is refused undecoded.
        max_bytes: a bigger file is refused unread.

    Returns:
        The Decoded image.

    Raises:
        FileError: the image or its mask cannot be used; the message says which and why.
    """
    data = read_file(root, rel, max_bytes)
    levels = _levels(data, rel, max_pixels, FORMATS)
    rgb = np.ascontiguousarray(np.repeat(levels[:, :, :1], 3, axis=2) if levels.shape[2] <= 2 else levels[:, :, :3])
    coverage = np.ascontiguousarray(levels[:, :, -1]) if levels.shape[2] in (2, 4) else None
    source: MaskSource = "none" if coverage is None else "alpha"
    if mask_rel is not None:
        coverage, source = _masklabel(root, mask_rel, rgb.shape[:2], max_pixels, max_bytes), "masklabel"
    return Decoded(rel, rgb, coverage, source, pixel_digest(rgb), xxhash.xxh3_128_hexdigest(data), len(data))


def decode_files(
    root: Path,
    jobs: Sequence[tuple[str, str | None]],
    *,
    workers: int | None = None,
    max_pixels: int = MAX_PIXELS,
    max_bytes: int = MAX_FILE_BYTES,
) -> list[Decoded | FileError]:
    """Decode many files at once: `decode_file` for each (image, masklabel) pair, in parallel.

    Pillow and numpy release the GIL while they work, so threads decode side by side.

    Args:
        root: the dataset folder, resolved.
        jobs: (image path, masklabel path or None) for each file, e.g. from `Entry.rel, Entry.mask`.
        workers: threads to use; default one per CPU, at most one per file.

    Returns:
        For each job, in order, its Decoded or the FileError that stopped it.
    """

    def one(job: tuple[str, str | None]) -> Decoded | FileError:
        try:
            return decode_file(root, job[0], job[1], max_pixels=max_pixels, max_bytes=max_bytes)
        except FileError as exc:
            return exc

    return parallel(one, jobs, workers)


def parallel(fn: Callable[[_T], _R], items: Sequence[_T], workers: int | None = None) -> list[_R]:
    """`[fn(x) for x in items]` on a pool of threads (one per CPU by default), in order."""
    count = min(len(items), workers or os.cpu_count() or 1)
    if count <= 1:
        return [fn(x) for x in items]
    with ThreadPoolExecutor(max_workers=count, thread_name_prefix="dataset-decode") as pool:
        return list(pool.map(fn, items))


def _levels(data: bytes, rel: str, max_pixels: int, formats: tuple[str, ...]) -> np.ndarray:
    """The file's levels [H,W,planes], upright; FileError naming `rel` for any failure."""
    _check_complete(data, rel)
    try:
        levels = images.decode_levels(data, max_pixels, formats)
    except images.TooManyPixels as exc:
        size = f"is {exc.width}x{exc.height} pixels" if exc.width else "claims more pixels than that"
        raise FileError(f"{rel} {size}, over the limit of {max_pixels:,} pixels") from None
    except images.UnreadableImage:
        raise FileError(f"{rel} is not a {', '.join(formats)} image, or its header is damaged") from None
    except MemoryError:
        raise FileError(f"{rel} needs more memory to decode than is free") from None
    except Exception as exc:  # decoders raise many types for damaged data
        raise FileError(f"{rel} is damaged ({_plain(exc)})") from None
    return orient(levels, _orientation(data))


def _plain(exc: Exception) -> str:
    """The decoder's reason, unless it holds a Python repr or a path (then only its kind)."""
    text = str(exc)
    return "the decoder stopped" if not text or "<" in text or os.sep in text else text


def _check_complete(data: bytes, rel: str) -> None:
    """Refuse a file cut short, from its own structure: a PNG needs its IEND chunk, a JPEG an
    end-of-image marker after its first scan began (one before it is an EXIF thumbnail's), a
    WebP the length its RIFF header states."""
    if not data:
        raise FileError(f"{rel} is empty")
    complete = True
    if data.startswith(images.PNG_SIGNATURE):
        complete = _png_chunk(data, b"IEND") is not None
    elif data.startswith(b"\xff\xd8"):  # no end marker can stand inside a scan's data (0xFF is escaped)
        complete = data.rfind(b"\xff\xd9") > data.find(b"\xff\xda") > 0
    elif data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        complete = len(data) >= 8 + struct.unpack_from("<I", data, 4)[0]
    if not complete:
        raise FileError(f"{rel} is truncated (its end is missing)")


def _png_chunk(data: bytes, kind: bytes) -> bytes | None:
    """The data of the first `kind` chunk of a PNG, or None if the file ends before it (or IEND)."""
    pos = len(images.PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length, found = struct.unpack_from(">I4s", data, pos)
        end = pos + 12 + length
        if end > len(data):
            return None
        if found == kind:
            return data[pos + 8 : pos + 8 + length]
        if found == b"IEND":
            return None
        pos = end
    return None


def _orientation(data: bytes) -> int:
    """The EXIF orientation (1-8) of a file; 1 when it has none or it is unreadable."""
    try:
        if data.startswith(images.PNG_SIGNATURE):
            exif = Image.Exif()
            raw = _png_chunk(data, b"eXIf")
            if raw is not None:
                exif.load(raw)
        else:
            with Image.open(io.BytesIO(data)) as img:
                exif = img.getexif()
        value = exif.get(_ORIENTATION, 1)
    except Exception:  # a damaged EXIF block leaves the image as stored, as Pillow does
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def orient(levels: np.ndarray, orientation: int) -> np.ndarray:
    """`levels` [H,W,...] turned upright for an EXIF orientation, as `ImageOps.exif_transpose` does.

    Returns a view (no copy); orientation 1 or an unknown value returns `levels` itself.
    """
    if orientation == 2:
        return np.flip(levels, 1)
    if orientation == 3:
        return np.flip(levels, (0, 1))
    if orientation == 4:
        return np.flip(levels, 0)
    if orientation == 5:
        return np.swapaxes(levels, 0, 1)
    if orientation == 6:
        return np.flip(np.swapaxes(levels, 0, 1), 1)
    if orientation == 7:
        return np.swapaxes(np.flip(levels, (0, 1)), 0, 1)
    if orientation == 8:
        return np.flip(np.swapaxes(levels, 0, 1), 0)
    return levels


def _masklabel(root: Path, rel: str, size: tuple[int, ...], max_pixels: int, max_bytes: int) -> np.ndarray:
    """A masklabel's grey levels [H,W] (colour by its luma, as Pillow's convert("L")), which
    must be exactly `size`."""
    levels = _levels(read_file(root, rel, max_bytes), rel, max_pixels, ("PNG",))
    if levels.shape[2] >= 3:  # ITU-R 601 luma in 16-bit fixed point, Pillow's formula
        wide = levels[:, :, :3].astype(np.uint64)
        grey = (wide[:, :, 0] * 19595 + wide[:, :, 1] * 38470 + wide[:, :, 2] * 7471 + 0x8000) >> 16
        levels = grey.astype(levels.dtype)[:, :, None]
    if tuple(levels.shape[:2]) != tuple(size):
        raise FileError(
            f"{rel} is {levels.shape[1]}x{levels.shape[0]} pixels, its image {size[1]}x{size[0]}:"
            " a mask must be the image's size"
        )
    return np.ascontiguousarray(levels[:, :, 0])
