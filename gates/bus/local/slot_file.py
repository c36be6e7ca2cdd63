"""A slot file on a local disk: written through one new file, read through one descriptor.

The layout and its checks are the codec's (`gates.bus.codec`); this module is the fast,
safe way a folder bus moves those bytes.

Why this module reads the layout itself instead of through `safetensors.torch`:
- It works on one file descriptor that the store opened without following symlinks, so the
  header and the data always come from the same file, whatever a publish or a planted link
  does to the path meanwhile (safetensors' `safe_open` takes a path and opens it again).
- A verified load reads each 1 MiB chunk straight into the owned result (`preadv`, one copy
  by the kernel) and hashes it on the same thread while it is still in cache. Big loads
  read on as many threads as torch copies with.
- `save_file` leaves its own `.tmpXXXXXX` files behind when killed; here the store's atomic
  temp file is the only file written.

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
import mmap
import os
from typing import TYPE_CHECKING, Any

import xxhash

from .. import codec
from ..codec import CHUNKED_TAG, MAX_READERS, READ_CHUNK, Entry, Header

if TYPE_CHECKING:  # imported where tensors are made: reading a header needs neither
    import torch

PARALLEL_MIN = 8 << 20  # below this a load reads on one thread: the hand-off would cost more
HUGE_PAGE = 2 << 20  # a transparent huge page on x86-64 and arm64 (4 KiB base pages)
HUGE_MIN = 32 << 20  # glibc maps fresh memory for anything this big (its highest mmap threshold)
STRIPE = HUGE_PAGE // READ_CHUNK  # chunks a reader takes at a time: each huge page faults on one thread
_MADV_HUGEPAGE = getattr(mmap, "MADV_HUGEPAGE", None)  # Linux only


def write(path: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any], created: float, seq: int) -> None:
    """Write version `seq` of a slot at `path` (a new temp file; the store makes it durable and
    swaps it in).

    `tensors` are contiguous CPU tensors named from TENSORS (image required), already checked
    by check_tensors / check_latent; they are written in TENSORS order.
    """
    head = codec.encode_header(tensors, meta, created, seq)  # SlotMetaTooLarge before any file exists
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    with open(os.open(path, flags, 0o644), "wb", buffering=0) as f:
        f.write(head)
        for t in codec.ordered(tensors).values():
            _write_all(f, codec.raw_bytes(t))


def _write_all(f: io.RawIOBase, data: memoryview) -> None:
    while data:
        data = data[f.write(data) :]


# -- header ---------------------------------------------------------------------------------
def pread_exact(f: io.RawIOBase, offset: int, out: memoryview) -> None:
    """Fill `out` from byte `offset` of `f`. Positional where the OS has pread, so that
    several threads can read one descriptor at once."""
    done = 0
    while done < len(out):
        n = _pread(f, offset + done, out[done:])
        if not n:
            raise codec.truncated()
        done += n


if hasattr(os, "preadv"):

    def _pread(f: io.RawIOBase, offset: int, out: memoryview) -> int:
        return os.preadv(f.fileno(), [out], offset)

else:  # Windows: one reader at a time (see _reader_count)

    def _pread(f: io.RawIOBase, offset: int, out: memoryview) -> int:
        f.seek(offset)
        return f.readinto(out) or 0


def read_header(f: io.RawIOBase) -> Header:
    """Parse and check the header of the open slot file `f`; SlotCorrupt for anything else."""

    def read_at(offset: int, n: int) -> bytes:
        out = bytearray(n)
        pread_exact(f, offset, memoryview(out))
        return bytes(out)

    return codec.read_header(read_at, os.fstat(f.fileno()).st_size)


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
    import torch

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
    import numpy as np
    import torch

    region = mmap.mmap(-1, size + HUGE_PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    try:
        if _MADV_HUGEPAGE is not None:
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
    tag = header.tag
    cuda = device is not None and device.type == "cuda"
    digests = None
    if header.contiguous:
        buf = _owned(end - start, cuda)
        digests = _read_into(f, start, buf.numpy().data, verify and tag == CHUNKED_TAG)
        target = buf.to(device, non_blocking=True) if cuda else buf  # one copy for all tensors
        host = {name: _view(buf, e.start - start, e) for name, e in ordered}
        tensors = {name: _view(target, e.start - start, e) for name, e in ordered} if cuda else host
    else:  # a foreign layout (mask before image, a gap): read each tensor on its own
        host = {}
        for name, e in ordered:
            part = _owned(e.nbytes, cuda)
            pread_exact(f, e.start, part.numpy().data)
            host[name] = part.view(e.dtype).reshape(e.shape)
        tensors = {name: t.to(device, non_blocking=True) for name, t in host.items()} if cuda else host
    if verify:
        codec.check_checksum(
            header, codec.fold(digests) if digests is not None else codec.checksum_as(tag, list(host.values()))
        )
    return tensors


def _reader_count(nbytes: int) -> int:
    """How many threads read a load of `nbytes`: as many as torch copies with (a clone into
    fresh memory faults its pages in on every core it uses), one for a small load or where the
    OS has no pread."""
    if nbytes < PARALLEL_MIN or not hasattr(os, "preadv"):
        return 1
    import torch

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
                pread_exact(f, start + chunks[k], chunk)
                if digests is not None:
                    digests[k] = xxhash.xxh3_64_intdigest(chunk)

    readers = _reader_count(len(raw))
    others = [codec.workers.submit(read_share, n, readers) for n in range(1, readers)]
    read_share(0, readers)  # this thread is reader 0
    for share in others:
        share.result()  # a short file raises its SlotCorrupt here
    return digests


def verify(f: io.RawIOBase, header: Header) -> None:
    """Check the file's checksum in one reused READ_CHUNK buffer: what a download does before
    it sends a file of any size. SlotCorrupt on a mismatch."""
    codec.verify_stream(lambda offset, out: pread_exact(f, offset, out), header)


def read_rows(f: io.RawIOBase, header: Header, index: int, row0: int, row1: int) -> torch.Tensor:
    """Rows row0..row1 of batch image `index` as [rows,W,C], reading only those bytes.

    Lets a preview of a huge image be rendered band by band in bounded memory.
    """
    return codec.read_rows(lambda offset, out: pread_exact(f, offset, out), header, index, row0, row1)
