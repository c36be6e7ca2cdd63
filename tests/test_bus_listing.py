"""The folder bus's remembered listing (gates/bus/local/listing.py): what a re-list may skip,
and every way a change still shows. The contract's token tests run on it too."""

from __future__ import annotations

import json
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


# -- the rows a new process starts with (LISTING_FILE) ----------------------------------------
def _new_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """What a new process (a `gates ls`) has: no listing in memory, only the bus folder."""
    monkeypatch.setattr(listing, "_listings", {})


@pytest.fixture
def saved(store: SlotStore, monkeypatch: pytest.MonkeyPatch) -> SlotStore:
    """The store with its rows saved, as a listing that read many slots leaves them."""
    monkeypatch.setattr(listing, "PERSIST_MIN_READS", 1)
    store.list()
    assert (store.root / listing.LISTING_FILE).is_file()
    return store


def test_a_small_listing_saves_nothing(store: SlotStore) -> None:
    store.list()
    assert not (store.root / listing.LISTING_FILE).exists()


def test_a_new_process_lists_from_the_saved_rows_reading_no_slot_file(
    saved: SlotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, token = [s.to_dict() for s in saved.list()], saved.listing_token()
    _new_process(monkeypatch)
    monkeypatch.setattr(SlotStore, "_describe", lambda *a: pytest.fail("a slot file was read again"))
    other = SlotStore(saved.root)
    assert [s.to_dict() for s in other.list()] == first and other.listing_token() == token


def test_a_slot_changed_since_the_rows_were_saved_is_read_again(
    saved: SlotStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    saved.publish("s1", _image(9), meta={"n": 9})
    saved.pin("s0")
    (saved.root / "s2" / SLOT_FILE).write_bytes((saved.root / "s1" / SLOT_FILE).read_bytes())  # by hand, no bump
    saved.publish("s3", _image(3), meta={"n": 3})
    saved.delete("s1")
    _new_process(monkeypatch)
    assert [s.to_dict() for s in SlotStore(saved.root).list()] == _truth(saved)


def test_the_saved_rows_count_for_no_quota(saved: SlotStore, monkeypatch: pytest.MonkeyPatch) -> None:
    used = saved.usage()
    monkeypatch.setattr(listing, "PERSIST_MIN_READS", 10**9)
    (saved.root / listing.LISTING_FILE).unlink()
    assert saved.usage() == used


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _link(path: Path) -> None:
    real = path.with_name("real.json")
    path.rename(real)
    path.symlink_to(real)


def _edit(change):
    def edit(path: Path) -> None:
        doc = json.loads(path.read_bytes())
        change(doc)
        path.write_text(json.dumps(doc))

    return edit


def _each_row(change):
    def edit(doc: dict) -> None:
        for row in doc["rows"].values():
            change(row)

    return _edit(edit)


def _forge(row: list) -> None:
    row[4][listing.FIELDS.index("meta")] = {"forged": 1}
    row[1][0] += 1  # under stats the slot file does not have


HOSTILE = {
    "not JSON": lambda p: p.write_bytes(b"{not json"),
    "nested deep": lambda p: p.write_bytes(b"[" * 100_000 + b"]" * 100_000),
    "a list": lambda p: p.write_text("[]"),
    "another format": _edit(lambda d: d.update(format="x")),
    "another slot file name": _edit(lambda d: d.update(slot_file="other.safetensors")),
    "fields not names": _edit(lambda d: d.update(fields=[1, 2])),
    "rows a list": _edit(lambda d: d.update(rows=[])),
    "rows short": _each_row(lambda r: r.pop()),
    "keys of strings": _each_row(lambda r: r.__setitem__(1, ["1", "2", "3", "4"])),
    "history a number": _each_row(lambda r: r.__setitem__(3, 1)),
    "no slot file key": _each_row(lambda r: r.__setitem__(1, None)),
    "created a string": _each_row(lambda r: r[4].__setitem__(listing.FIELDS.index("created"), "now")),
    "created past any clock": _each_row(lambda r: r[4].__setitem__(listing.FIELDS.index("created"), 1e308)),
    "version a string": _each_row(lambda r: r[4].__setitem__(listing.FIELDS.index("version"), "x")),
    "pinned a number": _each_row(lambda r: r[4].__setitem__(listing.FIELDS.index("pinned"), 2)),
    "a shape of strings": _each_row(lambda r: r[4].__setitem__(listing.FIELDS.index("image_shape"), ["1"])),
    "rows under other stats": _each_row(_forge),
    "a symlink": _link,
    "a FIFO": _fifo,
    "too big": lambda p: None,
}


@pytest.mark.parametrize("how", sorted(HOSTILE))
def test_saved_rows_that_are_not_right_only_mean_those_slots_are_read(
    saved: SlotStore, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    path = saved.root / listing.LISTING_FILE
    if how == "a FIFO":
        path.unlink()
    HOSTILE[how](path)
    if how == "too big":
        monkeypatch.setattr(listing, "MAX_LISTING_BYTES", 10)
    monkeypatch.setattr(listing, "PERSIST_MIN_READS", 10**9)  # leave the file as it is
    _new_process(monkeypatch)
    assert [s.to_dict() for s in SlotStore(saved.root).list()] == _truth(saved)
