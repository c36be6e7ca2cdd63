"""The folder bus's slot locks: private, one per id whatever its case, removed with their slot,
and never held by two writers, even while a lock file is being removed."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
import torch

from gates.bus.errors import SlotNotFound, SlotWriteError
from gates.bus.local import locks
from gates.bus.local.store import SlotStore


def image(value: float = 0.5) -> torch.Tensor:
    return torch.full((1, 4, 4, 3), value)


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """A busy lock is reported after 0.3 s instead of 120 s."""
    monkeypatch.setattr(locks, "LOCK_TIMEOUT_S", 0.3)


def held_elsewhere(root: Path, slot_id: str) -> tuple[threading.Event, threading.Thread]:
    """A thread holding `slot_id`'s lock until told: (release, thread)."""
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with locks.slot_lock(root, slot_id, "bus"):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    assert holding.wait(10)
    return release, thread


@pytest.mark.skipif(os.name == "nt", reason="POSIX modes")
def test_lock_files_are_private_and_so_is_a_locks_folder_0_2_left_open(store: SlotStore) -> None:
    (store.root / locks.LOCK_DIR).mkdir(parents=True)
    os.chmod(store.root / locks.LOCK_DIR, 0o755)  # as 0.2.x made it
    store.publish("a", image())
    assert mode(store.root / locks.LOCK_DIR) == 0o700
    assert mode(store.root / locks.LOCK_DIR / "a.lock") == 0o600


def test_ids_that_differ_only_in_case_share_one_lock(store: SlotStore, quick: None) -> None:
    release, thread = held_elsewhere(store.root, "Slot")
    try:
        with pytest.raises(SlotWriteError, match="'slot' is busy"):
            store.publish("slot", image())
        store.publish("other", image())  # another key is free
    finally:
        release.set()
        thread.join()


def test_a_rename_between_case_variants_takes_its_lock_once(store: SlotStore, quick: None) -> None:
    store.publish("a", image(0.25))
    assert store.rename("a", "A").id == "A"  # would wait on its own lock, then say busy
    assert store.ids() == ["A"] and store.read("A").image.unique().item() == 0.25


@pytest.fixture
def case_insensitive(store: SlotStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Names directly under the bus folder found whatever their case, as macOS and Windows do."""
    real_lstat = os.lstat

    def lstat(path, *args, **kwargs):
        try:
            return real_lstat(path, *args, **kwargs)
        except FileNotFoundError:
            if isinstance(path, int) or Path(os.fsdecode(path)).parent != store.root:
                raise
            name = Path(os.fsdecode(path)).name.lower()
            twin = next((n for n in os.listdir(store.root) if n.lower() == name), None)
            if twin is None:
                raise
            return real_lstat(store.root / twin, *args, **kwargs)

    monkeypatch.setattr(os, "lstat", lstat)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_rename_to_another_case_on_a_case_insensitive_disk_respells_the_slot(
    store: SlotStore, quick: None, case_insensitive: None, overwrite: bool
) -> None:
    store.publish("a", image(0.25))
    assert store.rename("a", "A", overwrite=overwrite).id == "A"  # not "A already exists", nor deleted
    assert store.ids() == ["A"] and store.read("A").image.unique().item() == 0.25


def test_lock_files_go_with_their_slots(store: SlotStore) -> None:
    for slot_id in ("a", "b", "c", "q"):
        store.publish(slot_id, image())
    store.delete("a")
    store.rename("b", "d")
    with pytest.raises(SlotNotFound):
        store.delete("never-there")
    store.set_policy(quota_bytes=store.usage() // 2)  # the quota deletes the oldest
    assert sorted(os.listdir(store.root / locks.LOCK_DIR)) == sorted(f"{s}.lock" for s in store.ids())


def test_a_writer_waiting_on_a_removed_lock_file_locks_the_file_there_now(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The holder of a slot that is gone removes the lock file, then lets go; the writer that
    was waiting on that file must not think it holds the lock while a third takes the new one."""
    root = tmp_path / "bus"
    real_try_lock, waiting = locks._try_lock, threading.Event()

    def try_lock(fd: int) -> bool:
        got = real_try_lock(fd)
        if not got:
            waiting.set()
        return got

    monkeypatch.setattr(locks, "_try_lock", try_lock)
    with locks.slot_lock(root, "x", "bus"):  # no slot x: the file is removed on the way out
        holding, release = threading.Event(), threading.Event()

        def wait_then_hold() -> None:
            with locks.slot_lock(root, "x", "bus"):
                holding.set()
                release.wait(10)

        second = threading.Thread(target=wait_then_hold)
        second.start()
        assert waiting.wait(10)  # it has the file open and waits for it
    try:
        assert holding.wait(10)
        monkeypatch.setattr(locks, "LOCK_TIMEOUT_S", 0.3)
        with pytest.raises(SlotWriteError, match="busy"), locks.slot_lock(root, "x", "bus"):
            pass
    finally:
        release.set()
        second.join()
