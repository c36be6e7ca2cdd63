"""Listing a dataset folder: natural order, captions and masks paired, links never followed,
and a re-scan of an unchanged folder that reads no folder at all."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gates.dataset.errors import DatasetError
from gates.dataset.names import natural_key
from gates.dataset.scan import RACY_NS, Scanner


def touch(folder: Path, *names: str) -> None:
    for name in names:
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(b"x" * len(name))


def settle(*folders: Path) -> None:
    """Date the folders' last change well in the past, as a folder nobody is writing to."""
    old = os.stat(folders[0]).st_mtime_ns - 2 * RACY_NS
    for folder in folders:
        os.utime(folder, ns=(old, old))


@pytest.fixture
def scandirs(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The folders os.scandir reads while the test runs."""
    seen: list[str] = []
    real = os.scandir

    def counting(path: str | os.PathLike[str]) -> object:
        seen.append(os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", counting)
    yield seen


def rels(folder: Path, depth: int = 0, scanner: Scanner | None = None) -> list[str]:
    return [e.rel for e in (scanner or Scanner()).scan(folder, depth).entries]


def test_natural_order_case_insensitive(tmp_path: Path) -> None:
    touch(tmp_path, "img10.png", "img2.png", "IMG3.jpg", "img1.webp", "a.JPEG", "img02.png")
    assert rels(tmp_path) == ["a.JPEG", "img1.webp", "img02.png", "img2.png", "IMG3.jpg", "img10.png"]


@given(st.lists(st.integers(0, 10**12), min_size=2, max_size=20, unique=True))
def test_numbers_in_names_sort_as_numbers(numbers: list[int]) -> None:
    names = [f"cat_{n}.png" for n in numbers]
    assert sorted(names, key=natural_key) == [f"cat_{n}.png" for n in sorted(numbers)]


@given(st.lists(st.text(st.characters(blacklist_characters="/\x00"), min_size=1, max_size=8), max_size=12))
def test_natural_order_is_total_and_stable(names: list[str]) -> None:
    once = sorted(names, key=natural_key)
    assert sorted(reversed(names), key=natural_key) == once


def test_captions_and_masks_are_paired_and_masks_are_not_images(tmp_path: Path) -> None:
    touch(tmp_path, "a.png", "a.txt", "a.caption", "b.jpg", "b.caption", "c.webp", "c-masklabel.png", "notes.txt")
    listing = Scanner().scan(tmp_path)
    by_rel = {e.rel: e for e in listing.entries}
    assert list(by_rel) == ["a.png", "b.jpg", "c.webp"]
    assert by_rel["a.png"].caption == "a.txt"  # .txt before .caption
    assert by_rel["b.jpg"].caption == "b.caption"
    assert by_rel["c.webp"].caption is None and by_rel["c.webp"].mask == "c-masklabel.png"
    assert by_rel["a.png"].stem == "a" and by_rel["a.png"].size == len("a.png")


def test_depth_lists_that_many_levels_of_subfolders(tmp_path: Path) -> None:
    touch(tmp_path, "top.png", "10_cat/one.png", "10_cat/one.txt", "10_cat/deep/two.png")
    assert rels(tmp_path, 0) == ["top.png"]
    assert rels(tmp_path, 1) == ["10_cat/one.png", "top.png"]
    assert rels(tmp_path, 2) == ["10_cat/deep/two.png", "10_cat/one.png", "top.png"]
    assert Scanner().scan(tmp_path, 1).entries[0].caption == "10_cat/one.txt"


def test_symlinks_are_never_followed_and_are_reported(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside, "secret.png", "deep/secret2.png", "secret.txt")
    data = tmp_path / "data"
    touch(data, "real.png")
    (data / "link.png").symlink_to(outside / "secret.png")
    (data / "real.txt").symlink_to(outside / "secret.txt")  # a planted caption
    (data / "linked_folder").symlink_to(outside, target_is_directory=True)
    (data / "dangling.png").symlink_to(tmp_path / "nowhere.png")
    listing = Scanner().scan(data, depth=3)
    assert [e.rel for e in listing.entries] == ["real.png"]
    assert listing.entries[0].caption is None
    assert {s.rel for s in listing.skipped} == {"dangling.png", "link.png", "linked_folder", "real.txt"}
    assert all("symbolic link" in s.reason for s in listing.skipped)


def test_hidden_names_are_not_dataset_files(tmp_path: Path) -> None:
    touch(tmp_path, "a.png", ".hidden.png", ".dataset-gates-journal.jsonl", ".git/x.png")
    listing = Scanner().scan(tmp_path, depth=2)
    assert [e.rel for e in listing.entries] == ["a.png"] and listing.skipped == ()


def test_a_fifo_named_like_an_image_is_reported(tmp_path: Path) -> None:
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(tmp_path / "pipe.png")
    listing = Scanner().scan(tmp_path)
    assert listing.entries == () and [(s.rel, s.reason) for s in listing.skipped] == [("pipe.png", "not a plain file")]


def test_an_unreadable_subfolder_is_reported_and_the_rest_listed(tmp_path: Path) -> None:
    if os.name == "nt" or os.geteuid() == 0:
        pytest.skip("permissions do not stop this user")
    touch(tmp_path, "a.png", "locked/b.png")
    (tmp_path / "locked").chmod(0)
    try:
        listing = Scanner().scan(tmp_path, 1)
    finally:
        (tmp_path / "locked").chmod(0o755)
    assert [e.rel for e in listing.entries] == ["a.png"] and listing.skipped[0].rel == "locked"


def test_not_a_folder_and_bad_depth_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="missing does not exist or is not a folder"):
        Scanner().scan(tmp_path / "missing")
    with pytest.raises(DatasetError, match="depth must be a whole number"):
        Scanner().scan(tmp_path, -1)


def test_rescan_of_an_unchanged_folder_reads_no_folder(tmp_path: Path, scandirs: list[str]) -> None:
    touch(tmp_path, "a.png", "b.png", "sub/c.png")
    settle(tmp_path, tmp_path / "sub")
    scanner = Scanner()
    first = scanner.scan(tmp_path, 1)
    assert len(scandirs) == 2
    assert scanner.scan(tmp_path, 1) is first
    assert len(scandirs) == 2  # one stat per folder, no scandir, no file stat


def test_rescan_sees_added_removed_and_renamed_files(tmp_path: Path) -> None:
    touch(tmp_path, "a.png", "b.png")
    settle(tmp_path)
    scanner = Scanner()
    scanner.scan(tmp_path)
    touch(tmp_path, "c.png")
    assert rels(tmp_path, scanner=scanner) == ["a.png", "b.png", "c.png"]
    (tmp_path / "a.png").unlink()
    (tmp_path / "b.png").rename(tmp_path / "z.png")
    assert rels(tmp_path, scanner=scanner) == ["c.png", "z.png"]


def test_a_file_replaced_by_rename_gets_its_new_size(tmp_path: Path) -> None:
    touch(tmp_path, "a.png")
    scanner = Scanner()
    assert scanner.scan(tmp_path).entries[0].size == 5
    (tmp_path / "new.tmp").write_bytes(b"123456789")
    os.replace(tmp_path / "new.tmp", tmp_path / "a.png")  # how editors save
    assert scanner.scan(tmp_path).entries[0].size == 9


def test_a_change_in_the_same_clock_tick_is_not_missed(tmp_path: Path, scandirs: list[str]) -> None:
    """A folder changed less than RACY_NS before it was listed is listed again next time, even
    when its (mtime, inode, size) looks the same (a coarse clock, a change in the same tick)."""
    touch(tmp_path, "a.png")
    stamp = os.stat(tmp_path).st_mtime_ns
    scanner = Scanner()
    scanner.scan(tmp_path)
    touch(tmp_path, "b.png")
    os.utime(tmp_path, ns=(stamp, stamp))  # the change hid behind the same mtime
    assert rels(tmp_path, scanner=scanner) == ["a.png", "b.png"]


def test_a_subfolder_scanned_on_its_own_and_within_its_parent(tmp_path: Path) -> None:
    touch(tmp_path, "a.png", "sub/b.png")
    scanner = Scanner()
    assert rels(tmp_path / "sub", scanner=scanner) == ["b.png"]
    assert rels(tmp_path, 1, scanner=scanner) == ["a.png", "sub/b.png"]
    touch(tmp_path, "sub/c.png")
    assert rels(tmp_path, 1, scanner=scanner) == ["a.png", "sub/b.png", "sub/c.png"]
    assert rels(tmp_path / "sub", scanner=scanner) == ["b.png", "c.png"]


def test_listings_of_two_depths_of_one_folder_stay_current(tmp_path: Path) -> None:
    touch(tmp_path, "a.png", "sub/b.png")
    scanner = Scanner()
    assert rels(tmp_path, 0, scanner=scanner) == ["a.png"]
    assert rels(tmp_path, 1, scanner=scanner) == ["a.png", "sub/b.png"]
    touch(tmp_path, "c.png")
    assert rels(tmp_path, 1, scanner=scanner) == ["a.png", "c.png", "sub/b.png"]
    assert rels(tmp_path, 0, scanner=scanner) == ["a.png", "c.png"]
