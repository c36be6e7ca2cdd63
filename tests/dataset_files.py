"""Real image and caption files for the dataset tests, written with Pillow and pypng, and a
small decided dataset folder (images and a journal) for the tests of its report."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import png
from PIL import Image


def noise(height: int, width: int, channels: int, seed: int = 0, dtype: type = np.uint8) -> np.ndarray:
    """Random levels [H,W,C] covering the dtype's whole range."""
    top = 65535 if dtype == np.uint16 else 255
    return np.random.default_rng(seed).integers(0, top + 1, (height, width, channels), dtype=dtype)


def png8(path: Path, levels: np.ndarray) -> Path:
    """An 8-bit PNG of levels [H,W,C] (C: 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA)."""
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[levels.shape[2]]
    Image.fromarray(levels[:, :, 0] if mode == "L" else levels, mode).save(path)
    return path


def png16(path: Path, levels: np.ndarray) -> Path:
    """A 16-bit PNG of uint16 levels [H,W,C]."""
    h, w, c = levels.shape
    with open(path, "wb") as f:
        png.Writer(w, h, greyscale=c <= 2, alpha=c in (2, 4), bitdepth=16).write(f, levels.reshape(h, w * c))
    return path


def palette_png(path: Path, transparent: bool) -> tuple[Path, np.ndarray]:
    """A palette PNG; returns it and its RGBA levels as Pillow decodes them."""
    img = Image.fromarray(noise(12, 9, 3, seed=4)).quantize(16)
    if transparent:
        img.info["transparency"] = 0
        img.save(path, transparency=0)
    else:
        img.save(path)
    with Image.open(path) as again:
        return path, np.asarray(again.convert("RGBA" if transparent else "RGB"))


def jpeg(path: Path, levels: np.ndarray, orientation: int = 1) -> Path:
    """A JPEG of RGB levels, with an EXIF orientation tag when `orientation` is not 1."""
    img = Image.fromarray(levels)
    exif = Image.Exif()
    if orientation != 1:
        exif[0x0112] = orientation
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


def webp(path: Path, levels: np.ndarray) -> Path:
    """A lossless WebP of RGB or RGBA levels."""
    Image.fromarray(levels).save(path, "WEBP", lossless=True, exact=True)
    return path


def pillow_levels(path: Path, mode: str) -> np.ndarray:
    """What Pillow itself decodes `path` to in `mode`, orientation applied (the reference)."""
    from PIL import ImageOps

    with Image.open(path) as img:
        return np.asarray(ImageOps.exif_transpose(img).convert(mode))


def decided_set(root: Path) -> Path:
    """Three PNGs in `root`, two decided: 0.png kept (its journal size 1536x1024: bucket
    1024x704) and 1.png dropped. Its report's progress is "2 / 3 decided: 1 keep · 1 drop"."""
    from gates.dataset.journal import Decision, Journal

    root.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate([(40, 30), (30, 40), (32, 32)]):
        png8(root / f"{i}.png", noise(h, w, 3, seed=i))
    Journal(root).decide(
        [Decision("0.png", 0, "keep", width=1536, height=1024), Decision("1.png", 1, "drop", width=30, height=40)],
        "test",
    )
    return root


def png_bytes(levels: np.ndarray) -> bytes:
    b = io.BytesIO()
    Image.fromarray(levels).save(b, "PNG")
    return b.getvalue()
