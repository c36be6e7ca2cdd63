"""load_page: the order of a Dataset Load (roots, scan, journal, filter, claim, decode, pad) and its refusals."""

from __future__ import annotations

from pathlib import Path

import pytest
from dataset_files import noise, png8

from gates.dataset.errors import DatasetError, RootRefused
from gates.dataset.journal import Decision, Journal
from gates.dataset.loader import MAX_PAGE, PageRequest, load_page
from gates.dataset.roots import Roots

ANY = Roots(None)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "set"
    root.mkdir()
    for i in range(6):
        png8(root / f"{i}.png", noise(8 + i, 10, 3, seed=i))
    return root


def request(folder: Path, **kw) -> PageRequest:
    return PageRequest(str(folder), **({"size": 2, "owner": "proc@elsewhere:1:1"} | kw))


@pytest.mark.parametrize(
    ("kw", "message"), [({"size": 0}, "1 to"), ({"size": MAX_PAGE + 1}, "1 to"), ({"index": -1}, "starts at 0")]
)
def test_a_page_size_or_number_out_of_range_is_refused(folder, kw, message):
    with pytest.raises(DatasetError, match=message):
        load_page(request(folder, **kw), ANY)


def test_a_file_or_a_missing_folder_is_not_a_dataset(folder):
    with pytest.raises(DatasetError, match="is not a folder"):
        load_page(request(folder / "0.png"), ANY)
    with pytest.raises(DatasetError, match="is not a folder"):
        load_page(request(folder / "nope"), ANY)
    with pytest.raises(RootRefused):
        load_page(request(folder), Roots([folder / "0.png"]))


def test_a_page_of_only_broken_files_is_no_page_and_lists_each(folder):
    for i in range(6):
        (folder / f"{i}.png").write_bytes(b"")
    loaded = load_page(request(folder), ANY)
    assert loaded.done and loaded.image is None and len(loaded.failed) == 6
    assert Journal(folder).held_by_others("someone") == frozenset()  # nothing stays claimed


def test_each_page_claims_its_files_and_hands_the_last_one_back(folder):
    first = load_page(request(folder), ANY)
    assert first.page is not None and first.page.owner == "proc@elsewhere:1:1"
    assert Journal(folder).held_by_others("me") == {"0.png", "1.png"}
    again = load_page(request(folder), ANY)  # the same owner: its earlier page is over
    assert [i.rel for i in again.page.items] == ["0.png", "1.png"]
    other = load_page(request(folder, owner="proc@another:2:2"), ANY)
    assert [i.rel for i in other.page.items] == ["2.png", "3.png"]
    assert (other.first, other.matching) == (0, 4)


def test_the_page_number_counts_in_the_filtered_files(folder):
    Journal(folder).decide([Decision("1.png", 0)], "x")
    loaded = load_page(request(folder, show="all", index=1), ANY)
    assert [i.rel for i in loaded.page.items] == ["2.png", "3.png"]
    loaded = load_page(request(folder, show="undecided", index=1), ANY)
    assert [i.rel for i in loaded.page.items] == ["3.png", "4.png"]
    assert load_page(request(folder, show="undecided", index=3), ANY).done
