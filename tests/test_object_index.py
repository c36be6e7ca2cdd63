"""The object bus's listing index as bytes (gates/bus/object/index.py): what `dump` writes reads
back as the same rows, the first format still reads, and whatever a store hands back is rows,
damaged rows or SlotCorrupt, never an exception a listing does not expect.
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from gates.bus.contract import SlotInfo
from gates.bus.errors import SlotCorrupt
from gates.bus.object import index
from gates.bus.object.index import FIELDS, Row

INFO = SlotInfo(
    id="a",
    image_shape=[2, 64, 48, 3],
    image_dtype="float32",
    mask_shape=[2, 64, 48],
    mask_dtype="float16",
    created=1700000000.25,
    bytes=123456,
    has_thumb=True,
    checksum="xxh3x1m:0123456789abcdef",
    meta={"prompt": {"3": {"inputs": [1, 2.5, None]}}, "seed": 7},
    version=0,
    versions=3,
    pinned=True,
    latent_shape=[2, 4, 8, 6],
    latent_dtype="float32",
)
ROWS = {"a": Row(4, 130000, INFO), "b": Row(9, 0, None), "c-1": Row(1, 10, replace(INFO, id="c-1", meta={}))}


def _doc(rows: dict[str, object], fields: object = FIELDS) -> bytes:
    return json.dumps({"format": index.FORMAT, "fields": fields, "rows": rows}).encode()


def test_rows_read_back_as_they_were_written() -> None:
    assert index.parse(index.dump(ROWS)) == ROWS
    assert index.dump(ROWS, "policy x") != index.dump(ROWS)  # a note moves the token


def test_the_first_format_an_object_per_row_still_reads() -> None:
    first = {
        k: {"seq": r.seq, "used": r.used, "info": None if r.info is None else r.info.to_dict()} for k, r in ROWS.items()
    }
    assert index.parse(json.dumps({"format": index.FORMAT, "rows": first}).encode()) == ROWS


def test_a_writer_with_other_fields_is_read_by_name() -> None:
    """A later version that adds a field (and, say, drops `pinned`) still lists."""
    names = [*FIELDS, "future"]
    names.remove("pinned")
    info = [getattr(INFO, n) for n in FIELDS if n != "pinned"] + ["x"]
    got = index.parse(_doc({"a": [4, 130000, info]}, names))
    assert got == {"a": Row(4, 130000, replace(INFO, pinned=False))}


@pytest.mark.parametrize(
    "row",
    [
        [4, 130000],  # too short
        [4, 130000, None, 1],  # too long
        {"seq": 4},  # not a list
        "x",
        ["4", 130000, None],  # seq not a number
        [4, 1.5, None],  # used not an integer
        [4, 130000, [1, 2]],  # info of the wrong width
        [4, 130000, {"id": "a"}],  # info not a list
    ],
)
def test_an_unreadable_row_is_a_damaged_row_and_the_rest_still_list(row: object) -> None:
    good = [1, 10, [getattr(INFO, n) for n in FIELDS]]
    got = index.parse(_doc({"a": row, "ok": good}))
    assert got["a"].info is not None and "unreadable" in (got["a"].info.error or "")
    assert got["ok"] == Row(1, 10, replace(INFO, id="ok"))


@pytest.mark.parametrize(
    "field, value",
    [("created", "yesterday"), ("created", True), ("bytes", 1.5), ("image_shape", "2x64"), ("meta", [1]), ("error", 5)],
)
def test_a_field_of_the_wrong_type_is_a_damaged_row(field: str, value: object) -> None:
    info = [value if n == field else getattr(INFO, n) for n in FIELDS]
    got = index.parse(_doc({"a": [4, 130000, info]}))["a"]
    assert got.info is not None and got.info.error


def test_names_that_are_no_slot_are_left_out() -> None:
    good = [1, 10, [getattr(INFO, n) for n in FIELDS]]
    assert set(index.parse(_doc({"../x": good, "": good, "ok": good}))) == {"ok"}


@pytest.mark.parametrize(
    "data",
    [
        b"not json",
        b"[]",
        json.dumps({"format": "something else", "rows": {}}).encode(),
        _doc({}, fields="pinned"),
        _doc({}, fields=[1, 2]),
        _doc({}).replace(b'"rows": {}', b'"rows": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
    ],
)
def test_what_is_no_index_is_slot_corrupt(data: bytes) -> None:
    with pytest.raises(SlotCorrupt):
        index.parse(data)


def test_the_collector_is_paused_for_a_parse_and_left_as_it_was() -> None:
    import gc
    import threading

    from gates.bus import json_limits

    assert gc.isenabled()
    inside = threading.Event()
    leave = threading.Event()

    def other() -> None:  # an overlapping parse in another thread
        with json_limits.gc_paused():
            inside.set()
            leave.wait(5)

    t = threading.Thread(target=other)
    with json_limits.gc_paused():
        assert not gc.isenabled()
        t.start()
        inside.wait(5)
    assert not gc.isenabled()  # the other block still runs
    leave.set()
    t.join()
    assert gc.isenabled()
    gc.disable()
    try:
        with json_limits.gc_paused():
            index.parse(index.dump(ROWS))
        assert not gc.isenabled()  # someone else turned it off: it stays off
    finally:
        gc.enable()
