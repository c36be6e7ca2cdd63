"""The folder bus: every slot of one bus folder, its versions, pins and policy.

A slot is a folder `<bus>/<id>/` holding `slot.safetensors` (the exact tensors, in the
codec's layout) and `thumb.png` (what a person sees in pickers and the browser); older
versions, when the policy keeps them, sit in `history/` (see `history`). A folder in the
seed's layout (`image.png` + `mask.png`) is migrated to a slot the first time anything reads
it (see `migration`).

This module owns paths, atomic replacement, listing, renames and deletes; what is inside a
slot file is the codec's business, and `slot_file` moves its bytes. Every file is opened
through `safe_files`, so a planted symlink, FIFO or foreign file is reported as a damaged
slot, never followed. Callers see only the bus contract (`gates.bus.contract`), so a bus on
another kind of storage replaces this class without touching them.
"""

from __future__ import annotations

import io
import logging
import os
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .. import codec
from ..contract import SlotData, SlotInfo, info_or_damaged
from ..errors import SlotCorrupt, SlotError, SlotNotFound, SlotWriteError
from ..ids import format_ref, is_slot_name, parse_ref, validate_id
from ..policy import Policy, policy_from_json, policy_to_json
from ..quota import enforce_quota
from ..tensors import image_and_mask, slot_data, slot_tensors
from . import history, listing, migration, slot_file
from .atomic import atomic_write, clean_stale_temps, fsync_dir
from .locks import os_reason, slot_locks
from .safe_files import UnsafeFile, ensure_real_dir, open_regular, read_regular

if TYPE_CHECKING:  # imported where tensors are made: listing and info read headers only
    import torch

__all__ = ["SlotStore"]

SLOT_FILE = "slot.safetensors"
THUMB_FILE = "thumb.png"
PIN_FILE = "pinned"
POLICY_FILE = ".policy.json"
MAX_POLICY_BYTES = 64 << 10

log = logging.getLogger("dataset_gates")
T = TypeVar("T")


def _tree_bytes(folder: Path) -> int:
    """Bytes of every file under `folder`, links not followed (files vanishing count as 0)."""
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(parent, name)).st_size
            except FileNotFoundError:
                continue
    return total


def _same_folder(a: Path, b: Path) -> bool:
    """Whether two paths name one folder (ids that differ in case, on a case-insensitive disk)."""
    try:
        return os.path.samestat(os.lstat(a), os.lstat(b))
    except FileNotFoundError:
        return False


_thumbs: ThreadPoolExecutor | None = None


def _thumb_pool() -> ThreadPoolExecutor:
    """Two threads that make thumbnails beside the publishes writing their tensor files."""
    global _thumbs
    if _thumbs is None:
        _thumbs = ThreadPoolExecutor(max_workers=2, thread_name_prefix="gates-thumb")
    return _thumbs


@dataclass
class _FileStream:
    """An open, verified slot file: a `SlotStream` read in chunks from that one descriptor."""

    file: io.FileIO
    size: int

    def chunks(self, chunk_size: int) -> Iterator[bytes]:
        self.file.seek(0)
        while chunk := self.file.read(chunk_size):
            yield chunk


@dataclass
class _Version:
    """Where one version of a slot lives: its folder, tensor file and thumbnail."""

    slot_id: str
    back: int
    folder: Path
    path: Path
    thumb: Path

    @property
    def ref(self) -> str:
        return format_ref(self.slot_id, self.back)


class SlotStore:
    """All slots under one bus folder. Stateless: safe to share between threads and processes."""

    def __init__(self, root: str | os.PathLike[str]):
        self.root = Path(root)

    @property
    def name(self) -> str:
        """How messages name the bus: its folder name, never the server's full path."""
        return f"bus {self.label!r}"

    @property
    def label(self) -> str:
        return self.root.name

    @property
    def location(self) -> str:
        return str(self.root)

    def bus_exists(self) -> bool:
        """Whether the bus folder exists (a link to a folder counts); ValueError for a file."""
        if self.root.is_dir():
            return True
        if os.path.lexists(self.root):
            raise ValueError(f"{self.name} is a file, not a bus folder: give a folder")
        return False

    def where(self, slot_id: str) -> str:
        """The slot's folder, for a person at this machine's shell."""
        return str(self.slot_dir(slot_id))

    def policy(self) -> Policy:
        """Read on every use, so a change made from the command line applies at once. No file
        is the default policy; a damaged one is an error, not a reset."""
        try:
            data = read_regular(self.root / POLICY_FILE, MAX_POLICY_BYTES)
        except FileNotFoundError:
            return Policy()
        except OSError as exc:
            raise ValueError(f"storage policy of {self.name} is unreadable: {exc.strerror}") from None
        except SlotCorrupt as exc:
            raise ValueError(f"storage policy of {self.name} is unreadable: {exc}") from None
        return policy_from_json(data, self.name)

    def _write_policy(self, policy: Policy) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with self._changing():
            data = policy_to_json(policy)
            with atomic_write(self.root / POLICY_FILE, lambda tmp: Path(tmp).write_bytes(data)) as commit:
                commit()

    # -- paths -----------------------------------------------------------------------------
    def slot_dir(self, slot_id: str) -> Path:
        """The folder of a slot: one validated name under the bus, never a symlink."""
        path = self.root / validate_id(slot_id)
        try:
            mode = os.lstat(path).st_mode  # one look: a folder deleted meanwhile is just absent
        except FileNotFoundError:
            return path
        if not stat.S_ISDIR(mode):
            raise SlotCorrupt(f"slot {slot_id!r} is a symbolic link or a file, not a slot folder")
        return path

    def _version(self, ref: str) -> _Version:
        """Where 'id' or 'id@-N' lives; SlotNotFound when fewer versions are kept."""
        slot_id, back = parse_ref(ref)
        d = self.slot_dir(slot_id)
        self.migrate(slot_id)
        if back == 0:
            return _Version(slot_id, 0, d, d / SLOT_FILE, d / THUMB_FILE)
        older = history.older_versions(d)
        if back > len(older):
            raise SlotNotFound(f"slot {slot_id!r} keeps {len(older)} older version(s); {ref!r} asks for {back} back")
        path = older[back - 1]
        return _Version(slot_id, back, d, path, path.with_suffix(".png"))

    def exists(self, slot_id: str) -> bool:
        """Whether the slot has a current version."""
        self.migrate(slot_id)
        return os.path.lexists(self.slot_dir(slot_id) / SLOT_FILE)

    def ids(self) -> list[str]:
        """The ids of every slot folder, sorted; no file is opened."""
        return sorted(slot_id for slot_id, _, _ in self._scan())

    def fingerprint(self, slot_id: str) -> str:
        """Changes whenever the slot is republished; what Bus Load's IS_CHANGED reports."""
        self.migrate(slot_id)
        try:
            st = os.lstat(self.slot_dir(slot_id) / SLOT_FILE)
        except FileNotFoundError:
            return "missing"
        return f"{st.st_mtime_ns}-{st.st_size}-{st.st_ino}"

    # -- reading one file -------------------------------------------------------------------
    @contextmanager
    def _open(self, v: _Version) -> Iterator[tuple[_Version, io.FileIO, codec.Header]]:
        """The version's tensor file, open and with its header checked.

        Everything read through the yielded file comes from one inode, so a publish that
        replaces the path meanwhile cannot pair one version's header with another's data.
        """
        try:
            f = open_regular(v.path)
        except FileNotFoundError:
            raise SlotNotFound(f"no slot {v.ref!r} in {self.name}") from None
        except SlotCorrupt as exc:
            raise SlotCorrupt(f"slot {v.ref!r}: {exc}") from None
        with f:
            yield v, f, self._checked(v.ref, lambda: slot_file.read_header(f))

    @staticmethod
    def _checked(ref: str, read: Callable[[], T]) -> T:
        """Run a read of slot `ref`; damage and I/O errors become SlotCorrupt naming it."""
        try:
            return read()
        except SlotError as exc:
            if str(exc).startswith(f"slot {ref!r}"):
                raise
            raise type(exc)(f"slot {ref!r}: {exc}") from None
        except OSError as exc:
            raise SlotCorrupt(f"slot {ref!r} is unreadable: {os_reason(exc)}") from None

    # -- write -----------------------------------------------------------------------------
    def publish(
        self,
        slot_id: str,
        image: torch.Tensor,
        mask: torch.Tensor | None = None,
        meta: dict[str, Any] | None = None,
        latent: dict[str, Any] | None = None,
    ) -> SlotInfo:
        """Store `image` (and `mask`, and a ComfyUI LATENT) exactly, replacing the slot atomically.

        The tensor file and its thumbnail are both fully written and fsynced under temporary
        names before either replaces the old one, so a crash or a full disk leaves the previous
        version whole. A latent's `samples` and `noise_mask` are stored as tensors; its
        `batch_index`, if any, goes in the meta.
        """
        tensors, meta = slot_tensors(image, mask, meta, latent)
        policy = self.policy()
        with self._locked(slot_id):
            self._write(slot_id, tensors, meta, time.time(), policy.keep)
            info = self.info(slot_id)
        self.enforce_quota(protect=slot_id, policy=policy)  # outside the lock: it takes other slots' locks
        return info

    def _write(
        self, slot_id: str, tensors: dict[str, torch.Tensor], meta: dict[str, Any], created: float, keep: int
    ) -> None:
        """Write a new current version, the caller holding the slot's lock.

        The tensor file and its thumbnail are both fully written and fsynced under temporary
        names before either replaces the old one, so a crash or a full disk leaves the previous
        version whole. The thumbnail (downscale + PNG, which release the GIL) is made while the
        tensor file is written and fsynced, so a publish costs about the larger of the two.
        """
        with self._changing():
            d = self.slot_dir(slot_id)
            thumb = _thumb_pool().submit(lambda: codec.thumbnail(tensors["image"]))
            try:
                ensure_real_dir(d)
                clean_stale_temps(d)
                current, seq = history.numbers(d, SLOT_FILE)
                with (
                    atomic_write(
                        d / SLOT_FILE, lambda tmp: slot_file.write(tmp, tensors, meta, created, seq)
                    ) as commit_slot,
                    atomic_write(d / THUMB_FILE, lambda tmp: Path(tmp).write_bytes(thumb.result())) as commit_thumb,
                ):
                    if keep > 1 and current is not None:
                        history.archive_current(d, SLOT_FILE, THUMB_FILE, current)
                    commit_slot()
                    commit_thumb()
                fsync_dir(d)
            except UnsafeFile as exc:
                raise SlotWriteError(f"could not publish slot {slot_id!r}: {exc}; nothing was changed") from None
            except OSError as exc:
                raise SlotWriteError(
                    f"could not publish slot {slot_id!r} in {self.name}: "
                    f"{os_reason(exc)}; the previous version, if any, is "
                    f"unchanged"
                ) from None
            history.prune(d, keep - 1)

    # -- the seed's PNG layout --------------------------------------------------------------
    def migrate(self, slot_id: str, dry_run: bool = False) -> bool:
        """Convert a seed-layout folder (`image.png` + `mask.png`) into a slot, in place.

        The 8-bit values are kept exactly (as float32 v/255, what the seed's loader gave), the
        creation time is the PNG's, and the PNGs are removed only once the new slot has been
        read back bit-identical. Returns whether the folder needed it. Every read of the store
        runs this first, under the writer lock, so an upgraded bus never shows a missing slot.
        """
        d = self.slot_dir(slot_id)
        if not migration.seed_layout(d, SLOT_FILE):
            return False
        if dry_run:
            return True
        import torch

        with self._locked(slot_id):
            if not migration.seed_layout(d, SLOT_FILE):
                return False  # another thread or process converted it meanwhile
            image, mask = migration.read_seed_pngs(slot_id, d)
            tensors = {"image": image} | ({"mask": mask} if mask is not None else {})
            self._write(slot_id, tensors, dict(migration.MIGRATED_META), migration.seed_created(d), keep=1)
            back = self.read(slot_id)
            if not (
                torch.equal(back.image, image)
                and (mask is None or (back.mask is not None and torch.equal(back.mask, mask)))
            ):
                (d / SLOT_FILE).unlink(missing_ok=True)
                raise SlotCorrupt(
                    f"slot {slot_id!r}: the migrated slot did not read back exactly; the PNG files are kept"
                )
            migration.remove_seed_pngs(d)
            fsync_dir(d)
        log.info("migrated slot %r from the PNG layout", slot_id)
        return True

    def migrate_all(self, dry_run: bool = False) -> list[tuple[str, str | None]]:
        """Every seed-layout folder of the bus as (id, error or None), converted unless dry_run."""
        out: list[tuple[str, str | None]] = []
        for slot_id, d, _ in self._scan():
            if migration.seed_layout(d, SLOT_FILE):
                try:
                    self.migrate(slot_id, dry_run)
                    out.append((slot_id, None))
                except SlotError as exc:
                    out.append((slot_id, str(exc)))
        return out

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Mark the bus changed when the block ends, however it ends, for every process's
        remembered listing (see `listing`): each change ends in one."""
        try:
            yield
        finally:
            listing.bump(self.root)

    def _locked(self, *slot_ids: str) -> AbstractContextManager[None]:
        """Serialize writers of these slots across threads and processes (see `locks`)."""
        return slot_locks(self.root, slot_ids, self.name)

    def pin(self, slot_id: str, pinned: bool = True) -> SlotInfo:
        """A pinned slot is never removed to meet the quota."""
        if not self.exists(slot_id):
            raise SlotNotFound(f"no slot {slot_id!r} in {self.name}")
        with self._changing():
            marker = self.slot_dir(slot_id) / PIN_FILE
            try:
                if pinned and not os.path.lexists(marker):
                    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                    os.close(os.open(marker, flags, 0o644))
                elif not pinned:
                    marker.unlink(missing_ok=True)  # a planted link is removed, not followed
            except OSError as exc:
                raise SlotWriteError(
                    f"could not {'pin' if pinned else 'unpin'} slot {slot_id!r}: {os_reason(exc)}"
                ) from None
        return self._info_or_damaged(slot_id)

    def usage(self) -> int:
        """Bytes used by everything in the bus folder but the listing's generation file and
        saved rows (bookkeeping no quota should count: deleting a slot would add a byte)."""
        bookkeeping = 0
        for name in (listing.GENERATION_FILE, listing.LISTING_FILE):
            try:
                bookkeeping += os.lstat(self.root / name).st_size
            except FileNotFoundError:
                continue
        return _tree_bytes(self.root) - bookkeeping

    def set_policy(self, **changes: Any) -> tuple[Policy, list[str]]:
        """Save the policy with `changes` (keep, quota_bytes) applied and meet it at once.

        Returns the new policy and the ids the quota removed; a lowered `keep` applies at each
        slot's next publish. A full disk is SlotWriteError, and the old policy stays.
        """
        policy = replace(self.policy(), **changes)
        try:
            self._write_policy(policy)
        except OSError as exc:
            raise SlotWriteError(
                f"could not save the storage policy of {self.name}: {os_reason(exc)}; the old policy stays"
            ) from None
        return policy, self.enforce_quota(policy=policy)

    def enforce_quota(self, protect: str | None = None, policy: Policy | None = None) -> list[str]:
        """Delete the oldest unpinned slots until the bus fits its quota (see `quota`); returns
        their ids. `policy` saves a second read of the file by a caller that has it."""
        return enforce_quota(self, (policy or self.policy()).quota_bytes, protect)

    def delete(self, slot_id: str) -> int:
        """Move the folder aside in one rename, then remove it: never a half-deleted slot.

        Returns the bytes freed, so the quota need not walk the whole bus after each deletion.
        """
        with self._locked(validate_id(slot_id)):
            return self._delete_unlocked(slot_id)

    def _delete_unlocked(self, slot_id: str) -> int:
        d = self.slot_dir(slot_id)
        if not self.exists(slot_id):
            raise SlotNotFound(f"no slot {slot_id!r} in {self.name}")
        trash = d.with_name(f".trash-{slot_id}-{secrets.token_hex(4)}")
        self._move(slot_id, d, trash, "delete")
        freed = _tree_bytes(trash)
        shutil.rmtree(trash, ignore_errors=True)  # rmtree never follows links inside
        return freed

    def rename(self, old: str, new: str, overwrite: bool = False) -> SlotInfo:
        """Give a slot another id (all its versions and its pin go with it); a damaged slot
        is renamed too and comes back with `error` set."""
        src, dst = self.slot_dir(old), self.slot_dir(new)
        if src == dst:
            if not self.exists(old):
                raise SlotNotFound(f"no slot {old!r} in {self.name}")
            return self._info_or_damaged(new)
        with self._locked(old, new):
            return self._rename_unlocked(old, new, src, dst, overwrite)

    def _rename_unlocked(self, old: str, new: str, src: Path, dst: Path, overwrite: bool) -> SlotInfo:
        if not self.exists(old):
            raise SlotNotFound(f"no slot {old!r} in {self.name}")
        # `a` -> `A` on a case-insensitive disk: `A` is the slot itself, respelled, not one to replace
        if os.path.lexists(dst) and not _same_folder(src, dst):
            if not overwrite:
                raise FileExistsError(f"slot {new!r} already exists; delete it first or overwrite")
            self._delete_unlocked(new)
        self._move(old, src, dst, "rename")
        fsync_dir(self.root)
        return self._info_or_damaged(new)

    def _move(self, slot_id: str, src: Path, dst: Path, doing: str) -> None:
        """Rename slot `slot_id`'s folder `src` to `dst`, a name the caller made sure is free.

        Callers check that the slot exists first, under its lock; a folder gone since then was
        deleted or renamed by another thread or process: SlotNotFound, like the check itself.
        """
        with self._changing():
            try:
                os.rename(src, dst)
            except FileNotFoundError:
                raise SlotNotFound(f"no slot {slot_id!r} in {self.name}") from None
            except OSError as exc:
                raise SlotWriteError(f"could not {doing} slot {slot_id!r}: {os_reason(exc)}") from None

    # -- read ------------------------------------------------------------------------------
    def read(self, ref: str, device: str | torch.device = "cpu", verify: bool = True) -> SlotData:
        """Everything the slot holds, bit-identical to what was published; `ref` may be 'id@-N'.

        The tensors are copies owned by the process (read, not memory-mapped), so the slot
        may be replaced or deleted right away, Windows included. For a CUDA device the read
        goes into pinned memory and one non-blocking copy moves it.
        """
        import torch

        device = torch.device(device)
        with self._open(self._version(ref)) as (v, f, header):
            tensors = self._checked(v.ref, lambda: slot_file.read_tensors(f, header, verify, device))
        moved = {k: t.to(device, non_blocking=device.type == "cuda") for k, t in tensors.items()}
        return slot_data(moved, header.meta)

    def load(
        self, ref: str, device: str | torch.device = "cpu", verify: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(image, mask) exactly as published, as `read` gives them; a slot without a mask
        yields zeros [B,H,W] float32, ComfyUI's MASK convention."""
        return image_and_mask(self.read(ref, device, verify))

    def render(self, ref: str, index: int, side: int = 1024, mask: bool = False) -> bytes:
        """PNG preview of batch image `index` (or of its mask), long side <= side, in bounded memory.

        Only that image's bytes are read, band by band, so paging a big batch stays cheap
        and an image too big to render is refused from its header alone.
        """
        with self._open(self._version(ref)) as (v, f, header):
            return self._checked(
                v.ref,
                lambda: codec.preview(
                    v.ref, header, index, side, lambda at, out: slot_file.pread_exact(f, at, out), mask
                ),
            )

    def thumbnail(self, ref: str) -> bytes:
        """The version's PNG thumbnail, checked to be a small regular PNG file."""
        v = self._version(ref)
        try:
            data = read_regular(v.thumb, codec.MAX_THUMB_BYTES)
        except FileNotFoundError:
            raise SlotNotFound(f"slot {v.ref!r} has no thumbnail") from None
        except (SlotCorrupt, OSError) as exc:
            raise SlotCorrupt(f"slot {v.ref!r}: thumbnail refused: {exc}") from None
        return codec.check_thumbnail(v.ref, data)

    @contextmanager
    def verified_stream(self, ref: str) -> Iterator[_FileStream]:
        """The exact slot file, open, its header and checksum verified: what a download sends.

        The same open file is then streamed, so what was verified is what is sent.
        """
        with self._open(self._version(ref)) as (v, f, header):
            self._checked(v.ref, lambda: slot_file.verify(f, header))
            yield _FileStream(f, os.fstat(f.fileno()).st_size)

    def info(self, ref: str) -> SlotInfo:
        """Header-only description of a slot (or of 'id@-N'); raises SlotNotFound / SlotCorrupt."""
        v = self._version(ref)
        try:
            names = set(os.listdir(v.folder))
        except (FileNotFoundError, NotADirectoryError):
            raise SlotNotFound(f"no slot {v.slot_id!r} in {self.name}") from None
        return self._describe(v, names)

    def _describe(self, v: _Version, names: set[str]) -> SlotInfo:
        """SlotInfo from one listing of the slot folder and the file's header, never tensor data."""
        if not v.back and SLOT_FILE not in names:
            raise SlotNotFound(f"no slot {v.slot_id!r} in {self.name}")
        with self._open(v) as (_, f, header):
            size = os.fstat(f.fileno()).st_size
        return codec.describe(
            v.slot_id,
            header,
            size,
            version=-v.back,
            pinned=PIN_FILE in names,
            versions=1 + (len(history.older_versions(v.folder)) if history.HISTORY_DIR in names else 0),
            has_thumb=os.path.lexists(v.thumb) if v.back else THUMB_FILE in names,
        )

    def history(self, slot_id: str) -> list[SlotInfo]:
        """Every kept version, newest first; a damaged older one is listed with `error` set."""
        d = self.slot_dir(slot_id)
        if not self.exists(slot_id):
            raise SlotNotFound(f"no slot {slot_id!r} in {self.name}")
        return [self._info_or_damaged(format_ref(slot_id, n)) for n in range(len(history.older_versions(d)) + 1)]

    def _info_or_damaged(self, ref: str) -> SlotInfo:
        return info_or_damaged(self.info, ref)

    def _scan(self) -> Iterator[tuple[str, Path, set[str]]]:
        """(id, folder, file names) of every slot folder, one directory read each.

        Temp and trash names start with '.', and symlinks are skipped, so neither can pose
        as a slot.
        """
        try:
            entries = list(os.scandir(self.root))
        except (FileNotFoundError, NotADirectoryError):
            return
        for e in entries:
            if e.is_dir(follow_symlinks=False) and is_slot_name(e.name):
                try:
                    names = set(os.listdir(e.path))
                except FileNotFoundError:
                    continue  # deleted while we scanned
                if SLOT_FILE in names or migration.LEGACY_IMAGE in names:
                    yield e.name, Path(e.path), names

    def listing_token(self) -> str:
        """A string that changes whenever `list()` would (and on every change made through the
        pack, policy included): equal tokens, equal listings. Costs what a re-list does."""
        return self._listing()[1]

    def _listing(self) -> tuple[list[SlotInfo], str]:
        return listing.of(self.root, SLOT_FILE).get(self._list_row, POLICY_FILE)

    def _list_row(self, slot_id: str, d: Path) -> tuple[SlotInfo, bool] | None:
        """One slot's listing row and whether it keeps a history folder; None when the folder
        holds no slot (anymore). A seed-layout folder is migrated first."""
        try:
            names = set(os.listdir(d))
        except (FileNotFoundError, NotADirectoryError):
            return None  # deleted while we listed
        if SLOT_FILE not in names and migration.LEGACY_IMAGE not in names:
            return None
        try:
            if SLOT_FILE not in names and self.migrate(slot_id):
                names = set(os.listdir(d))
            info = self._describe(_Version(slot_id, 0, d, d / SLOT_FILE, d / THUMB_FILE), names)
        except SlotNotFound:
            return None  # deleted while we listed
        except SlotError as exc:
            info = SlotInfo.damaged(slot_id, str(exc))
        return info, history.HISTORY_DIR in names

    def list(self) -> list[SlotInfo]:
        """Every slot, newest first; a damaged one is listed with `error` set rather than hidden.

        Rows of slots unchanged since the last listing in this process come from memory (see
        `listing`): re-listing an unchanged bus reads no slot file.
        """
        return self._listing()[0]
