"""Captions as the gate takes, checks and records them (gates/gate/captions.py)."""

from __future__ import annotations

import pytest

from gates.gate.captions import (
    MAX_CAPTION_BYTES,
    MAX_CAPTIONS_STORED,
    captions_from_text,
    captions_meta,
    check_captions,
    edited_flags,
    recorded_captions,
    stored_size,
)


def test_one_caption_per_image_or_one_shared_by_all():
    assert check_captions(["a", "b\nc", ""], 3) == ["a", "b\nc", ""]
    assert check_captions(("x",), 3, shared_ok=True) == ["x", "x", "x"]
    with pytest.raises(ValueError, match="1 for a batch of 3"):
        check_captions(["x"], 3)  # an answer must give every image its own
    with pytest.raises(ValueError, match=r"2 for a batch of 3 images; give one per image \(or one for every"):
        check_captions(["a", "b"], 3, shared_ok=True)


@pytest.mark.parametrize(
    "captions, error",
    [
        ("a,b", "must be a list of 2 strings"),
        (None, "must be a list"),
        (["a", 3], "caption 2 must be text, got int"),
        (["a", "\ud800"], "caption 2 is not valid text"),
        (["é" * (MAX_CAPTION_BYTES // 2 + 1), "a"], "caption 1 is 65,538 bytes; at most 65,536"),
    ],
)
def test_what_is_not_a_caption_list_is_refused_with_a_reason(captions, error):
    with pytest.raises(ValueError, match=error):
        check_captions(captions, 2)


def test_captions_must_fit_the_slot_header_together():
    """Each within its own limit, but escaped as the slot stores them they would not fit."""
    one = "\x01" * (MAX_CAPTION_BYTES // 8)  # 8 KiB of control characters: 7 bytes each stored
    assert stored_size([one]) > 7 * len(one)
    with pytest.raises(ValueError, match="too long together"):
        check_captions([one] * 10, 10)
    fits = ["a" * 1000] * (MAX_CAPTIONS_STORED // 2000)
    assert check_captions(fits, len(fits)) == fits


def test_a_slot_record_is_used_only_when_it_fits_the_batch():
    meta = {"captions": ["a", "b"], "captions_edited": [False, True]}
    assert recorded_captions(meta, 2) == (["a", "b"], [False, True])
    assert recorded_captions(meta, 3) == (None, None)
    assert recorded_captions({"captions": ["a", "b"], "captions_edited": [0, 1]}, 2) == (["a", "b"], None)
    assert recorded_captions({"captions": "a"}, 1) == (None, None)
    assert recorded_captions({}, 1) == (None, None)


def test_what_a_slot_records_and_which_captions_count_as_edited():
    assert captions_meta(None, None) == {}
    assert captions_meta(["a"], None) == {"captions": ["a"], "captions_edited": [False]}
    assert edited_flags(["a", "b", "c"], ["a", "B", "c"], None) == [False, True, False]
    assert edited_flags(["a", "b"], ["a", "b"], [True, False]) == [True, False]  # edited before, kept


@pytest.mark.parametrize(
    "text, split, expected",
    [
        ("cat\ndog\n", "one per line", ["cat", "dog"]),
        ("cat\r\ndog", "one per line", ["cat", "dog"]),
        ("cat\n\ndog", "one per line", ["cat", "", "dog"]),
        ("", "one per line", [""]),
        ("a cat,\nsitting", "one for all", ["a cat,\nsitting"]),
    ],
)
def test_captions_from_text(text, split, expected):
    assert captions_from_text(text, split) == expected


def test_captions_from_text_refuses_an_unknown_split():
    with pytest.raises(ValueError, match="split must be one of"):
        captions_from_text("a", "by comma")
