"""Captions read exactly as written: UTF-8 with or without BOM, CRLF kept, bad files refused."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gates.dataset.captions import MAX_CAPTION_BYTES, decode_caption, read_caption
from gates.dataset.errors import FileError


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (b"a cat, sitting", "a cat, sitting"),
        (b"\xef\xbb\xbfwith a BOM", "with a BOM"),
        (b"line one\r\nline two\r\n", "line one\r\nline two\r\n"),
        ("  café, 猫, 🐈 \n".encode(), "  café, 猫, 🐈 \n"),
        (b"\xef\xbb\xbf\xef\xbb\xbftwo BOMs", "\ufefftwo BOMs"),  # only the leading one is a BOM
        (b"", ""),
    ],
)
def test_caption_text_is_exactly_what_was_written(tmp_path: Path, data: bytes, text: str) -> None:
    (tmp_path / "c.txt").write_bytes(data)
    assert read_caption(tmp_path, "c.txt") == text


@given(st.text(), st.booleans())
def test_any_text_round_trips(text: str, bom: bool) -> None:
    data = text.encode("utf-8", "surrogatepass")
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:  # lone surrogates are not UTF-8 text
        return
    assert decode_caption((b"\xef\xbb\xbf" if bom else b"") + data, "c.txt") == text


def test_a_caption_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "latin1.txt").write_bytes("\ufeffcafé".encode("utf-8")[:3] + "café".encode("latin-1"))
    with pytest.raises(FileError, match=r"latin1.txt is not UTF-8 text \(byte 0xe9 at offset 6\)"):
        read_caption(tmp_path, "latin1.txt")


def test_a_caption_over_the_size_cap_is_refused_unread(tmp_path: Path) -> None:
    (tmp_path / "huge.txt").write_bytes(b"a" * (MAX_CAPTION_BYTES + 1))
    with pytest.raises(FileError, match=re.escape("huge.txt is 1,048,577 bytes, over the limit of 1,048,576")):
        read_caption(tmp_path, "huge.txt")


def test_a_symlinked_caption_is_refused(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("token")
    (tmp_path / "c.txt").symlink_to(tmp_path / "secret")
    with pytest.raises(FileError, match=re.escape("c.txt is a symbolic link")):
        read_caption(tmp_path, "c.txt")


def test_a_caption_gone_since_the_listing_says_so(tmp_path: Path) -> None:
    with pytest.raises(FileError, match=re.escape("gone.txt is gone")):
        read_caption(tmp_path, "gone.txt")
