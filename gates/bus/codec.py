"""The slot file codec: exact IMAGE/MASK/LATENT tensors in the safetensors layout, on bytes.

A slot file is an ordinary safetensors file (any safetensors reader opens it): an 8-byte
little-endian header length, a JSON header, then the raw tensor bytes. Our header's
`__metadata__` says `format: dataset-gates.slot` and carries the creation time, a checksum of
the tensor bytes and the publisher's JSON meta. Every backend stores this same file, so a
slot moves between buses as bytes, and this module works on bytes only: a folder bus hands it
what it read from a file descriptor, another backend what a ranged read returned.

Every number in the header is checked against the file's size before anything is
allocated: a 1 GiB claim in a 1 KB file, a uint8 "image", 7 channels or `created = nan` are
refused as damage (SlotCorrupt), never a 500 or an out-of-memory.

A slot holds up to four tensors, always in this order: `image` [B,H,W,C], `mask` [B|1,H,W]
or [H,W], and a LATENT's `latent.samples` and `latent.noise_mask`, so a resume before decode
gets the latent exactly as the sampler left it.

The checksum is xxh3 (the `xxhash` package, about 29 GB/s a core against about 5 GB/s for
zlib.crc32): `xxh3x1m:` is the xxh3-64 of every 1 MiB chunk of the tensors' bytes (in that
order, back to back), folded by one xxh3-64 of those digests, so each reader thread checks the
chunks it read and no thread waits for another. It sits in the header's `chunks` field; the
`checksum` field keeps the one-stream `xxh3:` that 0.2.0 verifies, so a downgrade still reads
new slots. Older slots still load and verify: `xxh3:` (0.2.0: checked after the read) and
`crc32x2m:` (0.1.0: crc32 of each 2 MiB chunk, folded).

Headers are parsed without torch, numpy or Pillow (dtypes by their names): those are imported
where tensors or pixels are made, so a listing (`gates ls`) starts without them.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import xxhash

from . import json_limits
from .contract import SlotInfo
from .errors import SlotCorrupt, SlotIndexError, SlotMetaTooLarge, SlotNotFound, SlotTooLarge
from .tensors import DTYPE_NAMES, ITEMSIZES, TENSORS, dtype_code, torch_dtype

if TYPE_CHECKING:
    import torch

FORMAT = "dataset-gates.slot"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 1 << 20  # ours are < 4 KB (a parked run: its prompt); a bigger claim is damage
MAX_SIDE = 1 << 16
MAX_THUMB_BYTES = 8 << 20  # ours are ~100 KB
MAX_CREATED = 1e11  # seconds since 1970: year 5138; beyond it (or inf, nan) is damage
MAX_SEQ = 10**19  # a version number beyond it is damage (history names versions in 20 digits)
READ_CHUNK = 1 << 20  # fits in L2 with room to spare: hashed while still in cache
MAX_READERS = min(16, os.cpu_count() or 1)
CHUNKED_TAG = "xxh3x1m"  # new slots: one xxh3 per READ_CHUNK, hashed by whichever thread read it
STREAM_TAG = "xxh3"  # slots written by 0.2.0: one xxh3 over all the bytes
LEGACY_CRC_TAG = "crc32x2m"  # slots written by 0.1.0
LEGACY_CRC_CHUNK = 2 << 20


@dataclass(frozen=True)
class Entry:
    """One tensor of a slot file: its dtype (by its code, 'F32'), shape and absolute byte
    range in the file."""

    code: str
    shape: tuple[int, ...]
    start: int
    end: int

    @property
    def dtype(self) -> torch.dtype:
        return torch_dtype(self.code)

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES[self.code]

    @property
    def nbytes(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class Header:
    """A slot file's checked header. Everything here was validated against the file's size."""

    entries: dict[str, Entry]
    created: float
    checksum: str
    meta: dict[str, Any]
    seq: int | None = None  # the version's number within its slot; None in files written before 0.3

    @property
    def image(self) -> Entry:
        return self.entries["image"]

    @property
    def mask(self) -> Entry | None:
        return self.entries.get("mask")

    @property
    def latent(self) -> Entry | None:
        return self.entries.get("latent.samples")

    @property
    def ordered(self) -> list[tuple[str, Entry]]:
        """The tensors in file and checksum order (TENSORS)."""
        return [(name, self.entries[name]) for name in TENSORS if name in self.entries]

    @property
    def tag(self) -> str:
        """The checksum's kind: CHUNKED_TAG, STREAM_TAG or LEGACY_CRC_TAG."""
        return self.checksum.split(":", 1)[0]

    @property
    def contiguous(self) -> bool:
        """Back to back in TENSORS order, as we write them: one sequential read streams exactly
        the checksummed bytes (a foreign writer's file may have gaps or another order)."""
        spans = [entry for _, entry in self.ordered]
        return all(a.end == b.start for a, b in itertools.pairwise(spans))


def raw_bytes(t: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, bfloat16 included (numpy has no bfloat16)."""
    import torch

    return t.reshape(-1).view(torch.uint8).numpy().data


def fold(digests: list[int]) -> str:
    """The `xxh3x1m:` checksum from the chunks' digests, in order."""
    return f"{CHUNKED_TAG}:{xxhash.xxh3_64_hexdigest(struct.pack(f'<{len(digests)}Q', *digests))}"


def _hash_chunks(tensors: list[torch.Tensor], whole: xxhash.xxh3_64 | None) -> list[int]:
    """The xxh3-64 of every READ_CHUNK of the tensors' bytes (back to back, in order); with
    `whole`, each piece also goes into that stream hash, while it is still in cache."""
    digests, h, filled = [], xxhash.xxh3_64(), 0
    for t in tensors:
        data = raw_bytes(t)
        while data:
            take = min(len(data), READ_CHUNK - filled)
            h.update(data[:take])
            if whole is not None:
                whole.update(data[:take])
            data, filled = data[take:], filled + take
            if filled == READ_CHUNK:
                digests.append(h.intdigest())
                h.reset()
                filled = 0
    if filled:
        digests.append(h.intdigest())
    return digests


def checksum(tensors: list[torch.Tensor]) -> str:
    """What a new slot's header records: xxh3-64 of every READ_CHUNK of the tensors' bytes
    (back to back, in order), folded by one xxh3-64 of those digests. Chunks are independent,
    so a load checks each on the thread that read it."""
    return fold(_hash_chunks(tensors, None))


def checksums(tensors: list[torch.Tensor]) -> dict[str, str]:
    """The header's checksum fields: `chunks` (xxh3x1m), which loads verify, and `checksum`
    (one xxh3 stream), which 0.2.0 verifies, so a slot written now still loads after a
    downgrade. Both in one pass: each 1 MiB piece is hashed twice while it is in cache, so
    the second hash costs a fraction of a pass over memory."""
    whole = xxhash.xxh3_64()
    chunks = fold(_hash_chunks(tensors, whole))
    return {"checksum": f"{STREAM_TAG}:{whole.hexdigest()}", "chunks": chunks}


def encode_header(
    tensors: dict[str, torch.Tensor], meta: dict[str, Any], created: float, seq: int | None = None
) -> bytes:
    """The bytes a slot file starts with (length prefix and JSON header) for `tensors`, which
    follow it back to back in TENSORS order (see `ordered`); `seq` numbers the version.

    `tensors` are contiguous CPU tensors named from TENSORS (image required), already checked
    by check_tensors / check_latent. Numbers in `meta` that are not finite are stored as null,
    as a read would give them. ValueError when `meta` nests deeper than a read accepts,
    SlotMetaTooLarge when the header could not be read back.
    """
    tensors = ordered(tensors)
    header: dict[str, Any] = {
        "__metadata__": {
            "format": FORMAT,
            "version": str(FORMAT_VERSION),
            "created": repr(created),
            **checksums(list(tensors.values())),
            "meta": json_limits.dumps(json_limits.plain(meta, "the slot's meta"), default=str),
            **({"seq": str(seq)} if seq is not None else {}),
        }
    }
    offset = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": dtype_code(t.dtype), "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # 8-byte aligned data, as safetensors writes it
    if len(text) > MAX_HEADER_BYTES:  # the reader would call it damage: refuse it now
        raise SlotMetaTooLarge(
            f"the slot's meta is too large: a {len(text)}-byte header, at "
            f"most {MAX_HEADER_BYTES} bytes can be read back"
        )
    return struct.pack("<Q", len(text)) + text


def ordered(tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`tensors` in file and checksum order (TENSORS)."""
    return {name: tensors[name] for name in TENSORS if name in tensors}


def encode_parts(tensors: dict[str, torch.Tensor], meta: dict[str, Any], created: float) -> list[bytes | memoryview]:
    """A whole slot file as its parts: the header's bytes, then each tensor's bytes as a view
    of the tensor (no copy). What a store can send as one object without joining it first:
    a copy of the whole file into fresh memory costs a big publish as much as the hashing."""
    return [encode_header(tensors, meta, created), *(raw_bytes(t) for t in ordered(tensors).values())]


def encode(tensors: dict[str, torch.Tensor], meta: dict[str, Any], created: float) -> bytes:
    """A whole slot file in memory: what a backend without files stores as one object."""
    return b"".join(encode_parts(tensors, meta, created))


# -- header ---------------------------------------------------------------------------------
def _bad(why: str) -> SlotCorrupt:
    return SlotCorrupt(f"not a valid Dataset Gates slot file: {why}")


def _short(text: str) -> str:
    """A header value for a message: crafted ones can be a megabyte long."""
    return text if len(text) <= 80 else text[:77] + "..."


def truncated() -> SlotCorrupt:
    """What a backend raises when a slot file ends before its header says it should."""
    return _bad("the file ends early")


def _entry(name: str, raw: Any, data_start: int, file_size: int) -> Entry:
    code = raw.get("dtype") if isinstance(raw, dict) else raw
    if not (isinstance(raw, dict) and isinstance(code, str) and code in DTYPE_NAMES):  # a list is no dtype
        raise _bad(f"{name} must be a float16/bfloat16/float32/float64 tensor, got {_short(repr(code))}")
    shape, offsets = raw.get("shape"), raw.get("data_offsets")
    if not isinstance(shape, list) or not all(type(n) is int and 0 <= n <= MAX_SIDE for n in shape):
        raise _bad(f"{name} has an impossible shape {_short(repr(shape))}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int and n >= 0 for n in offsets)):
        raise _bad(f"{name} has impossible data offsets {_short(repr(offsets))}")
    start, end = data_start + offsets[0], data_start + offsets[1]
    if end - start != math.prod(shape) * ITEMSIZES[code]:
        raise _bad(f"{name} claims {end - start} bytes for a {shape} {DTYPE_NAMES[code]} tensor")
    if end > file_size:
        raise _bad(f"{name} claims bytes up to {end} in a file of {file_size}")
    return Entry(code, tuple(shape), start, end)


def _check_shapes(entries: dict[str, Entry]) -> None:
    image, mask = entries["image"], entries.get("mask")
    latent, noise_mask = entries.get("latent.samples"), entries.get("latent.noise_mask")
    if (
        (latent is None and noise_mask is not None)
        or (latent and not 3 <= len(latent.shape) <= 5)
        or (noise_mask and not 2 <= len(noise_mask.shape) <= 5)
    ):
        raise _bad("the latent tensors have impossible shapes")
    if len(image.shape) != 4 or min(image.shape[:3]) < 1 or not 1 <= image.shape[3] <= 4:
        raise _bad(f"image shape {list(image.shape)} is not [B>=1,H>=1,W>=1,C in 1..4]")
    if mask is None:
        return
    b, h, w, _ = image.shape
    if (
        len(mask.shape) not in (2, 3)
        or mask.shape[-2:] != (h, w)
        or (len(mask.shape) == 3 and mask.shape[0] not in (1, b))
    ):
        raise _bad(f"mask shape {list(mask.shape)} does not fit image shape {list(image.shape)}")


def header_length(first8: bytes, file_size: int) -> int:
    """The JSON header's length from a slot file's first 8 bytes; SlotCorrupt when it cannot
    fit a file of `file_size` bytes (a backend reads 8 + this many bytes next)."""
    if file_size < 8 or len(first8) < 8:
        raise _bad(f"{file_size} bytes is too short")
    (length,) = struct.unpack("<Q", first8[:8])
    if length > MAX_HEADER_BYTES or 8 + length > file_size:
        raise _bad(f"header length {length} does not fit a file of {file_size} bytes")
    return int(length)


def parse_header(text: bytes | bytearray | memoryview, file_size: int) -> Header:
    """Parse and check the JSON header `text` (the `header_length` bytes after the first 8)
    of a slot file of `file_size` bytes; SlotCorrupt for anything else, whatever its shape."""
    length = len(text)
    try:
        raw = json_limits.loads(text)
    except ValueError as exc:
        raise _bad(f"the header is not JSON ({_short(str(exc))})") from None
    if not isinstance(raw, dict):
        raise _bad("the header is not a JSON object")
    meta = raw.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "image" not in raw:
        raise _bad("it has no Dataset Gates header")
    if set(raw) - set(TENSORS):
        raise _bad(f"unexpected tensors {sorted(set(raw) - set(TENSORS))}")
    entries = {name: _entry(name, raw[name], 8 + length, file_size) for name in TENSORS if name in raw}
    _check_shapes(entries)
    spans = sorted((e.start, e.end) for e in entries.values())
    if any(a[1] > b[0] for a, b in itertools.pairwise(spans)):
        raise _bad("tensor bytes overlap")
    try:
        created = float(meta.get("created", ""))
        # Finite numbers only: a page's JSON.parse refuses NaN and Infinity, and the whole listing with them.
        user_meta = json_limits.loads(meta.get("meta") or "{}")
    except (TypeError, ValueError) as exc:
        raise _bad(f"created or meta is unreadable ({_short(str(exc))})") from None
    if not 0 <= created < MAX_CREATED or not isinstance(user_meta, dict):
        raise _bad(f"created must be a time since 1970 and meta an object, got {_short(repr(meta.get('created')))}")
    checksum_text = meta.get("chunks", meta.get("checksum"))  # 0.1.0 and 0.2.0 wrote no chunks
    if not isinstance(checksum_text, str) or ":" not in checksum_text:
        raise _bad("it has no checksum")
    return Header(entries, created, checksum_text, user_meta, _seq(meta.get("seq")))


def _seq(text: Any) -> int | None:
    """The version number a header carries (None: written before versions were numbered)."""
    if text is None:
        return None
    if not (isinstance(text, str) and text.isascii() and text.isdigit() and len(text) < 20 and 0 < int(text) < MAX_SEQ):
        raise _bad(f"seq must be a version number, got {_short(repr(text))}")
    return int(text)


def read_header(read_at: Callable[[int, int], bytes], file_size: int) -> Header:
    """The checked header of a slot file of `file_size` bytes, through `read_at(offset, n)`
    (which returns exactly n bytes or raises): two small reads, whatever the backend."""
    length = header_length(read_at(0, 8) if file_size >= 8 else b"", file_size)
    return parse_header(read_at(8, length), file_size)


def parse_file(data: bytes | memoryview) -> Header:
    """The checked header of a whole slot file held in memory."""
    view = memoryview(data)
    return read_header(lambda offset, n: bytes(view[offset : offset + n]), len(view))


# -- tensors out ------------------------------------------------------------------------------
def decode_tensors(data: bytes | memoryview, header: Header, verify: bool) -> dict[str, torch.Tensor]:
    """The tensors of a whole slot file held in memory, as copies the caller owns, in
    TENSORS order; with `verify`, SlotCorrupt when the checksum does not match."""
    import numpy as np
    import torch

    view = memoryview(data)
    out = {}
    for name, e in header.ordered:
        buf = torch.empty(e.nbytes, dtype=torch.uint8)
        buf.numpy()[:] = np.frombuffer(view[e.start : e.end], dtype=np.uint8)
        out[name] = buf.view(e.dtype).reshape(e.shape)
    if verify:
        check_checksum(header, checksum_as(header.tag, list(out.values())))
    return out


class _Pieces:
    """A slot file arriving front to back in pieces (a GET's body): `take` for the header's
    few bytes, `into` to copy a span straight into the caller's memory."""

    def __init__(self, pieces: Iterator[memoryview]):
        self.pieces = pieces
        self.piece = memoryview(b"")  # the unread rest of the current piece
        self.pos = 0  # the file offset of self.piece[0]

    def _next(self) -> None:
        while not self.piece:
            got = next(self.pieces, None)
            if got is None:
                raise truncated()
            self.piece = got

    def take(self, n: int) -> bytes:
        out = bytearray(n)
        self.into(memoryview(out))
        return bytes(out)

    def into(self, out: memoryview, each: Callable[[int], None] | None = None) -> None:
        """Fill `out` with the next len(out) bytes; `each(filled)` after every piece copied."""
        done = 0
        while done < len(out):
            self._next()
            n = min(len(self.piece), len(out) - done)
            out[done : done + n] = self.piece[:n]
            self.piece, self.pos, done = self.piece[n:], self.pos + n, done + n
            if each is not None:
                each(done)

    def skip_to(self, offset: int) -> None:
        while self.pos < offset:
            self._next()
            n = min(len(self.piece), offset - self.pos)
            self.piece, self.pos = self.piece[n:], self.pos + n

    def finish(self, size: int) -> None:
        """Read to the end: SlotCorrupt unless the file was exactly `size` bytes."""
        self.skip_to(size)
        if self.piece or next(self.pieces, None) is not None:
            raise _bad(f"the file is longer than its {size} bytes")


def decode_stream(
    pieces: Iterator[memoryview],
    size: int,
    verify: bool,
    alloc: Callable[[int], torch.Tensor] | None = None,
) -> tuple[Header, dict[str, torch.Tensor]]:
    """The checked header and the tensors of a slot file of `size` bytes that arrives in
    `pieces` (a GET's body), in TENSORS order; with `verify`, SlotCorrupt when the checksum
    does not match.

    Our files hold the tensors back to back, so each piece is copied once, into one buffer
    from `alloc(nbytes)` (uint8; the tensors are views of it, as a folder load's are), and
    each READ_CHUNK is hashed as soon as it is whole, while it is still in cache: no second
    pass over memory, and no copy of the whole file first. A foreign layout is read whole
    and decoded as `decode_tensors` does.
    """
    import torch

    stream = _Pieces(pieces)
    length = header_length(stream.take(8) if size >= 8 else b"", size)
    header = parse_header(stream.take(length), size)
    if not header.contiguous:
        rest = bytearray(size)
        stream.into(memoryview(rest)[8 + length :])
        stream.finish(size)
        return header, decode_tensors(memoryview(rest), header, verify)
    ordered = header.ordered
    start, end = ordered[0][1].start, ordered[-1][1].end
    buf = alloc(end - start) if alloc is not None else torch.empty(end - start, dtype=torch.uint8)
    raw = buf.numpy().data
    tag = header.tag
    digests: list[int] = []
    whole = xxhash.xxh3_64()
    hashed = 0

    def hash_to(filled: int) -> None:
        nonlocal hashed
        if tag == CHUNKED_TAG:
            while filled - hashed >= READ_CHUNK or (filled == len(raw) and hashed < filled):
                chunk = raw[hashed : min(hashed + READ_CHUNK, filled)]
                digests.append(xxhash.xxh3_64_intdigest(chunk))
                hashed += len(chunk)
        elif tag == STREAM_TAG:
            whole.update(raw[hashed:filled])
            hashed = filled

    stream.skip_to(start)
    stream.into(raw, hash_to if verify and tag in (CHUNKED_TAG, STREAM_TAG) else None)
    stream.finish(size)
    tensors = {}
    for name, e in ordered:
        part = buf[e.start - start : e.end - start]
        if (e.start - start) % e.dtype.itemsize:  # foreign writers need not align; ours always do
            part = part.clone()
        tensors[name] = part.view(e.dtype).reshape(e.shape)
    if verify:
        if tag == CHUNKED_TAG:
            actual = fold(digests)
        elif tag == STREAM_TAG:
            actual = f"{STREAM_TAG}:{whole.hexdigest()}"
        else:  # a 0.1.0 checksum
            actual = checksum_as(tag, list(tensors.values()))
        check_checksum(header, actual)
    return header, tensors


def check_checksum(header: Header, actual: str) -> None:
    """SlotCorrupt unless `actual` (computed from what was read) is the header's checksum."""
    if actual != header.checksum:
        raise SlotCorrupt(f"failed its checksum ({header.checksum} stored, {actual} read): the file is damaged")


def verify_stream(read_into: Callable[[int, memoryview], None], header: Header) -> None:
    """Check a slot file's checksum in one reused READ_CHUNK buffer, through
    `read_into(offset, buffer)`: what a download does before it sends a file of any size.
    SlotCorrupt on a mismatch."""
    tag = header.tag
    if not (header.contiguous and tag in (CHUNKED_TAG, STREAM_TAG)):
        # a foreign layout or a 0.1.0 checksum (rare): each tensor read whole
        import torch

        tensors = []
        for _, e in header.ordered:
            part = torch.empty(e.nbytes, dtype=torch.uint8)
            read_into(e.start, part.numpy().data)
            tensors.append(part)
        check_checksum(header, checksum_as(tag, tensors))
        return
    buf, digests, stream = memoryview(bytearray(READ_CHUNK)), [], xxhash.xxh3_64()
    start, end = header.ordered[0][1].start, header.ordered[-1][1].end
    for at in range(start, end, READ_CHUNK):
        chunk = buf[: min(READ_CHUNK, end - at)]
        read_into(at, chunk)
        if tag == CHUNKED_TAG:
            digests.append(xxhash.xxh3_64_intdigest(chunk))
        else:
            stream.update(chunk)
    check_checksum(header, fold(digests) if tag == CHUNKED_TAG else f"{STREAM_TAG}:{stream.hexdigest()}")


def read_rows(
    read_into: Callable[[int, memoryview], None], header: Header, index: int, row0: int, row1: int
) -> torch.Tensor:
    """Rows row0..row1 of batch image `index` as [rows,W,C], through `read_into(offset,
    buffer)`, reading only those bytes: a preview of a huge image renders band by band."""
    _, h, w, c = header.image.shape
    return _plane_rows(read_into, header.image, index, (h, w, c), row0, row1)


def _plane_rows(
    read_into: Callable[[int, memoryview], None],
    e: Entry,
    plane: int,
    hwc: tuple[int, int, int],
    row0: int,
    row1: int,
) -> torch.Tensor:
    """Rows row0..row1 of plane `plane` of tensor `e`, whose planes are [H,W,C] = `hwc`."""
    import torch

    h, w, c = hwc
    row_bytes = w * c * e.dtype.itemsize
    buf = torch.empty((row1 - row0) * row_bytes, dtype=torch.uint8)
    read_into(e.start + (plane * h + row0) * row_bytes, buf.numpy().data)
    return buf.view(e.dtype).reshape(row1 - row0, w, c)


def _mask_rows(
    read_into: Callable[[int, memoryview], None], e: Entry, index: int, row0: int, row1: int
) -> torch.Tensor:
    """Rows row0..row1 of mask `e` of batch image `index` as [rows,W,1] (a mask of batch 1 or
    [H,W] is every image's), reading only those bytes, as `read_rows` does for the image."""
    h, w = e.shape[-2:]
    plane = index if len(e.shape) == 3 and e.shape[0] > 1 else 0
    return _plane_rows(read_into, e, plane, (h, w, 1), row0, row1)


def preview(
    ref: str,
    header: Header,
    index: int,
    side: int,
    read_into: Callable[[int, memoryview], None],
    mask: bool = False,
) -> bytes:
    """PNG preview of batch image `index` of slot `ref` (with `mask`, of its mask: grey, white
    = masked), long side <= side, read band by band through `read_into`: paging a big batch
    stays cheap, and an image too big to render is refused from its header alone (SlotTooLarge;
    SlotIndexError for a bad index, SlotNotFound for a mask the slot does not hold)."""
    from .. import images

    b, h, w, c = header.image.shape
    if not 0 <= index < b:
        raise SlotIndexError(f"index must be from 0 to {b - 1}, got {index}")
    if h * w > images.MAX_RENDER_PIXELS:
        raise SlotTooLarge(
            f"slot {ref!r}: an image of {w}x{h} pixels is over the render limit of {images.MAX_RENDER_PIXELS} pixels"
        )
    if not mask:
        return images.preview_rows(lambda r0, r1: read_rows(read_into, header, index, r0, r1), h, w, c, side)
    e = header.mask
    if e is None:
        raise SlotNotFound(f"slot {ref!r} has no mask")
    return images.preview_rows(lambda r0, r1: _mask_rows(read_into, e, index, r0, r1), h, w, 1, side)


def thumbnail(image: torch.Tensor) -> bytes:
    """The PNG thumbnail a publish stores beside the slot file."""
    from .. import images

    return images.png_bytes(images.thumbnail(image))


def check_thumbnail(ref: str, data: bytes) -> bytes:
    """`data` if it is a PNG of at most MAX_THUMB_BYTES, else SlotCorrupt naming `ref`."""
    from .. import images

    if len(data) > MAX_THUMB_BYTES or not data.startswith(images.PNG_SIGNATURE):
        raise SlotCorrupt(f"slot {ref!r}: thumbnail refused: not a PNG file")
    return data


def describe(slot_id: str, header: Header, size: int, **extra: Any) -> SlotInfo:
    """A listing's SlotInfo from a checked header (never tensor data); `extra` is what only the
    backend knows: version, versions, pinned, has_thumb."""
    mask, latent = header.mask, header.latent
    return SlotInfo(
        id=slot_id,
        image_shape=list(header.image.shape),
        image_dtype=header.image.dtype_name,
        mask_shape=list(mask.shape) if mask else None,
        mask_dtype=mask.dtype_name if mask else None,
        created=header.created,
        bytes=size,
        checksum=header.checksum,
        meta=header.meta,
        latent_shape=list(latent.shape) if latent else None,
        latent_dtype=latent.dtype_name if latent else None,
        **extra,
    )


# -- the checksum of slots written before xxh3 --------------------------------------------
# Threads start on first use; pread, xxhash and zlib release the GIL. A folder bus reads big
# loads on these threads too.
workers = ThreadPoolExecutor(max_workers=MAX_READERS, thread_name_prefix="gates-io")


def _in_parallel(work: Callable[[Any], int], jobs: list[Any]) -> list[int]:
    """Run chunk jobs on the worker threads."""
    if len(jobs) < 2:
        return [work(job) for job in jobs]
    return list(workers.map(work, jobs))


def legacy_crc_checksum(tensors: list[torch.Tensor]) -> str:
    """crc32 of every 2 MiB chunk of each tensor, folded into one crc32 of the chunk crcs."""
    import numpy as np

    chunks = [
        np.asarray(raw_bytes(t))[i : i + LEGACY_CRC_CHUNK]
        for t in tensors
        for i in range(0, t.numel() * t.element_size(), LEGACY_CRC_CHUNK)
    ]
    crcs = _in_parallel(zlib.crc32, chunks)
    return f"{LEGACY_CRC_TAG}:{zlib.crc32(b''.join(c.to_bytes(4, 'little') for c in crcs)):08x}"


def stream_checksum(tensors: list[torch.Tensor]) -> str:
    """xxh3-64 over all the tensors' bytes in one stream: the checksum 0.2.0 wrote."""
    h = xxhash.xxh3_64()
    for t in tensors:
        h.update(raw_bytes(t))
    return f"{STREAM_TAG}:{h.hexdigest()}"


def checksum_as(tag: str, tensors: list[torch.Tensor]) -> str:
    if tag == CHUNKED_TAG:
        return checksum(tensors)
    if tag == STREAM_TAG:
        return stream_checksum(tensors)
    if tag == LEGACY_CRC_TAG:
        return legacy_crc_checksum(tensors)
    raise SlotCorrupt(f"unknown checksum kind {tag!r}")
