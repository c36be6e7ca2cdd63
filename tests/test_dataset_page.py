"""Pages: the filters, one padded batch of mixed sizes, and every item cropped back exactly."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_files import jpeg, noise, png8, png16, png_bytes

from gates.dataset.decode import decode_file
from gates.dataset.errors import DatasetError
from gates.dataset.journal import Decision
from gates.dataset.page import Page, PageItem, assemble, crop_back, load, select
from gates.dataset.scan import Entry, Scanner


def entry(rel: str, caption: str | None = None) -> Entry:
    return Entry(rel, Path(rel).stem, 0, 0, caption)


ENTRIES = [entry("a.png", "a.txt"), entry("b.png"), entry("c.png", "c.txt"), entry("d.png"), entry("e.png")]
DECISIONS = {
    "a.png": Decision("a.png", 0, "keep"),
    "b.png": Decision("b.png", 2, "fix", caption="now captioned"),
    "c.png": Decision("c.png", 2, "fix"),
}


@pytest.mark.parametrize(
    ("show", "route", "held", "expected"),
    [
        ("all", None, {"d.png"}, ["a.png", "b.png", "c.png", "d.png", "e.png"]),
        ("undecided", None, (), ["d.png", "e.png"]),
        ("undecided", None, {"d.png"}, ["e.png"]),  # another tab holds d
        ("route", 2, (), ["b.png", "c.png"]),
        ("route", 1, (), []),
        ("uncaptioned", None, (), ["d.png", "e.png"]),  # b's caption was written at the gate
    ],
)
def test_select(show: str, route: int | None, held: set[str], expected: list[str]) -> None:
    picked = select(ENTRIES, DECISIONS, show, route=route, held=held)  # type: ignore[arg-type]
    assert [e.rel for e in picked] == expected


def test_select_refuses_unknown_filters_and_a_route_filter_without_route() -> None:
    with pytest.raises(DatasetError, match="unknown filter"):
        select(ENTRIES, {}, "kept")  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="needs a route"):
        select(ENTRIES, {}, "route")


@pytest.fixture
def mixed(tmp_path: Path) -> Path:
    """Five files of five sizes and kinds, one damaged, one with a caption that is not UTF-8."""
    png8(tmp_path / "p1.png", noise(20, 30, 3, seed=1))
    png8(tmp_path / "p2.png", noise(33, 12, 4, seed=2))
    png16(tmp_path / "p3.png", noise(7, 41, 3, seed=3, dtype=np.uint16))
    jpeg(tmp_path / "p4.jpg", noise(16, 24, 3, seed=4), orientation=6)
    (tmp_path / "p5.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    (tmp_path / "p1.txt").write_bytes(b"\xef\xbb\xbfa cat\r\n")
    (tmp_path / "p2.txt").write_bytes(b"\xff\xfe")
    return tmp_path


def test_a_page_of_mixed_sizes_pads_into_one_batch_and_crops_back_exactly(mixed: Path) -> None:
    listing = Scanner().scan(mixed)
    image, mask, page = assemble(load(listing.root, listing.entries), listing.root)
    assert [i.rel for i in page.items] == ["p1.png", "p2.png", "p3.png", "p4.jpg"]
    assert [(f.rel, "truncated" in f.error) for f in page.failed] == [("p5.png", True)]
    assert image.shape == (4, 33, 41, 3) and mask.shape == (4, 33, 41)
    assert (page.height, page.width) == (33, 41)
    for i, item in enumerate(page.items):
        d = decode_file(listing.root, item.rel)
        assert (item.height, item.width) == (d.height, d.width)
        assert torch.equal(crop_back(image[i : i + 1], item), d.image())
        expected_mask = d.mask() if d.mask() is not None else torch.zeros(1, d.height, d.width)
        assert torch.equal(crop_back(mask[i : i + 1], item), expected_mask)
        # the padding is zeros, right of and below the image
        assert not image[i, item.height :].any() and not image[i, :, item.width :].any()
        assert not mask[i, item.height :].any() and not mask[i, :, item.width :].any()
        assert item.pixel_digest == d.pixel_digest and item.file_digest == d.file_digest
    p1, p2, p3, p4 = page.items
    assert p1.caption == "a cat\r\n" and p1.caption_file == "p1.txt" and p1.caption_error is None
    assert p2.caption is None and "p2.txt is not UTF-8" in (p2.caption_error or "")
    assert p2.mask_source == "alpha" and p3.bits == 16 and (p4.height, p4.width) == (24, 16)
    assert p1.name == "p1" and p4.name == "p4"


def test_a_page_travels_as_json_and_comes_back_equal(mixed: Path) -> None:
    listing = Scanner().scan(mixed)
    _, _, page = assemble(load(listing.root, listing.entries), listing.root)
    again = Page.from_json(json.loads(json.dumps(page.to_json())))
    assert again == page


@pytest.mark.parametrize(
    "damage",
    [
        lambda d: d.update(format=2),
        lambda d: d["items"][0].update(height="20"),
        lambda d: d["items"][0].update(height=True),
        lambda d: d["items"][0].pop("rel"),
        lambda d: d["items"][0].update(extra=1),
        lambda d: d.update(items=None),
        lambda d: d.update(root=5),
        lambda d: d["failed"].append({"rel": "x"}),
    ],
)
def test_something_that_is_not_a_page_is_refused(mixed: Path, damage) -> None:  # type: ignore[no-untyped-def]
    listing = Scanner().scan(mixed)
    _, _, page = assemble(load(listing.root, listing.entries), listing.root)
    data = json.loads(json.dumps(page.to_json()))
    damage(data)
    with pytest.raises(DatasetError, match="not a dataset page"):
        Page.from_json(data)


def test_take_keeps_the_items_a_route_received(mixed: Path) -> None:
    listing = Scanner().scan(mixed)
    image, _, page = assemble(load(listing.root, listing.entries), listing.root)
    routed = page.take([3, 1])
    assert [i.rel for i in routed.items] == ["p4.jpg", "p2.png"] and routed.failed == ()
    assert torch.equal(crop_back(image[[3, 1]][:1], routed.items[0]), crop_back(image[3:4], page.items[3]))


def test_crop_back_refuses_a_batch_resized_after_loading() -> None:
    item = PageItem("a.png", "a", 10, 20, 8, None, None, None, "none", "", "", 0)
    with pytest.raises(DatasetError, match=re.escape("a.png is 20x10 but the batch is 16x16")):
        crop_back(torch.zeros(1, 16, 16, 3), item)
    with pytest.raises(DatasetError, match="IMAGE"):
        crop_back(torch.zeros(16, 16), item)


def test_a_page_with_no_readable_image_says_why(tmp_path: Path) -> None:
    (tmp_path / "a.png").write_bytes(b"")
    listing = Scanner().scan(tmp_path)
    with pytest.raises(DatasetError, match=re.escape("no image of this page could be read: a.png is empty")):
        assemble(load(listing.root, listing.entries), listing.root)


def test_twenty_thousand_files_with_broken_ones(tmp_path: Path) -> None:
    """A big folder lists in natural order; its empty and damaged files are listed too and
    become one error row each on their page, which still loads."""
    good = png_bytes(noise(2, 3, 3))
    for i in range(20000):
        data = b"" if i % 5000 == 7 else good[:-20] if i % 5000 == 9 else good
        (tmp_path / f"img{i}.png").write_bytes(data)
    listing = Scanner().scan(tmp_path)
    assert len(listing.entries) == 20000
    assert [e.rel for e in listing.entries[:3]] == ["img0.png", "img1.png", "img2.png"]
    assert listing.entries[-1].rel == "img19999.png"
    image, _, page = assemble(load(listing.root, listing.entries[5000:5016]), listing.root)
    assert image.shape == (14, 2, 3, 3)
    assert [(f.rel, f.error) for f in page.failed] == [
        ("img5007.png", "img5007.png is empty"),
        ("img5009.png", "img5009.png is truncated (its end is missing)"),
    ]


def test_a_page_that_would_pad_past_the_memory_limit_is_refused(tmp_path: Path) -> None:
    png8(tmp_path / "tall.png", noise(64, 2, 3))
    png8(tmp_path / "wide.png", noise(2, 64, 3))
    listing = Scanner().scan(tmp_path)
    loaded = load(listing.root, listing.entries)
    image, _, _ = assemble(loaded, listing.root, max_bytes=2 * 64 * 64 * 16)
    assert image.shape == (2, 64, 64, 3)
    with pytest.raises(DatasetError, match=re.escape("this page pads 2 images to 64x64")):
        assemble(loaded, listing.root, max_bytes=2 * 64 * 64 * 16 - 1)
