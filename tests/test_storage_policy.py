"""Slot history (id@-N), pins, the disk quota, and a real full disk."""

from __future__ import annotations

import errno
import os
import subprocess
import uuid
from pathlib import Path

import pytest
import torch
from policy_files import read_policy, write_policy

from gates.bus import codec
from gates.bus.errors import SlotNotFound, SlotWriteError
from gates.bus.ids import parse_ref
from gates.bus.local import history
from gates.bus.local.store import SLOT_FILE, THUMB_FILE, SlotStore
from gates.bus.policy import Policy, parse_size


def img(value: float, size: int = 16, dtype=torch.float32) -> torch.Tensor:
    return torch.full((1, size, size, 3), value, dtype=dtype)


def test_default_keeps_only_the_latest(store):
    for v in (1.0, 2.0, 3.0):
        store.publish("s", img(v))
    assert store.info("s").versions == 1
    assert not (store.slot_dir("s") / "history").exists()
    with pytest.raises(SlotNotFound, match="0 older"):
        store.load("s@-1")


def test_history_keeps_the_last_k_versions_bit_exact(store):
    write_policy(store.root, Policy(keep=3))
    for v in (1.0, 2.0, 3.0, 4.0):
        store.publish("s", img(v, dtype=torch.bfloat16), torch.full((1, 16, 16), v))
    assert store.load("s")[0].unique().item() == 4.0
    assert store.load("s@-1")[0].unique().item() == 3.0
    image, mask = store.load("s@-2")
    assert image.dtype == torch.bfloat16 and image.unique().item() == 2.0 and mask.unique().item() == 2.0
    with pytest.raises(SlotNotFound, match="2 older version"):
        store.load("s@-3")  # version 1 was pruned
    versions = store.history("s")
    assert [v.version for v in versions] == [0, -1, -2]
    assert all(v.versions == 3 for v in versions)
    assert [v.created for v in versions] == sorted((v.created for v in versions), reverse=True)
    assert all(v.has_thumb and store.thumbnail(v.ref).startswith(b"\x89PNG") for v in versions)
    assert [s.id for s in store.list()] == ["s"]  # versions are not slots


def test_history_uses_hard_links_not_copies(store):
    write_policy(store.root, Policy(keep=2))
    store.publish("s", img(1.0, size=64))
    first_inode = (store.slot_dir("s") / "slot.safetensors").stat().st_ino
    store.publish("s", img(2.0, size=64))
    (old,) = (store.slot_dir("s") / "history").glob("*.safetensors")
    assert old.stat().st_ino == first_inode


def freeze_timestamps(root: Path, when: int = 1_700_000_000) -> None:
    """Give every file under `root` one and the same mtime: a disk with 1- or 2-second
    timestamps (FAT32, exFAT, HFS+, some SMB shares) on which publishes come fast."""
    for folder, _, files in os.walk(root):
        for name in files:
            os.utime(os.path.join(folder, name), (when, when))


def test_history_on_a_disk_with_coarse_timestamps_loses_and_mixes_no_version(store):
    write_policy(store.root, Policy(keep=4))
    for n in range(12):
        store.publish("s", img(float(n)), meta={"n": n})
        freeze_timestamps(store.root)
        kept = list(range(n, max(-1, n - 4), -1))
        assert [v.meta["n"] for v in store.history("s")] == kept, f"after publish {n}"
        for back, m in enumerate(kept):
            data = store.read(f"s@-{back}" if back else "s")
            assert data.meta["n"] == m and data.image.unique().item() == float(m)


def test_history_kept_by_0_2_stays_older_than_every_new_version(store):
    """0.2.x named versions by their mtime_ns and wrote no number in the header."""
    folder = store.root / "s"
    (folder / "history").mkdir(parents=True)
    for n, mtime_ns in ((0, 1_700_000_000_000_000_000), (1, 1_700_000_001_000_000_000)):
        old = codec.encode({"image": img(float(n))}, {"n": n}, 1.7e9 + n)
        (folder / "history" / f"{mtime_ns:020d}.safetensors").write_bytes(old)
    (folder / SLOT_FILE).write_bytes(codec.encode({"image": img(2.0)}, {"n": 2}, 1.7e9 + 2))
    write_policy(store.root, Policy(keep=5))
    for n in (3, 4):
        store.publish("s", img(float(n)), meta={"n": n})
        freeze_timestamps(store.root)
    assert [v.meta["n"] for v in store.history("s")] == [4, 3, 2, 1, 0]
    store.publish("s", img(5.0), meta={"n": 5})
    assert [v.meta["n"] for v in store.history("s")] == [5, 4, 3, 2, 1]  # the oldest 0.2.x one pruned


def test_a_publish_after_a_crash_mid_archive_keeps_the_version_once(store):
    write_policy(store.root, Policy(keep=4))
    for n in (1, 2):
        store.publish("s", img(float(n)), meta={"n": n})
    folder = store.slot_dir("s")
    current, _ = history.numbers(folder, SLOT_FILE)
    history.archive_current(folder, SLOT_FILE, THUMB_FILE, current)  # archived, then the crash
    store.publish("s", img(3.0), meta={"n": 3})
    assert [v.meta["n"] for v in store.history("s")] == [3, 2, 1]


def test_lowering_keep_prunes_on_the_next_publish(store):
    write_policy(store.root, Policy(keep=4))
    for v in range(5):
        store.publish("s", img(float(v)))
    assert store.info("s").versions == 4
    write_policy(store.root, Policy(keep=2))
    store.publish("s", img(9.0))
    assert store.info("s").versions == 2
    assert store.load("s@-1")[0].unique().item() == 4.0
    leftovers = sorted(p.name for p in (store.slot_dir("s") / "history").iterdir())
    assert len(leftovers) == 2 and {Path(n).suffix for n in leftovers} == {".png", ".safetensors"}


@pytest.mark.parametrize("ref, expected", [("a", ("a", 0)), ("a@-1", ("a", 1)), ("a.b@-12", ("a.b", 12))])
def test_parse_ref(ref, expected):
    assert parse_ref(ref) == expected


@pytest.mark.parametrize("ref", ["a@1", "a@-0", "a@-", "@-1", "../a@-1", "a@-1000", "a@-01"])
def test_bad_refs(ref):
    with pytest.raises(ValueError):
        parse_ref(ref)


def test_pin_and_unpin(store):
    store.publish("p", img(1.0))
    assert store.pin("p").pinned is True
    assert store.info("p").pinned and [s.pinned for s in store.list()] == [True]
    assert store.pin("p", False).pinned is False
    with pytest.raises(SlotNotFound):
        store.pin("nope")


def test_quota_prunes_oldest_unpinned_first(store):
    sizes = {}
    for name in ("old", "pinned-old", "mid", "new"):
        sizes[name] = store.publish(name, img(1.0, size=64)).bytes
    store.pin("pinned-old")
    per_slot = store.usage() // 4
    write_policy(store.root, Policy(quota_bytes=int(per_slot * 4.5)))
    store.publish("newest", img(2.0, size=64))  # 5 slots > 4.5: the oldest unpinned goes
    assert store.ids() == ["mid", "new", "newest", "pinned-old"]
    write_policy(store.root, Policy(quota_bytes=int(per_slot * 1.5)))
    store.publish("latest", img(3.0, size=64))
    # only the pinned slot and the one just published survive
    assert store.ids() == ["latest", "pinned-old"]
    assert store.usage() > per_slot * 1.5  # still over: a warning, but nothing pinned is lost


def test_quota_never_prunes_damaged_slots(store):
    store.publish("broken", img(1.0, size=64))
    (store.slot_dir("broken") / "slot.safetensors").write_bytes(b"junk")
    write_policy(store.root, Policy(quota_bytes=10))
    store.publish("fresh", img(1.0, size=64))
    assert set(store.ids()) == {"broken", "fresh"}


@pytest.mark.parametrize(
    "text, expected",
    [
        ("500M", 500 << 20),
        ("10G", 10 << 30),
        ("1.5GiB", int(1.5 * (1 << 30))),
        ("1048576", 1 << 20),
        ("none", None),
        ("0", None),
    ],
)
def test_parse_size(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", [{"keep": 0}, {"keep": 101}, {"keep": "3"}, {"quota_bytes": -1}, []])
def test_bad_policy_files_are_errors(store, bad):
    store.root.mkdir(parents=True)
    (store.root / ".policy.json").write_text(__import__("json").dumps(bad))
    with pytest.raises(ValueError):
        read_policy(store.root)


@pytest.mark.parametrize(
    "text",
    ["[" * 40_000, "[" * 20_000 + "]" * 20_000, '{"keep":' * 7_000 + "1" + "}" * 7_000],
    ids=["40 KB of [", "balanced", "objects"],
)
def test_a_policy_file_nested_deep_is_an_error_not_a_crash(store, text):
    store.root.mkdir(parents=True)
    (store.root / ".policy.json").write_text(text)
    with pytest.raises(ValueError, match="storage policy of bus 'bus' is unreadable: nested deeper than 64"):
        read_policy(store.root)
    with pytest.raises(ValueError, match="nested deeper than 64"):
        store.publish("s", img(1.0))
    assert store.ids() == []


def test_policy_round_trip(store):
    write_policy(store.root, Policy(keep=5, quota_bytes=1 << 30))
    assert read_policy(store.root) == Policy(keep=5, quota_bytes=1 << 30)
    assert store.ids() == []  # the policy file is not a slot


@pytest.fixture
def tiny_disk(tmp_path):
    """A real 1 MiB tmpfs, so ENOSPC comes from the kernel, not from a mock."""
    mount = tmp_path / f"tmpfs-{uuid.uuid4().hex[:6]}"
    mount.mkdir()
    try:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {exc}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_real_full_disk_keeps_the_old_slot(tiny_disk):
    store = SlotStore(tiny_disk / "bus")
    old = torch.rand(1, 64, 64, 3)
    store.publish("s", old)
    with pytest.raises(SlotWriteError, match=r"previous version.*unchanged") as caught:
        store.publish("s", torch.rand(1, 512, 512, 3))  # 3 MiB into a 1 MiB disk
    assert (
        "No space" in str(caught.value)
        or "space" in str(caught.value).lower()
        or getattr(caught.value.__cause__, "errno", None) == errno.ENOSPC
    )
    assert torch.equal(store.load("s")[0], old)
    assert sorted(os.listdir(store.slot_dir("s"))) == ["slot.safetensors", "thumb.png"]
    store.publish("s", old + 1)  # space was given back: the next small publish works
    assert torch.equal(store.load("s")[0], old + 1)


def test_a_pinned_png_layout_slot_survives_the_quota(store):
    from PIL import Image

    d = store.root / "legacy"
    d.mkdir(parents=True)
    Image.new("RGB", (64, 64), (10, 20, 30)).save(d / "image.png")
    assert store.pin("legacy").pinned and store.info("legacy").pinned
    write_policy(store.root, Policy(quota_bytes=1))
    store.publish("fresh", img(1.0))
    assert store.ids() == ["fresh", "legacy"]


def test_quota_pruning_that_loses_a_race_does_not_fail_the_publish(store, monkeypatch):
    store.publish("old", img(1.0, size=64))
    write_policy(store.root, Policy(quota_bytes=1))
    real_delete = SlotStore.delete

    def delete_raced(self, slot_id):
        real_delete(self, slot_id)  # another process got there first
        real_delete(self, slot_id)

    monkeypatch.setattr(SlotStore, "delete", delete_raced)
    info = store.publish("new", img(2.0, size=64))
    assert info.id == "new" and store.ids() == ["new"]


def test_delete_reports_the_bytes_it_freed(store):
    store.publish("a", img(1.0, size=64))
    before = store.usage()
    freed = store.delete("a")
    assert freed > 0 and store.usage() == before - freed
