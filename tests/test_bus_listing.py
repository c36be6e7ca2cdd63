"""The folder bus's remembered listing (gates/bus/local/listing.py): what a re-list may skip,
and every way a change still shows. The contract's token tests run on it too."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from gates.bus.local import listing
from gates.bus.local.store import SLOT_FILE, SlotStore


def _image(seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 4, 4, 3, generator=torch.Generator().manual_seed(seed))


def _truth(store: SlotStore) -> list[dict]:
    """What list() must say: every slot's info, read afresh, newest first."""
    rows = [store.info(i).to_dict() for i in store.ids()]
    return sorted(rows, key=lambda s: s["created"], reverse=True)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> SlotStore:
    monkeypatch.setattr(listing, "RACY_NS", 0)  # every row is trusted at once: the strictest case
    s = SlotStore(tmp_path / "bus")
    for n in range(3):
        s.publish(f"s{n}", _image(n), meta={"n": n})
    return s


def test_an_unchanged_bus_reads_no_slot_file_again(store: SlotStore, monkeypatch: pytest.MonkeyPatch) -> None:
    first = [s.to_dict() for s in store.list()]
    token = store.listing_token()
    monkeypatch.setattr(SlotStore, "_describe", lambda *a: pytest.fail("a slot file was read again"))
    assert [s.to_dict() for s in store.list()] == first and store.listing_token() == token


def test_a_change_from_another_store_of_the_folder_shows(store: SlotStore) -> None:
    """Another process's store, as far as the listing can tell: writers touch no memory, only
    the bus folder's generation file."""
    store.list()
    other = SlotStore(store.root)
    other.publish("s1", _image(9), meta={"n": 9})
    other.pin("s0")
    assert [s.to_dict() for s in store.list()] == _truth(store)


def test_a_hand_edit_shows_at_the_next_full_check(store: SlotStore, monkeypatch: pytest.MonkeyPatch) -> None:
    store.list()
    (store.root / "s1" / SLOT_FILE).write_bytes((store.root / "s2" / SLOT_FILE).read_bytes())  # in place
    monkeypatch.setattr(listing, "FULL_CHECK_S", 0.0)
    assert {s.id: s.meta for s in store.list()}["s1"] == {"n": 2}


def test_a_slot_folder_made_or_removed_by_hand_shows_at_once(store: SlotStore) -> None:
    token = store.listing_token()
    os.rename(store.root / "s2", store.root / "moved")
    assert {s.id for s in store.list()} == {"s0", "s1", "moved"} and store.listing_token() != token


def test_a_damaged_row_is_read_again_every_time(store: SlotStore) -> None:
    good = (store.root / "s0" / SLOT_FILE).read_bytes()
    (store.root / "s0" / SLOT_FILE).write_bytes(good[:-8])
    assert {s.id: s.error for s in store.list()}["s0"]
    (store.root / "s0" / SLOT_FILE).write_bytes(good)  # repaired by hand: no bump
    assert {s.id: s.error for s in store.list()}["s0"] is None


def test_a_bump_that_cannot_write_leaves_listings_right(store: SlotStore) -> None:
    """A generation file that is no file (planted, or a bump failed) is no generation: every
    listing checks every slot's stats."""
    store.list()
    gen = store.root / listing.GENERATION_FILE
    gen.unlink()
    gen.mkdir()
    store.pin("s1")
    assert [s.to_dict() for s in store.list()] == _truth(store)
    (store.root / "s2" / "pinned").touch()  # by hand, no bump: still seen
    assert [s.to_dict() for s in store.list()] == _truth(store)


def test_a_full_generation_file_starts_anew(store: SlotStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(listing, "MAX_GENERATION_BYTES", 2)
    token = store.listing_token()
    store.pin("s0")
    assert (store.root / listing.GENERATION_FILE).stat().st_size == 1  # replaced: a new inode
    assert store.listing_token() != token and [s.to_dict() for s in store.list()] == _truth(store)


def test_a_row_read_in_the_same_clock_tick_as_a_change_is_read_again(
    store: SlotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stat as young as RACY_NS may hide a second change in one tick: such a row is never
    kept when the generation moves."""
    monkeypatch.setattr(listing, "RACY_NS", 10**18)
    store.list()
    reads = []
    describe = SlotStore._describe
    monkeypatch.setattr(
        SlotStore, "_describe", lambda self, v, names: reads.append(v.slot_id) or describe(self, v, names)
    )
    store.pin("s0")
    reads.clear()
    store.list()
    assert sorted(reads) == ["s0", "s1", "s2"]
