"""The bus contract, written once: every behaviour a bus must have, whatever stores its bytes.

A backend's test module subclasses `BusContract` and provides the `kit` fixture: a fresh,
empty bus plus the few raw operations a test needs to plant damage (which no contract method
can do, by design). zarr-python tests its stores the same way (`zarr.testing.store`). The
folder bus and the in-memory bus run it in tests/test_bus_contract.py; the next backend adds
a subclass there and passes it unchanged.
"""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass

import pytest
import torch
from crafted_slots import CRAFTED, crafted, nested, ours, with_header
from PIL import Image
from safetensors.torch import load as safetensors_load

from gates.bus import (
    BusAdmin,
    SlotBus,
    SlotCorrupt,
    SlotIndexError,
    SlotMetaTooLarge,
    SlotNotFound,
)

FLOATS = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


@dataclass
class BusKit:
    """A fresh bus and raw access to what it stores, for planting damage."""

    bus: BusAdmin
    raw: Callable[[str], bytes]  # the current slot file of an id, unchecked
    put_raw: Callable[[str, bytes], None]  # replace the current slot file of an id, unchecked


def _image(batch: int = 2, h: int = 6, w: int = 5, c: int = 3, dtype: torch.dtype = torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, h, w, c, generator=g).to(dtype)


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Bit-identical: dtype, shape and every byte (NaN payloads included)."""
    return (
        a.dtype == b.dtype
        and a.shape == b.shape
        and torch.equal(a.contiguous().view(torch.uint8), b.contiguous().view(torch.uint8))
    )


def _flip_a_data_byte(data: bytes) -> bytes:
    """The slot file with one bit of its last tensor byte flipped: damage the checksum finds."""
    out = bytearray(data)
    out[-1] ^= 0x01
    return bytes(out)


def _quota_removes_a(bus: BusAdmin) -> None:
    bus.publish("c", _image())
    assert bus.set_policy(quota_bytes=bus.usage() - 1)[1] == ["a"]


CHANGES: dict[str, Callable[[BusAdmin], object]] = {
    "publish a new slot": lambda bus: bus.publish("c", _image()),
    "republish": lambda bus: bus.publish("a", _image(seed=3), meta={"n": 3}),
    "republish the same tensors": lambda bus: bus.publish("a", _image(seed=1), meta={"n": 1}),
    "delete": lambda bus: bus.delete("a"),
    "rename": lambda bus: bus.rename("a", "z"),
    "rename over": lambda bus: bus.rename("a", "b", overwrite=True),
    "pin": lambda bus: bus.pin("a"),
    "unpin": lambda bus: bus.pin("b", False),
    "policy": lambda bus: bus.set_policy(keep=1),
    "quota": _quota_removes_a,
}


class BusContract:
    """Subclass with a `kit` fixture returning a BusKit on a fresh, empty bus."""

    # -- the protocols ------------------------------------------------------------------------
    def test_keeps_both_protocols(self, kit: BusKit) -> None:
        assert isinstance(kit.bus, SlotBus) and isinstance(kit.bus, BusAdmin)
        assert kit.bus.label and kit.bus.label in kit.bus.name and kit.bus.location

    def test_a_bus_exists_once_something_is_published(self, kit: BusKit) -> None:
        kit.bus.publish("x", _image())
        assert kit.bus.bus_exists()
        kit.bus.delete("x")
        assert kit.bus.bus_exists()  # an empty bus is still a bus

    # -- exact round trips ----------------------------------------------------------------
    @pytest.mark.parametrize("dtype", FLOATS, ids=lambda d: str(d).removeprefix("torch."))
    def test_every_float_dtype_round_trips_bit_exactly(self, kit: BusKit, dtype: torch.dtype) -> None:
        image = _image(dtype=dtype)
        image[0, 0, 0, 0] = float("nan")
        image[1, 0, 0, 0] = float("-inf")
        mask = torch.rand(2, 6, 5).to(dtype)
        kit.bus.publish("x", image, mask)
        data = kit.bus.read("x")
        assert _same(data.image, image) and data.mask is not None and _same(data.mask, mask)
        assert data.latent is None and data.meta == {}

    @pytest.mark.parametrize("shape", [(2, 6, 5), (1, 6, 5), (6, 5)], ids=["per image", "shared", "2-d"])
    def test_mask_shapes_round_trip(self, kit: BusKit, shape: tuple[int, ...]) -> None:
        mask = torch.rand(shape)
        kit.bus.publish("m", _image(), mask)
        assert _same(kit.bus.read("m").mask, mask)

    def test_a_latent_with_noise_mask_and_batch_index_round_trips(self, kit: BusKit) -> None:
        latent = {
            "samples": torch.randn(2, 4, 3, 2, dtype=torch.bfloat16),
            "noise_mask": torch.rand(2, 1, 3, 2),
            "batch_index": [3, 7],
        }
        info = kit.bus.publish("lat", _image(), latent=latent, meta={"seed": 42})
        assert info.latent_shape == [2, 4, 3, 2] and info.latent_dtype == "bfloat16"
        data = kit.bus.read("lat")
        assert data.latent is not None
        assert _same(data.latent["samples"], latent["samples"])
        assert _same(data.latent["noise_mask"], latent["noise_mask"])
        assert data.latent["batch_index"] == [3, 7] and data.meta["seed"] == 42

    def test_load_gives_a_zero_mask_when_none_was_stored(self, kit: BusKit) -> None:
        image = _image(batch=3, dtype=torch.float16)
        kit.bus.publish("nomask", image)
        got, mask = kit.bus.load("nomask")
        assert _same(got, image)
        assert mask.dtype == torch.float32 and mask.shape == (3, 6, 5) and not mask.any()

    def test_the_published_tensors_are_not_kept_by_reference(self, kit: BusKit) -> None:
        image = _image()
        kit.bus.publish("copy", image)
        kept = image.clone()
        image.fill_(0.5)  # the caller reuses its buffer
        assert _same(kit.bus.read("copy").image, kept)

    # -- what a listing knows -------------------------------------------------------------
    def test_info_comes_from_the_header_and_lists_newest_first(self, kit: BusKit) -> None:
        kit.bus.publish("old", _image(batch=1), torch.rand(1, 6, 5))
        kit.bus.publish("new", _image(batch=4, dtype=torch.float64), meta={"k": "v"})
        info = kit.bus.info("new")
        assert (info.id, info.batch, info.image_shape, info.image_dtype) == ("new", 4, [4, 6, 5, 3], "float64")
        assert info.mask_shape is None and info.meta == {"k": "v"} and info.bytes > 4 * 6 * 5 * 3 * 8
        assert info.checksum and info.has_thumb and info.error is None and info.ref == "new"
        assert kit.bus.info("old").mask_shape == [1, 6, 5]
        assert [s.id for s in kit.bus.list()] == ["new", "old"]
        assert kit.bus.ids() == ["new", "old"]

    def test_a_missing_slot_is_slot_not_found_everywhere(self, kit: BusKit) -> None:
        for call in (kit.bus.read, kit.bus.info, kit.bus.history, kit.bus.delete, kit.bus.thumbnail):
            with pytest.raises(SlotNotFound):
                call("ghost")
        with pytest.raises(SlotNotFound):
            kit.bus.rename("ghost", "other")
        with pytest.raises(SlotNotFound):
            kit.bus.pin("ghost")
        assert not kit.bus.exists("ghost") and kit.bus.fingerprint("ghost") == "missing"
        assert kit.bus.list() == [] and kit.bus.ids() == []

    @pytest.mark.parametrize("bad", ["", "a/b", "../x", ".hidden", "con", "x" * 65, "a b"])
    def test_a_bad_id_is_a_value_error_before_anything_is_stored(self, kit: BusKit, bad: str) -> None:
        with pytest.raises(ValueError):
            kit.bus.publish(bad, _image())
        with pytest.raises(ValueError):
            kit.bus.read(bad)
        assert kit.bus.ids() == []

    def test_not_an_image_is_refused(self, kit: BusKit) -> None:
        for image, mask in [
            (torch.zeros(6, 5, 3), None),
            (torch.zeros(1, 6, 5, 3, dtype=torch.uint8), None),
            (torch.zeros(1, 6, 5, 7), None),
            (_image(), torch.zeros(2, 4, 4)),
        ]:
            with pytest.raises(ValueError):
                kit.bus.publish("bad", image, mask)
        assert not kit.bus.exists("bad")

    def test_meta_too_large_to_read_back_is_refused_and_nothing_changes(self, kit: BusKit) -> None:
        kit.bus.publish("big", _image())
        with pytest.raises(SlotMetaTooLarge):
            kit.bus.publish("big", _image(seed=1), meta={"blob": "x" * (2 << 20)})
        assert _same(kit.bus.read("big").image, _image())

    def test_the_fingerprint_changes_on_every_publish(self, kit: BusKit) -> None:
        kit.bus.publish("fp", _image())
        first = kit.bus.fingerprint("fp")
        assert first == kit.bus.fingerprint("fp")
        kit.bus.publish("fp", _image())
        assert kit.bus.fingerprint("fp") != first

    # -- thumbnails, previews and the download --------------------------------------------
    def test_thumbnail_and_preview_are_pngs_of_the_image(self, kit: BusKit) -> None:
        image = torch.zeros(2, 40, 80, 3)
        image[1, :, :, 0] = 1.0  # the second image is red
        kit.bus.publish("pic", image)
        thumb = Image.open(io.BytesIO(kit.bus.thumbnail("pic")))
        assert thumb.format == "PNG" and thumb.width >= thumb.height
        preview = Image.open(io.BytesIO(kit.bus.render("pic", 1, side=64))).convert("RGB")
        assert preview.size == (64, 32) and preview.getpixel((10, 10)) == (255, 0, 0)
        with pytest.raises(SlotIndexError):
            kit.bus.render("pic", 2)

    @pytest.mark.parametrize("shape", [(3, 6, 5), (1, 6, 5), (6, 5)], ids=["per image", "shared", "2-d"])
    def test_a_mask_renders_as_a_grey_picture_of_its_batch_image(self, kit: BusKit, shape: tuple[int, ...]) -> None:
        """What the browser shows of a mask (white = masked); a shared mask is every image's."""
        mask = torch.zeros(shape)
        mask[..., :3, :] = 1.0  # the top half masked
        if len(shape) == 3 and shape[0] == 3:
            mask[2] = 0.5
        kit.bus.publish("m", _image(batch=3, dtype=torch.float16), mask.to(torch.bfloat16))
        for index in range(3):
            picture = Image.open(io.BytesIO(kit.bus.render("m", index, mask=True)))
            assert picture.mode == "L" and picture.size == (5, 6)
            want = 128 if index == 2 and shape[0] == 3 else 255
            assert picture.getpixel((2, 1)) == want and picture.getpixel((2, 4)) == (want if want == 128 else 0)
        with pytest.raises(SlotIndexError):
            kit.bus.render("m", 3, mask=True)
        kit.bus.publish("bare", _image())
        with pytest.raises(SlotNotFound, match="'bare' has no mask"):
            kit.bus.render("bare", 0, mask=True)

    def test_the_download_is_the_exact_safetensors_file(self, kit: BusKit) -> None:
        image, mask = _image(dtype=torch.bfloat16), torch.rand(2, 6, 5)
        kit.bus.publish("dl", image, mask)
        with kit.bus.verified_stream("dl") as stream:
            data = b"".join(stream.chunks(7))  # an odd chunk size: no byte lost at the seams
            assert len(data) == stream.size
        assert data == kit.raw("dl")
        tensors = safetensors_load(data)  # any safetensors reader opens a slot file
        assert _same(tensors["image"], image) and _same(tensors["mask"], mask)

    # -- history ----------------------------------------------------------------------------
    def test_history_keeps_what_the_policy_says_and_refs_name_each_version(self, kit: BusKit) -> None:
        kit.bus.set_policy(keep=3)
        for n in range(4):
            kit.bus.publish("h", _image(seed=n), meta={"n": n})
        assert [v.meta["n"] for v in kit.bus.history("h")] == [3, 2, 1]
        assert [v.ref for v in kit.bus.history("h")] == ["h", "h@-1", "h@-2"]
        assert _same(kit.bus.read("h@-2").image, _image(seed=1))
        assert kit.bus.info("h@-1").version == -1 and kit.bus.info("h").versions == 3
        with pytest.raises(SlotNotFound):
            kit.bus.read("h@-3")

    def test_keep_one_replaces_the_slot(self, kit: BusKit) -> None:
        kit.bus.publish("one", _image(seed=1))
        kit.bus.publish("one", _image(seed=2))
        assert [v.ref for v in kit.bus.history("one")] == ["one"]
        assert _same(kit.bus.read("one").image, _image(seed=2))

    # -- pins, quota, policy -------------------------------------------------------------
    def test_the_quota_removes_the_oldest_unpinned_slots_first(self, kit: BusKit) -> None:
        for name in ("a", "b", "c", "d"):
            kit.bus.publish(name, _image(h=32, w=32))
        per_slot = kit.bus.usage() // 4
        assert kit.bus.pin("a").pinned
        policy, removed = kit.bus.set_policy(quota_bytes=int(per_slot * 2.5))
        assert policy.quota_bytes == int(per_slot * 2.5) and kit.bus.policy() == policy
        assert removed == ["b", "c"] and kit.bus.ids() == ["a", "d"]
        kit.bus.publish("e", _image(h=32, w=32))  # the new slot is never the one removed
        assert "e" in kit.bus.ids() and "a" in kit.bus.ids()
        assert not kit.bus.pin("a", False).pinned

    def test_a_bad_policy_is_refused(self, kit: BusKit) -> None:
        for changes in ({"keep": 0}, {"keep": 101}, {"quota_bytes": -1}, {"keep": True}):
            with pytest.raises(ValueError):
                kit.bus.set_policy(**changes)
        assert kit.bus.policy().keep == 1

    def test_delete_frees_every_version_at_once(self, kit: BusKit) -> None:
        kit.bus.set_policy(keep=2)
        kit.bus.publish("d", _image())
        kit.bus.publish("d", _image(seed=1))
        before = kit.bus.usage()
        freed = kit.bus.delete("d")
        assert freed > 0 and kit.bus.usage() <= before - freed + 64
        assert not kit.bus.exists("d")
        with pytest.raises(SlotNotFound):
            kit.bus.read("d@-1")

    # -- rename -------------------------------------------------------------------------------
    def test_rename_moves_versions_and_pin(self, kit: BusKit) -> None:
        kit.bus.set_policy(keep=2)
        kit.bus.publish("src", _image(seed=1))
        kit.bus.publish("src", _image(seed=2))
        kit.bus.pin("src")
        info = kit.bus.rename("src", "dst")
        assert info.id == "dst" and info.pinned and info.versions == 2
        assert not kit.bus.exists("src") and _same(kit.bus.read("dst@-1").image, _image(seed=1))

    def test_rename_onto_a_slot_needs_overwrite(self, kit: BusKit) -> None:
        kit.bus.publish("a", _image(seed=1))
        kit.bus.publish("b", _image(seed=2))
        with pytest.raises(FileExistsError):
            kit.bus.rename("a", "b")
        assert _same(kit.bus.read("b").image, _image(seed=2)) and kit.bus.exists("a")
        kit.bus.rename("a", "b", overwrite=True)
        assert kit.bus.ids() == ["b"] and _same(kit.bus.read("b").image, _image(seed=1))
        assert kit.bus.rename("b", "b").id == "b"

    def test_a_damaged_slot_is_renamed_and_pinned_and_says_it_is_damaged(self, kit: BusKit) -> None:
        """A rename (or pin) of a slot whose file is damaged does what was asked and returns
        the slot as a damaged row, never an error after the change was made."""
        kit.bus.publish("dmg", _image())
        kit.put_raw("dmg", kit.raw("dmg")[:-8])  # the file ends early
        info = kit.bus.rename("dmg", "dmg2")
        assert info.id == "dmg2" and info.error and "'dmg2'" in info.error and "not a valid" in info.error
        assert kit.bus.ids() == ["dmg2"] and not kit.bus.exists("dmg")
        assert kit.bus.rename("dmg2", "dmg2").error
        pinned = kit.bus.pin("dmg2")
        assert pinned.id == "dmg2" and pinned.error
        assert kit.bus.delete("dmg2") > 0 and kit.bus.ids() == []

    # -- damage -----------------------------------------------------------------------------
    def test_a_flipped_byte_fails_the_checksum_but_stays_listed(self, kit: BusKit) -> None:
        kit.bus.publish("dmg", _image())
        kit.put_raw("dmg", _flip_a_data_byte(kit.raw("dmg")))
        with pytest.raises(SlotCorrupt, match="checksum"):
            kit.bus.read("dmg")
        with pytest.raises(SlotCorrupt, match="checksum"), kit.bus.verified_stream("dmg"):
            pass
        assert kit.bus.read("dmg", verify=False).image.shape == (2, 6, 5, 3)
        assert kit.bus.info("dmg").error is None  # the header is whole: only a verify finds it
        assert kit.bus.delete("dmg") > 0

    @pytest.mark.parametrize("name", list(CRAFTED))
    def test_a_crafted_file_is_a_damaged_row_never_a_crash(self, kit: BusKit, name: str) -> None:
        kit.bus.publish("good", _image())
        kit.put_raw("bad", CRAFTED[name])
        rows = {s.id: s for s in kit.bus.list()}
        assert rows["good"].error is None and rows["bad"].error
        assert "bad" in rows["bad"].error and len(rows["bad"].error) < 300
        for call in (kit.bus.info, kit.bus.read):
            with pytest.raises(SlotCorrupt):
                call("bad")

    def test_meta_nested_as_deep_as_reads_allow_round_trips(self, kit: BusKit) -> None:
        meta = {"a": nested(62), "b": [float("inf"), float("nan"), -float("inf"), 1.5]}  # 64 levels
        kit.bus.publish("deep", _image(), meta=meta)
        assert kit.bus.info("deep").meta == {"a": nested(62), "b": [None, None, None, 1.5]}
        kit.put_raw("planted", crafted(ours(meta=json.dumps({"a": nested(63)}))))
        assert kit.bus.info("planted").meta == {"a": nested(63)}

    def test_meta_nested_deeper_than_reads_allow_is_refused_and_nothing_changes(self, kit: BusKit) -> None:
        kit.bus.publish("deep", _image())
        for meta in ({"a": nested(64)}, {"a": nested(900)}, {"a": nested(100_000)}):
            with pytest.raises(ValueError, match="meta is nested deeper than 64 levels"):
                kit.bus.publish("deep", _image(seed=1), meta=meta)
        cycle: list = []
        cycle.append(cycle)
        with pytest.raises(ValueError, match="deeper than 64"):
            kit.bus.publish("deep", _image(seed=1), meta={"a": cycle})
        assert _same(kit.bus.read("deep").image, _image()) and kit.bus.info("deep").meta == {}

    def test_numbers_too_big_for_a_float_read_back_as_null(self, kit: BusKit) -> None:
        kit.bus.publish("big", _image())
        text = '{"big": 1e999, "small": -1e999, "nan": NaN, "inf": [Infinity, -Infinity], "ok": 1.5, "int": 7}'
        kit.put_raw("big", with_header(kit.raw("big"), lambda h: h["__metadata__"].update(meta=text)))
        expected = {"big": None, "small": None, "nan": None, "inf": [None, None], "ok": 1.5, "int": 7}
        assert kit.bus.info("big").meta == expected and kit.bus.read("big").meta == expected
        assert [s.meta for s in kit.bus.list()] == [expected]

    def test_a_header_claiming_more_than_the_file_holds_is_damage(self, kit: BusKit) -> None:
        kit.bus.publish("lie", _image())
        kit.put_raw("lie", with_header(kit.raw("lie"), lambda h: h["image"].update(shape=[4096, 4096, 4096, 3])))
        with pytest.raises(SlotCorrupt):
            kit.bus.read("lie")
        assert {s.id: s.error for s in kit.bus.list()}["lie"]

    # -- concurrency ------------------------------------------------------------------------
    def test_concurrent_publishes_never_mix_and_all_land_in_history(self, kit: BusKit) -> None:
        kit.bus.set_policy(keep=3)
        versions = {n: torch.full((1, 8, 8, 3), float(n)) for n in range(24)}
        errors: list[BaseException] = []
        stop = threading.Event()

        def writer(first: int) -> None:
            try:
                for n in range(first, 24, 4):
                    kit.bus.publish("shared", versions[n], meta={"n": n})
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def reader() -> None:
            while not stop.is_set():
                try:
                    data = kit.bus.read("shared")
                except SlotNotFound:
                    continue
                except BaseException as exc:  # pragma: no cover - reported below
                    errors.append(exc)
                    return
                n = data.meta["n"]
                if not _same(data.image, versions[n]):  # image and meta from one version
                    errors.append(AssertionError(f"mixed read: meta {n}"))

        readers = [threading.Thread(target=reader) for _ in range(2)]
        writers = [threading.Thread(target=writer, args=(k,)) for k in range(4)]
        for t in readers + writers:
            t.start()
        for t in writers:
            t.join()
        stop.set()
        for t in readers:
            t.join()
        assert errors == []
        kept = kit.bus.history("shared")
        assert len(kept) == 3 and all(v.error is None for v in kept)
        assert len({v.meta["n"] for v in kept}) == 3

    # -- the listing token (what /bus/list's ETag is made of) ---------------------------------
    def test_the_listing_token_stays_while_nothing_changes(self, kit: BusKit) -> None:
        assert kit.bus.listing_token() == kit.bus.listing_token()  # an empty bus too
        kit.bus.publish("a", _image())
        token = kit.bus.listing_token()
        kit.bus.list(), kit.bus.info("a"), kit.bus.read("a"), kit.bus.history("a"), kit.bus.policy()
        assert kit.bus.listing_token() == token and kit.bus.listing_token() == token

    @pytest.mark.parametrize("change", list(CHANGES))
    def test_every_change_moves_the_token_and_the_listing_follows(self, kit: BusKit, change: str) -> None:
        """The listing is taken (and remembered, where a backend remembers it) before the
        change; after it, the token differs and list() is what info() says of every slot."""
        kit.bus.set_policy(keep=2)
        kit.bus.publish("a", _image(seed=1), meta={"n": 1})
        kit.bus.publish("b", _image(seed=2))
        kit.bus.pin("b")
        kit.bus.list()
        token = kit.bus.listing_token()
        CHANGES[change](kit.bus)
        assert kit.bus.listing_token() != token
        listed = [s.to_dict() for s in kit.bus.list()]
        assert listed == sorted(
            (kit.bus.info(i).to_dict() for i in kit.bus.ids()), key=lambda s: s["created"], reverse=True
        )

    def test_the_token_taken_before_a_listing_never_hides_a_change(self, kit: BusKit) -> None:
        """A client keeps (token, rows) with the token taken first: a change after the token
        shows as a new token next time, so the rows it kept are never kept wrongly."""
        kit.bus.publish("a", _image())
        token = kit.bus.listing_token()
        kit.bus.publish("b", _image())  # lands between the token and the listing
        rows = kit.bus.list()
        assert {s.id for s in rows} == {"a", "b"} and kit.bus.listing_token() != token
