"""Pixels in and out of PNG: thumbnails, previews, exports and uploaded masks.

Everything here is lossy by nature (8 or 16 bits per channel), so it is only ever used for
what a person looks at or asks to export; the bus itself never goes through PNG.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image

THUMB_SIDE = 256
STRIP_MAX = 4
# An uploaded mask bigger than this is refused before it is decoded (decompression bombs).
MAX_UPLOAD_PIXELS = 8192 * 8192


def to_uint(image_hwc: torch.Tensor, bits: int = 8) -> np.ndarray:
    """Quantize one float image [H,W,C] in 0..1 to uint8 or uint16, rounding to nearest."""
    top = (1 << bits) - 1
    arr = image_hwc.detach().to("cpu", torch.float32, copy=True)  # in place from here on
    arr.nan_to_num_(0.0).clamp_(0.0, 1.0).mul_(top).round_()
    return arr.numpy().astype(np.uint8 if bits == 8 else np.uint16)


def _fit(image_hwc: torch.Tensor, side: int) -> torch.Tensor:
    """Box-average a big image down by a whole factor before it is quantized.

    Quantizing a 2048x2048 image only to shrink it to 256 px cost most of a publish. The
    result is between `side` and twice it, and Pillow's LANCZOS finishes the resize.
    """
    factor = max(int(image_hwc.shape[0]), int(image_hwc.shape[1])) // side
    if factor < 2:
        return image_hwc
    chw = image_hwc.detach().to("cpu", torch.float32).permute(2, 0, 1)[None]
    return torch.nn.functional.avg_pool2d(chw, factor)[0].permute(1, 2, 0)


_MODES = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}


def _pil(image_hwc: torch.Tensor) -> Image.Image:
    arr = to_uint(image_hwc)
    mode = _MODES[arr.shape[2]]
    return Image.fromarray(arr[:, :, 0] if mode == "L" else arr, mode)


def png_bytes(img: Image.Image, compress_level: int = 1) -> bytes:
    """Encode quickly: thumbnails and previews are regenerated, not archived."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", compress_level=compress_level)
    return buf.getvalue()


def thumbnail(images: torch.Tensor, side: int = THUMB_SIDE, strip: int = STRIP_MAX) -> Image.Image:
    """A contact strip of the first `strip` images of a batch [B,H,W,C], long side <= `side`.

    Only the images shown are converted, so a 64-image bfloat16 batch costs no more than four.
    """
    shown = [_pil(_fit(images[i], side)) for i in range(min(int(images.shape[0]), strip))]
    w, h = shown[0].size
    sheet = Image.new(shown[0].mode, (w * len(shown), h))
    for i, img in enumerate(shown):
        sheet.paste(img, (i * w, 0))
    sheet.thumbnail((side, side), Image.Resampling.LANCZOS)
    return sheet


def preview(image_hwc: torch.Tensor, side: int = 1024) -> bytes:
    """PNG of one batch image, downscaled so a paused gate never ships a full tensor."""
    img = _pil(_fit(image_hwc, side))
    if max(img.size) > side:
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
    return png_bytes(img)


def write_png(path: Path, image_hwc: torch.Tensor, bits: int = 8) -> None:
    """Export one image at 8 or 16 bits per channel."""
    import png  # pypng, imported here because only exports need it: Pillow cannot write 16-bit RGB

    arr = to_uint(image_hwc, bits)
    h, w, c = arr.shape
    writer = png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=bits)
    with open(path, "wb") as f:
        writer.write(f, arr.reshape(h, w * c))


def read_image(path: Path) -> torch.Tensor:
    """Load a PNG/JPEG/... as ComfyUI does: float32 [1,H,W,3] in 0..1 (16-bit PNGs keep 16 bits)."""
    with Image.open(path) as img:
        if img.mode in ("I;16", "I;16B", "I"):
            arr = np.asarray(img, dtype=np.float32) / 65535.0
            arr = np.repeat(arr[:, :, None], 3, axis=2)
        else:
            arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr))[None]


def read_mask(path: Path) -> torch.Tensor:
    """The seed's mask.png: a greyscale image where white means masked. Returns [1,H,W]."""
    with Image.open(path) as img:
        arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr))[None]


def decode_mask_upload(data: bytes, max_pixels: int = MAX_UPLOAD_PIXELS) -> torch.Tensor:
    """Turn an uploaded mask image into [H,W] float32, refusing bombs before decoding.

    With an alpha channel the mask is 1 - alpha (ComfyUI's LoadImage and MaskEditor
    convention: painted areas are transparent); without one, white means masked.
    """
    try:
        img = Image.open(io.BytesIO(data))
        w, h = img.size
    except Exception as exc:  # Pillow raises many types for junk input
        raise ValueError(f"mask upload is not a readable image: {exc}") from None
    if w * h > max_pixels or w < 1 or h < 1:
        raise ValueError(f"mask upload of {w}x{h} pixels exceeds the limit of {max_pixels} pixels")
    try:
        img.load()
        if "A" in img.getbands() or (img.mode == "P" and "transparency" in img.info):
            alpha = np.asarray(img.convert("RGBA"), dtype=np.float32)[:, :, 3] / 255.0
            arr = 1.0 - alpha
        else:
            arr = np.asarray(img.convert("L"), dtype=np.float32) / 255.0
    except Exception as exc:
        raise ValueError(f"mask upload could not be decoded: {exc}") from None
    return torch.from_numpy(np.ascontiguousarray(arr))


def resize_mask(mask: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear-resize masks [N,H,W] to the image size (a painted mask may come from a preview)."""
    if tuple(mask.shape[-2:]) == (height, width):
        return mask
    out = torch.nn.functional.interpolate(mask[:, None].float(), size=(height, width),
                                          mode="bilinear", align_corners=False)
    return out[:, 0].clamp(0.0, 1.0)
