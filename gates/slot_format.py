"""The slot file: exact IMAGE/MASK tensors in the safetensors layout, with a checked header.

A slot file is an ordinary safetensors file (any safetensors reader opens it): an 8-byte
little-endian header length, a JSON header, then the raw tensor bytes. Our header's
`__metadata__` says `format: dataset-gates.slot` and carries the creation time, a checksum of
the tensor bytes and the publisher's JSON meta.

Why this module reads and writes the layout itself instead of through `safetensors.torch`:
- It works on one file descriptor that the store opened without following symlinks, so the
  header and the data always come from the same file, whatever a publish or a planted link
  does to the path meanwhile (safetensors' `safe_open` takes a path and opens it again).
- Every number in the header is checked against the file before anything is allocated: a
  1 GiB claim in a 1 KB file, a uint8 "image", 7 channels or `created = nan` are refused as
  damage, never a 500 or an out-of-memory.
- A verified load reads each 1 MiB chunk straight into the owned result (`preadv`, one copy
  by the kernel) and hashes it on the same thread while it is still in cache. Big loads
  read on as many threads as torch copies with.
- `save_file` leaves its own `.tmpXXXXXX` files behind when killed; here the store's atomic
  temp file is the only file written.

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

Why read() and not a memory map: a file in the bus that someone truncates while it is mapped
kills the reading process (ComfyUI itself) with SIGBUS, where a short read is just a damaged
slot. Where a load's time goes (measured, warm page cache): faulting in fresh pages, which a
clone pays too, and the kernel's copy; the hash is a few percent. So a big load reads into
huge pages (HUGE_MIN; 512 times fewer faults) on as many threads as torch copies with
(PARALLEL_MIN, MAX_READERS), each thread whole huge pages (STRIPE). On the 2-core CI machine,
verified, against a clone: 0.46x at 2048x2048 and 0.45x at 16x1024x1024; 2.3x at 1024x1024,
where both reuse heap memory and the kernel's copy out of the page cache runs at half the
speed of torch's memcpy (the read alone is 1.9x). See benchmarks/README.md.
"""

from __future__ import annotations

import io
import json
import math
import mmap
import os
import struct
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import xxhash

from .errors import SlotCorrupt, SlotMetaTooLarge

FORMAT = "dataset-gates.slot"
FORMAT_VERSION = 1
MAX_HEADER_BYTES = 1 << 20  # ours are < 4 KB (a parked run: its prompt); a bigger claim is damage
MAX_SIDE = 1 << 16
MAX_CREATED = 1e11  # seconds since 1970: year 5138; beyond it (or inf, nan) is damage
READ_CHUNK = 1 << 20  # fits in L2 with room to spare: hashed while still in cache
PARALLEL_MIN = 8 << 20  # below this a load reads on one thread: the hand-off would cost more
MAX_READERS = min(16, os.cpu_count() or 1)
HUGE_PAGE = 2 << 20  # a transparent huge page on x86-64 and arm64 (4 KiB base pages)
HUGE_MIN = 32 << 20  # glibc maps fresh memory for anything this big (its highest mmap threshold)
STRIPE = HUGE_PAGE // READ_CHUNK  # chunks a reader takes at a time: each huge page faults on one thread
_MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)  # Linux only
CHUNKED_TAG = "xxh3x1m"  # new slots: one xxh3 per READ_CHUNK, hashed by whichever thread read it
STREAM_TAG = "xxh3"  # slots written by 0.2.0: one xxh3 over all the bytes
LEGACY_CRC_TAG = "crc32x2m"  # slots written by 0.1.0
LEGACY_CRC_CHUNK = 2 << 20

TENSORS = ("image", "mask", "latent.samples", "latent.noise_mask")  # file and checksum order
LATENT_PREFIX = "latent."

DTYPES: dict[str, torch.dtype] = {
    "F16": torch.float16,
    "BF16": torch.bfloat16,
    "F32": torch.float32,
    "F64": torch.float64,
}
_CODES = {dtype: code for code, dtype in DTYPES.items()}


def dtype_name(dtype: torch.dtype) -> str:
    """'float32' for torch.float32: how the header and listings name a dtype."""
    return str(dtype).removeprefix("torch.")


@dataclass(frozen=True)
class Entry:
    """One tensor of a slot file: its dtype, shape and absolute byte range in the file."""

    dtype: torch.dtype
    shape: tuple[int, ...]
    start: int
    end: int

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
    def contiguous(self) -> bool:
        """Back to back in TENSORS order, as we write them: one sequential read streams exactly
        the checksummed bytes (a foreign writer's file may have gaps or another order)."""
        spans = [entry for _, entry in self.ordered]
        return all(a.end == b.start for a, b in zip(spans, spans[1:]))


# -- tensors in -------------------------------------------------------------------------------
def check_tensors(image: Any, mask: Any) -> None:
    """ValueError unless `image` is float [B,H,W,C<=4] and `mask` float [B|1,H,W] or [H,W]."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4:
        raise ValueError(f"image must be a tensor [B,H,W,C], got {getattr(image, 'shape', type(image))}")
    if image.dtype not in _CODES:
        raise ValueError(f"image must be a float tensor, got {dtype_name(image.dtype)}")
    b, h, w, c = image.shape
    if min(b, h, w) < 1 or not 1 <= c <= 4:
        raise ValueError(f"image shape {list(image.shape)} is not [B>=1,H>=1,W>=1,C in 1..4]")
    if mask is None:
        return
    if not isinstance(mask, torch.Tensor) or mask.ndim not in (2, 3) or mask.dtype not in _CODES:
        raise ValueError(
            f"mask must be a float tensor [B,H,W] or [H,W], got "
            f"{getattr(mask, 'dtype', type(mask))} {list(getattr(mask, 'shape', []))}"
        )
    if tuple(mask.shape[-2:]) != (h, w):
        raise ValueError(f"mask size {list(mask.shape[-2:])} does not match image size [{h}, {w}]")
    if mask.ndim == 3 and mask.shape[0] not in (1, b):
        raise ValueError(f"mask batch {mask.shape[0]} must be 1 or the image batch {b}")


def check_latent(latent: Any) -> None:
    """ValueError unless `latent` is a ComfyUI LATENT: float `samples` [B,C,(T,)H,W], an
    optional float `noise_mask`, nothing else that is a tensor."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.dtype not in _CODES or not 3 <= samples.ndim <= 5:
        raise ValueError("latent must be a LATENT dict with float 'samples' of 3 to 5 dimensions")
    noise_mask = latent.get("noise_mask")
    if noise_mask is not None and (
        not isinstance(noise_mask, torch.Tensor) or noise_mask.dtype not in _CODES or not 2 <= noise_mask.ndim <= 5
    ):
        raise ValueError("latent noise_mask must be a float tensor of 2 to 5 dimensions")


def _raw(t: torch.Tensor) -> memoryview:
    """The bytes of a contiguous CPU tensor, bfloat16 included (numpy has no bfloat16)."""
    return memoryview(t.reshape(-1).view(torch.uint8).numpy())


def _fold(digests: list[int]) -> str:
    """The `xxh3x1m:` checksum from the chunks' digests, in order."""
    return f"{CHUNKED_TAG}:{xxhash.xxh3_64_hexdigest(np.asarray(digests, dtype='<u8').tobytes())}"


def checksum(tensors: list[torch.Tensor]) -> str:
    """What a new slot's header records: xxh3-64 of every READ_CHUNK of the tensors' bytes
    (back to back, in order), folded by one xxh3-64 of those digests. Chunks are independent,
    so a load checks each on the thread that read it."""
    digests, h, filled = [], xxhash.xxh3_64(), 0
    for t in tensors:
        data = _raw(t)
        while data:
            take = min(len(data), READ_CHUNK - filled)
            h.update(data[:take])
            data, filled = data[take:], filled + take
            if filled == READ_CHUNK:
                digests.append(h.intdigest())
                h.reset()
                filled = 0
    if filled:
        digests.append(h.intdigest())
    return _fold(digests)


def checksums(tensors: list[torch.Tensor]) -> dict[str, str]:
    """The header's checksum fields: `chunks` (xxh3x1m), which loads verify, and `checksum`
    (one xxh3 stream), which 0.2.0 verifies, so a slot written now still loads after a
    downgrade. The second hash costs a fraction of a publish (xxh3 runs at memory speed)."""
    return {"checksum": stream_checksum(tensors), "chunks": checksum(tensors)}


def write(path: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any], created: float) -> None:
    """Write a slot file at `path` (a new temp file; the store makes it durable and swaps it in).

    `tensors` are contiguous CPU tensors named from TENSORS (image required), already checked
    by check_tensors / check_latent; they are written in TENSORS order.
    """
    tensors = {name: tensors[name] for name in TENSORS if name in tensors}
    header: dict[str, Any] = {
        "__metadata__": {
            "format": FORMAT,
            "version": str(FORMAT_VERSION),
            "created": repr(created),
            **checksums(list(tensors.values())),
            "meta": json.dumps(meta, default=str),
        }
    }
    offset = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        header[name] = {"dtype": _CODES[t.dtype], "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # 8-byte aligned data, as safetensors writes it
    if len(text) > MAX_HEADER_BYTES:  # the reader would call it damage: refuse it now
        raise SlotMetaTooLarge(
            f"the slot's meta is too large: a {len(text)}-byte header, at "
            f"most {MAX_HEADER_BYTES} bytes can be read back"
        )
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    with open(os.open(path, flags, 0o644), "wb", buffering=0) as f:
        f.write(struct.pack("<Q", len(text)) + text)
        for t in tensors.values():
            _write_all(f, _raw(t))


def _write_all(f: io.RawIOBase, data: memoryview) -> None:
    while data:
        data = data[f.write(data) :]


# -- header ---------------------------------------------------------------------------------
def _bad(why: str) -> SlotCorrupt:
    return SlotCorrupt(f"not a valid Dataset Gates slot file: {why}")


def _pread_exact(f: io.RawIOBase, offset: int, out: memoryview) -> None:
    """Fill `out` from byte `offset` of `f`. Positional where the OS has pread, so that
    several threads can read one descriptor at once."""
    done = 0
    while done < len(out):
        n = _pread(f, offset + done, out[done:])
        if not n:
            raise _bad("the file ends early")
        done += n


if hasattr(os, "preadv"):

    def _pread(f: io.RawIOBase, offset: int, out: memoryview) -> int:
        return os.preadv(f.fileno(), [out], offset)

else:  # Windows: one reader at a time (see _reader_count)

    def _pread(f: io.RawIOBase, offset: int, out: memoryview) -> int:
        f.seek(offset)
        return f.readinto(out) or 0


def _entry(name: str, raw: Any, data_start: int, file_size: int) -> Entry:
    if not isinstance(raw, dict) or raw.get("dtype") not in DTYPES:
        raise _bad(
            f"{name} must be a float16/bfloat16/float32/float64 tensor, "
            f"got {raw.get('dtype') if isinstance(raw, dict) else raw!r}"
        )
    shape, offsets = raw.get("shape"), raw.get("data_offsets")
    if not isinstance(shape, list) or not all(type(n) is int and 0 <= n <= MAX_SIDE for n in shape):
        raise _bad(f"{name} has an impossible shape {shape!r}")
    if not (isinstance(offsets, list) and len(offsets) == 2 and all(type(n) is int and n >= 0 for n in offsets)):
        raise _bad(f"{name} has impossible data offsets {offsets!r}")
    dtype = DTYPES[raw["dtype"]]
    start, end = data_start + offsets[0], data_start + offsets[1]
    if end - start != math.prod(shape) * dtype.itemsize:
        raise _bad(f"{name} claims {end - start} bytes for a {shape} {dtype_name(dtype)} tensor")
    if end > file_size:
        raise _bad(f"{name} claims bytes up to {end} in a file of {file_size}")
    return Entry(dtype, tuple(shape), start, end)


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


def read_header(f: io.RawIOBase) -> Header:
    """Parse and check the header of the open slot file `f`; SlotCorrupt for anything else."""
    file_size = os.fstat(f.fileno()).st_size
    if file_size < 8:
        raise _bad(f"{file_size} bytes is too short")
    size_bytes = bytearray(8)
    _pread_exact(f, 0, memoryview(size_bytes))
    (length,) = struct.unpack("<Q", size_bytes)
    if length > MAX_HEADER_BYTES or 8 + length > file_size:
        raise _bad(f"header length {length} does not fit a file of {file_size} bytes")
    text = bytearray(length)
    _pread_exact(f, 8, memoryview(text))
    try:
        raw = json.loads(text)
        meta = raw.pop("__metadata__", None) or {}
    except (ValueError, AttributeError):
        raise _bad("the header is not a JSON object") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or "image" not in raw:
        raise _bad("it has no Dataset Gates header")
    if set(raw) - set(TENSORS):
        raise _bad(f"unexpected tensors {sorted(set(raw) - set(TENSORS))}")
    entries = {name: _entry(name, raw[name], 8 + length, file_size) for name in TENSORS if name in raw}
    _check_shapes(entries)
    spans = sorted((e.start, e.end) for e in entries.values())
    if any(a[1] > b[0] for a, b in zip(spans, spans[1:])):
        raise _bad("tensor bytes overlap")
    try:
        created = float(meta.get("created", ""))
        # NaN and Infinity are no JSON: a page's JSON.parse would refuse the whole listing.
        user_meta = json.loads(meta.get("meta") or "{}", parse_constant=lambda _: None)
    except (TypeError, ValueError):
        raise _bad("created or meta is unreadable") from None
    if not 0 <= created < MAX_CREATED or not isinstance(user_meta, dict):
        raise _bad(f"created must be a time since 1970 and meta an object, got {meta.get('created')!r}")
    checksum_text = meta.get("chunks", meta.get("checksum"))  # 0.1.0 and 0.2.0 wrote no chunks
    if not isinstance(checksum_text, str) or ":" not in checksum_text:
        raise _bad("it has no checksum")
    return Header(entries, created, checksum_text, user_meta)


# -- tensors out ------------------------------------------------------------------------------
def _owned(size: int, pinned: bool) -> torch.Tensor:
    """Memory for a load, owned by the result (never a view of the file).

    A buffer of HUGE_MIN or more is an anonymous mapping advised for transparent huge pages.
    torch's allocator (glibc) maps fresh memory for it anyway, and most of a load into fresh
    memory is page faults, one per 4 KiB page (512 per 2 MiB); with THP set to `madvise` (the
    common default) nothing but an advice gets huge pages. A smaller buffer comes from torch,
    whose heap reuses memory a clone would reuse too. Where the OS has no MADV_HUGEPAGE, or
    refuses it, every buffer is torch's.
    """
    if pinned:
        return torch.empty(size, dtype=torch.uint8, pin_memory=True)
    if size >= HUGE_MIN and _MADV_HUGEPAGE is not None:
        return _huge_page_buffer(size)
    return torch.empty(size, dtype=torch.uint8)


def _huge_page_buffer(size: int) -> torch.Tensor:
    """`size` bytes starting on a huge-page boundary of a private anonymous mapping.

    The tensor holds the mapping (through numpy), which is unmapped when the last view of it
    dies. Its storage cannot be resized in place, as with any tensor made from numpy.
    """
    region = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        region.madvise(_MADV_HUGEPAGE)
    except OSError:  # THP "never", or a kernel without it: ordinary pages, same bytes
        pass
    whole = np.frombuffer(region, dtype=np.uint8)
    skip = -whole.ctypes.data % HUGE_PAGE  # only the huge-page-aligned part gets huge pages
    return torch.from_numpy(whole[skip : skip + size])


def _view(buf: torch.Tensor, offset: int, entry: Entry) -> torch.Tensor:
    """The entry's tensor over `buf` bytes from `offset`; a copy only where it is misaligned."""
    part = buf[offset : offset + entry.nbytes]
    if offset % entry.dtype.itemsize:  # foreign writers need not align; ours always do
        part = part.clone()
    return part.view(entry.dtype).reshape(entry.shape)


def read_tensors(
    f: io.RawIOBase, header: Header, verify: bool, device: torch.device | None = None
) -> dict[str, torch.Tensor]:
    """The slot's tensors, read once into memory the caller owns.

    With `verify`, a mismatch with the stored checksum is SlotCorrupt. Our files hold the
    tensors back to back in TENSORS order, so one buffer takes the whole stream. For a CUDA
    `device` that buffer is pinned and goes over in one non-blocking copy.
    """
    ordered = header.ordered
    start, end = ordered[0][1].start, ordered[-1][1].end
    tag = header.checksum.split(":", 1)[0]
    cuda = device is not None and device.type == "cuda"
    digests = None
    if header.contiguous:
        buf = _owned(end - start, cuda)
        digests = _read_into(f, start, memoryview(buf.numpy()), verify and tag == CHUNKED_TAG)
        target = buf.to(device, non_blocking=True) if cuda else buf  # one copy for all tensors
        host = {name: _view(buf, e.start - start, e) for name, e in ordered}
        tensors = {name: _view(target, e.start - start, e) for name, e in ordered} if cuda else host
    else:  # a foreign layout (mask before image, a gap): read each tensor on its own
        host = {}
        for name, e in ordered:
            part = _owned(e.nbytes, cuda)
            _pread_exact(f, e.start, memoryview(part.numpy()))
            host[name] = part.view(e.dtype).reshape(e.shape)
        tensors = {name: t.to(device, non_blocking=True) for name, t in host.items()} if cuda else host
    if verify:
        actual = _fold(digests) if digests is not None else _checksum_as(tag, list(host.values()))
        if actual != header.checksum:
            raise SlotCorrupt(f"failed its checksum ({header.checksum} stored, {actual} read): the file is damaged")
    return tensors


def _reader_count(nbytes: int) -> int:
    """How many threads read a load of `nbytes`: as many as torch copies with (a clone into
    fresh memory faults its pages in on every core it uses), one for a small load or where the
    OS has no pread."""
    if nbytes < PARALLEL_MIN or not hasattr(os, "preadv"):
        return 1
    return max(1, min(torch.get_num_threads(), MAX_READERS, -(-nbytes // (STRIPE * READ_CHUNK))))


def _read_into(f: io.RawIOBase, start: int, raw: memoryview, digest: bool) -> list[int] | None:
    """Fill `raw` from byte `start` of `f`, READ_CHUNK by READ_CHUNK; with `digest`, the xxh3
    of each chunk, taken by the thread that read it while the chunk is still in its cache.

    Reader n takes every n-th stripe of STRIPE chunks, so the file is read front to back, each
    reader's share stays even whatever the size, and no two readers fault the same huge page.
    """
    chunks = range(0, len(raw), READ_CHUNK)
    digests = [0] * len(chunks) if digest else None

    def read_share(first: int, step: int) -> None:
        for s in range(first * STRIPE, len(chunks), step * STRIPE):
            for k in range(s, min(s + STRIPE, len(chunks))):
                chunk = raw[chunks[k] : chunks[k] + READ_CHUNK]
                _pread_exact(f, start + chunks[k], chunk)
                if digests is not None:
                    digests[k] = xxhash.xxh3_64_intdigest(chunk)

    readers = _reader_count(len(raw))
    others = [_workers.submit(read_share, n, readers) for n in range(1, readers)]
    read_share(0, readers)  # this thread is reader 0
    for share in others:
        share.result()  # a short file raises its SlotCorrupt here
    return digests


def verify(f: io.RawIOBase, header: Header) -> None:
    """Check the file's checksum in one reused READ_CHUNK buffer: what a download does before
    it sends a file of any size. SlotCorrupt on a mismatch."""
    tag = header.checksum.split(":", 1)[0]
    if not (header.contiguous and tag in (CHUNKED_TAG, STREAM_TAG)):
        read_tensors(f, header, verify=True)  # a foreign layout or a 0.1.0 checksum: rare
        return
    buf, digests, stream = memoryview(bytearray(READ_CHUNK)), [], xxhash.xxh3_64()
    start, end = header.ordered[0][1].start, header.ordered[-1][1].end
    for at in range(start, end, READ_CHUNK):
        chunk = buf[: min(READ_CHUNK, end - at)]
        _pread_exact(f, at, chunk)
        if tag == CHUNKED_TAG:
            digests.append(xxhash.xxh3_64_intdigest(chunk))
        else:
            stream.update(chunk)
    actual = _fold(digests) if tag == CHUNKED_TAG else f"{STREAM_TAG}:{stream.hexdigest()}"
    if actual != header.checksum:
        raise SlotCorrupt(f"failed its checksum ({header.checksum} stored, {actual} read): the file is damaged")


def read_rows(f: io.RawIOBase, header: Header, index: int, row0: int, row1: int) -> torch.Tensor:
    """Rows row0..row1 of batch image `index` as [rows,W,C], reading only those bytes.

    Lets a preview of a huge image be rendered band by band in bounded memory.
    """
    e = header.image
    _, h, w, c = e.shape
    row_bytes = w * c * e.dtype.itemsize
    buf = _owned((row1 - row0) * row_bytes, False)
    _pread_exact(f, e.start + (index * h + row0) * row_bytes, memoryview(buf.numpy()))
    return buf.view(e.dtype).reshape(row1 - row0, w, c)


# -- the checksum of slots written before xxh3 --------------------------------------------
# Threads start on first use; pread, xxhash and zlib release the GIL.
_workers = ThreadPoolExecutor(max_workers=MAX_READERS, thread_name_prefix="gates-io")


def _in_parallel(work: Callable[[Any], int], jobs: list[Any]) -> list[int]:
    """Run chunk jobs on the worker threads."""
    if len(jobs) < 2:
        return [work(job) for job in jobs]
    return list(_workers.map(work, jobs))


def legacy_crc_checksum(tensors: list[torch.Tensor]) -> str:
    """crc32 of every 2 MiB chunk of each tensor, folded into one crc32 of the chunk crcs."""
    chunks = [
        np.asarray(_raw(t))[i : i + LEGACY_CRC_CHUNK]
        for t in tensors
        for i in range(0, t.numel() * t.element_size(), LEGACY_CRC_CHUNK)
    ]
    crcs = _in_parallel(zlib.crc32, chunks)
    return f"{LEGACY_CRC_TAG}:{zlib.crc32(b''.join(c.to_bytes(4, 'little') for c in crcs)):08x}"


def stream_checksum(tensors: list[torch.Tensor]) -> str:
    """xxh3-64 over all the tensors' bytes in one stream: the checksum 0.2.0 wrote."""
    h = xxhash.xxh3_64()
    for t in tensors:
        h.update(_raw(t))
    return f"{STREAM_TAG}:{h.hexdigest()}"


def _checksum_as(tag: str, tensors: list[torch.Tensor]) -> str:
    if tag == CHUNKED_TAG:
        return checksum(tensors)
    if tag == STREAM_TAG:
        return stream_checksum(tensors)
    if tag == LEGACY_CRC_TAG:
        return legacy_crc_checksum(tensors)
    raise SlotCorrupt(f"unknown checksum kind {tag!r}")
