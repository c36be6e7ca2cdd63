"""Pixels in and out of PNG: thumbnails, previews, exports and uploaded masks.

Everything here is lossy by nature (8 or 16 bits per channel), so it is only ever used for
what a person looks at or asks to export; the bus itself never goes through PNG.
"""

from __future__ import annotations

import io
import math
import os
import struct
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from isal import isal_zlib
from PIL import Image

THUMB_SIDE = 256
STRIP_MAX = 4
# An uploaded mask or a file to import bigger than this is refused before it is decoded
# (decompression bombs: 500 KB of PNG can claim 13000x13000 pixels).
MAX_UPLOAD_PIXELS = 8192 * 8192
MAX_DECODE_PIXELS = 8192 * 8192
# A stored image bigger than this is not rendered. Smaller ones render band by band, so the
# memory a preview takes is about BAND_BYTES plus the downscaled result, whatever the size.
MAX_RENDER_PIXELS = 16384 * 16384
BAND_BYTES = 16 << 20
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def to_uint(image_hwc: torch.Tensor, bits: int = 8) -> np.ndarray:
    """Quantize one float image [H,W,C] in 0..1 to uint8 or uint16, rounding to nearest."""
    arr = _levels(image_hwc.detach().to("cpu", torch.float32, copy=True), (1 << bits) - 1)
    return arr.numpy().astype(np.uint8 if bits == 8 else np.uint16)


def _levels(scratch: torch.Tensor, top: int) -> torch.Tensor:
    """float32 `scratch` in 0..1 rounded to the nearest of 0..top, in place (NaN is 0)."""
    return scratch.nan_to_num_(0.0).clamp_(0.0, 1.0).mul_(top).round_()


def _fit(image_hwc: torch.Tensor, side: int, factor: int | None = None) -> torch.Tensor:
    """Box-average a big image down by a whole factor before it is quantized.

    Quantizing a 2048x2048 image only to shrink it to 256 px cost most of a publish. The
    result is between `side` and twice it, and Pillow's LANCZOS finishes the resize. A band
    of a bigger image passes the whole image's `factor`. The average adds strided views of
    the image, rows first, then columns: each pass streams memory in order, where avg_pool2d
    over a channels-last image took 10x as long (2048x2048 float32 on two cores: 6 ms
    against 60-110 ms).
    """
    h, w, c = (int(n) for n in image_hwc.shape)
    if factor is None:
        factor = _box_factor(h, w, side)
    if factor < 2:
        return image_hwc
    img = image_hwc.detach().to("cpu", torch.float32)[: h - h % factor, : w - w % factor]
    rows = torch.add(img[0::factor], img[1::factor])  # a new contiguous tensor: the input stays
    for i in range(2, factor):
        rows += img[i::factor]
    cells = rows.view(h // factor, w // factor, factor, c)
    out = torch.add(cells[:, :, 0], cells[:, :, 1])
    for j in range(2, factor):
        out += cells[:, :, j]
    return out.div_(factor * factor)


def _box_factor(height: int, width: int, side: int) -> int:
    """The whole factor that brings the long side down to between `side` and twice it, never
    more than the short side (a 1x3000 strip stays one pixel high)."""
    return max(1, min(max(height, width) // side, height, width))


_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _pil(pixels: np.ndarray) -> Image.Image:
    """A PIL image of uint8 [H,W,C] pixels (C 1..4), in the mode their channels make."""
    mode = _MODES[pixels.shape[2]]
    return Image.fromarray(pixels[:, :, 0] if mode == "L" else pixels, mode)


_COLOR_TYPES = {1: 0, 2: 4, 3: 2, 4: 6}  # PNG colour types: grey, grey + alpha, RGB, RGBA


def _chunk(kind: bytes, data: bytes) -> list[bytes]:
    return [struct.pack(">I", len(data)), kind, data, struct.pack(">I", isal_zlib.crc32(data, isal_zlib.crc32(kind)))]


def encode_png(pixels: np.ndarray) -> bytes:
    """An 8-bit PNG of uint8 `pixels` [H,W] or [H,W,C] (C 1..4), made for speed: a pause waits on it.

    Every row takes PNG's Up filter (its difference from the row above, one numpy pass) and
    ISA-L deflates the lot at level 1. Pillow's encoder tries each filter on each row and
    deflates with zlib: for a noisy 1024x1024 RGB image 120-135 ms of CPU against about
    10 ms here, at about the same size (thumbnails and previews are regenerated, not archived).
    """
    arr = pixels if pixels.ndim == 3 else pixels[:, :, None]
    h, w, c = arr.shape
    rows = np.ascontiguousarray(arr, dtype=np.uint8).reshape(h, w * c)
    filtered = np.empty((h, w * c + 1), dtype=np.uint8)
    filtered[:, 0] = 2  # Up; the row above the first one counts as zeros
    filtered[0, 1:] = rows[0]
    np.subtract(rows[1:], rows[:-1], out=filtered[1:, 1:])  # uint8: modulo 256, as PNG wants
    header = struct.pack(">IIBBBBB", w, h, 8, _COLOR_TYPES[c], 0, 0, 0)
    idat = isal_zlib.compress(filtered, 1)
    return b"".join([PNG_SIGNATURE, *_chunk(b"IHDR", header), *_chunk(b"IDAT", idat), *_chunk(b"IEND", b"")])


def png_bytes(img: Image.Image) -> bytes:
    """The PNG of a thumbnail or preview (8-bit L, LA, RGB or RGBA), by encode_png."""
    return encode_png(np.asarray(img))


def thumbnail(images: torch.Tensor, side: int = THUMB_SIDE, strip: int = STRIP_MAX) -> Image.Image:
    """A contact strip of the first `strip` images of a batch [B,H,W,C], long side <= `side`.

    Only the images shown are converted, so a 64-image bfloat16 batch costs no more than four.
    """
    shown = [_pil(to_uint(_fit(images[i], side))) for i in range(min(int(images.shape[0]), strip))]
    w, h = shown[0].size
    sheet = Image.new(shown[0].mode, (w * len(shown), h))
    for i, img in enumerate(shown):
        sheet.paste(img, (i * w, 0))
    sheet.thumbnail((side, side), Image.Resampling.LANCZOS)
    return sheet


RowReader = Callable[[int, int], torch.Tensor]


def preview_rows(read_rows: RowReader, height: int, width: int, channels: int, side: int = 1024) -> bytes:
    """PNG of an image read band by band (`read_rows(r0, r1)` -> [rows,W,C]), long side <= side.

    Each band is box-averaged as it arrives, exactly as `_fit` averages the whole image, and
    quantized into its rows of the 8-bit result, so a 16384x16384 float32 image previews in
    about BAND_BYTES of memory plus the result, and a pause waits on no needless copy.
    """
    if height * width > MAX_RENDER_PIXELS:
        raise ValueError(f"image of {width}x{height} pixels is over the render limit of {MAX_RENDER_PIXELS} pixels")
    factor = _box_factor(height, width, side)
    row_bytes = width * channels * 4  # as float32
    band = max(factor, BAND_BYTES // row_bytes // factor * factor)
    usable = height - height % factor
    pixels = np.empty((usable // factor, width // factor, channels), dtype=np.uint8)
    for r0 in range(0, usable, band):
        r1 = min(r0 + band, usable)
        rows = read_rows(r0, r1)
        part = _fit(rows, side, factor)
        if part is rows:  # not downscaled: the caller's tensor, left as it is
            part = part.to(torch.float32, copy=True)
        torch.from_numpy(pixels[r0 // factor : r1 // factor]).copy_(_levels(part, 255))
    if max(pixels.shape[:2]) > side:  # a whole factor left it up to twice too big
        img = _pil(pixels)
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
        pixels = np.asarray(img)
    return encode_png(pixels)


def preview(image_hwc: torch.Tensor, side: int = 1024) -> bytes:
    """PNG of one batch image in memory, downscaled so a paused gate never ships a full tensor."""
    h, w, c = (int(n) for n in image_hwc.shape)
    return preview_rows(lambda r0, r1: image_hwc[r0:r1], h, w, c, side)


def write_png(path: Path, image_hwc: torch.Tensor, bits: int = 8) -> None:
    """Export one image at 8 or 16 bits per channel."""
    write_levels(path, to_uint(image_hwc, bits))


def write_levels(path: Path, levels: np.ndarray) -> None:
    """A PNG of uint8 or uint16 levels [H,W,C] (C 1..4) at their own bit depth."""
    import png  # pypng, imported here because only exports need it: Pillow cannot write 16-bit RGB

    h, w, c = levels.shape
    bits = 16 if levels.dtype == np.uint16 else 8
    writer = png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=bits)
    with open(path, "wb") as f:
        writer.write(f, levels.reshape(h, w * c))


class UnreadableImage(ValueError):
    """Not an image of the formats asked for, or its header is damaged."""


class TooManyPixels(ValueError):
    """An image whose header claims more pixels than the limit (or none): refused undecoded.

    `width` and `height` are the header's, or 0 when Pillow refused the size before telling it.
    """

    def __init__(self, message: str, width: int, height: int) -> None:
        super().__init__(message)
        self.width, self.height = width, height


_FORMAT_NAMES = {"PNG": "PNG", "JPEG": "JPEG", "WEBP": "WebP"}


def _one_of(formats: tuple[str, ...]) -> str:
    """('PNG', 'JPEG', 'WEBP') -> 'PNG, JPEG or WebP'."""
    names = [_FORMAT_NAMES.get(f, f) for f in formats]
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


def _pixels(n: int) -> str:
    """A pixel limit as a person reads it: '8192x8192 pixels' for a square one."""
    side = math.isqrt(n)
    return f"{side}x{side} pixels" if side * side == n else f"{n} pixels"


def _open(f: BinaryIO, formats: tuple[str, ...], max_pixels: int, what: str) -> Image.Image:
    """Open without decoding, in one of `formats` only, refusing a pixel count over the limit.
    Messages start with `what` (the file as the person named it) and hold no Python repr."""
    try:
        img = Image.open(f, formats=list(formats))
        w, h = img.size
    except Image.DecompressionBombError:  # Pillow's own, far higher limit: the size is not given
        raise TooManyPixels(f"{what}: too many pixels, over the limit of {_pixels(max_pixels)}", 0, 0) from None
    except Exception:  # Pillow raises many types for junk input; its text holds the file's repr
        raise UnreadableImage(f"{what}: not an image ({_one_of(formats)})") from None
    if w < 1 or h < 1 or w * h > max_pixels:
        raise TooManyPixels(f"{what}: {w}x{h} pixels is over the limit of {_pixels(max_pixels)}", w, h)
    return img


def _read_png16(f: BinaryIO) -> np.ndarray:
    """A 16-bit PNG as uint16 [H,W,planes] (Pillow reads 16-bit colour PNGs as 8 bits)."""
    import png  # pypng

    w, h, rows, info = png.Reader(file=f).asDirect()
    return np.vstack([np.asarray(r, np.uint16) for r in rows]).reshape(h, w, info["planes"])


ImageSource = Path | bytes | BinaryIO
IMPORT_FORMATS = ("PNG", "JPEG", "WEBP")


@contextmanager
def _opened(source: ImageSource) -> Iterator[tuple[BinaryIO, str]]:
    """A binary file for `source`, read lazily: a path the user named, bytes, or a file the
    store opened without following links (a sparse 255 MiB PNG is never read whole)."""
    if isinstance(source, bytes):
        yield io.BytesIO(source), "image"
    elif isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            yield f, str(source)
    else:
        yield source, "image"


def decode_levels(
    source: ImageSource, max_pixels: int = MAX_DECODE_PIXELS, formats: tuple[str, ...] = IMPORT_FORMATS
) -> np.ndarray:
    """The stored levels of a PNG (8 or 16 bits) or another of `formats`: [H,W,planes] integers.

    uint16 for a 16-bit PNG, uint8 otherwise; planes are grey, grey + alpha, RGB or RGBA
    (a palette becomes RGB, or RGBA with its transparency). Integers, not floats, so a caller
    can tell the bit depth, hash exactly what the file holds and convert once, into its own
    buffer. ValueError before decoding a file over `max_pixels`; a damaged file raises what
    its decoder raises.
    """
    with _opened(source) as (f, what):
        head = f.read(26)
        f.seek(0)
        img = _open(f, formats, max_pixels, what)
        with img:
            if head.startswith(PNG_SIGNATURE) and len(head) > 24 and head[24] == 16:
                f.seek(0)
                return _read_png16(f)
            if img.mode not in ("L", "LA", "RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
            arr = np.asarray(img)
    return arr[:, :, None] if arr.ndim == 2 else arr


def _decode(source: ImageSource, max_pixels: int, formats: tuple[str, ...]) -> np.ndarray:
    """Pixels of a PNG (8 or 16 bits kept) or another of `formats` as float32 [H,W,planes] in 0..1."""
    levels = decode_levels(source, max_pixels, formats)
    return levels.astype(np.float32) / (65535.0 if levels.dtype == np.uint16 else 255.0)


def read_image(
    source: ImageSource, max_pixels: int = MAX_DECODE_PIXELS, formats: tuple[str, ...] = IMPORT_FORMATS
) -> torch.Tensor:
    """Load an image file as ComfyUI does: float32 [1,H,W,3] in 0..1, 16-bit PNGs at 16 bits.

    Greyscale is repeated to RGB; alpha is dropped (see `read_image_and_alpha` for the mask).
    """
    return _rgb(_decode(source, max_pixels, formats))


def read_image_and_alpha(
    source: ImageSource, max_pixels: int = MAX_DECODE_PIXELS, formats: tuple[str, ...] = IMPORT_FORMATS
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """`read_image`'s image, and the mask ComfyUI's LoadImage makes of its alpha: float32
    [1,H,W], `1 - alpha` (transparent = masked), bit for bit as LoadImage computes it; None
    for a file without alpha."""
    arr = _decode(source, max_pixels, formats)
    alpha = arr[:, :, -1] if arr.shape[2] in (2, 4) else None
    mask = None if alpha is None else 1.0 - torch.from_numpy(np.ascontiguousarray(alpha))[None]
    return _rgb(arr), mask


def _rgb(arr: np.ndarray) -> torch.Tensor:
    """Decoded planes [H,W,1..4] as an IMAGE [1,H,W,3]: grey repeated, alpha dropped."""
    arr = np.repeat(arr[:, :, :1], 3, axis=2) if arr.shape[2] <= 2 else arr[:, :, :3]
    return torch.from_numpy(np.ascontiguousarray(arr))[None]


def read_mask(
    source: ImageSource, max_pixels: int = MAX_DECODE_PIXELS, formats: tuple[str, ...] = IMPORT_FORMATS
) -> torch.Tensor:
    """A mask file, white = masked: greyscale as it is (8 or 16 bits), colour by its luma. [1,H,W].

    Reads back exactly what `gates export` writes for a mask, at either bit depth.
    """
    arr = _decode(source, max_pixels, formats)
    arr = arr[:, :, :3] @ np.array([0.299, 0.587, 0.114], np.float32) if arr.shape[2] >= 3 else arr[:, :, 0]
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))[None]


def decode_mask_upload(data: bytes, max_pixels: int = MAX_UPLOAD_PIXELS) -> torch.Tensor:
    """Turn an uploaded PNG mask into uint8 [H,W] (255 = masked), refusing bombs before decoding.

    With an alpha channel the mask is 255 - alpha (ComfyUI's LoadImage and MaskEditor
    convention: painted areas are transparent); without one, white means masked. uint8 is
    what a painted mask holds anyway, at a quarter of float32's memory.
    """
    img = _open(io.BytesIO(data), ("PNG",), max_pixels, "mask upload")
    try:
        img.load()
        if "A" in img.getbands() or (img.mode == "P" and "transparency" in img.info):
            arr = 255 - np.asarray(img.convert("RGBA"))[:, :, 3]
        else:
            arr = np.asarray(img.convert("L"))
    except Exception as exc:
        raise ValueError(f"mask upload could not be decoded: {exc}") from None
    return torch.from_numpy(np.array(arr, dtype=np.uint8))  # an owned, writable copy


def mask_float(mask: torch.Tensor) -> torch.Tensor:
    """A painted mask (uint8, 255 = masked) or a float mask as float32 in 0..1.

    uint8 is turned back as ComfyUI's LoadImage computes a mask from alpha, `1 - alpha / 255`
    in float32, so a mask painted at the gate is bit-identical to the same PNG loaded there.
    """
    if mask.dtype != torch.uint8:
        return mask.float()
    return 1.0 - (255 - mask).float() / 255.0


def fit_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """A painted uint8 mask [H,W] resized to the image, still uint8: what a pause keeps."""
    if tuple(mask.shape) == (height, width):
        return mask
    return (resize_mask(mask_float(mask)[None], height, width)[0] * 255.0).round_().to(torch.uint8)


def resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear-resize masks [N,H,W] to the image size (a painted mask may come from a preview)."""
    if tuple(mask.shape[-2:]) == (height, width):
        return mask
    out = torch.nn.functional.interpolate(
        mask[:, None].float(), size=(height, width), mode="bilinear", align_corners=False
    )
    return out[:, 0].clamp(0.0, 1.0)
