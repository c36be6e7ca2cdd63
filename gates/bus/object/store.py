"""The object-store bus: slots in an S3-compatible bucket (AWS S3, R2, MinIO, ...), under
`s3://bucket/prefix`, shared by every machine that can reach it.

It stores exactly the slot files and thumbnails a folder bus writes (the codec's bytes), so a
slot moves between buses as bytes and reads back bit-exactly. Under the bus's prefix:

- `versions/<time_ns>-<random>.safetensors` and `.png`: one immutable object pair per
  version, written whole (and with If-None-Match) before anything names it;
- `slots/<id>.json`: the slot's manifest (see `manifest`): its versions, newest first, and
  its pin, replaced only by a conditional write;
- `index.json`: every slot's listing row (see `index`); `policy.json`: the storage policy.

Atomic without locks across machines. A publish writes its version, then swaps the manifest
with If-Match on the ETag it read (If-None-Match: * for a new slot); a writer that loses the
race reads the manifest again and lands on top of the winner, so concurrent publishes all
reach history, in the order their swaps succeeded. Readers read the manifest, then the
version it names; a version pruned meanwhile sends them back to the manifest. A writer killed
before its swap leaves an object nothing names: invisible, and collected by `gates gc`.

Conditional writes: AWS S3 (since Aug/Nov 2024), R2, MinIO and moto (`moto/s3/responses.py`
`put_object`: If-Match and If-None-Match: *) honour If-Match and If-None-Match on PUT; obstore
sends them (`conditional_put="etag"`). moto's threaded server checks the condition and stores
the object without a lock between, so its own check is not atomic under concurrent requests;
the tests serialize moto's writes (tests/moto_s3.py) to give it S3's guarantee, which is what
the bus relies on.
"""

from __future__ import annotations

import builtins
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar

from .. import codec
from ..contract import SlotData, SlotInfo, info_or_damaged
from ..errors import SlotCorrupt, SlotError, SlotNotFound, SlotUnavailable, SlotWriteError
from ..ids import format_ref, parse_ref, validate_id
from ..local import slot_file
from ..policy import Policy, policy_from_json, policy_to_json
from ..quota import enforce_quota
from ..tensors import image_and_mask, slot_data, slot_tensors
from . import manifest as mf
from .client import Client, Conflict
from .config import settings_for
from .index import Index, Row

if TYPE_CHECKING:
    import torch

T = TypeVar("T")
log = logging.getLogger("dataset_gates")
POLICY_KEY = "policy.json"
MAX_POLICY_BYTES = 64 << 10
HEAD_READ = 64 << 10  # a header read's first request: ours are < 4 KB, a parked run's bigger
MAX_TRIES = 200  # conditional swaps lost in a row before a publish gives up
READ_TRIES = 5  # a version pruned while it was read: read the manifest again this often

_thumbs = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gates-s3-thumb")


def _owned(size: int) -> torch.Tensor:
    """Memory for a load, as a folder load gets it (huge pages for a big one: most of a
    load into fresh memory is page faults, 512 times fewer at 2 MiB a page)."""
    return slot_file._owned(size, pinned=False)


def manifest_key(slot_id: str) -> str:
    return f"slots/{slot_id}.json"


def version_key(name: str) -> str:
    return f"versions/{name}.safetensors"


def thumb_key(name: str) -> str:
    return f"versions/{name}.png"


def _backoff(attempt: int) -> None:
    """A lost swap waits a little, longer each time, with jitter: writers spread out."""
    time.sleep(secrets.randbelow(1000) / 1000 * min(0.2, 0.002 * 2 ** min(attempt, 7)))


def _named(ref: str, work: Callable[..., T], *args: Any) -> T:
    """`work(*args)` on slot `ref`'s bytes; a failure it reports names the slot, once."""
    try:
        return work(*args)
    except SlotError as exc:
        if str(exc).startswith(f"slot {ref!r}"):
            raise
        raise type(exc)(f"slot {ref!r}: {exc}") from None


@dataclass
class _Found:
    """One version as a read found it: where it is and its checked header."""

    ref: str
    manifest: mf.Manifest
    version: mf.Version
    header: codec.Header
    size: int
    etag: str

    @property
    def key(self) -> str:
        return version_key(self.version.name)


class _Sequential:
    """`read_into(offset, buffer)` over one streamed GET, for reads that move forward (a
    checksum pass); a read behind the stream falls back to a ranged GET."""

    def __init__(self, pieces: Iterator[bytes], fallback: Callable[[int, memoryview], None]):
        self.pieces, self.fallback = pieces, fallback
        self.pos, self.buf = 0, bytearray()  # buf holds the stream's bytes from pos on

    def __call__(self, offset: int, out: memoryview) -> None:
        if offset < self.pos:
            self.fallback(offset, out)
            return
        end = offset + len(out)
        while self.pos + len(self.buf) < end:
            piece = next(self.pieces, None)
            if piece is None:
                raise codec.truncated()
            self.buf += piece
        at = offset - self.pos
        out[:] = self.buf[at : at + len(out)]
        del self.buf[: at + len(out)]
        self.pos = end


@dataclass
class _ObjectStream:
    """A verified version object, as a `SlotStream`: streamed again from the store, only
    while it is still the object that was verified (its ETag; versions are immutable)."""

    client: Client
    key: str
    etag: str
    size: int
    ref: str

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        buf = bytearray()
        for piece in self.client.stream(self.key, self.etag, max(chunk_size, 1 << 20), f"send slot {self.ref!r}"):
            buf += piece
            while len(buf) >= chunk_size:
                yield bytes(buf[:chunk_size])
                del buf[:chunk_size]
        if buf:
            yield bytes(buf)


class ObjectBus:
    """All slots of one bus in a bucket. Holds no slot state: safe across threads, processes
    and machines."""

    def __init__(self, location: str, env: dict[str, str] | None = None):
        self.settings = settings_for(location, env)
        self.client = Client(self.settings)
        self.index = Index(self.client)

    def __repr__(self) -> str:
        return f"ObjectBus({self.location!r})"

    @property
    def name(self) -> str:
        return f"bus {self.label!r}"

    @property
    def label(self) -> str:
        return self.settings.label

    @property
    def location(self) -> str:
        return self.settings.location

    def where(self, slot_id: str) -> str:
        """The slot's manifest: it names the version objects under `versions/`."""
        return f"{self.location}/{manifest_key(validate_id(slot_id))}"

    def bus_exists(self) -> bool:
        """Whether anything was ever published or set here (the index or the policy is there);
        a missing bucket is SlotUnavailable saying so."""
        return any(self.client.head(key, "look for the bus") is not None for key in ("index.json", POLICY_KEY))

    def listing_token(self) -> str:
        """Changes whenever the listing does (the index's ETag): one HEAD request."""
        return self.index.token()

    # -- manifests ---------------------------------------------------------------------------
    def _manifest(self, slot_id: str) -> tuple[mf.Manifest, str | None]:
        """The slot's manifest and its ETag (an empty one and None when there is none)."""
        got = self.client.get(manifest_key(slot_id), mf.MAX_MANIFEST_BYTES, f"read slot {slot_id!r}")
        if got is None:
            return mf.Manifest(), None
        try:
            return mf.from_json(got.data), got.etag
        except SlotCorrupt as exc:
            raise SlotCorrupt(f"slot {slot_id!r}: {exc}") from None

    def _swap(
        self, slot_id: str, make: Callable[[mf.Manifest], mf.Manifest | None], doing: str
    ) -> tuple[mf.Manifest, mf.Manifest]:
        """Replace the slot's manifest with `make(current)` by a conditional write, reading
        again after every lost race; returns (the manifest replaced, the one written).
        `make` returning None means nothing to write (already done)."""
        for attempt in range(MAX_TRIES):
            current, etag = self._manifest(slot_id)
            new = make(current)
            if new is None:
                return current, current
            try:
                self.client.put(
                    manifest_key(slot_id), mf.to_json(new), doing, mode={"e_tag": etag} if etag else "create"
                )
            except Conflict:
                _backoff(attempt)
                continue
            return current, new
        raise SlotWriteError(f"could not {doing}: its manifest kept changing ({MAX_TRIES} tries); nothing was changed")

    def _remove(self, versions: builtins.list[mf.Version], doing: str) -> None:
        """Delete the objects of versions no manifest names any more (best effort: `gates gc`
        collects what a failure here leaves)."""
        keys = [k for v in versions for k in (version_key(v.name), thumb_key(v.name))]
        try:
            self.client.delete(keys, doing)
        except SlotError:
            pass

    def _row(self, slot_id: str, m: mf.Manifest, info: SlotInfo | None = None) -> Row:
        if not m.versions:
            return Row(m.seq, 0, None)
        return Row(m.seq, m.used, info if info is not None else self._info_or_damaged(slot_id))

    # -- finding a version ----------------------------------------------------------------------
    @staticmethod
    def _pick(m: mf.Manifest, slot_id: str, back: int, bus: str) -> mf.Version:
        if not m.versions:
            raise SlotNotFound(f"no slot {slot_id!r} in {bus}")
        if back >= len(m.versions):
            raise SlotNotFound(
                f"slot {slot_id!r} keeps {len(m.versions) - 1} older version(s); "
                f"{format_ref(slot_id, back)!r} asks for {back} back"
            )
        return m.versions[back]

    def _find(self, ref: str) -> _Found:
        """The version `ref` names and its checked header (two small ranged reads at most)."""
        slot_id, back = parse_ref(ref)
        for _ in range(READ_TRIES):
            found = self._found(self._manifest(slot_id)[0], slot_id, back)
            if found is not None:
                return found
        raise SlotNotFound(f"slot {format_ref(slot_id, back)!r} kept changing while it was read; try again")

    def _found(self, m: mf.Manifest, slot_id: str, back: int) -> _Found | None:
        """Version `back` of manifest `m` with its checked header; None when its object is
        gone (pruned since `m` was read: the caller reads the manifest again)."""
        name = format_ref(slot_id, back)
        v = self._pick(m, slot_id, back, self.name)
        key = version_key(v.name)
        first = _named(name, self.client.start, key, HEAD_READ, f"read slot {name!r}")
        if first is None:
            return None
        data, size, etag = first
        read_into = self.client.read_into(key, f"read slot {name!r}")

        def read_at(offset: int, n: int) -> bytes:
            if offset + n <= len(data):
                return data[offset : offset + n]
            out = bytearray(n)
            read_into(offset, memoryview(out))
            return bytes(out)

        header = _named(name, codec.read_header, read_at, size)
        return _Found(name, m, v, header, size, etag)

    @staticmethod
    def _describe(slot_id: str, back: int, found: _Found) -> SlotInfo:
        return codec.describe(
            slot_id,
            found.header,
            found.size,
            version=-back,
            versions=len(found.manifest.versions),
            pinned=found.manifest.pinned,
            has_thumb=found.version.thumb is not None,
        )

    # -- SlotBus ------------------------------------------------------------------------------
    def publish(
        self,
        slot_id: str,
        image: torch.Tensor,
        mask: torch.Tensor | None = None,
        meta: dict[str, Any] | None = None,
        latent: dict[str, Any] | None = None,
    ) -> SlotInfo:
        """Write the version's objects, then swap the manifest (see the module's docstring).
        A failure before the swap leaves the slot as it was; an object it left is `gates gc`'s."""
        validate_id(slot_id)
        tensors, meta = slot_tensors(image, mask, meta, latent)
        created = time.time()
        thumb_job = _thumbs.submit(codec.thumbnail, tensors["image"])
        parts = codec.encode_parts(tensors, meta, created)  # sent as they are: never joined
        size = sum(len(part) for part in parts)
        header = codec.parse_header(parts[0][8:], size)
        doing = f"publish slot {slot_id!r}"
        try:
            policy = self.policy()
            new = self._publish(slot_id, parts, size, thumb_job.result, created, policy.keep, doing)
        except SlotUnavailable as exc:  # a read on the way failed: for a publish, a write that failed
            raise SlotWriteError(f"{exc}; the previous version, if any, is unchanged") from None
        info = codec.describe(
            slot_id, header, size, version=0, versions=len(new.versions), pinned=new.pinned, has_thumb=True
        )
        try:
            self.index.set_rows({slot_id: self._row(slot_id, new, info)}, f"list slot {slot_id!r}")
            self.enforce_quota(protect=slot_id, policy=policy)
        except SlotError as exc:  # published: only the listing lags, until the next change or `gates gc`
            log.warning("%s: slot %r is published but its listing row is not: %s", self.name, slot_id, exc)
        return info

    def _publish(
        self,
        slot_id: str,
        parts: builtins.list[bytes | memoryview],
        size: int,
        thumb: Callable[[], bytes],
        created: float,
        keep: int,
        doing: str,
    ) -> mf.Manifest:
        """Write the version's objects (the slot file from its `parts`, `size` bytes in all),
        then swap the manifest; returns the one written."""
        name = f"{time.time_ns():020d}-{secrets.token_hex(8)}"
        self.client.put(version_key(name), parts, doing, mode="create")
        png = thumb()
        self.client.put(thumb_key(name), png, doing, mode="create")
        version = mf.Version(name, size, len(png), created)
        dropped: builtins.list[mf.Version] = []

        def make(m: mf.Manifest) -> mf.Manifest | None:
            if any(v.name == name for v in m.versions):
                return None  # a retried PUT that had landed: it is in already
            new, drop = m.published(version, keep)
            dropped[:] = drop
            return new

        _, new = self._swap(slot_id, make, doing)
        self._remove(dropped, doing)
        return new

    def read(self, ref: str, device: str | torch.device = "cpu", verify: bool = True) -> SlotData:
        """One GET of the manifest, one of the whole version, decoded as it arrives: each piece
        copied once into the tensors' memory and hashed there (`codec.decode_stream`)."""
        slot_id, back = parse_ref(ref)
        name = format_ref(slot_id, back)
        for _ in range(READ_TRIES):
            m, _ = self._manifest(slot_id)
            v = self._pick(m, slot_id, back, self.name)
            opened = _named(name, self.client.open, version_key(v.name), codec.READ_CHUNK, f"read slot {name!r}")
            if opened is None:
                continue  # pruned since the manifest was read: read it again
            size, pieces = opened
            header, tensors = _named(name, codec.decode_stream, pieces, size, verify, _owned)
            return slot_data({k: t.to(device) for k, t in tensors.items()}, header.meta)
        raise SlotNotFound(f"slot {name!r} kept changing while it was read; try again")

    def load(
        self, ref: str, device: str | torch.device = "cpu", verify: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return image_and_mask(self.read(ref, device, verify))

    def fingerprint(self, slot_id: str) -> str:
        m, _ = self._manifest(validate_id(slot_id))
        return f"{m.seq}-{m.versions[0].name}" if m.versions else "missing"

    def exists(self, slot_id: str) -> bool:
        return bool(self._manifest(validate_id(slot_id))[0].versions)

    # -- BusAdmin -----------------------------------------------------------------------------
    def ids(self) -> builtins.list[str]:
        """From the listing index: one request, no slot read."""
        rows, _ = self.index.read()
        return sorted(k for k, r in rows.items() if r.info is not None)

    def list(self) -> builtins.list[SlotInfo]:
        """From the listing index: one request (a 304 when this process read it last)."""
        rows, _ = self.index.read()
        out = [r.info for r in rows.values() if r.info is not None]
        out.sort(key=lambda s: s.created, reverse=True)
        return out

    def info(self, ref: str) -> SlotInfo:
        slot_id, back = parse_ref(ref)
        return self._describe(slot_id, back, self._find(ref))

    def _info_or_damaged(self, ref: str) -> SlotInfo:
        return info_or_damaged(self.info, ref)

    def history(self, slot_id: str) -> builtins.list[SlotInfo]:
        """Every version of one manifest read (a consistent set, whatever publishes meanwhile)."""
        validate_id(slot_id)
        for _ in range(READ_TRIES):
            m, _ = self._manifest(slot_id)
            self._pick(m, slot_id, 0, self.name)
            out = []
            for back in range(len(m.versions)):
                try:
                    found = self._found(m, slot_id, back)
                except SlotNotFound:
                    raise
                except SlotError as exc:
                    out.append(SlotInfo.damaged(slot_id, str(exc), version=-back))
                    continue
                if found is None:
                    break  # pruned meanwhile: read the manifest again
                out.append(self._describe(slot_id, back, found))
            else:
                return out
        raise SlotNotFound(f"slot {slot_id!r} kept changing while its history was read; try again")

    def delete(self, slot_id: str) -> int:
        """Empty the manifest in one swap (never a half-deleted slot), then remove the objects."""
        validate_id(slot_id)
        removed: builtins.list[mf.Version] = []

        def make(m: mf.Manifest) -> mf.Manifest:
            if not m.versions:
                raise SlotNotFound(f"no slot {slot_id!r} in {self.name}")
            removed[:] = m.versions
            return m.emptied()

        _, new = self._swap(slot_id, make, f"delete slot {slot_id!r}")
        self._remove(removed, f"delete slot {slot_id!r}")
        self.index.set_rows({slot_id: self._row(slot_id, new)}, f"list slot {slot_id!r}")
        return sum(v.used for v in removed)

    def rename(self, old: str, new: str, overwrite: bool = False) -> SlotInfo:
        """Move the versions' names from one manifest to the other; no object is copied.

        The target names the versions first, then the source is emptied by a write conditional
        on the source as it was read, so at every moment some manifest names them: a rename
        cut short (a kill, the store down) leaves the slot under both names, never under none
        (`gates gc` would delete unnamed versions). A publish to the source meanwhile makes the
        conditional write fail: the target then names the source's new versions, and it tries
        again.
        """
        validate_id(old)
        validate_id(new)
        if old == new:
            if not self.exists(old):
                raise SlotNotFound(f"no slot {old!r} in {self.name}")
            return self._info_or_damaged(new)
        if self.exists(new) and not overwrite:
            raise FileExistsError(f"slot {new!r} already exists; delete it first or overwrite")
        doing = f"rename slot {old!r}"
        named: tuple[mf.Version, ...] = ()  # what an earlier try put in the target
        replaced: builtins.list[mf.Version] = []
        for attempt in range(MAX_TRIES):
            source, src_etag = self._manifest(old)
            if not source.versions:
                raise SlotNotFound(f"no slot {old!r} in {self.name}")

            def put(m: mf.Manifest, source: mf.Manifest = source, named: tuple[mf.Version, ...] = named) -> mf.Manifest:
                if m.versions and m.versions != named and not overwrite:
                    raise FileExistsError(f"slot {new!r} already exists; delete it first or overwrite")
                replaced[:] = [v for v in m.versions if v not in named and v not in source.versions]
                return mf.Manifest(m.seq + 1, source.pinned, source.versions)

            _, dst_after = self._swap(new, put, doing)  # named by both now: nothing is ever unnamed
            named = source.versions
            src_after = source.emptied()
            try:
                self.client.put(manifest_key(old), mf.to_json(src_after), doing, mode={"e_tag": src_etag})
            except Conflict:  # the source changed (a publish): name its versions now, again
                _backoff(attempt)
                continue
            break
        else:
            raise SlotWriteError(f"could not {doing}: its manifest kept changing ({MAX_TRIES} tries)")
        self._remove(replaced, doing)
        info = self._info_or_damaged(new)
        self.index.set_rows(
            {old: self._row(old, src_after), new: self._row(new, dst_after, info)}, f"list slot {new!r}"
        )
        return info

    def pin(self, slot_id: str, pinned: bool = True) -> SlotInfo:
        validate_id(slot_id)

        def make(m: mf.Manifest) -> mf.Manifest:
            if not m.versions:
                raise SlotNotFound(f"no slot {slot_id!r} in {self.name}")
            return replace(m, seq=m.seq + 1, pinned=pinned)

        _, new = self._swap(slot_id, make, f"{'pin' if pinned else 'unpin'} slot {slot_id!r}")
        info = replace(self._info_or_damaged(slot_id), pinned=pinned)
        self.index.set_rows({slot_id: self._row(slot_id, new, info)}, f"list slot {slot_id!r}")
        return info

    def policy(self) -> Policy:
        got = self.client.get(POLICY_KEY, MAX_POLICY_BYTES, "read the storage policy")
        return Policy() if got is None else policy_from_json(got.data, self.name)

    def set_policy(self, **changes: Any) -> tuple[Policy, builtins.list[str]]:
        policy = replace(self.policy(), **changes)
        etag = self.client.put(POLICY_KEY, policy_to_json(policy), f"save the storage policy of {self.name}")
        self.index.touch(f"policy {etag}", f"note the new storage policy of {self.name}")  # the token moves
        return policy, self.enforce_quota(policy=policy)

    def enforce_quota(self, protect: str | None = None, policy: Policy | None = None) -> builtins.list[str]:
        return enforce_quota(self, (policy or self.policy()).quota_bytes, protect)

    def usage(self) -> int:
        """Bytes of every kept version and thumbnail, from the listing index."""
        rows, _ = self.index.read()
        return sum(r.used for r in rows.values() if r.info is not None)

    def thumbnail(self, ref: str) -> bytes:
        slot_id, back = parse_ref(ref)
        name = format_ref(slot_id, back)
        for _ in range(READ_TRIES):
            v = self._pick(self._manifest(slot_id)[0], slot_id, back, self.name)
            if v.thumb is None:
                raise SlotNotFound(f"slot {name!r} has no thumbnail")
            got = _named(name, self.client.get, thumb_key(v.name), codec.MAX_THUMB_BYTES, f"read slot {name!r}")
            if got is not None:
                return codec.check_thumbnail(name, got.data)
        raise SlotNotFound(f"slot {name!r} has no thumbnail")

    def render(self, ref: str, index: int, side: int = 1024, mask: bool = False) -> bytes:
        """Only the bytes of that image are read, band by band, by ranged GETs."""
        found = self._find(ref)
        read_into = self.client.read_into(found.key, f"read slot {found.ref!r}")
        return _named(found.ref, codec.preview, found.ref, found.header, index, side, read_into, mask)

    @contextmanager
    def verified_stream(self, ref: str) -> Iterator[_ObjectStream]:
        """Checked in one streamed GET, sent in another of the same immutable object (If-Match)."""
        found = self._find(ref)
        doing = f"read slot {found.ref!r}"
        reader = _Sequential(
            self.client.stream(found.key, found.etag, codec.READ_CHUNK, doing), self.client.read_into(found.key, doing)
        )
        _named(found.ref, codec.verify_stream, reader, found.header)
        yield _ObjectStream(self.client, found.key, found.etag, found.size, found.ref)

    # -- what a foreign writer or damage leaves (tests plant slots with it) ----------------------
    def put_raw(self, slot_id: str, data: bytes, thumb: bytes | None = None) -> None:
        """Store `data` unchecked as the only version of `slot_id`, replacing the slot."""
        validate_id(slot_id)
        name = f"{time.time_ns():020d}-{secrets.token_hex(8)}"
        doing = f"plant slot {slot_id!r}"
        self.client.put(version_key(name), data, doing, mode="create")
        if thumb is not None:
            self.client.put(thumb_key(name), thumb, doing, mode="create")
        version = mf.Version(name, len(data), None if thumb is None else len(thumb), time.time())
        dropped: builtins.list[mf.Version] = []

        def make(m: mf.Manifest) -> mf.Manifest:
            dropped[:] = m.versions
            return mf.Manifest(m.seq + 1, m.pinned, (version,))

        _, new = self._swap(slot_id, make, doing)
        self._remove(dropped, doing)
        self.index.set_rows({slot_id: self._row(slot_id, new)}, doing)

    def raw(self, ref: str) -> bytes:
        """The stored slot file of `ref`, unchecked."""
        slot_id, back = parse_ref(ref)
        v = self._pick(self._manifest(slot_id)[0], slot_id, back, self.name)
        blob = self.client.get_blob(version_key(v.name), f"read slot {ref!r}")
        if blob is None:
            raise SlotNotFound(f"no slot {ref!r} in {self.name}")
        return bytes(blob[0])
