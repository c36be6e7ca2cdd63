"""codec.decode_stream: a slot file decoded as a GET's body arrives (the object bus's load).

It must give exactly what decoding the whole file gives, wherever the pieces split the file
(the header, a tensor, a checksum chunk), and refuse damage the same way: a checksum that
fails, a file shorter or longer than the store said, any crafted header.
"""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
import torch
from crafted_slots import CRAFTED, with_header

from gates.bus import codec
from gates.bus.errors import SlotCorrupt


def _file(tag: str = "chunks", b: int = 2, h: int = 300, w: int = 700) -> tuple[bytes, dict[str, torch.Tensor]]:
    """A slot file of several READ_CHUNKs (image, mask and a latent) with checksum `tag`."""
    g = torch.Generator().manual_seed(3)
    tensors = {
        "image": torch.rand(b, h, w, 3, generator=g),
        "mask": torch.rand(b, h, w, generator=g).half(),
        "latent.samples": torch.randn(b, 4, 8, 8, generator=g, dtype=torch.float64),
    }
    data = codec.encode(tensors, {"k": [1, 2]}, 1700000000.5)
    if tag != "chunks":  # as 0.2.0 (xxh3) or 0.1.0 (crc32x2m) wrote it: one checksum field

        def older(header: dict) -> None:
            header["__metadata__"].pop("chunks")
            header["__metadata__"]["checksum"] = codec.checksum_as(tag, list(tensors.values()))

        data = with_header(data, older)
    return data, tensors


def _pieces(data: bytes, sizes: list[int]) -> Iterator[memoryview]:
    """`data` in pieces of the given sizes, cycled; each piece a fresh buffer, as a stream's."""
    at, n = 0, 0
    while at < len(data):
        size = sizes[n % len(sizes)]
        yield memoryview(bytes(data[at : at + size]))
        at, n = at + size, n + 1


SPLITS = {
    "whole": [1 << 40],
    "one byte, then chunks": [1, codec.READ_CHUNK],
    "odd sizes": [7, 4093, codec.READ_CHUNK - 1, 3 * codec.READ_CHUNK + 5],
    "a chunk and a bit": [codec.READ_CHUNK + 1],
}


@pytest.mark.parametrize("tag", ["chunks", "xxh3", "crc32x2m"])
@pytest.mark.parametrize("split", sorted(SPLITS))
def test_any_split_decodes_exactly_what_the_whole_file_does(tag: str, split: str) -> None:
    data, tensors = _file(tag)
    header, got = codec.decode_stream(_pieces(data, SPLITS[split]), len(data), verify=True)
    assert header == codec.parse_file(data)
    assert list(got) == list(tensors)
    for name, t in tensors.items():
        assert got[name].dtype == t.dtype and torch.equal(got[name], t)
    assert got["image"].numpy().flags.writeable  # the caller's to change


@pytest.mark.parametrize("tag", ["chunks", "xxh3", "crc32x2m"])
def test_a_flipped_byte_fails_the_checksum_wherever_it_is(tag: str) -> None:
    data, _ = _file(tag)
    start = codec.parse_file(data).image.start
    for at in (start, start + codec.READ_CHUNK, len(data) - 1):
        bad = bytearray(data)
        bad[at] ^= 0x10
        with pytest.raises(SlotCorrupt, match="checksum"):
            codec.decode_stream(_pieces(bytes(bad), [65536]), len(bad), verify=True)
        codec.decode_stream(_pieces(bytes(bad), [65536]), len(bad), verify=False)  # asked not to check


def test_a_file_shorter_or_longer_than_the_store_said_is_damage() -> None:
    data, _ = _file()
    with pytest.raises(SlotCorrupt, match="ends early"):
        codec.decode_stream(_pieces(data[:-1], [65536]), len(data), verify=True)
    with pytest.raises(SlotCorrupt, match="longer"):
        codec.decode_stream(_pieces(data + b"\0", [65536]), len(data), verify=True)


def test_a_foreign_layout_decodes_as_the_whole_file_does() -> None:
    """The mask's bytes before the image's (safetensors' own order for these names)."""
    data, tensors = _file()
    header = codec.parse_file(data)
    length = header.image.start - 8
    image, mask = data[header.image.start : header.image.end], data[header.mask.start : header.mask.end]
    rest = data[header.mask.end :]

    def swap(h: dict) -> None:
        n_mask = len(mask)
        h["mask"]["data_offsets"] = [0, n_mask]
        h["image"]["data_offsets"] = [n_mask, n_mask + len(image)]

    foreign = with_header(data, swap)
    foreign = foreign[: len(foreign) - (len(data) - 8 - length)] + mask + image + rest
    assert not codec.parse_file(foreign).contiguous
    _, got = codec.decode_stream(_pieces(foreign, [random.Random(1).randrange(1, 1 << 20)]), len(foreign), True)
    for name, t in tensors.items():
        assert torch.equal(got[name], t)


@pytest.mark.parametrize("name", sorted(CRAFTED))
def test_a_crafted_file_is_refused_as_parse_file_refuses_it(name: str) -> None:
    data = CRAFTED[name]
    try:
        codec.parse_file(data)
    except SlotCorrupt:
        with pytest.raises(SlotCorrupt):
            codec.decode_stream(_pieces(data, [5]), len(data), verify=True)
