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


DAMAGED = "pic_05.png"
CRLF = "pic_03"
BOM = "pic_02"


def curation_folder(root: Path, count: int = 41) -> dict[str, str | None]:
    """A dataset folder of `count` files pic_01..: mixed sizes, RGB and RGBA PNG, 16-bit PNG,
    JPEG turned by EXIF orientation, lossless WebP, one damaged PNG (DAMAGED); captions with
    unicode, one with a UTF-8 BOM (BOM), one with CRLF line ends (CRLF), every seventh image
    without one.

    Returns:
        Each readable image's file name -> its caption as a loader gives it (BOM dropped, line
        ends kept), None for an image without a caption.
    """
    root.mkdir(parents=True, exist_ok=True)
    captions: dict[str, str | None] = {}
    words = ["a cat on a sofa", "ein Bär im Schnee", "猫が座っている", "café au lait, ☕", "a red barn"]
    for i in range(1, count + 1):
        stem = f"pic_{i:02d}"
        if f"{stem}.png" == DAMAGED:
            (root / DAMAGED).write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40 + b"cut short")
            (root / f"{stem}.txt").write_text("never read", encoding="utf-8")
            continue
        h, w = 24 + (i * 11) % 40, 24 + (i * 7) % 48
        kind = i % 6
        if kind == 0:
            name = png16(root / f"{stem}.png", noise(h, w, 3, seed=i, dtype=np.uint16)).name
        elif kind == 1:
            name = png8(root / f"{stem}.png", noise(h, w, 4, seed=i)).name
        elif kind == 2:
            name = jpeg(root / f"{stem}.jpg", noise(h, w, 3, seed=i), orientation=(6, 3, 8)[i % 3]).name
        elif kind == 3:
            name = webp(root / f"{stem}.webp", noise(h, w, 3, seed=i)).name
        else:
            name = png8(root / f"{stem}.png", noise(h, w, 3, seed=i)).name
        if i % 7 == 0:
            captions[name] = None
            continue
        text = f"{words[i % len(words)]} #{i}"
        if stem == CRLF:
            text = f"first line #{i}\r\nsecond line, ünïcödé"
        raw = text.encode("utf-8")
        if stem == BOM:
            raw = b"\xef\xbb\xbf" + raw
        (root / f"{stem}.txt").write_bytes(raw)
        captions[name] = text
    return captions
