"""The pictures the docs show are the ones tests/e2e/test_docs_screenshots.py makes: every one
the README shows exists, is a PNG under the size cap, and has the size recorded in
tests/doc_images.py; every example workflow has its JPG thumbnail beside it."""

from __future__ import annotations

import re
import struct

from doc_images import (
    EXAMPLES,
    EXAMPLES_DIR,
    HAND_MADE,
    IMAGES_DIR,
    MAX_BYTES,
    MAX_THUMB_BYTES,
    README_IMAGES,
    REPO,
    THUMB_SIZE,
)

README = (REPO / "README.md").read_text(encoding="utf-8")
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def shown(doc: str) -> list[str]:
    return re.findall(r"!\[[^\]]*\]\(([^)]+)\)", doc)


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a PNG must start with."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR", "not a PNG"
    return struct.unpack(">II", data[16:24])


def jpeg_size(data: bytes) -> tuple[int, int]:
    """Width and height from the first start-of-frame marker."""
    assert data[:3] == b"\xff\xd8\xff", "not a JPEG"
    i = 2
    while i < len(data):
        marker, length = data[i + 1], struct.unpack(">H", data[i + 2 : i + 4])[0]
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[i + 5 : i + 9])
            return width, height
        i += 2 + length
    raise AssertionError("no frame header")


def test_every_picture_the_readme_shows_is_recorded_committed_small_and_current() -> None:
    targets = shown(README)
    assert sorted(targets) == sorted(f"docs/images/{name}" for name in README_IMAGES)
    for name, size in README_IMAGES.items():
        data = (IMAGES_DIR / name).read_bytes()
        assert len(data) < MAX_BYTES, f"{name}: {len(data)} bytes"
        assert png_size(data) == size, f"{name} is {png_size(data)}, recorded {size}: regenerate it"


def test_the_paused_gate_is_the_first_thing_the_readme_shows() -> None:
    first = README.index("![")
    assert first < README.index("## Install")
    assert shown(README)[0] == "docs/images/gate_paused.png"


def test_pictures_no_script_makes_are_pngs_other_docs_show() -> None:
    docs = "\n".join(p.read_text(encoding="utf-8") for p in (REPO / "docs").glob("*.md"))
    for name in HAND_MADE:
        assert f"images/{name}" in docs
        data = (IMAGES_DIR / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) < MAX_BYTES
    assert {p.name for p in IMAGES_DIR.iterdir()} == set(README_IMAGES) | HAND_MADE


def test_every_example_workflow_has_its_thumbnail_and_nothing_else_is_there() -> None:
    assert {p.name for p in EXAMPLES_DIR.iterdir()} == {f"{name}.{ext}" for name in EXAMPLES for ext in ("json", "jpg")}
    for name in EXAMPLES:
        data = (EXAMPLES_DIR / f"{name}.jpg").read_bytes()
        assert len(data) < MAX_THUMB_BYTES, f"{name}.jpg: {len(data)} bytes"
        assert jpeg_size(data) == THUMB_SIZE, f"{name}.jpg is {jpeg_size(data)}, recorded {THUMB_SIZE}"
