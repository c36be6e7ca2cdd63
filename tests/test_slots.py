"""The slot store: bit-exact round trips, listing, ids, atomicity and damaged files."""

from __future__ import annotations

import errno
import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import xxhash
from PIL import Image
from safetensors.torch import save_file

from gates import images
from gates.bus import codec
from gates.bus.errors import SlotCorrupt, SlotNotFound, SlotWriteError
from gates.bus.ids import validate_id
from gates.bus.local import slot_file as slot_format
from gates.bus.local import store as slots
from gates.bus.local.store import SlotStore
from gates.bus.tensors import dtype_name

REPO = Path(__file__).resolve().parents[1]


def rand_image(b=2, h=24, w=16, c=3, dtype=torch.float32, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand((b, h, w, c), generator=g).to(dtype)


def assert_exact(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(
        a.view(torch.uint8) if a.dtype == torch.bfloat16 else a, b.view(torch.uint8) if b.dtype == torch.bfloat16 else b
    )


# -- round trips ------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_round_trip_is_bit_exact_for_every_float_dtype(store, dtype):
    image = rand_image(dtype=dtype)
    image[0, 0, 0, 0] = float("nan")  # bit patterns, not just values, must survive
    image[0, 0, 0, 1] = -0.0
    image[1, 1, 1, 1] = 3.5  # out-of-range values are data too
    mask = torch.rand(2, 24, 16).to(dtype)
    store.publish("x", image, mask)
    got_image, got_mask = store.load("x")
    assert_exact(got_image.view(torch.uint8), image.view(torch.uint8))
    assert_exact(got_mask, mask)


def test_whole_batch_round_trip(store):
    image = rand_image(b=16, h=33, w=17)
    mask = torch.rand(16, 33, 17)
    info = store.publish("batch", image, mask)
    assert info.batch == 16
    got_image, got_mask = store.load("batch")
    assert_exact(got_image, image)
    assert_exact(got_mask, mask)


def test_non_contiguous_input_stores_its_values(store):
    base = rand_image(b=2, h=16, w=24)
    image = base.transpose(1, 2)  # [2,24,16,3], non-contiguous view
    assert not image.is_contiguous()
    mask = torch.rand(2, 16, 24).transpose(1, 2)
    store.publish("nc", image, mask)
    got_image, got_mask = store.load("nc")
    assert_exact(got_image, image.contiguous())
    assert_exact(got_mask, mask.contiguous())


def test_missing_mask_loads_as_zeros_of_the_batch_shape(store):
    store.publish("nomask", rand_image(b=3, h=10, w=12, dtype=torch.float16))
    _image, mask = store.load("nomask")
    assert mask.shape == (3, 10, 12) and mask.dtype == torch.float32
    assert not mask.any()
    assert store.info("nomask").mask_shape is None


def test_single_mask_for_a_batch_and_2d_mask_are_kept_as_given(store):
    store.publish("m1", rand_image(b=4), torch.rand(1, 24, 16))
    assert store.load("m1")[1].shape == (1, 24, 16)
    store.publish("m2", rand_image(b=1), torch.rand(24, 16))
    assert store.load("m2")[1].shape == (24, 16)


@pytest.mark.parametrize(
    "mask, message",
    [
        (torch.rand(2, 20, 16), "does not match image size"),
        (torch.rand(3, 24, 16), "must be 1 or the image batch"),
        (torch.ones(2, 24, 16, dtype=torch.int64), "float tensor"),
    ],
)
def test_mask_mismatch_is_rejected_at_publish(store, mask, message):
    store.publish("keep", rand_image())
    before = store.load("keep")[0]
    with pytest.raises(ValueError, match=message):
        store.publish("keep", rand_image(seed=1), mask)
    assert_exact(store.load("keep")[0], before)


@pytest.mark.parametrize(
    "image, message",
    [
        (torch.rand(24, 16, 3), r"\[B,H,W,C\]"),
        (torch.zeros(1, 4, 4, 3, dtype=torch.uint8), "float tensor"),
        (torch.rand(1, 4, 4, 5), "C in 1..4"),
        (torch.rand(0, 4, 4, 3), "B>=1"),
        ("not a tensor", r"\[B,H,W,C\]"),
    ],
)
def test_bad_images_are_rejected(store, image, message):
    with pytest.raises(ValueError, match=message):
        store.publish("bad", image)
    assert not store.exists("bad")


def test_header_carries_metadata(store):
    image = rand_image(dtype=torch.bfloat16)
    store.publish("meta", image, torch.rand(2, 24, 16), meta={"node": "12:5", "prompt": "p1", "route": 2})
    info = store.info("meta")
    assert info.image_shape == [2, 24, 16, 3] and info.image_dtype == "bfloat16"
    assert info.mask_shape == [2, 24, 16] and info.mask_dtype == "float32"
    assert info.meta == {"node": "12:5", "prompt": "p1", "route": 2}
    assert info.checksum and info.checksum.startswith("xxh3x1m:")
    assert abs(info.created - time.time()) < 60
    from safetensors import safe_open

    with safe_open(store.slot_dir("meta") / slots.SLOT_FILE, "pt") as f:
        header = f.metadata()
    assert header["format"] == codec.FORMAT and header["version"] == str(codec.FORMAT_VERSION)
    assert json.loads(header["meta"]) == {"node": "12:5", "prompt": "p1", "route": 2}


def test_loaded_tensors_own_their_memory(store):
    image = rand_image()
    store.publish("own", image)
    got, _ = store.load("own")
    path = store.slot_dir("own") / slots.SLOT_FILE
    with open(path, "r+b") as f:  # scribble over the file in place: a memory map would see it
        size = f.seek(0, 2)
        f.seek(size - image.numel() * 4)
        f.write(b"\0" * image.numel() * 4)
    store.delete("own")
    assert_exact(got, image)


needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@needs_cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_load_straight_to_cuda(store, dtype):
    image = rand_image(dtype=dtype)
    store.publish("gpu", image.cuda())
    got, mask = store.load("gpu", device="cuda")
    assert got.is_cuda and mask.is_cuda
    assert_exact(got.cpu(), image)
    assert_exact(mask.cpu(), torch.zeros(2, 24, 16))


@needs_cuda
def test_a_slot_read_to_cuda_on_several_threads_is_exact_latent_included(store, several_readers):
    image, mask = _several_chunks()
    latent = {"samples": torch.randn(3, 4, 75, 100, dtype=torch.bfloat16)}
    store.publish("gpu", image, mask, latent=latent)
    data = store.read("gpu", device="cuda")
    assert all(t.device.type == "cuda" for t in (data.image, data.mask, data.latent["samples"]))
    assert_exact(data.image.cpu(), image)
    assert_exact(data.mask.cpu(), mask)
    assert_exact(data.latent["samples"].cpu(), latent["samples"])


@needs_cuda
def test_a_damaged_slot_read_to_cuda_fails_its_checksum(store, several_readers):
    store.publish("gpu", *_several_chunks())
    _flip(store, "gpu", -1)
    with pytest.raises(SlotCorrupt, match="checksum"):
        store.load("gpu", device="cuda")


def _seed_folder(store: SlotStore, slot_id: str = "legacy") -> tuple[Path, np.ndarray]:
    """A folder as the seed's pack wrote it: image.png and a white mask.png."""
    d = store.root / slot_id
    d.mkdir(parents=True)
    rgb = np.random.default_rng(0).integers(0, 256, (6, 4, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(d / "image.png")
    Image.fromarray(np.full((6, 4), 255, np.uint8), "L").save(d / "mask.png")
    return d, rgb


def test_a_seed_png_folder_migrates_on_first_access_with_the_same_values(store):
    d, rgb = _seed_folder(store)
    mtime = (d / "image.png").stat().st_mtime
    image, mask = store.load("legacy")
    assert image.shape == (1, 6, 4, 3) and image.dtype == torch.float32
    assert torch.equal(image, torch.from_numpy(rgb.astype(np.float32) / 255.0)[None])
    assert mask.shape == (1, 6, 4) and bool((mask == 1.0).all())
    assert sorted(p.name for p in d.iterdir()) == ["slot.safetensors", "thumb.png"]
    info = store.info("legacy")
    assert info.image_shape == [1, 6, 4, 3] and info.created == mtime
    assert info.meta == {"source": "migrated from the PNG layout"} and info.checksum.startswith("xxh3x1m:")


def test_listing_migrates_and_a_dry_run_changes_nothing(store):
    d, _ = _seed_folder(store)
    assert store.migrate_all(dry_run=True) == [("legacy", None)]
    assert (d / "image.png").is_file() and not (d / "slot.safetensors").exists()
    assert [s.id for s in store.list()] == ["legacy"]
    assert (d / "slot.safetensors").is_file() and not (d / "image.png").exists()
    assert store.migrate_all() == []


def test_a_seed_folder_that_cannot_be_read_keeps_its_pngs_and_lists_damaged(store):
    d = store.root / "broken"
    d.mkdir(parents=True)
    (d / "image.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    assert [(s.id, "cannot be migrated" in (s.error or "")) for s in store.list()] == [("broken", True)]
    assert (d / "image.png").is_file() and not (d / "slot.safetensors").exists()
    assert store.migrate_all() == [("broken", store.migrate_all()[0][1])] and store.migrate_all()[0][1]


# -- listing, thumbnails, delete, rename ---------------------------------------------------------


def test_list_reports_every_slot_from_headers(store):
    store.publish("a", rand_image(b=1, h=8, w=8))
    time.sleep(0.01)
    store.publish("b", rand_image(b=5, h=8, w=8, dtype=torch.float16), torch.rand(5, 8, 8))
    listed = {s.id: s for s in store.list()}
    assert set(listed) == {"a", "b"}
    assert listed["b"].batch == 5 and listed["b"].image_dtype == "float16"
    assert listed["b"].bytes == (store.slot_dir("b") / slots.SLOT_FILE).stat().st_size
    assert listed["a"].has_thumb and store.thumbnail("a").startswith(b"\x89PNG")
    assert [s.id for s in store.list()] == ["b", "a"]  # newest first
    assert listed["b"].to_dict()["batch"] == 5


def test_list_does_not_read_tensor_data(store, monkeypatch):
    store.publish("a", rand_image())

    def no_data(*args, **kwargs):
        raise AssertionError("list() read tensor data")

    monkeypatch.setattr(slot_format, "read_tensors", no_data)
    monkeypatch.setattr(slot_format, "read_rows", no_data)
    assert [s.id for s in store.list()] == ["a"]


def test_empty_or_missing_bus_lists_nothing(tmp_path):
    assert SlotStore(tmp_path / "nowhere").list() == []


def test_thumbnail_is_small_png_of_first_images(store):
    image = torch.zeros(6, 600, 400, 3)
    image[0, ..., 0] = 1.0  # first image red, the rest black
    store.publish("big", image)
    with Image.open(io.BytesIO(store.thumbnail("big"))) as thumb:
        assert thumb.format == "PNG" and max(thumb.size) <= 256
        w, h = thumb.size
        assert w > h  # a strip of several images side by side
        first = thumb.convert("RGB").getpixel((2, h // 2))
        last = thumb.convert("RGB").getpixel((w - 2, h // 2))
    assert first[0] > 200 and first[1] < 30 and last == (0, 0, 0)


def test_delete_and_rename(store):
    image = rand_image()
    store.publish("one", image)
    store.publish("two", rand_image(seed=3))
    with pytest.raises(FileExistsError):
        store.rename("one", "two")
    info = store.rename("one", "three")
    assert info.id == "three" and not store.exists("one")
    assert_exact(store.load("three")[0], image)
    store.rename("three", "two", overwrite=True)
    assert_exact(store.load("two")[0], image)
    store.delete("two")
    assert store.list() == [] and not any(p.name.startswith(".trash") for p in store.root.iterdir())
    with pytest.raises(SlotNotFound, match="two"):
        store.delete("two")
    with pytest.raises(SlotNotFound, match="two"):
        store.load("two")
    with pytest.raises(SlotNotFound):
        store.rename("two", "four")


# -- ids and paths ---------------------------------------------------------------------------


@pytest.mark.parametrize("good", ["a", "A-1_b.c", "x" * 64, "0", "run.2024-01-01", "_"])
def test_valid_ids(good):
    assert validate_id(good) == good


@pytest.mark.parametrize(
    "bad",
    [
        "",
        ".",
        "..",
        ".hidden",
        "a/b",
        "a\\b",
        "../etc",
        "/abs",
        "C:\\x",
        "x" * 65,
        "a b",
        "trailing.",
        "nul",
        "CON",
        "com1.txt",
        "slot@-1x",
        "a@-0",
        "é",
        "a\0b",
        None,
        3,
    ],
)
def test_invalid_ids_name_the_rule(store, bad):
    rule = "reserves for devices" if bad in ("nul", "CON", "com1.txt") else "letters, digits"
    with pytest.raises(ValueError, match=rule):
        validate_id(bad)
    with pytest.raises(ValueError, match=rule):
        store.publish(bad, rand_image())
    with pytest.raises(ValueError):
        store.load(bad)


def test_symlinked_slot_cannot_escape_the_bus(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    store.root.mkdir(parents=True)
    (store.root / "evil").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SlotCorrupt, match="symbolic link"):
        store.publish("evil", rand_image())
    assert list(outside.iterdir()) == []


# -- damaged files -----------------------------------------------------------------------------


def _slot_file(store: SlotStore, slot_id: str) -> Path:
    return store.slot_dir(slot_id) / slots.SLOT_FILE


def _flip(store: SlotStore, slot_id: str, where: int | float, bits: int = 0x01) -> None:
    """Flip `bits` of one byte of the slot's file: at offset `where` (negative from the end),
    or, for a float in 0..1, that far into the tensor data."""
    path = _slot_file(store, slot_id)
    data = bytearray(path.read_bytes())
    if isinstance(where, float):
        header_end = 8 + int.from_bytes(data[:8], "little")
        where = header_end + int(where * (len(data) - header_end - 1))
    data[where] ^= bits
    path.write_bytes(bytes(data))


def test_truncated_file_is_a_clear_error(store):
    store.publish("t", rand_image())
    path = _slot_file(store, "t")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(SlotCorrupt, match="'t'"):
        store.load("t")
    with pytest.raises(SlotCorrupt, match="'t'"):
        store.info("t")
    listed = store.list()
    assert listed[0].id == "t" and "'t'" in listed[0].error


@pytest.mark.parametrize("content", [b"", b"garbage" * 10, b"\xff" * 8 + b"{}"])
def test_garbage_file_is_a_clear_error(store, content):
    store.publish("g", rand_image())
    _slot_file(store, "g").write_bytes(content)
    with pytest.raises(SlotCorrupt, match="'g'"):
        store.load("g")


def test_foreign_safetensors_file_is_refused(store):
    store.slot_dir("f").mkdir(parents=True)
    save_file({"weight": torch.zeros(3)}, str(_slot_file(store, "f")))
    with pytest.raises(SlotCorrupt, match="not a valid Dataset Gates slot"):
        store.load("f")


def test_flipped_bit_fails_the_checksum(store):
    image = rand_image()
    store.publish("c", image)
    _flip(store, "c", -5)
    with pytest.raises(SlotCorrupt, match="checksum"):
        store.load("c")
    got, _ = store.load("c", verify=False)
    assert not torch.equal(got, image)


@pytest.fixture
def several_readers(monkeypatch):
    """Loads of any size read on several threads, as a load of 8 MiB or more does."""
    monkeypatch.setattr(slot_format, "PARALLEL_MIN", 0)
    monkeypatch.setattr(slot_format, "MAX_READERS", 3)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    assert slot_format._reader_count(5 * codec.READ_CHUNK) == 3


def _several_chunks(b: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """About 5 MiB of image and mask: five 1 MiB chunks and a short last one."""
    image = rand_image(b=b, h=300, w=400, seed=4)
    return image, torch.rand(b, 300, 400, generator=torch.Generator().manual_seed(5))


def test_a_load_read_on_several_threads_is_exact(store, several_readers):
    image, mask = _several_chunks()
    store.publish("par", image, mask)
    got_image, got_mask = store.load("par")
    assert_exact(got_image, image)
    assert_exact(got_mask, mask)


@pytest.mark.parametrize("where", [0.0, 0.35, 0.61, 1.0])
def test_a_flipped_byte_in_any_readers_chunk_fails_the_load(store, several_readers, where):
    store.publish("par", *_several_chunks())
    _flip(store, "par", where, 0x40)
    with pytest.raises(SlotCorrupt, match="checksum"):
        store.load("par")


def test_a_file_cut_short_under_several_readers_is_damage_not_a_hang(store, several_readers, monkeypatch):
    store.publish("par", *_several_chunks())
    path = _slot_file(store, "par")
    full = path.read_bytes()
    real = slot_format.read_header

    def cut_after_header(f):  # the header checked out; then someone truncates the file
        header = real(f)
        os.truncate(path, len(full) - 3 * codec.READ_CHUNK)
        return header

    monkeypatch.setattr(slot_format, "read_header", cut_after_header)
    with pytest.raises(SlotCorrupt, match="ends early"):
        slots.SlotStore(store.root).load("par")


def test_each_huge_page_of_a_load_is_read_by_one_thread(store, several_readers, monkeypatch):
    """Readers take whole stripes: two threads faulting one huge page would wait on each other."""
    image, mask = _several_chunks()
    store.publish("par", image, mask)
    data_start = _slot_file(store, "par").stat().st_size - image.nbytes - mask.nbytes
    readers: dict[int, set[str]] = {}  # huge page of the loaded buffer -> threads that read into it
    real = slot_format._pread

    def recording(f, offset, out):
        if offset >= data_start:
            first, last = offset - data_start, offset - data_start + len(out) - 1
            for page in range(first // slot_format.HUGE_PAGE, last // slot_format.HUGE_PAGE + 1):
                readers.setdefault(page, set()).add(threading.current_thread().name)
        return real(f, offset, out)

    monkeypatch.setattr(slot_format, "_pread", recording)
    got_image, got_mask = store.load("par")
    assert_exact(got_image, image)
    assert_exact(got_mask, mask)
    assert len(readers) == 3 and all(len(names) == 1 for names in readers.values())
    assert len(set().union(*readers.values())) >= 2  # this thread and a worker (one may take two shares)


@pytest.mark.skipif(slot_format._MADV_HUGEPAGE is None, reason="MADV_HUGEPAGE is Linux only")
def test_a_big_load_lands_in_huge_page_aligned_memory_it_owns(store, monkeypatch):
    monkeypatch.setattr(slot_format, "HUGE_MIN", slot_format.HUGE_PAGE)
    image = rand_image(b=1, h=512, w=1024, seed=7)  # 6 MiB: over one huge page
    store.publish("big", image)
    got, _mask = store.load("big")
    assert got.data_ptr() % slot_format.HUGE_PAGE == 0
    assert_exact(got, image)
    store.delete("big")
    got.mul_(0.5)  # private memory: writable, and nothing else sees the write
    assert_exact(got, image * 0.5)


@pytest.mark.parametrize("advice", [None, -1], ids=["no MADV_HUGEPAGE", "madvise refused"])
def test_a_load_without_huge_pages_is_the_same_bytes(store, monkeypatch, advice):
    monkeypatch.setattr(slot_format, "HUGE_MIN", slot_format.HUGE_PAGE)
    image = rand_image(b=1, h=512, w=1024, seed=8)
    store.publish("big", image)
    monkeypatch.setattr(slot_format, "_MADV_HUGEPAGE", advice)
    assert_exact(store.load("big")[0], image)


OLDER_CHECKSUMS = {
    "xxh3": codec.stream_checksum,  # 0.2.0
    "crc32x2m": codec.legacy_crc_checksum,  # 0.1.0
}


@pytest.mark.parametrize("kind", sorted(OLDER_CHECKSUMS))
@pytest.mark.parametrize("size", ["small", "several chunks"])
def test_slots_with_an_older_checksum_load_verify_and_catch_damage(store, monkeypatch, kind, size):
    image, mask = _several_chunks() if size == "several chunks" else (rand_image(), None)
    with monkeypatch.context() as m:  # publish as the older version did: one checksum field
        m.setattr(codec, "checksums", lambda tensors: {"checksum": OLDER_CHECKSUMS[kind](tensors)})
        store.publish("old", image, mask)
    assert store.info("old").checksum.startswith(kind + ":")
    assert_exact(store.load("old")[0], image)
    with store.verified_stream("old"):
        pass
    _flip(store, "old", -7, 0x10)
    with pytest.raises(SlotCorrupt, match="checksum"):
        store.load("old")
    with pytest.raises(SlotCorrupt, match="checksum"), store.verified_stream("old"):
        pass


def test_a_new_slot_still_verifies_the_way_0_2_0_checks_it(store):
    """0.2.0 reads the header's `checksum` field as one xxh3 stream: a downgrade keeps every slot."""
    image, mask = _several_chunks()
    store.publish("new", image, mask)
    with open(_slot_file(store, "new"), "rb") as f:
        length = int.from_bytes(f.read(8), "little")
        fields = json.loads(f.read(length))["__metadata__"]
        stream = xxhash.xxh3_64(f.read()).hexdigest()
    assert fields["checksum"] == f"xxh3:{stream}"
    assert fields["chunks"].startswith("xxh3x1m:") and store.info("new").checksum == fields["chunks"]


def test_the_chunked_checksum_does_not_depend_on_where_tensors_split_chunks():
    whole = torch.rand(3 * codec.READ_CHUNK // 4 + 5)
    parts = [whole[:1000].contiguous(), whole[1000:].contiguous()]
    assert codec.checksum([whole]) == codec.checksum(parts)
    assert codec.checksum([whole]) != codec.checksum([whole.flip(0).contiguous()])


def test_both_checksums_of_one_pass_are_the_two_hashes_each_alone():
    """checksums() hashes each piece twice while it is in cache: the same two fields as a
    chunked pass and a stream pass would write, wherever tensors split the chunks."""
    tensors = [torch.rand(3 * codec.READ_CHUNK // 4 + 5), torch.rand(1001).half(), torch.rand(7, dtype=torch.float64)]
    assert codec.checksums(tensors) == {"checksum": codec.stream_checksum(tensors), "chunks": codec.checksum(tensors)}


def test_a_slot_file_sent_in_parts_is_the_file_encode_writes():
    image, mask = rand_image(), torch.rand(2, 24, 16)
    parts = codec.encode_parts({"image": image, "mask": mask}, {"a": 1}, 1700000000.0)
    assert b"".join(parts) == codec.encode({"image": image, "mask": mask}, {"a": 1}, 1700000000.0)
    addresses = [np.frombuffer(p, dtype=np.uint8).ctypes.data for p in parts[1:]]
    assert addresses == [image.data_ptr(), mask.data_ptr()]  # the tensors' own bytes, not copies


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=needs_cuda)])
def test_a_slot_written_by_safetensors_itself_in_another_order_loads_exactly(store, device):
    """safetensors puts the float64 mask before the float32 image: not our order, still read."""
    image, mask = rand_image(), torch.rand(2, 24, 16, dtype=torch.float64)
    store.slot_dir("st").mkdir(parents=True)
    metadata = {
        "format": codec.FORMAT,
        "version": "1",
        "created": "1700000000.0",
        "checksum": codec.checksum([image, mask]),
        "meta": "{}",
    }
    save_file({"image": image, "mask": mask}, str(_slot_file(store, "st")), metadata=metadata)
    with open(_slot_file(store, "st"), "rb") as f:
        assert not slot_format.read_header(f).contiguous
    got_image, got_mask = store.load("st", device=device)
    assert got_image.device.type == device
    assert_exact(got_image.cpu(), image)
    assert_exact(got_mask.cpu(), mask)


def test_disk_full_keeps_the_old_slot(store, monkeypatch):
    old = rand_image()
    store.publish("full", old)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(slot_format, "write", no_space)
    with pytest.raises(SlotWriteError, match=r"previous version.*unchanged"):
        store.publish("full", rand_image(seed=9))
    assert_exact(store.load("full")[0], old)
    assert sorted(p.name for p in store.slot_dir("full").iterdir()) == ["slot.safetensors", "thumb.png"]


def test_thumbnail_write_failure_keeps_the_old_slot(store, monkeypatch):
    old = rand_image()
    store.publish("th", old)
    monkeypatch.setattr(images, "png_bytes", lambda img: (_ for _ in ()).throw(OSError(errno.EIO, "io")))
    with pytest.raises(OSError):
        store.publish("th", rand_image(seed=2))
    assert_exact(store.load("th")[0], old)
    assert not [p for p in store.slot_dir("th").iterdir() if p.name.endswith(".tmp")]


# -- crashes and concurrency -------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import os, signal, sys, torch
    sys.path.insert(0, {repo!r})
    from gates.bus.local import slot_file as slot_format
    from gates.bus.local.store import SlotStore
    mode, root, value = sys.argv[1], sys.argv[2], float(sys.argv[3])
    store = SlotStore(root)
    image = torch.full((4, 256, 256, 3), value)
    if mode == "die-mid-write":
        real = slot_format.write
        def half_then_die(path, *args):
            real(path, *args)
            with open(path, "r+b") as f:
                f.truncate(os.path.getsize(path) // 2)
            os.kill(os.getpid(), signal.SIGKILL)
        slot_format.write = half_then_die
        store.publish("s", image)
    else:
        i = 0
        while True:
            i += 1
            store.publish("s", torch.full((4, 256, 256, 3), value + i))
            print(i, flush=True)
""")


def _child(tmp_path: Path, mode: str, root: Path, value: float) -> subprocess.Popen:
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(repo=str(REPO)))
    return subprocess.Popen(
        [sys.executable, str(script), mode, str(root), str(value)], stdout=subprocess.PIPE, text=True
    )


def test_writer_killed_mid_write_leaves_old_slot(store, tmp_path):
    old = torch.full((4, 256, 256, 3), 7.0)
    store.publish("s", old)
    proc = _child(tmp_path, "die-mid-write", store.root, 1.0)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    leftovers = [p.name for p in store.slot_dir("s").iterdir() if p.name.endswith(".tmp")]
    assert leftovers, "the child should have died with its temp file on disk"
    assert [s.id for s in store.list()] == ["s"]
    assert_exact(store.load("s")[0], old)
    store.publish("s", old + 1)  # the next publish sweeps the dead writer's temp file
    assert sorted(p.name for p in store.slot_dir("s").iterdir()) == ["slot.safetensors", "thumb.png"]


def test_writer_killed_at_random_moments_never_leaves_a_mix(store, tmp_path):
    store.publish("s", torch.full((4, 256, 256, 3), 0.0))
    rng = random.Random(1)
    for attempt in range(5):
        proc = _child(tmp_path, "loop", store.root, 1000.0 * (attempt + 1))
        proc.stdout.readline()  # at least one publish done, so it is busy writing
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        image, _ = store.load("s")
        values = image.unique()
        assert values.numel() == 1, "a load mixed two versions"
        assert image.shape == (4, 256, 256, 3)


def test_concurrent_writers_and_readers_never_mix(store):
    store.publish("race", torch.full((2, 64, 64, 3), 0.0))
    errors: list[BaseException] = []
    stop = threading.Event()

    def writer(base: float):
        for i in range(15):
            store.publish("race", torch.full((2, 64, 64, 3), base + i), torch.full((2, 64, 64), base + i))

    def reader():
        while not stop.is_set():
            try:
                image, mask = store.load("race")
                assert image.unique().numel() == 1 and torch.equal(mask.unique(), image.unique())
            except BaseException as exc:
                errors.append(exc)
                return

    threads = [threading.Thread(target=writer, args=(b,)) for b in (100.0, 200.0)]
    readers = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads + readers:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert not errors, errors[0]
    final = store.load("race")[0].unique().item()
    assert final in (114.0, 214.0)  # the last complete write wins


# -- latents ----------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_latent_rides_along_bit_exact_with_noise_mask_and_batch_index(store, dtype):
    image, mask = rand_image(b=3), torch.rand(3, 24, 16)
    samples = torch.randn(3, 4, 3, 2).to(dtype)
    noise_mask = torch.rand(3, 1, 24, 16)
    store.publish("lat", image, mask, latent={"samples": samples, "noise_mask": noise_mask, "batch_index": [4, 5, 6]})
    data = store.read("lat")
    assert_exact(data.image, image)
    assert_exact(data.mask, mask)
    assert set(data.latent) == {"samples", "noise_mask", "batch_index"}
    assert_exact(data.latent["samples"], samples)
    assert_exact(data.latent["noise_mask"], noise_mask)
    assert data.latent["batch_index"] == [4, 5, 6]
    info = store.info("lat")
    assert info.latent_shape == [3, 4, 3, 2] and info.latent_dtype == dtype_name(dtype)


def test_slot_without_latent_reads_none_and_damage_in_the_latent_is_caught(store):
    store.publish("plain", rand_image())
    assert store.read("plain").latent is None and store.info("plain").latent_shape is None
    store.publish("lat", rand_image(), latent={"samples": torch.randn(2, 4, 3, 2)})
    _flip(store, "lat", -3)  # the last bytes are the latent's
    with pytest.raises(SlotCorrupt, match="checksum"):
        store.read("lat")


@pytest.mark.parametrize(
    "latent",
    [
        {"samples": torch.zeros(2, 2)},
        {"samples": torch.zeros(1, 4, 2, 2, dtype=torch.int32)},
        {},
        {"samples": torch.zeros(1, 4, 2, 2), "noise_mask": "x"},
    ],
)
def test_a_latent_that_is_not_a_latent_is_refused_before_writing(store, latent):
    with pytest.raises(ValueError, match="latent"):
        store.publish("bad", rand_image(), latent=latent)
    assert not store.exists("bad")


def test_a_download_is_verified_in_bounded_memory(store, monkeypatch):
    """verified_stream hashes the file chunk by chunk: it never reads the slot into memory."""
    image = rand_image(b=4, h=256, w=256)
    store.publish("dl", image)

    def whole_read(*args, **kwargs):
        raise AssertionError("a download read the whole slot into memory")

    monkeypatch.setattr(slot_format, "read_tensors", whole_read)
    with store.verified_stream("dl") as stream:
        assert stream.size == _slot_file(store, "dl").stat().st_size
    _flip(store, "dl", 0.5, 0x80)
    with pytest.raises(SlotCorrupt, match="checksum"), store.verified_stream("dl"):
        pass


def test_a_meta_too_large_to_read_back_is_refused_and_the_slot_is_unchanged(store):
    from gates.bus.codec import MAX_HEADER_BYTES
    from gates.bus.errors import SlotMetaTooLarge

    store.publish("big", torch.zeros(1, 2, 2, 3))
    before = store.info("big").checksum
    with pytest.raises(SlotMetaTooLarge, match="too large"):
        store.publish("big", torch.ones(1, 2, 2, 3), meta={"prompt": "x" * MAX_HEADER_BYTES})
    assert store.info("big").checksum == before
    assert [p.name for p in store.slot_dir("big").iterdir() if p.name.endswith(".tmp")] == []
    store.publish("big", torch.ones(1, 2, 2, 3), meta={"prompt": "x" * (MAX_HEADER_BYTES // 2)})
    assert store.read("big").meta["prompt"] == "x" * (MAX_HEADER_BYTES // 2)


def test_meta_with_nan_or_infinity_reads_back_as_json_a_browser_accepts(store):
    """A parked prompt carried ComfyUI's is_changed = NaN; Python writes it as bare NaN, which
    JSON.parse refuses, and one such slot broke every picker. Such values read back as null."""
    store.publish("nan", rand_image(), meta={"x": float("nan"), "y": [float("inf"), 1.5]})
    meta = store.info("nan").meta
    assert meta == {"x": None, "y": [None, 1.5]}
    json.dumps(meta, allow_nan=False)  # strict JSON, as a browser parses it
