"""Bucket Resize: each image of a page scaled and centre-cropped into its sd-scripts bucket.

Each item is cut out of the padded batch (`crop_back`), given its bucket (`buckets.nearest_bucket`),
scaled to cover it and cropped to it, its mask with it; the results are padded into a new batch
with a new Page whose items have their bucket sizes. A resized item no longer holds its file's
pixels, so a later save encodes it (its pixel digest is cleared) rather than copying the file.

Scaling: "area" (the mean over each output pixel's footprint, what sd-scripts uses to scale
down, cv2's INTER_AREA) below the original size and bicubic above it by default ("auto"), or
one method for both. Masks are scaled bilinearly, so a painted edge stays soft rather than
stair-stepped. Values are clamped to 0..1 (bicubic overshoots at edges). With a page, each
resized image is rounded to its file's levels (8 or 16 bits), so an 8-bit image stays 8-bit
and a save writes it as an 8-bit PNG rather than a 16-bit one twice its size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from .buckets import Bucket, BucketRules, Fit, nearest_bucket
from .errors import DatasetError
from .page import Page, PageItem, crop_back

AUTO = "auto"
MAX_SCALED_AREA = 4  # times the bucket's pixels: above it only the window's neighbourhood is scaled
METHODS = (AUTO, "area", "bicubic", "bilinear", "nearest-exact")


@dataclass(frozen=True)
class Resized:
    """A page in its buckets: the padded batch, its mask, the new Page and each image's bucket."""

    image: torch.Tensor
    mask: torch.Tensor
    page: Page | None
    buckets: tuple[Bucket, ...]

    @property
    def labels(self) -> tuple[str, ...]:
        """Each image's bucket as sd-scripts writes it ("832x1216")."""
        return tuple(str(b) for b in self.buckets)


def bucket_resize(
    image: torch.Tensor, mask: torch.Tensor | None, page: Page | None, rules: BucketRules, method: str = AUTO
) -> Resized:
    """Scale and crop every image (and mask) of the batch into its bucket.

    Args:
        image: IMAGE [B,H,W,C]; with a page, its padded batch (each item top-left at its own size).
        mask: MASK [B,H,W] or [1,H,W] (shared), or None for no mask.
        page: the page of `image`, or None when every image is the batch's full size.
        rules: sd-scripts' bucket settings.
        method: one of METHODS.

    Returns:
        Resized: padded to the largest bucket of the batch, zeros around smaller ones.

    Raises:
        DatasetError: an unknown method, a page that does not match the batch, an image too small
            for any bucket.
    """
    if method not in METHODS:
        raise DatasetError(f"unknown scaling {method}: use one of {', '.join(METHODS)}")
    b = int(image.shape[0])
    if page is not None and len(page.items) != b:
        raise DatasetError(f"the page holds {len(page.items)} images but the batch {b}")
    if mask is not None and mask.dim() == 2:
        mask = mask[None]
    if mask is not None and int(mask.shape[0]) not in (1, b):
        raise DatasetError(f"the mask has a batch of {int(mask.shape[0])} for {b} images")
    outs, masks, fits = [], [], []
    for i in range(b):
        one = image[i : i + 1]
        one_mask = None if mask is None else mask[min(i, int(mask.shape[0]) - 1)][None]
        if page is not None:
            one = crop_back(one, page.items[i])
            one_mask = None if one_mask is None else _fit_mask(one_mask, one)
        fit = nearest_bucket(int(one.shape[2]), int(one.shape[1]), rules)
        scaled = _scale(one, fit, method)
        if page is not None and (fit.resized_height, fit.resized_width) != tuple(one.shape[1:3]):
            top = float((1 << page.items[i].bits) - 1)
            scaled = torch.round(scaled * top) / top
        outs.append(scaled)
        masks.append(None if one_mask is None else _scale(one_mask[..., None], fit, "bilinear")[..., 0])
        fits.append(fit)
    height = max(f.bucket.height for f in fits)
    width = max(f.bucket.width for f in fits)
    out = image.new_zeros((b, height, width, int(image.shape[3])))
    out_mask = torch.zeros((b, height, width), dtype=torch.float32)
    for i, (pixels, m) in enumerate(zip(outs, masks)):
        h, w = int(pixels.shape[1]), int(pixels.shape[2])
        out[i, :h, :w] = pixels[0]
        if m is not None:
            out_mask[i, :h, :w] = m[0]
    new_page = None if page is None else _page(page, fits, height, width)
    return Resized(out, out_mask, new_page, tuple(f.bucket for f in fits))


def _fit_mask(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """The item's part of a padded page mask (or a shared mask of the item's size)."""
    h, w = int(image.shape[1]), int(image.shape[2])
    if int(mask.shape[1]) < h or int(mask.shape[2]) < w:
        raise DatasetError(f"the mask is {int(mask.shape[2])}x{int(mask.shape[1])}, smaller than its image ({w}x{h})")
    return mask[:, :h, :w]


def _scale(pixels: torch.Tensor, fit: Fit, method: str) -> torch.Tensor:
    """[1,H,W,C] scaled to cover `fit.bucket` and centre-cropped to it, as sd-scripts does.

    A very long, thin image scaled to cover its bucket can be hundreds of times the bucket's
    size (1x1000 pixels covering 256x1024 is 256x256,000). When the scaled image would hold
    more than MAX_SCALED_AREA times the bucket's pixels, only the source pixels around the
    bucket's window are scaled (at whole-pixel bounds, so they can differ from the full scale
    by a fraction of a level at the window's edges); otherwise the whole image is scaled and
    cropped, exactly as sd-scripts does."""
    h, w = int(pixels.shape[1]), int(pixels.shape[2])
    size = (fit.resized_height, fit.resized_width)
    bh, bw = fit.bucket.height, fit.bucket.width
    top, left = fit.crop_top, fit.crop_left
    if size != (h, w):
        mode = method if method != AUTO else ("area" if size[0] * size[1] < h * w else "bicubic")
        y0, y1, x0, x1 = 0, h, 0, w
        if size[0] * size[1] > MAX_SCALED_AREA * bh * bw:  # scale the window's neighbourhood only
            sy, sx = size[0] / h, size[1] / w
            y0, y1 = max(0, math.floor(top / sy) - 2), min(h, math.ceil((top + bh) / sy) + 2)
            x0, x1 = max(0, math.floor(left / sx) - 2), min(w, math.ceil((left + bw) / sx) + 2)
            size = (max(bh, round((y1 - y0) * sy)), max(bw, round((x1 - x0) * sx)))
            top = min(max(round(top - y0 * sy), 0), size[0] - bh)
            left = min(max(round(left - x0 * sx), 0), size[1] - bw)
        nchw = pixels[:, y0:y1, x0:x1].permute(0, 3, 1, 2).float()
        if mode in ("bicubic", "bilinear"):
            scaled = F.interpolate(nchw, size=size, mode=mode, align_corners=False, antialias=True)
        else:
            scaled = F.interpolate(nchw, size=size, mode=mode)
        pixels = scaled.clamp_(0.0, 1.0).permute(0, 2, 3, 1).to(pixels.dtype)
    return pixels[:, top : top + bh, left : left + bw]


def _page(page: Page, fits: Sequence[Fit], height: int, width: int) -> Page:
    items: list[PageItem] = []
    for item, fit in zip(page.items, fits):
        same = (fit.bucket.width, fit.bucket.height) == (item.width, item.height)
        items.append(item if same else replace(item, width=fit.bucket.width, height=fit.bucket.height, pixel_digest=""))
    return replace(page, items=tuple(items), height=height, width=width)
