"""Saving a curated page as a trainer reads it: original bytes when unchanged, exact PNGs when
not, captions and masklabels beside them, and refusals that leave the output folder untouched."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from dataset_files import jpeg, noise, png8, png16
from PIL import Image

from gates.dataset.decode import decode_file
from gates.dataset.errors import SaveRefused
from gates.dataset.page import Page, assemble, crop_back, load
from gates.dataset.save import SaveItem, Source, save
from gates.dataset.scan import Scanner


def page_of(folder: Path) -> tuple[torch.Tensor, torch.Tensor, Page]:
    listing = Scanner().scan(folder)
    return assemble(load(listing.root, listing.entries), listing.root)


def items_of(image: torch.Tensor, mask: torch.Tensor, page: Page) -> list[SaveItem]:
    """Every page item as it left the page, unchanged."""
    return [
        SaveItem(
            item.name,
            crop_back(image[i : i + 1], item),
            item.caption,
            crop_back(mask[i : i + 1], item),
            Source.of(page, item),
        )
        for i, item in enumerate(page.items)
    ]


def snapshot(folder: Path) -> dict[str, bytes] | None:
    """Every file under `folder` with its bytes (None: no folder)."""
    if not folder.exists():
        return None
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    src = tmp_path / "dataset"
    src.mkdir()
    jpeg(src / "cat.jpg", noise(24, 16, 3, seed=1), orientation=6)
    png8(src / "dog.png", noise(10, 12, 4, seed=2))
    png16(src / "deep.png", noise(8, 9, 3, seed=3, dtype=np.uint16))
    (src / "cat.txt").write_bytes("\ufeffa cat, 猫\r\nsecond line".encode())
    return src


def test_unchanged_images_are_saved_as_their_original_bytes(dataset: Path, tmp_path: Path) -> None:
    image, mask, page = page_of(dataset)
    saved = save(tmp_path / "out", items_of(image, mask, page))
    assert sorted(saved.copied) == ["cat.jpg", "deep.png", "dog.png"] and saved.encoded == ()
    for name in saved.copied:
        assert (tmp_path / "out" / name).read_bytes() == (dataset / name).read_bytes()
    assert (tmp_path / "out/cat.txt").read_bytes() == "a cat, 猫\r\nsecond line".encode()  # no BOM, CRLF kept
    assert not (tmp_path / "out/dog.txt").exists()  # no caption: no caption file


def test_edited_8_bit_pixels_become_an_exact_8_bit_png(dataset: Path, tmp_path: Path) -> None:
    image, mask, page = page_of(dataset)
    items = items_of(image, mask, page)
    cat = next(i for i in items if i.name == "cat")
    edited = cat.image.clone()
    edited[0, 0, 0, :] = torch.tensor([1.0, 0.0, 128 / 255])
    saved = save(tmp_path / "out", [SaveItem("cat", edited, cat.caption, source=cat.source)])
    assert saved.encoded == ("cat.png",) and saved.copied == ()
    back = decode_file(tmp_path / "out", "cat.png")
    assert back.bits == 8 and torch.equal(back.image(), edited)


def test_more_than_8_bits_of_precision_become_an_exact_16_bit_png(dataset: Path, tmp_path: Path) -> None:
    image, mask, page = page_of(dataset)
    deep = next(i for i in items_of(image, mask, page) if i.name == "deep")
    edited = deep.image.clone()
    edited[0, 1, 1, 1] = 12345 / 65535
    save(tmp_path / "out", [SaveItem("deep", edited, source=deep.source)])
    back = decode_file(tmp_path / "out", "deep.png")
    assert back.bits == 16 and torch.equal(back.image(), edited)


def test_masks_are_saved_as_masklabels_that_load_back_to_the_same_mask(dataset: Path, tmp_path: Path) -> None:
    image, mask, page = page_of(dataset)
    items = items_of(image, mask, page)
    dog = next(i for i in items if i.name == "dog")
    assert dog.mask is not None and dog.mask.any()
    cat = next(i for i in items if i.name == "cat")
    painted = torch.zeros(1, *cat.image.shape[1:3])
    painted[0, :8] = 1.0  # the top half left out of training
    save(
        tmp_path / "out",
        [dog, SaveItem("cat", cat.image, mask=painted, source=cat.source)],
        masks=True,
    )
    label = np.asarray(Image.open(tmp_path / "out/cat-masklabel.png"))
    assert (label[:8] == 0).all() and (label[8:] == 255).all()  # white: train on it
    for name, expected in (("dog", dog.mask), ("cat", painted)):
        back = decode_file(tmp_path / "out", f"{name}.{'png' if name == 'dog' else 'jpg'}", f"{name}-masklabel.png")
        assert torch.equal(back.mask(), expected)


def test_metadata_jsonl_lists_every_image_and_replaces_its_own_lines(dataset: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "metadata.jsonl").write_bytes(b'{"file_name": "older.png", "text": "kept", "extra": 1}\n')
    image, mask, page = page_of(dataset)
    items = items_of(image, mask, page)
    save(out, items, metadata=True)
    save(out, [items[0]], metadata=True, overwrite=True)
    rows = [json.loads(line) for line in (out / "metadata.jsonl").read_bytes().splitlines()]
    assert rows == [
        {"file_name": "older.png", "text": "kept", "extra": 1},
        {"file_name": "deep.png", "text": ""},
        {"file_name": "dog.png", "text": ""},
        {"file_name": "cat.jpg", "text": "a cat, 猫\r\nsecond line"},
    ]


def test_names_with_folders_are_saved_into_those_folders(tmp_path: Path) -> None:
    src = tmp_path / "dataset"
    (src / "10_cat").mkdir(parents=True)
    png8(src / "10_cat" / "one.png", noise(3, 3, 3))
    listing = Scanner().scan(src, 1)
    image, mask, page = assemble(load(listing.root, listing.entries), listing.root)
    saved = save(tmp_path / "out", items_of(image, mask, page), metadata=True)
    assert saved.files == ("10_cat/one.png", "metadata.jsonl")
    assert (tmp_path / "out/10_cat/one.png").read_bytes() == (src / "10_cat/one.png").read_bytes()


def test_a_source_changed_since_it_was_loaded_is_saved_from_its_pixels(dataset: Path, tmp_path: Path) -> None:
    image, mask, page = page_of(dataset)
    items = items_of(image, mask, page)
    png8(dataset / "dog.png", noise(10, 12, 4, seed=99))  # rewritten in place after loading
    saved = save(tmp_path / "out", items)
    assert "dog.png" in saved.encoded and "dog.png changed on disk since it was loaded" in saved.notes[0]
    dog = next(i for i in items if i.name == "dog")
    assert torch.equal(decode_file(tmp_path / "out", "dog.png").image(), dog.image)


def test_overwrite_replaces_and_leaves_no_temp_files(dataset: Path, tmp_path: Path) -> None:
    image, mask, page = page_of(dataset)
    items = items_of(image, mask, page)
    save(tmp_path / "out", items)
    saved = save(tmp_path / "out", items, overwrite=True)
    assert sorted(snapshot(tmp_path / "out") or {}) == sorted(saved.files)


def refused(out: Path, items: list[SaveItem], match: str, **options: bool) -> None:
    """Saving `items` is refused with `match`, and `out` is exactly as it was (or still absent)."""
    before = snapshot(out)
    with pytest.raises(SaveRefused, match=match):
        save(out, items, **options)
    assert snapshot(out) == before


def one(name: str, caption: str | None = None) -> SaveItem:
    return SaveItem(name, torch.rand(4, 5, 3), caption)


@pytest.mark.parametrize(
    ("name", "match"),
    [
        ("../escape", "leaves its folder"),
        ("/etc/cron.d/x", "not a relative path"),
        ("a/../../b", "leaves its folder"),
        ("C:/x", "not a relative path"),
        ("a\\b", "not a relative path"),
        ("nul\x00x", "not a relative path"),
        ("CON", "Windows reserves"),
        ("sub/lpt1.backup", "Windows reserves"),
        ("what?", "Windows cannot store"),
        ("trailing.", "Windows cannot store"),
        (".hidden", "hidden name"),
        ("x" * 201, "longer than 200 bytes"),
        ("bad\udcff", "not a valid UTF-8 name"),
    ],
)
def test_a_name_leaving_the_folder_or_not_portable_is_refused(tmp_path: Path, name: str, match: str) -> None:
    refused(tmp_path / "out", [one("fine"), one(name)], match)


def test_a_collision_within_the_batch_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    refused(tmp_path / "out", [one("a"), one("b"), one("a")], "two items are named a")
    refused(tmp_path / "out", [one("Cat"), one("cat")], "Cat and cat differ in case only")
    cat = SaveItem("cat", torch.rand(4, 5, 3), mask=torch.rand(4, 5))
    label = SaveItem("cat-masklabel", torch.rand(4, 5, 3))
    refused(tmp_path / "out", [cat, label], "would be the same file", masks=True)


def test_files_already_there_are_refused_without_overwrite_and_nothing_is_written(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.txt").write_bytes(b"old caption")
    refused(out, [one("a", "new"), one("b", "new")], r"b.txt exists \(overwrite is off\)")


def test_another_image_of_the_same_name_is_refused_even_with_overwrite(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.JPG").write_bytes(b"an older export")
    refused(out, [one("a")], "a.JPG is there already: a trainer would read it beside the new a.png", overwrite=True)


def test_a_symlinked_folder_in_the_output_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (out / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    refused(out, [one("sub/a")], "sub is a link or a file where a folder belongs")
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_saving_into_the_dataset_folder_being_read_is_refused(dataset: Path) -> None:
    image, mask, page = page_of(dataset)
    refused(dataset, items_of(image, mask, page), "the output folder is the dataset folder", overwrite=True)


def test_bad_tensors_and_captions_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "out"
    refused(out, [SaveItem("a", torch.rand(2, 4, 5, 3))], r"expected \[H,W,3\]")
    refused(out, [SaveItem("a", torch.rand(4, 5, 4))], "an image is RGB")
    refused(out, [SaveItem("a", torch.zeros(4, 5, 3, dtype=torch.uint8))], "float tensor")
    refused(out, [SaveItem("a", torch.rand(4, 5, 3), mask=torch.rand(5, 4))], "mask is not the size")
    refused(out, [SaveItem("a", torch.rand(4, 5, 3), caption="lone \udcff")], "caption is not text")


def test_a_malformed_metadata_file_is_refused_not_rewritten(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "metadata.jsonl").write_bytes(b'{"file_name": "a.png"}\nnot json\n')
    refused(out, [one("b")], "metadata.jsonl line 2 is not a metadata row", metadata=True)


def test_the_output_folder_is_created_with_its_parents(tmp_path: Path) -> None:
    saved = save(tmp_path / "new" / "deeper", [one("a", "text")])
    assert saved.files == ("a.png", "a.txt") and (tmp_path / "new/deeper/a.txt").read_text() == "text"
    assert sorted(os.listdir(tmp_path / "new/deeper")) == ["a.png", "a.txt"]
